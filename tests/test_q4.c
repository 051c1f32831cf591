/* The 4-bit format and its host quantizer (ops/q4_format.h, qat/q4.h):
 * codebooks and decision thresholds, packing, the error bound of blockwise
 * quantization, double quantization against a direct computation, and
 * bitsandbytes' semantics as restated in torch by
 * tests/golden/gen_q4_fixtures.py (tests/golden/q4_fixtures.h; no Python is
 * needed to run these). The fixtures are compared bit for bit: the C and the
 * torch side make the same float operations in the same order. */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/q4.h"
#include "tests/golden/q4_fixtures.h"

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static float next_up(float x) { return nextafterf(x, INFINITY); }

/* ---- codebooks and thresholds ---------------------------------------------- */

Test(q4, nf4_codebook_is_create_normal_map)
{
    for (int c = 0; c < 16; c++) {
        cr_assert(same_bits(qat_q4_codebook[QAT_Q4_NF4][c], golden_q4_normal_map_values[c]), "code %d: %a vs %a", c,
                  (double)qat_q4_codebook[QAT_Q4_NF4][c], (double)golden_q4_normal_map_values[c]);
        if (c) cr_assert_lt(qat_q4_codebook[QAT_Q4_NF4][c - 1], qat_q4_codebook[QAT_Q4_NF4][c]);
    }
    cr_assert_eq(qat_q4_codebook[QAT_Q4_NF4][0], -1.0f);
    cr_assert_eq(qat_q4_codebook[QAT_Q4_NF4][7], 0.0f);
    cr_assert_eq(qat_q4_codebook[QAT_Q4_NF4][15], 1.0f);
}

Test(q4, nf4_thresholds_are_midpoints_and_ties_go_to_the_lower_code)
{
    const float *cb = qat_q4_codebook[QAT_Q4_NF4];
    int ties = 0, odd_side = 0;
    for (int i = 0; i < 15; i++) {
        float t = qat_q4_nf4_thresholds[i];
        /* A float nearest to the exact midpoint; where that lies halfway
         * between two floats, bitsandbytes' 16-digit literal picks the side. */
        double mid = ((double)cb[i] + cb[i + 1]) / 2, half_ulp = (next_up(fabsf(t)) - fabsf(t)) / 2.0;
        cr_assert_leq(fabs(t - mid), half_ulp, "threshold %d is not a float nearest the midpoint", i);
        ties += fabs(t - mid) == half_ulp;
        odd_side += !same_bits(t, (cb[i] + cb[i + 1]) * 0.5f);
        cr_assert_eq(qat_q4_encode(QAT_Q4_NF4, t), i, "the midpoint %a must go to the lower code %d", (double)t, i);
        cr_assert_eq(qat_q4_encode(QAT_Q4_NF4, next_up(t)), i + 1, "the float above %a must go to code %d", (double)t,
                     i + 1);
    }
    cr_assert_eq(ties, 7, "7 midpoints lie halfway between two floats");
    cr_assert_eq(odd_side, 4, "at 4 of them (thresholds 0, 8, 12, 14) the literal is not the even float");
    for (int c = 0; c < 16; c++) cr_assert_eq(qat_q4_encode(QAT_Q4_NF4, cb[c]), c);
    cr_assert_eq(qat_q4_encode(QAT_Q4_NF4, -7.0f), 0);
    cr_assert_eq(qat_q4_encode(QAT_Q4_NF4, 7.0f), 15);
    cr_assert_eq(qat_q4_encode(QAT_Q4_NF4, NAN), 0, "a NaN fails every test of the tree");
}

Test(q4, fp4_table_thresholds_and_ties)
{
    const float *cb = qat_q4_codebook[QAT_Q4_FP4];
    /* e2m1 with bias 3, divided by 12: 0, 0.0625, 8, 12, 4, 6, 2, 3 (/ 12). */
    static const double twelfths[8] = { 0, 0.0625, 8, 12, 4, 6, 2, 3 };
    for (int c = 0; c < 8; c++) {
        cr_assert_float_eq(cb[c], twelfths[c] / 12, 1e-7);
        cr_assert(same_bits(cb[c + 8], -cb[c]), "code %d is code %d negated", c + 8, c);
    }
    for (int r = 0; r < 7; r++) {
        int lo = qat_q4_fp4_by_magnitude[r], hi = qat_q4_fp4_by_magnitude[r + 1];
        float t = qat_q4_fp4_thresholds[r];
        cr_assert_lt(cb[lo], cb[hi], "magnitudes ascend");
        /* bitsandbytes' literal thresholds: the midpoints to 6-8 digits. */
        cr_assert_float_eq(t, ((double)cb[lo] + cb[hi]) / 2, 1e-6);
        cr_assert_eq(qat_q4_encode(QAT_Q4_FP4, t), lo, "threshold %a goes to the smaller magnitude", (double)t);
        cr_assert_eq(qat_q4_encode(QAT_Q4_FP4, next_up(t)), hi);
        cr_assert_eq(qat_q4_encode(QAT_Q4_FP4, -t), lo + 8);
        cr_assert_eq(qat_q4_encode(QAT_Q4_FP4, -next_up(t)), hi + 8);
    }
    for (int c = 0; c < 16; c++)
        if (c != 8) cr_assert_eq(qat_q4_encode(QAT_Q4_FP4, cb[c]), c);
    cr_assert_eq(qat_q4_encode(QAT_Q4_FP4, -0.0f), 0, "-0 is not below zero: code 0");
    cr_assert_eq(qat_q4_encode(QAT_Q4_FP4, NAN), 0);
    cr_assert_eq(qat_q4_encode(QAT_Q4_FP4, -3.0f), 11);
}

/* ---- packing and blockwise quantization -------------------------------------- */

Test(q4, packing_puts_even_elements_in_the_high_nibble)
{
    /* absmax 1: the codes are those of the values themselves. */
    const float x[5] = { 1.0f, -1.0f, 0.0f, 0.5f, -0.2f };
    uint8_t packed[3];
    float absmax;
    qat_q4_quantize(QAT_Q4_NF4, x, 5, packed, &absmax);
    cr_assert_eq(absmax, 1.0f);
    uint8_t c0 = 15, c1 = 0, c2 = 7, c3 = qat_q4_encode(QAT_Q4_NF4, 0.5f), c4 = qat_q4_encode(QAT_Q4_NF4, -0.2f);
    cr_assert_eq(c3, 12, "0.5 is below the 0.5017 threshold");
    cr_assert_eq(c4, 5);
    cr_assert_eq(packed[0], (c0 << 4) | c1);
    cr_assert_eq(packed[1], (c2 << 4) | c3);
    cr_assert_eq(packed[2], (c4 << 4) | 7, "an odd count pads with the code of 0.0f (NF4 7), got 0x%02x", packed[2]);
    const uint8_t codes[5] = { c0, c1, c2, c3, c4 };
    for (int i = 0; i < 5; i++) cr_assert_eq(qat_q4_code_at(packed, i), codes[i]);
    float back[5];
    qat_q4_dequantize(QAT_Q4_NF4, packed, &absmax, 5, back);
    cr_assert_eq(back[0], 1.0f);
    cr_assert_eq(back[1], -1.0f);
    cr_assert_eq(back[2], 0.0f);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Roughly normal values (a sum of four uniforms) with a scale per block. */
static void fill_weights(float *x, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    float scale = 1.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 64 == 0) scale = 0.001f + (float)(rng_next(&s) >> 40) * 0x1p-24f;
        float v = 0;
        for (int k = 0; k < 4; k++) v += (float)(rng_next(&s) >> 40) * 0x1p-24f;
        x[i] = (v - 2.0f) * scale;
    }
}

static float largest_half_gap(qat_q4_type type)
{
    float sorted[16], m = 0;
    memcpy(sorted, qat_q4_codebook[type], sizeof sorted);
    for (int i = 0; i < 16; i++) /* insertion sort: FP4's table is not in order */
        for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; j--) {
            float t = sorted[j];
            sorted[j] = sorted[j - 1], sorted[j - 1] = t;
        }
    for (int i = 0; i + 1 < 16; i++) m = fmaxf(m, (sorted[i + 1] - sorted[i]) / 2);
    return m;
}

Test(q4, blockwise_error_is_within_half_the_largest_codebook_gap)
{
    static const int64_t sizes[] = { 1, 63, 64, 65, 127, 1000, 4096 + 33 };
    for (int type = 0; type < QAT_Q4_TYPE_COUNT; type++) {
        float gap = largest_half_gap(type);
        cr_assert_float_eq(gap, type == QAT_Q4_NF4 ? (1.0f - 0.6961928f) / 2 : (1.0f - 0.6666667f) / 2, 1e-6);
        for (size_t k = 0; k < QAT_ARRAY_LEN(sizes); k++) {
            int64_t n = sizes[k];
            float *x = malloc((size_t)n * sizeof *x), *back = malloc((size_t)n * sizeof *back);
            uint8_t *packed = malloc((size_t)qat_q4_packed_bytes(n));
            float *absmax = malloc((size_t)qat_q4_block_count(n) * sizeof *absmax);
            fill_weights(x, n, (uint64_t)(k + 1));
            qat_q4_quantize(type, x, n, packed, absmax);
            qat_q4_dequantize(type, packed, absmax, n, back);
            double worst = 0;
            for (int64_t i = 0; i < n; i++) {
                float a = absmax[i / 64];
                /* The bound, plus the rounding of x * (1 / absmax) and of the
                 * dequantizing product: a few ulp of absmax. */
                double err = fabs((double)x[i] - back[i]);
                cr_assert_leq(err, (double)a * gap + 4e-7 * a, "%s n %lld i %lld: |%g - %g| > %g * %g",
                              qat_q4_type_name(type), (long long)n, (long long)i, x[i], back[i], a, gap);
                worst = fmax(worst, err / a);
                cr_assert_leq(fabsf(back[i]), a * (1 + 1e-6f));
            }
            /* The largest element of each block comes back exactly. */
            for (int64_t b = 0; b < qat_q4_block_count(n); b++) {
                int64_t end = (b + 1) * 64 < n ? (b + 1) * 64 : n, at = b * 64;
                for (int64_t i = b * 64; i < end; i++)
                    if (fabsf(x[i]) > fabsf(x[at])) at = i;
                cr_assert_eq(back[at], x[at], "block %lld's absmax element", (long long)b);
            }
            if (n >= 1000) cr_assert_gt(worst, 0.5 * gap, "the bound is not vacuous: some error reaches half of it");
            free(x), free(back), free(packed), free(absmax);
        }
    }
}

Test(q4, an_all_zero_block_stays_zero)
{
    float x[130] = { 0 };
    x[0] = 0.25f, x[129] = -3.0f; /* blocks 0 and 2 non-zero, block 1 all zero */
    for (int type = 0; type < QAT_Q4_TYPE_COUNT; type++) {
        uint8_t packed[65];
        float absmax[3], back[130];
        qat_q4_quantize(type, x, 130, packed, absmax);
        cr_assert_eq(absmax[1], 0.0f);
        qat_q4_dequantize(type, packed, absmax, 130, back);
        for (int i = 0; i < 130; i++) cr_assert_eq(back[i], x[i], "%s element %d", qat_q4_type_name(type), i);
        /* bitsandbytes: 0 * (1 / 0) is NaN, which encodes to code 0. */
        cr_assert_eq(qat_q4_code_at(packed, 70), 0);
    }
}

/* ---- double quantization ----------------------------------------------------- */

Test(q4, dynamic_map_is_bitsandbytes_create_dynamic_map)
{
    float map[256];
    qat_q4_dynamic_map(map);
    for (int i = 0; i < 256; i++)
        cr_assert(same_bits(map[i], golden_q4_dynamic_map[i]), "entry %d: %a vs torch %a", i, (double)map[i],
                  (double)golden_q4_dynamic_map[i]);
    cr_assert_eq(map[127], 0.0f);
    cr_assert_eq(map[255], 1.0f);
    cr_assert_float_eq(map[0], -0.99296875f, 1e-7);
}

Test(q4, dynamic_encode_follows_the_cuda_search_and_tie_rule)
{
    float map[256];
    qat_q4_dynamic_map(map);
    size_t n = QAT_ARRAY_LEN(golden_q4_dyn_probe_x);
    cr_assert_eq(n, QAT_ARRAY_LEN(golden_q4_dyn_probe_code));
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(qat_q4_dynamic_encode(map, golden_q4_dyn_probe_x[i]), golden_q4_dyn_probe_code[i], "probe %zu: %a",
                     i, (double)golden_q4_dyn_probe_x[i]);
    /* The first 255 probes are the midpoints: each goes to the even index of
     * its pair, i.e. to the upper code for odd j. */
    for (int j = 0; j < 255; j++) {
        uint8_t code = qat_q4_dynamic_encode(map, (map[j] + map[j + 1]) * 0.5f);
        cr_assert_eq(code, j % 2 == 0 ? j : j + 1, "tie between %d and %d", j, j + 1);
    }
}

/* Nearest code by exhaustive search (any of equally near ones). */
static bool is_nearest(const float *map, uint8_t code, float v)
{
    double d = fabs((double)map[code] - v);
    for (int c = 0; c < 256; c++)
        if (fabs((double)map[c] - v) < d * (1 - 1e-6)) return false;
    return true;
}

Test(q4, double_quantization_matches_a_direct_computation)
{
    float map[256];
    qat_q4_dynamic_map(map);
    for (int64_t nblocks = 1; nblocks <= 700; nblocks += 233) {
        float *absmax = malloc((size_t)nblocks * sizeof *absmax), *back = malloc((size_t)nblocks * sizeof *back);
        uint8_t *codes = malloc((size_t)nblocks);
        float *scales = malloc((size_t)qat_q4_scale_count(nblocks) * sizeof *scales);
        uint64_t s = (uint64_t)nblocks;
        for (int64_t b = 0; b < nblocks; b++) absmax[b] = 0.01f + (float)(rng_next(&s) >> 40) * 0x1p-24f;
        double sum = 0;
        for (int64_t b = 0; b < nblocks; b++) sum += absmax[b];
        float offset = qat_q4_absmax_mean(absmax, nblocks);
        cr_assert(same_bits(offset, (float)(sum / (double)nblocks)));
        qat_q4_double_quantize(absmax, nblocks, offset, codes, scales);
        qat_q4_double_dequantize(codes, scales, offset, nblocks, back);
        for (int64_t k = 0; k < qat_q4_scale_count(nblocks); k++) {
            float m = 0;
            for (int64_t b = k * 256; b < nblocks && b < (k + 1) * 256; b++) m = fmaxf(m, fabsf(absmax[b] - offset));
            cr_assert(same_bits(scales[k], m), "scale %lld is the block's max |absmax - offset|", (long long)k);
        }
        for (int64_t b = 0; b < nblocks; b++) {
            float scale = scales[b / 256], v = (absmax[b] - offset) * (1.0f / scale);
            cr_assert(is_nearest(map, codes[b], v), "block %lld: code %d is not nearest to %g", (long long)b, codes[b], v);
            cr_assert(same_bits(back[b], map[codes[b]] * scale + offset));
            /* The map's steps are at most 0.0140625 (next to +-1): the error is
             * within half of that times the scale, plus rounding. */
            cr_assert_leq(fabsf(back[b] - absmax[b]), 0.0140625f / 2 * scale + 1e-6f);
        }
        free(absmax), free(back), free(codes), free(scales);
    }
}

/* ---- bitsandbytes fixtures ----------------------------------------------------- */

static uint64_t splitmix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* q4_input of gen_q4_fixtures.py, operation for operation. */
static void q4_input(float *x, int64_t n, int64_t seed)
{
    for (int64_t i = 0; i < n; i++) {
        float u[4];
        for (int k = 0; k < 4; k++) u[k] = (float)(splitmix64((uint64_t)(seed * 1000003 + 4 * i + k)) >> 40) * 0x1p-24f;
        float base = ((u[0] + u[1]) + (u[2] + u[3])) - 2.0f;
        uint64_t h = splitmix64((uint64_t)(seed * 7919 + i / 64)) >> 54;
        float s = (float)(h + 1) * (1.0f / 1024);
        x[i] = base * s;
    }
}

Test(q4, quantization_matches_bitsandbytes_fixtures)
{
    for (size_t k = 0; k < QAT_ARRAY_LEN(golden_q4_cases); k++) {
        const golden_q4_case *c = &golden_q4_cases[k];
        int64_t n = c->rows * c->cols;
        float *x = malloc((size_t)n * sizeof *x);
        if (c->x) memcpy(x, c->x, (size_t)n * sizeof *x);
        else q4_input(x, n, c->seed);
        qat_q4_weight w;
        qat_q4_weight_init(&w, (qat_q4_type)c->type, c->rows, c->cols, c->double_quant);
        qat_q4_weight_quantize(&w, x);
        cr_assert_eq(memcmp(w.packed, c->packed, (size_t)qat_q4_packed_bytes(n)), 0, "%s: packed codes differ",
                     c->name);
        float *absmax = malloc((size_t)w.nblocks * sizeof *absmax);
        uint8_t *tmp = malloc((size_t)qat_q4_packed_bytes(n));
        qat_q4_quantize(w.type, x, n, tmp, absmax);
        for (int64_t b = 0; b < w.nblocks; b++)
            cr_assert(same_bits(absmax[b], c->absmax[b]), "%s: absmax %lld", c->name, (long long)b);
        if (c->double_quant) {
            /* Torch's float32 mean happens to be the correctly rounded one here. */
            cr_assert(same_bits(w.absmax_offset, *c->offset), "%s: offset %a vs torch %a", c->name,
                      (double)w.absmax_offset, (double)*c->offset);
            cr_assert_eq(w.nscales, 2);
            cr_assert_eq(memcmp(w.absmax_code, c->dq_code, (size_t)w.nblocks), 0, "%s: 8-bit codes differ", c->name);
            for (int64_t s = 0; s < w.nscales; s++)
                cr_assert(same_bits(w.absmax_scale[s], c->dq_scale[s]), "%s: scale %lld", c->name, (long long)s);
            qat_q4_weight_absmax(&w, absmax);
            for (int64_t b = 0; b < w.nblocks; b++)
                cr_assert(same_bits(absmax[b], c->dq_absmax[b]), "%s: dequantized absmax %lld", c->name,
                          (long long)b);
        }
        float *back = malloc((size_t)n * sizeof *back);
        qat_q4_weight_dequantize(&w, back);
        for (int p = 0; p < c->npick; p++)
            cr_assert(same_bits(back[c->pick_index[p]], c->pick_weight[p]), "%s: weight %lld: %a vs %a", c->name,
                      (long long)c->pick_index[p], (double)back[c->pick_index[p]], (double)c->pick_weight[p]);
        qat_q4_weight_free(&w);
        free(x), free(absmax), free(tmp), free(back);
    }
}

/* ---- sizes ------------------------------------------------------------------- */

Test(q4, nf4_with_double_quant_takes_under_0_6_bytes_per_parameter)
{
    qat_q4_weight w;
    qat_q4_weight_init(&w, QAT_Q4_NF4, 128, 512, true);
    uint64_t bytes = qat_q4_weight_device_bytes(&w);
    /* 32768 packed + 1024 codes + 16 scales (256 allocated) + 1104 table (1280). */
    cr_assert_eq(bytes, 32768 + 1024 + 256 + 1280);
    double per_param = (double)bytes / (128.0 * 512.0);
    cr_assert_leq(per_param, 0.6);
    printf("q4: a 128x512 NF4 weight with double quantization takes %llu device bytes, %.4f per parameter "
           "(FP32: 4)\n", (unsigned long long)bytes, per_param);
    qat_q4_weight_free(&w);
    qat_q4_weight_init(&w, QAT_Q4_NF4, 128, 512, false);
    cr_assert_eq(qat_q4_weight_device_bytes(&w), 32768 + 4096 + 1280);
    qat_q4_weight_free(&w);
}
