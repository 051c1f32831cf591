/* CPU reference step of the cnn made of the reference ops in ops/ (declared
 * in ops/ops_ref.h): the plain loops qat's shaders are tested against, called
 * in the order qat's graph runs its nodes. They are written to be obviously
 * correct, not fast, so this is the "same code, naive CPU" baseline; the
 * sgemm-based cpu_cnn.c is the fast one. Layouts are PyTorch's (NCHW). */
#include <stdlib.h>

#include "bench/cpu_ref.h"
#include "ops/ops_ref.h"

enum { C1 = 16, C2 = 32, H0 = 28, H1 = 14, H2 = 7, FLAT = C2 * H2 * H2, FC = 128, CLASSES = 10 };
enum { CW1, CB1, CW2, CB2, FW1, FB1, FW2, FB2, NPARAMS };

struct cpu_cnn_ops {
    int batch;
    cpu_params p;
    /* y1, y2: conv + bias + ReLU outputs; p1, p2: pooled (p2 is also the
     * flattened fc1 input, NCHW flattening being the identity); h: fc1 out */
    float *y1, *p1, *y2, *p2, *h, *logits;
    float *dlogits, *dh, *dp2, *dy2, *dp1, *dy1;
};

/* fc layer y (batch, out) = x @ w^T + b, then ReLU if relu. */
static void linear(float *y, const float *x, const float *w, const float *b, int batch, int in, int out, bool relu)
{
    qat_matmul_dims d = { .batch = 1, .m = (size_t)batch, .n = (size_t)out, .k = (size_t)in, .trans_b = true };
    qat_matmul_forward_ref(y, x, w, &d);
    qat_bias_add_forward_ref(y, y, b, (size_t)batch, (size_t)out, 1);
    if (relu) qat_relu_forward_ref(y, y, (size_t)batch * out);
}

/* Gradients of that layer from dy (ReLU already applied); dx unless NULL. */
static void linear_back(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int batch,
                        int in, int out)
{
    qat_matmul_dims d = { .batch = 1, .m = (size_t)batch, .n = (size_t)out, .k = (size_t)in, .trans_b = true };
    qat_matmul_backward_ref(dx, dw, dy, x, w, &d, false);
    qat_bias_add_backward_ref(NULL, db, dy, (size_t)batch, (size_t)out, 1);
}

static qat_conv2d_dims conv_dims(int batch, int cin, int cout, int hw)
{
    return (qat_conv2d_dims){ .n = (size_t)batch, .c = (size_t)cin, .h = (size_t)hw, .w = (size_t)hw,
                              .o = (size_t)cout, .kh = 3, .kw = 3, .stride = 1, .pad = 1 };
}

cpu_cnn_ops *cpu_cnn_ops_create(int batch, float *const *init)
{
    static const int64_t numel[NPARAMS] = { C1 * 9, C1, C2 * C1 * 9, C2, FC * FLAT, FC, CLASSES * FC, CLASSES };
    cpu_cnn_ops *m = qat_xcalloc(1, sizeof *m);
    m->batch = batch;
    cpu_params_init(&m->p, NPARAMS, numel, init);
    size_t b = (size_t)batch, s0 = b * H0 * H0, s1 = b * H1 * H1, s2 = b * H2 * H2;
    m->y1 = qat_xmalloc(C1 * s0 * sizeof(float));
    m->p1 = qat_xmalloc(C1 * s1 * sizeof(float));
    m->y2 = qat_xmalloc(C2 * s1 * sizeof(float));
    m->p2 = qat_xmalloc(C2 * s2 * sizeof(float));
    m->h = qat_xmalloc(b * FC * sizeof(float));
    m->logits = qat_xmalloc(b * CLASSES * sizeof(float));
    m->dlogits = qat_xmalloc(b * CLASSES * sizeof(float));
    m->dh = qat_xmalloc(b * FC * sizeof(float));
    m->dp2 = qat_xmalloc(C2 * s2 * sizeof(float));
    m->dy2 = qat_xmalloc(C2 * s1 * sizeof(float));
    m->dp1 = qat_xmalloc(C1 * s1 * sizeof(float));
    m->dy1 = qat_xmalloc(C1 * s0 * sizeof(float));
    return m;
}

float cpu_cnn_ops_step(cpu_cnn_ops *m, const float *x, const int32_t *labels, const qat_optim_config *c, int step)
{
    int b = m->batch;
    size_t n = (size_t)b;
    float *const *v = m->p.value, *const *g = m->p.grad;
    qat_conv2d_dims d1 = conv_dims(b, 1, C1, H0), d2 = conv_dims(b, C1, C2, H1);

    qat_conv2d_forward_ref(m->y1, x, v[CW1], &d1);
    qat_bias_add_forward_ref(m->y1, m->y1, v[CB1], n, C1, H0 * H0);
    qat_relu_forward_ref(m->y1, m->y1, n * C1 * H0 * H0);
    qat_maxpool2d_forward_ref(m->p1, m->y1, n, C1, H0, H0);
    qat_conv2d_forward_ref(m->y2, m->p1, v[CW2], &d2);
    qat_bias_add_forward_ref(m->y2, m->y2, v[CB2], n, C2, H1 * H1);
    qat_relu_forward_ref(m->y2, m->y2, n * C2 * H1 * H1);
    qat_maxpool2d_forward_ref(m->p2, m->y2, n, C2, H1, H1);
    linear(m->h, m->p2, v[FW1], v[FB1], b, FLAT, FC, true);
    linear(m->logits, m->h, v[FW2], v[FB2], b, FC, CLASSES, false);
    float loss = qat_softmax_ce_forward_ref(NULL, m->logits, labels, n, CLASSES);

    qat_softmax_ce_backward_ref(m->dlogits, m->logits, labels, n, CLASSES, 1.0f);
    linear_back(m->dh, g[FW2], g[FB2], m->dlogits, m->h, v[FW2], b, FC, CLASSES);
    qat_relu_backward_from_y_ref(m->dh, m->dh, m->h, n * FC);
    linear_back(m->dp2, g[FW1], g[FB1], m->dh, m->p2, v[FW1], b, FLAT, FC);
    qat_maxpool2d_backward_ref(m->dy2, m->dp2, m->y2, n, C2, H1, H1);
    qat_relu_backward_from_y_ref(m->dy2, m->dy2, m->y2, n * C2 * H1 * H1);
    qat_bias_add_backward_ref(NULL, g[CB2], m->dy2, n, C2, H1 * H1);
    qat_conv2d_backward_ref(m->dp1, g[CW2], m->dy2, m->p1, v[CW2], &d2);
    qat_maxpool2d_backward_ref(m->dy1, m->dp1, m->y1, n, C1, H0, H0);
    qat_relu_backward_from_y_ref(m->dy1, m->dy1, m->y1, n * C1 * H0 * H0);
    qat_bias_add_backward_ref(NULL, g[CB1], m->dy1, n, C1, H0 * H0);
    qat_conv2d_backward_ref(NULL, g[CW1], m->dy1, x, v[CW1], &d1); /* the input needs no gradient */

    /* The hyperparameters as qat's optimizer sees them (floats widened). */
    qat_adamw_hparams h = { .lr = qat_lr_at(c, step), .beta1 = c->beta1, .beta2 = c->beta2, .eps = c->eps,
                            .weight_decay = c->weight_decay };
    qat_adamw_update_ref(m->p.flat, m->p.flat_grad, m->p.m, m->p.v, m->p.total, &h, (uint64_t)step + 1);
    return loss;
}

void cpu_cnn_ops_free(cpu_cnn_ops *m)
{
    if (!m) return;
    cpu_params_free(&m->p);
    float *bufs[] = { m->y1, m->p1, m->y2, m->p2, m->h, m->logits, m->dlogits, m->dh, m->dp2, m->dy2, m->dp1, m->dy1 };
    for (size_t i = 0; i < QAT_ARRAY_LEN(bufs); i++) free(bufs[i]);
    free(m);
}
