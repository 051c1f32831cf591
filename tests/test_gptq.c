#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/gptq.h"
#include "tests/golden/gptq_fixture.h"
#include "tests/test_util.h"

/* Inputs with strongly correlated neighbouring features (an AR(1) chain along
 * the feature axis) of uneven scales. */
static float *correlated_inputs(test_rng *rng, int64_t count, int64_t n)
{
    float *x = qat_xmalloc((size_t)(count * n) * sizeof *x);
    for (int64_t r = 0; r < count; r++) {
        float prev = test_rng_float(rng, -1.0f, 1.0f);
        for (int64_t j = 0; j < n; j++) {
            const float v = 0.85f * prev + 0.5f * test_rng_float(rng, -1.0f, 1.0f);
            x[r * n + j] = v * (0.5f + (float)(j % 7) * 0.25f);
            prev = v;
        }
    }
    return x;
}

/* sum over rows of (w - q)^T H (w - q) = ||X W^T - X Q^T||^2 for H = X^T X. */
static double output_error(const qat_hessian *H, const float *w, const float *q, int64_t rows)
{
    const int64_t n = H->n;
    double *d = qat_xmalloc((size_t)n * sizeof *d);
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < n; j++) d[j] = (double)w[r * n + j] - (double)q[r * n + j];
        for (int64_t i = 0; i < n; i++) {
            double s = 0.0;
            for (int64_t j = 0; j < n; j++) s += H->h[i * n + j] * d[j];
            total += d[i] * s;
        }
    }
    free(d);
    return total;
}

/* Round to nearest with qat_weight_qparams' parameters; q the dequantized result. */
static void rtn(const float *w, int64_t rows, int64_t cols, const qat_qscheme *s, qat_observer_kind obs, float *q,
                uint8_t *codes, float *scale, int32_t *zero)
{
    qat_weight_qparams(w, rows, cols, s, obs, scale, zero);
    qat_quantize_weight(w, rows, cols, s, scale, zero, codes);
    qat_dequantize_weight(codes, rows, cols, s, scale, zero, q);
}

Test(gptq, hessian_matches_a_double_sum_and_stays_symmetric)
{
    enum { N = 13, COUNT = 300 };
    test_rng rng = {7};
    float *x = qat_xmalloc(sizeof(float) * N * COUNT);
    test_fill(&rng, x, N * COUNT, -2.0f, 2.0f);
    qat_hessian H;
    qat_hessian_init(&H, N);
    qat_hessian_add(&H, x, 200);
    qat_hessian_add(&H, x + 200 * N, COUNT - 200);
    qat_hessian_add(&H, x, 0);
    cr_assert_eq(H.samples, COUNT);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double want = 0.0;
            for (int r = 0; r < COUNT; r++) want += (double)x[r * N + i] * (double)x[r * N + j];
            cr_assert(fabs(H.h[i * N + j] - want) <= 1e-12 * (fabs(want) + 1.0), "H[%d][%d] = %.17g, want %.17g", i,
                      j, H.h[i * N + j], want);
            cr_assert(H.h[i * N + j] == H.h[j * N + i]);
        }
    qat_hessian_free(&H);
    free(x);
}

Test(gptq, hessian_gives_the_same_bits_every_time_and_on_every_kernel)
{
    enum { N = 37, COUNT = 517 };
    test_rng rng = {11};
    float *x = qat_xmalloc(sizeof(float) * N * COUNT);
    test_fill(&rng, x, N * COUNT, -3.0f, 1.0f);
    qat_hessian a, b, c;
    qat_hessian_init(&a, N);
    qat_hessian_init(&b, N);
    qat_hessian_init(&c, N);
    qat_hessian_add(&a, x, COUNT);
    qat_hessian_add(&b, x, COUNT);
    /* QAT_NO_AVX2 forces the portable kernel (Criterion runs each test in its
     * own process, so this does not leak). */
    setenv("QAT_NO_AVX2", "1", 1);
    qat_hessian_add(&c, x, COUNT);
    unsetenv("QAT_NO_AVX2");
    cr_assert_eq(memcmp(a.h, b.h, sizeof(double) * N * N), 0);
    cr_assert_eq(memcmp(a.h, c.h, sizeof(double) * N * N), 0, "the portable and AVX2 kernels disagree");
    qat_hessian_free(&a);
    qat_hessian_free(&b);
    qat_hessian_free(&c);
    free(x);
}

/* 64 x 256 weights, 2048 correlated calibration rows: GPTQ's output error is
 * well below round-to-nearest's at 3 and 4 bits, per channel and per group 64. */
Test(gptq, beats_round_to_nearest_on_correlated_inputs)
{
    enum { ROWS = 64, COLS = 256, COUNT = 2048 };
    test_rng rng = {2024};
    float *x = correlated_inputs(&rng, COUNT, COLS);
    float *w = qat_xmalloc(sizeof(float) * ROWS * COLS);
    for (int i = 0; i < ROWS * COLS; i++) w[i] = test_rng_float(&rng, -1.0f, 1.0f) * 0.1f;
    qat_hessian H;
    qat_hessian_init(&H, COLS);
    qat_hessian_add(&H, x, COUNT);

    float *q = qat_xmalloc(sizeof(float) * ROWS * COLS);
    float *g = qat_xmalloc(sizeof(float) * ROWS * COLS);
    uint8_t *codes = qat_xmalloc(ROWS * COLS);
    float scale[ROWS * (COLS / 64)];
    int32_t zero[ROWS * (COLS / 64)];
    const qat_qscheme schemes[] = {
        {.bits = 3, .symmetric = false, .gran = QAT_GRAN_CHANNEL, .group = 0}, {.bits = 4, .symmetric = false, .gran = QAT_GRAN_CHANNEL, .group = 0},
        {.bits = 3, .symmetric = false, .gran = QAT_GRAN_GROUP, .group = 64},  {.bits = 4, .symmetric = false, .gran = QAT_GRAN_GROUP, .group = 64},
        {.bits = 4, .symmetric = true, .gran = QAT_GRAN_CHANNEL, .group = 0},
    };
    for (size_t k = 0; k < QAT_ARRAY_LEN(schemes); k++) {
        const qat_qscheme *s = &schemes[k];
        rtn(w, ROWS, COLS, s, QAT_OBS_MINMAX, q, codes, scale, zero);
        const double e_rtn = output_error(&H, w, q, ROWS);
        memcpy(g, w, sizeof(float) * ROWS * COLS);
        cr_assert_eq(qat_gptq_quantize(g, ROWS, COLS, &H, s, QAT_OBS_MINMAX, 128, 0.01, codes, scale, zero, "fc"),
                     QAT_OK);
        const double e_gptq = output_error(&H, w, g, ROWS);
        cr_log_info("gptq %d bits gran %d group %d: output error %.4g vs RTN %.4g (%.2f)", s->bits, s->gran, s->group,
                    e_gptq, e_rtn, e_gptq / e_rtn);
        cr_assert(e_gptq < 0.8 * e_rtn, "%d bits gran %d: GPTQ error %g not well below RTN's %g", s->bits, s->gran,
                  e_gptq, e_rtn);
    }
    qat_hessian_free(&H);
    free(x), free(w), free(q), free(g), free(codes);
}

/* With H a multiple of I no error is propagated (U is diagonal), so GPTQ
 * is round to nearest, group parameters included. */
Test(gptq, identity_hessian_is_round_to_nearest)
{
    enum { ROWS = 16, COLS = 48 };
    float *x = qat_xcalloc(COLS * COLS, sizeof *x);
    for (int i = 0; i < COLS; i++) x[i * COLS + i] = 3.0f;
    qat_hessian H;
    qat_hessian_init(&H, COLS);
    qat_hessian_add(&H, x, COLS);
    test_rng rng = {5};
    float w[ROWS * COLS], g[ROWS * COLS], q[ROWS * COLS];
    test_fill(&rng, w, ROWS * COLS, -0.7f, 0.4f);
    uint8_t c_rtn[ROWS * COLS], c_gptq[ROWS * COLS];
    float s_rtn[ROWS * 3], s_gptq[ROWS * 3];
    int32_t z_rtn[ROWS * 3], z_gptq[ROWS * 3];
    const qat_qscheme schemes[] = {
        {.bits = 4, .symmetric = false, .gran = QAT_GRAN_CHANNEL, .group = 0}, {.bits = 3, .symmetric = true, .gran = QAT_GRAN_TENSOR, .group = 0}, {.bits = 2, .symmetric = false, .gran = QAT_GRAN_GROUP, .group = 16},
        {.bits = 8, .symmetric = true, .gran = QAT_GRAN_GROUP, .group = 20},
    };
    const qat_observer_kind kinds[] = {QAT_OBS_MINMAX, QAT_OBS_MSE, QAT_OBS_MINMAX, QAT_OBS_PERCENTILE};
    for (size_t k = 0; k < QAT_ARRAY_LEN(schemes); k++) {
        const qat_qscheme *s = &schemes[k];
        const int64_t ns = qat_qscheme_scale_count(s, ROWS, COLS);
        rtn(w, ROWS, COLS, s, kinds[k], q, c_rtn, s_rtn, z_rtn);
        memcpy(g, w, sizeof w);
        cr_assert_eq(qat_gptq_quantize(g, ROWS, COLS, &H, s, kinds[k], 16, 0.01, c_gptq, s_gptq, z_gptq, "id"),
                     QAT_OK);
        cr_assert_arr_eq(c_gptq, c_rtn, sizeof c_rtn, "scheme %zu", k);
        cr_assert_arr_eq(s_gptq, s_rtn, sizeof(float) * ns);
        cr_assert_arr_eq(z_gptq, z_rtn, sizeof(int32_t) * ns);
        cr_assert_arr_eq(g, q, sizeof q);
    }
    qat_hessian_free(&H);
    free(x);
}

/* Inputs that are always 0 give zero weights (code = zero point); the codes,
 * scales and zero points returned reproduce the returned weights exactly. */
Test(gptq, dead_inputs_are_zeroed_and_codes_match_the_weights)
{
    enum { ROWS = 24, COLS = 70, COUNT = 400 };
    test_rng rng = {99};
    float *x = correlated_inputs(&rng, COUNT, COLS);
    for (int r = 0; r < COUNT; r++) x[r * COLS + 3] = x[r * COLS + 41] = x[r * COLS + 69] = 0.0f;
    qat_hessian H;
    qat_hessian_init(&H, COLS);
    qat_hessian_add(&H, x, COUNT);
    float w[ROWS * COLS], g[ROWS * COLS], back[ROWS * COLS];
    test_fill(&rng, w, ROWS * COLS, -1.0f, 1.0f);
    uint8_t codes[ROWS * COLS], again[ROWS * COLS];
    float scale[ROWS * 3];
    int32_t zero[ROWS * 3];
    const qat_qscheme schemes[] = {
        {.bits = 4, .symmetric = false, .gran = QAT_GRAN_CHANNEL, .group = 0}, {.bits = 3, .symmetric = true, .gran = QAT_GRAN_GROUP, .group = 32}, {.bits = 5, .symmetric = false, .gran = QAT_GRAN_TENSOR, .group = 0}};
    for (size_t k = 0; k < QAT_ARRAY_LEN(schemes); k++) {
        const qat_qscheme *s = &schemes[k];
        memcpy(g, w, sizeof w);
        cr_assert_eq(qat_gptq_quantize(g, ROWS, COLS, &H, s, QAT_OBS_MINMAX, 32, 0.01, codes, scale, zero, "fc"),
                     QAT_OK);
        for (int r = 0; r < ROWS; r++) {
            cr_assert(g[r * COLS + 3] == 0.0f && g[r * COLS + 41] == 0.0f && g[r * COLS + 69] == 0.0f);
            const int64_t k3 = s->gran == QAT_GRAN_TENSOR ? 0 : s->gran == QAT_GRAN_CHANNEL ? r : r * 3;
            cr_assert_eq(codes[r * COLS + 3], zero[k3]);
        }
        qat_dequantize_weight(codes, ROWS, COLS, s, scale, zero, back);
        cr_assert_arr_eq(back, g, sizeof g, "dequantized codes differ from the returned weights");
        qat_quantize_weight(g, ROWS, COLS, s, scale, zero, again);
        cr_assert_arr_eq(again, codes, sizeof codes, "requantizing the returned weights changes codes");
    }
    qat_hessian_free(&H);
    free(x);
}

Test(gptq, indefinite_hessian_fails_naming_the_layer)
{
    qat_hessian H;
    qat_hessian_init(&H, 2);
    H.h[0] = 1.0, H.h[1] = 2.0, H.h[2] = 2.0, H.h[3] = 1.0; /* eigenvalues 3 and -1 */
    H.samples = 1;
    float w[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    uint8_t codes[4];
    float scale[2];
    int32_t zero[2];
    const qat_qscheme s = {.bits = 4, .symmetric = false, .gran = QAT_GRAN_CHANNEL, .group = 0};
    cr_assert_eq(qat_gptq_quantize(w, 2, 2, &H, &s, QAT_OBS_MINMAX, 128, 0.0, codes, scale, zero, "conv9.weight"),
                 QAT_ERR_INVALID);
    cr_assert(strstr(qat_error_message(), "conv9.weight"), "%s", qat_error_message());

    H.samples = 0;
    cr_assert_eq(qat_gptq_quantize(w, 2, 2, &H, &s, QAT_OBS_MINMAX, 128, 0.01, codes, scale, zero, "fc0"),
                 QAT_ERR_INVALID);
    cr_assert(strstr(qat_error_message(), "fc0"), "%s", qat_error_message());
    qat_hessian_free(&H);
}

/* Against tests/golden/gen_gptq_fixture.py: the reference loop in PyTorch. */
Test(gptq, matches_the_reference_loop_in_pytorch)
{
    enum { R = GPTQ_FX_ROWS, C = GPTQ_FX_COLS };
    static const struct {
        const char *name;
        qat_qscheme s;
        const float *q, *scale;
        const uint8_t *codes;
        const int32_t *zero;
    } cases[] = {
        {"ch4", {.bits = 4, .symmetric = false, .gran = QAT_GRAN_CHANNEL, .group = 0}, gptq_fx_ch4_q, gptq_fx_ch4_scale, gptq_fx_ch4_codes,
         gptq_fx_ch4_zero},
        {"ch3s", {.bits = 3, .symmetric = true, .gran = QAT_GRAN_CHANNEL, .group = 0}, gptq_fx_ch3s_q, gptq_fx_ch3s_scale, gptq_fx_ch3s_codes,
         gptq_fx_ch3s_zero},
        {"t3", {.bits = 3, .symmetric = false, .gran = QAT_GRAN_TENSOR, .group = 0}, gptq_fx_t3_q, gptq_fx_t3_scale, gptq_fx_t3_codes, gptq_fx_t3_zero},
        {"g8s3", {.bits = 3, .symmetric = true, .gran = QAT_GRAN_GROUP, .group = 8}, gptq_fx_g8s3_q, gptq_fx_g8s3_scale, gptq_fx_g8s3_codes,
         gptq_fx_g8s3_zero},
        {"g12a4", {.bits = 4, .symmetric = false, .gran = QAT_GRAN_GROUP, .group = 12}, gptq_fx_g12a4_q, gptq_fx_g12a4_scale, gptq_fx_g12a4_codes,
         gptq_fx_g12a4_zero},
    };
    qat_hessian H;
    qat_hessian_init(&H, C);
    qat_hessian_add(&H, gptq_fx_x, GPTQ_FX_N);
    for (size_t k = 0; k < QAT_ARRAY_LEN(cases); k++) {
        float w[R * C];
        uint8_t codes[R * C];
        float scale[R * C];
        int32_t zero[R * C];
        memcpy(w, gptq_fx_w, sizeof w);
        const qat_qscheme *s = &cases[k].s;
        cr_assert_eq(qat_gptq_quantize(w, R, C, &H, s, QAT_OBS_MINMAX, GPTQ_FX_BLOCK, 0.01, codes, scale, zero,
                                       cases[k].name),
                     QAT_OK);
        const int64_t ns = qat_qscheme_scale_count(s, R, C);
        for (int64_t i = 0; i < ns; i++) {
            cr_assert(fabsf(scale[i] - cases[k].scale[i]) <= 1e-6f * cases[k].scale[i], "%s scale[%lld] %a vs %a",
                      cases[k].name, (long long)i, scale[i], cases[k].scale[i]);
            cr_assert_eq(zero[i], cases[k].zero[i], "%s zero[%lld]", cases[k].name, (long long)i);
        }
        for (int i = 0; i < R * C; i++) {
            cr_assert(fabsf(w[i] - cases[k].q[i]) <= 1e-4f, "%s w[%d] = %a, reference %a", cases[k].name, i, w[i],
                      cases[k].q[i]);
            cr_assert_eq(codes[i], cases[k].codes[i], "%s code %d", cases[k].name, i);
        }
        for (int r = 0; r < R; r++) cr_assert(w[r * C + GPTQ_FX_DEAD] == 0.0f);
    }
    qat_hessian_free(&H);
}

/* Rows are independent given H, so GPTQ with per-row widths is GPTQ on each
 * run of rows alone at its width. */
Test(gptq, per_row_widths_match_each_run_alone)
{
    enum { ROWS = 12, COLS = 40 };
    test_rng rng = {21};
    float *x = correlated_inputs(&rng, 256, COLS);
    qat_hessian H;
    qat_hessian_init(&H, COLS);
    qat_hessian_add(&H, x, 256);
    float w[ROWS * COLS], all[ROWS * COLS], part[ROWS * COLS];
    test_fill(&rng, w, ROWS * COLS, -0.8f, 0.6f);
    uint8_t codes[ROWS * COLS], part_codes[ROWS * COLS];
    float scale[ROWS * 3], part_scale[ROWS * 3];
    int32_t zero[ROWS * 3], part_zero[ROWS * 3];
    const qat_granularity grans[] = {QAT_GRAN_CHANNEL, QAT_GRAN_GROUP};
    for (size_t gi = 0; gi < QAT_ARRAY_LEN(grans); gi++) {
        qat_qscheme s = {.bits = 4, .symmetric = false, .gran = grans[gi], .group = 16};
        cr_assert(qat_bit_runs_parse("2x5+4x3+3x4", &s.runs));
        memcpy(all, w, sizeof w);
        cr_assert_eq(qat_gptq_quantize(all, ROWS, COLS, &H, &s, QAT_OBS_MINMAX, 16, 0.01, codes, scale, zero, "runs"),
                     QAT_OK, "%s", qat_error_message());
        const int64_t per_row = qat_qscheme_scale_count(&s, ROWS, COLS) / ROWS;
        int64_t row = 0;
        for (int i = 0; i < s.runs.count; i++) {
            const qat_qscheme one = {.bits = s.runs.bits[i], .symmetric = false, .gran = s.gran, .group = 16};
            const int64_t n = s.runs.rows[i];
            memcpy(part, w + row * COLS, (size_t)(n * COLS) * sizeof(float));
            cr_assert_eq(qat_gptq_quantize(part, n, COLS, &H, &one, QAT_OBS_MINMAX, 16, 0.01, part_codes, part_scale,
                                           part_zero, "run"), QAT_OK);
            cr_assert_arr_eq(all + row * COLS, part, (size_t)(n * COLS) * sizeof(float), "run %d", i);
            cr_assert_arr_eq(codes + row * COLS, part_codes, (size_t)(n * COLS), "run %d", i);
            cr_assert_arr_eq(scale + row * per_row, part_scale, (size_t)(n * per_row) * sizeof(float));
            cr_assert_arr_eq(zero + row * per_row, part_zero, (size_t)(n * per_row) * sizeof(int32_t));
            row += n;
        }
    }
    qat_hessian_free(&H);
    free(x);
}
