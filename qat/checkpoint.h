/* FP32 model checkpoints in safetensors, with PyTorch's names and layouts
 * (fc1.weight (out, in), conv1.weight (out, in, kh, kw)) and metadata:
 *   model       "mlp" | "cnn" | "gpt"
 *   input_mean, input_std   mlp, cnn: the normalisation applied after scaling
 *               pixels to [0, 1]
 *   gpt_layers, gpt_width, gpt_heads, gpt_context, gpt_vocab   gpt: its size
 *   seed, git_commit, device, format ("qat-fp32-v1") */
#ifndef QAT_CHECKPOINT_H
#define QAT_CHECKPOINT_H

#include "qat/nn.h"
#include "qat/safetensors.h"

typedef struct qat_checkpoint {
    qat_st_file *file;
    qat_model_config config;
    float input_mean, input_std; /* 0 and 1 for the gpt */
    char path[1024];
} qat_checkpoint;

/* Extra metadata pairs (key, value), NULL-terminated list allowed to be NULL. */
qat_status qat_checkpoint_save(qat_graph *g, const qat_model *m, const char *path, float input_mean,
                               float input_std, const char *const *extra_metadata);

/* Loads and validates the header: the model configuration and
 * normalisation. */
qat_status qat_checkpoint_open(const char *path, qat_checkpoint *out);
/* Writes every parameter of the model from the checkpoint into the graph,
 * checking names, dtypes and shapes (errors name the file and tensor). */
qat_status qat_checkpoint_apply(const qat_checkpoint *ck, qat_graph *g, const qat_model *m);
void qat_checkpoint_close(qat_checkpoint *ck);

/* Metadata pairs of a model configuration ("model" and, for the gpt, its
 * dimensions): writes them into a safetensors writer. */
void qat_checkpoint_write_config(qat_st_writer *w, const qat_model_config *config);
/* Reads them back from a loaded file (errors name `path` and the field). */
qat_status qat_checkpoint_read_config(const qat_st_file *file, const char *path, qat_model_config *out);

#endif
