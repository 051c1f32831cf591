/* Every op on the Vulkan device against its CPU reference (ops/ops_ref.h) on
 * random shapes and values, forward and backward.
 *
 * Backward goes through the real autograd: the op's output y is reduced to a
 * scalar loss = sum(y * r) with a random constant r, so d(loss)/dy = r exactly
 * and the gradients the graph computes for the inputs must equal the CPU
 * backward with dy = r. One Vulkan context per Test (Criterion forks per
 * test), many cases inside each.
 *
 * Tolerances: kernels sum in a different (fixed) order than the reference, so
 * results differ by rounding; errors are measured relative to each tensor's
 * largest magnitude (test_rel_max_err) and bounded by a few ulp times the
 * length of the longest sum involved. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_ref.h"
#include "ops/ops_vk.h"
#include "qat/optimizer.h"
#include "tests/test_util.h"

/* ---- harness ---------------------------------------------------------------- */

#define MAX_IN 4

typedef struct op_case {
    qat_ctx *ctx;
    qat_graph *g;
    test_rng rng;
    int in[MAX_IN];
    float *in_data[MAX_IN];
    int nin;
    int out;
    float *r;       /* d(loss)/d(out) */
    int loss;
    int ids;        /* an int32 input written before the run, or -1 */
    int32_t *ids_data;
} op_case;

static int case_param(op_case *c, const char *name, int ndim, const int64_t *shape, float lo, float hi)
{
    QAT_ASSERT(c->nin < MAX_IN);
    int id = qat_param(c->g, name, ndim, shape, true);
    size_t n = (size_t)qat_shape_numel(ndim, shape);
    c->in_data[c->nin] = malloc(n * sizeof(float));
    test_fill(&c->rng, c->in_data[c->nin], n, lo, hi);
    c->in[c->nin++] = id;
    return id;
}

static void case_begin(op_case *c, qat_ctx *ctx, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    c->g = qat_graph_create(ctx);
    c->rng.s = seed * 0x9E3779B97F4A7C15ull + 1;
    c->ids = -1;
}

/* An int32 input of `shape` with values uniform in [0, range). */
static int case_ids(op_case *c, int ndim, const int64_t *shape, int32_t range)
{
    c->ids = qat_input(c->g, "ids", QAT_I32, ndim, shape);
    size_t n = (size_t)qat_shape_numel(ndim, shape);
    c->ids_data = malloc(n * sizeof *c->ids_data);
    for (size_t i = 0; i < n; i++) c->ids_data[i] = (int32_t)(test_rng_next(&c->rng) % (uint64_t)range);
    return c->ids;
}

/* Adds loss = sum(out * r), differentiates, compiles, uploads, runs. */
static void case_run(op_case *c, int out, bool backward)
{
    c->out = out;
    const qat_tensor *t = qat_tensor_get(c->g, out);
    size_t n = (size_t)t->numel;
    c->r = malloc(n * sizeof(float));
    test_fill(&c->rng, c->r, n, -1.0f, 1.0f);
    qat_graph_mark_output(c->g, out);
    if (backward) {
        int64_t shape[QAT_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        int r = qat_const(c->g, "r", t->ndim, shape, c->r);
        c->loss = qat_sum(c->g, qat_mul(c->g, out, r), -1);
        qat_graph_backward(c->g, c->loss);
    }
    cr_assert_eq(qat_graph_compile(c->g), QAT_OK, "%s", qat_error_message());
    for (int i = 0; i < c->nin; i++) cr_assert_eq(qat_tensor_write(c->g, c->in[i], c->in_data[i]), QAT_OK);
    if (c->ids >= 0)
        memcpy(qat_graph_input_slot(c->g, c->ids), c->ids_data,
               (size_t)qat_tensor_get(c->g, c->ids)->numel * sizeof *c->ids_data);
    qat_seq *seq;
    cr_assert_eq(qat_seq_create(c->g, 0, qat_graph_node_count(c->g), &seq), QAT_OK);
    cr_assert_eq(qat_seq_run(seq), QAT_OK, "%s", qat_error_message());
    qat_seq_free(seq);
}

static float *case_read(op_case *c, int t)
{
    float *d = malloc((size_t)qat_tensor_get(c->g, t)->numel * sizeof(float));
    cr_assert_eq(qat_tensor_read(c->g, t, d), QAT_OK);
    return d;
}

/* The device's gradient of input i. */
static float *case_grad(op_case *c, int i)
{
    int grad = qat_tensor_get(c->g, c->in[i])->grad;
    cr_assert(grad >= 0, "no gradient for input %d", i);
    return case_read(c, grad);
}

static void expect_close(const char *what, const float *got, const float *want, size_t n, double tol)
{
    double err = test_rel_max_err(got, want, n, 1e-6);
    cr_expect(err <= tol, "%s: error %.3g relative to its scale exceeds %.3g", what, err, tol);
}

static void case_end(op_case *c)
{
    for (int i = 0; i < c->nin; i++) free(c->in_data[i]);
    free(c->r);
    free(c->ids_data);
    qat_graph_free(c->g);
}

static int64_t rand_dim(op_case *c, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(test_rng_next(&c->rng) % (uint64_t)(hi - lo + 1));
}

/* ---- table ------------------------------------------------------------------ */

Test(ops_table, every_op_has_a_row_with_a_name)
{
    for (int op = 0; op < QAT_OP_COUNT; op++) {
        cr_assert_not_null(qat_op_defs[op], "op %d has no row in ops/ops.c", op);
        cr_assert_not_null(qat_op_defs[op]->name, "op %d has no name", op);
    }
}

/* ---- matmul ----------------------------------------------------------------- */

static void check_matmul(qat_ctx *ctx, uint64_t seed, int64_t batch, int64_t m, int64_t n, int64_t k, bool ta,
                         bool tb, qat_epilogue epilogue)
{
    op_case c;
    case_begin(&c, ctx, seed);
    int64_t sa[3] = { batch, ta ? k : m, ta ? m : k }, sb[3] = { batch, tb ? n : k, tb ? k : n };
    bool batched = batch > 1;
    int a = case_param(&c, "a", batched ? 3 : 2, batched ? sa : sa + 1, -1, 1);
    int b = case_param(&c, "b", batched ? 3 : 2, batched ? sb : sb + 1, -1, 1);
    int bias = -1;
    if (epilogue != QAT_EPILOGUE_NONE) bias = case_param(&c, "bias", 1, &n, -1, 1);
    case_run(&c, qat_matmul_ex(c.g, a, b, ta, tb, bias, epilogue), true);

    qat_matmul_dims d = { (size_t)batch, (size_t)m, (size_t)n, (size_t)k, ta, tb,
                          batched ? (size_t)(m * k) : 0, batched ? (size_t)(k * n) : 0 };
    size_t nc = (size_t)(batch * m * n);
    float *want = malloc(nc * sizeof(float)), *dz = malloc(nc * sizeof(float));
    qat_matmul_forward_ref(want, c.in_data[0], c.in_data[1], &d);
    memcpy(dz, c.r, nc * sizeof(float));
    if (epilogue != QAT_EPILOGUE_NONE) {
        for (size_t i = 0; i < nc; i++) want[i] += c.in_data[2][i % (size_t)n];
        if (epilogue == QAT_EPILOGUE_BIAS_RELU) {
            qat_relu_backward_ref(dz, c.r, want, nc);
            qat_relu_forward_ref(want, want, nc);
        }
    }
    char what[160];
    snprintf(what, sizeof what, "matmul b%lld %lldx%lldx%lld%s%s epilogue %d", (long long)batch, (long long)m,
             (long long)n, (long long)k, ta ? " trans_a" : "", tb ? " trans_b" : "", epilogue);
    float *got = case_read(&c, c.out);
    /* One sum of k products: a few ulp times sqrt-ish growth; 2e-6 * sqrt(k) + 1e-6. */
    double tol = 2e-6 * sqrt((double)k) + 1e-6;
    expect_close(what, got, want, nc, tol);
    float *da = malloc((size_t)(batch * m * k) * sizeof(float)), *db = malloc((size_t)(batch * n * k) * sizeof(float));
    qat_matmul_backward_ref(da, db, dz, c.in_data[0], c.in_data[1], &d, false);
    float *ga = case_grad(&c, 0), *gb = case_grad(&c, 1);
    strcat(what, " dA");
    expect_close(what, ga, da, (size_t)(batch * m * k), 2e-6 * sqrt((double)n) + 1e-6);
    what[strlen(what) - 1] = 'B';
    expect_close(what, gb, db, (size_t)(batch * n * k), 2e-6 * sqrt((double)(m * batch)) + 1e-6);
    if (bias >= 0) {
        float *gbias = case_grad(&c, 2), *dbias = calloc((size_t)n, sizeof(float));
        qat_reduce_sum_keepmid_forward_ref(dbias, dz, (size_t)(batch * m), (size_t)n, 1);
        strcat(what, " dbias");
        expect_close(what, gbias, dbias, (size_t)n, 2e-6 * sqrt((double)(m * batch)) + 1e-6);
        free(gbias), free(dbias);
    }
    free(want), free(dz), free(got), free(da), free(db), free(ga), free(gb);
    case_end(&c);
}

Test(ops_vk, matmul_all_transposes_and_epilogues_match_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    uint64_t seed = 1;
    /* Awkward sizes (1, primes, below and above tile sizes) and the mlp's own. */
    const int64_t shapes[][3] = { { 1, 1, 1 }, { 3, 5, 7 }, { 17, 10, 33 }, { 64, 64, 64 }, { 33, 129, 65 },
                                  { 128, 10, 256 }, { 128, 256, 784 } };
    for (size_t s = 0; s < QAT_ARRAY_LEN(shapes); s++)
        for (int t = 0; t < 4; t++)
            check_matmul(ctx, seed++, 1, shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t & 2, QAT_EPILOGUE_NONE);
    check_matmul(ctx, seed++, 1, 37, 19, 23, false, true, QAT_EPILOGUE_BIAS);
    check_matmul(ctx, seed++, 1, 128, 256, 100, false, true, QAT_EPILOGUE_BIAS_RELU);
    check_matmul(ctx, seed++, 1, 9, 10, 31, false, true, QAT_EPILOGUE_BIAS_RELU);
    test_gpu_done(ctx);
}

Test(ops_vk, batched_matmul_matches_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    uint64_t seed = 100;
    for (int t = 0; t < 4; t++) check_matmul(ctx, seed++, 3, 9, 13, 11, t & 1, t & 2, QAT_EPILOGUE_NONE);
    check_matmul(ctx, seed++, 5, 16, 8, 32, false, false, QAT_EPILOGUE_NONE);
    test_gpu_done(ctx);
}

/* A 3-d activation times a 2-d weight: the batch folds into the rows. */
Test(ops_vk, linear_on_3d_input_matches_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    op_case c;
    case_begin(&c, ctx, 7);
    int64_t xs[3] = { 4, 6, 12 }, ws[2] = { 5, 12 }, bs = 5;
    int x = case_param(&c, "x", 3, xs, -1, 1);
    int w = case_param(&c, "w", 2, ws, -1, 1);
    int b = case_param(&c, "b", 1, &bs, -1, 1);
    case_run(&c, qat_linear(c.g, x, w, b), true);
    qat_matmul_dims d = { 1, 24, 5, 12, false, true, 0, 0 };
    float want[120], dx[288], dw[60], dbias[5];
    qat_matmul_forward_ref(want, c.in_data[0], c.in_data[1], &d);
    for (int i = 0; i < 120; i++) want[i] += c.in_data[2][i % 5];
    float *got = case_read(&c, c.out);
    expect_close("linear 3-d forward", got, want, 120, 1e-5);
    qat_matmul_backward_ref(dx, dw, c.r, c.in_data[0], c.in_data[1], &d, false);
    qat_reduce_sum_keepmid_forward_ref(dbias, c.r, 24, 5, 1);
    float *gx = case_grad(&c, 0), *gw = case_grad(&c, 1), *gb = case_grad(&c, 2);
    expect_close("linear 3-d dx", gx, dx, 288, 1e-5);
    expect_close("linear 3-d dw", gw, dw, 60, 1e-5);
    expect_close("linear 3-d dbias", gb, dbias, 5, 1e-5);
    free(got), free(gx), free(gw), free(gb);
    case_end(&c);
    test_gpu_done(ctx);
}

/* ---- elementwise ------------------------------------------------------------ */

typedef enum { EW_ADD, EW_MUL, EW_RELU, EW_GELU } ew_kind;

static void check_eltwise(qat_ctx *ctx, uint64_t seed, ew_kind kind, int64_t n)
{
    op_case c;
    case_begin(&c, ctx, seed);
    int a = case_param(&c, "a", 1, &n, -3, 3);
    int b = kind <= EW_MUL ? case_param(&c, "b", 1, &n, -3, 3) : -1;
    int y = kind == EW_ADD ? qat_add(c.g, a, b) : kind == EW_MUL ? qat_mul(c.g, a, b)
          : kind == EW_RELU ? qat_relu(c.g, a) : qat_gelu(c.g, a);
    case_run(&c, y, true);
    size_t sn = (size_t)n;
    float *want = malloc(sn * 4), *da = malloc(sn * 4), *db = malloc(sn * 4);
    const float *x0 = c.in_data[0], *x1 = c.in_data[1];
    switch (kind) {
    case EW_ADD:
        for (size_t i = 0; i < sn; i++) want[i] = x0[i] + x1[i], da[i] = db[i] = c.r[i];
        break;
    case EW_MUL:
        qat_mul_forward_ref(want, x0, x1, sn);
        qat_mul_backward_ref(da, db, c.r, x0, x1, sn);
        break;
    case EW_RELU:
        qat_relu_forward_ref(want, x0, sn);
        qat_relu_backward_ref(da, c.r, x0, sn);
        break;
    case EW_GELU:
        qat_gelu_forward_ref(want, x0, sn);
        qat_gelu_backward_ref(da, c.r, x0, sn);
        break;
    }
    static const char *names[] = { "add", "mul", "relu", "gelu" };
    char what[64];
    float *got = case_read(&c, c.out);
    /* Exact ops except gelu, whose shader erf approximation is within 1.5e-7
     * absolute of erff (see ops/gelu.c); 2e-6 relative covers it and exp(). */
    double tol = kind == EW_GELU ? 2e-6 : 1e-7;
    snprintf(what, sizeof what, "%s n=%lld forward", names[kind], (long long)n);
    expect_close(what, got, want, sn, tol);
    float *ga = case_grad(&c, 0);
    snprintf(what, sizeof what, "%s n=%lld d/da", names[kind], (long long)n);
    expect_close(what, ga, da, sn, tol);
    if (b >= 0) {
        float *gb = case_grad(&c, 1);
        snprintf(what, sizeof what, "%s n=%lld d/db", names[kind], (long long)n);
        expect_close(what, gb, db, sn, tol);
        free(gb);
    }
    free(want), free(da), free(db), free(got), free(ga);
    case_end(&c);
}

Test(ops_vk, elementwise_ops_match_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    const int64_t sizes[] = { 1, 7, 256, 1000, 65537 };
    uint64_t seed = 200;
    for (int k = EW_ADD; k <= EW_GELU; k++)
        for (size_t s = 0; s < QAT_ARRAY_LEN(sizes); s++) check_eltwise(ctx, seed++, (ew_kind)k, sizes[s]);
    test_gpu_done(ctx);
}

Test(ops_vk, scale_matches_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    const int64_t sizes[] = { 1, 7, 1000, 65537 };
    for (size_t s = 0; s < QAT_ARRAY_LEN(sizes); s++) {
        op_case c;
        case_begin(&c, ctx, 250 + s);
        int64_t n = sizes[s];
        int a = case_param(&c, "a", 1, &n, -3, 3);
        const float factor = 1.7f;
        case_run(&c, qat_scale(c.g, a, factor), true);
        float *want = malloc((size_t)n * 4), *da = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) want[i] = factor * c.in_data[0][i], da[i] = factor * c.r[i];
        float *got = case_read(&c, c.out), *ga = case_grad(&c, 0);
        expect_close("scale forward", got, want, (size_t)n, 1e-7);
        expect_close("scale d/dx", ga, da, (size_t)n, 1e-7);
        free(want), free(da), free(got), free(ga);
        case_end(&c);
    }
    test_gpu_done(ctx);
}

/* A tensor used twice: its gradient is the sum of both contributions. */
Test(ops_vk, gradients_accumulate_over_several_uses)
{
    qat_ctx *ctx = test_gpu_ctx();
    op_case c;
    case_begin(&c, ctx, 300);
    int64_t n = 1000;
    int a = case_param(&c, "a", 1, &n, -2, 2);
    int b = case_param(&c, "b", 1, &n, -2, 2);
    /* y = a*b + relu(a): da = r*b + r*(a>0), db = r*a */
    case_run(&c, qat_add(c.g, qat_mul(c.g, a, b), qat_relu(c.g, a)), true);
    float da[1000], db[1000];
    for (int i = 0; i < 1000; i++) {
        da[i] = c.r[i] * c.in_data[1][i] + (c.in_data[0][i] > 0 ? c.r[i] : 0.0f);
        db[i] = c.r[i] * c.in_data[0][i];
    }
    float *ga = case_grad(&c, 0), *gb = case_grad(&c, 1);
    expect_close("accumulated da", ga, da, 1000, 1e-7);
    expect_close("db", gb, db, 1000, 1e-7);
    free(ga), free(gb);
    case_end(&c);
    test_gpu_done(ctx);
}

Test(ops_vk, bias_add_matches_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    const int64_t shapes[][4] = { { 5, 7, 1, 1 }, { 1, 9, 1, 1 }, { 1, 5, 3, 3 }, { 3, 4, 5, 6 }, { 128, 16, 28, 28 } };
    for (size_t s = 0; s < QAT_ARRAY_LEN(shapes); s++) {
        op_case c;
        case_begin(&c, ctx, 400 + s);
        bool conv = shapes[s][2] > 1;
        int64_t ch = shapes[s][1];
        int x = case_param(&c, "x", conv ? 4 : 2, shapes[s], -2, 2);
        int b = case_param(&c, "b", 1, &ch, -2, 2);
        case_run(&c, qat_bias_add(c.g, x, b, 1), true);
        size_t outer = (size_t)shapes[s][0], inner = conv ? (size_t)(shapes[s][2] * shapes[s][3]) : 1;
        size_t n = outer * (size_t)ch * inner;
        float *want = malloc(n * 4), *dbias = malloc((size_t)ch * 4);
        qat_bias_add_forward_ref(want, c.in_data[0], c.in_data[1], outer, (size_t)ch, inner);
        qat_bias_add_backward_ref(NULL, dbias, c.r, outer, (size_t)ch, inner);
        float *got = case_read(&c, c.out), *gx = case_grad(&c, 0), *gb = case_grad(&c, 1);
        expect_close("bias_add forward", got, want, n, 1e-7);
        expect_close("bias_add dx", gx, c.r, n, 1e-7);
        /* dbias sums outer*inner terms (up to 100k): tolerance grows with sqrt. */
        expect_close("bias_add dbias", gb, dbias, (size_t)ch, 2e-6 * sqrt((double)(outer * inner)));
        free(want), free(dbias), free(got), free(gx), free(gb);
        case_end(&c);
    }
    test_gpu_done(ctx);
}

Test(ops_vk, sum_and_mean_match_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    uint64_t seed = 500;
    for (int mean = 0; mean < 2; mean++)
        for (int axis = -1; axis < 3; axis++) {
            op_case c;
            case_begin(&c, ctx, seed++);
            int64_t shape[3] = { rand_dim(&c, 1, 9), rand_dim(&c, 1, 300), rand_dim(&c, 1, 7) };
            int x = case_param(&c, "x", 3, shape, -1, 1);
            case_run(&c, mean ? qat_mean(c.g, x, axis) : qat_sum(c.g, x, axis), true);
            size_t outer = 1, n, inner = 1;
            if (axis < 0) n = (size_t)(shape[0] * shape[1] * shape[2]);
            else {
                for (int i = 0; i < axis; i++) outer *= (size_t)shape[i];
                n = (size_t)shape[axis];
                for (int i = axis + 1; i < 3; i++) inner *= (size_t)shape[i];
            }
            float *want = malloc(outer * inner * 4), *dx = malloc(outer * n * inner * 4);
            if (mean) {
                qat_reduce_mean_forward_ref(want, c.in_data[0], outer, n, inner);
                qat_reduce_mean_backward_ref(dx, c.r, outer, n, inner);
            } else {
                qat_reduce_sum_forward_ref(want, c.in_data[0], outer, n, inner);
                qat_reduce_sum_backward_ref(dx, c.r, outer, n, inner);
            }
            char what[64];
            snprintf(what, sizeof what, "%s axis %d forward", mean ? "mean" : "sum", axis);
            float *got = case_read(&c, c.out), *gx = case_grad(&c, 0);
            expect_close(what, got, want, outer * inner, 2e-6 * sqrt((double)n) + 1e-6);
            snprintf(what, sizeof what, "%s axis %d backward", mean ? "mean" : "sum", axis);
            expect_close(what, gx, dx, outer * n * inner, 1e-6);
            free(want), free(dx), free(got), free(gx);
            case_end(&c);
        }
    test_gpu_done(ctx);
}

Test(ops_vk, softmax_cross_entropy_matches_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    const int64_t shapes[][2] = { { 1, 2 }, { 7, 10 }, { 128, 10 }, { 300, 33 } };
    for (size_t s = 0; s < QAT_ARRAY_LEN(shapes); s++) {
        op_case c;
        case_begin(&c, ctx, 600 + s);
        int64_t batch = shapes[s][0], classes = shapes[s][1];
        int logits = case_param(&c, "logits", 2, shapes[s], -8, 8);
        int labels = qat_input(c.g, "labels", QAT_I32, 1, &batch);
        int32_t *lab = malloc((size_t)batch * sizeof *lab);
        for (int64_t i = 0; i < batch; i++) lab[i] = (int32_t)(test_rng_next(&c.rng) % (uint64_t)classes);
        int loss = qat_softmax_ce(c.g, logits, labels);
        /* The loss is already a scalar; scale it by r so dloss is not 1. */
        int64_t one = 1;
        c.r = malloc(sizeof(float));
        c.r[0] = 0.75f;
        int r = qat_const(c.g, "r", 1, &one, c.r);
        int total = qat_sum(c.g, qat_mul(c.g, loss, r), -1);
        qat_graph_mark_output(c.g, loss);
        qat_graph_backward(c.g, total);
        cr_assert_eq(qat_graph_compile(c.g), QAT_OK);
        cr_assert_eq(qat_tensor_write(c.g, logits, c.in_data[0]), QAT_OK);
        memcpy(qat_graph_input_slot(c.g, labels), lab, (size_t)batch * sizeof *lab);
        qat_seq *seq;
        cr_assert_eq(qat_seq_create(c.g, 0, qat_graph_node_count(c.g), &seq), QAT_OK);
        cr_assert_eq(qat_seq_run(seq), QAT_OK);
        float want = qat_softmax_ce_forward_ref(NULL, c.in_data[0], lab, (size_t)batch, (size_t)classes);
        float got = *(const float *)qat_graph_output_slot(c.g, loss);
        cr_expect(fabsf(got - want) <= 2e-6f * fabsf(want) + 1e-7f, "softmax_ce %lldx%lld: loss %.8g, reference %.8g",
                  (long long)batch, (long long)classes, got, want);
        size_t n = (size_t)(batch * classes);
        float *dl = malloc(n * 4);
        qat_softmax_ce_backward_ref(dl, c.in_data[0], lab, (size_t)batch, (size_t)classes, 0.75f);
        float *gl = case_grad(&c, 0);
        expect_close("softmax_ce dlogits", gl, dl, n, 2e-6);
        free(dl), free(gl), free(lab);
        qat_seq_free(seq);
        case_end(&c);
    }
    test_gpu_done(ctx);
}

/* Huge logits must not overflow: the row max is subtracted first. */
Test(ops_vk, softmax_cross_entropy_stays_finite_for_huge_logits)
{
    qat_ctx *ctx = test_gpu_ctx();
    qat_graph *g = qat_graph_create(ctx);
    int64_t ls[2] = { 2, 3 }, b = 2;
    int logits = qat_param(g, "logits", 2, ls, false);
    int labels = qat_input(g, "labels", QAT_I32, 1, &b);
    int loss = qat_softmax_ce(g, logits, labels);
    qat_graph_mark_output(g, loss);
    cr_assert_eq(qat_graph_compile(g), QAT_OK);
    float data[6] = { 1000, -1000, 999, -1000, 1000, 0 };
    int32_t lab[2] = { 2, 0 };
    cr_assert_eq(qat_tensor_write(g, logits, data), QAT_OK);
    memcpy(qat_graph_input_slot(g, labels), lab, sizeof lab);
    qat_seq *seq;
    cr_assert_eq(qat_seq_create(g, 0, qat_graph_node_count(g), &seq), QAT_OK);
    cr_assert_eq(qat_seq_run(seq), QAT_OK);
    float got = *(const float *)qat_graph_output_slot(g, loss);
    float want = qat_softmax_ce_forward_ref(NULL, data, lab, 2, 3);
    cr_expect(isfinite(got) && fabsf(got - want) <= 1e-5f * fabsf(want), "loss %g, reference %g", got, want);
    qat_seq_free(seq);
    qat_graph_free(g);
    test_gpu_done(ctx);
}

/* ---- conv2d, maxpool2d, reshape -------------------------------------------- */

static void check_conv(qat_ctx *ctx, uint64_t seed, qat_conv2d_dims d)
{
    op_case c;
    case_begin(&c, ctx, seed);
    int64_t xs[4] = { (int64_t)d.n, (int64_t)d.c, (int64_t)d.h, (int64_t)d.w };
    int64_t ws[4] = { (int64_t)d.o, (int64_t)d.c, (int64_t)d.kh, (int64_t)d.kw };
    int x = case_param(&c, "x", 4, xs, -1, 1);
    int w = case_param(&c, "w", 4, ws, -1, 1);
    case_run(&c, qat_conv2d(c.g, x, w, (int)d.stride, (int)d.pad), true);
    size_t oh = qat_conv2d_out_h(&d), ow = qat_conv2d_out_w(&d);
    size_t ny = d.n * d.o * oh * ow, nx = d.n * d.c * d.h * d.w, nw = d.o * d.c * d.kh * d.kw;
    float *want = malloc(ny * 4), *dx = malloc(nx * 4), *dw = malloc(nw * 4);
    qat_conv2d_forward_ref(want, c.in_data[0], c.in_data[1], &d);
    qat_conv2d_backward_ref(dx, dw, c.r, c.in_data[0], c.in_data[1], &d);
    char what[128];
    snprintf(what, sizeof what, "conv2d n%zu c%zu %zux%zu o%zu k%zux%zu s%zu p%zu", d.n, d.c, d.h, d.w, d.o, d.kh, d.kw,
             d.stride, d.pad);
    float *got = case_read(&c, c.out), *gx = case_grad(&c, 0), *gw = case_grad(&c, 1);
    expect_close(what, got, want, ny, 2e-6 * sqrt((double)(d.c * d.kh * d.kw)) + 1e-6);
    strcat(what, " dx");
    expect_close(what, gx, dx, nx, 2e-6 * sqrt((double)(d.o * d.kh * d.kw)) + 1e-6);
    what[strlen(what) - 1] = 'w';
    expect_close(what, gw, dw, nw, 2e-6 * sqrt((double)(d.n * oh * ow)) + 1e-6);
    free(want), free(dx), free(dw), free(got), free(gx), free(gw);
    case_end(&c);
}

Test(ops_vk, conv2d_matches_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    const qat_conv2d_dims cases[] = {
        { .n = 1, .c = 1, .h = 4, .w = 4, .o = 1, .kh = 3, .kw = 3, .stride = 1, .pad = 1 },
        { .n = 2, .c = 3, .h = 7, .w = 5, .o = 4, .kh = 3, .kw = 3, .stride = 2, .pad = 1 },
        { .n = 3, .c = 2, .h = 9, .w = 9, .o = 5, .kh = 5, .kw = 3, .stride = 1, .pad = 0 },
        { .n = 2, .c = 4, .h = 8, .w = 6, .o = 3, .kh = 2, .kw = 2, .stride = 2, .pad = 2 },
        { .n = 4, .c = 16, .h = 14, .w = 14, .o = 32, .kh = 3, .kw = 3, .stride = 1, .pad = 1 },
        /* Same-size convolutions whose pixel count, reduction length (C*KH*KW)
         * or output channels are not multiples of 4 (the vec4 paths' edges). */
        { .n = 2, .c = 3, .h = 5, .w = 5, .o = 5, .kh = 3, .kw = 3, .stride = 1, .pad = 1 },
        { .n = 1, .c = 5, .h = 7, .w = 3, .o = 3, .kh = 3, .kw = 3, .stride = 1, .pad = 1 },
        { .n = 2, .c = 2, .h = 6, .w = 6, .o = 6, .kh = 5, .kw = 5, .stride = 1, .pad = 2 },
        { .n = 3, .c = 1, .h = 28, .w = 28, .o = 16, .kh = 3, .kw = 3, .stride = 1, .pad = 1 },
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) check_conv(ctx, 700 + i, cases[i]);
    test_gpu_done(ctx);
}

Test(ops_vk, maxpool2d_matches_reference_including_ties_and_odd_sizes)
{
    qat_ctx *ctx = test_gpu_ctx();
    const int64_t shapes[][4] = { { 1, 1, 2, 2 }, { 2, 3, 5, 7 }, { 1, 3, 7, 8 }, { 4, 16, 28, 28 } };
    for (size_t s = 0; s < QAT_ARRAY_LEN(shapes); s++)
        for (int ties = 0; ties < 2; ties++) {
            op_case c;
            case_begin(&c, ctx, 800 + 2 * s + ties);
            int x = case_param(&c, "x", 4, shapes[s], -1, 1);
            size_t n = (size_t)qat_shape_numel(4, shapes[s]);
            /* Ties: values from a small set, so windows often hold equal maxima. */
            if (ties)
                for (size_t i = 0; i < n; i++) c.in_data[0][i] = (float)(test_rng_next(&c.rng) % 3) - 1.0f + 0.5f;
            case_run(&c, qat_maxpool2d(c.g, x), true);
            size_t N = (size_t)shapes[s][0], C = (size_t)shapes[s][1], H = (size_t)shapes[s][2], W = (size_t)shapes[s][3];
            size_t ny = N * C * (H / 2) * (W / 2);
            float *want = malloc(ny * 4), *dx = malloc(n * 4);
            qat_maxpool2d_forward_ref(want, c.in_data[0], N, C, H, W);
            qat_maxpool2d_backward_ref(dx, c.r, c.in_data[0], N, C, H, W);
            float *got = case_read(&c, c.out), *gx = case_grad(&c, 0);
            expect_close(ties ? "maxpool2d forward (ties)" : "maxpool2d forward", got, want, ny, 0);
            expect_close(ties ? "maxpool2d backward (ties)" : "maxpool2d backward", gx, dx, n, 0);
            free(want), free(dx), free(got), free(gx);
            case_end(&c);
        }
    test_gpu_done(ctx);
}

Test(ops_vk, reshape_is_a_view_and_passes_gradients_through)
{
    qat_ctx *ctx = test_gpu_ctx();
    op_case c;
    case_begin(&c, ctx, 900);
    int64_t xs[4] = { 3, 2, 4, 5 };
    int x = case_param(&c, "x", 4, xs, -1, 1);
    case_run(&c, qat_relu(c.g, qat_flatten(c.g, x)), true);
    float want[120], dx[120];
    qat_relu_forward_ref(want, c.in_data[0], 120);
    qat_relu_backward_ref(dx, c.r, c.in_data[0], 120);
    float *got = case_read(&c, c.out), *gx = case_grad(&c, 0);
    expect_close("flatten+relu forward", got, want, 120, 0);
    expect_close("flatten+relu backward", gx, dx, 120, 0);
    free(got), free(gx);
    case_end(&c);
    test_gpu_done(ctx);
}

/* ---- dropout ------------------------------------------------------------------ */

Test(ops_vk, dropout_draws_the_reference_mask_per_step_and_is_identity_in_eval)
{
    qat_ctx *ctx = test_gpu_ctx();
    op_case c;
    case_begin(&c, ctx, 1000);
    int64_t n = 1001; /* not a whole number of Philox blocks */
    const float p = 0.3f;
    const uint64_t seed = 0x123456789abcdefull;
    const uint32_t salt = 7;
    int x = case_param(&c, "x", 1, &n, -2, 2);
    int y = qat_dropout(c.g, x, p, seed, salt);
    c.r = malloc((size_t)n * sizeof(float));
    test_fill(&c.rng, c.r, (size_t)n, -1, 1);
    int r = qat_const(c.g, "r", 1, &n, c.r);
    qat_graph_mark_output(c.g, y);
    qat_graph_backward(c.g, qat_sum(c.g, qat_mul(c.g, y, r), -1));
    cr_assert_eq(qat_graph_compile(c.g), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(qat_tensor_write(c.g, x, c.in_data[0]), QAT_OK);
    qat_seq *seq;
    cr_assert_eq(qat_seq_create(c.g, 0, qat_graph_node_count(c.g), &seq), QAT_OK);
    float want[1001], dx[1001], first[1001];
    for (uint32_t step = 5; step <= 6; step++) {
        qat_graph_set_phase(c.g, true, step);
        cr_assert_eq(qat_seq_run(seq), QAT_OK);
        uint64_t stream = (uint64_t)salt << 32 | step;
        qat_dropout_forward_ref(want, c.in_data[0], (size_t)n, p, seed, stream);
        qat_dropout_forward_ref(dx, c.r, (size_t)n, p, seed, stream);
        const float *got = qat_graph_output_slot(c.g, y);
        expect_close("dropout forward", got, want, (size_t)n, 0);
        float *gx = case_grad(&c, 0);
        expect_close("dropout backward", gx, dx, (size_t)n, 0);
        free(gx);
        int dropped = 0, changed = 0;
        for (int i = 0; i < n; i++) {
            dropped += got[i] == 0.0f;
            if (step == 5) first[i] = got[i];
            else changed += (got[i] == 0.0f) != (first[i] == 0.0f);
        }
        /* Binomial(1001, 0.3): mean 300, sd 14.5; 5 sd either way. */
        cr_expect(dropped > 227 && dropped < 373, "step %u dropped %d of 1001 at p = 0.3", step, dropped);
        if (step == 6) cr_expect(changed > 100, "the mask did not change between steps (%d changes)", changed);
    }
    qat_graph_set_phase(c.g, false, 0);
    cr_assert_eq(qat_seq_run(seq), QAT_OK);
    expect_close("dropout in evaluation", qat_graph_output_slot(c.g, y), c.in_data[0], (size_t)n, 0);
    qat_seq_free(seq);
    case_end(&c);
    test_gpu_done(ctx);
}

/* ---- optimizers ------------------------------------------------------------- */

/* Two parameters (so the update spans the flat buffer with its padding),
 * gradient r exactly (loss = sum(p * r)), a few steps on the device against
 * the CPU reference with the same schedule. */
static void check_optimizer(qat_ctx *ctx, qat_optim_kind kind)
{
    op_case c;
    case_begin(&c, ctx, kind == QAT_OPTIM_SGD ? 1100 : 1200);
    int64_t n0 = 1001, n1 = 37;
    int p0 = case_param(&c, "p0", 1, &n0, -1, 1);
    int p1 = case_param(&c, "p1", 1, &n1, -1, 1);
    float r[1038];
    test_fill(&c.rng, r, 1038, -1, 1);
    int r0 = qat_const(c.g, "r0", 1, &n0, r), r1 = qat_const(c.g, "r1", 1, &n1, r + 1001);
    int loss = qat_add(c.g, qat_sum(c.g, qat_mul(c.g, p0, r0), -1), qat_sum(c.g, qat_mul(c.g, p1, r1), -1));
    qat_graph_backward(c.g, loss);
    qat_optim_config cfg = qat_optim_defaults(kind, kind == QAT_OPTIM_SGD ? 0.05 : 1e-3);
    cfg.schedule = QAT_SCHEDULE_COSINE, cfg.warmup_steps = 2, cfg.total_steps = 5;
    qat_graph_add_optimizer(c.g, &cfg);
    cr_assert_eq(qat_graph_compile(c.g), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(qat_tensor_write(c.g, p0, c.in_data[0]), QAT_OK);
    cr_assert_eq(qat_tensor_write(c.g, p1, c.in_data[1]), QAT_OK);
    qat_seq *seq;
    cr_assert_eq(qat_seq_create(c.g, 0, qat_graph_node_count(c.g), &seq), QAT_OK);
    float want[1038], m[1038] = { 0 }, v[1038] = { 0 };
    memcpy(want, c.in_data[0], 1001 * sizeof(float));
    memcpy(want + 1001, c.in_data[1], 37 * sizeof(float));
    for (int step = 0; step < 4; step++) {
        qat_optim_set_step(c.g, &cfg, step);
        cr_assert_eq(qat_seq_run(seq), QAT_OK);
        if (kind == QAT_OPTIM_SGD) {
            qat_sgd_hparams h = { qat_lr_at(&cfg, step), cfg.momentum, cfg.weight_decay };
            qat_sgd_update_ref(want, r, m, 1038, &h);
        } else {
            qat_adamw_hparams h = { qat_lr_at(&cfg, step), cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay };
            qat_adamw_update_ref(want, r, m, v, 1038, &h, (uint64_t)step + 1);
        }
    }
    float got[1038];
    cr_assert_eq(qat_tensor_read(c.g, p0, got), QAT_OK);
    cr_assert_eq(qat_tensor_read(c.g, p1, got + 1001), QAT_OK);
    /* Same operations in the same order; a device that fuses multiply-adds
     * may differ by an ulp or two per step. */
    expect_close(kind == QAT_OPTIM_SGD ? "sgd after 4 steps" : "adamw after 4 steps", got, want, 1038, 1e-6);
    qat_seq_free(seq);
    case_end(&c);
}

Test(ops_vk, optimizers_match_reference_over_several_steps)
{
    qat_ctx *ctx = test_gpu_ctx();
    check_optimizer(ctx, QAT_OPTIM_SGD);
    check_optimizer(ctx, QAT_OPTIM_ADAMW);
    test_gpu_done(ctx);
}

/* ---- transformer ops ---------------------------------------------------------- */

static void check_embedding(qat_ctx *ctx, uint64_t seed, int64_t vocab, int64_t dim, int ids_ndim,
                            const int64_t *ids_shape, int32_t id_range)
{
    op_case c;
    case_begin(&c, ctx, seed);
    int64_t ts[2] = { vocab, dim };
    int table = case_param(&c, "table", 2, ts, -1, 1);
    int ids = case_ids(&c, ids_ndim, ids_shape, id_range);
    case_run(&c, qat_embedding(c.g, table, ids), true);
    size_t n = (size_t)qat_shape_numel(ids_ndim, ids_shape), nt = (size_t)(vocab * dim);
    float *want = malloc(n * (size_t)dim * sizeof(float)), *dtable = malloc(nt * sizeof(float));
    qat_embedding_forward_ref(want, c.in_data[0], c.ids_data, n, (size_t)vocab, (size_t)dim);
    qat_embedding_backward_ref(dtable, c.r, c.ids_data, n, (size_t)vocab, (size_t)dim);
    const qat_tensor *ty = qat_tensor_get(c.g, c.out);
    cr_expect(ty->ndim == ids_ndim + 1 && ty->shape[ids_ndim] == dim, "embedding output shape");
    char what[96];
    snprintf(what, sizeof what, "embedding vocab %lld dim %lld tokens %zu", (long long)vocab, (long long)dim, n);
    float *got = case_read(&c, c.out), *gt = case_grad(&c, 0);
    /* A copy, and sums in the reference's token order: exact. */
    expect_close(what, got, want, n * (size_t)dim, 0);
    strcat(what, " dtable");
    expect_close(what, gt, dtable, nt, 0);
    free(want), free(dtable), free(got), free(gt);
    case_end(&c);
}

Test(ops_vk, embedding_matches_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    const int64_t one = 1, seven[1] = { 7 }, s35[2] = { 3, 5 }, s234[3] = { 2, 3, 4 }, s433[2] = { 4, 33 };
    const int64_t model[2] = { 16, 128 };
    check_embedding(ctx, 1300, 1, 1, 1, &one, 1);
    check_embedding(ctx, 1301, 5, 3, 1, seven, 5);       /* dim not a multiple of 4 */
    check_embedding(ctx, 1302, 256, 12, 2, s35, 256);    /* most rows unused */
    check_embedding(ctx, 1303, 10, 4, 3, s234, 3);       /* ids (2, 3, 4) -> (2, 3, 4, 4); rows 3.. unused */
    check_embedding(ctx, 1304, 3, 20, 2, s433, 3);       /* many repeats; 132 tokens, whole quads */
    check_embedding(ctx, 1305, 256, 128, 2, s433, 256);  /* V = 8 chunks */
    check_embedding(ctx, 1306, 256, 128, 2, model, 256); /* the GPT's default batch */
    check_embedding(ctx, 1307, 7, 66, 1, seven, 7);      /* odd dim, 7 tokens (a tail) */
    test_gpu_done(ctx);
}

/* Ids outside [0, vocab) (bad data) read nothing: a zero row, no gradient. */
Test(ops_vk, embedding_ids_out_of_range_give_zero_rows)
{
    qat_ctx *ctx = test_gpu_ctx();
    for (int dim = 3; dim <= 4; dim++) { /* the scalar and the vec4 path */
        op_case c;
        case_begin(&c, ctx, 1320 + dim);
        int64_t ts[2] = { 4, dim }, n = 6;
        int table = case_param(&c, "table", 2, ts, -1, 1);
        int ids = case_ids(&c, 1, &n, 4);
        const int32_t bad[6] = { 1, -1, 4, 3, 1 << 30, 1 };
        memcpy(c.ids_data, bad, sizeof bad);
        case_run(&c, qat_embedding(c.g, table, ids), true);
        float *got = case_read(&c, c.out), *gt = case_grad(&c, 0);
        for (int t = 0; t < 6; t++)
            for (int j = 0; j < dim; j++) {
                bool ok = bad[t] >= 0 && bad[t] < 4;
                float want = ok ? c.in_data[0][bad[t] * dim + j] : 0.0f;
                cr_expect(got[t * dim + j] == want, "dim %d token %d (id %d) column %d: %g, want %g", dim, t, bad[t], j,
                          (double)got[t * dim + j], (double)want);
            }
        for (int j = 0; j < dim; j++) {
            float row1 = c.r[0 * dim + j] + c.r[5 * dim + j], row3 = c.r[3 * dim + j];
            cr_expect(gt[1 * dim + j] == row1 && gt[3 * dim + j] == row3 && gt[0 * dim + j] == 0 && gt[2 * dim + j] == 0,
                      "dim %d dtable column %d", dim, j);
        }
        free(got), free(gt);
        case_end(&c);
    }
    test_gpu_done(ctx);
}

static void check_layer_norm(qat_ctx *ctx, uint64_t seed, int ndim, const int64_t *shape, float eps)
{
    op_case c;
    case_begin(&c, ctx, seed);
    int64_t ch = shape[ndim - 1];
    int x = case_param(&c, "x", ndim, shape, -2, 2);
    int gamma = case_param(&c, "gamma", 1, &ch, -1.5, 1.5);
    int beta = case_param(&c, "beta", 1, &ch, -1, 1);
    size_t n = (size_t)qat_shape_numel(ndim, shape), cc = (size_t)ch, rows = n / cc;
    /* Rows far from zero: the two-pass variance must not cancel. */
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < cc; j++) c.in_data[0][r * cc + j] += (float)(r % 5) * 3.0f;
    case_run(&c, qat_layer_norm(c.g, x, gamma, beta, eps), true);
    float *want = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    float *dgamma = malloc(cc * sizeof(float)), *dbeta = malloc(cc * sizeof(float));
    qat_layer_norm_forward_ref(want, NULL, NULL, c.in_data[0], c.in_data[1], c.in_data[2], rows, cc, eps);
    qat_layer_norm_backward_ref(dx, dgamma, dbeta, c.r, c.in_data[0], c.in_data[1], rows, cc, eps);
    char what[96];
    snprintf(what, sizeof what, "layer_norm rows %zu C %zu", rows, cc);
    float *got = case_read(&c, c.out), *gx = case_grad(&c, 0), *gg = case_grad(&c, 1), *gb = case_grad(&c, 2);
    /* The reference's operations in its order; only sqrt and division may
     * round differently on another device (lavapipe matches bit for bit). */
    expect_close(what, got, want, n, 1e-6);
    strcat(what, " dx");
    expect_close(what, gx, dx, n, 2e-6);
    /* d gamma sums chunks of 64 rows, then the chunks: another order. */
    snprintf(what, sizeof what, "layer_norm rows %zu C %zu dgamma", rows, cc);
    expect_close(what, gg, dgamma, cc, 2e-6 * sqrt((double)rows) + 1e-6);
    snprintf(what, sizeof what, "layer_norm rows %zu C %zu dbeta", rows, cc);
    expect_close(what, gb, dbeta, cc, 2e-6 * sqrt((double)rows) + 1e-6);
    free(want), free(dx), free(dgamma), free(dbeta), free(got), free(gx), free(gg), free(gb);
    case_end(&c);
}

Test(ops_vk, layer_norm_matches_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    const int64_t s11[2] = { 1, 1 }, s35[2] = { 3, 5 }, s712[2] = { 7, 12 }, s237[3] = { 2, 3, 7 };
    const int64_t s130[2] = { 130, 128 }, s65[2] = { 65, 33 }, s1000[2] = { 2, 1000 }, s4d[4] = { 2, 2, 3, 8 };
    const int64_t model[3] = { 16, 128, 128 };
    check_layer_norm(ctx, 1400, 2, s11, 1e-5f); /* C = 1: xhat = 0, y = beta */
    check_layer_norm(ctx, 1401, 2, s35, 1e-5f);
    check_layer_norm(ctx, 1402, 2, s712, 1e-3f);
    check_layer_norm(ctx, 1403, 3, s237, 1e-5f);
    check_layer_norm(ctx, 1404, 2, s130, 1e-5f); /* three d gamma chunks, the last short */
    check_layer_norm(ctx, 1405, 2, s65, 1e-5f);  /* two chunks, odd C */
    check_layer_norm(ctx, 1406, 2, s1000, 1e-5f);
    check_layer_norm(ctx, 1407, 4, s4d, 1e-5f);
    check_layer_norm(ctx, 1408, 3, model, 1e-5f);
    const int64_t s1001[2] = { 3, 1001 };
    check_layer_norm(ctx, 1409, 2, s1001, 1e-5f); /* a long row, not whole vec4s */
    test_gpu_done(ctx);
}

static void check_causal_softmax(qat_ctx *ctx, uint64_t seed, int ndim, const int64_t *shape, float scale, float range)
{
    op_case c;
    case_begin(&c, ctx, seed);
    int x = case_param(&c, "x", ndim, shape, -range, range);
    case_run(&c, qat_causal_softmax(c.g, x, scale), true);
    size_t t = (size_t)shape[ndim - 1], n = (size_t)qat_shape_numel(ndim, shape), batch = n / (t * t);
    float *want = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    qat_causal_softmax_forward_ref(want, c.in_data[0], batch, t, scale);
    qat_causal_softmax_backward_ref(dx, c.r, want, batch, t, scale);
    float *got = case_read(&c, c.out), *gx = case_grad(&c, 0);
    char what[96];
    snprintf(what, sizeof what, "causal_softmax batch %zu T %zu scale %g", batch, t, (double)scale);
    /* The device's exp against expf: a few ulp of each weight, relative to
     * the largest (lavapipe: at most 9e-8); the backward inherits it through
     * y (at most 1.8e-7). */
    expect_close(what, got, want, n, 5e-7);
    strcat(what, " dx");
    expect_close(what, gx, dx, n, 1e-6);
    size_t above = 0;
    for (size_t i = 0; i < n; i++)
        if (i % t > (i / t) % t) above += got[i] != 0.0f || gx[i] != 0.0f;
    cr_expect(above == 0, "%s: %zu weights or gradients above the diagonal are not exactly 0", what, above);
    free(want), free(dx), free(got), free(gx);
    case_end(&c);
}

Test(ops_vk, causal_softmax_matches_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    const int64_t s1[3] = { 1, 1, 1 }, s5[3] = { 3, 5, 5 }, s8[3] = { 2, 8, 8 }, s4d[4] = { 2, 3, 6, 6 };
    const int64_t s33[3] = { 5, 33, 33 }, s128[3] = { 3, 128, 128 }, s2d[2] = { 12, 12 };
    check_causal_softmax(ctx, 1500, 3, s1, 0.5f, 2);
    check_causal_softmax(ctx, 1501, 3, s5, 1.0f, 3);
    check_causal_softmax(ctx, 1502, 3, s8, 0.5f, 3);
    check_causal_softmax(ctx, 1503, 4, s4d, 0.35f, 4);
    check_causal_softmax(ctx, 1504, 3, s33, 0.17f, 8);
    check_causal_softmax(ctx, 1505, 3, s128, 0.17677669f, 6); /* 1 / sqrt(32) */
    check_causal_softmax(ctx, 1506, 2, s2d, 2.0f, 30);        /* large exponents: the max is subtracted */
    const int64_t s257[3] = { 1, 257, 257 };
    check_causal_softmax(ctx, 1507, 3, s257, 0.125f, 4);      /* long rows, not whole vec4s */
    test_gpu_done(ctx);
}

static void check_transpose12(qat_ctx *ctx, uint64_t seed, const int64_t *shape)
{
    op_case c;
    case_begin(&c, ctx, seed);
    int x = case_param(&c, "x", 4, shape, -1, 1);
    case_run(&c, qat_transpose12(c.g, x), true);
    size_t a = (size_t)shape[0], b = (size_t)shape[1], cc = (size_t)shape[2], d = (size_t)shape[3];
    size_t n = a * b * cc * d;
    float *want = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    qat_transpose12_ref(want, c.in_data[0], a, b, cc, d);
    qat_transpose12_ref(dx, c.r, a, cc, b, d);
    const qat_tensor *ty = qat_tensor_get(c.g, c.out);
    cr_expect(ty->shape[0] == shape[0] && ty->shape[1] == shape[2] && ty->shape[2] == shape[1] &&
                  ty->shape[3] == shape[3],
              "transpose12 output shape");
    float *got = case_read(&c, c.out), *gx = case_grad(&c, 0);
    char what[96];
    snprintf(what, sizeof what, "transpose12 %zux%zux%zux%zu", a, b, cc, d);
    expect_close(what, got, want, n, 0);
    strcat(what, " dx");
    expect_close(what, gx, dx, n, 0);
    free(want), free(dx), free(got), free(gx);
    case_end(&c);
}

Test(ops_vk, transpose12_matches_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    const int64_t shapes[][4] = { { 1, 1, 1, 1 }, { 2, 3, 5, 7 }, { 2, 7, 2, 4 }, { 3, 4, 5, 8 }, { 1, 1, 6, 3 },
                                  { 16, 128, 4, 32 } };
    for (size_t s = 0; s < QAT_ARRAY_LEN(shapes); s++) check_transpose12(ctx, 1600 + s, shapes[s]);
    test_gpu_done(ctx);
}

/* A floor on a parameter (after the optimizer, for LSQ's steps): in place,
 * elements below lo become lo, the rest keep their bits (NaN and infinities
 * too, as torch.clamp_), and a parameter beside it is not touched. Run twice:
 * the second run changes nothing. */
Test(ops_vk, param_floor_raises_only_what_is_below)
{
    qat_ctx *ctx = test_gpu_ctx();
    qat_graph *g = qat_graph_create(ctx);
    const int64_t n = 1037, m = 5;
    int a = qat_param(g, "a", 1, &n, true), b = qat_param(g, "b", 1, &m, true);
    qat_param_floor(g, a, 0.25f);
    cr_assert_eq(qat_graph_compile(g), QAT_OK, "%s", qat_error_message());
    test_rng rng = { 77 };
    float *x = malloc((size_t)n * sizeof *x), *want = malloc((size_t)n * sizeof *want);
    float *got = malloc((size_t)n * sizeof *got);
    test_fill(&rng, x, (size_t)n, -1.0f, 1.0f);
    x[3] = NAN, x[4] = -INFINITY, x[5] = INFINITY, x[6] = 0.25f, x[7] = nextafterf(0.25f, 0.0f);
    const float bx[5] = { -3.0f, 0.0f, 0.1f, -0.0f, 2.0f };
    cr_assert_eq(qat_tensor_write(g, a, x), QAT_OK);
    cr_assert_eq(qat_tensor_write(g, b, bx), QAT_OK);
    memcpy(want, x, (size_t)n * sizeof *want);
    qat_param_floor_ref(want, (size_t)n, 0.25f);
    qat_seq *seq;
    cr_assert_eq(qat_seq_create(g, 0, qat_graph_node_count(g), &seq), QAT_OK);
    for (int run = 0; run < 2; run++) {
        cr_assert_eq(qat_seq_run(seq), QAT_OK, "%s", qat_error_message());
        cr_assert_eq(qat_tensor_read(g, a, got), QAT_OK);
        cr_expect_arr_eq(got, want, (size_t)n * sizeof *got, "run %d", run);
    }
    cr_expect(isnan(got[3]) && got[4] == 0.25f && isinf(got[5]) && got[7] == 0.25f);
    float by[5];
    cr_assert_eq(qat_tensor_read(g, b, by), QAT_OK);
    cr_expect_arr_eq(by, bx, sizeof bx, "the other parameter is untouched");
    qat_seq_free(seq);
    qat_graph_free(g);
    free(x), free(want), free(got);
    test_gpu_done(ctx);
}
