/* 2-D convolution (cross-correlation, as PyTorch): reference forward and
 * backward, and im2col/col2im (see ops_ref.h). All loops are gathers: each
 * output element is one accumulator over its taps, so the shaders can run one
 * invocation per output element without atomics. */
#include "ops/ops_ref.h"

#include "qat/common.h"

static void check_dims(const qat_conv2d_dims *d)
{
    QAT_ASSERT(d != NULL);
    QAT_ASSERT_MSG(d->stride >= 1, "conv2d: stride must be >= 1");
    QAT_ASSERT_MSG(d->kh >= 1 && d->kw >= 1, "conv2d: empty kernel");
    QAT_ASSERT_MSG(d->h + 2 * d->pad >= d->kh && d->w + 2 * d->pad >= d->kw,
                   "conv2d: kernel larger than the padded input");
}

size_t qat_conv2d_out_h(const qat_conv2d_dims *d)
{
    check_dims(d);
    return (d->h + 2 * d->pad - d->kh) / d->stride + 1;
}

size_t qat_conv2d_out_w(const qat_conv2d_dims *d)
{
    check_dims(d);
    return (d->w + 2 * d->pad - d->kw) / d->stride + 1;
}

/* The input coordinate a tap reads: out * stride + k - pad, which is negative
 * or >= size in the padding; hence signed. */
static ptrdiff_t tap(size_t out, size_t k, const qat_conv2d_dims *d)
{
    return (ptrdiff_t)(out * d->stride + k) - (ptrdiff_t)d->pad;
}

static bool inside(ptrdiff_t v, size_t size) { return v >= 0 && v < (ptrdiff_t)size; }

/* The output coordinate whose window puts tap k on input coordinate in, if
 * any: out = (in + pad - k) / stride when that divides exactly and lands in
 * [0, out_size). */
static bool window_of(size_t in, size_t k, size_t out_size, const qat_conv2d_dims *d, size_t *out)
{
    ptrdiff_t t = (ptrdiff_t)(in + d->pad) - (ptrdiff_t)k;
    if (t < 0 || t % (ptrdiff_t)d->stride != 0) return false;
    *out = (size_t)(t / (ptrdiff_t)d->stride);
    return *out < out_size;
}

void qat_conv2d_forward_ref(float *y,       /* (N, O, OH, OW) */
                            const float *x, /* (N, C, H, W) */
                            const float *w, /* (O, C, KH, KW) */
                            const qat_conv2d_dims *d)
{
    size_t oh_n = qat_conv2d_out_h(d), ow_n = qat_conv2d_out_w(d);
    for (size_t n = 0; n < d->n; n++)
        for (size_t o = 0; o < d->o; o++)
            for (size_t oh = 0; oh < oh_n; oh++)
                for (size_t ow = 0; ow < ow_n; ow++) {
                    float acc = 0.0f;
                    for (size_t c = 0; c < d->c; c++)
                        for (size_t kh = 0; kh < d->kh; kh++) {
                            ptrdiff_t ih = tap(oh, kh, d);
                            if (!inside(ih, d->h)) continue;
                            for (size_t kw = 0; kw < d->kw; kw++) {
                                ptrdiff_t iw = tap(ow, kw, d);
                                if (!inside(iw, d->w)) continue;
                                acc += x[((n * d->c + c) * d->h + (size_t)ih) * d->w + (size_t)iw]
                                       * w[((o * d->c + c) * d->kh + kh) * d->kw + kw];
                            }
                        }
                    y[((n * d->o + o) * oh_n + oh) * ow_n + ow] = acc;
                }
}

void qat_conv2d_backward_ref(float *dx,       /* (N, C, H, W), or NULL */
                             float *dw,       /* (O, C, KH, KW), or NULL */
                             const float *dy, /* (N, O, OH, OW) */
                             const float *x,  /* (N, C, H, W) */
                             const float *w,  /* (O, C, KH, KW) */
                             const qat_conv2d_dims *d)
{
    size_t oh_n = qat_conv2d_out_h(d), ow_n = qat_conv2d_out_w(d);
    if (dx) {
        for (size_t n = 0; n < d->n; n++)
            for (size_t c = 0; c < d->c; c++)
                for (size_t ih = 0; ih < d->h; ih++)
                    for (size_t iw = 0; iw < d->w; iw++) {
                        float acc = 0.0f;
                        for (size_t o = 0; o < d->o; o++)
                            for (size_t kh = 0; kh < d->kh; kh++) {
                                size_t oh;
                                if (!window_of(ih, kh, oh_n, d, &oh)) continue;
                                for (size_t kw = 0; kw < d->kw; kw++) {
                                    size_t ow;
                                    if (!window_of(iw, kw, ow_n, d, &ow)) continue;
                                    acc += dy[((n * d->o + o) * oh_n + oh) * ow_n + ow]
                                           * w[((o * d->c + c) * d->kh + kh) * d->kw + kw];
                                }
                            }
                        dx[((n * d->c + c) * d->h + ih) * d->w + iw] = acc;
                    }
    }
    if (dw) {
        for (size_t o = 0; o < d->o; o++)
            for (size_t c = 0; c < d->c; c++)
                for (size_t kh = 0; kh < d->kh; kh++)
                    for (size_t kw = 0; kw < d->kw; kw++) {
                        float acc = 0.0f;
                        for (size_t n = 0; n < d->n; n++)
                            for (size_t oh = 0; oh < oh_n; oh++) {
                                ptrdiff_t ih = tap(oh, kh, d);
                                if (!inside(ih, d->h)) continue;
                                for (size_t ow = 0; ow < ow_n; ow++) {
                                    ptrdiff_t iw = tap(ow, kw, d);
                                    if (!inside(iw, d->w)) continue;
                                    acc += dy[((n * d->o + o) * oh_n + oh) * ow_n + ow]
                                           * x[((n * d->c + c) * d->h + (size_t)ih) * d->w + (size_t)iw];
                                }
                            }
                        dw[((o * d->c + c) * d->kh + kh) * d->kw + kw] = acc;
                    }
    }
}

void qat_im2col_ref(float *col,     /* (N, C*KH*KW, OH*OW) */
                    const float *x, /* (N, C, H, W) */
                    const qat_conv2d_dims *d)
{
    size_t oh_n = qat_conv2d_out_h(d), ow_n = qat_conv2d_out_w(d);
    size_t rows = d->c * d->kh * d->kw, cols = oh_n * ow_n;
    for (size_t n = 0; n < d->n; n++)
        for (size_t c = 0; c < d->c; c++)
            for (size_t kh = 0; kh < d->kh; kh++)
                for (size_t kw = 0; kw < d->kw; kw++) {
                    size_t r = (c * d->kh + kh) * d->kw + kw;
                    for (size_t oh = 0; oh < oh_n; oh++)
                        for (size_t ow = 0; ow < ow_n; ow++) {
                            ptrdiff_t ih = tap(oh, kh, d), iw = tap(ow, kw, d);
                            float v = 0.0f;
                            if (inside(ih, d->h) && inside(iw, d->w))
                                v = x[((n * d->c + c) * d->h + (size_t)ih) * d->w + (size_t)iw];
                            col[(n * rows + r) * cols + oh * ow_n + ow] = v;
                        }
                }
}

void qat_col2im_ref(float *x,         /* (N, C, H, W) */
                    const float *col, /* (N, C*KH*KW, OH*OW) */
                    const qat_conv2d_dims *d)
{
    size_t oh_n = qat_conv2d_out_h(d), ow_n = qat_conv2d_out_w(d);
    size_t rows = d->c * d->kh * d->kw, cols = oh_n * ow_n;
    for (size_t n = 0; n < d->n; n++)
        for (size_t c = 0; c < d->c; c++)
            for (size_t ih = 0; ih < d->h; ih++)
                for (size_t iw = 0; iw < d->w; iw++) {
                    float acc = 0.0f;
                    for (size_t kh = 0; kh < d->kh; kh++) {
                        size_t oh;
                        if (!window_of(ih, kh, oh_n, d, &oh)) continue;
                        for (size_t kw = 0; kw < d->kw; kw++) {
                            size_t ow;
                            if (!window_of(iw, kw, ow_n, d, &ow)) continue;
                            size_t r = (c * d->kh + kh) * d->kw + kw;
                            acc += col[(n * rows + r) * cols + oh * ow_n + ow];
                        }
                    }
                    x[((n * d->c + c) * d->h + ih) * d->w + iw] = acc;
                }
}
