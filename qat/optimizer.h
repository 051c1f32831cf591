/* Optimizers (as one dispatch over the flat parameter buffer) and
 * learning-rate schedules. Semantics are PyTorch's torch.optim.SGD (momentum,
 * weight decay added to the gradient, dampening 0) and torch.optim.AdamW. */
#ifndef QAT_OPTIM_H
#define QAT_OPTIM_H

#include "qat/graph.h"

typedef enum qat_optim_kind { QAT_OPTIM_SGD, QAT_OPTIM_ADAMW } qat_optim_kind;
typedef enum qat_schedule_kind { QAT_SCHEDULE_CONSTANT, QAT_SCHEDULE_COSINE } qat_schedule_kind;

typedef struct qat_optim_config {
    qat_optim_kind kind;
    /* Doubles, like PyTorch's Python floats: expressions of them (1 - beta1,
     * lr / (1 - beta1^t) ...) are evaluated in double and rounded once. */
    double lr;
    double momentum;          /* SGD */
    double beta1, beta2, eps; /* AdamW */
    double weight_decay;
    qat_schedule_kind schedule;
    int warmup_steps;        /* cosine: linear warm-up from 0 over these steps */
    int total_steps;         /* cosine: decays to 0 at this step */
} qat_optim_config;

/* PyTorch's defaults for the kind (SGD: momentum 0.9, wd 5e-4 as our CLI
 * default; AdamW: betas (0.9, 0.999), eps 1e-8, wd 0.01), constant schedule. */
qat_optim_config qat_optim_defaults(qat_optim_kind kind, double lr);

/* Appends the optimizer node over all trainable parameters (call after
 * qat_graph_backward). Returns its node id. */
int qat_graph_add_optimizer(qat_graph *g, const qat_optim_config *cfg);

/* Learning rate at step t (0-based) under the schedule. */
double qat_lr_at(const qat_optim_config *cfg, int step);

/* Writes step t's scalars (learning rate, Adam's bias corrections) into the
 * graph's scalar slot; t is 0-based, Adam counts from 1. */
void qat_optim_set_step(qat_graph *g, const qat_optim_config *cfg, int step);

const char *qat_optim_name(qat_optim_kind kind);

#endif
