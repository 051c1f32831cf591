#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/observer.h"
#include "tests/test_util.h"

static float gaussian(test_rng *rng)
{
    double u1 = ((double)(test_rng_next(rng) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(test_rng_next(rng) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Feeds x in batches of `batch` for every pass the observer needs. */
static void observe_all(qat_observer *o, const float *x, int64_t n, int64_t batch)
{
    for (;;) {
        for (int64_t i = 0; i < n; i += batch) qat_observer_observe(o, x + i, n - i < batch ? n - i : batch);
        if (!qat_observer_needs_second_pass(o)) break;
        qat_observer_start_second_pass(o);
    }
}

/* Mean squared error of fake-quantizing x on the grid of [lo, hi]. */
static double grid_mse(const float *x, int64_t n, float lo, float hi, int bits, bool symmetric)
{
    float scale;
    int32_t zero;
    qat_qparams_from_range(lo, hi, bits, symmetric, &scale, &zero);
    const qat_qscheme s = {.bits = bits, .symmetric = symmetric, .gran = QAT_GRAN_TENSOR, .group = 0};
    uint8_t *codes = qat_xmalloc((size_t)n);
    float *y = qat_xmalloc((size_t)n * sizeof *y);
    qat_quantize_weight(x, 1, n, &s, &scale, &zero, codes);
    qat_dequantize_weight(codes, 1, n, &s, &scale, &zero, y);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    free(codes), free(y);
    return sum / (double)n;
}

Test(observer, names_round_trip)
{
    for (int k = 0; k < QAT_OBS_KIND_COUNT; k++) {
        qat_observer_kind got;
        cr_assert(qat_observer_parse(qat_observer_name((qat_observer_kind)k), &got));
        cr_assert_eq(got, k);
    }
    cr_assert_str_eq(qat_observer_name(QAT_OBS_MINMAX), "minmax");
    cr_assert_str_eq(qat_observer_name(QAT_OBS_EMA), "ema");
    cr_assert_str_eq(qat_observer_name(QAT_OBS_PERCENTILE), "percentile");
    cr_assert_str_eq(qat_observer_name(QAT_OBS_MSE), "mse");
    qat_observer_kind got;
    cr_assert_not(qat_observer_parse("MinMax", &got));
    cr_assert_not(qat_observer_parse("", &got));
    cr_assert_not(qat_observer_parse("mse2", &got));
}

Test(observer, nothing_observed_is_zero_range_and_passes_are_as_documented)
{
    for (int k = 0; k < QAT_OBS_KIND_COUNT; k++) {
        qat_observer o;
        qat_observer_init(&o, (qat_observer_kind)k);
        float lo = 1, hi = 1;
        qat_observer_range(&o, 8, false, &lo, &hi);
        cr_assert(lo == 0.0f && hi == 0.0f);
        float s;
        int32_t z;
        qat_observer_qparams(&o, 8, false, &s, &z);
        cr_assert(s == FLT_EPSILON && z == 0);
        const bool two = k == QAT_OBS_PERCENTILE || k == QAT_OBS_MSE;
        cr_assert_eq(qat_observer_needs_second_pass(&o), two);
        if (two) {
            qat_observer_start_second_pass(&o);
            cr_assert_not(qat_observer_needs_second_pass(&o));
            qat_observer_range(&o, 8, false, &lo, &hi);
            cr_assert(lo == 0.0f && hi == 0.0f);
        }
        qat_observer_free(&o);
    }
}

Test(observer, minmax_of_uniform_data_is_its_range_widened_to_zero)
{
    enum { N = 10000 };
    test_rng rng = {1};
    static float x[N];
    test_fill(&rng, x, N, -0.5f, 1.5f);
    qat_observer o;
    qat_observer_init(&o, QAT_OBS_MINMAX);
    observe_all(&o, x, N, 333);
    float lo, hi;
    qat_observer_range(&o, 8, false, &lo, &hi);
    cr_assert(fabsf(lo + 0.5f) < 1e-3f && fabsf(hi - 1.5f) < 1e-3f, "[%g, %g]", lo, hi);
    float mn = x[0], mx = x[0];
    for (int i = 0; i < N; i++) mn = fminf(mn, x[i]), mx = fmaxf(mx, x[i]);
    cr_assert(lo == mn && hi == mx);
    float s, s2;
    int32_t z, z2;
    qat_observer_qparams(&o, 8, false, &s, &z);
    qat_qparams_from_range(mn, mx, 8, false, &s2, &z2);
    cr_assert(s == s2 && z == z2);

    test_fill(&rng, x, N, 2.0f, 3.0f); /* all positive: the range starts at 0 */
    qat_observer_free(&o);
    qat_observer_init(&o, QAT_OBS_MINMAX);
    observe_all(&o, x, N, N);
    qat_observer_range(&o, 4, true, &lo, &hi);
    cr_assert(lo == 0.0f && hi > 2.99f && hi <= 3.0f);
    qat_observer_free(&o);
}

/* m += 0.01 * (current - m) per batch, the first batch setting m. */
Test(observer, ema_follows_the_moving_average_formula)
{
    qat_observer o;
    qat_observer_init(&o, QAT_OBS_EMA);
    const float b1[] = {-1.0f, 0.5f, 2.0f}, b2[] = {1.0f, -3.0f}, b3[] = {4.0f, 0.5f, 3.0f};
    qat_observer_observe(&o, b1, 3);
    float lo, hi;
    qat_observer_range(&o, 8, false, &lo, &hi);
    cr_assert(lo == -1.0f && hi == 2.0f);
    qat_observer_observe(&o, b2, 2);
    qat_observer_range(&o, 8, false, &lo, &hi);
    cr_assert(fabsf(lo - -1.02f) < 1e-6f && fabsf(hi - 1.99f) < 1e-6f, "[%.9g, %.9g]", lo, hi);
    qat_observer_observe(&o, b3, 3);
    qat_observer_range(&o, 8, false, &lo, &hi);
    /* min: -1.02 + 0.01 * (0.5 + 1.02) = -1.0048;
     * max: 1.99 + 0.01 * (4 - 1.99) = 2.0101 */
    cr_assert(fabsf(lo - -1.0048f) < 1e-6f && fabsf(hi - 2.0101f) < 1e-6f, "[%.9g, %.9g]", lo, hi);
    cr_assert(o.min == -3.0f && o.max == 4.0f);

    /* Constant batches: the gap to them shrinks by 0.99 per batch. */
    const float c[] = {-2.0f, 5.0f};
    for (int k = 1; k <= 300; k++) {
        qat_observer_observe(&o, c, 2);
        if (k % 100 == 0) {
            qat_observer_range(&o, 8, false, &lo, &hi);
            const double f = pow(0.99, k);
            cr_assert(fabs(lo - (-2.0 + (-1.0048 + 2.0) * f)) < 1e-4, "k %d: lo %g", k, lo);
            cr_assert(fabs(hi - (5.0 + (2.0101 - 5.0) * f)) < 1e-4, "k %d: hi %g", k, hi);
        }
    }
    qat_observer_free(&o);
}

/* N(0, 1): the 99.99th percentile is 3.719 sigma. */
Test(observer, percentile_of_gaussian_is_near_3_72_sigma)
{
    enum { N = 1000000 };
    test_rng rng = {42};
    float *x = qat_xmalloc(N * sizeof *x);
    for (int i = 0; i < N; i++) x[i] = 0.5f * gaussian(&rng);
    qat_observer o;
    qat_observer_init(&o, QAT_OBS_PERCENTILE);
    observe_all(&o, x, N, 4096);
    float lo, hi;
    qat_observer_range(&o, 8, false, &lo, &hi);
    cr_assert(fabsf(hi / 0.5f - 3.719f) < 0.1f, "hi %g sigma", hi / 0.5f);
    cr_assert(fabsf(lo / 0.5f + 3.719f) < 0.1f, "lo %g sigma", lo / 0.5f);
    cr_assert(hi < o.max && lo > o.min);

    o.percentile = 99.0; /* 2.326 sigma */
    qat_observer_range(&o, 8, false, &lo, &hi);
    cr_assert(fabsf(hi / 0.5f - 2.326f) < 0.02f, "hi %g sigma", hi / 0.5f);
    o.percentile = 100.0;
    qat_observer_range(&o, 8, false, &lo, &hi);
    cr_assert(hi == o.max && lo == o.min);
    qat_observer_free(&o);

    /* Without the second pass: the min-max range. */
    qat_observer_init(&o, QAT_OBS_PERCENTILE);
    qat_observer_observe(&o, x, N);
    qat_observer_range(&o, 8, false, &lo, &hi);
    cr_assert(lo == o.min && hi == o.max);
    qat_observer_free(&o);
    free(x);
}

/* A Gaussian with a few far outliers: mse clips well inside the min-max range
 * and its grid has a lower error on the data. */
Test(observer, mse_clips_outliers_and_lowers_the_error)
{
    enum { N = 200000 };
    test_rng rng = {77};
    float *x = qat_xmalloc(N * sizeof *x);
    for (int i = 0; i < N; i++) x[i] = gaussian(&rng);
    for (int i = 0; i < 20; i++) x[i * 997] = (i % 2 ? 30.0f : -25.0f) + (float)i * 0.1f;
    for (int sym = 0; sym < 2; sym++)
        for (int bits = 3; bits <= 8; bits++) {
            qat_observer mm, ms;
            qat_observer_init(&mm, QAT_OBS_MINMAX);
            qat_observer_init(&ms, QAT_OBS_MSE);
            observe_all(&mm, x, N, 10000);
            observe_all(&ms, x, N, 10000);
            float mlo, mhi, lo, hi;
            qat_observer_range(&mm, bits, sym, &mlo, &mhi);
            qat_observer_range(&ms, bits, sym, &lo, &hi);
            const double e_mm = grid_mse(x, N, mlo, mhi, bits, sym), e_ms = grid_mse(x, N, lo, hi, bits, sym);
            cr_log_info("mse %d bits sym %d: [%g, %g] error %g; minmax [%g, %g] error %g", bits, sym, lo, hi, e_ms,
                        mlo, mhi, e_mm);
            cr_assert(e_ms <= e_mm, "%d bits: mse error %g vs minmax %g", bits, e_ms, e_mm);
            if (bits <= 4) { /* few levels: clipping the 20 outliers pays */
                cr_assert(hi - lo < 0.25f * (mhi - mlo), "%d bits: mse range [%g, %g] vs [%g, %g]", bits, lo, hi,
                          mlo, mhi);
                cr_assert(e_ms < 0.5 * e_mm, "%d bits: mse error %g vs minmax %g", bits, e_ms, e_mm);
            }
            cr_assert(lo <= 0.0f && hi >= 0.0f);
            qat_observer_free(&mm);
            qat_observer_free(&ms);
        }
    free(x);
}

Test(observer, constant_data_gives_its_value_widened_to_zero)
{
    const float x[] = {1.5f, 1.5f, 1.5f, 1.5f};
    for (int k = 0; k < QAT_OBS_KIND_COUNT; k++) {
        qat_observer o;
        qat_observer_init(&o, (qat_observer_kind)k);
        observe_all(&o, x, 4, 3);
        float lo, hi;
        qat_observer_range(&o, 4, false, &lo, &hi);
        cr_assert(lo == 0.0f && hi == 1.5f, "%s: [%g, %g]", qat_observer_name((qat_observer_kind)k), lo, hi);
        qat_observer_free(&o);
    }
}

Test(observer, weight_minmax_and_ema_use_each_elements_extremes)
{
    enum { ROWS = 3, COLS = 10 };
    test_rng rng = {8};
    float w[ROWS * COLS];
    test_fill(&rng, w, ROWS * COLS, -1.0f, 2.0f);
    const qat_qscheme schemes[] = {
        {.bits = 4, .symmetric = false, .gran = QAT_GRAN_TENSOR},
        {.bits = 4, .symmetric = false, .gran = QAT_GRAN_CHANNEL},
        {.bits = 3, .symmetric = true, .gran = QAT_GRAN_GROUP, .group = 4}};
    for (size_t k = 0; k < QAT_ARRAY_LEN(schemes); k++) {
        const qat_qscheme *s = &schemes[k];
        const int64_t ns = qat_qscheme_scale_count(s, ROWS, COLS);
        float scale[9], scale_ema[9];
        int32_t zero[9], zero_ema[9];
        qat_weight_qparams(w, ROWS, COLS, s, QAT_OBS_MINMAX, scale, zero);
        qat_weight_qparams(w, ROWS, COLS, s, QAT_OBS_EMA, scale_ema, zero_ema);
        cr_assert_arr_eq(scale, scale_ema, sizeof(float) * ns);
        cr_assert_arr_eq(zero, zero_ema, sizeof(int32_t) * ns);
        /* Element e's extremes, by the scale index of every element. */
        float lo[9], hi[9];
        for (int i = 0; i < 9; i++) lo[i] = INFINITY, hi[i] = -INFINITY;
        for (int r = 0; r < ROWS; r++)
            for (int c = 0; c < COLS; c++) {
                const int e = s->gran == QAT_GRAN_TENSOR ? 0 : s->gran == QAT_GRAN_CHANNEL ? r : r * 3 + c / 4;
                lo[e] = fminf(lo[e], w[r * COLS + c]), hi[e] = fmaxf(hi[e], w[r * COLS + c]);
            }
        for (int e = 0; e < ns; e++) {
            float se;
            int32_t ze;
            qat_qparams_from_range(lo[e], hi[e], s->bits, s->symmetric, &se, &ze);
            cr_assert(scale[e] == se && zero[e] == ze, "scheme %zu element %d", k, e);
        }
    }
}

/* Exact quantiles: 0 .. 10000 shuffled, 99.99 % -> 9999, 0.01 % -> 1. */
Test(observer, weight_percentile_is_exact)
{
    enum { N = 10001 };
    float *w = qat_xmalloc(2 * N * sizeof *w);
    test_rng rng = {9};
    for (int i = 0; i < N; i++) w[i] = (float)i, w[N + i] = (float)i - 5000.0f;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(test_rng_next(&rng) % (uint64_t)(i + 1));
        float t = w[i];
        w[i] = w[j], w[j] = t;
    }
    const qat_qscheme s = {.bits = 8, .symmetric = false, .gran = QAT_GRAN_CHANNEL, .group = 0};
    float scale[2], want_s;
    int32_t zero[2], want_z;
    qat_weight_qparams(w, 2, N, &s, QAT_OBS_PERCENTILE, scale, zero);
    qat_qparams_from_range(0.0f, 9999.0f, 8, false, &want_s, &want_z);
    cr_assert(fabsf(scale[0] - want_s) <= 1e-6f * want_s && zero[0] == want_z, "%g %d", scale[0], zero[0]);
    qat_qparams_from_range(-4999.0f, 4999.0f, 8, false, &want_s, &want_z);
    cr_assert(fabsf(scale[1] - want_s) <= 1e-6f * want_s && zero[1] == want_z, "%g %d", scale[1], zero[1]);
    free(w);
}

/* mse on the values themselves: never worse than min-max (its widest
 * candidate), clearly better on a row with an outlier. */
Test(observer, weight_mse_is_no_worse_than_minmax)
{
    enum { ROWS = 6, COLS = 300 };
    test_rng rng = {10};
    float *w = qat_xmalloc(ROWS * COLS * sizeof *w);
    for (int i = 0; i < ROWS * COLS; i++) w[i] = 0.05f * gaussian(&rng);
    w[2 * COLS + 17] = 1.0f; /* row 2: an outlier */
    const qat_qscheme schemes[] = {{.bits = 3, .symmetric = false, .gran = QAT_GRAN_CHANNEL, .group = 0}, {.bits = 4, .symmetric = true, .gran = QAT_GRAN_GROUP, .group = 64}};
    for (size_t k = 0; k < QAT_ARRAY_LEN(schemes); k++) {
        const qat_qscheme *s = &schemes[k];
        float sm[ROWS * 5], ss[ROWS * 5];
        int32_t zm[ROWS * 5], zs[ROWS * 5];
        qat_weight_qparams(w, ROWS, COLS, s, QAT_OBS_MINMAX, sm, zm);
        qat_weight_qparams(w, ROWS, COLS, s, QAT_OBS_MSE, ss, zs);
        uint8_t *codes = qat_xmalloc(ROWS * COLS);
        float *ym = qat_xmalloc(ROWS * COLS * sizeof *ym), *ys = qat_xmalloc(ROWS * COLS * sizeof *ys);
        qat_quantize_weight(w, ROWS, COLS, s, sm, zm, codes);
        qat_dequantize_weight(codes, ROWS, COLS, s, sm, zm, ym);
        qat_quantize_weight(w, ROWS, COLS, s, ss, zs, codes);
        qat_dequantize_weight(codes, ROWS, COLS, s, ss, zs, ys);
        for (int r = 0; r < ROWS; r++) {
            double em = 0, es = 0;
            for (int c = 0; c < COLS; c++) {
                const double a = w[r * COLS + c];
                em += (a - ym[r * COLS + c]) * (a - ym[r * COLS + c]);
                es += (a - ys[r * COLS + c]) * (a - ys[r * COLS + c]);
            }
            cr_assert(es <= em, "scheme %zu row %d: mse %g > minmax %g", k, r, es, em);
            if (r == 2 && s->gran == QAT_GRAN_CHANNEL)
                cr_assert(es < 0.9 * em, "scheme %zu: outlier row mse %g vs minmax %g", k, es, em);
        }
        free(codes), free(ym), free(ys);
    }
    free(w);
}
