/* Matmul GFLOP/s: qat's matmul node against OpenBLAS's cblas_sgemm on the
 * same shapes and transposes. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench.h"
#include "qat/graph.h"

typedef struct mm_case {
    const char *shape;  /* M x N x K */
    const char *form;
    int m, n, k;
    bool trans_b;       /* B is stored (n, k): the linear layer's x @ W^T */
} mm_case;

static const mm_case cases[] = {
    { "1024x1024x1024", "A @ B", 1024, 1024, 1024, false },
    /* The mlp's layers as qat runs them: x (batch, in) @ W^T, W (out, in). */
    { "128x256x784", "x @ W^T  fc1", 128, 256, 784, true },
    { "128x10x256", "x @ W^T  fc3", 128, 10, 256, true },
};

/* The output buffers of a graph of R independent matmuls are kept under
 * this size; R is capped accordingly. */
#define MM_OUTPUT_BUDGET (64u << 20)
#define MM_MAX_NODES 512

/* qat side: a graph of max_reps matmul nodes on the same operands; a run of
 * `reps` is one recorded sequence of the first reps nodes, submitted once. */
typedef struct qat_mm {
    qat_graph *g;
    int out0;      /* output of the first node, for the check */
    qat_seq *seq;
    int seq_reps;  /* nodes in seq */
} qat_mm;

static qat_status qat_mm_run(void *arg, int reps)
{
    qat_mm *s = arg;
    if (s->seq_reps != reps) {
        qat_seq_free(s->seq);
        s->seq = NULL;
        QAT_TRY(qat_seq_create(s->g, 0, reps, &s->seq));
        s->seq_reps = reps;
    }
    return qat_seq_run(s->seq);
}

typedef struct blas_mm {
    const mm_case *c;
    const float *a, *b;
    float *out;
} blas_mm;

static qat_status blas_mm_run(void *arg, int reps)
{
    const blas_mm *s = arg;
    const mm_case *c = s->c;
    for (int i = 0; i < reps; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, c->trans_b ? CblasTrans : CblasNoTrans, c->m, c->n, c->k, 1.0f,
                    s->a, c->k, s->b, c->trans_b ? c->k : c->n, 0.0f, s->out, c->n);
    return QAT_OK;
}

/* max |a - b| / max |b|: the error relative to the result's scale. */
static double rel_max_err(const float *a, const float *b, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return diff / (scale > 0 ? scale : 1);
}

static qat_status bench_case(qat_ctx *ctx, const bench_config *cfg, const mm_case *c, bool *mismatch)
{
    size_t a_n = (size_t)c->m * c->k, b_n = (size_t)c->k * c->n, c_n = (size_t)c->m * c->n;
    float *a = qat_xmalloc(a_n * sizeof *a), *b = qat_xmalloc(b_n * sizeof *b);
    float *ref = qat_xmalloc(c_n * sizeof *ref), *got = qat_xmalloc(c_n * sizeof *got);
    bench_fill_uniform(a, a_n, 1);
    bench_fill_uniform(b, b_n, 2);

    int max_nodes = (int)(MM_OUTPUT_BUDGET / (c_n * sizeof(float)));
    max_nodes = max_nodes < 1 ? 1 : max_nodes > MM_MAX_NODES ? MM_MAX_NODES : max_nodes;
    qat_mm q = { .g = qat_graph_create(ctx) };
    int64_t a_shape[2] = { c->m, c->k };
    int64_t b_shape[2] = { c->trans_b ? c->n : c->k, c->trans_b ? c->k : c->n };
    int ta = qat_param(q.g, "a", 2, a_shape, false);
    int tb = qat_param(q.g, "b", 2, b_shape, false);
    for (int i = 0; i < max_nodes; i++) {
        int out = qat_matmul(q.g, ta, tb, false, c->trans_b);
        if (i == 0) q.out0 = out;
    }
    bench_result rq, rb;
    qat_status st = qat_graph_compile(q.g);
    if (st == QAT_OK) st = qat_tensor_write(q.g, ta, a);
    if (st == QAT_OK) st = qat_tensor_write(q.g, tb, b);
    if (st == QAT_OK) st = bench_measure(cfg, qat_mm_run, &q, max_nodes, &rq);
    if (st == QAT_OK) st = qat_tensor_read(q.g, q.out0, got);
    qat_seq_free(q.seq);
    qat_graph_free(q.g);

    blas_mm bm = { c, a, b, ref };
    if (st == QAT_OK) st = bench_measure(cfg, blas_mm_run, &bm, 1 << 16, &rb);
    if (st == QAT_OK) {
        /* fp32 with K <= 1024: both should agree to about 1e-6. */
        double err = rel_max_err(got, ref, c_n);
        bool bad = !(err < 1e-4);
        *mismatch |= bad;
        char note[64];
        snprintf(note, sizeof note, "err %.1e%s", err, bad ? " MISMATCH" : "");
        double flops = 2.0 * c->m * c->n * c->k;
        double ratio = bench_rate(&rq, flops) / bench_rate(&rb, flops);
        bench_print_row(c->shape, c->form, "qat", &rq, flops, 1e9, -1, note);
        bench_print_row("", "", "OpenBLAS cblas_sgemm", &rb, flops, 1e9, ratio, NULL);
    }
    free(a);
    free(b);
    free(ref);
    free(got);
    return st;
}

/* Submit + wait of a sequence that dispatches nothing: the fixed cost every
 * qat run pays, which the per-matmul times below include, spread over reps.
 * reps counts submits here. */
static qat_status empty_run(void *arg, int reps)
{
    for (int i = 0; i < reps; i++) QAT_TRY(qat_seq_run(arg));
    return QAT_OK;
}

static qat_status submit_cost(qat_ctx *ctx, const bench_config *cfg, bench_result *r)
{
    qat_graph *g = qat_graph_create(ctx);
    int64_t one = 1;
    qat_param(g, "unused", 1, &one, false);
    qat_seq *seq = NULL;
    qat_status st = qat_graph_compile(g);
    if (st == QAT_OK) st = qat_seq_create(g, 0, 0, &seq);
    if (st == QAT_OK) st = bench_measure(cfg, empty_run, seq, 1 << 16, r);
    qat_seq_free(seq);
    qat_graph_free(g);
    return st;
}

qat_status bench_matmul(qat_ctx *ctx, const bench_config *cfg, bool *mismatch)
{
    bench_result submit;
    QAT_TRY(submit_cost(ctx, cfg, &submit));
    printf("\nMatmul C = A(MxK) @ B, fp32. GFLOP/s = 2*M*N*K / (time per matmul), from the median run.\n"
           "  qat: one recorded sequence of `reps` independent matmul nodes (same operands, own outputs, no\n"
           "       barriers between them), submitted once and waited for; per-matmul = run time / reps, so the\n"
           "       submit cost (an empty sequence: %.1f us) is spread over reps.\n"
           "  OpenBLAS: cblas_sgemm called `reps` times in a loop, same layout and transposes.\n"
           "  err: max |qat - OpenBLAS| / max |OpenBLAS| of one output.\n\n",
           submit.median_s / submit.reps * 1e6);
    printf("%-15s %-13s %-29s %5s %11s %11s %11s %10s %7s  %s\n", "M x N x K", "form", "impl", "reps", "median/run",
           "min/run", "per-matmul", "GFLOP/s", "qat/ref", "check");
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) QAT_TRY(bench_case(ctx, cfg, &cases[i], mismatch));
    return QAT_OK;
}
