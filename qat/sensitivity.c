#include "qat/sensitivity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/progress.h"
#include "qat/rng.h"

static const char *const sensitivity_names[] = { "perturbation", "hessian", "fisher" };

const char *qat_sensitivity_name(qat_sensitivity_kind kind) { return sensitivity_names[kind]; }

bool qat_sensitivity_parse(const char *name, qat_sensitivity_kind *out)
{
    for (int i = 0; i < QAT_SENSITIVITY_KIND_COUNT; i++)
        if (strcmp(name, sensitivity_names[i]) == 0) {
            *out = (qat_sensitivity_kind)i;
            return true;
        }
    return false;
}

qat_status qat_hutchinson_trace(qat_grad_fn grad, void *user, int nblocks, const int64_t *block_numel, const float *w0,
                                const qat_hutchinson_options *o, double *trace, double *std_err,
                                qat_hutchinson_result *r)
{
    QAT_ASSERT(nblocks > 0 && o->min_probes >= 2 && o->max_probes >= o->min_probes && o->eps_rel > 0);
    int64_t n = 0;
    for (int b = 0; b < nblocks; b++) n += block_numel[b];
    double *eps = qat_xmalloc((size_t)nblocks * sizeof *eps);
    int64_t at = 0;
    for (int b = 0; b < nblocks; at += block_numel[b], b++) {
        double ss = 0;
        for (int64_t i = 0; i < block_numel[b]; i++) ss += (double)w0[at + i] * w0[at + i];
        double rms = block_numel[b] ? sqrt(ss / (double)block_numel[b]) : 0;
        eps[b] = o->eps_rel * (rms > 0 ? rms : 1.0);
    }
    float *v = qat_xmalloc((size_t)n * sizeof *v), *w = qat_xmalloc((size_t)n * sizeof *w);
    float *gp = qat_xmalloc((size_t)n * sizeof *gp), *gm = qat_xmalloc((size_t)n * sizeof *gm);
    /* Welford's running mean and sum of squared deviations per block. */
    double *mean = qat_xcalloc((size_t)nblocks, sizeof *mean), *m2 = qat_xcalloc((size_t)nblocks, sizeof *m2);
    qat_progress bar;
    if (o->progress_label) qat_progress_begin(&bar, o->progress_label, (uint64_t)o->max_probes);
    qat_status st = QAT_OK;
    int k = 0;
    bool settled = false;
    while (k < o->max_probes && !settled) {
        qat_rng rng = qat_rng_init(o->seed, QAT_RNG_STREAM_HUTCHINSON + (uint64_t)k);
        for (int64_t i = 0; i < n; i += 32) {
            uint32_t word = qat_rng_u32(&rng);
            for (int64_t j = i; j < n && j < i + 32; j++) v[j] = (word >> (j - i) & 1) ? 1.0f : -1.0f;
        }
        for (int sign = 1; sign >= -1 && st == QAT_OK; sign -= 2) {
            at = 0;
            for (int b = 0; b < nblocks; at += block_numel[b], b++)
                for (int64_t i = at; i < at + block_numel[b]; i++)
                    w[i] = (float)((double)w0[i] + sign * eps[b] * v[i]);
            st = grad(user, w, sign > 0 ? gp : gm, NULL);
        }
        if (st != QAT_OK) break;
        k++;
        settled = k >= o->min_probes;
        at = 0;
        for (int b = 0; b < nblocks; at += block_numel[b], b++) {
            double sample = 0;
            for (int64_t i = at; i < at + block_numel[b]; i++) sample += (double)v[i] * ((double)gp[i] - gm[i]);
            sample /= 2 * eps[b];
            double d = sample - mean[b];
            mean[b] += d / k;
            m2[b] += d * (sample - mean[b]);
            double se = k > 1 ? sqrt(m2[b] / (k - 1) / k) : INFINITY;
            if (!(se <= o->rel_tol * fabs(mean[b]) || (mean[b] == 0 && m2[b] == 0))) settled = false;
        }
        if (o->progress_label) qat_progress_update(&bar, (uint64_t)k, "");
    }
    if (o->progress_label) qat_progress_end(&bar);
    for (int b = 0; b < nblocks; b++) {
        trace[b] = mean[b];
        std_err[b] = k > 1 ? sqrt(m2[b] / (k - 1) / k) : INFINITY;
    }
    r->probes = k;
    r->settled = settled;
    free(eps), free(v), free(w), free(gp), free(gm), free(mean), free(m2);
    return st;
}
