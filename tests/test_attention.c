/* One causal self-attention block as the GPT model builds it, end to end:
 *   h = layer_norm(x); q, k, v = linear(h) each, (B, T, C) -> (B, T, H, D)
 *   -> transpose12 -> (B*H, T, D); att = causal_softmax(q k^T, 1/sqrt(D));
 *   y = att v -> (B, H, T, D) -> transpose12 -> (B, T, C).
 * Three views of it: the C reference ops composed by hand (forward and
 * backward) against a PyTorch fixture (tests/golden/attention_fixture.h, from
 * gen_attention_fixture.py); the Vulkan graph (the real builders, batched
 * matmuls with transposes and autograd) against the same fixture; and the
 * graph against the reference composition on other shapes, T = 1, D not a
 * multiple of 4, one head, and the model's own head size among them.
 *
 * Errors are measured relative to each tensor's largest magnitude
 * (test_rel_max_err); the tolerances, at each check, come from the measured
 * errors with a margin. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_ref.h"
#include "ops/ops_vk.h"
#include "tests/golden/attention_fixture.h"
#include "tests/test_util.h"

typedef struct attn_dims {
    size_t b, t, h, d; /* C = h * d */
} attn_dims;

enum { P_X, P_GAMMA, P_BETA, P_WQ, P_BQ, P_WK, P_BK, P_WV, P_BV, P_COUNT };

static const float attn_eps = 1e-5f;

static size_t param_numel(const attn_dims *a, int p)
{
    size_t c = a->h * a->d;
    if (p == P_X) return a->b * a->t * c;
    return p == P_WQ || p == P_WK || p == P_WV ? c * c : c;
}

static float attn_scale(const attn_dims *a) { return 1.0f / sqrtf((float)a->d); }

/* ---- the reference composition -------------------------------------------------- */

/* y (B, T, C) and, given dy, the gradient of sum(y * dy) for every input
 * (grad[p] shaped like input p). */
static void attention_ref(const attn_dims *a, const float *const in[P_COUNT], const float *dy, float *y,
                          float *const grad[P_COUNT])
{
    size_t B = a->b, T = a->t, H = a->h, D = a->d, C = H * D, rows = B * T, n = rows * C, bh = B * H;
    float scale = attn_scale(a);
    qat_matmul_dims proj = { 1, rows, C, C, false, true, 0, 0 };
    qat_matmul_dims qk = { bh, T, T, D, false, true, T * D, T * D };
    qat_matmul_dims av = { bh, T, D, T, false, false, T * T, T * D };
    float *hn = malloc(n * sizeof(float)), *p[3], *heads[3];
    float *s = malloc(bh * T * T * sizeof(float)), *att = malloc(bh * T * T * sizeof(float));
    float *o = malloc(n * sizeof(float));
    qat_layer_norm_forward_ref(hn, NULL, NULL, in[P_X], in[P_GAMMA], in[P_BETA], rows, C, attn_eps);
    for (int i = 0; i < 3; i++) {
        p[i] = malloc(n * sizeof(float));
        heads[i] = malloc(n * sizeof(float));
        qat_matmul_forward_ref(p[i], hn, in[P_WQ + 2 * i], &proj);
        qat_bias_add_forward_ref(p[i], p[i], in[P_BQ + 2 * i], rows, C, 1);
        qat_transpose12_ref(heads[i], p[i], B, T, H, D);
    }
    qat_matmul_forward_ref(s, heads[0], heads[1], &qk);
    qat_causal_softmax_forward_ref(att, s, bh, T, scale);
    qat_matmul_forward_ref(o, att, heads[2], &av);
    qat_transpose12_ref(y, o, B, H, T, D);

    /* Backward, the forward's steps in reverse; the three projections'
     * input gradients accumulate into one dh. */
    float *dout = malloc(n * sizeof(float)), *datt = malloc(bh * T * T * sizeof(float));
    float *ds = malloc(bh * T * T * sizeof(float)), *dheads[3], *dp = malloc(n * sizeof(float));
    float *dh = calloc(n, sizeof(float));
    for (int i = 0; i < 3; i++) dheads[i] = malloc(n * sizeof(float));
    qat_transpose12_ref(dout, dy, B, T, H, D);
    qat_matmul_backward_ref(datt, dheads[2], dout, att, heads[2], &av, false);
    qat_causal_softmax_backward_ref(ds, datt, att, bh, T, scale);
    qat_matmul_backward_ref(dheads[0], dheads[1], ds, heads[0], heads[1], &qk, false);
    for (int i = 0; i < 3; i++) {
        qat_transpose12_ref(dp, dheads[i], B, H, T, D);
        qat_matmul_backward_ref(dh, NULL, dp, hn, in[P_WQ + 2 * i], &proj, true);
        qat_matmul_backward_ref(NULL, grad[P_WQ + 2 * i], dp, hn, in[P_WQ + 2 * i], &proj, false);
        qat_bias_add_backward_ref(NULL, grad[P_BQ + 2 * i], dp, rows, C, 1);
    }
    qat_layer_norm_backward_ref(grad[P_X], grad[P_GAMMA], grad[P_BETA], dh, in[P_X], in[P_GAMMA], rows, C, attn_eps);
    for (int i = 0; i < 3; i++) free(p[i]), free(heads[i]), free(dheads[i]);
    free(hn), free(s), free(att), free(o), free(dout), free(datt), free(ds), free(dp), free(dh);
}

/* ---- the graph --------------------------------------------------------------------- */

static int split_heads(qat_graph *g, int t, const attn_dims *a)
{
    int64_t s4[4] = { (int64_t)a->b, (int64_t)a->t, (int64_t)a->h, (int64_t)a->d };
    int64_t s3[3] = { (int64_t)(a->b * a->h), (int64_t)a->t, (int64_t)a->d };
    return qat_reshape(g, qat_transpose12(g, qat_reshape(g, t, 4, s4)), 3, s3);
}

static int merge_heads(qat_graph *g, int t, const attn_dims *a)
{
    int64_t s4[4] = { (int64_t)a->b, (int64_t)a->h, (int64_t)a->t, (int64_t)a->d };
    int64_t s3[3] = { (int64_t)a->b, (int64_t)a->t, (int64_t)(a->h * a->d) };
    return qat_reshape(g, qat_transpose12(g, qat_reshape(g, t, 4, s4)), 3, s3);
}

/* Runs the block on the device: y and every input's gradient of sum(y * dy). */
static void attention_device(qat_ctx *ctx, const attn_dims *a, const float *const in[P_COUNT], const float *dy,
                             float *y, float *const grad[P_COUNT])
{
    static const char *names[P_COUNT] = { "x", "gamma", "beta", "wq", "bq", "wk", "bk", "wv", "bv" };
    int64_t c = (int64_t)(a->h * a->d);
    qat_graph *g = qat_graph_create(ctx);
    int p[P_COUNT];
    for (int i = 0; i < P_COUNT; i++) {
        int64_t shape[3] = { (int64_t)a->b, (int64_t)a->t, c }, wshape[2] = { c, c };
        bool w = i == P_WQ || i == P_WK || i == P_WV;
        p[i] = i == P_X ? qat_param(g, names[i], 3, shape, true) : qat_param(g, names[i], w ? 2 : 1, w ? wshape : &c, true);
    }
    int h = qat_layer_norm(g, p[P_X], p[P_GAMMA], p[P_BETA], attn_eps);
    int heads[3];
    for (int i = 0; i < 3; i++) heads[i] = split_heads(g, qat_linear(g, h, p[P_WQ + 2 * i], p[P_BQ + 2 * i]), a);
    int att = qat_causal_softmax(g, qat_matmul(g, heads[0], heads[1], false, true), attn_scale(a));
    int out = merge_heads(g, qat_matmul(g, att, heads[2], false, false), a);
    int64_t shape[3] = { (int64_t)a->b, (int64_t)a->t, c };
    int r = qat_const(g, "dy", 3, shape, dy);
    qat_graph_mark_output(g, out);
    qat_graph_backward(g, qat_sum(g, qat_mul(g, out, r), -1));
    cr_assert_eq(qat_graph_compile(g), QAT_OK, "%s", qat_error_message());
    for (int i = 0; i < P_COUNT; i++) cr_assert_eq(qat_tensor_write(g, p[i], in[i]), QAT_OK);
    qat_seq *seq;
    cr_assert_eq(qat_seq_create(g, 0, qat_graph_node_count(g), &seq), QAT_OK);
    cr_assert_eq(qat_seq_run(seq), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(qat_tensor_read(g, out, y), QAT_OK);
    for (int i = 0; i < P_COUNT; i++) {
        int gid = qat_tensor_get(g, p[i])->grad;
        cr_assert(gid >= 0, "no gradient for %s", names[i]);
        cr_assert_eq(qat_tensor_get(g, gid)->numel, (int64_t)param_numel(a, i));
        cr_assert_eq(qat_tensor_read(g, gid, grad[i]), QAT_OK);
    }
    qat_seq_free(seq);
    qat_graph_free(g);
}

/* ---- comparisons ------------------------------------------------------------------- */

static const char *grad_names[P_COUNT] = { "dx", "dgamma", "dbeta", "dwq", "dbq", "dwk", "dbk", "dwv", "dbv" };

static double expect_close(const char *what, const float *got, const float *want, size_t n, double tol, double floor)
{
    double err = test_rel_max_err(got, want, n, floor);
    cr_expect(err <= tol, "%s: error %.3g relative to its scale exceeds %.3g", what, err, tol);
    return err;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* d bk is 0 in exact arithmetic: bk adds q . bk to a whole row of scores,
 * which the softmax ignores. What remains is rounding noise, held to the
 * scale of d bq (the same sums with the roles of q and k exchanged). */
static void expect_all_close(const char *what, const attn_dims *a, const float *y, const float *const grad[P_COUNT],
                             const float *want_y, const float *const want[P_COUNT], double tol_y, double tol_grad)
{
    char name[128];
    snprintf(name, sizeof name, "%s y", what);
    double worst_y = expect_close(name, y, want_y, param_numel(a, P_X), tol_y, 1e-6), worst = 0;
    for (int i = 0; i < P_COUNT; i++) {
        snprintf(name, sizeof name, "%s %s", what, grad_names[i]);
        double floor = i == P_BK ? fmax(max_abs(want[P_BQ], param_numel(a, P_BQ)), 1e-6) : 1e-6;
        worst = fmax(worst, expect_close(name, grad[i], want[i], param_numel(a, i), tol_grad, floor));
    }
    cr_log_info("%s: y error %.3g, worst gradient error %.3g", what, worst_y, worst);
}

typedef struct attn_case {
    attn_dims a;
    float *in[P_COUNT], *dy, *y, *grad[P_COUNT];
} attn_case;

static void case_alloc(attn_case *c, attn_dims a)
{
    memset(c, 0, sizeof *c);
    c->a = a;
    for (int i = 0; i < P_COUNT; i++) {
        c->in[i] = malloc(param_numel(&a, i) * sizeof(float));
        c->grad[i] = malloc(param_numel(&a, i) * sizeof(float));
    }
    c->dy = malloc(param_numel(&a, P_X) * sizeof(float));
    c->y = malloc(param_numel(&a, P_X) * sizeof(float));
}

static void case_free(attn_case *c)
{
    for (int i = 0; i < P_COUNT; i++) free(c->in[i]), free(c->grad[i]);
    free(c->dy), free(c->y);
}

static void case_fixture(attn_case *c)
{
    attn_dims a = { GOLDEN_ATTN_B, GOLDEN_ATTN_T, GOLDEN_ATTN_H, GOLDEN_ATTN_D };
    case_alloc(c, a);
    const float *src[P_COUNT] = { golden_attn_x,  golden_attn_gamma, golden_attn_beta, golden_attn_wq, golden_attn_bq,
                                  golden_attn_wk, golden_attn_bk,    golden_attn_wv,   golden_attn_bv };
    for (int i = 0; i < P_COUNT; i++) memcpy(c->in[i], src[i], param_numel(&a, i) * sizeof(float));
    memcpy(c->dy, golden_attn_dy, param_numel(&a, P_X) * sizeof(float));
}

static const float *const golden_grads[P_COUNT] = { golden_attn_dx, golden_attn_dgamma, golden_attn_dbeta,
                                                    golden_attn_dwq, golden_attn_dbq, golden_attn_dwk,
                                                    golden_attn_dbk, golden_attn_dwv, golden_attn_dbv };

/* PyTorch orders its sums differently (and fuses multiply-adds) at every
 * step: the differences are rounding, which the chain of ~8 ops grows to a
 * few 1e-7 of each tensor's scale (measured, the reference and the device
 * alike: y 1.5e-7, gradients 3.8e-7). Tolerance 1e-6 for y, 3e-6 for the
 * gradients; a wrong index, transpose or mask is off by 1e-2 or more. */
Test(attention, reference_composition_matches_pytorch)
{
    attn_case c;
    case_fixture(&c);
    attention_ref(&c.a, (const float *const *)c.in, c.dy, c.y, c.grad);
    expect_all_close("reference vs torch", &c.a, c.y, (const float *const *)c.grad, golden_attn_y, golden_grads, 1e-6,
                     3e-6);
    case_free(&c);
}

Test(attention, device_matches_pytorch)
{
    qat_ctx *ctx = test_gpu_ctx();
    attn_case c;
    case_fixture(&c);
    attention_device(ctx, &c.a, (const float *const *)c.in, c.dy, c.y, c.grad);
    expect_all_close("device vs torch", &c.a, c.y, (const float *const *)c.grad, golden_attn_y, golden_grads, 1e-6,
                     3e-6);
    case_free(&c);
    test_gpu_done(ctx);
}

/* The device against the reference composition on random data: the same
 * ops, summing in other orders inside matmul and the gradient reductions. */
Test(attention, device_matches_reference_composition)
{
    qat_ctx *ctx = test_gpu_ctx();
    const attn_dims shapes[] = {
        { 1, 1, 1, 4 },   /* T = 1, one head: every batched matmul has batch 1 */
        { 2, 7, 2, 4 },
        { 1, 5, 3, 6 },   /* D = 6, C = 18: no vec4 rows */
        { 3, 9, 1, 8 },
        { 2, 64, 4, 32 }, /* the model's head size */
    };
    for (size_t s = 0; s < QAT_ARRAY_LEN(shapes); s++) {
        attn_case c, ref;
        case_alloc(&c, shapes[s]);
        case_alloc(&ref, shapes[s]);
        test_rng rng = { 0xA77E + s };
        size_t c_dim = shapes[s].h * shapes[s].d;
        for (int i = 0; i < P_COUNT; i++) {
            bool w = i == P_WQ || i == P_WK || i == P_WV;
            float bound = i == P_X ? 2.0f : w ? 1.0f / sqrtf((float)c_dim) : 0.5f;
            test_fill(&rng, c.in[i], param_numel(&c.a, i), -bound, bound);
            if (i == P_GAMMA)
                for (size_t j = 0; j < c_dim; j++) c.in[i][j] += 1.0f;
            memcpy(ref.in[i], c.in[i], param_numel(&c.a, i) * sizeof(float));
        }
        test_fill(&rng, c.dy, param_numel(&c.a, P_X), -1, 1);
        attention_device(ctx, &c.a, (const float *const *)c.in, c.dy, c.y, c.grad);
        attention_ref(&ref.a, (const float *const *)ref.in, c.dy, ref.y, ref.grad);
        char what[96];
        snprintf(what, sizeof what, "device vs reference B %zu T %zu H %zu D %zu", c.a.b, c.a.t, c.a.h, c.a.d);
        /* Measured: y up to 1.3e-7, gradients up to 4.1e-7 (the longest
         * sums: over B T = 128 rows for the weight gradients). */
        expect_all_close(what, &c.a, c.y, (const float *const *)c.grad, ref.y, (const float *const *)ref.grad, 1e-6,
                         3e-6);
        case_free(&c);
        case_free(&ref);
    }
    test_gpu_done(ctx);
}
