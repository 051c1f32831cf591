/* 4-bit linear layers: qat_matmul_q4 (NF4 with double quantization, the
 * QLoRA base layer) against qat's FP32 linear layer on the same shapes, both
 * run through qat in the same process: the forward y = x W^T and the input
 * gradient dx = dy W, on GPT's default layer shapes. The FP32 side gets the
 * dequantized weight, so both compute the same numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench.h"
#include "ops/ops_ref.h"
#include "ops/ops_vk.h"
#include "qat/q4.h"

typedef struct q4_shape {
    const char *layer;
    int rows, in, out;
} q4_shape;

/* GPT defaults: batch x context = 2048 rows, d_model 128, MLP 512. */
static const q4_shape shapes[] = {
    { "attn 128->128", 2048, 128, 128 },
    { "mlp 128->512", 2048, 128, 512 },
    { "mlp 512->128", 2048, 512, 128 },
};

#define Q4_OUTPUT_BUDGET (64u << 20)
#define Q4_MAX_NODES 256

/* A graph of `nodes` independent copies of one op; a run of reps is one
 * recorded sequence of the first reps nodes (no barriers between them). */
typedef struct q4_graph {
    qat_graph *g;
    int out0;
    qat_seq *seq;
    int seq_reps;
} q4_graph;

static qat_status q4_graph_run(void *arg, int reps)
{
    q4_graph *s = arg;
    if (s->seq_reps != reps) {
        qat_seq_free(s->seq);
        s->seq = NULL;
        QAT_TRY(qat_seq_create(s->g, 0, reps, &s->seq));
        s->seq_reps = reps;
    }
    return qat_seq_run(s->seq);
}

enum { FP32, Q4 };

/* Measures one side of one row; *result gets the first node's output. */
static qat_status measure(qat_ctx *ctx, const bench_config *cfg, const q4_shape *sh, bool input_grad, int side,
                          const float *x, const float *dense, const qat_q4_weight *w, float *result, bench_result *r)
{
    int64_t a_cols = input_grad ? sh->out : sh->in, c_cols = input_grad ? sh->in : sh->out;
    int nodes = (int)(Q4_OUTPUT_BUDGET / ((uint64_t)sh->rows * (uint64_t)c_cols * sizeof(float)));
    nodes = nodes < 1 ? 1 : nodes > Q4_MAX_NODES ? Q4_MAX_NODES : nodes;
    q4_graph q = { .g = qat_graph_create(ctx) };
    int64_t a_shape[2] = { sh->rows, a_cols }, like_shape[2] = { sh->rows, sh->in }, w_shape[2] = { sh->out, sh->in };
    int a = qat_param(q.g, "a", 2, a_shape, false);
    int like = input_grad ? qat_param(q.g, "like", 2, like_shape, false) : -1;
    int wd = side == FP32 ? qat_param(q.g, "w", 2, w_shape, false) : -1;
    qat_q4_weight_tensors t = { 0 };
    if (side == Q4) t = qat_q4_weight_add(q.g, "w", w->type, sh->out, sh->in, w->double_quant);
    for (int i = 0; i < nodes; i++) {
        int out;
        if (side == FP32) out = input_grad ? qat_matmul(q.g, a, wd, false, false) : qat_linear(q.g, a, wd, -1);
        else out = input_grad ? qat_matmul_q4_back_input(q.g, a, &t, like) : qat_matmul_q4(q.g, a, &t, -1);
        if (i == 0) q.out0 = out;
    }
    qat_status st = qat_graph_compile(q.g);
    if (st == QAT_OK) st = qat_tensor_write(q.g, a, x);
    if (st == QAT_OK && side == FP32) st = qat_tensor_write(q.g, wd, dense);
    if (st == QAT_OK && side == Q4) st = qat_q4_weight_upload(q.g, &t, w);
    if (st == QAT_OK) st = bench_measure(cfg, q4_graph_run, &q, nodes, r);
    if (st == QAT_OK) st = qat_tensor_read(q.g, q.out0, result);
    qat_seq_free(q.seq);
    qat_graph_free(q.g);
    return st;
}

static qat_status bench_shape(qat_ctx *ctx, const bench_config *cfg, const q4_shape *sh, bool *mismatch)
{
    size_t nw = (size_t)sh->out * sh->in, nmax = (size_t)sh->rows * (size_t)(sh->in > sh->out ? sh->in : sh->out);
    float *dense = qat_xmalloc(nw * sizeof *dense), *a = qat_xmalloc(nmax * sizeof *a);
    float *got = qat_xmalloc(nmax * sizeof *got), *ref = qat_xmalloc(nmax * sizeof *ref);
    bench_fill_uniform(dense, nw, 3);
    bench_fill_uniform(a, nmax, 4);
    qat_q4_weight w;
    qat_q4_weight_init(&w, QAT_Q4_NF4, sh->out, sh->in, true);
    qat_q4_weight_quantize(&w, dense);
    qat_q4_weight_dequantize(&w, dense);
    qat_status st = QAT_OK;
    for (int grad = 0; grad < 2 && st == QAT_OK; grad++) {
        bench_result rf, rq;
        st = measure(ctx, cfg, sh, grad, FP32, a, dense, &w, ref, &rf);
        if (st == QAT_OK) st = measure(ctx, cfg, sh, grad, Q4, a, dense, &w, got, &rq);
        if (st != QAT_OK) break;
        size_t n = (size_t)sh->rows * (size_t)(grad ? sh->in : sh->out);
        /* Same weights, same summation order, fma on both sides: about 1e-6. */
        double diff = 0, scale = 0;
        for (size_t i = 0; i < n; i++) {
            diff = fmax(diff, fabs((double)got[i] - ref[i]));
            scale = fmax(scale, fabs((double)ref[i]));
        }
        double err = diff / (scale > 0 ? scale : 1);
        bool bad = !(err < 1e-4);
        *mismatch |= bad;
        char note[64], shape[32];
        snprintf(note, sizeof note, "err %.1e%s", err, bad ? " MISMATCH" : "");
        snprintf(shape, sizeof shape, "%dx%dx%d", sh->rows, grad ? sh->in : sh->out, grad ? sh->out : sh->in);
        double flops = 2.0 * sh->rows * sh->in * sh->out;
        /* ratio column: FP32 throughput / 4-bit throughput = 4-bit time / FP32 time. */
        double slowdown = bench_rate(&rf, flops) / bench_rate(&rq, flops);
        bench_print_row(grad ? "" : sh->layer, grad ? "dx = dy W" : "y = x W^T", "FP32 linear (matmul)", &rf, flops,
                        1e9, -1, NULL);
        bench_print_row(shape, "", "NF4+dq matmul_q4", &rq, flops, 1e9, slowdown, note);
    }
    qat_q4_weight_free(&w);
    free(dense), free(a), free(got), free(ref);
    return st;
}

qat_status bench_q4(qat_ctx *ctx, const bench_config *cfg, bool *mismatch)
{
    printf("\n4-bit linear layers: NF4 with double quantization (qat_matmul_q4) against the FP32 linear layer,\n"
           "  both in qat, on the dequantized weight (same numbers). GFLOP/s = 2*rows*in*out / time per op.\n"
           "  A run is one recorded sequence of `reps` independent nodes, as in the matmul table.\n"
           "  The ratio column is time(4-bit) / time(FP32): above 1 the 4-bit op is slower.\n\n");
    printf("%-15s %-13s %-29s %5s %11s %11s %11s %10s %7s  %s\n", "layer", "op", "impl", "reps", "median/run",
           "min/run", "per-op", "GFLOP/s", "q4/fp32", "check");
    for (size_t i = 0; i < QAT_ARRAY_LEN(shapes); i++) QAT_TRY(bench_shape(ctx, cfg, &shapes[i], mismatch));
    return QAT_OK;
}
