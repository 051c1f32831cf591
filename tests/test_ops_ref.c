/* Tests of the CPU reference ops (ops/ops_ref.h): hand-computed cases,
 * finite-difference checks of every backward on random shapes, cross-checks
 * between ops, and PyTorch fixtures (tests/golden/ops_ref_fixtures.h, written
 * by tests/golden/gen_ops_ref_fixtures.py; no Python is needed to run these).
 *
 * Finite differences: the ops are float, so each loss evaluation runs the op
 * in float, but the loss L = sum_i r_i y_i (r random, fixed) is accumulated in
 * double and the central difference (L(x+h) - L(x-h)) / (x+h - (x-h)) is
 * taken in double with the step actually realised in float. The backward then
 * gets dy = r, so its result must equal dL/dx. All tolerances are of the form
 * |analytic - numeric| <= atol + rtol |numeric|; each op's step and tolerance
 * are justified where the check is made. For the ops that are linear in the
 * perturbed input (matmul, bias_add, mul, reduce, conv2d, and relu/maxpool
 * away from their kinks) the central difference has no truncation error, so
 * the step is large (0.25) and only float rounding of the outputs remains:
 * at most K 2^-24 sum|terms| per output of K terms (worst case), typically
 * ~sqrt(K) 2^-24 |terms|, divided by 2h = 0.5. With the small random shapes
 * used here that is below 1e-6 (measured), so 1e-5 (1e-4 for conv2d, whose
 * outputs have up to 27 terms and whose weights move up to 98 outputs) leaves
 * a margin of 10 or more while a wrong index, transpose, stride or padding
 * gives errors of 1e-2 or more (all data has |v| >= 1e-2). The seeds are
 * fixed, so these checks are deterministic.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_ref.h"
#include "qat/common.h"
#include "tests/golden/ops_ref_fixtures.h"

/* ---- test data: a local xorshift64* generator ------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [-1, 1) on a grid of 2^-23: exact in float. */
static float rng_uniform(uint64_t *s) { return (float)(rng_next(s) >> 40) * 0x1p-23f - 1.0f; }

/* Uniform in [lo, hi]. */
static size_t rng_range(uint64_t *s, size_t lo, size_t hi) { return lo + (size_t)(rng_next(s) % (hi - lo + 1)); }

/* Random values in [-1, 1) with |v| >= min_abs: never zero, so no product or
 * mask in an op can hide a wrong index behind a zero. */
static void fill_random(float *x, size_t n, uint64_t *s, float min_abs)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        do v = rng_uniform(s);
        while (fabsf(v) < min_abs);
        x[i] = v;
    }
}

static float *random_array(size_t n, uint64_t *s, float min_abs)
{
    float *x = qat_xmalloc(n * sizeof *x);
    fill_random(x, n, s, min_abs);
    return x;
}

static float *zeros(size_t n) { return qat_xcalloc(n, sizeof(float)); }

static double dot_d(const float *a, const float *b, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += (double)a[i] * (double)b[i];
    return acc;
}

/* ---- finite differences ------------------------------------------------------ */

typedef double (*loss_fn)(void *ctx);

/* num[j] = dL/dx[j] by central differences of step h, in double, dividing by
 * the step float actually realised. */
static void numeric_grad(double *num, float *x, size_t n, float h, loss_fn loss, void *ctx)
{
    for (size_t j = 0; j < n; j++) {
        float x0 = x[j];
        x[j] = x0 + h;
        double xp = x[j], lp = loss(ctx);
        x[j] = x0 - h;
        double xm = x[j], lm = loss(ctx);
        x[j] = x0;
        num[j] = (lp - lm) / (xp - xm);
    }
}

static void expect_close(const char *what, const float *got, const double *want, size_t n,
                         double rtol, double atol)
{
    size_t bad = 0;
    double worst = 0.0;
    for (size_t j = 0; j < n; j++) {
        double err = fabs((double)got[j] - want[j]);
        double tol = atol + rtol * fabs(want[j]);
        if (err > worst) worst = err;
        if (!(err <= tol) && bad++ < 5)
            cr_log_error("%s[%zu]: got %.9g, want %.9g (err %.3g, tol %.3g)", what, j,
                         (double)got[j], want[j], err, tol);
    }
    cr_assert(bad == 0, "%s: %zu of %zu elements out of tolerance (max err %.3g)", what, bad, n, worst);
}

/* Checks analytic gradient `an` of x against finite differences. */
static void check_grad(const char *what, const float *an, float *x, size_t n, float h, loss_fn loss,
                       void *ctx, double rtol, double atol)
{
    double *num = qat_xmalloc((n ? n : 1) * sizeof *num);
    numeric_grad(num, x, n, h, loss, ctx);
    expect_close(what, an, num, n, rtol, atol);
    free(num);
}

static void expect_floats_eq(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t j = 0; j < n; j++)
        cr_assert(got[j] == want[j], "%s[%zu]: got %.9g, want %.9g", what, j, (double)got[j], (double)want[j]);
}

static void expect_floats_near(const char *what, const float *got, const float *want, size_t n,
                               double rtol, double atol)
{
    double *w = qat_xmalloc((n ? n : 1) * sizeof *w);
    for (size_t j = 0; j < n; j++) w[j] = want[j];
    expect_close(what, got, w, n, rtol, atol);
    free(w);
}

/* Float summation bound: a sum of K terms in any order is within
 * K * 2^-24 * sum|terms| (to first order) of the exact sum, so two orders differ
 * by at most twice that. `abs_sum` is sum|terms| per element. */
static void expect_within_sum_bound(const char *what, const float *got, const float *want,
                                    const float *abs_sum, size_t n, size_t terms)
{
    for (size_t j = 0; j < n; j++) {
        double tol = 2.0 * (double)terms * 0x1p-24 * (double)abs_sum[j] + 1e-30;
        double err = fabs((double)got[j] - (double)want[j]);
        cr_assert(err <= tol, "%s[%zu]: got %.9g, want %.9g (err %.3g > bound %.3g)", what, j,
                  (double)got[j], (double)want[j], err, tol);
    }
}

static float *abs_copy(const float *x, size_t n)
{
    float *y = qat_xmalloc((n ? n : 1) * sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = fabsf(x[i]);
    return y;
}

/* ---- matmul ----------------------------------------------------------------- */

/* Stores a logical (rows, cols) matrix `src` into dst, transposed if asked. */
static void store(float *dst, const float *src, size_t rows, size_t cols, bool transposed)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) dst[transposed ? j * rows + i : i * cols + j] = src[i * cols + j];
}

Test(ops_ref, matmul_hand_2x3_by_3x2)
{
    const float a[] = {1, 2, 3, 4, 5, 6};       /* (2, 3) */
    const float b[] = {7, 8, 9, 10, 11, 12};    /* (3, 2) */
    const float want_c[] = {58, 64, 139, 154}; /* 1*7+2*9+3*11 = 58, ... */
    /* dC = ones: dA = ones (2,2) B^T = row sums of B in each row; dB = A^T
     * ones (2,2) = column sums of A in each column. */
    const float want_da[] = {15, 19, 23, 15, 19, 23};
    const float want_db[] = {5, 5, 7, 7, 9, 9};
    const float dc[] = {1, 1, 1, 1};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            qat_matmul_dims d = {.batch = 1, .m = 2, .n = 2, .k = 3, .trans_a = ta, .trans_b = tb};
            float sa[6], sb[6], c[4], da[6], db[6], la[6], lb[6];
            store(sa, a, 2, 3, ta);
            store(sb, b, 3, 2, tb);
            qat_matmul_forward_ref(c, sa, sb, &d);
            expect_floats_eq("c", c, want_c, 4);
            qat_matmul_backward_ref(da, db, dc, sa, sb, &d, false);
            /* The gradients come back in the operands' storage layout. */
            store(la, want_da, 2, 3, ta);
            store(lb, want_db, 3, 2, tb);
            expect_floats_eq("da", da, la, 6);
            expect_floats_eq("db", db, lb, 6);
            /* accumulate adds to what is there. */
            qat_matmul_backward_ref(da, NULL, dc, sa, sb, &d, true);
            for (int i = 0; i < 6; i++) cr_assert(da[i] == 2 * la[i]);
        }
}

Test(ops_ref, matmul_hand_broadcast_and_batch)
{
    /* Batch of 2 with the same A (stride 0): A = [[1, 2]], B_0 = [[1], [1]],
     * B_1 = [[3], [-1]]. C = [[3]], [[1]]. dC = [[1]], [[2]]: dA = 1 * B_0^T + 2
     * * B_1^T = [[7, -1]] summed over the batch; dB_b = A^T dC_b. */
    const float a[] = {1, 2}, b[] = {1, 1, 3, -1}, dc[] = {1, 2};
    qat_matmul_dims d = {.batch = 2, .m = 1, .n = 1, .k = 2, .stride_a = 0, .stride_b = 2};
    cr_assert_eq(qat_matmul_a_span(&d), 2);
    cr_assert_eq(qat_matmul_b_span(&d), 4);
    float c[2], da[2], db[4];
    qat_matmul_forward_ref(c, a, b, &d);
    cr_assert(c[0] == 3 && c[1] == 1);
    qat_matmul_backward_ref(da, db, dc, a, b, &d, false);
    cr_assert(da[0] == 7 && da[1] == -1, "da = %g %g", (double)da[0], (double)da[1]);
    cr_assert(db[0] == 1 && db[1] == 2 && db[2] == 2 && db[3] == 4);
}

typedef struct mm_ctx {
    const qat_matmul_dims *d;
    float *a, *b, *c, *r;
} mm_ctx;

static double mm_loss(void *p)
{
    mm_ctx *x = p;
    qat_matmul_forward_ref(x->c, x->a, x->b, x->d);
    return dot_d(x->c, x->r, x->d->batch * x->d->m * x->d->n);
}

/* Every transpose combination, broadcast A or B, strides with gaps, random
 * sizes including 1. Linear: step 0.25. An output sums k <= 6 products of
 * values <= 1 (worst-case rounding 6 * 2^-24 * 6 ~ 2e-6) and one input moves
 * <= 4 outputs (12 with a broadcast operand), so the worst-case gradient
 * noise is ~1e-5 / 0.5 and the typical one ~1e-7. Tolerance 1e-5 + 1e-5
 * relative (see the top of the file). */
Test(ops_ref, matmul_grad_random)
{
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    for (int trial = 0; trial < 48; trial++) {
        qat_matmul_dims d = {
            .batch = rng_range(&s, 1, 3),
            .m = rng_range(&s, 1, 4),
            .n = rng_range(&s, 1, 4),
            .k = rng_range(&s, 1, 6),
            .trans_a = trial & 1,
            .trans_b = (trial >> 1) & 1,
        };
        int mode = (trial >> 2) % 4; /* 0 dense, 1 A broadcast, 2 B broadcast, 3 gaps */
        d.stride_a = mode == 1 ? 0 : d.m * d.k + (mode == 3 ? 2 : 0);
        d.stride_b = mode == 2 ? 0 : d.k * d.n + (mode == 3 ? 3 : 0);
        size_t na = qat_matmul_a_span(&d), nb = qat_matmul_b_span(&d), nc = d.batch * d.m * d.n;
        float *a = random_array(na, &s, 1e-2f), *b = random_array(nb, &s, 1e-2f);
        float *r = random_array(nc, &s, 1e-2f), *c = zeros(nc);
        /* Gap elements are never read, so their gradient must stay as it was:
         * start from zero, which is also their numeric gradient. */
        float *da = zeros(na), *db = zeros(nb);
        qat_matmul_backward_ref(da, db, r, a, b, &d, false);
        mm_ctx ctx = {&d, a, b, c, r};
        check_grad("matmul da", da, a, na, 0.25f, mm_loss, &ctx, 1e-5, 1e-5);
        check_grad("matmul db", db, b, nb, 0.25f, mm_loss, &ctx, 1e-5, 1e-5);

        /* accumulate == old + fresh, bit for bit (one float add). */
        float *da2 = random_array(na, &s, 1e-2f), *db2 = random_array(nb, &s, 1e-2f);
        float *da_old = qat_xmalloc(na * sizeof *da_old), *db_old = qat_xmalloc(nb * sizeof *db_old);
        memcpy(da_old, da2, na * sizeof *da2);
        memcpy(db_old, db2, nb * sizeof *db2);
        qat_matmul_backward_ref(da2, db2, r, a, b, &d, true);
        for (size_t i = 0; i < na; i++) cr_assert(da2[i] == da_old[i] + da[i]);
        for (size_t i = 0; i < nb; i++) cr_assert(db2[i] == db_old[i] + db[i]);
        /* NULL gradients are skipped. */
        memset(db_old, 0, nb * sizeof *db_old);
        qat_matmul_backward_ref(NULL, db_old, r, a, b, &d, false);
        expect_floats_eq("db alone", db_old, db, nb);

        free(a), free(b), free(r), free(c), free(da), free(db);
        free(da2), free(db2), free(da_old), free(db_old);
    }
}

/* ---- bias_add ----------------------------------------------------------------- */

Test(ops_ref, bias_add_hand)
{
    /* (outer 2, channels 2, inner 3) */
    const float x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, bias[] = {100, -100};
    const float want[] = {101, 102, 103, -96, -95, -94, 107, 108, 109, -90, -89, -88};
    float y[12], dx[12], db[2];
    qat_bias_add_forward_ref(y, x, bias, 2, 2, 3);
    expect_floats_eq("y", y, want, 12);
    /* dbias[c] = sum of dy over o and i for channel c: with dy = x, channel 0
     * collects 1+2+3+7+8+9 = 30 and channel 1 collects 4+5+6+10+11+12 = 48. */
    qat_bias_add_backward_ref(dx, db, x, 2, 2, 3);
    expect_floats_eq("dx", dx, x, 12);
    cr_assert(db[0] == 30 && db[1] == 48);
    /* In place, and without dx. */
    memcpy(y, x, sizeof y);
    qat_bias_add_forward_ref(y, y, bias, 2, 2, 3);
    expect_floats_eq("y in place", y, want, 12);
    qat_bias_add_backward_ref(NULL, db, x, 2, 2, 3);
    cr_assert(db[0] == 30 && db[1] == 48);
}

typedef struct ba_ctx {
    size_t outer, channels, inner;
    float *x, *bias, *y, *r;
} ba_ctx;

static double ba_loss(void *p)
{
    ba_ctx *c = p;
    qat_bias_add_forward_ref(c->y, c->x, c->bias, c->outer, c->channels, c->inner);
    return dot_d(c->y, c->r, c->outer * c->channels * c->inner);
}

/* Linear; step 0.25. One x moves one output (rounding 2^-24 * 2); one bias
 * moves <= 24 outputs and its analytic gradient sums <= 24 terms, typically
 * ~sqrt(24) 2^-24 ~ 3e-7 off. Tolerance 1e-5 + 1e-5 relative. */
Test(ops_ref, bias_add_grad_random)
{
    uint64_t s = 12345;
    for (int trial = 0; trial < 20; trial++) {
        ba_ctx c = {rng_range(&s, 1, 4), rng_range(&s, 1, 4), rng_range(&s, 1, 6), 0, 0, 0, 0};
        size_t n = c.outer * c.channels * c.inner;
        c.x = random_array(n, &s, 1e-2f), c.bias = random_array(c.channels, &s, 1e-2f);
        c.y = zeros(n), c.r = random_array(n, &s, 1e-2f);
        float *dx = zeros(n), *db = zeros(c.channels);
        qat_bias_add_backward_ref(dx, db, c.r, c.outer, c.channels, c.inner);
        check_grad("bias_add dx", dx, c.x, n, 0.25f, ba_loss, &c, 1e-5, 1e-5);
        check_grad("bias_add dbias", db, c.bias, c.channels, 0.25f, ba_loss, &c, 1e-5, 1e-5);
        free(c.x), free(c.bias), free(c.y), free(c.r), free(dx), free(db);
    }
}

/* ---- mul ---------------------------------------------------------------------- */

typedef struct ew_ctx {
    size_t n;
    float *a, *b, *y, *r;
} ew_ctx;

static double mul_loss(void *p)
{
    ew_ctx *c = p;
    qat_mul_forward_ref(c->y, c->a, c->b, c->n);
    return dot_d(c->y, c->r, c->n);
}

/* Linear in each operand; step 0.25; one output moves, rounding ~2^-24:
 * tolerance 1e-5 + 1e-5 relative. */
Test(ops_ref, mul_hand_and_grad)
{
    const float a[] = {2, -3}, b[] = {0.5f, 4}, dy[] = {1, 10};
    float y[2], da[2], db[2];
    qat_mul_forward_ref(y, a, b, 2);
    cr_assert(y[0] == 1 && y[1] == -12);
    qat_mul_backward_ref(da, db, dy, a, b, 2);
    cr_assert(da[0] == 0.5f && da[1] == 40 && db[0] == 2 && db[1] == -30);

    uint64_t s = 777;
    ew_ctx c = {37, 0, 0, 0, 0};
    c.a = random_array(c.n, &s, 1e-2f), c.b = random_array(c.n, &s, 1e-2f);
    c.y = zeros(c.n), c.r = random_array(c.n, &s, 1e-2f);
    float *ga = zeros(c.n), *gb = zeros(c.n);
    qat_mul_backward_ref(ga, gb, c.r, c.a, c.b, c.n);
    check_grad("mul da", ga, c.a, c.n, 0.25f, mul_loss, &c, 1e-5, 1e-5);
    check_grad("mul db", gb, c.b, c.n, 0.25f, mul_loss, &c, 1e-5, 1e-5);
    /* Outputs may alias inputs: da written over a, db over b. */
    float *a2 = qat_xmalloc(c.n * sizeof *a2), *b2 = qat_xmalloc(c.n * sizeof *b2);
    memcpy(a2, c.a, c.n * sizeof *a2);
    memcpy(b2, c.b, c.n * sizeof *b2);
    qat_mul_backward_ref(a2, b2, c.r, a2, b2, c.n);
    expect_floats_eq("da aliased", a2, ga, c.n);
    expect_floats_eq("db aliased", b2, gb, c.n);
    free(c.a), free(c.b), free(c.y), free(c.r), free(ga), free(gb), free(a2), free(b2);
}

/* ---- relu --------------------------------------------------------------------- */

Test(ops_ref, relu_hand_kink_and_nan)
{
    const float x[] = {-2, -0.0f, 0, 3, NAN}, dy[] = {1, 2, 3, 4, 5};
    float y[5], dx[5], dx2[5];
    qat_relu_forward_ref(y, x, 5);
    cr_assert(y[0] == 0 && y[1] == 0 && y[2] == 0 && y[3] == 3);
    cr_assert(!signbit(y[1]), "relu(-0) is +0, as PyTorch's threshold");
    cr_assert(isnan(y[4]), "NaN propagates");
    /* At the kink x == 0 the gradient is 0 (PyTorch's choice). */
    qat_relu_backward_ref(dx, dy, x, 4);
    cr_assert(dx[0] == 0 && dx[1] == 0 && dx[2] == 0 && dx[3] == 4);
    qat_relu_backward_from_y_ref(dx2, dy, y, 4);
    expect_floats_eq("from y", dx2, dx, 4);
}

static double relu_loss(void *p)
{
    ew_ctx *c = p;
    qat_relu_forward_ref(c->y, c->a, c->n);
    return dot_d(c->y, c->r, c->n);
}

/* Inputs are drawn with |x| >= 0.05 and the step is 2^-6 < 0.05, so no
 * difference straddles the kink at 0 and the function is linear on each
 * side: only float noise (one output, ~2^-24) remains. Tolerance 1e-5. */
Test(ops_ref, relu_grad_random)
{
    uint64_t s = 4242;
    ew_ctx c = {64, 0, 0, 0, 0};
    c.a = random_array(c.n, &s, 0.05f), c.y = zeros(c.n), c.r = random_array(c.n, &s, 1e-2f);
    float *dx = zeros(c.n), *dx2 = zeros(c.n), *y = zeros(c.n);
    qat_relu_backward_ref(dx, c.r, c.a, c.n);
    check_grad("relu dx", dx, c.a, c.n, 0x1p-6f, relu_loss, &c, 1e-5, 1e-5);
    qat_relu_forward_ref(y, c.a, c.n);
    qat_relu_backward_from_y_ref(dx2, c.r, y, c.n);
    expect_floats_eq("relu from y", dx2, dx, c.n);
    free(c.a), free(c.y), free(c.r), free(dx), free(dx2), free(y);
}

/* ---- gelu --------------------------------------------------------------------- */

Test(ops_ref, gelu_hand)
{
    /* gelu(x) = x Phi(x), gelu'(x) = Phi(x) + x phi(x); values from double
     * erf/erfc. Phi(1) = 0.8413447460685429, phi(1) = 0.24197072451914337.
     * Tolerance: a few float ulps relative, plus 1e-7 absolute because the
     * float 1 + erf(x / sqrt 2) cannot resolve Phi below ~6e-8 (at x = -6 it
     * is 0 and so is y, as in PyTorch; the exact y is -5.9e-9). */
    const float x[] = {0, 1, -1, 3, -6};
    const double want_y[] = {0, 0.8413447460685429, -0.15865525393145707, 2.99595030590511,
                             -5.919525870226207e-09};
    const double want_dx[] = {0.5, 1.0833154705876864, -0.08331547058768629, 1.011945647204184,
                              -3.5468709453902015e-08};
    const float dy[] = {1, 1, 1, 1, 1};
    float y[5], dx[5];
    qat_gelu_forward_ref(y, x, 5);
    qat_gelu_backward_ref(dx, dy, x, 5);
    expect_close("gelu y", y, want_y, 5, 4e-7, 1e-7);
    expect_close("gelu dx", dx, want_dx, 5, 4e-7, 1e-7);
}

static double gelu_loss(void *p)
{
    ew_ctx *c = p;
    qat_gelu_forward_ref(c->y, c->a, c->n);
    return dot_d(c->y, c->r, c->n);
}

/* Smooth, so the step balances truncation against noise: with h = 2^-7 the
 * truncation error h^2 |gelu'''| / 6 is < 1e-5 (|gelu'''| < 0.6 for all x),
 * and float rounding of y (<= 2^-24 * 4 for |x| <= 4, plus erff's ulp) over
 * 2h = 2^-6 gives < 3e-5. Tolerance 1e-4 + 1e-4 relative. */
Test(ops_ref, gelu_grad_random)
{
    uint64_t s = 99;
    ew_ctx c = {80, 0, 0, 0, 0};
    c.a = random_array(c.n, &s, 1e-2f), c.y = zeros(c.n), c.r = random_array(c.n, &s, 1e-2f);
    for (size_t i = 0; i < c.n; i++) c.a[i] *= 4.0f; /* cover the tails too */
    float *dx = zeros(c.n);
    qat_gelu_backward_ref(dx, c.r, c.a, c.n);
    check_grad("gelu dx", dx, c.a, c.n, 0x1p-7f, gelu_loss, &c, 1e-4, 1e-4);
    free(c.a), free(c.y), free(c.r), free(dx);
}

/* PyTorch's CPU GELU uses its own vectorised erf, ours libm's erff; both are
 * within ~1 ulp (2^-23 near |erf| = 1) of the truth. 1 + erf cancels for
 * negative x, so an erf difference e moves y = 0.5 x (1 + erf) by 0.5 |x| e
 * and dx by 0.5 |dy| e in absolute terms whatever the size of y: the
 * tolerance is that (e = 2 * 2^-23 for the two implementations) plus 1e-6
 * relative for the remaining few roundings. */
Test(ops_ref, gelu_vs_pytorch)
{
    size_t n = GOLDEN_GELU_N;
    float *y = zeros(n), *dx = zeros(n);
    qat_gelu_forward_ref(y, golden_gelu_x, n);
    qat_gelu_backward_ref(dx, golden_gelu_dy, golden_gelu_x, n);
    for (size_t i = 0; i < n; i++) {
        double x = golden_gelu_x[i], dy = golden_gelu_dy[i];
        double tol_y = 0.5 * fabs(x) * 0x1p-22 + 1e-6 * fabs((double)golden_gelu_y[i]);
        double tol_dx = 0.5 * fabs(dy) * 0x1p-22 + 1e-6 * fabs((double)golden_gelu_dx[i]);
        cr_assert(fabs((double)y[i] - golden_gelu_y[i]) <= tol_y, "gelu y vs torch at x = %.9g: %.9g vs %.9g",
                  x, (double)y[i], (double)golden_gelu_y[i]);
        cr_assert(fabs((double)dx[i] - golden_gelu_dx[i]) <= tol_dx, "gelu dx vs torch at x = %.9g: %.9g vs %.9g",
                  x, (double)dx[i], (double)golden_gelu_dx[i]);
    }
    free(y), free(dx);
}

/* qat_erf_approx promises max |error| <= 2e-7 everywhere (measured 1.4e-7).
 * Checked against both the exact erf (libm's double erf, good to ~1e-16) and
 * erff: a dense grid over [-6, 6], every float in [0.5, 1) (where the error
 * peaks: the switch at 0.75 and 1 - erfc with erfc ~ 0.3), tiny and huge
 * arguments and the special values. */
static void erf_probe(float x, double *max_exact, double *max_erff, float *where)
{
    float a = qat_erf_approx(x);
    double e = fabs((double)a - erf((double)x));
    double ef = fabs((double)a - (double)erff(x));
    if (e > *max_exact) *max_exact = e, *where = x;
    if (ef > *max_erff) *max_erff = ef;
}

Test(ops_ref, erf_approx_max_error)
{
    double max_exact = 0, max_erff = 0;
    float where = 0;
    for (long i = -3000000; i <= 3000000; i++) erf_probe((float)i * 2e-6f, &max_exact, &max_erff, &where);
    for (float x = 0.5f; x < 1.0f; x = nextafterf(x, 2.0f)) {
        erf_probe(x, &max_exact, &max_erff, &where);
        erf_probe(-x, &max_exact, &max_erff, &where);
    }
    const float special[] = {0.0f, -0.0f, FLT_MIN, -FLT_MIN, 1e-30f, 1e-10f, 1e-4f, 0.75f,
                             nextafterf(0.75f, 0.0f), 3.99f, 4.0f, 5.0f, 6.0f, 9.0f, 10.0f,
                             100.0f, 1e10f, 1e30f, FLT_MAX, -4.0f, -10.0f, -FLT_MAX, INFINITY,
                             -INFINITY};
    for (size_t i = 0; i < QAT_ARRAY_LEN(special); i++) erf_probe(special[i], &max_exact, &max_erff, &where);
    cr_log_info("qat_erf_approx: max error %.3g vs erf (at %.9g), %.3g vs erff", max_exact, (double)where,
                max_erff);
    cr_assert(max_exact <= 2e-7, "max error vs erf %.3g at %.9g", max_exact, (double)where);
    cr_assert(max_erff <= 2e-7, "max error vs erff %.3g", max_erff);
    cr_assert(isnan(qat_erf_approx(NAN)));
    cr_assert(qat_erf_approx(INFINITY) == 1.0f && qat_erf_approx(-INFINITY) == -1.0f);
    for (float x = 0.01f; x < 6.0f; x += 0.01f) cr_assert(qat_erf_approx(-x) == -qat_erf_approx(x));
}

/* ---- softmax_ce ---------------------------------------------------------------- */

Test(ops_ref, softmax_ce_hand_large_logits)
{
    /* Row 0: label 0 at 1000 against -1000: loss log(1 + e^-2000) = 0.
     * Row 1: label at -1000: loss 2000. Mean 1000. Without subtracting the
     * max, exp(1000) would be inf. */
    const float logits[] = {1000, -1000, 1000, -1000};
    const int32_t labels[] = {0, 1};
    float rows[2], dl[4];
    float loss = qat_softmax_ce_forward_ref(rows, logits, labels, 2, 2);
    cr_assert(rows[0] == 0 && rows[1] == 2000 && loss == 1000, "%g %g %g", (double)rows[0],
              (double)rows[1], (double)loss);
    /* softmax = (1, 0) in both rows; times dloss / batch = 1 / 2. */
    qat_softmax_ce_backward_ref(dl, logits, labels, 2, 2, 1.0f);
    cr_assert(dl[0] == 0 && dl[1] == 0 && dl[2] == 0.5f && dl[3] == -0.5f);
    cr_assert(isfinite(loss));
    /* Uniform logits: loss log(4); gradient (1/4 - [j == label]) * dloss. */
    const float flat[] = {0, 0, 0, 0};
    const int32_t two[] = {2};
    cr_assert(fabsf(qat_softmax_ce_forward_ref(NULL, flat, two, 1, 4) - logf(4.0f)) <= 1e-7f);
    qat_softmax_ce_backward_ref(dl, flat, two, 1, 4, 2.0f);
    cr_assert(dl[0] == 0.5f && dl[1] == 0.5f && dl[2] == -1.5f && dl[3] == 0.5f);
}

static void softmax_ce_bad_label(void)
{
    const float logits[] = {1, 2, 3};
    const int32_t labels[] = {3};
    qat_softmax_ce_forward_ref(NULL, logits, labels, 1, 3);
}

Test(ops_ref, softmax_ce_label_out_of_range_aborts, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    softmax_ce_bad_label();
}

typedef struct ce_ctx {
    size_t batch, classes;
    float *logits, dloss;
    int32_t *labels;
} ce_ctx;

static double ce_loss(void *p)
{
    ce_ctx *c = p;
    return (double)c->dloss * qat_softmax_ce_forward_ref(NULL, c->logits, c->labels, c->batch, c->classes);
}

/* Smooth; logits in [-3, 3]. Step 2^-7: truncation h^2 |f'''| / 6 with
 * |d^3 logsumexp| < 0.4 is < 3e-6; the loss (<= ~7) rounds at ~2^-24 * 7 *
 * few, over 2h = 2^-6: < 3e-5. Tolerance 1e-4 + 1e-3 relative. */
Test(ops_ref, softmax_ce_grad_random)
{
    uint64_t s = 31337;
    for (int trial = 0; trial < 12; trial++) {
        ce_ctx c = {rng_range(&s, 1, 4), rng_range(&s, 1, 7), 0, 0, 0};
        size_t n = c.batch * c.classes;
        c.logits = random_array(n, &s, 1e-2f);
        for (size_t i = 0; i < n; i++) c.logits[i] *= 3.0f;
        c.labels = qat_xmalloc(c.batch * sizeof *c.labels);
        for (size_t i = 0; i < c.batch; i++) c.labels[i] = (int32_t)rng_range(&s, 0, c.classes - 1);
        c.dloss = 0.5f + 0.5f * fabsf(rng_uniform(&s));
        float *dl = zeros(n), *rows = zeros(c.batch);
        qat_softmax_ce_backward_ref(dl, c.logits, c.labels, c.batch, c.classes, c.dloss);
        check_grad("softmax_ce dlogits", dl, c.logits, n, 0x1p-7f, ce_loss, &c, 1e-3, 1e-4);
        /* The mean is the ascending sum of the row losses over batch. */
        float mean = qat_softmax_ce_forward_ref(rows, c.logits, c.labels, c.batch, c.classes);
        float sum = 0;
        for (size_t i = 0; i < c.batch; i++) sum += rows[i];
        cr_assert(mean == sum / (float)c.batch);
        free(c.logits), free(c.labels), free(dl), free(rows);
    }
}

/* PyTorch: loss values within a few ulp (its log_softmax rounds in another
 * order: 2e-6 relative + 1e-6), probabilities-based gradient within 1e-7 of
 * values <= 0.19 (0.75 / 4). */
Test(ops_ref, softmax_ce_vs_pytorch)
{
    size_t b = GOLDEN_CE_BATCH, k = GOLDEN_CE_CLASSES;
    float rows[GOLDEN_CE_BATCH], dl[GOLDEN_CE_BATCH * GOLDEN_CE_CLASSES];
    float loss = qat_softmax_ce_forward_ref(rows, golden_ce_logits, golden_ce_labels, b, k);
    expect_floats_near("ce rows vs torch", rows, golden_ce_rows, b, 2e-6, 1e-6);
    expect_floats_near("ce loss vs torch", &loss, golden_ce_loss, 1, 2e-6, 1e-6);
    qat_softmax_ce_backward_ref(dl, golden_ce_logits, golden_ce_labels, b, k, GOLDEN_CE_DLOSS);
    expect_floats_near("ce dlogits vs torch", dl, golden_ce_dlogits, b * k, 1e-6, 1e-7);
}

/* ---- reduce ------------------------------------------------------------------- */

Test(ops_ref, reduce_hand)
{
    /* x (outer 2, n 3, inner 2) = 1..12. */
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)(i + 1);
    float y[4], m[3], dx[12];
    qat_reduce_sum_forward_ref(y, x, 2, 3, 2);
    cr_assert(y[0] == 9 && y[1] == 12 && y[2] == 27 && y[3] == 30); /* 1+3+5, 2+4+6, 7+9+11, 8+10+12 */
    qat_reduce_mean_forward_ref(y, x, 2, 3, 2);
    cr_assert(y[0] == 3 && y[1] == 4 && y[2] == 9 && y[3] == 10);
    qat_reduce_sum_keepmid_forward_ref(m, x, 2, 3, 2);
    cr_assert(m[0] == 18 && m[1] == 26 && m[2] == 34); /* 1+2+7+8, 3+4+9+10, 5+6+11+12 */
    /* Full reduction. */
    qat_reduce_sum_forward_ref(y, x, 1, 12, 1);
    cr_assert(y[0] == 78);
    const float dy[] = {1, 2, 3, 4};
    qat_reduce_sum_backward_ref(dx, dy, 2, 3, 2);
    const float want_sum[] = {1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4};
    expect_floats_eq("sum dx", dx, want_sum, 12);
    qat_reduce_mean_backward_ref(dx, dy, 2, 3, 2);
    for (int i = 0; i < 12; i++) cr_assert(dx[i] == want_sum[i] / 3.0f);
    qat_reduce_sum_keepmid_backward_ref(dx, dy, 2, 3, 2);
    const float want_mid[] = {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3};
    expect_floats_eq("keepmid dx", dx, want_mid, 12);
}

typedef struct red_ctx {
    size_t outer, n, inner;
    int kind; /* 0 sum, 1 mean, 2 keepmid */
    float *x, *y, *r;
} red_ctx;

static size_t red_out(const red_ctx *c) { return c->kind == 2 ? c->n : c->outer * c->inner; }

static double red_loss(void *p)
{
    red_ctx *c = p;
    if (c->kind == 0) qat_reduce_sum_forward_ref(c->y, c->x, c->outer, c->n, c->inner);
    if (c->kind == 1) qat_reduce_mean_forward_ref(c->y, c->x, c->outer, c->n, c->inner);
    if (c->kind == 2) qat_reduce_sum_keepmid_forward_ref(c->y, c->x, c->outer, c->n, c->inner);
    return dot_d(c->y, c->r, red_out(c));
}

/* Linear; step 0.25; one input moves one output of <= 25 terms (worst-case
 * rounding 25 * 2^-24 * 25 ~ 4e-5, typically ~sqrt(25) 2^-24 ~ 3e-7):
 * tolerance 1e-5 + 1e-5 relative. */
Test(ops_ref, reduce_grad_random)
{
    uint64_t s = 2718;
    for (int trial = 0; trial < 18; trial++) {
        red_ctx c = {rng_range(&s, 1, 5), rng_range(&s, 1, 5), rng_range(&s, 1, 5), trial % 3, 0, 0, 0};
        size_t nx = c.outer * c.n * c.inner;
        c.x = random_array(nx, &s, 1e-2f), c.y = zeros(red_out(&c)), c.r = random_array(red_out(&c), &s, 1e-2f);
        float *dx = zeros(nx);
        if (c.kind == 0) qat_reduce_sum_backward_ref(dx, c.r, c.outer, c.n, c.inner);
        if (c.kind == 1) qat_reduce_mean_backward_ref(dx, c.r, c.outer, c.n, c.inner);
        if (c.kind == 2) qat_reduce_sum_keepmid_backward_ref(dx, c.r, c.outer, c.n, c.inner);
        check_grad("reduce dx", dx, c.x, nx, 0.25f, red_loss, &c, 1e-5, 1e-5);
        free(c.x), free(c.y), free(c.r), free(dx);
    }
}

/* ---- conv2d ------------------------------------------------------------------- */

Test(ops_ref, conv2d_hand_3x3_pad1_stride2)
{
    /* x (1, 1, 4, 4) = 1..16; w (2, 1, 3, 3): channel 0 all ones (window
     * sums), channel 1 a centred 1 (picks the window centres). OH = OW = (4 +
     * 2 - 3) / 2 + 1 = 2; windows centred on rows/cols 0 and 2. */
    qat_conv2d_dims d = {.n = 1, .c = 1, .h = 4, .w = 4, .o = 2, .kh = 3, .kw = 3, .stride = 2, .pad = 1};
    cr_assert_eq(qat_conv2d_out_h(&d), 2);
    cr_assert_eq(qat_conv2d_out_w(&d), 2);
    float x[16], w[18] = {0}, y[8];
    for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
    for (int i = 0; i < 9; i++) w[i] = 1;
    w[9 + 4] = 1;
    qat_conv2d_forward_ref(y, x, w, &d);
    /* Centre (0,0): 1+2+5+6 = 14; (0,2): 2+3+4+6+7+8 = 30; (2,0): 5+6+9+10+
     * 13+14 = 57; (2,2): 6+7+8+10+11+12+14+15+16 = 99. Centres: 1, 3, 9, 11. */
    const float want_y[] = {14, 30, 57, 99, 1, 3, 9, 11};
    expect_floats_eq("y", y, want_y, 8);
    /* dy = 1 on channel 0 only: dx counts the windows covering each pixel
     * (rows 0..3 are covered 1, 2, 1, 1 times, columns alike), and dw[0] sums
     * x over the four windows' taps, e.g. centre 1+3+9+11 = 24, top-left tap
     * only x(1,1) = 6, bottom-right 6+8+14+16 = 44. */
    const float dy[] = {1, 1, 1, 1, 0, 0, 0, 0};
    float dx[16], dw[18];
    qat_conv2d_backward_ref(dx, dw, dy, x, w, &d);
    const float want_dx[] = {1, 2, 1, 1, 2, 4, 2, 2, 1, 2, 1, 1, 1, 2, 1, 1};
    const float want_dw[] = {6, 12, 14, 12, 24, 28, 20, 40, 44, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_floats_eq("dx", dx, want_dx, 16);
    expect_floats_eq("dw", dw, want_dw, 18);
}

static qat_conv2d_dims random_conv(uint64_t *s)
{
    qat_conv2d_dims d = {
        .n = rng_range(s, 1, 2), .c = rng_range(s, 1, 3), .h = rng_range(s, 1, 7), .w = rng_range(s, 1, 7),
        .o = rng_range(s, 1, 3), .kh = rng_range(s, 1, 3), .kw = rng_range(s, 1, 3),
        .stride = rng_range(s, 1, 3), .pad = rng_range(s, 0, 2),
    };
    if (d.h + 2 * d.pad < d.kh) d.h = d.kh;
    if (d.w + 2 * d.pad < d.kw) d.w = d.kw;
    return d;
}

typedef struct conv_ctx {
    const qat_conv2d_dims *d;
    float *x, *w, *y, *r;
    size_t ny;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    qat_conv2d_forward_ref(c->y, c->x, c->w, c->d);
    return dot_d(c->y, c->r, c->ny);
}

/* Linear in x and in w; step 0.25. An output sums <= 27 products of values
 * <= 1 (rounding <= 27 * 2^-24 * 27 ~ 4e-5 worst case) and one input moves <=
 * 27 outputs (one weight: <= 98), so the worst-case gradient noise is ~2e-3,
 * but the typical one is ~1e-6 (measured max 7e-7). Tolerance 1e-4 + 1e-4
 * relative: still far below what a wrong tap, stride or padding produces. */
Test(ops_ref, conv2d_grad_random)
{
    uint64_t s = 0xC0FFEE;
    for (int trial = 0; trial < 30; trial++) {
        qat_conv2d_dims d = random_conv(&s);
        size_t nx = d.n * d.c * d.h * d.w, nw = d.o * d.c * d.kh * d.kw;
        size_t ny = d.n * d.o * qat_conv2d_out_h(&d) * qat_conv2d_out_w(&d);
        conv_ctx c = {&d, random_array(nx, &s, 1e-2f), random_array(nw, &s, 1e-2f), zeros(ny),
                      random_array(ny, &s, 1e-2f), ny};
        float *dx = zeros(nx), *dw = zeros(nw);
        qat_conv2d_backward_ref(dx, dw, c.r, c.x, c.w, &d);
        check_grad("conv2d dx", dx, c.x, nx, 0.25f, conv_loss, &c, 1e-4, 1e-4);
        check_grad("conv2d dw", dw, c.w, nw, 0.25f, conv_loss, &c, 1e-4, 1e-4);
        free(c.x), free(c.w), free(c.y), free(c.r), free(dx), free(dw);
    }
}

/* The conv as im2col + matmul: y_n = W (O, R) col_n (R, P) with W broadcast
 * (stride 0) over the batch of images. The matmul sums over r = (c, kh, kw)
 * ascending, the conv's own order, and adds exact zeros where the conv skips
 * padding, so forward agrees bit for bit; so does dw, the broadcast operand's
 * gradient summed over n then p = (oh, ow). dx goes through dcol = W^T dy and
 * col2im, a different summation order, so it is held to the float summation
 * bound instead. */
Test(ops_ref, conv2d_vs_im2col_matmul)
{
    uint64_t s = 0xBEEF;
    for (int trial = 0; trial < 30; trial++) {
        qat_conv2d_dims d = random_conv(&s);
        size_t oh = qat_conv2d_out_h(&d), ow = qat_conv2d_out_w(&d);
        size_t R = d.c * d.kh * d.kw, P = oh * ow;
        size_t nx = d.n * d.c * d.h * d.w, nw = d.o * R, ny = d.n * d.o * P, ncol = d.n * R * P;
        float *x = random_array(nx, &s, 1e-2f), *w = random_array(nw, &s, 1e-2f), *dy = random_array(ny, &s, 1e-2f);
        float *col = zeros(ncol), *y1 = zeros(ny), *y2 = zeros(ny);
        qat_im2col_ref(col, x, &d);
        qat_matmul_dims md = {.batch = d.n, .m = d.o, .n = P, .k = R, .stride_a = 0, .stride_b = R * P};
        qat_matmul_forward_ref(y2, w, col, &md);
        qat_conv2d_forward_ref(y1, x, w, &d);
        expect_floats_eq("conv y vs im2col", y1, y2, ny);

        float *dx1 = zeros(nx), *dw1 = zeros(nw), *dw2 = zeros(nw), *dcol = zeros(ncol), *dx2 = zeros(nx);
        qat_conv2d_backward_ref(dx1, dw1, dy, x, w, &d);
        qat_matmul_backward_ref(dw2, dcol, dy, w, col, &md, false);
        expect_floats_eq("conv dw vs im2col", dw1, dw2, nw);
        qat_col2im_ref(dx2, dcol, &d);
        /* sum |dy| |w| per input element: the same gather on absolute values. */
        float *ady = abs_copy(dy, ny), *aw = abs_copy(w, nw), *abs_sum = zeros(nx);
        qat_conv2d_backward_ref(abs_sum, NULL, ady, x, aw, &d);
        expect_within_sum_bound("conv dx vs col2im", dx1, dx2, abs_sum, nx, d.o * d.kh * d.kw);
        free(x), free(w), free(dy), free(col), free(y1), free(y2), free(dx1), free(dw1), free(dw2);
        free(dcol), free(dx2), free(ady), free(aw), free(abs_sum);
    }
}

/* Against PyTorch, whose summation order is its own: each output is held to
 * the float summation bound 2 K 2^-24 sum|terms| (K terms), with sum|terms|
 * from our own op on absolute values. */
static void conv_vs_pytorch(const qat_conv2d_dims *d, const float *x, const float *w, const float *dy,
                            const float *want_y, const float *want_dx, const float *want_dw)
{
    size_t oh = qat_conv2d_out_h(d), ow = qat_conv2d_out_w(d);
    size_t nx = d->n * d->c * d->h * d->w, nw = d->o * d->c * d->kh * d->kw, ny = d->n * d->o * oh * ow;
    float *y = zeros(ny), *dx = zeros(nx), *dw = zeros(nw), *sy = zeros(ny), *sdx = zeros(nx), *sdw = zeros(nw);
    float *ax = abs_copy(x, nx), *aw = abs_copy(w, nw), *ady = abs_copy(dy, ny);
    qat_conv2d_forward_ref(y, x, w, d);
    qat_conv2d_backward_ref(dx, dw, dy, x, w, d);
    qat_conv2d_forward_ref(sy, ax, aw, d);
    qat_conv2d_backward_ref(sdx, sdw, ady, ax, aw, d);
    expect_within_sum_bound("conv y vs torch", y, want_y, sy, ny, d->c * d->kh * d->kw);
    expect_within_sum_bound("conv dx vs torch", dx, want_dx, sdx, nx, d->o * d->kh * d->kw);
    expect_within_sum_bound("conv dw vs torch", dw, want_dw, sdw, nw, d->n * oh * ow);
    free(y), free(dx), free(dw), free(sy), free(sdx), free(sdw), free(ax), free(aw), free(ady);
}

Test(ops_ref, conv2d_vs_pytorch)
{
    qat_conv2d_dims a = {GOLDEN_CONV_A_N, GOLDEN_CONV_A_C, GOLDEN_CONV_A_H, GOLDEN_CONV_A_W, GOLDEN_CONV_A_O,
                         GOLDEN_CONV_A_KH, GOLDEN_CONV_A_KW, GOLDEN_CONV_A_STRIDE, GOLDEN_CONV_A_PAD};
    conv_vs_pytorch(&a, golden_conv_a_x, golden_conv_a_w, golden_conv_a_dy, golden_conv_a_y, golden_conv_a_dx,
                    golden_conv_a_dw);
    qat_conv2d_dims b = {GOLDEN_CONV_B_N, GOLDEN_CONV_B_C, GOLDEN_CONV_B_H, GOLDEN_CONV_B_W, GOLDEN_CONV_B_O,
                         GOLDEN_CONV_B_KH, GOLDEN_CONV_B_KW, GOLDEN_CONV_B_STRIDE, GOLDEN_CONV_B_PAD};
    conv_vs_pytorch(&b, golden_conv_b_x, golden_conv_b_w, golden_conv_b_dy, golden_conv_b_y, golden_conv_b_dx,
                    golden_conv_b_dw);
}

/* ---- maxpool2d ---------------------------------------------------------------- */

Test(ops_ref, maxpool2d_hand_ties_and_odd)
{
    /* (1, 1, 4, 5): the last column is dropped (floor). Windows: all 5 (tie:
     * the first, (0,0)); {1,3;3,2} (tie of 3s: (0,3) before (1,2)); {-1,-2;-3,
     * -1} (tie: (2,0)); {7,7;7,8} (8 at (3,3)). */
    const float x[] = {
        5, 5, 1, 3, 9,
        5, 5, 3, 2, 9,
        -1, -2, 7, 7, 9,
        -3, -1, 7, 8, 9,
    };
    const float want_y[] = {5, 3, -1, 8};
    const float dy[] = {1, 2, 3, 4};
    const float want_dx[] = {
        1, 0, 0, 2, 0,
        0, 0, 0, 0, 0,
        3, 0, 0, 0, 0,
        0, 0, 0, 4, 0,
    };
    float y[4], dx[20];
    qat_maxpool2d_forward_ref(y, x, 1, 1, 4, 5);
    expect_floats_eq("y", y, want_y, 4);
    qat_maxpool2d_backward_ref(dx, dy, x, 1, 1, 4, 5);
    expect_floats_eq("dx", dx, want_dx, 20);

    /* All -inf: the first element still takes the gradient. A NaN wins the
     * window and takes the gradient (PyTorch CPU). */
    const float special[] = {-INFINITY, -INFINITY, 1, NAN, -INFINITY, -INFINITY, 2, 3};
    float sy[2], sdx[8];
    const float sdy[] = {10, 20};
    qat_maxpool2d_forward_ref(sy, special, 1, 1, 2, 4);
    cr_assert(sy[0] == -INFINITY && isnan(sy[1]));
    qat_maxpool2d_backward_ref(sdx, sdy, special, 1, 1, 2, 4);
    const float want_sdx[] = {10, 0, 0, 20, 0, 0, 0, 0};
    expect_floats_eq("special dx", sdx, want_sdx, 8);
}

typedef struct pool_ctx {
    size_t n, c, h, w;
    float *x, *y, *r;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    qat_maxpool2d_forward_ref(c->y, c->x, c->n, c->c, c->h, c->w);
    return dot_d(c->y, c->r, c->n * c->c * (c->h / 2) * (c->w / 2));
}

/* Random values resampled until the four values of every window differ
 * pairwise by >= 0.05; the step 2^-6 < 0.025 cannot reorder a window, so the
 * output is linear in each input over the difference (the selected input moves
 * its output one for one, the others nothing) and only float noise remains.
 * Tolerance 1e-5. */
Test(ops_ref, maxpool2d_grad_random)
{
    uint64_t s = 0x5EED;
    for (int trial = 0; trial < 16; trial++) {
        pool_ctx c = {rng_range(&s, 1, 2), rng_range(&s, 1, 2), rng_range(&s, 2, 7), rng_range(&s, 2, 7), 0, 0, 0};
        size_t nx = c.n * c.c * c.h * c.w, ny = c.n * c.c * (c.h / 2) * (c.w / 2);
        c.x = random_array(nx, &s, 1e-2f), c.y = zeros(ny), c.r = random_array(ny, &s, 1e-2f);
        for (size_t p = 0; p < c.n * c.c; p++)
            for (size_t oh = 0; oh < c.h / 2; oh++)
                for (size_t ow = 0; ow < c.w / 2; ow++) {
                    float *v[4];
                    for (int k = 0; k < 4; k++) v[k] = &c.x[(p * c.h + 2 * oh + (size_t)(k / 2)) * c.w + 2 * ow + (size_t)(k % 2)];
                    for (int k = 1; k < 4; k++)
                        for (int j = 0; j < k; j++)
                            if (fabsf(*v[k] - *v[j]) < 0.05f) {
                                fill_random(v[k], 1, &s, 1e-2f);
                                j = -1; /* recheck against all earlier ones */
                            }
                }
        float *dx = zeros(nx);
        qat_maxpool2d_backward_ref(dx, c.r, c.x, c.n, c.c, c.h, c.w);
        check_grad("maxpool2d dx", dx, c.x, nx, 0x1p-6f, pool_loss, &c, 1e-5, 1e-5);
        free(c.x), free(c.y), free(c.r), free(dx);
    }
}

/* No arithmetic, only selection: must equal PyTorch exactly, ties included. */
Test(ops_ref, maxpool2d_vs_pytorch)
{
    size_t n = GOLDEN_POOL_N, c = GOLDEN_POOL_C, h = GOLDEN_POOL_H, w = GOLDEN_POOL_W;
    float y[GOLDEN_POOL_N * GOLDEN_POOL_C * (GOLDEN_POOL_H / 2) * (GOLDEN_POOL_W / 2)];
    float dx[GOLDEN_POOL_N * GOLDEN_POOL_C * GOLDEN_POOL_H * GOLDEN_POOL_W];
    qat_maxpool2d_forward_ref(y, golden_pool_x, n, c, h, w);
    expect_floats_eq("pool y vs torch", y, golden_pool_y, QAT_ARRAY_LEN(y));
    qat_maxpool2d_backward_ref(dx, golden_pool_dy, golden_pool_x, n, c, h, w);
    expect_floats_eq("pool dx vs torch", dx, golden_pool_dx, QAT_ARRAY_LEN(dx));
}

/* ---- optimizers ----------------------------------------------------------------- */

Test(ops_ref, sgd_hand_steps)
{
    /* lr 0.1, momentum 0.9, wd 0.1, p = 1, grad 0.5 twice:
     * step 1: g = 0.5 + 0.1 * 1 = 0.6; buf = 0.6; p = 1 - 0.06 = 0.94
     * step 2: g = 0.5 + 0.1 * 0.94 = 0.594; buf = 0.9 * 0.6 + 0.594 = 1.134;
     *         p = 0.94 - 0.1134 = 0.8266
     * (float rounding of a handful of operations: within 1e-6). */
    qat_sgd_hparams h = {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1};
    float p = 1, g = 0.5f, buf = 0;
    qat_sgd_update_ref(&p, &g, &buf, 1, &h);
    cr_assert(fabsf(p - 0.94f) <= 1e-6f && fabsf(buf - 0.6f) <= 1e-6f, "p %.9g buf %.9g", (double)p, (double)buf);
    qat_sgd_update_ref(&p, &g, &buf, 1, &h);
    cr_assert(fabsf(p - 0.8266f) <= 1e-6f && fabsf(buf - 1.134f) <= 1e-6f, "p %.9g buf %.9g", (double)p,
              (double)buf);
    /* Momentum 0 needs no buffer: p -= lr (g + wd p) = 1 - 0.1 * 0.6. */
    qat_sgd_hparams plain = {.lr = 0.1, .momentum = 0, .weight_decay = 0.1};
    p = 1;
    qat_sgd_update_ref(&p, &g, NULL, 1, &plain);
    cr_assert(fabsf(p - 0.94f) <= 1e-6f);
}

/* PyTorch's first step sets buf = clone(g) (g with weight decay added); a
 * zeroed buffer gives 0 * momentum + g, which is g bit for bit (only the sign
 * of a zero g could differ, and -0 + 0 == 0 compares equal). */
Test(ops_ref, sgd_zero_buffer_is_pytorch_first_step)
{
    uint64_t s = 8;
    size_t n = 100;
    float *p = random_array(n, &s, 1e-2f), *g = random_array(n, &s, 1e-2f), *buf = zeros(n);
    float *p0 = qat_xmalloc(n * sizeof *p0);
    memcpy(p0, p, n * sizeof *p);
    qat_sgd_hparams h = {.lr = 0.03, .momentum = 0.9, .weight_decay = 1e-4};
    qat_sgd_update_ref(p, g, buf, n, &h);
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + (float)h.weight_decay * p0[i];
        cr_assert(buf[i] == gi);
        cr_assert(p[i] == p0[i] + (float)-h.lr * gi);
    }
    free(p), free(g), free(buf), free(p0);
}

Test(ops_ref, adamw_hand_steps)
{
    /* lr 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.01, p = 1, grads 0.5 then
     * -0.25 (values from the formula in double precision):
     * step 1: p = 0.999; m = 0.05; v = 0.00025; m / (1 - 0.9) = 0.5, v / (1 -
     *   0.999) = 0.25; p = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.899000002
     * step 2: p = 0.899000002 * 0.999; m = 0.045 - 0.025 = 0.02; v =
     *   0.00024975 + 0.0000625 = 0.00031225; p -= 0.1 * (0.02 / 0.19) /
     *   (sqrt(0.00031225 / 0.001999) + 1e-8) -> 0.8714672987058463
     * Float: within 2e-7 (a few ulp of values near 1). */
    qat_adamw_hparams h = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
    float p = 1, m = 0, v = 0, g1 = 0.5f, g2 = -0.25f;
    qat_adamw_update_ref(&p, &g1, &m, &v, 1, &h, 1);
    cr_assert(fabs(p - 0.899000002) <= 2e-7 && fabs(m - 0.05) <= 1e-8 && fabs(v - 0.00025) <= 1e-10,
              "p %.9g m %.9g v %.9g", (double)p, (double)m, (double)v);
    qat_adamw_update_ref(&p, &g2, &m, &v, 1, &h, 2);
    cr_assert(fabs(p - 0.8714672987058463) <= 2e-7 && fabs(m - 0.02) <= 1e-8 && fabs(v - 0.00031225) <= 1e-10,
              "p %.9g m %.9g v %.9g", (double)p, (double)m, (double)v);
    qat_adamw_step_scalars sc = qat_adamw_scalars(&h, 2);
    cr_assert(sc.decay == (float)0.999 && sc.neg_step_size == (float)(-0.1 / 0.19));
}

/* |got - want| <= 4 * 2^-24 * scale, elementwise. */
static void expect_within_scale(const char *what, size_t step, const float *got, const float *want,
                                const float *scale, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double tol = 4.0 * 0x1p-24 * (double)scale[i];
        double err = fabs((double)got[i] - (double)want[i]);
        cr_assert(err <= tol, "%s (step %zu)[%zu]: got %a, want %a (err %.3g > %.3g)", what, step, i,
                  (double)got[i], (double)want[i], err, tol);
    }
}

static void raise_scale(float *scale, float a, float b)
{
    float m = fmaxf(fabsf(a), fabsf(b));
    if (m > *scale) *scale = m;
}

/* Against torch.optim, three steps each on the same gradients. PyTorch's
 * vectorised CPU kernels evaluate `add_(t, alpha=a)` as fma(t, a, self) and
 * `addcmul_(t1, t2, value=c)` as fma(c * t1, t2, self); our reference rounds
 * the product first. With fmaf in exactly those places the reference was
 * checked to reproduce these fixtures bit for bit, so the remaining
 * difference is one product rounding per such operation, which is 2^-24
 * relative to the product, not to the result: a sum that cancels (m = 0.9 m
 * + 0.1 g with opposite signs) can differ by 10 ulp of itself. So each
 * quantity is held to 4 * 2^-24 times the largest term that went into it so
 * far (a running max per element, covering errors carried from earlier
 * steps). */
Test(ops_ref, optimizers_vs_pytorch)
{
    enum { N = GOLDEN_OPT_N };
    size_t n = N;
    float p[N], buf[N] = {0}, m[N] = {0}, v[N] = {0};
    float sp[N] = {0}, sbuf[N] = {0}, sm[N] = {0}, sv[N] = {0};

    qat_sgd_hparams sgd = {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01};
    memcpy(p, golden_opt_p0, sizeof p);
    for (size_t t = 0; t < GOLDEN_OPT_STEPS; t++) {
        const float *g = golden_opt_grads + t * n;
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] + 0.01f * p[i];
            raise_scale(&sbuf[i], 0.9f * buf[i], gi);
            raise_scale(&sp[i], p[i], 0.1f * (0.9f * buf[i] + gi));
        }
        qat_sgd_update_ref(p, g, buf, n, &sgd);
        expect_within_scale("sgd p vs torch", t + 1, p, golden_sgd_p + t * n, sp, n);
    }
    expect_within_scale("sgd buf vs torch", GOLDEN_OPT_STEPS, buf, golden_sgd_buf, sbuf, n);

    qat_adamw_hparams adamw = {.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05};
    memcpy(p, golden_opt_p0, sizeof p);
    memset(sp, 0, sizeof sp);
    for (size_t t = 0; t < GOLDEN_OPT_STEPS; t++) {
        const float *g = golden_opt_grads + t * n;
        float before[N];
        for (size_t i = 0; i < n; i++) {
            raise_scale(&sm[i], 0.9f * m[i], 0.1f * g[i]);
            raise_scale(&sv[i], 0.999f * v[i], 0.001f * g[i] * g[i]);
            before[i] = p[i] * (float)(1.0 - 0.01 * 0.05);
        }
        qat_adamw_update_ref(p, g, m, v, n, &adamw, t + 1);
        for (size_t i = 0; i < n; i++) raise_scale(&sp[i], before[i], p[i] - before[i]);
        expect_within_scale("adamw p vs torch", t + 1, p, golden_adamw_p + t * n, sp, n);
    }
    expect_within_scale("adamw m vs torch", GOLDEN_OPT_STEPS, m, golden_adamw_m, sm, n);
    expect_within_scale("adamw v vs torch", GOLDEN_OPT_STEPS, v, golden_adamw_v, sv, n);
}

/* ---- embedding ---------------------------------------------------------------------- */

Test(ops_ref, embedding_hand)
{
    const float table[] = {1, 2, 3, 4, 5, 6}; /* (3, 2) */
    const int32_t ids[] = {2, 0, 2};
    const float want_y[] = {5, 6, 1, 2, 5, 6};
    const float dy[] = {1, 10, 100, 1000, 0.5f, 0.25f};
    /* Row 0 gets token 1's dy, row 1 nothing, row 2 tokens 0 and 2 in order. */
    const float want_dt[] = {100, 1000, 0, 0, 1.5f, 10.25f};
    float y[6], dt[6] = {-1, -1, -1, -1, -1, -1};
    qat_embedding_forward_ref(y, table, ids, 3, 3, 2);
    expect_floats_eq("embedding y", y, want_y, 6);
    qat_embedding_backward_ref(dt, dy, ids, 3, 3, 2);
    expect_floats_eq("embedding dtable", dt, want_dt, 6);
}

static void embedding_bad_id(void)
{
    const float table[] = {1, 2};
    const int32_t ids[] = {0, 2};
    float y[2];
    qat_embedding_forward_ref(y, table, ids, 2, 2, 1);
}

Test(ops_ref, embedding_id_out_of_range_aborts, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    embedding_bad_id();
}

typedef struct emb_ctx {
    size_t n, vocab, dim;
    float *table, *y, *r;
    int32_t *ids;
} emb_ctx;

static double emb_loss(void *p)
{
    emb_ctx *c = p;
    qat_embedding_forward_ref(c->y, c->table, c->ids, c->n, c->vocab, c->dim);
    return dot_d(c->y, c->r, c->n * c->dim);
}

/* Linear in the table: step 0.25, and each table element's gradient sums at
 * most n <= 12 terms of |r| <= 1 (rounding <= 12 * 2^-24 * 12 over 0.5).
 * Tolerance 1e-5 + 1e-5 relative (see the top of the file). */
Test(ops_ref, embedding_grad_random)
{
    uint64_t s = 4242;
    for (int trial = 0; trial < 12; trial++) {
        emb_ctx c = {rng_range(&s, 1, 12), rng_range(&s, 1, 6), rng_range(&s, 1, 5), 0, 0, 0, 0};
        c.table = random_array(c.vocab * c.dim, &s, 1e-2f);
        c.y = zeros(c.n * c.dim);
        c.r = random_array(c.n * c.dim, &s, 1e-2f);
        c.ids = qat_xmalloc(c.n * sizeof *c.ids);
        for (size_t t = 0; t < c.n; t++) c.ids[t] = (int32_t)rng_range(&s, 0, c.vocab - 1);
        float *dt = zeros(c.vocab * c.dim);
        qat_embedding_backward_ref(dt, c.r, c.ids, c.n, c.vocab, c.dim);
        check_grad("embedding dtable", dt, c.table, c.vocab * c.dim, 0.25f, emb_loss, &c, 1e-5, 1e-5);
        free(c.table), free(c.y), free(c.r), free(c.ids), free(dt);
    }
}

/* A copy, and sums of at most 2 terms in token order: exact. */
Test(ops_ref, embedding_vs_pytorch)
{
    float y[GOLDEN_EMB_N * GOLDEN_EMB_DIM], dt[GOLDEN_EMB_VOCAB * GOLDEN_EMB_DIM];
    qat_embedding_forward_ref(y, golden_emb_table, golden_emb_ids, GOLDEN_EMB_N, GOLDEN_EMB_VOCAB, GOLDEN_EMB_DIM);
    expect_floats_eq("embedding y vs torch", y, golden_emb_y, QAT_ARRAY_LEN(y));
    qat_embedding_backward_ref(dt, golden_emb_dy, golden_emb_ids, GOLDEN_EMB_N, GOLDEN_EMB_VOCAB, GOLDEN_EMB_DIM);
    expect_floats_eq("embedding dtable vs torch", dt, golden_emb_dtable, QAT_ARRAY_LEN(dt));
}

/* ---- layer_norm ---------------------------------------------------------------------- */

Test(ops_ref, layer_norm_hand)
{
    /* x = 1, 2, 3, 4: mean 2.5, biased variance 1.25; with eps = 0,
     * xhat = (-1.5, -0.5, 0.5, 1.5) / sqrt(1.25). */
    const float x[] = {1, 2, 3, 4}, gamma[] = {1, 2, 0.5f, -1}, beta[] = {0, 1, 0, 0.5f};
    const double r = 1.0 / sqrt(1.25), xhat[] = {-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r};
    double want_y[4];
    for (int j = 0; j < 4; j++) want_y[j] = xhat[j] * gamma[j] + beta[j];
    float y[4], mean, rstd;
    qat_layer_norm_forward_ref(y, &mean, &rstd, x, gamma, beta, 1, 4, 0.0f);
    cr_assert(mean == 2.5f, "mean %.9g", (double)mean);
    expect_close("layer_norm rstd", &rstd, &r, 1, 2e-7, 0);
    expect_close("layer_norm y", y, want_y, 4, 4e-7, 1e-7);
    /* The output ignores a shift and a scale of x, so dy = gamma-weighted
     * ones or xhat gives dx = 0 (with gamma = 1: g = dy); d gamma = dy * xhat,
     * d beta = dy. */
    const float ones[] = {1, 1, 1, 1}, gones[] = {1, 1, 1, 1};
    float dx[4], dg[4], db[4], fxhat[4];
    for (int j = 0; j < 4; j++) fxhat[j] = (float)xhat[j];
    const double zero[4] = {0, 0, 0, 0};
    qat_layer_norm_backward_ref(dx, dg, db, ones, x, gones, 1, 4, 0.0f);
    expect_close("layer_norm dx (dy = 1)", dx, zero, 4, 0, 1e-6);
    expect_close("layer_norm dgamma (dy = 1)", dg, xhat, 4, 4e-7, 1e-7);
    expect_floats_eq("layer_norm dbeta (dy = 1)", db, ones, 4);
    qat_layer_norm_backward_ref(dx, NULL, NULL, fxhat, x, gones, 1, 4, 0.0f);
    expect_close("layer_norm dx (dy = xhat)", dx, zero, 4, 0, 1e-6);
    /* dy = e0: dx_j = ((d_j0 - 1/4) - xhat_j xhat_0 / 4) rstd. */
    const float e0[] = {1, 0, 0, 0};
    double want_dx[4];
    for (int j = 0; j < 4; j++) want_dx[j] = ((j == 0) - 0.25 - xhat[j] * xhat[0] / 4) * r;
    qat_layer_norm_backward_ref(dx, NULL, NULL, e0, x, gones, 1, 4, 0.0f);
    expect_close("layer_norm dx (dy = e0)", dx, want_dx, 4, 1e-6, 1e-7);
}

typedef struct ln_ctx {
    size_t rows, c;
    float eps;
    float *x, *gamma, *beta, *y, *r;
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    qat_layer_norm_forward_ref(c->y, NULL, NULL, c->x, c->gamma, c->beta, c->rows, c->c, c->eps);
    return dot_d(c->y, c->r, c->rows * c->c);
}

/* gamma and beta enter linearly: step 0.25, tolerance 1e-5 + 1e-5 relative
 * (a gradient sums rows <= 4 terms). In x the loss is smooth but curved, the
 * more so the smaller a row's spread, so each row is rescaled to standard
 * deviation 0.5 (rstd ~2, up to 9 columns) and shifted by its index. The
 * step then balances truncation against the loss's float rounding over 2h:
 * max errors measured 3.9e-5 at h = 2^-7, 4.5e-5 at 2^-8, 1.9e-4 at 2^-10.
 * Tolerance 2e-4 + 1e-3 relative (the worst element uses 0.14 of it); a
 * wrong term of dx (a dropped mean of g or of g xhat) is off by ~0.1. */
Test(ops_ref, layer_norm_grad_random)
{
    uint64_t s = 777;
    for (int trial = 0; trial < 12; trial++) {
        ln_ctx c = {rng_range(&s, 1, 4), rng_range(&s, 2, 9), trial % 2 ? 1e-5f : 0.1f, 0, 0, 0, 0, 0};
        size_t n = c.rows * c.c;
        c.x = random_array(n, &s, 1e-2f);
        for (size_t r = 0; r < c.rows; r++) {
            float *xr = c.x + r * c.c, m = 0, v = 0;
            for (size_t j = 0; j < c.c; j++) m += xr[j] / (float)c.c;
            for (size_t j = 0; j < c.c; j++) v += (xr[j] - m) * (xr[j] - m) / (float)c.c;
            for (size_t j = 0; j < c.c; j++) xr[j] = (xr[j] - m) * 0.5f / sqrtf(v) + (float)r;
        }
        c.gamma = random_array(c.c, &s, 1e-2f);
        c.beta = random_array(c.c, &s, 1e-2f);
        c.y = zeros(n);
        c.r = random_array(n, &s, 1e-2f);
        float *dx = zeros(n), *dg = zeros(c.c), *db = zeros(c.c);
        qat_layer_norm_backward_ref(dx, dg, db, c.r, c.x, c.gamma, c.rows, c.c, c.eps);
        check_grad("layer_norm dx", dx, c.x, n, 0x1p-7f, ln_loss, &c, 1e-3, 2e-4);
        check_grad("layer_norm dgamma", dg, c.gamma, c.c, 0.25f, ln_loss, &c, 1e-5, 1e-5);
        check_grad("layer_norm dbeta", db, c.beta, c.c, 0.25f, ln_loss, &c, 1e-5, 1e-5);
        /* Any subset of the gradients, the others NULL, gives the same values. */
        float *dx2 = zeros(n), *db2 = zeros(c.c);
        qat_layer_norm_backward_ref(dx2, NULL, NULL, c.r, c.x, c.gamma, c.rows, c.c, c.eps);
        qat_layer_norm_backward_ref(NULL, NULL, db2, c.r, c.x, c.gamma, c.rows, c.c, c.eps);
        expect_floats_eq("layer_norm dx alone", dx2, dx, n);
        expect_floats_eq("layer_norm dbeta alone", db2, db, c.c);
        free(c.x), free(c.gamma), free(c.beta), free(c.y), free(c.r), free(dx), free(dg), free(db), free(dx2), free(db2);
    }
}

/* PyTorch's CPU kernel computes the moments in another order and forms
 * y = (x rstd + (-mean rstd)) gamma + beta, and dx = a dy gamma + b x + c,
 * with fmas: terms as large as |x| rstd |gamma| (<= ~25 here: rows are
 * offset by up to 12) cancel, so its results carry a few ulp of those terms,
 * ~4e-6 absolute, whatever the size of the result (measured: up to 1.9e-6).
 * Tolerance 2e-6 relative + 5e-6 absolute. */
static void layer_norm_vs_pytorch(const char *tag, size_t rows, size_t c, const float *x, const float *gamma,
                                  const float *beta, const float *want_y, const float *dy, const float *want_dx,
                                  const float *want_dg, const float *want_db)
{
    float *y = zeros(rows * c), *dx = zeros(rows * c), *dg = zeros(c), *db = zeros(c);
    char what[64];
    qat_layer_norm_forward_ref(y, NULL, NULL, x, gamma, beta, rows, c, 1e-5f);
    snprintf(what, sizeof what, "%s y vs torch", tag);
    expect_floats_near(what, y, want_y, rows * c, 2e-6, 5e-6);
    qat_layer_norm_backward_ref(dx, dg, db, dy, x, gamma, rows, c, 1e-5f);
    snprintf(what, sizeof what, "%s dx vs torch", tag);
    expect_floats_near(what, dx, want_dx, rows * c, 2e-6, 5e-6);
    snprintf(what, sizeof what, "%s dgamma vs torch", tag);
    expect_floats_near(what, dg, want_dg, c, 2e-6, 5e-6);
    snprintf(what, sizeof what, "%s dbeta vs torch", tag);
    expect_floats_near(what, db, want_db, c, 2e-6, 5e-6);
    free(y), free(dx), free(dg), free(db);
}

Test(ops_ref, layer_norm_vs_pytorch)
{
    layer_norm_vs_pytorch("ln C=7", GOLDEN_LN_A_ROWS, GOLDEN_LN_A_C, golden_ln_a_x, golden_ln_a_gamma,
                          golden_ln_a_beta, golden_ln_a_y, golden_ln_a_dy, golden_ln_a_dx, golden_ln_a_dgamma,
                          golden_ln_a_dbeta);
    layer_norm_vs_pytorch("ln C=16", GOLDEN_LN_B_ROWS, GOLDEN_LN_B_C, golden_ln_b_x, golden_ln_b_gamma,
                          golden_ln_b_beta, golden_ln_b_y, golden_ln_b_dy, golden_ln_b_dx, golden_ln_b_dgamma,
                          golden_ln_b_dbeta);
}

/* ---- causal_softmax ------------------------------------------------------------------ */

Test(ops_ref, causal_softmax_hand)
{
    /* T = 2: row 0 sees only column 0 (weight 1, the 100 above the diagonal
     * is ignored); row 1 softmax(0, log 3) = (1/4, 3/4). Huge values stay
     * finite because the max is subtracted. */
    const float x[] = {5, 100, 0, logf(3.0f), 1000, -1000, -1000, 1000};
    float y[8], dx[8];
    qat_causal_softmax_forward_ref(y, x, 2, 2, 1.0f);
    cr_assert(y[0] == 1 && y[1] == 0 && y[4] == 1 && y[5] == 0 && y[6] == 0 && y[7] == 1);
    const double want_row1[] = {0.25, 0.75};
    expect_close("causal_softmax row 1", y + 2, want_row1, 2, 2e-7, 0);
    /* dy = (1, 0) on row 1: d = 1/4, dx = scale (1/4 (1 - 1/4), 3/4 (0 - 1/4))
     * = scale (3/16, -3/16); row 0 has y = 1, so dx = scale (dy0 - dy0) = 0. */
    const float dy[] = {0.5f, 7, 1, 0, 1, 1, 1, 1};
    qat_causal_softmax_backward_ref(dx, dy, y, 2, 2, 2.0f);
    cr_assert(dx[0] == 0 && dx[1] == 0, "row 0: %g %g", (double)dx[0], (double)dx[1]);
    const double want_dx[] = {0.375, -0.375};
    expect_close("causal_softmax dx row 1", dx + 2, want_dx, 2, 1e-6, 0);
}

typedef struct csm_ctx {
    size_t batch, t;
    float scale;
    float *x, *y, *r;
} csm_ctx;

static double csm_loss(void *p)
{
    csm_ctx *c = p;
    qat_causal_softmax_forward_ref(c->y, c->x, c->batch, c->t, c->scale);
    return dot_d(c->y, c->r, c->batch * c->t * c->t);
}

/* Smooth, like softmax_ce; x in [-2, 2], scale up to 2, step 2^-8: the
 * truncation h^2 |f'''| / 6 and the loss's rounding over 2h are each
 * ~1e-5 (measured max error 1.5e-5). Tolerance 1e-4 + 1e-3 relative (the
 * worst element uses 0.14 of it). Entries above the diagonal do not reach
 * the loss: their gradient, like their weight, is exactly 0. */
Test(ops_ref, causal_softmax_grad_random)
{
    uint64_t s = 5150;
    for (int trial = 0; trial < 12; trial++) {
        csm_ctx c = {rng_range(&s, 1, 3), rng_range(&s, 1, 6), 0.5f + (float)(trial % 4) * 0.5f, 0, 0, 0};
        size_t n = c.batch * c.t * c.t;
        c.x = random_array(n, &s, 1e-2f);
        for (size_t i = 0; i < n; i++) c.x[i] *= 2.0f;
        c.y = zeros(n);
        c.r = random_array(n, &s, 1e-2f);
        float *dx = zeros(n);
        qat_causal_softmax_backward_ref(dx, c.r, (qat_causal_softmax_forward_ref(c.y, c.x, c.batch, c.t, c.scale), c.y),
                                        c.batch, c.t, c.scale);
        for (size_t i = 0; i < n; i++)
            if (i % c.t > (i / c.t) % c.t) cr_assert(dx[i] == 0.0f && c.y[i] == 0.0f);
        float *y_saved = qat_xmalloc(n * sizeof *y_saved);
        memcpy(y_saved, c.y, n * sizeof *y_saved);
        /* dx may alias dy. */
        float *inplace = qat_xmalloc(n * sizeof *inplace);
        memcpy(inplace, c.r, n * sizeof *inplace);
        qat_causal_softmax_backward_ref(inplace, inplace, y_saved, c.batch, c.t, c.scale);
        expect_floats_eq("causal_softmax dx in place", inplace, dx, n);
        check_grad("causal_softmax dx", dx, c.x, n, 0x1p-8f, csm_loss, &c, 1e-3, 1e-4);
        free(c.x), free(c.y), free(c.r), free(dx), free(y_saved), free(inplace);
    }
}

/* PyTorch exponentiates the masked scores with its own vectorised exp
 * (within ~1 ulp of expf) and sums in another order: weights and gradients
 * within 1e-6 relative plus 1e-7 absolute (values <= 1, gradients <= ~2;
 * the worst element uses 0.11 of it). */
Test(ops_ref, causal_softmax_vs_pytorch)
{
    enum { N = GOLDEN_CSM_BATCH * GOLDEN_CSM_T * GOLDEN_CSM_T };
    float y[N], dx[N];
    qat_causal_softmax_forward_ref(y, golden_csm_x, GOLDEN_CSM_BATCH, GOLDEN_CSM_T, GOLDEN_CSM_SCALE);
    expect_floats_near("causal_softmax y vs torch", y, golden_csm_y, N, 1e-6, 1e-7);
    qat_causal_softmax_backward_ref(dx, golden_csm_dy, y, GOLDEN_CSM_BATCH, GOLDEN_CSM_T, GOLDEN_CSM_SCALE);
    expect_floats_near("causal_softmax dx vs torch", dx, golden_csm_dx, N, 1e-6, 1e-7);
}

/* ---- transpose12 ---------------------------------------------------------------------- */

typedef struct tr_ctx {
    size_t a, b, c, d;
    float *x, *y, *r;
} tr_ctx;

static double tr_loss(void *p)
{
    tr_ctx *c = p;
    qat_transpose12_ref(c->y, c->x, c->a, c->b, c->c, c->d);
    return dot_d(c->y, c->r, c->a * c->b * c->c * c->d);
}

/* The backward is the swap applied to dy with B and C exchanged: a linear
 * map with one term per element, so step 0.25 and rounding alone (none:
 * each loss term is one product) allow 1e-6. */
Test(ops_ref, transpose12_grad_random)
{
    uint64_t s = 1212;
    for (int trial = 0; trial < 8; trial++) {
        tr_ctx c = {rng_range(&s, 1, 3), rng_range(&s, 1, 4), rng_range(&s, 1, 4), rng_range(&s, 1, 5), 0, 0, 0};
        size_t n = c.a * c.b * c.c * c.d;
        c.x = random_array(n, &s, 1e-2f), c.y = zeros(n), c.r = random_array(n, &s, 1e-2f);
        float *dx = zeros(n);
        qat_transpose12_ref(dx, c.r, c.a, c.c, c.b, c.d);
        check_grad("transpose12 dx", dx, c.x, n, 0.25f, tr_loss, &c, 1e-6, 1e-6);
        free(c.x), free(c.y), free(c.r), free(dx);
    }
}

Test(ops_ref, transpose12_hand_and_vs_pytorch)
{
    /* (1, 2, 3, 1): rows [0 1 2] [3 4 5] become columns. */
    const float x[] = {0, 1, 2, 3, 4, 5}, want[] = {0, 3, 1, 4, 2, 5};
    float y[6], back[6];
    qat_transpose12_ref(y, x, 1, 2, 3, 1);
    expect_floats_eq("transpose12 y", y, want, 6);
    qat_transpose12_ref(back, y, 1, 3, 2, 1);
    expect_floats_eq("transpose12 twice", back, x, 6);
    enum { N = 2 * 3 * 4 * 5 };
    float ty[N], tdx[N];
    qat_transpose12_ref(ty, golden_tr_x, 2, 3, 4, 5);
    expect_floats_eq("transpose12 y vs torch", ty, golden_tr_y, N);
    qat_transpose12_ref(tdx, golden_tr_dy, 2, 4, 3, 5);
    expect_floats_eq("transpose12 dx vs torch", tdx, golden_tr_dx, N);
}
