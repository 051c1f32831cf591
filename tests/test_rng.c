#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/rng.h"

/* Random123's tests/kat_vectors, the three "philox4x32 10" lines (counter,
 * key, expected output), confirmed against an independent Python
 * implementation of the published algorithm. */
static const struct {
    uint32_t ctr[4], key[2], out[4];
} philox_kat[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

Test(rng, philox4x32_10_matches_random123_known_answers)
{
    for (size_t i = 0; i < sizeof philox_kat / sizeof philox_kat[0]; i++) {
        uint32_t out[4];
        qat_philox4x32_10(philox_kat[i].ctr, philox_kat[i].key, out);
        for (int k = 0; k < 4; k++)
            cr_assert_eq(out[k], philox_kat[i].out[k], "vector %zu word %d: got %08x, want %08x", i, k,
                         out[k], philox_kat[i].out[k]);
    }
}

/* The documented stream layout, with values from the Python reference
 * (key = seed lo/hi, counter = block lo/hi, stream lo/hi). */
#define SEED UINT64_C(0x123456789abcdef0)
#define STREAM UINT64_C(0xfedcba9876543210)
static const uint32_t block0[4] = {0x90aafdc4, 0x2d4a0d93, 0x13f86edc, 0x98b4ef2a};
static const uint32_t block1[4] = {0x1d237aa0, 0x6cadf41d, 0x912fd5e6, 0x5ae0422f};
static const uint32_t block_2p32[4] = {0x55967395, 0x400f3218, 0x22d001be, 0xfd1835ca};

Test(rng, u32_sequence_follows_documented_counter_and_key_layout)
{
    qat_rng r = qat_rng_init(SEED, STREAM);
    for (int k = 0; k < 4; k++) cr_assert_eq(qat_rng_u32(&r), block0[k]);
    for (int k = 0; k < 4; k++) cr_assert_eq(qat_rng_u32(&r), block1[k]);
    /* Block indices above 2^32 use counter word 1. */
    for (int k = 0; k < 4; k++)
        cr_assert_eq(qat_rng_u32_at(SEED, STREAM, (UINT64_C(1) << 32) * 4 + (uint64_t)k), block_2p32[k]);
    for (int k = 0; k < 4; k++) cr_assert_eq(qat_rng_u32_at(SEED, STREAM, 4 + (uint64_t)k), block1[k]);
}

Test(rng, same_seed_and_stream_repeat_and_copies_continue_the_sequence)
{
    qat_rng a = qat_rng_init(42, 7), b = qat_rng_init(42, 7);
    for (int i = 0; i < 1001; i++) cr_assert_eq(qat_rng_u32(&a), qat_rng_u32(&b));
    qat_rng c = a;
    for (int i = 0; i < 10; i++) cr_assert_eq(qat_rng_u32(&a), qat_rng_u32(&c));
}

Test(rng, different_streams_and_seeds_give_different_numbers)
{
    qat_rng a = qat_rng_init(42, 0), b = qat_rng_init(42, 1), c = qat_rng_init(43, 0);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 64; i++) {
        uint32_t x = qat_rng_u32(&a);
        same_ab += x == qat_rng_u32(&b);
        same_ac += x == qat_rng_u32(&c);
    }
    cr_assert_lt(same_ab, 2);
    cr_assert_lt(same_ac, 2);
}

Test(rng, uniform_uses_top_24_bits_and_stays_in_unit_interval)
{
    qat_rng r = qat_rng_init(SEED, STREAM);
    cr_assert_eq(qat_rng_uniform(&r), (float)(block0[0] >> 8) * 0x1.0p-24f);
    double sum = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = qat_rng_uniform(&r);
        cr_assert(u >= 0.0f && u < 1.0f, "uniform out of [0,1): %a", (double)u);
        sum += u;
    }
    cr_assert_float_eq(sum / n, 0.5, 0.005);
}

Test(rng, uniform_range_stays_within_half_open_interval)
{
    qat_rng r = qat_rng_init(1, 2);
    for (int i = 0; i < 100000; i++) {
        float v = qat_rng_uniform_range(&r, -3.0f, 5.0f);
        cr_assert(v >= -3.0f && v < 5.0f);
    }
    /* A range one ulp wide: rounding must not produce hi. */
    float lo = 1.0f, hi = nextafterf(1.0f, 2.0f);
    for (int i = 0; i < 1000; i++) cr_assert_eq(qat_rng_uniform_range(&r, lo, hi), lo);
    cr_assert_eq(qat_rng_uniform_range(&r, 2.5f, 2.5f), 2.5f);
    /* hi - lo overflows float; the result must still be finite. */
    for (int i = 0; i < 1000; i++) {
        float v = qat_rng_uniform_range(&r, -3e38f, 3e38f);
        cr_assert(isfinite(v) && v < 3e38f);
    }
}

Test(rng, normal_matches_reference_value_and_has_unit_moments)
{
    qat_rng r = qat_rng_init(SEED, STREAM);
    /* sqrt(-2 ln u1) cos(2 pi u2) from words 0x90aafdc4, 0x2d4a0d93, as
     * computed in Python and rounded to float32. */
    float first = qat_rng_normal(&r);
    uint32_t bits;
    memcpy(&bits, &first, sizeof bits);
    cr_assert_eq(bits, 0x3ef27897u, "first normal %.9g has bits %08x", (double)first, bits);
    /* Two words per normal: the next normal starts at word 2. */
    cr_assert_eq(qat_rng_u32(&r), block0[2]);

    const int n = 400000;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) {
        double x = qat_rng_normal(&r);
        cr_assert(isfinite(x));
        sum += x;
        sq += x * x;
    }
    double mean = sum / n, var = sq / n - mean * mean;
    cr_assert_float_eq(mean, 0.0, 0.01, "mean %g", mean);
    cr_assert_float_eq(var, 1.0, 0.015, "variance %g", var);
}

Test(rng, below_rejects_biased_words_and_matches_reference)
{
    /* n = 2^31 + 1 rejects words below 2^32 mod n = 0x7fffffff: of the words
     * of block0 the 1st and 4th are accepted, the 2nd and 3rd rejected. */
    qat_rng r = qat_rng_init(SEED, STREAM);
    cr_assert_eq(qat_rng_below(&r, 0x80000001u), 0x90aafdc4u % 0x80000001u);
    cr_assert_eq(qat_rng_below(&r, 0x80000001u), 0x98b4ef2au % 0x80000001u);
    cr_assert_eq(qat_rng_u32(&r), block1[0]);

    cr_assert_eq(qat_rng_below(&r, 1), 0u);
}

Test(rng, below_is_uniform_over_small_ranges)
{
    qat_rng r = qat_rng_init(99, 0);
    enum { N = 6, DRAWS = 120000 };
    int counts[N] = {0};
    for (int i = 0; i < DRAWS; i++) {
        uint32_t v = qat_rng_below(&r, N);
        cr_assert_lt(v, N);
        counts[v]++;
    }
    /* Chi-square with 5 degrees of freedom; 20.5 is the 0.1% tail. */
    double chi2 = 0, expect = (double)DRAWS / N;
    for (int k = 0; k < N; k++) chi2 += (counts[k] - expect) * (counts[k] - expect) / expect;
    cr_assert_lt(chi2, 20.5, "chi-square %g", chi2);
}

Test(rng, shuffle_gives_a_permutation_and_is_reproducible)
{
    enum { N = 1000 };
    uint32_t a[N], b[N];
    for (uint32_t i = 0; i < N; i++) a[i] = b[i] = i;
    qat_rng ra = qat_rng_init(5, 5), rb = qat_rng_init(5, 5);
    qat_rng_shuffle_u32(&ra, a, N);
    qat_rng_shuffle_u32(&rb, b, N);
    cr_assert_arr_eq(a, b, sizeof a);
    int moved = 0;
    char seen[N] = {0};
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_lt(a[i], N);
        cr_assert_not(seen[a[i]], "value %u appears twice", a[i]);
        seen[a[i]] = 1;
        moved += a[i] != i;
    }
    cr_assert_gt(moved, N / 2);

    qat_rng_shuffle_u32(&ra, a, 0); /* empty and single-element arrays are fine */
    qat_rng_shuffle_u32(&ra, a, 1);
}

Test(rng, shuffle_of_three_reaches_all_six_orders_evenly)
{
    qat_rng r = qat_rng_init(123, 4);
    int counts[6] = {0};
    enum { TRIALS = 60000 };
    for (int t = 0; t < TRIALS; t++) {
        uint32_t v[3] = {0, 1, 2};
        qat_rng_shuffle_u32(&r, v, 3);
        /* Lehmer code of the permutation. */
        int code = (int)v[0] * 2 + (v[1] > v[2]);
        counts[code]++;
    }
    for (int k = 0; k < 6; k++)
        cr_assert(counts[k] > TRIALS / 6 - 600 && counts[k] < TRIALS / 6 + 600, "order %d seen %d times",
                  k, counts[k]);
}
