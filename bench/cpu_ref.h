/* CPU reference training steps for the benchmark: the same math as qat's
 * mlp and cnn training steps (forward, mean softmax cross-entropy, backward,
 * AdamW). cpu_mlp and cpu_cnn do every matrix product (convolutions as
 * im2col) with OpenBLAS sgemm and the rest in plain single-threaded loops;
 * cpu_cnn_ops is built from the reference ops of ops/ops_ref.h. Parameters use PyTorch's layouts, the same as
 * qat's, so both can start from the same values and be compared. */
#ifndef QAT_BENCH_CPU_REF_H
#define QAT_BENCH_CPU_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qat/nn.h"
#include "qat/optimizer.h"

/* A model's parameters in one flat array, as qat keeps them, so AdamW is one
 * loop over the whole span. */
typedef struct cpu_params {
    int count;
    float *value[QAT_MODEL_MAX_PARAMS]; /* into flat */
    float *grad[QAT_MODEL_MAX_PARAMS];  /* into flat_grad */
    float *flat, *flat_grad, *m, *v;
    size_t total;
} cpu_params;

/* init[i] holds numel[i] floats (qat_model_init_values' output). */
void cpu_params_init(cpu_params *p, int count, const int64_t *numel, float *const *init);
void cpu_params_free(cpu_params *p);
/* torch.optim.AdamW's update, in the order of operations of shaders/optim.comp;
 * step is 0-based as in qat_optim_set_step. */
void cpu_adamw(cpu_params *p, const qat_optim_config *c, int step);

/* y (batch, out) = x (batch, in) @ w^T + b, w (out, in); then ReLU if relu. */
void cpu_linear(const float *x, const float *w, const float *b, float *y, int batch, int in, int out, bool relu);
/* Gradients of that layer from dy (batch, out), the ReLU already applied to
 * dy: dw = dy^T @ x, db = column sums of dy, and dx = dy @ w unless dx is NULL. */
void cpu_linear_back(const float *dy, const float *x, const float *w, float *dw, float *db, float *dx, int batch,
                     int in, int out);
/* dy *= (y > 0), y the ReLU's output. */
void cpu_relu_back(float *dy, const float *y, size_t n);
/* Mean cross-entropy of softmax(logits) against labels; dlogits gets its
 * gradient, (softmax - onehot) / batch. */
float cpu_softmax_ce(const float *logits, const int32_t *labels, float *dlogits, int batch, int classes);

/* The models. init: qat_model_init_values' arrays, in qat_model.params order. */
typedef struct cpu_mlp cpu_mlp;
typedef struct cpu_cnn cpu_cnn;
cpu_mlp *cpu_mlp_create(int batch, float *const *init);
/* One training step on x (batch, 784); returns the loss before the update. */
float cpu_mlp_step(cpu_mlp *m, const float *x, const int32_t *labels, const qat_optim_config *c, int step);
void cpu_mlp_free(cpu_mlp *m);

cpu_cnn *cpu_cnn_create(int batch, float *const *init);
/* One training step on x (batch, 1, 28, 28); returns the loss before the update. */
float cpu_cnn_step(cpu_cnn *m, const float *x, const int32_t *labels, const qat_optim_config *c, int step);
void cpu_cnn_free(cpu_cnn *m);

/* The cnn again, as the reference ops of ops/ops_ref.h (plain loops). */
typedef struct cpu_cnn_ops cpu_cnn_ops;
cpu_cnn_ops *cpu_cnn_ops_create(int batch, float *const *init);
float cpu_cnn_ops_step(cpu_cnn_ops *m, const float *x, const int32_t *labels, const qat_optim_config *c, int step);
void cpu_cnn_ops_free(cpu_cnn_ops *m);

#endif
