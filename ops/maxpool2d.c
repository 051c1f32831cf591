/* 2x2, stride 2 max pooling: reference forward and backward (see ops_ref.h). */
#include "ops/ops_ref.h"

#include "qat/common.h"

#include <math.h>

/* Row-major index, within its (H, W) plane, of the element window (oh, ow)
 * selects: PyTorch CPU's scan, starting from -inf at the window's first
 * element and taking a later one only if strictly greater or NaN, so a tie
 * keeps the first maximum. */
static size_t window_argmax(const float *plane, /* (H, W) */
                            size_t w, size_t oh, size_t ow)
{
    size_t best_at = (2 * oh) * w + 2 * ow;
    float best = -INFINITY;
    for (size_t dh = 0; dh < 2; dh++)
        for (size_t dw = 0; dw < 2; dw++) {
            size_t at = (2 * oh + dh) * w + 2 * ow + dw;
            float v = plane[at];
            if (v > best || isnan(v)) {
                best = v;
                best_at = at;
            }
        }
    return best_at;
}

static void check_dims(size_t h, size_t w)
{
    /* PyTorch refuses an empty output too. */
    QAT_ASSERT_MSG(h >= 2 && w >= 2, "maxpool2d: input smaller than the window");
}

void qat_maxpool2d_forward_ref(float *y,       /* (N, C, H/2, W/2) */
                               const float *x, /* (N, C, H, W) */
                               size_t n, size_t c, size_t h, size_t w)
{
    check_dims(h, w);
    size_t oh_n = h / 2, ow_n = w / 2;
    for (size_t p = 0; p < n * c; p++) {
        const float *plane = x + p * h * w;
        for (size_t oh = 0; oh < oh_n; oh++)
            for (size_t ow = 0; ow < ow_n; ow++)
                y[(p * oh_n + oh) * ow_n + ow] = plane[window_argmax(plane, w, oh, ow)];
    }
}

void qat_maxpool2d_backward_ref(float *dx,       /* (N, C, H, W) */
                                const float *dy, /* (N, C, H/2, W/2) */
                                const float *x,  /* (N, C, H, W) */
                                size_t n, size_t c, size_t h, size_t w)
{
    check_dims(h, w);
    size_t oh_n = h / 2, ow_n = w / 2;
    for (size_t p = 0; p < n * c; p++) {
        const float *plane = x + p * h * w;
        for (size_t ih = 0; ih < h; ih++)
            for (size_t iw = 0; iw < w; iw++) {
                /* Windows do not overlap, so an input element belongs to at
                 * most one: (ih / 2, iw / 2), unless floor dropped it. */
                size_t oh = ih / 2, ow = iw / 2, at = ih * w + iw;
                float g = 0.0f;
                if (oh < oh_n && ow < ow_n && window_argmax(plane, w, oh, ow) == at)
                    g = dy[(p * oh_n + oh) * ow_n + ow];
                dx[p * h * w + at] = g;
            }
    }
}
