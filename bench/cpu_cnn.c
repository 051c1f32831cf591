/* CPU reference step of the cnn: conv3x3(1->16, pad 1), ReLU, maxpool 2x2,
 * conv3x3(16->32, pad 1), ReLU, maxpool 2x2, flatten, fc 1568->128, ReLU,
 * fc 128->10; softmax cross-entropy; backward; AdamW.
 *
 * Convolutions are im2col + one sgemm over the whole batch: activations are
 * kept channel-major, (C, batch, H, W), so a convolution's output is exactly
 * the sgemm result W (Cout, Cin*9) @ col (Cin*9, batch*H*W) and the weight
 * gradient is dy @ col^T. The flatten before fc1 reorders to PyTorch's
 * (batch, C*H*W) so the parameters mean what qat's do. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cpu_ref.h"

enum { C1 = 16, C2 = 32, H0 = 28, H1 = 14, H2 = 7, FLAT = C2 * H2 * H2, FC = 128, CLASSES = 10 };
/* Parameter order of qat's cnn. */
enum { CW1, CB1, CW2, CB2, FW1, FB1, FW2, FB2, NPARAMS };

struct cpu_cnn {
    int batch;
    cpu_params p;
    /* forward: im2col buffers, conv outputs after ReLU, pooled maps and the
     * index of each window's maximum, then the fully connected part */
    float *col1, *y1, *p1, *col2, *y2, *p2, *flat, *h, *logits;
    int32_t *arg1, *arg2;
    /* backward */
    float *dlogits, *dh, *dflat, *dp2, *dy2, *dcol2, *dp1, *dy1;
};

/* col (cin*9, batch*h*w) from x (cin, batch, h, w): 3x3 windows, stride 1,
 * zero padding 1; row (c*3 + ky)*3 + kx matches the OIHW weight's column. */
static void im2col(const float *x, float *col, int cin, int batch, int h, int w)
{
    size_t plane = (size_t)batch * h * w;
    for (int c = 0; c < cin; c++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                float *row = col + ((size_t)(c * 3 + ky) * 3 + kx) * plane;
                for (int b = 0; b < batch; b++) {
                    const float *img = x + ((size_t)c * batch + b) * h * w;
                    for (int oy = 0; oy < h; oy++) {
                        int iy = oy + ky - 1;
                        for (int ox = 0; ox < w; ox++) {
                            int ix = ox + kx - 1;
                            *row++ = iy >= 0 && iy < h && ix >= 0 && ix < w ? img[iy * w + ix] : 0.0f;
                        }
                    }
                }
            }
}

/* The adjoint of im2col: dx (cin, batch, h, w) = sum of the dcol entries
 * that were copied from each position. */
static void col2im(const float *dcol, float *dx, int cin, int batch, int h, int w)
{
    size_t plane = (size_t)batch * h * w;
    memset(dx, 0, (size_t)cin * plane * sizeof(float));
    for (int c = 0; c < cin; c++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                const float *row = dcol + ((size_t)(c * 3 + ky) * 3 + kx) * plane;
                for (int b = 0; b < batch; b++) {
                    float *img = dx + ((size_t)c * batch + b) * h * w;
                    for (int oy = 0; oy < h; oy++) {
                        int iy = oy + ky - 1;
                        for (int ox = 0; ox < w; ox++, row++) {
                            int ix = ox + kx - 1;
                            if (iy >= 0 && iy < h && ix >= 0 && ix < w) img[iy * w + ix] += *row;
                        }
                    }
                }
            }
}

/* y (cout, batch*h*w) = ReLU(W @ im2col(x) + bias). */
static void conv_relu(const float *x, const float *wt, const float *bias, float *col, float *y, int cin, int cout,
                      int batch, int h, int w)
{
    int n = batch * h * w, k = cin * 9;
    im2col(x, col, cin, batch, h, w);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout, n, k, 1.0f, wt, k, col, n, 0.0f, y, n);
    for (int o = 0; o < cout; o++) {
        float *row = y + (size_t)o * n;
        for (int i = 0; i < n; i++) {
            float v = row[i] + bias[o];
            row[i] = v < 0.0f ? 0.0f : v;
        }
    }
}

/* Weight and bias gradients of conv_relu from dy (cout, batch*h*w), the
 * ReLU already applied; dcol (cin*9, batch*h*w) = W^T @ dy unless NULL. */
static void conv_back(const float *dy, const float *col, const float *wt, float *dw, float *db, float *dcol,
                      int cin, int cout, int n)
{
    int k = cin * 9;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cout, k, n, 1.0f, dy, n, col, n, 0.0f, dw, k);
    for (int o = 0; o < cout; o++) {
        float s = 0.0f;
        for (int i = 0; i < n; i++) s += dy[(size_t)o * n + i];
        db[o] = s;
    }
    if (dcol) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, n, cout, 1.0f, wt, k, dy, n, 0.0f, dcol, n);
}

/* 2x2 max pooling, stride 2, over `planes` maps of h x w; arg records the
 * input index of each window's first maximum, where backward sends dy. */
static void maxpool(const float *x, float *y, int32_t *arg, int planes, int h, int w)
{
    int oh = h / 2, ow = w / 2;
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int best = (p * h + 2 * oy) * w + 2 * ox;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int i = (p * h + 2 * oy + dy) * w + 2 * ox + dx;
                        if (x[i] > x[best]) best = i;
                    }
                int o = (p * oh + oy) * ow + ox;
                y[o] = x[best];
                arg[o] = best;
            }
}

static void maxpool_back(const float *dy, const int32_t *arg, float *dx, size_t n_out, size_t n_in)
{
    memset(dx, 0, n_in * sizeof(float));
    for (size_t i = 0; i < n_out; i++) dx[arg[i]] += dy[i];
}

cpu_cnn *cpu_cnn_create(int batch, float *const *init)
{
    static const int64_t numel[NPARAMS] = { C1 * 9, C1, C2 * C1 * 9, C2, FC * FLAT, FC, CLASSES * FC, CLASSES };
    cpu_cnn *m = qat_xcalloc(1, sizeof *m);
    m->batch = batch;
    cpu_params_init(&m->p, NPARAMS, numel, init);
    size_t b = (size_t)batch, s0 = b * H0 * H0, s1 = b * H1 * H1, s2 = b * H2 * H2;
    m->col1 = qat_xmalloc(9 * s0 * sizeof(float));
    m->y1 = qat_xmalloc(C1 * s0 * sizeof(float));
    m->p1 = qat_xmalloc(C1 * s1 * sizeof(float));
    m->arg1 = qat_xmalloc(C1 * s1 * sizeof(int32_t));
    m->col2 = qat_xmalloc(C1 * 9 * s1 * sizeof(float));
    m->y2 = qat_xmalloc(C2 * s1 * sizeof(float));
    m->p2 = qat_xmalloc(C2 * s2 * sizeof(float));
    m->arg2 = qat_xmalloc(C2 * s2 * sizeof(int32_t));
    m->flat = qat_xmalloc(b * FLAT * sizeof(float));
    m->h = qat_xmalloc(b * FC * sizeof(float));
    m->logits = qat_xmalloc(b * CLASSES * sizeof(float));
    m->dlogits = qat_xmalloc(b * CLASSES * sizeof(float));
    m->dh = qat_xmalloc(b * FC * sizeof(float));
    m->dflat = qat_xmalloc(b * FLAT * sizeof(float));
    m->dp2 = qat_xmalloc(C2 * s2 * sizeof(float));
    m->dy2 = qat_xmalloc(C2 * s1 * sizeof(float));
    m->dcol2 = qat_xmalloc(C1 * 9 * s1 * sizeof(float));
    m->dp1 = qat_xmalloc(C1 * s1 * sizeof(float));
    m->dy1 = qat_xmalloc(C1 * s0 * sizeof(float));
    return m;
}

float cpu_cnn_step(cpu_cnn *m, const float *x, const int32_t *labels, const qat_optim_config *c, int step)
{
    int b = m->batch;
    float *const *v = m->p.value, *const *g = m->p.grad;
    size_t s0 = (size_t)b * H0 * H0, s1 = (size_t)b * H1 * H1, s2 = (size_t)b * H2 * H2;

    /* x is (batch, 1, 28, 28), which with one channel is already (1, batch, 28, 28). */
    conv_relu(x, v[CW1], v[CB1], m->col1, m->y1, 1, C1, b, H0, H0);
    maxpool(m->y1, m->p1, m->arg1, C1 * b, H0, H0);
    conv_relu(m->p1, v[CW2], v[CB2], m->col2, m->y2, C1, C2, b, H1, H1);
    maxpool(m->y2, m->p2, m->arg2, C2 * b, H1, H1);
    for (int c2 = 0; c2 < C2; c2++)
        for (int i = 0; i < b; i++)
            memcpy(m->flat + (size_t)i * FLAT + c2 * H2 * H2, m->p2 + ((size_t)c2 * b + i) * H2 * H2,
                   H2 * H2 * sizeof(float));
    cpu_linear(m->flat, v[FW1], v[FB1], m->h, b, FLAT, FC, true);
    cpu_linear(m->h, v[FW2], v[FB2], m->logits, b, FC, CLASSES, false);
    float loss = cpu_softmax_ce(m->logits, labels, m->dlogits, b, CLASSES);

    cpu_linear_back(m->dlogits, m->h, v[FW2], g[FW2], g[FB2], m->dh, b, FC, CLASSES);
    cpu_relu_back(m->dh, m->h, (size_t)b * FC);
    cpu_linear_back(m->dh, m->flat, v[FW1], g[FW1], g[FB1], m->dflat, b, FLAT, FC);
    for (int c2 = 0; c2 < C2; c2++)
        for (int i = 0; i < b; i++)
            memcpy(m->dp2 + ((size_t)c2 * b + i) * H2 * H2, m->dflat + (size_t)i * FLAT + c2 * H2 * H2,
                   H2 * H2 * sizeof(float));
    maxpool_back(m->dp2, m->arg2, m->dy2, C2 * s2, C2 * s1);
    cpu_relu_back(m->dy2, m->y2, C2 * s1);
    conv_back(m->dy2, m->col2, v[CW2], g[CW2], g[CB2], m->dcol2, C1, C2, (int)s1);
    col2im(m->dcol2, m->dp1, C1, b, H1, H1);
    maxpool_back(m->dp1, m->arg1, m->dy1, C1 * s1, C1 * s0);
    cpu_relu_back(m->dy1, m->y1, C1 * s0);
    conv_back(m->dy1, m->col1, v[CW1], g[CW1], g[CB1], NULL, 1, C1, (int)s0); /* the input needs no gradient */
    cpu_adamw(&m->p, c, step);
    return loss;
}

void cpu_cnn_free(cpu_cnn *m)
{
    if (!m) return;
    cpu_params_free(&m->p);
    float *bufs[] = { m->col1, m->y1, m->p1, m->col2, m->y2, m->p2, m->flat, m->h, m->logits,
                      m->dlogits, m->dh, m->dflat, m->dp2, m->dy2, m->dcol2, m->dp1, m->dy1 };
    for (size_t i = 0; i < QAT_ARRAY_LEN(bufs); i++) free(bufs[i]);
    free(m->arg1);
    free(m->arg2);
    free(m);
}
