/* The report's inputs: results.csv and metrics.csv readers, the grouping of
 * runs into configurations (same settings, different seeds) and plot series,
 * and the statistics over seeds. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/report_internal.h"

/* --- notes --- */

void report_note(report_notes *n, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    n->items = qat_xrealloc(n->items, (size_t)(n->count + 1) * sizeof *n->items);
    n->items[n->count++] = qat_xstrdup(text);
}

void report_notes_free(report_notes *n)
{
    for (int i = 0; i < n->count; i++) free(n->items[i]);
    free(n->items);
    n->items = NULL;
    n->count = 0;
}

/* --- statistics --- */

void report_mean_std(const double *x, int n, double *mean, double *std)
{
    *mean = 0, *std = 0;
    if (n <= 0) return;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    *mean = sum / n;
    if (n == 1) return;
    /* Two passes: the one-pass formula loses digits when the spread is tiny
     * next to the mean, which is the usual case for accuracies over seeds. */
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *std = sqrt(ss / (n - 1));
}

typedef struct pareto_point {
    double size, accuracy;
    int index;
} pareto_point;

static int pareto_cmp(const void *pa, const void *pb)
{
    const pareto_point *a = pa, *b = pb;
    if (a->size != b->size) return a->size < b->size ? -1 : 1;
    if (a->accuracy != b->accuracy) return a->accuracy > b->accuracy ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

int report_pareto_front(const double *size, const double *accuracy, int n, int *front)
{
    if (n <= 0) return 0;
    pareto_point *p = qat_xmalloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) p[i] = (pareto_point){ size[i], accuracy[i], i };
    qsort(p, (size_t)n, sizeof *p, pareto_cmp);
    /* Sorted by size (then best accuracy first), a point is on the front
     * exactly when it is more accurate than everything smaller or as small. */
    int count = 0;
    double best = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (p[i].accuracy > best) {
            front[count++] = p[i].index;
            best = p[i].accuracy;
        }
    }
    free(p);
    return count;
}

/* --- results.csv --- */

static const char *const kind_names[] = { "baseline", "ptq", "qat", "mixed" };

/* A field of a CSV line, NUL-terminated in place. */
int report_csv_split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n < max) fields[n] = p;
        n++;
        char *comma = strchr(p, ',');
        if (!comma) break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

qat_status report_csv_double(const char *text, const char *what, const char *source, int line, double lo,
                               double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v))
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: %s '%s' is not a number", source, line, what, text);
    if (v < lo || v > hi)
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: %s %s is outside [%g, %g]", source, line, what, text, lo, hi);
    *out = v;
    return QAT_OK;
}

qat_status report_csv_u64(const char *text, const char *what, const char *source, int line, uint64_t *out)
{
    char *end;
    errno = 0;
    if (text[0] < '0' || text[0] > '9')
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: %s '%s' is not a non-negative integer", source, line, what,
                             text);
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: %s '%s' is not a non-negative integer", source, line, what,
                             text);
    *out = v;
    return QAT_OK;
}

qat_status report_csv_bits(const char *text, const char *what, const char *source, int line, int *out)
{
    uint64_t v;
    QAT_TRY(report_csv_u64(text, what, source, line, &v));
    if (!((v >= 2 && v <= 8) || v == REPORT_FP32_BITS))
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: %s %s is not 2..8 or %d (FP32)", source, line, what, text,
                             REPORT_FP32_BITS);
    *out = (int)v;
    return QAT_OK;
}

qat_status report_csv_copy(char *dst, size_t size, const char *text, const char *what, const char *source,
                             int line)
{
    if (strlen(text) >= size)
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: %s '%.40s...' is longer than %zu characters", source, line,
                             what, text, size - 1);
    strcpy(dst, text);
    return QAT_OK;
}

static bool algorithm_fits(report_kind kind, const char *algorithm)
{
    static const char *const ptq[] = { "rtn", "gptq" }, *const qat[] = { "ste", "lsq", "pact" };
    if (kind == REPORT_BASELINE) return strcmp(algorithm, "fp32") == 0;
    for (size_t i = 0; kind != REPORT_QAT && i < QAT_ARRAY_LEN(ptq); i++)
        if (strcmp(algorithm, ptq[i]) == 0) return true;
    for (size_t i = 0; kind != REPORT_PTQ && i < QAT_ARRAY_LEN(qat); i++)
        if (strcmp(algorithm, qat[i]) == 0) return true;
    return false;
}

qat_status report_csv_mixed(char **f, bool mixed, const char *source, int line, char *strategy, size_t strategy_size,
                            char *budget, size_t budget_size, double *avg_bits)
{
    if (!mixed) {
        if (f[0][0] || f[1][0] || f[2][0])
            return qat_error_set(QAT_ERR_FORMAT, "%s:%d: strategy, budget and avg_bits are for mixed runs only",
                                 source, line);
        return QAT_OK;
    }
    if (!f[0][0] || !f[1][0])
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: a mixed run needs its strategy and budget", source, line);
    QAT_TRY(report_csv_copy(strategy, strategy_size, f[0], "strategy", source, line));
    QAT_TRY(report_csv_copy(budget, budget_size, f[1], "budget", source, line));
    return report_csv_double(f[2], "avg_bits", source, line, 0, 32, avg_bits);
}

/* w_bits: empty for a mixed run (its bits vary by layer), else 2..8 or 32. */
qat_status report_csv_wbits(const char *text, bool mixed, const char *source, int line, int *out)
{
    if (!mixed) return report_csv_bits(text, "w_bits", source, line, out);
    if (*text)
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: w_bits '%s' of a mixed run: empty expected (bits.csv has its "
                             "layers' bits)", source, line, text);
    *out = 0;
    return QAT_OK;
}

static qat_status parse_row(char **f, int nfields, const char *source, int line, report_run *r)
{
    memset(r, 0, sizeof *r);
    r->line = line;
    if (!f[0][0]) return qat_error_set(QAT_ERR_FORMAT, "%s:%d: empty run_id", source, line);
    QAT_TRY(report_csv_copy(r->run_id, sizeof r->run_id, f[0], "run_id", source, line));
    int kind = -1;
    for (int k = 0; k < (int)QAT_ARRAY_LEN(kind_names); k++)
        if (strcmp(f[1], kind_names[k]) == 0) kind = k;
    if (kind < 0)
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: kind '%s' is not baseline, ptq, qat or mixed", source, line,
                             f[1]);
    r->kind = (report_kind)kind;
    if (r->kind == REPORT_MIXED && nfields == REPORT_RESULTS_FIELDS_V1)
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: a mixed run in a results.csv without the columns %s", source,
                             line, QAT_REPORT_MIXED_COLUMNS + 1);
    if (!algorithm_fits(r->kind, f[2]))
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: algorithm '%s' does not fit kind %s (baseline: fp32; ptq: "
                             "rtn, gptq; qat: ste, lsq, pact; mixed: any of those five)", source, line, f[2], f[1]);
    strcpy(r->algorithm, f[2]);
    QAT_TRY(report_csv_copy(r->observer, sizeof r->observer, f[3], "observer", source, line));
    QAT_TRY(report_csv_wbits(f[4], r->kind == REPORT_MIXED, source, line, &r->w_bits));
    QAT_TRY(report_csv_bits(f[5], "a_bits", source, line, &r->a_bits));
    if (r->kind == REPORT_BASELINE && (r->w_bits != REPORT_FP32_BITS || r->a_bits != REPORT_FP32_BITS))
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: a baseline has %d-bit weights and activations, not %d/%d",
                             source, line, REPORT_FP32_BITS, r->w_bits, r->a_bits);
    QAT_TRY(report_csv_copy(r->granularity, sizeof r->granularity, f[6], "granularity", source, line));
    QAT_TRY(report_csv_u64(f[7], "seed", source, line, &r->seed));
    QAT_TRY(report_csv_double(f[8], "test_acc", source, line, 0, 1, &r->test_acc));
    QAT_TRY(report_csv_double(f[9], "val_acc", source, line, 0, 1, &r->val_acc));
    QAT_TRY(report_csv_double(f[10], "retention_pct", source, line, 0, 1e6, &r->retention_pct));
    QAT_TRY(report_csv_u64(f[11], "model_bytes", source, line, &r->model_bytes));
    QAT_TRY(report_csv_double(f[12], "seconds", source, line, 0, 1e12, &r->seconds));
    QAT_TRY(report_csv_u64(f[13], "peak_device_bytes", source, line, &r->peak_device_bytes));
    if (nfields == REPORT_RESULTS_FIELDS_V1) return QAT_OK;
    return report_csv_mixed(f + 14, r->kind == REPORT_MIXED, source, line, r->strategy, sizeof r->strategy,
                            r->budget, sizeof r->budget, &r->avg_bits);
}

qat_status report_csv_read_rows(const char *text, size_t len, const char *source, const report_csv_format *fmt,
                                void **rows, int *count)
{
    *rows = NULL, *count = 0;
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        int line = 1;
        for (const char *q = text; q < nul; q++) line += *q == '\n';
        return qat_error_set(QAT_ERR_FORMAT, "%s:%d: NUL byte: not a text file", source, line);
    }
    char *copy = qat_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    char *list = NULL;
    int n = 0, cap = 0, line = 0;
    bool header_seen = false;
    int nfields = fmt->nfields;
    const char *header = fmt->header;
    qat_status st = QAT_OK;
    for (char *p = copy; st == QAT_OK && *p;) {
        char *eol = strchr(p, '\n');
        char *next = eol ? eol + 1 : p + strlen(p);
        if (eol) *eol = '\0';
        line++;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = '\0';
        if (!header_seen) {
            if (strcmp(p, fmt->header_v1) == 0) {
                nfields = fmt->nfields_v1;
                header = fmt->header_v1;
            } else if (strcmp(p, fmt->header) != 0) {
                st = qat_error_set(QAT_ERR_FORMAT, "%s:%d: header is '%.200s', expected '%s'", source, line, p,
                                   fmt->header);
                break;
            }
            header_seen = true;
        } else if (l > 0) {
            char *fields[REPORT_CSV_MAX_FIELDS];
            QAT_ASSERT(fmt->nfields <= REPORT_CSV_MAX_FIELDS);
            int nf = report_csv_split(p, fields, fmt->nfields);
            if (nf != nfields) {
                st = qat_error_set(QAT_ERR_FORMAT, "%s:%d: %d fields, expected %d (%s)", source, line, nf, nfields,
                                   header);
                break;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                list = qat_xrealloc(list, (size_t)cap * fmt->row_size);
            }
            char *row = list + (size_t)n * fmt->row_size;
            st = fmt->parse_row(fields, nfields, source, line, row);
            const char *id = row + (fmt->id_offset == REPORT_CSV_NO_KEY ? 0 : fmt->id_offset);
            for (int i = 0; st == QAT_OK && fmt->id_offset != REPORT_CSV_NO_KEY && i < n; i++) {
                const char *other = list + (size_t)i * fmt->row_size;
                if (strcmp(other + fmt->id_offset, id) == 0) {
                    int first;
                    memcpy(&first, other + fmt->line_offset, sizeof first);
                    st = qat_error_set(QAT_ERR_FORMAT, "%s:%d: %s %s is listed twice (first at line %d)", source,
                                       line, fmt->noun, id, first);
                }
            }
            if (st == QAT_OK) n++;
        }
        p = next;
    }
    if (st == QAT_OK && !header_seen) st = qat_error_set(QAT_ERR_FORMAT, "%s: empty file, expected a header", source);
    if (st == QAT_OK && n == 0)
        st = qat_error_set(QAT_ERR_FORMAT, "%s: no %ss after the header", source, fmt->noun);
    free(copy);
    if (st != QAT_OK) {
        free(list);
        return st;
    }
    *rows = list, *count = n;
    return QAT_OK;
}

qat_status report_csv_load_rows(const char *path, const report_csv_format *fmt, void **rows, int *count)
{
    *rows = NULL, *count = 0;
    void *text;
    size_t size;
    QAT_TRY(qat_file_read_all(path, &text, &size));
    qat_status st = report_csv_read_rows(text, size, path, fmt, rows, count);
    free(text);
    return st;
}

static qat_status parse_row_any(char **f, int nfields, const char *source, int line, void *row)
{
    return parse_row(f, nfields, source, line, row);
}

qat_status report_results_parse(const char *text, size_t len, const char *source, report_run **runs, int *count)
{
    static const report_csv_format format = {
        REPORT_RESULTS_HEADER, QAT_REPORT_RESULTS_HEADER_V1, REPORT_RESULTS_FIELDS, REPORT_RESULTS_FIELDS_V1,
        sizeof(report_run), offsetof(report_run, run_id), offsetof(report_run, line), parse_row_any, "run",
    };
    void *rows;
    qat_status st = report_csv_read_rows(text, len, source, &format, &rows, count);
    *runs = rows;
    return st;
}

qat_status report_results_load(const char *path, report_run **runs, int *count)
{
    void *text;
    size_t size;
    QAT_TRY(qat_file_read_all(path, &text, &size));
    qat_status st = report_results_parse(text, size, path, runs, count);
    free(text);
    return st;
}

/* --- grouping --- */

static int method_rank(const report_run *r)
{
    static const char *const order[] = { "fp32", "rtn", "gptq", "ste", "lsq", "pact" };
    for (int i = 0; i < (int)QAT_ARRAY_LEN(order); i++)
        if (strcmp(r->algorithm, order[i]) == 0) return i;
    return (int)QAT_ARRAY_LEN(order);
}

void report_method_name(const report_run *r, char *out, size_t size)
{
    if (r->kind == REPORT_BASELINE) {
        snprintf(out, size, "FP32");
        return;
    }
    char alg[16];
    size_t i = 0;
    for (; r->algorithm[i] && i < sizeof alg - 1; i++) alg[i] = (char)(r->algorithm[i] & ~0x20);
    alg[i] = '\0';
    snprintf(out, size, "%s-%s", r->kind == REPORT_PTQ ? "PTQ" : "QAT", alg);
}

void report_bits_label(int w_bits, int a_bits, char *out, size_t size)
{
    if (w_bits == REPORT_FP32_BITS && a_bits == REPORT_FP32_BITS) snprintf(out, size, "FP32");
    else snprintf(out, size, "W%dA%d", w_bits, a_bits);
}

static bool same_method(const report_run *a, const report_run *b)
{
    return a->kind == b->kind && strcmp(a->algorithm, b->algorithm) == 0;
}

static bool same_config(const report_run *a, const report_run *b)
{
    return same_method(a, b) && a->w_bits == b->w_bits && a->a_bits == b->a_bits &&
           strcmp(a->observer, b->observer) == 0 && strcmp(a->granularity, b->granularity) == 0;
}

/* Total bits first, then weight bits: the order in which quality is expected
 * to fall. */
static int bits_cmp(int wa, int aa, int wb, int ab)
{
    if (wa + aa != wb + ab) return wa + aa > wb + ab ? -1 : 1;
    if (wa != wb) return wa > wb ? -1 : 1;
    return 0;
}

static int config_cmp(const report_config *x, const report_config *y)
{
    const report_run *a = x->first, *b = y->first;
    if ((a->kind == REPORT_BASELINE) != (b->kind == REPORT_BASELINE)) return a->kind == REPORT_BASELINE ? -1 : 1;
    int c = bits_cmp(a->w_bits, a->a_bits, b->w_bits, b->a_bits);
    if (c) return c;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    if (method_rank(a) != method_rank(b)) return method_rank(a) < method_rank(b) ? -1 : 1;
    if ((c = strcmp(a->granularity, b->granularity))) return c;
    if ((c = strcmp(a->observer, b->observer))) return c;
    return a->line - b->line;
}

static int config_qsort_cmp(const void *a, const void *b) { return config_cmp(a, b); }

static int series_cmp(const void *pa, const void *pb)
{
    const report_series *a = pa, *b = pb;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    if (a->method_rank != b->method_rank) return a->method_rank < b->method_rank ? -1 : 1;
    int c = strcmp(a->observer, b->observer);
    return c ? c : strcmp(a->granularity, b->granularity);
}

/* Whether runs of r's method come with more than one value of a field. */
static bool method_varies(const report_run *runs, int n, const report_run *r, size_t field_offset)
{
    const char *value = (const char *)r + field_offset;
    for (int i = 0; i < n; i++)
        if (same_method(&runs[i], r) && strcmp((const char *)&runs[i] + field_offset, value) != 0) return true;
    return false;
}

static void series_of(const report_run *runs, int n, const report_run *r, report_series *s)
{
    memset(s, 0, sizeof *s);
    s->kind = r->kind;
    snprintf(s->algorithm, sizeof s->algorithm, "%s", r->algorithm);
    s->method_rank = method_rank(r);
    if (method_varies(runs, n, r, offsetof(report_run, observer)))
        snprintf(s->observer, sizeof s->observer, "%s", r->observer);
    if (method_varies(runs, n, r, offsetof(report_run, granularity)))
        snprintf(s->granularity, sizeof s->granularity, "%s", r->granularity);
    char method[32];
    report_method_name(r, method, sizeof method);
    if (s->observer[0] && s->granularity[0])
        snprintf(s->label, sizeof s->label, "%s (%s, %s)", method, s->observer, s->granularity);
    else if (s->observer[0] || s->granularity[0])
        snprintf(s->label, sizeof s->label, "%s (%s)", method, s->observer[0] ? s->observer : s->granularity);
    else
        snprintf(s->label, sizeof s->label, "%s", method);
}

static void config_stats(const report_run *runs, report_config *c)
{
    double *x = qat_xmalloc((size_t)c->nruns * 6 * sizeof *x);
    double *acc = x, *val = x + c->nruns, *ret = x + 2 * c->nruns, *sec = x + 3 * c->nruns;
    double *bytes = x + 4 * c->nruns, *peak = x + 5 * c->nruns;
    for (int i = 0; i < c->nruns; i++) {
        const report_run *r = &runs[c->runs[i]];
        acc[i] = 100 * r->test_acc;
        val[i] = 100 * r->val_acc;
        ret[i] = r->retention_pct;
        sec[i] = r->seconds;
        bytes[i] = (double)r->model_bytes;
        peak[i] = (double)r->peak_device_bytes / (1024.0 * 1024.0);
    }
    double unused;
    report_mean_std(acc, c->nruns, &c->acc_mean, &c->acc_std);
    report_mean_std(val, c->nruns, &c->val_mean, &c->val_std);
    report_mean_std(ret, c->nruns, &c->retention_mean, &c->retention_std);
    report_mean_std(sec, c->nruns, &c->seconds_mean, &c->seconds_std);
    report_mean_std(bytes, c->nruns, &c->model_bytes, &unused);
    report_mean_std(peak, c->nruns, &c->peak_mib, &unused);
    free(x);
}

void report_data_build(report_data *d, report_run *runs, int nruns)
{
    memset(d, 0, sizeof *d);
    d->runs = runs;
    d->nruns = nruns;
    d->baseline = -1;
    d->configs = qat_xcalloc((size_t)nruns, sizeof *d->configs);
    d->series = qat_xcalloc((size_t)nruns, sizeof *d->series);
    d->bits = qat_xcalloc((size_t)nruns, sizeof *d->bits);
    d->seeds = qat_xcalloc((size_t)nruns, sizeof *d->seeds);
    for (int i = 0; i < nruns; i++) {
        const report_run *r = &runs[i];
        bool seen = false;
        for (int k = 0; k < d->nseeds && !seen; k++) seen = d->seeds[k] == r->seed;
        if (!seen) d->seeds[d->nseeds++] = r->seed;
        if (r->kind != REPORT_BASELINE) {
            report_series s;
            series_of(runs, nruns, r, &s);
            bool known = false;
            for (int k = 0; k < d->nseries && !known; k++) known = series_cmp(&d->series[k], &s) == 0;
            if (!known) d->series[d->nseries++] = s;
        }
        int c = 0;
        while (c < d->nconfigs && !same_config(d->configs[c].first, r)) c++;
        if (c == d->nconfigs) {
            d->configs[c].first = r;
            d->configs[c].runs = qat_xmalloc((size_t)nruns * sizeof(int));
            d->nconfigs++;
        }
        d->configs[c].runs[d->configs[c].nruns++] = i;
        int b = 0;
        while (b < d->nbits && !(d->bits[b].w == r->w_bits && d->bits[b].a == r->a_bits)) b++;
        if (b == d->nbits) {
            d->bits[b].w = r->w_bits, d->bits[b].a = r->a_bits;
            report_bits_label(r->w_bits, r->a_bits, d->bits[b].label, sizeof d->bits[b].label);
            d->nbits++;
        }
    }
    qsort(d->series, (size_t)d->nseries, sizeof *d->series, series_cmp);
    qsort(d->configs, (size_t)d->nconfigs, sizeof *d->configs, config_qsort_cmp);
    for (int i = 1; i < d->nbits; i++)
        for (int j = i; j > 0 && bits_cmp(d->bits[j].w, d->bits[j].a, d->bits[j - 1].w, d->bits[j - 1].a) < 0; j--) {
            report_bits t = d->bits[j];
            d->bits[j] = d->bits[j - 1], d->bits[j - 1] = t;
        }
    for (int c = 0; c < d->nconfigs; c++) {
        report_config *cf = &d->configs[c];
        config_stats(runs, cf);
        cf->series = -1;
        if (cf->first->kind == REPORT_BASELINE) {
            if (d->baseline < 0) d->baseline = c;
        } else {
            report_series s;
            series_of(runs, nruns, cf->first, &s);
            for (int k = 0; k < d->nseries; k++)
                if (series_cmp(&d->series[k], &s) == 0) cf->series = k;
        }
        for (int b = 0; b < d->nbits; b++)
            if (d->bits[b].w == cf->first->w_bits && d->bits[b].a == cf->first->a_bits) cf->bits_index = b;
    }
}

void report_data_free(report_data *d)
{
    for (int c = 0; c < d->nconfigs; c++) free(d->configs[c].runs);
    free(d->configs);
    free(d->series);
    free(d->bits);
    free(d->seeds);
    free(d->runs);
    memset(d, 0, sizeof *d);
}

/* --- metrics.csv --- */

typedef struct curve_row {
    int epoch, line;
    double val_acc;
} curve_row;

static qat_status curve_row_parse(char **f, int nfields, const char *source, int line, void *out)
{
    (void)nfields;
    curve_row *row = out;
    uint64_t epoch;
    row->line = line;
    QAT_TRY(report_csv_u64(f[0], "epoch", source, line, &epoch));
    row->epoch = (int)(epoch > 1000000 ? 1000000 : epoch);
    return report_csv_double(f[4], "val_acc", source, line, 0, 1, &row->val_acc);
}

qat_status report_curve_load(const char *path, report_curve *out)
{
    memset(out, 0, sizeof *out);
    static const report_csv_format format = {
        "epoch,step,train_loss,val_loss,val_acc,seconds", "epoch,step,train_loss,val_loss,val_acc,seconds", 6, 6,
        sizeof(curve_row), REPORT_CSV_NO_KEY, offsetof(curve_row, line), curve_row_parse, "epoch",
    };
    void *rows;
    int n;
    QAT_TRY(report_csv_load_rows(path, &format, &rows, &n));
    const curve_row *r = rows;
    out->epoch = qat_xmalloc((size_t)n * sizeof *out->epoch);
    out->val_acc_pct = qat_xmalloc((size_t)n * sizeof *out->val_acc_pct);
    for (int i = 0; i < n; i++) {
        out->epoch[i] = r[i].epoch;
        out->val_acc_pct[i] = 100 * r[i].val_acc;
    }
    out->n = n;
    free(rows);
    return QAT_OK;
}

void report_curve_free(report_curve *c)
{
    free(c->epoch);
    free(c->val_acc_pct);
    memset(c, 0, sizeof *c);
}
