/* The timing method shared by every row: calibrate the repetitions per run,
 * warm up, then take the median (and minimum) of repeated timed runs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench/bench.h"
#include "qat/progress.h"
#include "qat/rng.h"

/* OpenBLAS's worker threads busy-wait for a while after each call before they
 * sleep. On a machine with few cores they would steal the CPU from whatever
 * is timed next (lavapipe's threads in particular), so every measurement
 * starts after a pause long enough for them to park. */
static void settle(void)
{
    struct timespec pause = { 0, 200 * 1000 * 1000 };
    nanosleep(&pause, NULL);
}

static qat_status timed_run(bench_run_fn run, void *arg, int reps, double *seconds)
{
    double t0 = qat_now();
    qat_status st = run(arg, reps);
    *seconds = qat_now() - t0;
    return st;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

qat_status bench_measure(const bench_config *cfg, bench_run_fn run, void *arg, int max_reps, bench_result *out)
{
    settle();
    /* Calibration: every new reps gets one untimed run first, which also
     * absorbs first-use costs (pipeline creation, page faults, a sequence
     * being recorded); reps at least doubles each round. */
    int reps = 1;
    double t;
    for (;;) {
        QAT_TRY(run(arg, reps));
        QAT_TRY(timed_run(run, arg, reps, &t));
        if (t >= cfg->target_s || reps >= max_reps) break;
        /* Jump to the estimate when it is further than a doubling. */
        double want = ceil(reps * cfg->target_s / (t > 0 ? t : 1e-9));
        int next = 2 * reps;
        if (want > next) next = want < max_reps ? (int)want : max_reps;
        reps = next < max_reps ? next : max_reps;
    }
    for (int i = 0; i < cfg->warmup; i++) QAT_TRY(run(arg, reps));
    double *times = qat_xmalloc((size_t)cfg->repeats * sizeof *times);
    qat_status st = QAT_OK;
    for (int i = 0; i < cfg->repeats && st == QAT_OK; i++) st = timed_run(run, arg, reps, &times[i]);
    if (st == QAT_OK) {
        qsort(times, (size_t)cfg->repeats, sizeof *times, cmp_double);
        int n = cfg->repeats;
        out->reps = reps;
        out->median_s = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
        out->min_s = times[0];
    }
    free(times);
    return st;
}

double bench_rate(const bench_result *r, double work_per_rep)
{
    return work_per_rep * r->reps / r->median_s;
}

void bench_fill_uniform(float *x, size_t n, uint64_t stream)
{
    qat_rng rng = qat_rng_init(20240601, stream);
    for (size_t i = 0; i < n; i++) x[i] = qat_rng_uniform_range(&rng, -1.0f, 1.0f);
}

/* A duration with a unit that keeps three or four significant digits. */
static void format_time(char *buf, size_t size, double s)
{
    if (s >= 1.0) snprintf(buf, size, "%.3f s", s);
    else if (s >= 1e-3) snprintf(buf, size, "%.2f ms", s * 1e3);
    else snprintf(buf, size, "%.1f us", s * 1e6);
}

void bench_print_row(const char *col1, const char *col2, const char *impl, const bench_result *r,
                     double work_per_rep, double unit_scale, double ratio, const char *note)
{
    char median[32], min[32], per_rep[32], ratio_s[32] = "";
    format_time(median, sizeof median, r->median_s);
    format_time(min, sizeof min, r->min_s);
    format_time(per_rep, sizeof per_rep, r->median_s / r->reps);
    if (ratio >= 0) snprintf(ratio_s, sizeof ratio_s, "%.2fx", ratio);
    printf("%-15s %-13s %-29s %5d %11s %11s %11s %10.1f %7s  %s\n", col1, col2, impl, r->reps, median, min, per_rep,
           bench_rate(r, work_per_rep) / unit_scale, ratio_s, note ? note : "");
}
