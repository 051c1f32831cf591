/* Fake quantization: the CPU reference (ops/fake_quant.c) against PyTorch
 * and against each estimator's formula, and the device kernel
 * (shaders/fake_quant.comp through the real autograd) against the reference.
 *
 * What must be exact and what may not:
 * - Forward y and every dx are bit for bit: reference == PyTorch (fixtures
 *   from tests/golden/gen_fake_quant_fixtures.py, including exact .5 ties and
 *   values far outside the range), device == reference.
 * - d scale (LSQ) and d alpha (PACT) are sums, and each side sums the same
 *   float contributions t_i in its own fixed order: the reference
 *   sequentially, the device in strided per-invocation partial sums and a
 *   tree, PyTorch (tensor.sum) pairwise. Each is checked against the exact
 *   (double) sum of the t_i with the textbook bound for its order: a sum
 *   whose longest chain of additions is L is within L u sum|t_i| of exact
 *   (u = 2^-24), plus one rounding for the final product by grad_scale. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_ref.h"
#include "ops/ops_vk.h"
#include "tests/golden/fake_quant_fixtures.h"
#include "tests/test_util.h"

#define U 0x1p-24 /* unit roundoff of float */

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Counts elements whose bits differ, logging the first few. */
static size_t bit_mismatches(const char *what, const float *got, const float *want, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (!same_bits(got[i], want[i]) && bad++ < 5)
            cr_log_error("%s[%zu]: got %a, want %a", what, i, (double)got[i], (double)want[i]);
    return bad;
}

static void expect_bitwise(const char *what, const float *got, const float *want, size_t n)
{
    size_t bad = bit_mismatches(what, got, want, n);
    cr_expect_eq(bad, 0, "%s: %zu of %zu elements differ in their bits", what, bad, n);
}

/* ---- the formulas, written out from the comments in ops/ops.h ---------------- */

/* One element's contribution to d scale (before grad_scale) or d alpha. */
static float scale_term(const qat_fq_params *p, float x, float dy, float scale, float zero_point, float qmax)
{
    if (p->estimator == QAT_FQ_PACT) return x >= scale ? dy : 0.0f;
    float qmin = (float)p->qmin, s = scale, z = zero_point;
    float qf = z + nearbyintf(x * (1.0f / s));
    if (qf < qmin) return dy * (qmin - z);
    if (qf > qmax) return dy * (qmax - z);
    float y = (qf - z) * s;
    return dy * (y - x) / s;
}

typedef struct scale_sums {
    double *exact;     /* sum of the float terms in double: within ~n 2^-53 sum |terms|, negligible here */
    double *magnitude; /* sum of |terms| */
    int64_t *members;
    int64_t count;
} scale_sums;

/* qmax: per scale element, or NULL for p->qmax. */
static scale_sums scale_sums_of(const qat_fq_params *p, const float *x, const float *dy, size_t n,
                                const float *scale, const float *zero_point, const float *qmax)
{
    scale_sums s;
    s.count = qat_fq_scale_count(&p->layout, (int64_t)n);
    s.exact = calloc((size_t)s.count, sizeof(double));
    s.magnitude = calloc((size_t)s.count, sizeof(double));
    s.members = calloc((size_t)s.count, sizeof(int64_t));
    for (size_t i = 0; i < n; i++) {
        int64_t k = qat_fq_scale_index(&p->layout, (int64_t)i);
        float t = scale_term(p, x[i], dy[i], scale[k], zero_point ? zero_point[k] : 0.0f,
                             qmax ? qmax[k] : (float)p->qmax);
        s.exact[k] += t;
        s.magnitude[k] += fabs((double)t);
        s.members[k]++;
    }
    return s;
}

static void scale_sums_free(scale_sums *s) { free(s->exact), free(s->magnitude), free(s->members); }

/* ORDER_ANY covers every order (no chain of additions is longer than m - 1),
 * so also PyTorch's, whichever blocking its sum uses. */
typedef enum sum_order { ORDER_ANY, ORDER_DEVICE } sum_order;

/* The longest chain of roundings a sum of m terms goes through (see the
 * file comment). The device: each of up to 256 invocations adds
 * ceil(m / 256) terms, then at most 8 tree levels. */
static double chain_length(sum_order order, int64_t m)
{
    return order == ORDER_ANY ? (double)m : (double)((m + 255) / 256) + 8.0;
}

/* got[k] against grad_scale * exact[k]. extra_per_term: a relative error each
 * term may carry on top (PyTorch computes them differently). Returns the
 * largest error relative to grad_scale * sum |terms|. */
static double expect_scale_grad(const char *what, const float *got, const scale_sums *s, float grad_scale,
                                sum_order order, double extra_per_term)
{
    double worst = 0, g = fabs((double)grad_scale);
    for (int64_t k = 0; k < s->count; k++) {
        double want = s->exact[k] * grad_scale;
        double chain = chain_length(order, s->members[k]) + extra_per_term;
        /* Twice the first-order bound covers the second-order terms. */
        double tol = 2.0 * (chain * U * s->magnitude[k] + U * fabs(s->exact[k])) * g + 1e-30;
        double err = fabs((double)got[k] - want);
        if (s->magnitude[k] > 0) worst = fmax(worst, err / (s->magnitude[k] * g));
        cr_expect(err <= tol, "%s: scale %lld: got %.9g, want %.9g (error %.3g > bound %.3g, %lld members)", what,
                  (long long)k, (double)got[k], want, err, tol, (long long)s->members[k]);
    }
    return worst;
}

/* ---- layout helpers ------------------------------------------------------------- */

Test(fake_quant, layout_helpers_map_elements_to_scales)
{
    qat_fq_layout t = qat_fq_per_tensor(10);
    cr_expect_eq(qat_fq_scale_count(&t, 10), 1);
    for (int64_t i = 0; i < 10; i++) cr_expect_eq(qat_fq_scale_index(&t, i), 0);

    /* (2, 3, 4): channels 3 along axis 1, inner 4. */
    qat_fq_layout c = qat_fq_per_channel(3, 4);
    cr_expect_eq(qat_fq_scale_count(&c, 24), 3);
    const int64_t want_c[24] = { 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2 };
    for (int64_t i = 0; i < 24; i++)
        cr_expect_eq(qat_fq_scale_index(&c, i), want_c[i], "per channel, i = %lld", (long long)i);

    /* Rows of 10 in groups of 4: groups of 4, 4 and a short 2. */
    qat_fq_layout g = qat_fq_per_group(10, 4);
    cr_expect_eq(qat_fq_scale_count(&g, 30), 9);
    const int64_t at[][2] = { { 0, 0 }, { 3, 0 },  { 4, 1 },  { 7, 1 },  { 8, 2 },
                              { 9, 2 }, { 10, 3 }, { 19, 5 }, { 20, 6 }, { 29, 8 } };
    for (size_t j = 0; j < QAT_ARRAY_LEN(at); j++)
        cr_expect_eq(qat_fq_scale_index(&g, at[j][0]), at[j][1], "per group, i = %lld", (long long)at[j][0]);

    /* A group longer than the row: one short group per row. */
    qat_fq_layout wide = qat_fq_per_group(5, 8);
    cr_expect_eq(qat_fq_scale_count(&wide, 15), 3);
    cr_expect_eq(qat_fq_scale_index(&wide, 14), 2);
}

/* ---- reference against PyTorch --------------------------------------------------- */

static qat_fq_params fixture_params(const golden_fq_case *f, qat_fq_estimator estimator)
{
    return (qat_fq_params){ .qmin = f->qmin, .qmax = f->qmax, .layout = qat_fq_per_channel(f->channels, f->inner),
                            .estimator = estimator, .grad_scale = f->grad_factor };
}

Test(fake_quant, reference_forward_matches_pytorch_bit_for_bit)
{
    size_t total = 0;
    for (size_t c = 0; c < QAT_ARRAY_LEN(golden_fq_cases); c++) {
        const golden_fq_case *f = &golden_fq_cases[c];
        qat_fq_params p = fixture_params(f, f->dscale ? QAT_FQ_LSQ : QAT_FQ_STE_CLIPPED);
        float *y = malloc((size_t)f->numel * sizeof(float));
        qat_fake_quant_forward_ref(y, f->x, (size_t)f->numel, f->scale, f->zero_point, NULL, &p);
        char what[96];
        snprintf(what, sizeof what, "%s (%s) y", f->name, f->shape);
        expect_bitwise(what, y, f->y, (size_t)f->numel);
        total += (size_t)f->numel;
        free(y);
    }
    cr_log_info("reference forward bit-exact against PyTorch on %zu elements", total);
}

Test(fake_quant, reference_clipped_ste_gradient_matches_pytorch_bit_for_bit)
{
    for (size_t c = 0; c < QAT_ARRAY_LEN(golden_fq_cases); c++) {
        const golden_fq_case *f = &golden_fq_cases[c];
        /* The learnable op's dx is the clipped STE too (LSQ's dx). */
        qat_fq_params p = fixture_params(f, f->dscale ? QAT_FQ_LSQ : QAT_FQ_STE_CLIPPED);
        float *dx = malloc((size_t)f->numel * sizeof(float));
        qat_fake_quant_backward_ref(dx, NULL, f->dy, f->x, (size_t)f->numel, f->scale, f->zero_point, NULL, &p);
        char what[96];
        snprintf(what, sizeof what, "%s (%s) dx", f->name, f->shape);
        expect_bitwise(what, dx, f->dx, (size_t)f->numel);
        free(dx);
    }
}

/* PyTorch's learnable kernel computes each term as dy * (y - x) * (1/s) *
 * grad_factor, rounding four times where the reference rounds three times
 * and scales once at the end; so each of its terms may carry 4 u of its own
 * on top of the summation error. For these ~300-element sums the bound comes
 * to about 2e-5 of sum |terms|; the measured error is far below (logged). */
Test(fake_quant, reference_lsq_scale_gradient_matches_pytorch)
{
    double worst = 0;
    for (size_t c = 0; c < QAT_ARRAY_LEN(golden_fq_cases); c++) {
        const golden_fq_case *f = &golden_fq_cases[c];
        if (!f->dscale) continue;
        qat_fq_params p = fixture_params(f, QAT_FQ_LSQ);
        size_t n = (size_t)f->numel;
        float *dscale = malloc((size_t)f->channels * sizeof(float));
        qat_fake_quant_backward_ref(NULL, dscale, f->dy, f->x, n, f->scale, f->zero_point, NULL, &p);
        scale_sums s = scale_sums_of(&p, f->x, f->dy, n, f->scale, f->zero_point, NULL);
        char what[96];
        snprintf(what, sizeof what, "%s reference d scale", f->name);
        expect_scale_grad(what, dscale, &s, p.grad_scale, ORDER_ANY, 0);
        snprintf(what, sizeof what, "%s PyTorch d scale", f->name);
        expect_scale_grad(what, f->dscale, &s, p.grad_scale, ORDER_ANY, 4);
        /* And the two directly: both bounds together. */
        for (int64_t k = 0; k < s.count; k++) {
            double scale = s.magnitude[k] * (double)p.grad_scale;
            double err = fabs((double)dscale[k] - (double)f->dscale[k]);
            double tol = 2.0 * (2.0 * chain_length(ORDER_ANY, s.members[k]) + 4 + 2) * U * scale;
            worst = fmax(worst, err / scale);
            cr_expect(err <= tol, "%s scale %lld: reference %.9g, PyTorch %.9g", f->name, (long long)k,
                      (double)dscale[k], (double)f->dscale[k]);
        }
        scale_sums_free(&s);
        free(dscale);
    }
    cr_log_info("LSQ d scale: reference vs PyTorch, worst error %.3g relative to sum |terms|", worst);
}

/* ---- each estimator against its formula, on hand-picked points ------------------- */

/* s = 0.5 (1/s = 2 exactly), z = 2, codes 0..7: the range is [-1, 2.5].
 * Every value below is exact in float, so the expected numbers are too. */
static const float hand_x[] = { -3.0f, -1.75f, -1.25f, 0.75f, 2.25f, 2.625f, 2.75f, 3.25f, 100.0f };
/* 2x:                          -6     -3.5   -2.5   1.5   4.5   5.25  5.5   6.5   200
 * qf = 2 + roundEven(2x):      -4     -2     0      4     6     7     8     8     202
 * Ties decide both ends: -2.5 rounds to -2 (qf = qmin, inside) but -3.5 to -4
 * (below); 5.5 and 6.5 both round to 6 (qf = 8, above). */
static const float hand_y[] = { -1.0f, -1.0f, -1.0f, 1.0f, 2.0f, 2.5f, 2.5f, 2.5f, 2.5f };
static const bool hand_inside[] = { false, false, true, true, true, true, false, false, false };
/* LSQ term per unit dy: qmin - z = -2 below, (y - x) / s inside, qmax - z = 5 above. */
static const float hand_lsq[] = { -2.0f, -2.0f, 0.5f, 0.5f, -0.5f, -0.25f, 5.0f, 5.0f, 5.0f };
static const float hand_dy[] = { 1.0f, -2.0f, 4.0f, 8.0f, -16.0f, 32.0f, 64.0f, -128.0f, 256.0f };

Test(fake_quant, reference_estimators_follow_their_formulas_on_hand_picked_points)
{
    const size_t n = QAT_ARRAY_LEN(hand_x);
    const float scale = 0.5f, zero_point = 2.0f;
    for (int e = 0; e < QAT_FQ_PACT; e++) {
        qat_fq_params p = { .qmin = 0, .qmax = 7, .layout = qat_fq_per_tensor((int64_t)n),
                            .estimator = (qat_fq_estimator)e, .grad_scale = 0.25f };
        float y[QAT_ARRAY_LEN(hand_x)], dx[QAT_ARRAY_LEN(hand_x)], dscale = -1.0f;
        qat_fake_quant_forward_ref(y, hand_x, n, &scale, &zero_point, NULL, &p);
        qat_fake_quant_backward_ref(dx, &dscale, hand_dy, hand_x, n, &scale, &zero_point, NULL, &p);
        float want_dscale = 0.0f;
        for (size_t i = 0; i < n; i++) {
            cr_expect(same_bits(y[i], hand_y[i]), "estimator %d: y(%g) = %g, want %g", e, (double)hand_x[i],
                      (double)y[i], (double)hand_y[i]);
            float want_dx = e == QAT_FQ_STE || hand_inside[i] ? hand_dy[i] : 0.0f * hand_dy[i];
            cr_expect(same_bits(dx[i], want_dx), "estimator %d: dx at x = %g is %g, want %g", e, (double)hand_x[i],
                      (double)dx[i], (double)want_dx);
            want_dscale += hand_dy[i] * hand_lsq[i]; /* every partial sum is exact */
        }
        if (e == QAT_FQ_LSQ)
            cr_expect_eq(dscale, want_dscale * 0.25f, "LSQ d scale %g, want %g", (double)dscale,
                         (double)(want_dscale * 0.25f));
        else
            cr_expect_eq(dscale, -1.0f, "estimator %d has no scale gradient but wrote one", e);
    }
}

/* alpha = 2, 2 bits: s = 2/3 in float, 1/s rounds to exactly 1.5. */
Test(fake_quant, reference_pact_clips_then_quantizes_and_passes_gradients_by_range)
{
    const float x[] = { -1.0f, 0.0f, 1.0f, 1.9f, 2.0f, 5.0f };
    const float dy[] = { 1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f };
    const float alpha = 2.0f, s = 2.0f / 3.0f;
    cr_assert_eq(1.0f / s, 1.5f);
    /* codes: 0 (clipped), 0, 2 (tie 1.5 -> 2), 3 (2.85), 3 (x = alpha), 3 (clipped to alpha) */
    const float want_y[] = { 0.0f, 0.0f, 2.0f * s, 3.0f * s, 3.0f * s, 3.0f * s };
    const float want_dx[] = { 0.0f, 2.0f, 4.0f, 8.0f, 0.0f, 0.0f };
    qat_fq_params p = { .qmin = 0, .qmax = 3, .layout = qat_fq_per_tensor(6), .estimator = QAT_FQ_PACT };
    float y[6], dx[6], dalpha;
    qat_fake_quant_forward_ref(y, x, 6, &alpha, NULL, NULL, &p);
    qat_fake_quant_backward_ref(dx, &dalpha, dy, x, 6, &alpha, NULL, NULL, &p);
    for (int i = 0; i < 6; i++) {
        cr_expect(same_bits(y[i], want_y[i]), "y(%g) = %a, want %a", (double)x[i], (double)y[i], (double)want_y[i]);
        cr_expect(same_bits(dx[i], want_dx[i]), "dx at %g = %g, want %g", (double)x[i], (double)dx[i],
                  (double)want_dx[i]);
    }
    cr_expect_eq(dalpha, 16.0f + 32.0f, "d alpha = %g: dy where x >= alpha", (double)dalpha);
}

/* With dy = 1, d alpha counts the elements at or above their channel's alpha. */
Test(fake_quant, reference_pact_alpha_gradient_counts_clipped_elements)
{
    enum { C = 3, INNER = 50, N = 2 * C * INNER };
    test_rng rng = { 77 };
    float x[N], ones[N], alpha[C] = { 0.5f, 1.0f, 1.5f }, dalpha[C];
    test_fill(&rng, x, N, -1.0f, 2.0f);
    x[7] = alpha[0]; /* exactly at the clip: counted */
    for (int i = 0; i < N; i++) ones[i] = 1.0f;
    qat_fq_params p = { .qmin = 0, .qmax = 15, .layout = qat_fq_per_channel(C, INNER), .estimator = QAT_FQ_PACT };
    qat_fake_quant_backward_ref(NULL, dalpha, ones, x, N, alpha, NULL, NULL, &p);
    int count[C] = { 0 };
    for (int i = 0; i < N; i++) count[i / INNER % C] += x[i] >= alpha[i / INNER % C];
    for (int c = 0; c < C; c++) {
        cr_expect_eq(dalpha[c], (float)count[c], "channel %d: d alpha %g, %d elements clipped", c,
                     (double)dalpha[c], count[c]);
        cr_expect(count[c] > 0 && count[c] < 2 * INNER, "the data should clip some of channel %d, not all", c);
    }
}

/* ---- the device ------------------------------------------------------------------ */

typedef struct fq_input {
    const char *what;
    int ndim;
    int64_t shape[QAT_MAX_DIMS];
    qat_fq_params p;
    const float *x, *scale, *zero_point, *dy; /* zero_point NULL for PACT */
    const float *qmax;                        /* per scale element, or NULL */
} fq_input;

typedef struct fq_output {
    float *y, *dx, *dscale; /* dscale: NULL unless the scale learns */
} fq_output;

static void fq_output_free(fq_output *o) { free(o->y), free(o->dx), free(o->dscale); }

/* y = fake_quant(x) with x and (for LSQ / PACT) the scale trainable, loss =
 * sum(y * dy), so the gradients the graph computes are the backward with dy. */
static fq_output run_on_device(qat_ctx *ctx, const fq_input *in)
{
    qat_graph *g = qat_graph_create(ctx);
    int64_t n = qat_shape_numel(in->ndim, in->shape);
    int64_t count = qat_fq_scale_count(&in->p.layout, n);
    bool learned = in->p.estimator == QAT_FQ_LSQ || in->p.estimator == QAT_FQ_PACT;
    int x = qat_param(g, "x", in->ndim, in->shape, true);
    int scale = qat_param(g, "scale", 1, &count, learned);
    int zero_point = in->zero_point ? qat_param(g, "zero_point", 1, &count, false) : -1;
    int qmax = in->qmax ? qat_param(g, "qmax", 1, &count, false) : -1;
    int y = qat_fake_quant_ranged(g, x, scale, zero_point, qmax, &in->p);
    int r = qat_const(g, "r", in->ndim, in->shape, in->dy);
    qat_graph_mark_output(g, y);
    qat_graph_backward(g, qat_sum(g, qat_mul(g, y, r), -1));
    cr_assert_eq(qat_graph_compile(g), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(qat_tensor_write(g, x, in->x), QAT_OK);
    cr_assert_eq(qat_tensor_write(g, scale, in->scale), QAT_OK);
    if (zero_point >= 0) cr_assert_eq(qat_tensor_write(g, zero_point, in->zero_point), QAT_OK);
    if (qmax >= 0) cr_assert_eq(qat_tensor_write(g, qmax, in->qmax), QAT_OK);
    qat_seq *seq;
    cr_assert_eq(qat_seq_create(g, 0, qat_graph_node_count(g), &seq), QAT_OK);
    cr_assert_eq(qat_seq_run(seq), QAT_OK, "%s", qat_error_message());
    qat_seq_free(seq);
    fq_output o = { malloc((size_t)n * sizeof(float)), malloc((size_t)n * sizeof(float)), NULL };
    cr_assert_eq(qat_tensor_read(g, y, o.y), QAT_OK);
    cr_assert_eq(qat_tensor_read(g, qat_tensor_get(g, x)->grad, o.dx), QAT_OK);
    if (learned) {
        o.dscale = malloc((size_t)count * sizeof(float));
        cr_assert_eq(qat_tensor_read(g, qat_tensor_get(g, scale)->grad, o.dscale), QAT_OK);
    }
    qat_graph_free(g);
    return o;
}

/* Device against the reference: y and dx bit for bit, d scale within the
 * bound of the device's summation order. Returns the device's d scale error
 * relative to grad_scale * sum |terms| (0 without one). */
static double check_device(qat_ctx *ctx, const fq_input *in)
{
    double worst = 0;
    size_t n = (size_t)qat_shape_numel(in->ndim, in->shape);
    fq_output got = run_on_device(ctx, in);
    float *y = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    qat_fake_quant_forward_ref(y, in->x, n, in->scale, in->zero_point, in->qmax, &in->p);
    qat_fake_quant_backward_ref(dx, NULL, in->dy, in->x, n, in->scale, in->zero_point, in->qmax, &in->p);
    char what[160];
    snprintf(what, sizeof what, "%s y", in->what);
    expect_bitwise(what, got.y, y, n);
    snprintf(what, sizeof what, "%s dx", in->what);
    expect_bitwise(what, got.dx, dx, n);
    if (got.dscale) {
        scale_sums s = scale_sums_of(&in->p, in->x, in->dy, n, in->scale, in->zero_point, in->qmax);
        float *dscale = malloc((size_t)s.count * sizeof(float));
        qat_fake_quant_backward_ref(NULL, dscale, in->dy, in->x, n, in->scale, in->zero_point, in->qmax, &in->p);
        float g = in->p.estimator == QAT_FQ_LSQ ? in->p.grad_scale : 1.0f;
        snprintf(what, sizeof what, "%s device d scale", in->what);
        worst = expect_scale_grad(what, got.dscale, &s, g, ORDER_DEVICE, 0);
        snprintf(what, sizeof what, "%s reference d scale", in->what);
        expect_scale_grad(what, dscale, &s, g, ORDER_ANY, 0);
        scale_sums_free(&s);
        free(dscale);
    }
    free(y), free(dx);
    fq_output_free(&got);
    return worst;
}

Test(fake_quant, device_matches_pytorch_fixtures)
{
    qat_ctx *ctx = test_gpu_ctx();
    for (size_t c = 0; c < QAT_ARRAY_LEN(golden_fq_cases); c++) {
        const golden_fq_case *f = &golden_fq_cases[c];
        fq_input in = { .what = f->name, .ndim = 1, .shape = { f->numel },
                        .p = fixture_params(f, f->dscale ? QAT_FQ_LSQ : QAT_FQ_STE_CLIPPED),
                        .x = f->x, .scale = f->scale, .zero_point = f->zero_point, .dy = f->dy };
        fq_output got = run_on_device(ctx, &in);
        char what[96];
        snprintf(what, sizeof what, "device %s y", f->name);
        expect_bitwise(what, got.y, f->y, (size_t)f->numel);
        snprintf(what, sizeof what, "device %s dx", f->name);
        expect_bitwise(what, got.dx, f->dx, (size_t)f->numel);
        if (f->dscale) {
            scale_sums s = scale_sums_of(&in.p, f->x, f->dy, (size_t)f->numel, f->scale, f->zero_point, NULL);
            snprintf(what, sizeof what, "device %s d scale", f->name);
            expect_scale_grad(what, got.dscale, &s, f->grad_factor, ORDER_DEVICE, 0);
            scale_sums_free(&s);
        }
        fq_output_free(&got);
    }
    test_gpu_done(ctx);
}

typedef struct layout_case {
    const char *name;
    int ndim;
    int64_t shape[QAT_MAX_DIMS];
    qat_fq_layout layout;
} layout_case;

/* Random data: scales in [0.02, 0.3] (alpha in [0.5, 2] for PACT), integral
 * zero points anywhere in the code range, x spread well past the range on
 * both sides, dy never zero. */
static double check_random(qat_ctx *ctx, test_rng *rng, const layout_case *lc, qat_fq_estimator e, int32_t qmin,
                           int32_t qmax)
{
    size_t n = (size_t)qat_shape_numel(lc->ndim, lc->shape);
    size_t count = (size_t)qat_fq_scale_count(&lc->layout, (int64_t)n);
    float *x = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
    float *scale = malloc(count * sizeof(float)), *zp = malloc(count * sizeof(float));
    bool pact = e == QAT_FQ_PACT;
    test_fill(rng, scale, count, pact ? 0.5f : 0.02f, pact ? 2.0f : 0.3f);
    for (size_t k = 0; k < count; k++)
        zp[k] = (float)(qmin + (int32_t)(test_rng_next(rng) % (uint64_t)(qmax - qmin + 1)));
    float span = pact ? 3.0f : 0.3f * (float)(qmax - qmin);
    test_fill(rng, x, n, -span, span);
    test_fill(rng, dy, n, -1.0f, 1.0f);
    static const char *names[] = { "clipped STE", "STE", "LSQ", "PACT" };
    char what[160];
    snprintf(what, sizeof what, "%s %s q [%d, %d]", names[e], lc->name, qmin, qmax);
    fq_input in = { .what = what, .ndim = lc->ndim, .p = { qmin, qmax, lc->layout, e, 0.0f },
                    .x = x, .scale = scale, .zero_point = pact ? NULL : zp, .dy = dy };
    in.p.grad_scale = (float)(1.0 / sqrt((double)n * qmax));
    memcpy(in.shape, lc->shape, sizeof in.shape);
    double worst = check_device(ctx, &in);
    free(x), free(dy), free(scale), free(zp);
    return worst;
}

Test(fake_quant, device_matches_reference_for_every_estimator_and_layout)
{
    qat_ctx *ctx = test_gpu_ctx();
    test_rng rng = { 0x5eed };
    const layout_case layouts[] = {
        { "per tensor 1001", 1, { 1001 }, qat_fq_per_tensor(1001) },
        { "per tensor 37x29", 2, { 37, 29 }, qat_fq_per_tensor(37 * 29) },
        { "per channel axis 0 of 13x77", 2, { 13, 77 }, qat_fq_per_channel(13, 77) },
        { "per channel axis 1 of 3x5x7x9", 4, { 3, 5, 7, 9 }, qat_fq_per_channel(5, 63) },
        { "per channel axis 0 of 600x3 (short sums)", 2, { 600, 3 }, qat_fq_per_channel(600, 3) },
        { "groups of 16 in rows of 50 of 11x50", 2, { 11, 50 }, qat_fq_per_group(50, 16) },
        { "groups of 32 in rows of 10 of 7x10", 2, { 7, 10 }, qat_fq_per_group(10, 32) },
        { "groups of 300 in rows of 1000 of 3x1000", 2, { 3, 1000 }, qat_fq_per_group(1000, 300) },
    };
    const int32_t ranges[][2] = { { 0, 15 }, { 0, 255 }, { -8, 7 }, { 0, 3 } };
    double worst = 0;
    for (size_t l = 0; l < QAT_ARRAY_LEN(layouts); l++)
        for (int e = 0; e < QAT_FQ_ESTIMATOR_COUNT; e++) {
            const int32_t *r = ranges[(l + (size_t)e) % QAT_ARRAY_LEN(ranges)];
            /* PACT's codes start at 0. */
            qat_fq_estimator est = (qat_fq_estimator)e;
            worst = fmax(worst, check_random(ctx, &rng, &layouts[l], est, e == QAT_FQ_PACT ? 0 : r[0], r[1]));
        }
    cr_log_info("device d scale: worst error %.3g relative to sum |terms|", worst);
    test_gpu_done(ctx);
}

/* One scale over 200k elements: a single workgroup reduces it. */
Test(fake_quant, device_handles_a_per_tensor_scale_over_200k_elements)
{
    qat_ctx *ctx = test_gpu_ctx();
    test_rng rng = { 0xb16 };
    const layout_case big = { "per tensor 200003", 1, { 200003 }, qat_fq_per_tensor(200003) };
    double lsq = check_random(ctx, &rng, &big, QAT_FQ_LSQ, 0, 15);
    double pact = check_random(ctx, &rng, &big, QAT_FQ_PACT, 0, 255);
    cr_log_info("200003 elements: d scale error %.3g (LSQ), d alpha error %.3g (PACT), relative to sum |terms|", lsq,
                pact);
    test_gpu_done(ctx);
}

/* ---- the backward rule ----------------------------------------------------------- */

static int count_nodes(qat_graph *g, qat_op op)
{
    int count = 0;
    for (int i = 0; i < qat_graph_node_count(g); i++) count += qat_node_get(g, i)->op == op;
    return count;
}

/* Which gradient nodes appear, for each estimator and which inputs learn
 * (built only, never compiled: no device needed). */
Test(fake_quant, backward_rule_adds_only_the_gradients_that_are_needed)
{
    for (int e = 0; e < QAT_FQ_ESTIMATOR_COUNT; e++)
        for (int x_learns = 0; x_learns < 2; x_learns++)
            for (int scale_learns = 0; scale_learns < 2; scale_learns++) {
                if (!x_learns && !scale_learns) continue; /* nothing to differentiate */
                qat_graph *g = qat_graph_create(NULL);
                int64_t n = 12, one = 1;
                int x = qat_param(g, "x", 1, &n, x_learns);
                int scale = qat_param(g, "scale", 1, &one, scale_learns);
                int zp = e == QAT_FQ_PACT ? -1 : qat_param(g, "zero_point", 1, &one, false);
                qat_fq_params p = { 0, 15, qat_fq_per_tensor(n), (qat_fq_estimator)e, 0.5f };
                int y = qat_fake_quant(g, x, scale, zp, &p);
                qat_graph_backward(g, qat_sum(g, y, -1));
                bool learned = e == QAT_FQ_LSQ || e == QAT_FQ_PACT;
                int want_dx = x_learns && e != QAT_FQ_STE; /* plain STE passes dy itself on */
                int want_dscale = scale_learns && learned;
                cr_expect_eq(count_nodes(g, QAT_OP_FAKE_QUANT_BACK), want_dx,
                             "estimator %d, x %d, scale %d: dx nodes", e, x_learns, scale_learns);
                cr_expect_eq(count_nodes(g, QAT_OP_FAKE_QUANT_BACK_SCALE), want_dscale,
                             "estimator %d, x %d, scale %d: d scale nodes", e, x_learns, scale_learns);
                if (x_learns) cr_expect_geq(qat_tensor_get(g, x)->grad, 0);
                qat_graph_free(g);
            }
}

/* A code range per scale element (a weight whose rows have their own
 * widths): the reference equals the scalar-qmax reference run on each scale
 * element's members, and the device matches it: y and dx bit for bit, d
 * scale within its summation bound, per channel and per group. */
Test(fake_quant, per_scale_code_ranges_match_each_row_alone_and_the_device)
{
    qat_ctx *ctx = test_gpu_ctx();
    test_rng rng = { 0xb175 };
    const layout_case layouts[] = {
        { "per channel axis 0 of 13x77", 2, { 13, 77 }, qat_fq_per_channel(13, 77) },
        { "groups of 16 in rows of 50 of 11x50", 2, { 11, 50 }, qat_fq_per_group(50, 16) },
    };
    const qat_fq_estimator estimators[] = { QAT_FQ_STE_CLIPPED, QAT_FQ_STE, QAT_FQ_LSQ };
    for (size_t l = 0; l < QAT_ARRAY_LEN(layouts); l++)
        for (size_t e = 0; e < QAT_ARRAY_LEN(estimators); e++) {
            const layout_case *lc = &layouts[l];
            const int64_t rows = lc->shape[0], cols = lc->shape[1];
            size_t n = (size_t)(rows * cols), count = (size_t)qat_fq_scale_count(&lc->layout, (int64_t)n);
            float *x = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
            float *scale = malloc(count * sizeof(float)), *zp = malloc(count * sizeof(float));
            float *qmax = malloc(count * sizeof(float));
            test_fill(&rng, scale, count, 0.02f, 0.3f);
            test_fill(&rng, x, n, -4.0f, 4.0f);
            test_fill(&rng, dy, n, -1.0f, 1.0f);
            for (size_t k = 0; k < count; k++) {
                /* Widths 2..8 by row: every scale element of a row shares it. */
                const int64_t row = (int64_t)k / ((int64_t)count / rows);
                qmax[k] = (float)((1 << (2 + row % 7)) - 1);
                zp[k] = (float)(test_rng_next(&rng) % (uint64_t)(qmax[k] + 1));
            }
            qat_fq_params p = { .qmin = 0, .qmax = 255, .layout = lc->layout, .estimator = estimators[e] };
            p.grad_scale = (float)(1.0 / sqrt((double)n * 255));
            /* Row by row with that row's qmax as the scalar range. */
            float *y = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
            float *dscale = malloc(count * sizeof(float));
            qat_fake_quant_forward_ref(y, x, n, scale, zp, qmax, &p);
            qat_fake_quant_backward_ref(dx, dscale, dy, x, n, scale, zp, qmax, &p);
            const size_t per_row = count / (size_t)rows;
            for (int64_t r = 0; r < rows; r++) {
                qat_fq_params pr = p;
                pr.qmax = (int32_t)qmax[(size_t)r * per_row];
                pr.layout = lc->layout.group ? lc->layout : qat_fq_per_channel(1, cols);
                float yr[77], dxr[77], dsr[4];
                const size_t at = (size_t)(r * cols), k0 = (size_t)r * per_row;
                qat_fake_quant_forward_ref(yr, x + at, (size_t)cols, scale + k0, zp + k0, NULL, &pr);
                qat_fake_quant_backward_ref(dxr, dsr, dy + at, x + at, (size_t)cols, scale + k0, zp + k0, NULL, &pr);
                cr_assert_arr_eq(yr, y + at, (size_t)cols * sizeof(float), "%s row %lld y", lc->name, (long long)r);
                cr_assert_arr_eq(dxr, dx + at, (size_t)cols * sizeof(float), "%s row %lld dx", lc->name, (long long)r);
                if (p.estimator == QAT_FQ_LSQ)
                    cr_assert_arr_eq(dsr, dscale + k0, per_row * sizeof(float), "%s row %lld d scale", lc->name,
                                     (long long)r);
            }
            char what[160];
            snprintf(what, sizeof what, "ranged estimator %d %s", (int)estimators[e], lc->name);
            fq_input in = { .what = what, .ndim = 2, .p = p, .x = x, .scale = scale, .zero_point = zp, .dy = dy,
                            .qmax = qmax };
            memcpy(in.shape, lc->shape, sizeof in.shape);
            check_device(ctx, &in);
            free(x), free(dy), free(scale), free(zp), free(qmax), free(y), free(dx), free(dscale);
        }
    test_gpu_done(ctx);
}
