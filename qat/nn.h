/* Models: the graphs of the networks qat trains, with PyTorch's parameter
 * names and layouts so checkpoints read anywhere.
 *   mlp: 784-256-256-10, ReLU; layers fc1, fc2, fc3.
 *   cnn: conv1 3x3 1->16 pad 1, ReLU, maxpool 2x2 -> conv2 3x3 16->32 pad 1,
 *        ReLU, maxpool 2x2 -> flatten 32*7*7 -> fc1 1568->128, ReLU -> fc2 128->10. */
#ifndef QAT_NN_H
#define QAT_NN_H

#include "ops/ops.h"
#include "qat/graph.h"

typedef enum qat_model_kind { QAT_MODEL_MLP, QAT_MODEL_CNN, QAT_MODEL_KIND_COUNT } qat_model_kind;

#define QAT_MODEL_MAX_PARAMS 16
#define QAT_MODEL_MAX_LAYERS 8

/* A layer with a weight (linear or conv), as quantization sees it: the
 * weight viewed as rows (output channels) x cols (everything else). */
typedef struct qat_layer_info {
    const char *name;      /* "fc1", "conv2": its tensors are NAME.weight, NAME.bias */
    bool conv;             /* 3x3 conv, stride 1, padding 1 */
    int64_t rows, cols;
    int64_t in_channels, in_height, in_width; /* conv: the input image */
    bool input_nonnegative; /* its input comes out of a ReLU (PACT applies) */
} qat_layer_info;

int qat_model_layer_count(qat_model_kind kind);
const qat_layer_info *qat_model_layer_info(qat_model_kind kind, int layer);
/* Elements of the layer's input for a batch of `batch` images. */
int64_t qat_layer_input_numel(const qat_layer_info *info, int batch);
/* The layer index of a name, or -1. */
int qat_model_layer_find(qat_model_kind kind, const char *name);

/* Per-layer fake quantization inserted by qat_model_build_quant. A scale /
 * zero point pair becomes two parameters NAME.input_scale /
 * NAME.input_zero_point (or weight_...), written by the caller after
 * compiling; the scale trains when `trainable_scale`. */
typedef struct qat_model_fq {
    bool enabled;
    qat_fq_params params;
    bool trainable_scale;
} qat_model_fq;

typedef struct qat_model_quant {
    qat_model_fq input[QAT_MODEL_MAX_LAYERS];   /* on the layer's input */
    qat_model_fq weight[QAT_MODEL_MAX_LAYERS];  /* on its weight */
    /* Mark each layer's input (as the layer consumes it, after its fake
     * quantization) as an output, so calibration can read it. */
    bool expose_inputs;
} qat_model_quant;

typedef struct qat_model_layer {
    int weight, bias;      /* parameters */
    int input;             /* what the layer consumes (after input quantization) */
    int input_raw;         /* the input before quantization */
    int in_scale, in_zero_point;  /* -1 when not quantized */
    int w_scale, w_zero_point;
} qat_model_layer;

typedef struct qat_model {
    qat_model_kind kind;
    int batch;
    int x;                 /* input (batch, 784) for mlp, (batch, 1, 28, 28) for cnn */
    int labels;            /* input (batch) int32 */
    int logits;            /* (batch, 10), an output */
    int loss;              /* scalar mean cross-entropy, an output */
    int nparams;
    int params[QAT_MODEL_MAX_PARAMS]; /* tensor ids, checkpoint order */
    int64_t param_count;   /* scalars */
    int nlayers;
    qat_model_layer layers[QAT_MODEL_MAX_LAYERS];
} qat_model;

const char *qat_model_name(qat_model_kind kind);
/* Parses "mlp" / "cnn"; false if unknown. */
bool qat_model_parse(const char *name, qat_model_kind *out);

/* Builds the forward graph and the loss. */
void qat_model_build(qat_graph *g, qat_model_kind kind, int batch, bool trainable, qat_model *out);
/* The same with fake quantization where q says (NULL: none). */
void qat_model_build_quant(qat_graph *g, qat_model_kind kind, int batch, bool trainable, const qat_model_quant *q,
                           qat_model *out);

/* PyTorch's default initialisation of nn.Linear and nn.Conv2d (weights and
 * biases uniform in +-1/sqrt(fan_in)), from a counter-based RNG: parameter i
 * draws from stream i of `seed`, so the values do not depend on the device.
 * Fills host arrays (one per parameter, numel floats). */
void qat_model_init_values(const qat_graph *g, const qat_model *m, uint64_t seed, float **values);
qat_status qat_model_init_params(qat_graph *g, const qat_model *m, uint64_t seed);

#endif
