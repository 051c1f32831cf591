/* The "Mixed precision" section that image and gpt reports share: a row
 * per mixed run, quality against model bytes per strategy, and each
 * budget's per-layer bits by strategy (from the runs' bits.csv). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/experiment.h"
#include "reports/report_internal.h"

#define MIXED_PLOT_WIDTH 900
#define MIXED_PLOT_HEIGHT 560

void report_mixed_add(report_mixed *m, const report_mixed_run *r)
{
    m->runs = qat_xrealloc(m->runs, (size_t)(m->n + 1) * sizeof *m->runs);
    m->runs[m->n++] = *r;
}

void report_mixed_free(report_mixed *m)
{
    free(m->runs);
    memset(m, 0, sizeof *m);
}

void report_mixed_method(const report_mixed_run *r, char *out, size_t size)
{
    char alg[16];
    size_t i = 0;
    for (; r->algorithm[i] && i < sizeof alg - 1; i++)
        alg[i] = (char)(r->algorithm[i] >= 'a' && r->algorithm[i] <= 'z' ? r->algorithm[i] - 32 : r->algorithm[i]);
    alg[i] = '\0';
    bool qat = strcmp(r->algorithm, "rtn") != 0 && strcmp(r->algorithm, "gptq") != 0;
    snprintf(out, size, "%s-%s", qat ? "QAT" : "PTQ", alg);
}

/* Distinct values of a string field of the runs, in order of appearance. */
static int distinct(const report_mixed *m, size_t offset, const char **out, int max)
{
    int n = 0;
    for (int i = 0; i < m->n; i++) {
        const char *v = (const char *)&m->runs[i] + offset;
        bool seen = false;
        for (int k = 0; k < n && !seen; k++) seen = strcmp(out[k], v) == 0;
        if (!seen && n < max) out[n++] = v;
    }
    return n;
}

#define MAX_DISTINCT 64

/* --- quality against bytes --- */

typedef struct mixed_point {
    double kib, quality;
    const char *budget;
} mixed_point;

static int point_cmp(const void *pa, const void *pb)
{
    const mixed_point *a = pa, *b = pb;
    if (a->kib != b->kib) return a->kib < b->kib ? -1 : 1;
    return strcmp(a->budget, b->budget);
}

/* One series per strategy (and method, where there is more than one): the
 * mean over seeds at each budget, joined in byte order. */
static int plot_pareto(const report_mixed *m, qat_strbuf *sb)
{
    const char *strategies[MAX_DISTINCT], *methods_seen[MAX_DISTINCT], *budgets[MAX_DISTINCT];
    int ns = distinct(m, offsetof(report_mixed_run, strategy), strategies, MAX_DISTINCT);
    int nb = distinct(m, offsetof(report_mixed_run, budget), budgets, MAX_DISTINCT);
    int nm = distinct(m, offsetof(report_mixed_run, algorithm), methods_seen, MAX_DISTINCT);
    report_plot_style(sb, "Mixed precision: quality against size", "model size (KiB, the checkpoint's tensors)",
                      m->text ? "target bpc (lower is better)" : "test accuracy (%)");
    qat_strbuf_append_str(sb, "set key outside right top\n");
    double ref_sum = 0;
    int ref_n = 0;
    for (int i = 0; i < m->n; i++)
        if (isfinite(m->runs[i].reference)) ref_sum += m->runs[i].reference, ref_n++;
    mixed_point *pts = qat_xmalloc((size_t)nb * sizeof *pts);
    qat_strbuf plot = { 0 };
    int series = 0;
    for (int s = 0; s < ns; s++)
        for (int a = 0; a < nm; a++) {
            int np = 0;
            for (int b = 0; b < nb; b++) {
                double q = 0, kib = 0;
                int n = 0;
                for (int i = 0; i < m->n; i++) {
                    const report_mixed_run *r = &m->runs[i];
                    if (strcmp(r->strategy, strategies[s]) || strcmp(r->algorithm, methods_seen[a]) ||
                        strcmp(r->budget, budgets[b]) || !isfinite(r->quality))
                        continue;
                    q += r->quality, kib += (double)r->model_bytes / 1024.0, n++;
                }
                if (n) pts[np++] = (mixed_point){ kib / n, q / n, budgets[b] };
            }
            if (!np) continue;
            qsort(pts, (size_t)np, sizeof *pts, point_cmp);
            /* Budgets that led to the same model (a strategy that could not
             * use the larger one) are one point with both labels, not two
             * labels printed over each other. */
            char labels[MAX_DISTINCT][128];
            int nl = 0;
            for (int p = 0; p < np; p++) {
                if (nl && pts[nl - 1].kib == pts[p].kib && pts[nl - 1].quality == pts[p].quality) {
                    size_t used = strlen(labels[nl - 1]);
                    snprintf(labels[nl - 1] + used, sizeof labels[0] - used, ", %s", pts[p].budget);
                    continue;
                }
                pts[nl] = pts[p];
                snprintf(labels[nl++], sizeof labels[0], "%s", pts[p].budget);
            }
            qat_strbuf_printf(sb, "$s%d << EOD\n# KiB  quality  budget\n", series);
            for (int p = 0; p < nl; p++) {
                qat_strbuf_printf(sb, "%.3f %.4f ", pts[p].kib, pts[p].quality);
                report_gp_data_string(sb, labels[p]);
                qat_strbuf_putc(sb, '\n');
            }
            qat_strbuf_append_str(sb, "EOD\n");
            char title[160];
            if (nm > 1) {
                char method[32];
                report_mixed_run probe = { 0 };
                snprintf(probe.algorithm, sizeof probe.algorithm, "%s", methods_seen[a]);
                report_mixed_method(&probe, method, sizeof method);
                snprintf(title, sizeof title, "%s (%s)", strategies[s], method);
            } else {
                snprintf(title, sizeof title, "%s", strategies[s]);
            }
            qat_strbuf_printf(&plot, "%s$s%d using 1:2 with linespoints lw 2 pt %d ps 1.3 lc rgb '%s' title ",
                              series ? ", \\\n     " : "plot ", series, 7 + 2 * (a % 4), report_plot_color(s));
            report_gp_string(&plot, title);
            qat_strbuf_printf(&plot, ", $s%d using 1:2:3 with labels offset char 0,1 tc rgb '%s' notitle", series,
                              report_plot_color(s));
            series++;
        }
    if (ref_n) {
        qat_strbuf_printf(sb, "fp32 = %.4f\n", ref_sum / ref_n);
        qat_strbuf_append_str(&plot, ", \\\n     fp32 with lines ls 1 title 'FP32'");
    }
    qat_strbuf_append_str(sb, plot.data ? plot.data : "");
    qat_strbuf_putc(sb, '\n');
    qat_strbuf_free(&plot);
    free(pts);
    return series;
}

/* --- per-layer bits --- */

typedef struct layer_bits {
    int n;
    char (*name)[64];
    int *bits;
    double *value;           /* what a bar shows: bits, or a layer's mean over its blocks */
} layer_bits;

static void layer_bits_free(layer_bits *l)
{
    free(l->name);
    free(l->bits);
    free(l->value);
    memset(l, 0, sizeof *l);
}

/* Past this many blocks of rows (a gpt at rows:32 has about 150) the bars
 * are drawn per layer, at the mean width of its rows. */
#define MAX_BLOCK_BARS 48

/* Replaces blocks "L[a:b]" by one entry per layer L valued at the
 * row-weighted mean of its blocks' widths. */
static void merge_blocks(layer_bits *l)
{
    int out = 0;
    double sum = 0, rows = 0;
    for (int k = 0; k < l->n; k++) {
        const char *bracket = strchr(l->name[k], '[');
        size_t len = bracket ? (size_t)(bracket - l->name[k]) : strlen(l->name[k]);
        long long a = 0, b = 1;
        if (!bracket || sscanf(bracket, "[%lld:%lld]", &a, &b) != 2 || b <= a) a = 0, b = 1;
        char layer[64];
        snprintf(layer, sizeof layer, "%.*s", (int)len, l->name[k]);
        if (!out || strcmp(l->name[out - 1], layer) != 0) {
            memcpy(l->name[out++], layer, sizeof layer);
            sum = rows = 0;
        }
        sum += (double)l->bits[k] * (double)(b - a);
        rows += (double)(b - a);
        l->value[out - 1] = sum / rows;
    }
    l->n = out;
}

/* RUN/bits.csv: layer,weights,bits,bytes,sensitivity,cost. */
typedef struct bits_row {
    char name[64];
    int bits, line;
} bits_row;

static qat_status bits_row_parse(char **f, int nfields, const char *source, int line, void *out)
{
    (void)nfields;
    bits_row *row = out;
    row->line = line;
    QAT_TRY(report_csv_copy(row->name, sizeof row->name, f[0], "layer", source, line));
    return report_csv_bits(f[2], "bits", source, line, &row->bits);
}

qat_status report_bits_csv_load(const char *path, int *nlayers, char (**names)[64], int **bits)
{
    *nlayers = 0, *names = NULL, *bits = NULL;
    static const report_csv_format format = {
        "layer,weights,bits,bytes,sensitivity,cost", "layer,weights,bits,bytes,sensitivity,cost", 6, 6,
        sizeof(bits_row), offsetof(bits_row, name), offsetof(bits_row, line), bits_row_parse, "layer",
    };
    void *rows;
    int n;
    QAT_TRY(report_csv_load_rows(path, &format, &rows, &n));
    const bits_row *r = rows;
    *names = qat_xmalloc((size_t)n * sizeof **names);
    *bits = qat_xmalloc((size_t)n * sizeof **bits);
    for (int i = 0; i < n; i++) {
        memcpy((*names)[i], r[i].name, sizeof r[i].name);
        (*bits)[i] = r[i].bits;
    }
    *nlayers = n;
    free(rows);
    return QAT_OK;
}

/* Grouped bars of one budget: a group per layer, a bar per strategy (its
 * first run at that budget: the map does not depend on the method). */
static bool plot_bits(const report_mixed *m, const char *run_dir, const char *budget, qat_strbuf *sb, int *width,
                      report_notes *notes)
{
    const char *strategies[MAX_DISTINCT];
    int ns = distinct(m, offsetof(report_mixed_run, strategy), strategies, MAX_DISTINCT);
    layer_bits *l = qat_xcalloc((size_t)ns, sizeof *l);
    bool ok = true, merged = false;
    int shown = 0;
    for (int s = 0; s < ns && ok; s++) {
        const report_mixed_run *r = NULL;
        for (int i = 0; i < m->n && !r; i++)
            if (!strcmp(m->runs[i].strategy, strategies[s]) && !strcmp(m->runs[i].budget, budget)) r = &m->runs[i];
        if (!r) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s/bits.csv", run_dir, r->run_id);
        if (report_bits_csv_load(path, &l[s].n, &l[s].name, &l[s].bits) != QAT_OK) {
            report_note(notes, "per-layer bits at budget %s left out: %s", budget, qat_error_message());
            ok = false;
            continue;
        }
        l[s].value = qat_xmalloc((size_t)l[s].n * sizeof *l[s].value);
        for (int k = 0; k < l[s].n; k++) l[s].value[k] = l[s].bits[k];
        if (l[s].n > MAX_BLOCK_BARS && strchr(l[s].name[0], '[')) {
            merge_blocks(&l[s]);
            merged = true;
        }
    }
    int first = -1;
    for (int s = 0; s < ns && ok; s++) {
        if (!l[s].n) continue;
        if (first < 0) first = s;
        bool same = l[s].n == l[first].n;
        for (int k = 0; same && k < l[s].n; k++) same = strcmp(l[s].name[k], l[first].name[k]) == 0;
        if (!same) {
            report_note(notes, "per-layer bits at budget %s left out: the strategies' bits.csv list different layers",
                        budget);
            ok = false;
        }
        shown++;
    }
    if (ok && shown) {
        /* qat bits --unit rows:N names its units "fc1[0:16]"; many of them
         * were merged into layers above. */
        bool blocks = false;
        for (int k = 0; k < l[first].n; k++) blocks |= strchr(l[first].name[k], '[') != NULL;
        char title[128];
        if (blocks) snprintf(title, sizeof title, "Weight bits per block of rows at budget %s", budget);
        else snprintf(title, sizeof title, "Weight bits per layer%s at budget %s", merged ? " (mean over its rows)" : "",
                      budget);
        report_plot_style(sb, title, blocks ? "layer[rows]" : "layer", "weight bits");
        qat_strbuf_append_str(sb, "set style data histograms\nset style histogram clustered gap 1\n"
                                  "set style fill solid 0.85 border -1\nset boxwidth 0.9 relative\n"
                                  "set yrange [0:8.9]\nset ytics 1\nset grid noxtics\nset key outside right top\n");
        if (l[first].n > 6) qat_strbuf_append_str(sb, "set xtics rotate by -40\n");
        qat_strbuf_append_str(sb, "$bits << EOD\n# layer");
        for (int s = 0; s < ns; s++)
            if (l[s].n) qat_strbuf_printf(sb, " %s", strategies[s]);
        qat_strbuf_putc(sb, '\n');
        for (int k = 0; k < l[first].n; k++) {
            report_gp_data_string(sb, l[first].name[k]);
            for (int s = 0; s < ns; s++)
                if (l[s].n) qat_strbuf_printf(sb, " %.4g", l[s].value[k]);
            qat_strbuf_putc(sb, '\n');
        }
        qat_strbuf_append_str(sb, "EOD\n");
        int col = 2;
        for (int s = 0; s < ns; s++) {
            if (!l[s].n) continue;
            qat_strbuf_printf(sb, "%s$bits using %d%s lc rgb '%s' title ", col == 2 ? "plot " : ", \\\n     ", col,
                              col == 2 ? ":xtic(1)" : "", report_plot_color(s));
            report_gp_string(sb, strategies[s]);
            col++;
        }
        qat_strbuf_putc(sb, '\n');
        int per_group = 14 * shown + 16;
        *width = 160 + l[first].n * per_group;
        if (*width < MIXED_PLOT_WIDTH) *width = MIXED_PLOT_WIDTH;
        if (*width > 4000) *width = 4000;
    }
    for (int s = 0; s < ns; s++) layer_bits_free(&l[s]);
    free(l);
    return ok && shown;
}

qat_status report_mixed_plots(report_mixed *m, const char *run_dir, const char *plots_dir, report_notes *notes)
{
    if (!m->n) return QAT_OK;
    qat_strbuf body = { 0 };
    qat_status st = QAT_OK;
    if (!plot_pareto(m, &body))
        report_note(notes, "no mixed run recorded its quality: the mixed-precision size plot is left out");
    else if ((st = report_figure_render(plots_dir, &m->pareto, "mixed_pareto", MIXED_PLOT_WIDTH, MIXED_PLOT_HEIGHT,
                                        &body)) == QAT_OK) {
        report_figure *f = &m->pareto;
        snprintf(f->caption, sizeof f->caption,
                 "%s against the bytes of the checkpoint's tensors, one line per bit strategy through its budgets "
                 "(labelled) in order of size; means over seeds. The dashed line is the FP32 model they "
                 "quantize.%s", m->text ? "Target-domain bits per character (lower is better)" : "Test accuracy",
                 m->text ? "" : " Up and to the left is better.");
    }
    const char *budgets[MAX_DISTINCT];
    int nb = distinct(m, offsetof(report_mixed_run, budget), budgets, MAX_DISTINCT);
    m->nbars = 0;
    for (int b = 0; b < nb && st == QAT_OK && m->nbars < REPORT_MIXED_MAX_BARS; b++) {
        qat_strbuf_clear(&body);
        int width = MIXED_PLOT_WIDTH;
        if (!plot_bits(m, run_dir, budgets[b], &body, &width, notes)) continue;
        char id[QAT_EXP_BUDGET_MAX + 1], name[48];
        qat_run_budget_id(budgets[b], id, sizeof id);
        snprintf(name, sizeof name, "mixed_bits_b%s", id);
        report_figure *f = &m->bars[m->nbars];
        st = report_figure_render(plots_dir, f, name, width, MIXED_PLOT_HEIGHT, &body);
        if (st != QAT_OK) break;
        snprintf(m->bar_budget[m->nbars], sizeof m->bar_budget[0], "%s", budgets[b]);
        m->nbars++;
        snprintf(f->caption, sizeof f->caption,
                 "The weight bits each strategy gave each layer at budget %s (bits.csv of its first run at that "
                 "budget; the map is the same for every method), layers in network order.", budgets[b]);
    }
    qat_strbuf_free(&body);
    return st;
}

/* --- the section --- */

static void build_table(const report_mixed *m, report_table *t)
{
    static const char *const image_header[] = { "run id", "strategy", "method", "budget", "seed", "avg weight bits",
                                                 "model (KiB)", "test accuracy (%)", "Δ vs FP32 (points)" };
    static const bool image_numeric[] = { false, false, false, true, true, true, true, true, true };
    static const char *const text_header[] = { "run id", "strategy", "method", "source", "budget", "seed",
                                                "avg weight bits", "model (KiB)", "target bpc", "forget bpc",
                                                "Δ target vs FP32" };
    static const bool text_numeric[] = { false, false, false, false, true, true, true, true, true, true, true };
    if (m->text) report_table_init(t, (int)QAT_ARRAY_LEN(text_header), text_header, text_numeric);
    else report_table_init(t, (int)QAT_ARRAY_LEN(image_header), image_header, image_numeric);
    for (int i = 0; i < m->n; i++) {
        const report_mixed_run *r = &m->runs[i];
        char method[32], seed[32], avg[32], kib[32], quality[32], forget[32], delta[32];
        report_mixed_method(r, method, sizeof method);
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->seed);
        snprintf(avg, sizeof avg, "%.3f", r->avg_bits);
        snprintf(kib, sizeof kib, "%.1f", (double)r->model_bytes / 1024.0);
        if (isfinite(r->quality)) snprintf(quality, sizeof quality, m->text ? "%.3f" : "%.2f", r->quality);
        else snprintf(quality, sizeof quality, "—");
        if (isfinite(r->forget)) snprintf(forget, sizeof forget, "%.3f", r->forget);
        else snprintf(forget, sizeof forget, "—");
        if (isfinite(r->quality) && isfinite(r->reference))
            snprintf(delta, sizeof delta, m->text ? "%+.3f" : "%+.2f", r->quality - r->reference);
        else
            snprintf(delta, sizeof delta, "—");
        if (m->text)
            report_table_row(t, false, r->run_id, r->strategy, method, r->of_finetune ? "finetune" : "base",
                             r->budget, seed, avg, kib, quality, forget, delta);
        else
            report_table_row(t, false, r->run_id, r->strategy, method, r->budget, seed, avg, kib, quality, delta);
    }
}

static const char mixed_intro[] =
    "Each run's bit map gives every layer its own weight width, chosen by a strategy (qat bits, "
    "docs/bit-strategies.md) so that the weights fit the budget: average code bits per weight (plus the "
    "scales and zero points of each layer), or bytes. Then the map is quantized by the method. Avg weight bits: "
    "the codes' bits per weight the map spends. Model size: the checkpoint's tensor bytes.";

void report_mixed_html(qat_strbuf *sb, const report_mixed *m)
{
    if (!m->n) return;
    qat_strbuf_append_str(sb, "\n<h2>Mixed precision</h2>\n<p>");
    report_html_escape(sb, mixed_intro);
    report_html_escape(sb, m->text ? " Δ: the target bpc minus that of the FP32 checkpoint the run quantized."
                                   : " Δ: test accuracy minus that of the same seed's FP32 baseline.");
    qat_strbuf_append_str(sb, "</p>\n");
    report_table t;
    build_table(m, &t);
    report_table_html(sb, &t);
    report_table_free(&t);
    if (m->pareto.drawn) report_html_figure(sb, &m->pareto, "quality against model size per bit strategy");
    for (int b = 0; b < m->nbars; b++) report_html_figure(sb, &m->bars[b], "weight bits per layer and strategy");
}

void report_mixed_md(qat_strbuf *sb, const report_mixed *m)
{
    if (!m->n) return;
    qat_strbuf_printf(sb, "## Mixed precision\n\n%s%s\n\n", mixed_intro,
                      m->text ? " Δ: the target bpc minus that of the FP32 checkpoint the run quantized."
                              : " Δ: test accuracy minus that of the same seed's FP32 baseline.");
    report_table t;
    build_table(m, &t);
    report_table_md(sb, &t);
    report_table_free(&t);
    qat_strbuf_putc(sb, '\n');
    if (m->pareto.drawn) report_md_figure(sb, &m->pareto, "quality against model size");
    for (int b = 0; b < m->nbars; b++) report_md_figure(sb, &m->bars[b], "weight bits per layer");
}
