#include "qat/optimizer.h"

#include <math.h>

#include "ops/ops_ref.h"

qat_optim_config qat_optim_defaults(qat_optim_kind kind, double lr)
{
    qat_optim_config c = {
        .kind = kind,
        .lr = lr,
        .momentum = 0.9,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .weight_decay = kind == QAT_OPTIM_SGD ? 5e-4 : 0.01,
        .schedule = QAT_SCHEDULE_CONSTANT,
    };
    return c;
}

const char *qat_optim_name(qat_optim_kind kind) { return kind == QAT_OPTIM_SGD ? "sgd" : "adamw"; }

int qat_graph_add_optimizer(qat_graph *g, const qat_optim_config *cfg)
{
    QAT_ASSERT_MSG(qat_graph_param_count(g) > 0, "no trainable parameters");
    int64_t one = 1;
    int params = qat_tensor_new(g, "params", QAT_F32, 1, &one, QAT_STORE_PARAM);
    int grads = qat_tensor_new(g, "grads", QAT_F32, 1, &one, QAT_STORE_GRAD);
    qat_tensor_get(g, params)->flat = true;
    qat_tensor_get(g, grads)->flat = true;
    /* The state spans the trainable parameters; their total (with the
     * alignment padding) is known only at compile, so the state tensors are
     * flat too and sized there. */
    bool adamw = cfg->kind == QAT_OPTIM_ADAMW;
    int in[4] = { params, grads, -1, -1 };
    int nin = adamw ? 4 : 3;
    for (int i = 2; i < nin; i++) {
        in[i] = qat_tensor_new(g, i == 2 ? "optim.m" : "optim.v", QAT_F32, 1, &one, QAT_STORE_OPT);
        qat_tensor_get(g, in[i])->flat = true;
    }
    int id = qat_node_add(g, adamw ? QAT_OP_ADAMW : QAT_OP_SGD, in, nin, -1);
    qat_node *n = qat_node_get(g, id);
    n->farg[0] = (float)(cfg->kind == QAT_OPTIM_SGD ? cfg->momentum : cfg->beta1);
    n->farg[1] = (float)cfg->beta2;
    n->farg[2] = (float)cfg->eps;
    n->farg[3] = (float)cfg->weight_decay;
    n->farg[4] = (float)(1.0 - cfg->beta1);
    n->farg[5] = (float)(1.0 - cfg->beta2);
    return id;
}

double qat_lr_at(const qat_optim_config *cfg, int step)
{
    if (cfg->schedule == QAT_SCHEDULE_CONSTANT) return cfg->lr;
    if (step < cfg->warmup_steps) return cfg->lr * (step + 1) / cfg->warmup_steps;
    int span = cfg->total_steps - cfg->warmup_steps;
    if (span <= 0) return cfg->lr;
    double progress = (double)(step - cfg->warmup_steps) / span;
    if (progress > 1.0) progress = 1.0;
    return 0.5 * cfg->lr * (1.0 + cos(M_PI * progress));
}

void qat_optim_set_step(qat_graph *g, const qat_optim_config *cfg, int step)
{
    float *s = qat_graph_scalar_slot(g);
    double lr = qat_lr_at(cfg, step);
    s[QAT_SCALAR_LR] = (float)lr;
    /* AdamW's per-step scalars come from the function its CPU reference uses
     * (rounded from double, as PyTorch does), so shader and reference see
     * the same values. */
    qat_adamw_hparams h = { lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay };
    qat_adamw_step_scalars a = qat_adamw_scalars(&h, (uint64_t)step + 1);
    s[QAT_SCALAR_ADAM_STEP_SIZE] = -a.neg_step_size;
    s[QAT_SCALAR_ADAM_BC2_SQRT] = a.bias_c2_sqrt;
    s[QAT_SCALAR_DECAY_FACTOR] = a.decay;
}
