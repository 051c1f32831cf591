/* Elementwise product: reference forward and backward (see ops_ref.h). */
#include "ops/ops_ref.h"

void qat_mul_forward_ref(float *y, const float *a, const float *b, /* each (n) */
                         size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

void qat_mul_backward_ref(float *da, float *db, /* each (n), or NULL */
                          const float *dy, const float *a, const float *b, /* each (n) */
                          size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* Read everything before writing so da/db may alias dy, a or b. */
        float g = dy[i], ai = a[i], bi = b[i];
        if (da) da[i] = g * bi;
        if (db) db[i] = g * ai;
    }
}
