/* The gpt report's inputs: results.csv of a gpt experiment (its own header,
 * reports/report.h), the runs grouped into configurations labelled with the
 * arm they stand for, and the bpc curves of metrics.csv. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/report_internal.h"

/* --- results.csv --- */

static const char *const text_kind_names[] = { "baseline", "finetune", "ptq", "qat", "qlora", "mixed" };

static bool text_algorithm_fits(report_text_kind kind, const char *algorithm)
{
    static const char *const fp32[] = { "fp32" }, *const ptq[] = { "rtn", "gptq" },
                             *const qat[] = { "ste", "lsq", "pact" }, *const qlora[] = { "nf4", "fp4", "fp32" };
    if (kind == REPORT_TEXT_MIXED)
        return text_algorithm_fits(REPORT_TEXT_PTQ, algorithm) || text_algorithm_fits(REPORT_TEXT_QAT, algorithm);
    const char *const *list = kind == REPORT_TEXT_PTQ ? ptq : kind == REPORT_TEXT_QAT ? qat
                                                            : kind == REPORT_TEXT_QLORA ? qlora
                                                                                        : fp32;
    size_t n = kind == REPORT_TEXT_PTQ ? 2 : kind == REPORT_TEXT_QAT ? 3 : kind == REPORT_TEXT_QLORA ? 3 : 1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(algorithm, list[i]) == 0) return true;
    return false;
}

/* A bpc: empty when the run did not measure it (NAN). */
static qat_status bpc_field(const char *text, const char *what, const char *source, int line, double *out)
{
    if (!*text) {
        *out = NAN;
        return QAT_OK;
    }
    return report_csv_double(text, what, source, line, 0, 1e6, out);
}

static qat_status text_row(char **f, int nfields, const char *source, int line, report_text_run *r)
{
    memset(r, 0, sizeof *r);
    r->line = line;
    if (!f[0][0]) return qat_error_set(QAT_ERR_FORMAT, "%s:%d: empty run_id", source, line);
    QAT_TRY(report_csv_copy(r->run_id, sizeof r->run_id, f[0], "run_id", source, line));
    int kind = -1;
    for (int k = 0; k < (int)QAT_ARRAY_LEN(text_kind_names); k++)
        if (strcmp(f[1], text_kind_names[k]) == 0) kind = k;
    if (kind < 0)
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: kind '%s' is not baseline, finetune, ptq, qat, qlora or mixed",
                             source, line, f[1]);
    r->kind = (report_text_kind)kind;
    bool mixed = r->kind == REPORT_TEXT_MIXED;
    if (mixed && nfields == REPORT_TEXT_RESULTS_FIELDS_V1)
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: a mixed run in a results.csv without the columns %s", source,
                             line, QAT_REPORT_MIXED_COLUMNS + 1);
    if (!text_algorithm_fits(r->kind, f[2]))
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: algorithm '%s' does not fit kind %s (baseline, finetune: fp32; "
                             "ptq: rtn, gptq; qat: ste, lsq, pact; qlora: nf4, fp4, fp32; mixed: rtn, gptq, ste, "
                             "lsq, pact)", source, line, f[2], f[1]);
    strcpy(r->algorithm, f[2]);
    bool from_base = strcmp(f[3], "base") == 0, from_finetune = strcmp(f[3], "finetune") == 0;
    if (r->kind == REPORT_TEXT_BASELINE                         ? f[3][0] != '\0'
        : r->kind == REPORT_TEXT_PTQ || r->kind == REPORT_TEXT_MIXED ? !from_base && !from_finetune
                                                                     : !from_base)
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: source '%s' does not fit kind %s (baseline: empty; ptq, mixed: "
                             "base or finetune; the others: base)", source, line, f[3], f[1]);
    r->of_finetune = from_finetune;
    QAT_TRY(report_csv_wbits(f[4], mixed, source, line, &r->w_bits));
    QAT_TRY(report_csv_bits(f[5], "a_bits", source, line, &r->a_bits));
    QAT_TRY(report_csv_copy(r->granularity, sizeof r->granularity, f[6], "granularity", source, line));
    QAT_TRY(report_csv_u64(f[7], "seed", source, line, &r->seed));
    QAT_TRY(bpc_field(f[8], "val_bpc", source, line, &r->val_bpc));
    QAT_TRY(bpc_field(f[9], "forget_bpc", source, line, &r->forget_bpc));
    QAT_TRY(bpc_field(f[10], "start_val_bpc", source, line, &r->start_val_bpc));
    QAT_TRY(report_csv_u64(f[11], "trainable_params", source, line, &r->trainable_params));
    QAT_TRY(report_csv_u64(f[12], "model_bytes", source, line, &r->model_bytes));
    QAT_TRY(report_csv_double(f[13], "seconds", source, line, 0, 1e12, &r->seconds));
    QAT_TRY(report_csv_u64(f[14], "peak_device_bytes", source, line, &r->peak_device_bytes));
    if (nfields == REPORT_TEXT_RESULTS_FIELDS_V1) return QAT_OK;
    return report_csv_mixed(f + 15, mixed, source, line, r->strategy, sizeof r->strategy, r->budget,
                            sizeof r->budget, &r->avg_bits);
}

static qat_status text_row_any(char **f, int nfields, const char *source, int line, void *row)
{
    return text_row(f, nfields, source, line, row);
}

qat_status report_text_results_parse(const char *text, size_t len, const char *source, report_text_run **runs,
                                     int *count)
{
    static const report_csv_format format = {
        QAT_REPORT_TEXT_RESULTS_HEADER, QAT_REPORT_TEXT_RESULTS_HEADER_V1, REPORT_TEXT_RESULTS_FIELDS,
        REPORT_TEXT_RESULTS_FIELDS_V1, sizeof(report_text_run), offsetof(report_text_run, run_id),
        offsetof(report_text_run, line), text_row_any, "run",
    };
    void *rows;
    qat_status st = report_csv_read_rows(text, len, source, &format, &rows, count);
    *runs = rows;
    return st;
}

/* --- arms and configurations --- */

report_arm report_text_arm(const report_text_run *r)
{
    switch (r->kind) {
    case REPORT_TEXT_BASELINE: return REPORT_ARM_BASE;
    case REPORT_TEXT_FINETUNE: return REPORT_ARM_A_FINETUNE;
    case REPORT_TEXT_PTQ: return r->of_finetune ? REPORT_ARM_A : REPORT_ARM_E;
    case REPORT_TEXT_QAT: return REPORT_ARM_C;
    case REPORT_TEXT_QLORA: return strcmp(r->algorithm, "fp32") == 0 ? REPORT_ARM_D : REPORT_ARM_B;
    case REPORT_TEXT_MIXED: break; /* not an arm: the report's mixed section shows them */
    }
    return REPORT_ARM_BASE;
}

const char *report_arm_name(report_arm arm)
{
    static const char *const names[] = { "pretrained base", "(a) fine-tune then quantize",
                                         "(a) fine-tune then quantize", "(b) quantize then fine-tune",
                                         "(c) both at once", "(d) LoRA on the FP32 base",
                                         "(e) PTQ of the base without fine-tuning" };
    _Static_assert(QAT_ARRAY_LEN(names) == REPORT_ARM_COUNT, "a name per arm");
    return names[arm];
}

static void upper(const char *s, char *out, size_t size)
{
    size_t i = 0;
    for (; s[i] && i < size - 1; i++) out[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    out[i] = '\0';
}

/* "W4" (FP32 inputs), "W4A8", "FP32". */
static void text_bits_label(const report_text_run *r, char *out, size_t size)
{
    if (r->w_bits == REPORT_FP32_BITS && r->a_bits == REPORT_FP32_BITS) snprintf(out, size, "FP32");
    else if (r->a_bits == REPORT_FP32_BITS) snprintf(out, size, "W%d", r->w_bits);
    else snprintf(out, size, "W%dA%d", r->w_bits, r->a_bits);
}

/* "(a) fine-tune then quantize: FP32 fine-tune + PTQ-GPTQ W4" and its short
 * form for plots, "(a) FT+GPTQ W4"; `extra` (a granularity) is appended to
 * both when not empty. */
static void config_labels(const report_text_run *r, const char *extra, char *label, size_t size, char *short_label,
                          size_t short_size)
{
    char alg[16], bits[24], tail[80] = "";
    upper(r->algorithm, alg, sizeof alg);
    text_bits_label(r, bits, sizeof bits);
    if (*extra) snprintf(tail, sizeof tail, " (%s)", extra);
    report_arm arm = report_text_arm(r);
    const char *name = report_arm_name(arm);
    switch (arm) {
    case REPORT_ARM_BASE:
        snprintf(label, size, "pretrained base (FP32, no fine-tuning)%s", tail);
        snprintf(short_label, short_size, "base%s", tail);
        break;
    case REPORT_ARM_A_FINETUNE:
        snprintf(label, size, "%s: FP32 fine-tune, before quantization%s", name, tail);
        snprintf(short_label, short_size, "(a) FT FP32%s", tail);
        break;
    case REPORT_ARM_A:
        snprintf(label, size, "%s: FP32 fine-tune + PTQ-%s %s%s", name, alg, bits, tail);
        snprintf(short_label, short_size, "(a) FT+%s %s%s", alg, bits, tail);
        break;
    case REPORT_ARM_B:
        snprintf(label, size, "%s: QLoRA on the %s base%s", name, alg, tail);
        snprintf(short_label, short_size, "(b) QLoRA %s%s", alg, tail);
        break;
    case REPORT_ARM_C:
        snprintf(label, size, "%s: QAT-%s %s%s", name, alg, bits, tail);
        snprintf(short_label, short_size, "(c) QAT-%s %s%s", alg, bits, tail);
        break;
    case REPORT_ARM_D:
        snprintf(label, size, "%s%s", name, tail);
        snprintf(short_label, short_size, "(d) LoRA FP32%s", tail);
        break;
    case REPORT_ARM_E:
        snprintf(label, size, "%s: PTQ-%s %s%s", name, alg, bits, tail);
        snprintf(short_label, short_size, "(e) %s %s%s", alg, bits, tail);
        break;
    case REPORT_ARM_COUNT: break;
    }
}

static bool same_method(const report_text_run *a, const report_text_run *b)
{
    return a->kind == b->kind && strcmp(a->algorithm, b->algorithm) == 0 && a->of_finetune == b->of_finetune &&
           a->w_bits == b->w_bits && a->a_bits == b->a_bits;
}

static bool same_config(const report_text_run *a, const report_text_run *b)
{
    return same_method(a, b) && strcmp(a->granularity, b->granularity) == 0;
}

static int algorithm_rank(const char *algorithm)
{
    static const char *const order[] = { "fp32", "rtn", "gptq", "ste", "lsq", "pact", "nf4", "fp4" };
    for (int i = 0; i < (int)QAT_ARRAY_LEN(order); i++)
        if (strcmp(algorithm, order[i]) == 0) return i;
    return (int)QAT_ARRAY_LEN(order);
}

/* By arm, then method, then bits (most first), granularity, file order. */
static int text_config_cmp(const void *pa, const void *pb)
{
    const report_text_config *x = pa, *y = pb;
    const report_text_run *a = x->first, *b = y->first;
    if (x->arm != y->arm) return x->arm < y->arm ? -1 : 1;
    int ra = algorithm_rank(a->algorithm), rb = algorithm_rank(b->algorithm);
    if (ra != rb) return ra < rb ? -1 : 1;
    if (a->w_bits + a->a_bits != b->w_bits + b->a_bits) return a->w_bits + a->a_bits > b->w_bits + b->a_bits ? -1 : 1;
    if (a->w_bits != b->w_bits) return a->w_bits > b->w_bits ? -1 : 1;
    int c = strcmp(a->granularity, b->granularity);
    return c ? c : a->line - b->line;
}

/* The pretrained base on the target domain for a seed: the baseline's row,
 * else the start of a run from the base. */
static double base_target(const report_text_run *runs, int n, uint64_t seed)
{
    for (int i = 0; i < n; i++)
        if (runs[i].kind == REPORT_TEXT_BASELINE && runs[i].seed == seed && isfinite(runs[i].val_bpc))
            return runs[i].val_bpc;
    for (int i = 0; i < n; i++)
        if (runs[i].kind != REPORT_TEXT_BASELINE && !runs[i].of_finetune && runs[i].seed == seed &&
            isfinite(runs[i].start_val_bpc))
            return runs[i].start_val_bpc;
    return NAN;
}

double report_text_delta(const report_text_data *d, const report_text_run *r)
{
    return r->val_bpc - base_target(d->runs, d->nruns, r->seed);
}

/* Mean and sample std of the finite values; *n how many there were. */
static void finite_stats(const double *x, int count, double *mean, double *std, int *n)
{
    double *v = qat_xmalloc((size_t)(count ? count : 1) * sizeof *v);
    *n = 0;
    for (int i = 0; i < count; i++)
        if (isfinite(x[i])) v[(*n)++] = x[i];
    report_mean_std(v, *n, mean, std);
    if (!*n) *mean = *std = NAN;
    free(v);
}

void report_text_data_build(report_text_data *d, report_text_run *runs, int nruns)
{
    memset(d, 0, sizeof *d);
    d->runs = runs;
    d->nruns = nruns;
    d->base = -1;
    d->configs = qat_xcalloc((size_t)nruns, sizeof *d->configs);
    d->seeds = qat_xcalloc((size_t)nruns, sizeof *d->seeds);
    for (int i = 0; i < nruns; i++) {
        const report_text_run *r = &runs[i];
        bool seen = false;
        for (int k = 0; k < d->nseeds && !seen; k++) seen = d->seeds[k] == r->seed;
        if (!seen) d->seeds[d->nseeds++] = r->seed;
        int c = 0;
        while (c < d->nconfigs && !same_config(d->configs[c].first, r)) c++;
        if (c == d->nconfigs) {
            d->configs[c].first = r;
            d->configs[c].runs = qat_xmalloc((size_t)nruns * sizeof(int));
            d->configs[c].arm = report_text_arm(r);
            d->nconfigs++;
        }
        d->configs[c].runs[d->configs[c].nruns++] = i;
    }
    qsort(d->configs, (size_t)d->nconfigs, sizeof *d->configs, text_config_cmp);
    double *x = qat_xmalloc((size_t)nruns * 7 * sizeof *x);
    for (int c = 0; c < d->nconfigs; c++) {
        report_text_config *cf = &d->configs[c];
        if (cf->arm == REPORT_ARM_BASE && d->base < 0) d->base = c;
        /* The granularity joins the labels where a method came with several. */
        const char *extra = "";
        for (int o = 0; o < d->nconfigs; o++)
            if (o != c && same_method(d->configs[o].first, cf->first) &&
                strcmp(d->configs[o].first->granularity, cf->first->granularity) != 0)
                extra = cf->first->granularity;
        config_labels(cf->first, extra, cf->label, sizeof cf->label, cf->short_label, sizeof cf->short_label);
        double *target = x, *forget = x + nruns, *delta = x + 2 * nruns, *sec = x + 3 * nruns;
        double *trainable = x + 4 * nruns, *bytes = x + 5 * nruns, *peak = x + 6 * nruns;
        for (int i = 0; i < cf->nruns; i++) {
            const report_text_run *r = &runs[cf->runs[i]];
            target[i] = r->val_bpc;
            forget[i] = r->forget_bpc;
            delta[i] = report_text_delta(d, r);
            sec[i] = r->seconds;
            trainable[i] = (double)r->trainable_params;
            bytes[i] = (double)r->model_bytes;
            /* 0: the run did not record it. */
            peak[i] = r->peak_device_bytes ? (double)r->peak_device_bytes / (1024.0 * 1024.0) : NAN;
        }
        int unused;
        double spread;
        finite_stats(target, cf->nruns, &cf->target_mean, &cf->target_std, &cf->n_target);
        finite_stats(forget, cf->nruns, &cf->forget_mean, &cf->forget_std, &cf->n_forget);
        finite_stats(delta, cf->nruns, &cf->delta_mean, &cf->delta_std, &cf->n_delta);
        finite_stats(sec, cf->nruns, &cf->seconds_mean, &cf->seconds_std, &unused);
        finite_stats(trainable, cf->nruns, &cf->trainable, &spread, &unused);
        finite_stats(bytes, cf->nruns, &cf->model_bytes, &spread, &unused);
        finite_stats(peak, cf->nruns, &cf->peak_mib, &spread, &unused);
    }
    free(x);
}

void report_text_data_free(report_text_data *d)
{
    for (int c = 0; c < d->nconfigs; c++) free(d->configs[c].runs);
    free(d->configs);
    free(d->seeds);
    free(d->runs);
    memset(d, 0, sizeof *d);
}

/* --- metrics.csv of the gpt --- */

typedef struct bpc_row {
    int step, line;
    double val_bpc;
} bpc_row;

static qat_status bpc_row_parse(char **f, int nfields, const char *source, int line, void *out)
{
    (void)nfields;
    bpc_row *row = out;
    uint64_t step;
    row->line = line;
    QAT_TRY(report_csv_u64(f[0], "step", source, line, &step));
    row->step = (int)(step > 1000000000 ? 1000000000 : step);
    return report_csv_double(f[3], "val_bpc", source, line, 0, 1e6, &row->val_bpc);
}

qat_status report_bpc_curve_load(const char *path, report_bpc_curve *out)
{
    memset(out, 0, sizeof *out);
    static const report_csv_format format = {
        "step,train_loss,val_loss,val_bpc,seconds", "step,train_loss,val_loss,val_bpc,seconds", 5, 5,
        sizeof(bpc_row), REPORT_CSV_NO_KEY, offsetof(bpc_row, line), bpc_row_parse, "evaluation",
    };
    void *rows;
    int n;
    QAT_TRY(report_csv_load_rows(path, &format, &rows, &n));
    const bpc_row *r = rows;
    out->step = qat_xmalloc((size_t)n * sizeof *out->step);
    out->val_bpc = qat_xmalloc((size_t)n * sizeof *out->val_bpc);
    for (int i = 0; i < n; i++) {
        out->step[i] = r[i].step;
        out->val_bpc[i] = r[i].val_bpc;
    }
    out->n = n;
    free(rows);
    return QAT_OK;
}

void report_bpc_curve_free(report_bpc_curve *c)
{
    free(c->step);
    free(c->val_bpc);
    memset(c, 0, sizeof *c);
}
