/* FP32 model checkpoints in safetensors, with PyTorch's names and layouts
 * (fc1.weight (out, in), conv1.weight (out, in, kh, kw)) and metadata:
 *   model       "mlp" | "cnn"
 *   input_mean, input_std   the normalisation applied after scaling pixels to [0, 1]
 *   seed, git_commit, device, format ("qat-fp32-v1") */
#ifndef QAT_CHECKPOINT_H
#define QAT_CHECKPOINT_H

#include "qat/nn.h"
#include "qat/safetensors.h"

typedef struct qat_checkpoint {
    qat_st_file *file;
    qat_model_kind model;
    float input_mean, input_std;
    char path[1024];
} qat_checkpoint;

/* Extra metadata pairs (key, value), NULL-terminated list allowed to be NULL. */
qat_status qat_checkpoint_save(qat_graph *g, const qat_model *m, const char *path, float input_mean,
                               float input_std, const char *const *extra_metadata);

/* Loads and validates the header: the model kind and normalisation. */
qat_status qat_checkpoint_open(const char *path, qat_checkpoint *out);
/* Writes every parameter of the model from the checkpoint into the graph,
 * checking names, dtypes and shapes (errors name the file and tensor). */
qat_status qat_checkpoint_apply(const qat_checkpoint *ck, qat_graph *g, const qat_model *m);
void qat_checkpoint_close(qat_checkpoint *ck);

#endif
