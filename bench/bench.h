/* qat-bench: qat's matmul and training speed, each measured beside a CPU
 * reference (OpenBLAS) in the same run. See bench/README.md. */
#ifndef QAT_BENCH_H
#define QAT_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qat/context.h"

/* How every measurement is taken (the same for qat and the reference). */
typedef struct bench_config {
    int warmup;      /* untimed runs before the timed ones */
    int repeats;     /* timed runs; the median and the minimum are reported */
    double target_s; /* a run repeats its work until it takes at least this long */
} bench_config;

typedef struct bench_result {
    int reps;        /* times the work is repeated inside one run */
    double median_s; /* per run */
    double min_s;    /* per run */
} bench_result;

/* One run: the measured work done `reps` times. */
typedef qat_status (*bench_run_fn)(void *arg, int reps);

/* Chooses reps (at most max_reps) so that one run takes at least
 * cfg->target_s, warms up, then times cfg->repeats runs. */
qat_status bench_measure(const bench_config *cfg, bench_run_fn run, void *arg, int max_reps, bench_result *out);

/* Uniform values in [-1, 1) from a fixed stream, so every run benchmarks the
 * same numbers. */
void bench_fill_uniform(float *x, size_t n, uint64_t stream);

/* One line of a result table: label columns, the timing, and the throughput
 * derived from the median (work_per_rep units per rep, e.g. flops or images,
 * shown divided by unit_scale). ratio < 0 leaves the ratio column empty. */
void bench_print_row(const char *col1, const char *col2, const char *impl, const bench_result *r,
                     double work_per_rep, double unit_scale, double ratio, const char *note);
/* Throughput (work per second) at the median. */
double bench_rate(const bench_result *r, double work_per_rep);

/* Sections; each prints its table. *mismatch is set when qat's numbers
 * disagree with the reference's (the timings are then meaningless). */
qat_status bench_matmul(qat_ctx *ctx, const bench_config *cfg, bool *mismatch);
qat_status bench_train(qat_ctx *ctx, const bench_config *cfg, bool *mismatch);
qat_status bench_q4(qat_ctx *ctx, const bench_config *cfg, bool *mismatch);

#endif
