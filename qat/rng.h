/* Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw,
 * "Parallel random numbers: as easy as 1, 2, 3", SC'11; the Random123
 * library). A (seed, stream) pair gives the same numbers on every machine,
 * and any element of a stream can be computed directly from its index, which
 * is what lets shaders generate the same numbers as the host.
 *
 * Stream layout -- shaders reimplement this, so it is a file format:
 *
 *   key[0]     = (uint32_t)seed            key[1]     = (uint32_t)(seed >> 32)
 *   counter[0] = (uint32_t)block           counter[1] = (uint32_t)(block >> 32)
 *   counter[2] = (uint32_t)stream          counter[3] = (uint32_t)(stream >> 32)
 *
 * Word i (counting from 0) of stream (seed, stream) is
 *   qat_philox4x32_10(counter with block = i / 4, key)[i % 4].
 * qat_rng_u32() returns words 0, 1, 2, ... in that order.
 *
 * Derived values, each consuming whole words in order:
 *   uniform        1 word  x:      (x >> 8) * 2^-24                 in [0, 1)
 *   uniform_range  1 word:         lo + (hi - lo) * uniform, kept below hi
 *   normal         2 words a, b:   u1 = ((a >> 8) + 1) * 2^-24      in (0, 1]
 *                                  u2 = (b >> 8) * 2^-24
 *                                  sqrt(-2 ln u1) * cos(2 pi u2), computed
 *                                  in double and rounded to float once
 *                                  (the sine half is not kept, so every
 *                                  normal costs exactly two words)
 *   below(n)       1 or more words: x accepted when x >= 2^32 mod n, result
 *                                  x mod n (rejection keeps it unbiased)
 *   shuffle        Fisher-Yates from the back: for i = n-1 down to 1,
 *                                  swap v[i] and v[below(i + 1)]
 */
#ifndef QAT_RNG_H
#define QAT_RNG_H

#include <stddef.h>
#include <stdint.h>

/* The Random123 philox4x32 with 10 rounds: a bijection of the 128-bit
 * counter, keyed by 64 bits. */
void qat_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

typedef struct qat_rng {
    uint64_t seed;
    uint64_t stream;
    uint64_t counter; /* block index of the next block to generate */
    uint32_t buf[4];  /* the current block's output */
    int buf_pos;      /* next unused word of buf; 4 when buf is used up */
} qat_rng;

/* No resources are held: a qat_rng may be copied (the copy continues the same
 * sequence) and needs no free. */
qat_rng qat_rng_init(uint64_t seed, uint64_t stream);

/* Word `index` of stream (seed, stream), without a generator. */
uint32_t qat_rng_u32_at(uint64_t seed, uint64_t stream, uint64_t index);

uint32_t qat_rng_u32(qat_rng *rng);
/* [0, 1) with 24 random bits, so every value is exactly representable. */
float qat_rng_uniform(qat_rng *rng);
/* [lo, hi) for lo < hi; lo when lo == hi. */
float qat_rng_uniform_range(qat_rng *rng, float lo, float hi);
/* Standard normal (mean 0, variance 1), Box-Muller. */
float qat_rng_normal(qat_rng *rng);
/* Uniform on [0, n), without modulo bias; n must be > 0. */
uint32_t qat_rng_below(qat_rng *rng, uint32_t n);
/* Uniform random permutation of v[0..n); n must be <= UINT32_MAX. */
void qat_rng_shuffle_u32(qat_rng *rng, uint32_t *v, size_t n);

#endif
