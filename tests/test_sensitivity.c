/* Hutchinson's trace estimator (qat/sensitivity.c) on quadratics, whose
 * Hessian is known exactly: f(w) = 1/2 w^T A w + b^T w, gradient A w + b. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/sensitivity.h"
#include "tests/test_util.h"

typedef struct quadratic {
    int n;
    double *a; /* n x n, symmetric */
    double *b;
    int calls;
} quadratic;

static qat_status quadratic_grad(void *user, const float *w, float *grad, double *loss)
{
    quadratic *q = user;
    q->calls++;
    double f = 0;
    for (int i = 0; i < q->n; i++) {
        double g = q->b[i];
        for (int j = 0; j < q->n; j++) g += q->a[i * q->n + j] * w[j];
        grad[i] = (float)g;
        f += w[i] * (0.5 * (g - q->b[i]) + q->b[i]);
    }
    if (loss) *loss = f;
    return QAT_OK;
}

/* A random symmetric A with diagonal blocks of the given sizes; `dense`
 * also fills the off-diagonal entries (within and across blocks). */
static quadratic make_quadratic(const int64_t *blocks, int nblocks, bool dense, uint64_t seed, double *traces)
{
    quadratic q = { 0 };
    for (int k = 0; k < nblocks; k++) q.n += (int)blocks[k];
    q.a = calloc((size_t)q.n * (size_t)q.n, sizeof *q.a);
    q.b = calloc((size_t)q.n, sizeof *q.b);
    test_rng rng = { seed };
    for (int i = 0; i < q.n; i++) {
        q.b[i] = test_rng_float(&rng, -1, 1);
        q.a[i * q.n + i] = test_rng_float(&rng, 0.1f, 3.0f);
        for (int j = 0; dense && j < i; j++) q.a[i * q.n + j] = q.a[j * q.n + i] = test_rng_float(&rng, -0.3f, 0.3f);
    }
    for (int k = 0, at = 0; k < nblocks; at += (int)blocks[k], k++) {
        traces[k] = 0;
        for (int i = at; i < at + blocks[k]; i++) traces[k] += q.a[i * q.n + i];
    }
    return q;
}

static float *random_point(int n, uint64_t seed)
{
    float *w = malloc((size_t)n * sizeof *w);
    test_rng rng = { seed };
    test_fill(&rng, w, (size_t)n, -0.5f, 0.5f);
    return w;
}

/* With a diagonal A every Rademacher probe gives the exact trace (v_i^2 = 1),
 * so the estimate is exact up to the finite difference's rounding, and the
 * zero variance stops it at the minimum number of probes. */
Test(sensitivity, hutchinson_is_exact_on_a_diagonal_hessian)
{
    const int64_t blocks[] = { 3, 17, 40 };
    double exact[3], trace[3], err[3];
    quadratic q = make_quadratic(blocks, 3, false, 11, exact);
    float *w = random_point(q.n, 12);
    qat_hutchinson_options o = { .min_probes = 4, .max_probes = 50, .rel_tol = 0.01, .eps_rel = 1e-2, .seed = 3 };
    qat_hutchinson_result r;
    cr_assert_eq(qat_hutchinson_trace(quadratic_grad, &q, 3, blocks, w, &o, trace, err, &r), QAT_OK);
    for (int k = 0; k < 3; k++)
        cr_expect(fabs(trace[k] - exact[k]) < 1e-4 * exact[k], "block %d: %.8g vs exact %.8g", k, trace[k], exact[k]);
    cr_expect(r.settled);
    cr_expect(r.probes <= 5, "%d probes for a zero-variance estimate", r.probes);
    cr_expect_eq(q.calls, 2 * r.probes, "two gradients per probe");
    free(w), free(q.a), free(q.b);
}

/* A dense A (coupled within and across blocks): the estimate is random but
 * converges to the exact block traces; stopping at 2% standard error, it
 * lands within 4 standard errors (and 10%) of each. */
Test(sensitivity, hutchinson_converges_to_the_exact_block_traces_of_a_dense_quadratic)
{
    const int64_t blocks[] = { 8, 30, 25 };
    double exact[3], trace[3], err[3];
    quadratic q = make_quadratic(blocks, 3, true, 21, exact);
    float *w = random_point(q.n, 22);
    qat_hutchinson_options o = { .min_probes = 8, .max_probes = 4000, .rel_tol = 0.02, .eps_rel = 1e-2, .seed = 5 };
    qat_hutchinson_result r;
    cr_assert_eq(qat_hutchinson_trace(quadratic_grad, &q, 3, blocks, w, &o, trace, err, &r), QAT_OK);
    cr_expect(r.settled, "not settled after %d probes", r.probes);
    cr_expect(r.probes > 8, "a dense Hessian's probes vary");
    for (int k = 0; k < 3; k++) {
        cr_expect(err[k] > 0 && err[k] <= 0.02 * fabs(trace[k]) + 1e-12, "block %d: standard error %g", k, err[k]);
        cr_expect(fabs(trace[k] - exact[k]) <= 4 * err[k] && fabs(trace[k] - exact[k]) < 0.1 * exact[k],
                  "block %d: %.6g +- %.3g vs exact %.6g", k, trace[k], err[k], exact[k]);
    }
    /* Same seed, same estimate; another seed, another sample path. */
    double again[3], other[3];
    qat_hutchinson_result r2;
    cr_assert_eq(qat_hutchinson_trace(quadratic_grad, &q, 3, blocks, w, &o, again, err, &r2), QAT_OK);
    cr_expect_arr_eq(again, trace, sizeof trace);
    o.seed = 6;
    cr_assert_eq(qat_hutchinson_trace(quadratic_grad, &q, 3, blocks, w, &o, other, err, &r2), QAT_OK);
    cr_expect(memcmp(other, trace, sizeof trace) != 0);
    free(w), free(q.a), free(q.b);
}

/* An estimate that cannot settle stops at max_probes and says so. */
Test(sensitivity, hutchinson_stops_at_max_probes_unsettled)
{
    const int64_t blocks[] = { 30 };
    double exact[1], trace[1], err[1];
    quadratic q = make_quadratic(blocks, 1, true, 31, exact);
    float *w = random_point(q.n, 32);
    qat_hutchinson_options o = { .min_probes = 3, .max_probes = 6, .rel_tol = 1e-9, .eps_rel = 1e-2, .seed = 1 };
    qat_hutchinson_result r;
    cr_assert_eq(qat_hutchinson_trace(quadratic_grad, &q, 1, blocks, w, &o, trace, err, &r), QAT_OK);
    cr_expect_eq(r.probes, 6);
    cr_expect(!r.settled);
    cr_expect(isfinite(trace[0]) && err[0] > 0);
    free(w), free(q.a), free(q.b);
}

Test(sensitivity, names_parse_and_print)
{
    for (int k = 0; k < QAT_SENSITIVITY_KIND_COUNT; k++) {
        qat_sensitivity_kind back;
        cr_expect(qat_sensitivity_parse(qat_sensitivity_name((qat_sensitivity_kind)k), &back));
        cr_expect_eq(back, (qat_sensitivity_kind)k);
    }
    qat_sensitivity_kind x;
    cr_expect(!qat_sensitivity_parse("Hessian", &x));
    cr_expect(!qat_sensitivity_parse("", &x));
}
