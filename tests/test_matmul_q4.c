/* The 4-bit linear layer: its CPU reference (ops/matmul_q4.c) against a
 * linear layer on the dequantized weight and by finite differences, and the
 * device op (shaders/matmul_q4.comp) against the reference, forward and
 * input gradient through the real autograd, on awkward sizes and on the
 * aligned fast path; a frozen 4-bit layer inside a trainable graph; the
 * device memory such a weight takes.
 *
 * Tolerances: the shader sums with fma in the reference's order, so results
 * differ from the reference by rounding only; as in tests/test_ops_vk.c the
 * error is taken relative to the tensor's largest magnitude and bounded by
 * 2e-6 sqrt(k) + 1e-6 for sums of k products. The dequantized weights
 * themselves are exact on both sides (the shader's products are `precise`),
 * which the tests rely on: a wrong code, nibble order, block or absmax is an
 * error of the order of the weights, far above these bounds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_ref.h"
#include "ops/ops_vk.h"
#include "qat/q4.h"
#include "tests/test_util.h"

static float *random_floats(test_rng *r, size_t n, float lo, float hi)
{
    float *x = malloc(n * sizeof *x);
    test_fill(r, x, n, lo, hi);
    return x;
}

/* A random weight (rows of varying scale, like a trained layer), quantized. */
static void random_q4(qat_q4_weight *w, test_rng *r, qat_q4_type type, int64_t out, int64_t in, bool dq)
{
    float *dense = random_floats(r, (size_t)(out * in), -1, 1);
    for (int64_t o = 0; o < out; o++) {
        float s = test_rng_float(r, 0.05f, 1.0f);
        for (int64_t i = 0; i < in; i++) dense[o * in + i] *= s;
    }
    qat_q4_weight_init(w, type, out, in, dq);
    qat_q4_weight_quantize(w, dense);
    free(dense);
}

static double rel_err(const float *got, const float *want, size_t n) { return test_rel_max_err(got, want, n, 1e-6); }

/* ---- CPU reference ------------------------------------------------------------- */

Test(matmul_q4_ref, equals_a_linear_layer_on_the_dequantized_weight)
{
    test_rng r = { 11 };
    static const int64_t shapes[][3] = { { 3, 5, 37 }, { 4, 7, 64 }, { 2, 300, 64 }, { 5, 13, 100 } };
    for (size_t s = 0; s < QAT_ARRAY_LEN(shapes); s++)
        for (int type = 0; type < QAT_Q4_TYPE_COUNT; type++)
            for (int dq = 0; dq < 2; dq++) {
                int64_t rows = shapes[s][0], out = shapes[s][1], in = shapes[s][2];
                qat_q4_weight w;
                random_q4(&w, &r, type, out, in, dq);
                float *x = random_floats(&r, (size_t)(rows * in), -1, 1), *bias = random_floats(&r, (size_t)out, -1, 1);
                float *dense = malloc((size_t)(out * in) * sizeof *dense);
                qat_q4_weight_dequantize(&w, dense);
                float *y = malloc((size_t)(rows * out) * sizeof *y), *want = malloc((size_t)(rows * out) * sizeof *want);
                qat_matmul_dims d = { 1, (size_t)rows, (size_t)out, (size_t)in, false, true, 0, 0 };
                qat_matmul_forward_ref(want, x, dense, &d);
                for (int64_t i = 0; i < rows * out; i++) want[i] += bias[i % out];
                qat_matmul_q4_forward_ref(y, x, (size_t)rows, &w, bias);
                cr_assert_eq(memcmp(y, want, (size_t)(rows * out) * sizeof *y), 0, "forward %zu %s dq %d", s,
                             qat_q4_type_name(type), dq);
                /* dx = dy W, the same order as the matmul reference's dA. */
                float *dy = random_floats(&r, (size_t)(rows * out), -1, 1);
                float *dx = malloc((size_t)(rows * in) * sizeof *dx), *dx_want = malloc((size_t)(rows * in) * sizeof *dx);
                qat_matmul_backward_ref(dx_want, NULL, dy, x, dense, &d, false);
                qat_matmul_q4_backward_input_ref(dx, dy, (size_t)rows, &w);
                cr_assert_eq(memcmp(dx, dx_want, (size_t)(rows * in) * sizeof *dx), 0, "input gradient %zu", s);
                free(x), free(bias), free(dense), free(y), free(want), free(dy), free(dx), free(dx_want);
                qat_q4_weight_free(&w);
            }
}

/* L = sum r * y, accumulated in double; central differences in x. y is
 * linear in x, so with a large step only float rounding remains (see
 * tests/test_ops_ref.c): below 1e-6 here, against 1e-5. */
Test(matmul_q4_ref, input_gradient_matches_finite_differences)
{
    test_rng r = { 12 };
    for (int type = 0; type < QAT_Q4_TYPE_COUNT; type++) {
        int64_t rows = 3, out = 6, in = 71;
        qat_q4_weight w;
        random_q4(&w, &r, type, out, in, true);
        float *x = random_floats(&r, (size_t)(rows * in), -1, 1), *rr = random_floats(&r, (size_t)(rows * out), -1, 1);
        float *y = malloc((size_t)(rows * out) * sizeof *y), *dx = malloc((size_t)(rows * in) * sizeof *dx);
        qat_matmul_q4_backward_input_ref(dx, rr, (size_t)rows, &w);
        for (int64_t i = 0; i < rows * in; i++) {
            float keep = x[i], h = 0.25f;
            double loss[2];
            for (int side = 0; side < 2; side++) {
                x[i] = side ? keep + h : keep - h;
                qat_matmul_q4_forward_ref(y, x, (size_t)rows, &w, NULL);
                loss[side] = 0;
                for (int64_t j = 0; j < rows * out; j++) loss[side] += (double)rr[j] * y[j];
            }
            double numeric = (loss[1] - loss[0]) / ((double)(keep + h) - (double)(keep - h));
            x[i] = keep;
            cr_assert(fabs(dx[i] - numeric) <= 1e-5 + 1e-5 * fabs(numeric), "%s dx[%lld] = %g, numeric %g",
                      qat_q4_type_name(type), (long long)i, dx[i], numeric);
        }
        free(x), free(rr), free(y), free(dx);
        qat_q4_weight_free(&w);
    }
}

/* ---- device against reference -------------------------------------------------- */

typedef struct q4_case {
    qat_q4_type type;
    bool dq, bias, three_d;
    int64_t rows, out, in; /* rows = B * T when three_d (B = 3) */
} q4_case;

static void check_device(qat_ctx *ctx, const q4_case *k, uint64_t seed)
{
    test_rng r = { seed };
    qat_q4_weight w;
    random_q4(&w, &r, k->type, k->out, k->in, k->dq);
    qat_graph *g = qat_graph_create(ctx);
    int64_t xs3[3] = { 3, k->rows / 3, k->in }, xs2[2] = { k->rows, k->in };
    int x = qat_param(g, "x", k->three_d ? 3 : 2, k->three_d ? xs3 : xs2, true);
    int bias = k->bias ? qat_param(g, "bias", 1, &k->out, true) : -1;
    qat_q4_weight_tensors t = qat_q4_weight_add(g, "w", k->type, k->out, k->in, k->dq);
    int y = qat_matmul_q4(g, x, &t, bias);
    const qat_tensor *ty = qat_tensor_get(g, y);
    cr_assert_eq(ty->ndim, k->three_d ? 3 : 2);
    cr_assert_eq(ty->shape[ty->ndim - 1], k->out);
    size_t ny = (size_t)(k->rows * k->out), nx = (size_t)(k->rows * k->in);
    float *rr = random_floats(&r, ny, -1, 1);
    int64_t shape[QAT_MAX_DIMS];
    memcpy(shape, ty->shape, sizeof shape);
    int rc = qat_const(g, "r", ty->ndim, shape, rr);
    qat_graph_mark_output(g, y);
    int loss = qat_sum(g, qat_mul(g, y, rc), -1);
    qat_graph_backward(g, loss);
    cr_assert_eq(qat_tensor_get(g, t.packed)->grad, -1, "the 4-bit weight gets no gradient");
    cr_assert_eq(qat_graph_param_count(g), k->bias ? 2 : 1, "only x and the bias are trainable");
    cr_assert_eq(qat_graph_compile(g), QAT_OK, "%s", qat_error_message());
    float *xv = random_floats(&r, nx, -1, 1), *bv = k->bias ? random_floats(&r, (size_t)k->out, -1, 1) : NULL;
    cr_assert_eq(qat_tensor_write(g, x, xv), QAT_OK);
    if (bias >= 0) cr_assert_eq(qat_tensor_write(g, bias, bv), QAT_OK);
    cr_assert_eq(qat_q4_weight_upload(g, &t, &w), QAT_OK);
    qat_seq *seq;
    cr_assert_eq(qat_seq_create(g, 0, qat_graph_node_count(g), &seq), QAT_OK);
    cr_assert_eq(qat_seq_run(seq), QAT_OK, "%s", qat_error_message());
    qat_seq_free(seq);

    float *want = malloc(ny * sizeof *want), *got = malloc(ny * sizeof *got);
    float *dx_want = malloc(nx * sizeof *dx_want), *dx = malloc(nx * sizeof *dx);
    qat_matmul_q4_forward_ref(want, xv, (size_t)k->rows, &w, bv);
    qat_matmul_q4_backward_input_ref(dx_want, rr, (size_t)k->rows, &w);
    cr_assert_eq(qat_tensor_read(g, y, got), QAT_OK);
    cr_assert_eq(qat_tensor_read(g, qat_tensor_get(g, x)->grad, dx), QAT_OK);
    char what[128];
    snprintf(what, sizeof what, "%s%s rows %lld out %lld in %lld%s%s", qat_q4_type_name(k->type), k->dq ? " dq" : "",
             (long long)k->rows, (long long)k->out, (long long)k->in, k->bias ? " bias" : "", k->three_d ? " 3-d" : "");
    double e = rel_err(got, want, ny), tol = 2e-6 * sqrt((double)k->in) + 1e-6;
    cr_expect(e <= tol, "%s: forward error %.3g > %.3g", what, e, tol);
    e = rel_err(dx, dx_want, nx), tol = 2e-6 * sqrt((double)k->out) + 1e-6;
    cr_expect(e <= tol, "%s: input gradient error %.3g > %.3g", what, e, tol);
    if (bias >= 0) {
        float *db = malloc((size_t)k->out * sizeof *db), *db_want = malloc((size_t)k->out * sizeof *db);
        qat_reduce_sum_keepmid_forward_ref(db_want, rr, (size_t)k->rows, (size_t)k->out, 1);
        cr_assert_eq(qat_tensor_read(g, qat_tensor_get(g, bias)->grad, db), QAT_OK);
        e = rel_err(db, db_want, (size_t)k->out), tol = 2e-6 * sqrt((double)k->rows) + 1e-6;
        cr_expect(e <= tol, "%s: bias gradient error %.3g > %.3g", what, e, tol);
        free(db), free(db_want);
    }
    free(rr), free(xv), free(bv), free(want), free(got), free(dx_want), free(dx);
    qat_graph_free(g);
    qat_q4_weight_free(&w);
}

/* The general path (in % 8 != 0, or out % 4 != 0 for the input gradient):
 * odd weight counts (a pad nibble), short last blocks, more than 256 blocks
 * (two scales). */
Test(matmul_q4_vk, awkward_sizes_match_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    static const q4_case cases[] = {
        { QAT_Q4_NF4, true, true, false, 7, 5, 37 },
        { QAT_Q4_FP4, true, false, true, 9, 13, 27 },
        { QAT_Q4_NF4, false, false, false, 1, 3, 1 },
        { QAT_Q4_FP4, false, true, true, 15, 11, 100 },
        { QAT_Q4_NF4, true, true, false, 5, 151, 129 },
        { QAT_Q4_FP4, true, false, false, 3, 64, 65 },
        { QAT_Q4_NF4, false, true, false, 31, 10, 36 }, /* in % 8 != 0 though in % 4 == 0 */
        { QAT_Q4_FP4, true, true, true, 12, 10, 72 },   /* fast forward, general input gradient */
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) check_device(ctx, &cases[i], 100 + i);
    test_gpu_done(ctx);
}

/* The fast path (in % 8 == 0, out % 4 == 0), rows not a multiple of the row
 * block, columns not a multiple of the column block; W rows that start
 * mid-block (in % 64 != 0) and ones that start blocks. */
Test(matmul_q4_vk, aligned_sizes_match_reference)
{
    qat_ctx *ctx = test_gpu_ctx();
    static const q4_case cases[] = {
        { QAT_Q4_NF4, true, true, false, 17, 12, 40 },
        { QAT_Q4_FP4, false, false, true, 9, 8, 96 },
        { QAT_Q4_NF4, true, false, false, 3, 256, 784 }, /* the mlp's fc1 (784 -> 256) */
        { QAT_Q4_NF4, true, true, false, 33, 12, 64 },
        { QAT_Q4_FP4, true, false, true, 21, 20, 192 },
        { QAT_Q4_NF4, false, false, true, 6, 8, 128 },
        { QAT_Q4_FP4, false, true, false, 70, 36, 128 },
        { QAT_Q4_NF4, true, false, false, 5, 300, 64 }, /* 300 blocks: two scales */
        { QAT_Q4_NF4, true, true, true, 99, 128, 512 },
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) check_device(ctx, &cases[i], 200 + i);
    test_gpu_done(ctx);
}

/* x -> frozen 4-bit layer (+ frozen bias) -> relu -> trainable linear ->
 * sum(r * y): the trainable layer's gradients and the input's gradient, which
 * flows back through the frozen layer, against the CPU reference. */
Test(matmul_q4_vk, gradient_flows_through_a_frozen_4bit_layer)
{
    qat_ctx *ctx = test_gpu_ctx();
    test_rng r = { 77 };
    int64_t rows = 24, in = 128, hid = 64, out = 10;
    qat_q4_weight w;
    random_q4(&w, &r, QAT_Q4_NF4, hid, in, true);
    qat_graph *g = qat_graph_create(ctx);
    int64_t xs[2] = { rows, in }, w2s[2] = { out, hid };
    int x = qat_param(g, "x", 2, xs, true);
    int b1 = qat_param(g, "b1", 1, &hid, false);
    int w2 = qat_param(g, "w2", 2, w2s, true), b2 = qat_param(g, "b2", 1, &out, true);
    qat_q4_weight_tensors t = qat_q4_weight_add(g, "w1", QAT_Q4_NF4, hid, in, true);
    int h = qat_relu(g, qat_matmul_q4(g, x, &t, b1));
    int y = qat_linear(g, h, w2, b2);
    float *rr = random_floats(&r, (size_t)(rows * out), -1, 1);
    int64_t ys[2] = { rows, out };
    int loss = qat_sum(g, qat_mul(g, y, qat_const(g, "r", 2, ys, rr)), -1);
    qat_graph_backward(g, loss);
    cr_assert_eq(qat_tensor_get(g, b1)->grad, -1, "a frozen bias gets no gradient");
    cr_assert_eq(qat_graph_compile(g), QAT_OK, "%s", qat_error_message());
    float *xv = random_floats(&r, (size_t)(rows * in), -1, 1), *b1v = random_floats(&r, (size_t)hid, -0.5f, 0.5f);
    float *w2v = random_floats(&r, (size_t)(out * hid), -1, 1), *b2v = random_floats(&r, (size_t)out, -1, 1);
    cr_assert_eq(qat_tensor_write(g, x, xv), QAT_OK);
    cr_assert_eq(qat_tensor_write(g, b1, b1v), QAT_OK);
    cr_assert_eq(qat_tensor_write(g, w2, w2v), QAT_OK);
    cr_assert_eq(qat_tensor_write(g, b2, b2v), QAT_OK);
    cr_assert_eq(qat_q4_weight_upload(g, &t, &w), QAT_OK);
    qat_seq *seq;
    cr_assert_eq(qat_seq_create(g, 0, qat_graph_node_count(g), &seq), QAT_OK);
    cr_assert_eq(qat_seq_run(seq), QAT_OK, "%s", qat_error_message());
    qat_seq_free(seq);

    /* Reference: the same chain on the CPU. */
    float *hv = malloc((size_t)(rows * hid) * sizeof *hv), *dh = malloc((size_t)(rows * hid) * sizeof *dh);
    float *dw2 = malloc((size_t)(out * hid) * sizeof *dw2), *db2 = malloc((size_t)out * sizeof *db2);
    float *dx = malloc((size_t)(rows * in) * sizeof *dx);
    qat_matmul_q4_forward_ref(hv, xv, (size_t)rows, &w, b1v);
    qat_relu_forward_ref(hv, hv, (size_t)(rows * hid));
    qat_matmul_dims d = { 1, (size_t)rows, (size_t)out, (size_t)hid, false, true, 0, 0 };
    qat_matmul_backward_ref(dh, dw2, rr, hv, w2v, &d, false);
    qat_reduce_sum_keepmid_forward_ref(db2, rr, (size_t)rows, (size_t)out, 1);
    qat_relu_backward_from_y_ref(dh, dh, hv, (size_t)(rows * hid));
    qat_matmul_q4_backward_input_ref(dx, dh, (size_t)rows, &w);

    float *got_dx = malloc((size_t)(rows * in) * sizeof *got_dx), *got_dw2 = malloc((size_t)(out * hid) * sizeof *dw2);
    float *got_db2 = malloc((size_t)out * sizeof *db2);
    cr_assert_eq(qat_tensor_read(g, qat_tensor_get(g, x)->grad, got_dx), QAT_OK);
    cr_assert_eq(qat_tensor_read(g, qat_tensor_get(g, w2)->grad, got_dw2), QAT_OK);
    cr_assert_eq(qat_tensor_read(g, qat_tensor_get(g, b2)->grad, got_db2), QAT_OK);
    double e;
    e = rel_err(got_dw2, dw2, (size_t)(out * hid));
    cr_expect(e <= 2e-5, "d w2 error %.3g", e);
    e = rel_err(got_db2, db2, (size_t)out);
    cr_expect(e <= 2e-5, "d b2 error %.3g", e);
    e = rel_err(got_dx, dx, (size_t)(rows * in));
    cr_expect(e <= 2e-5, "d x error %.3g (through the frozen 4-bit layer)", e);
    free(rr), free(xv), free(b1v), free(w2v), free(b2v), free(hv), free(dh), free(dw2), free(db2), free(dx);
    free(got_dx), free(got_dw2), free(got_db2);
    qat_graph_free(g);
    qat_q4_weight_free(&w);
    test_gpu_done(ctx);
}

/* qat_q4_weight_device_bytes is what a compiled graph really allocates. */
Test(matmul_q4_vk, device_bytes_are_what_the_graph_allocates)
{
    qat_ctx *ctx = test_gpu_ctx();
    for (int dq = 0; dq < 2; dq++) {
        qat_q4_weight w;
        qat_q4_weight_init(&w, QAT_Q4_NF4, 128, 512, dq);
        qat_graph *empty = qat_graph_create(ctx), *g = qat_graph_create(ctx);
        /* A parameter in both, so neither parameter buffer is empty (an empty
         * buffer still takes QAT_BUFFER_ALIGN bytes). */
        int64_t one = 1;
        qat_param(empty, "anchor", 1, &one, false);
        qat_param(g, "anchor", 1, &one, false);
        qat_q4_weight_add(g, "w", QAT_Q4_NF4, 128, 512, dq);
        cr_assert_eq(qat_graph_compile(empty), QAT_OK);
        cr_assert_eq(qat_graph_compile(g), QAT_OK);
        uint64_t delta = qat_graph_device_bytes(g) - qat_graph_device_bytes(empty);
        cr_assert_eq(delta, qat_q4_weight_device_bytes(&w), "graph %llu vs %llu", (unsigned long long)delta,
                     (unsigned long long)qat_q4_weight_device_bytes(&w));
        qat_graph_free(empty);
        qat_graph_free(g);
        qat_q4_weight_free(&w);
    }
    test_gpu_done(ctx);
}
