/* Models: the graphs of the networks qat trains, with PyTorch's parameter
 * names and layouts so checkpoints read anywhere.
 *   mlp: 784-256-256-10, ReLU; layers fc1, fc2, fc3.
 *   cnn: conv1 3x3 1->16 pad 1, ReLU, maxpool 2x2 -> conv2 3x3 16->32 pad 1,
 *        ReLU, maxpool 2x2 -> flatten 32*7*7 -> fc1 1568->128, ReLU -> fc2 128->10. */
#ifndef QAT_NN_H
#define QAT_NN_H

#include "qat/graph.h"

typedef enum qat_model_kind { QAT_MODEL_MLP, QAT_MODEL_CNN, QAT_MODEL_KIND_COUNT } qat_model_kind;

#define QAT_MODEL_MAX_PARAMS 16

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
} qat_model;

const char *qat_model_name(qat_model_kind kind);
/* Parses "mlp" / "cnn"; false if unknown. */
bool qat_model_parse(const char *name, qat_model_kind *out);

/* Builds the forward graph and the loss. */
void qat_model_build(qat_graph *g, qat_model_kind kind, int batch, bool trainable, qat_model *out);

/* PyTorch's default initialisation of nn.Linear and nn.Conv2d (weights and
 * biases uniform in +-1/sqrt(fan_in)), from a counter-based RNG: parameter i
 * draws from stream i of `seed`, so the values do not depend on the device.
 * Fills host arrays (one per parameter, numel floats). */
void qat_model_init_values(const qat_graph *g, const qat_model *m, uint64_t seed, float **values);
qat_status qat_model_init_params(qat_graph *g, const qat_model *m, uint64_t seed);

#endif
