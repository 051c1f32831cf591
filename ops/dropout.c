/* Dropout, CPU reference. The mask comes from the project's counter-based
 * RNG (qat/rng.h), word i of stream (seed, stream) for element i, so the
 * shader (shaders/dropout.comp) draws exactly the same mask. */
#include <math.h>

#include "ops/ops_ref.h"
#include "qat/common.h"
#include "qat/rng.h"

uint32_t qat_dropout_threshold(float p)
{
    QAT_ASSERT(p >= 0.0f && p < 1.0f);
    return (uint32_t)floor((double)p * 16777216.0);
}

void qat_dropout_forward_ref(float *y, const float *x, size_t n, float p, uint64_t seed, uint64_t stream)
{
    uint32_t threshold = qat_dropout_threshold(p);
    float scale = (float)(1.0 / (1.0 - (double)p));
    for (size_t i = 0; i < n; i++) {
        uint32_t word = qat_rng_u32_at(seed, stream, i);
        y[i] = (word >> 8) >= threshold ? x[i] * scale : 0.0f;
    }
}
