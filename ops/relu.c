/* ReLU: reference forward and backward (see ops_ref.h). */
#include "ops/ops_ref.h"

void qat_relu_forward_ref(float *y, const float *x, /* each (n) */
                          size_t n)
{
    /* Written as PyTorch's threshold (`x <= 0 ? 0 : x`) rather than
     * `x > 0 ? x : 0` so that a NaN propagates and a diverging run shows. */
    for (size_t i = 0; i < n; i++) y[i] = x[i] <= 0.0f ? 0.0f : x[i];
}

void qat_relu_backward_ref(float *dx, const float *dy, const float *x, /* each (n) */
                           size_t n)
{
    /* x == 0 gets gradient 0: PyTorch's choice of subgradient at the kink. */
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void qat_relu_backward_from_y_ref(float *dx, const float *dy, const float *y, /* each (n) */
                                  size_t n)
{
    /* y > 0 exactly when x > 0, so this is the same mask as above. */
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
