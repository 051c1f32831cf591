/* Causal (lower-triangular) softmax of attention scores: reference forward
 * and backward (see ops_ref.h). */
#include "ops/ops_ref.h"

#include "qat/common.h"

#include <math.h>

void qat_causal_softmax_forward_ref(float *y,       /* (batch, T, T) */
                                    const float *x, /* (batch, T, T) */
                                    size_t batch, size_t t, float scale)
{
    for (size_t row = 0; row < batch * t; row++) {
        size_t last = row % t; /* the query position: columns 0 .. last are visible */
        const float *xr = x + row * t;
        float *yr = y + row * t;
        /* Subtracting the max keeps every exponent <= 0, so the sum lies in
         * [1, last + 1] and nothing overflows. */
        float m = scale * xr[0];
        for (size_t s = 1; s <= last; s++)
            if (scale * xr[s] > m) m = scale * xr[s];
        float sum = 0.0f;
        for (size_t s = 0; s <= last; s++) sum += expf(scale * xr[s] - m);
        for (size_t s = 0; s <= last; s++) yr[s] = expf(scale * xr[s] - m) / sum;
        for (size_t s = last + 1; s < t; s++) yr[s] = 0.0f;
    }
}

void qat_causal_softmax_backward_ref(float *dx,       /* (batch, T, T) */
                                     const float *dy, /* (batch, T, T) */
                                     const float *y,  /* (batch, T, T) */
                                     size_t batch, size_t t, float scale)
{
    for (size_t row = 0; row < batch * t; row++) {
        size_t last = row % t;
        const float *yr = y + row * t, *dyr = dy + row * t;
        float *dxr = dx + row * t;
        float d = 0.0f;
        for (size_t s = 0; s <= last; s++) d += yr[s] * dyr[s];
        for (size_t s = 0; s <= last; s++) dxr[s] = scale * (yr[s] * (dyr[s] - d));
        for (size_t s = last + 1; s < t; s++) dxr[s] = 0.0f;
    }
}
