#include "rng.h"

#include <math.h>

#include "common.h"

/* Constants from Random123's philox.h: the multipliers were chosen there for
 * avalanche quality, the Weyl increments are the golden ratio and sqrt(3)-1
 * in 32-bit fixed point. */
#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9)
#define PHILOX_W1 UINT32_C(0xBB67AE85)

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void qat_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo32(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo32(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static void block_at(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4])
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                             (uint32_t)(stream >> 32)};
    qat_philox4x32_10(ctr, key, out);
}

qat_rng qat_rng_init(uint64_t seed, uint64_t stream)
{
    qat_rng rng = {.seed = seed, .stream = stream, .counter = 0, .buf_pos = 4};
    return rng;
}

uint32_t qat_rng_u32_at(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint32_t out[4];
    block_at(seed, stream, index / 4, out);
    return out[index % 4];
}

uint32_t qat_rng_u32(qat_rng *rng)
{
    if (rng->buf_pos >= 4) {
        block_at(rng->seed, rng->stream, rng->counter, rng->buf);
        rng->counter++;
        rng->buf_pos = 0;
    }
    return rng->buf[rng->buf_pos++];
}

float qat_rng_uniform(qat_rng *rng)
{
    /* 24 bits fill a float's significand, so the result is exact and never
     * rounds up to 1. */
    return (float)(qat_rng_u32(rng) >> 8) * 0x1.0p-24f;
}

float qat_rng_uniform_range(qat_rng *rng, float lo, float hi)
{
    QAT_ASSERT(lo <= hi);
    /* In double so hi - lo cannot overflow; the final rounding to float can
     * still land on hi, which the half-open interval excludes. */
    float r = (float)((double)lo + ((double)hi - (double)lo) * (double)qat_rng_uniform(rng));
    if (r >= hi && lo < hi) r = nextafterf(hi, lo);
    return r;
}

float qat_rng_normal(qat_rng *rng)
{
    /* u1 in (0, 1] keeps log() finite. Double precision makes the float
     * result the same on any libm with sub-ulp double accuracy, which a
     * float log/cos would not guarantee. */
    double u1 = (double)((qat_rng_u32(rng) >> 8) + 1) * 0x1.0p-24;
    double u2 = (double)(qat_rng_u32(rng) >> 8) * 0x1.0p-24;
    const double two_pi = 6.283185307179586476925286766559;
    return (float)(sqrt(-2.0 * log(u1)) * cos(two_pi * u2));
}

uint32_t qat_rng_below(qat_rng *rng, uint32_t n)
{
    QAT_ASSERT(n > 0);
    /* 2^32 mod n words at the bottom would make small results more likely
     * than large ones; drawing again in that case removes the bias. */
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t x = qat_rng_u32(rng);
        if (x >= threshold) return x % n;
    }
}

void qat_rng_shuffle_u32(qat_rng *rng, uint32_t *v, size_t n)
{
    QAT_ASSERT(n <= UINT32_MAX);
    for (size_t i = n; i > 1; i--) {
        uint32_t j = qat_rng_below(rng, (uint32_t)i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}
