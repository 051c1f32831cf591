/* Training throughput: qat's full training step (forward, loss, backward,
 * AdamW) against CPU steps doing the same math, on synthetic data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/cpu_ref.h"
#include "qat/nn.h"
#include "qat/optimizer.h"
#include "qat/rng.h"

#define BATCH 128
#define SEED 1
/* Steps run before timing from the same start on every side; their losses
 * are the check. */
#define CHECK_STEPS 2
#define MAX_REFS 2

typedef struct qat_train {
    qat_graph *g;
    qat_seq *seq;
    qat_optim_config optim;
    int step;
} qat_train;

static qat_status qat_train_run(void *arg, int reps)
{
    qat_train *s = arg;
    for (int i = 0; i < reps; i++) {
        qat_optim_set_step(s->g, &s->optim, s->step++);
        QAT_TRY(qat_seq_run(s->seq));
    }
    return QAT_OK;
}

/* A CPU reference: one of the models of cpu_ref.h, with its own step count. */
typedef enum ref_kind { REF_MLP_SGEMM, REF_CNN_OPS, REF_CNN_SGEMM } ref_kind;

static const char *const ref_names[] = {
    [REF_MLP_SGEMM] = "CPU sgemm step (cpu_mlp.c)",
    [REF_CNN_OPS] = "CPU ops/ops_ref.h step",
    [REF_CNN_SGEMM] = "CPU im2col+sgemm (cpu_cnn.c)",
};

typedef struct cpu_train {
    ref_kind kind;
    void *model;
    const float *x;
    const int32_t *labels;
    qat_optim_config optim;
    int step;
} cpu_train;

static void cpu_train_create(cpu_train *s, float *const *init)
{
    switch (s->kind) {
    case REF_MLP_SGEMM: s->model = cpu_mlp_create(BATCH, init); break;
    case REF_CNN_OPS: s->model = cpu_cnn_ops_create(BATCH, init); break;
    case REF_CNN_SGEMM: s->model = cpu_cnn_create(BATCH, init); break;
    }
}

static float cpu_train_step(cpu_train *s)
{
    int step = s->step++;
    switch (s->kind) {
    case REF_MLP_SGEMM: return cpu_mlp_step(s->model, s->x, s->labels, &s->optim, step);
    case REF_CNN_OPS: return cpu_cnn_ops_step(s->model, s->x, s->labels, &s->optim, step);
    case REF_CNN_SGEMM: return cpu_cnn_step(s->model, s->x, s->labels, &s->optim, step);
    }
    return NAN;
}

static void cpu_train_free(cpu_train *s)
{
    if (!s->model) return;
    switch (s->kind) {
    case REF_MLP_SGEMM: cpu_mlp_free(s->model); break;
    case REF_CNN_OPS: cpu_cnn_ops_free(s->model); break;
    case REF_CNN_SGEMM: cpu_cnn_free(s->model); break;
    }
}

static qat_status cpu_train_run(void *arg, int reps)
{
    cpu_train *s = arg;
    for (int i = 0; i < reps; i++) cpu_train_step(s);
    return QAT_OK;
}

/* Largest relative difference between the check losses of qat and a reference. */
static double loss_diff(const float *a, const float *b)
{
    double diff = 0;
    for (int i = 0; i < CHECK_STEPS; i++) diff = fmax(diff, fabs((double)a[i] - b[i]) / fmax(fabs((double)b[i]), 1e-6));
    return diff;
}

static qat_status bench_model(qat_ctx *ctx, const bench_config *cfg, qat_model_kind kind, const ref_kind *refs,
                              int nrefs, bool *mismatch)
{
    qat_train q = { .g = qat_graph_create(ctx), .optim = qat_optim_defaults(QAT_OPTIM_ADAMW, 1e-3f) };
    static qat_model_desc desc;
    qat_model_desc_default(&desc, kind);
    qat_model m;
    qat_model_build(q.g, &desc, BATCH, true, &m);
    qat_graph_backward(q.g, m.loss);
    qat_graph_add_optimizer(q.g, &q.optim);
    cpu_train c[MAX_REFS] = { 0 };
    float *init[QAT_MODEL_MAX_PARAMS] = { 0 };
    float *x = NULL, q_loss[CHECK_STEPS], c_loss[MAX_REFS][CHECK_STEPS];
    int32_t labels[BATCH];
    bench_result rq, rc[MAX_REFS];

    qat_status st = qat_graph_compile(q.g);
    if (st == QAT_OK) st = qat_model_init_params(q.g, &m, SEED);
    if (st == QAT_OK) st = qat_seq_create(q.g, 0, qat_graph_node_count(q.g), &q.seq);
    if (st != QAT_OK) goto done;

    /* Synthetic batch, written once: the input slots keep their contents
     * and every run copies them to the device, as a real step would. The
     * CPU side reads its own copy: a slot may be in device-mapped memory
     * that is slow for the CPU to read. */
    size_t x_numel = (size_t)qat_tensor_cget(q.g, m.x)->numel;
    x = qat_xmalloc(x_numel * sizeof *x);
    bench_fill_uniform(x, x_numel, 3);
    qat_rng rng = qat_rng_init(SEED, 4);
    for (int i = 0; i < BATCH; i++) labels[i] = (int32_t)qat_rng_below(&rng, 10);
    memcpy(qat_graph_input_slot(q.g, m.x), x, x_numel * sizeof *x);
    memcpy(qat_graph_input_slot(q.g, m.labels), labels, sizeof labels);

    /* The CPU models start from the same parameters and read the same batch. */
    for (int i = 0; i < m.nparams; i++)
        init[i] = qat_xmalloc((size_t)qat_tensor_cget(q.g, m.params[i])->numel * sizeof(float));
    qat_model_init_values(m.desc, SEED, init);
    for (int r = 0; r < nrefs; r++) {
        c[r] = (cpu_train){ .kind = refs[r], .x = x, .labels = labels, .optim = q.optim };
        cpu_train_create(&c[r], init);
    }

    for (int i = 0; i < CHECK_STEPS && st == QAT_OK; i++) {
        st = qat_train_run(&q, 1);
        q_loss[i] = *(const float *)qat_graph_output_slot(q.g, m.loss);
        for (int r = 0; r < nrefs; r++) c_loss[r][i] = cpu_train_step(&c[r]);
    }
    if (st == QAT_OK) st = bench_measure(cfg, qat_train_run, &q, 4096, &rq);
    for (int r = 0; r < nrefs && st == QAT_OK; r++) st = bench_measure(cfg, cpu_train_run, &c[r], 4096, &rc[r]);
    if (st != QAT_OK) goto done;

    char note[96], params[32];
    snprintf(note, sizeof note, "loss %.5f, %.5f", q_loss[0], q_loss[1]);
    snprintf(params, sizeof params, "%lld params", (long long)m.param_count);
    bench_print_row(qat_model_name(kind), params, "qat", &rq, BATCH, 1, -1, note);
    for (int r = 0; r < nrefs; r++) {
        /* Step 1's loss checks the forward pass, step 2's the backward pass
         * and the update too. The sides sum in different orders, so they
         * agree to rounding, not bit for bit. */
        double diff = loss_diff(q_loss, c_loss[r]);
        bool bad = !(diff < 1e-3);
        *mismatch |= bad;
        snprintf(note, sizeof note, "loss %.5f, %.5f  diff %.0e%s", c_loss[r][0], c_loss[r][1], diff,
                 bad ? " MISMATCH" : "");
        double ratio = bench_rate(&rq, BATCH) / bench_rate(&rc[r], BATCH);
        bench_print_row("", "", ref_names[refs[r]], &rc[r], BATCH, 1, ratio, note);
    }

done:
    free(x);
    for (int i = 0; i < m.nparams; i++) free(init[i]);
    for (int r = 0; r < nrefs; r++) cpu_train_free(&c[r]);
    qat_seq_free(q.seq);
    qat_graph_free(q.g);
    return st;
}

qat_status bench_train(qat_ctx *ctx, const bench_config *cfg, bool *mismatch)
{
    printf("\nTraining step, batch %d: forward, softmax cross-entropy, backward, AdamW (lr 1e-3, wd 0.01),\n"
           "on one synthetic batch (uniform inputs, random labels) written once; images/s from the median run.\n"
           "  qat: qat_optim_set_step + qat_seq_run of the whole recorded step (input upload and loss readback\n"
           "       included), `reps` steps per run.\n"
           "  mlp reference: bench/cpu_mlp.c, the three linear layers on OpenBLAS sgemm, loops for the rest.\n"
           "  cnn references: bench/cpu_cnn_ops.c, the reference ops of ops/ops_ref.h (plain loops, one\n"
           "       thread; the ops qat's shaders are tested against), and bench/cpu_cnn.c, convolutions as\n"
           "       im2col + one OpenBLAS sgemm over the batch and loops for the rest.\n"
           "  check: loss of steps 1 and 2 from the same parameters and batch (step 2 also tests backward\n"
           "       and AdamW); diff is the largest relative difference from qat's.\n\n",
           BATCH);
    printf("%-15s %-13s %-29s %5s %11s %11s %11s %10s %7s  %s\n", "model", "", "impl", "reps", "median/run",
           "min/run", "per-step", "images/s", "qat/ref", "check");
    static const ref_kind mlp_refs[] = { REF_MLP_SGEMM }, cnn_refs[] = { REF_CNN_OPS, REF_CNN_SGEMM };
    QAT_TRY(bench_model(ctx, cfg, QAT_MODEL_MLP, mlp_refs, QAT_ARRAY_LEN(mlp_refs), mismatch));
    QAT_TRY(bench_model(ctx, cfg, QAT_MODEL_CNN, cnn_refs, QAT_ARRAY_LEN(cnn_refs), mismatch));
    return QAT_OK;
}
