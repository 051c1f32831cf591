/* Per-channel bias add: reference forward and backward (see ops_ref.h). */
#include "ops/ops_ref.h"

#include "qat/common.h"

#include <string.h>

void qat_bias_add_forward_ref(float *y,          /* (outer, channels, inner) */
                              const float *x,    /* (outer, channels, inner) */
                              const float *bias, /* (channels) */
                              size_t outer, size_t channels, size_t inner)
{
    for (size_t o = 0; o < outer; o++)
        for (size_t c = 0; c < channels; c++)
            for (size_t i = 0; i < inner; i++) {
                size_t at = (o * channels + c) * inner + i;
                y[at] = x[at] + bias[c];
            }
}

void qat_bias_add_backward_ref(float *dx,       /* (outer, channels, inner), or NULL */
                               float *dbias,    /* (channels), or NULL */
                               const float *dy, /* (outer, channels, inner) */
                               size_t outer, size_t channels, size_t inner)
{
    /* dx == dy is the in-place case: the gradient passes through unchanged. */
    if (dx && dx != dy) memmove(dx, dy, outer * channels * inner * sizeof *dx);
    if (dbias) qat_reduce_sum_keepmid_forward_ref(dbias, dy, outer, channels, inner);
}
