/* SGD (momentum, weight decay) and AdamW updates with PyTorch's semantics and
 * operation order (see ops_ref.h). The scalar hyperparameter arithmetic is in
 * double and rounded to float once, because that is what PyTorch does: its
 * hyperparameters are Python floats and a Python float operand of a float32
 * tensor op is converted to float32. The per-element arithmetic is float. */
#include "ops/ops_ref.h"

#include "qat/common.h"

#include <math.h>

void qat_param_floor_ref(float *p, size_t n, float lo)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < lo) p[i] = lo;
}

void qat_sgd_update_ref(float *param,      /* (n) */
                        const float *grad, /* (n) */
                        float *buf,        /* (n) momentum buffer, or NULL if momentum == 0 */
                        size_t n, const qat_sgd_hparams *h)
{
    QAT_ASSERT(h != NULL);
    QAT_ASSERT_MSG(buf != NULL || h->momentum == 0.0, "sgd: momentum needs a buffer");
    float wd = (float)h->weight_decay;
    float momentum = (float)h->momentum;
    float neg_lr = (float)-h->lr;
    for (size_t i = 0; i < n; i++) {
        /* PyTorch skips this when wd == 0; adding 0 * p changes nothing for
         * finite p, so the branch-free form is the same. */
        float g = grad[i] + wd * param[i];
        if (buf) {
            /* torch: buf.mul_(momentum).add_(g, alpha=1 - dampening), with
             * dampening 0 so alpha is exactly 1. On step 1 PyTorch sets buf =
             * clone(g) instead; from a zeroed buffer 0 * momentum + g == g. */
            buf[i] = buf[i] * momentum + g;
            g = buf[i];
        }
        param[i] = param[i] + neg_lr * g; /* torch: param.add_(buf, alpha=-lr) */
    }
}

qat_adamw_step_scalars qat_adamw_scalars(const qat_adamw_hparams *h, uint64_t step)
{
    QAT_ASSERT(h != NULL);
    QAT_ASSERT_MSG(step >= 1, "adamw: steps count from 1");
    /* As torch.optim.AdamW (single-tensor path, capturable off) computes
     * them in Python: bias_correction1 = 1 - beta1 ** step, step_size = lr /
     * bias_correction1, bias_correction2_sqrt = math.sqrt(1 - beta2 ** step). */
    double t = (double)step;
    double bias_c1 = 1.0 - pow(h->beta1, t);
    double bias_c2 = 1.0 - pow(h->beta2, t);
    return (qat_adamw_step_scalars){
        .decay = (float)(1.0 - h->lr * h->weight_decay),
        .beta1 = (float)h->beta1,
        .one_minus_beta1 = (float)(1.0 - h->beta1),
        .beta2 = (float)h->beta2,
        .one_minus_beta2 = (float)(1.0 - h->beta2),
        .bias_c2_sqrt = (float)sqrt(bias_c2),
        .eps = (float)h->eps,
        .neg_step_size = (float)-(h->lr / bias_c1),
    };
}

void qat_adamw_update_ref(float *param,      /* (n) */
                          const float *grad, /* (n) */
                          float *m,          /* (n) first moment, zero before step 1 */
                          float *v,          /* (n) second moment, zero before step 1 */
                          size_t n, const qat_adamw_hparams *h,
                          uint64_t step /* t, starting at 1 */)
{
    qat_adamw_step_scalars s = qat_adamw_scalars(h, step);
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        /* Each line is one PyTorch tensor op, in its evaluation order. */
        float p = param[i] * s.decay;                    /* param.mul_(1 - lr * wd) */
        float mi = m[i] * s.beta1 + s.one_minus_beta1 * g; /* exp_avg.mul_(b1).add_(g, alpha=1 - b1) */
        float vi = v[i] * s.beta2 + s.one_minus_beta2 * g * g; /* exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2) */
        float denom = sqrtf(vi) / s.bias_c2_sqrt + s.eps; /* (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps) */
        param[i] = p + s.neg_step_size * mi / denom;     /* param.addcdiv_(exp_avg, denom, value=-step_size) */
        m[i] = mi;
        v[i] = vi;
    }
}
