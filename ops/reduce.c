/* Sum and mean reductions over one axis: reference forward and backward (see
 * ops_ref.h). Every reduction walks the reduced axis in ascending order into
 * one float accumulator. */
#include "ops/ops_ref.h"

#include "qat/common.h"

void qat_reduce_sum_forward_ref(float *y,       /* (outer, inner) */
                                const float *x, /* (outer, n, inner) */
                                size_t outer, size_t n, size_t inner)
{
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            float acc = 0.0f;
            for (size_t j = 0; j < n; j++) acc += x[(o * n + j) * inner + i];
            y[o * inner + i] = acc;
        }
}

void qat_reduce_sum_backward_ref(float *dx,       /* (outer, n, inner) */
                                 const float *dy, /* (outer, inner) */
                                 size_t outer, size_t n, size_t inner)
{
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < inner; i++) dx[(o * n + j) * inner + i] = dy[o * inner + i];
}

/* Mean divides the sum by n (and the backward divides dy by n) rather than
 * multiplying by 1/n: one rounding instead of two, and what PyTorch does. */
void qat_reduce_mean_forward_ref(float *y,       /* (outer, inner) */
                                 const float *x, /* (outer, n, inner) */
                                 size_t outer, size_t n, size_t inner)
{
    QAT_ASSERT_MSG(n > 0, "reduce_mean: empty axis");
    qat_reduce_sum_forward_ref(y, x, outer, n, inner);
    for (size_t k = 0; k < outer * inner; k++) y[k] /= (float)n;
}

void qat_reduce_mean_backward_ref(float *dx,       /* (outer, n, inner) */
                                  const float *dy, /* (outer, inner) */
                                  size_t outer, size_t n, size_t inner)
{
    QAT_ASSERT_MSG(n > 0, "reduce_mean: empty axis");
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < inner; i++)
                dx[(o * n + j) * inner + i] = dy[o * inner + i] / (float)n;
}

void qat_reduce_sum_keepmid_forward_ref(float *y,       /* (n) */
                                        const float *x, /* (outer, n, inner) */
                                        size_t outer, size_t n, size_t inner)
{
    for (size_t j = 0; j < n; j++) {
        float acc = 0.0f;
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < inner; i++) acc += x[(o * n + j) * inner + i];
        y[j] = acc;
    }
}

void qat_reduce_sum_keepmid_backward_ref(float *dx,       /* (outer, n, inner) */
                                         const float *dy, /* (n) */
                                         size_t outer, size_t n, size_t inner)
{
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < inner; i++) dx[(o * n + j) * inner + i] = dy[j];
}
