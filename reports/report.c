/* qat_report_build: reads an experiment's results, draws the plots and
 * images, and writes report.html and report.md from the same tables. */
#include "reports/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "datasets/fashion_mnist.h"
#include "qat/fileio.h"
#include "qat/json.h"
#include "reports/report_internal.h"

/* --- what the report shows --- */

typedef struct report {
    const qat_report_options *o;
    report_data d;
    report_notes notes;
    report_env env;
    report_figure figures[REPORT_FIG_COUNT];
    report_heatmap_info heatmap;
    report_grid_info grid;
    const report_run *grid_low;      /* the lowest-bit run the grid shows */
    char *experiment_ini;            /* NULL when absent */
    uint64_t first_seed;
    const report_run *first_baseline;
    char generated[64];
    report_table configs, runs;
    report_mixed mixed;              /* mixed runs: their own section, not in d */
} report;

static const char *display(const char *s) { return *s && strcmp(s, "-") != 0 ? s : "—"; }

static double fp32_bytes(const report *rp)
{
    return rp->d.baseline >= 0 ? rp->d.configs[rp->d.baseline].model_bytes : 0;
}

static void config_method(const report *rp, const report_config *cf, char *out, size_t size)
{
    if (cf->series < 0) snprintf(out, size, "FP32 baseline");
    else snprintf(out, size, "%s", rp->d.series[cf->series].label);
}

/* The best configuration (highest mean test accuracy, then the faster) of
 * each bit width; -1 where there is none. */
static void best_per_bits(const report_data *d, int *best, int *runner_up)
{
    for (int b = 0; b < d->nbits; b++) best[b] = runner_up[b] = -1;
    for (int c = 0; c < d->nconfigs; c++) {
        const report_config *cf = &d->configs[c];
        if (cf->series < 0) continue;
        int b = cf->bits_index;
        const report_config *cur = best[b] >= 0 ? &d->configs[best[b]] : NULL;
        bool better = !cur || cf->acc_mean > cur->acc_mean ||
                      (cf->acc_mean == cur->acc_mean && cf->seconds_mean < cur->seconds_mean);
        if (better) {
            runner_up[b] = best[b];
            best[b] = c;
        } else if (runner_up[b] < 0 || cf->acc_mean > d->configs[runner_up[b]].acc_mean) {
            runner_up[b] = c;
        }
    }
}

static void build_tables(report *rp)
{
    static const char *const config_header[] = { "method", "bits", "granularity", "observer", "seeds",
                                                 "test accuracy (%)", "retention (% of FP32)", "model (KiB)",
                                                 "compression (× vs FP32)", "seconds", "peak device (MiB)" };
    static const bool config_numeric[] = { false, false, false, false, true, true, true, true, true, true, true };
    static const char *const run_header[] = { "run id", "method", "bits", "granularity", "observer", "seed",
                                              "test accuracy (%)", "val accuracy (%)", "retention (%)",
                                              "model (KiB)", "seconds", "peak device (MiB)" };
    static const bool run_numeric[] = { false, false, false, false, false, true, true, true, true, true, true, true };
    const report_data *d = &rp->d;
    report_table_init(&rp->configs, (int)QAT_ARRAY_LEN(config_header), config_header, config_numeric);
    report_table_init(&rp->runs, (int)QAT_ARRAY_LEN(run_header), run_header, run_numeric);
    int *best = qat_xmalloc((size_t)d->nbits * 2 * sizeof *best), *runner_up = best + d->nbits;
    best_per_bits(d, best, runner_up);
    double base_bytes = fp32_bytes(rp);
    for (int c = 0; c < d->nconfigs; c++) {
        const report_config *cf = &d->configs[c];
        char method[300], seeds[16], acc[64], ret[64], kib[32], comp[32], sec[64], peak[32];
        config_method(rp, cf, method, sizeof method);
        snprintf(seeds, sizeof seeds, "%d", cf->nruns);
        report_format_pm(acc, sizeof acc, cf->acc_mean, cf->acc_std, cf->nruns, 2);
        report_format_pm(ret, sizeof ret, cf->retention_mean, cf->retention_std, cf->nruns, 1);
        snprintf(kib, sizeof kib, "%.1f", cf->model_bytes / 1024.0);
        if (base_bytes > 0 && cf->model_bytes > 0) snprintf(comp, sizeof comp, "%.1f×", base_bytes / cf->model_bytes);
        else snprintf(comp, sizeof comp, "—");
        report_format_pm(sec, sizeof sec, cf->seconds_mean, cf->seconds_std, cf->nruns, 1);
        /* 0: the run did not record it. */
        if (cf->peak_mib > 0) snprintf(peak, sizeof peak, "%.1f", cf->peak_mib);
        else snprintf(peak, sizeof peak, "—");
        bool is_best = cf->series >= 0 && best[cf->bits_index] == c;
        report_table_row(&rp->configs, is_best, method, d->bits[cf->bits_index].label,
                  cf->series < 0 ? "—" : display(cf->first->granularity),
                  cf->series < 0 ? "—" : display(cf->first->observer), seeds, acc, ret, kib, comp, sec, peak);
    }
    for (int i = 0; i < d->nruns; i++) {
        const report_run *r = &d->runs[i];
        char method[32], bits[24], seed[32], acc[32], val[32], ret[32], kib[32], sec[32], peak[32];
        report_method_name(r, method, sizeof method);
        report_bits_label(r->w_bits, r->a_bits, bits, sizeof bits);
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->seed);
        snprintf(acc, sizeof acc, "%.2f", 100 * r->test_acc);
        snprintf(val, sizeof val, "%.2f", 100 * r->val_acc);
        snprintf(ret, sizeof ret, "%.1f", r->retention_pct);
        snprintf(kib, sizeof kib, "%.1f", (double)r->model_bytes / 1024.0);
        snprintf(sec, sizeof sec, "%.1f", r->seconds);
        if (r->peak_device_bytes) snprintf(peak, sizeof peak, "%.1f", (double)r->peak_device_bytes / (1024.0 * 1024.0));
        else snprintf(peak, sizeof peak, "—");
        report_table_row(&rp->runs, false, r->run_id, method, bits,
                  r->kind == REPORT_BASELINE ? "—" : display(r->granularity),
                  r->kind == REPORT_BASELINE ? "—" : display(r->observer), seed, acc, val, ret, kib, sec, peak);
    }
    free(best);
}

/* One sentence per bit width: the winner, what it keeps, at what size and
 * cost, and by how much it leads. */
static void summary_sentences(const report *rp, report_notes *out)
{
    const report_data *d = &rp->d;
    int *best = qat_xmalloc((size_t)d->nbits * 2 * sizeof *best), *runner_up = best + d->nbits;
    best_per_bits(d, best, runner_up);
    double base_bytes = fp32_bytes(rp);
    const report_config *base = d->baseline >= 0 ? &d->configs[d->baseline] : NULL;
    for (int b = 0; b < d->nbits; b++) {
        if (best[b] < 0) continue;
        const report_config *cf = &d->configs[best[b]];
        char method[300], size[96] = "", against[96] = "", next[512] = "";
        config_method(rp, cf, method, sizeof method);
        if (base) snprintf(against, sizeof against, " vs %.2f%%", base->acc_mean);
        if (base_bytes > 0 && cf->model_bytes > 0)
            snprintf(size, sizeof size, ", %.1f KiB (%.1f× smaller than FP32)", cf->model_bytes / 1024.0,
                     base_bytes / cf->model_bytes);
        else
            snprintf(size, sizeof size, ", %.1f KiB", cf->model_bytes / 1024.0);
        if (runner_up[b] >= 0) {
            const report_config *ru = &d->configs[runner_up[b]];
            char ru_method[300];
            config_method(rp, ru, ru_method, sizeof ru_method);
            /* A lead smaller than the seeds' spread is no win to build on. */
            bool within_noise = cf->nruns > 1 && ru->nruns > 1 && cf->acc_mean - ru->acc_mean <= cf->acc_std + ru->acc_std;
            snprintf(next, sizeof next, "; next: %s at %.1f%% (%.2f points lower%s)", ru_method, ru->retention_mean,
                     cf->acc_mean - ru->acc_mean, within_noise ? ", within the spread over seeds" : "");
        }
        report_note(out, "At %s, %s retains %.1f%% of FP32 (test accuracy %.2f%%%s)%s, in %.1f s%s.",
                    d->bits[b].label, method, cf->retention_mean, cf->acc_mean, against, size, cf->seconds_mean,
                    next);
    }
    free(best);
}

/* --- images --- */

static const report_run *lowest_bit_run(const report_data *d, uint64_t seed)
{
    const report_run *low = NULL;
    for (int i = 0; i < d->nruns; i++) {
        const report_run *r = &d->runs[i];
        if (r->kind == REPORT_BASELINE || r->seed != seed) continue;
        if (!low || r->w_bits + r->a_bits < low->w_bits + low->a_bits ||
            (r->w_bits + r->a_bits == low->w_bits + low->a_bits && r->test_acc > low->test_acc))
            low = r;
    }
    return low;
}

static void build_images(report *rp, const char *plots_dir)
{
    const char *run_dir = rp->o->run_dir;
    char fp32_ckpt[4400], path[4400];
    if (!rp->first_baseline) {
        report_note(&rp->notes, "no baseline run: the weight-error heatmap and the test-image grid are left out");
        return;
    }
    snprintf(fp32_ckpt, sizeof fp32_ckpt, "%s/%s/model.safetensors", run_dir, rp->first_baseline->run_id);
    report_figure *heat = &rp->figures[REPORT_FIG_HEATMAP];
    snprintf(path, sizeof path, "%s/weight_error_heatmap.png", plots_dir);
    if (!report_file_exists(fp32_ckpt)) {
        report_note(&rp->notes, "no baseline checkpoint %s: the weight-error heatmap is left out", fp32_ckpt);
    } else if (report_heatmap_build(fp32_ckpt, path, &rp->heatmap) != QAT_OK) {
        report_note(&rp->notes, "weight-error heatmap left out: %s", qat_error_message());
    } else {
        snprintf(heat->file, sizeof heat->file, "weight_error_heatmap.png");
        heat->drawn = true;
        const report_heatmap_info *h = &rp->heatmap;
        char shown[128] = "";
        if (h->shown_rows < h->rows || h->shown_cols < h->cols)
            snprintf(shown, sizeof shown, " (the top-left %lld × %lld of %lld × %lld)", h->shown_rows,
                     h->shown_cols, h->rows, h->cols);
        snprintf(heat->caption, sizeof heat->caption,
                 "|W − Q(W)| of layer %s of the FP32 baseline (seed %llu), %lld × %lld%s: rows are output channels, "
                 "columns inputs. Round-to-nearest, symmetric, one scale per output channel (minmax) at 2, 3, 4 "
                 "and 8 bits. One shared logarithmic colour scale (viridis) from %.1e (dark; smaller errors too) "
                 "to %.1e (bright), the largest error at any width; the bar's marks are powers of ten.",
                 h->layer, (unsigned long long)rp->first_baseline->seed, h->shown_rows, h->shown_cols, shown,
                 h->scale_lo, h->scale_hi);
    }

    report_figure *grid = &rp->figures[REPORT_FIG_GRID];
    const report_run *low = lowest_bit_run(&rp->d, rp->first_seed);
    char low_ckpt[4400];
    if (!low) {
        report_note(&rp->notes, "no PTQ or QAT run of seed %llu: the test-image grid is left out",
                    (unsigned long long)rp->first_seed);
        return;
    }
    snprintf(low_ckpt, sizeof low_ckpt, "%s/%s/model.safetensors", run_dir, low->run_id);
    snprintf(path, sizeof path, "%s/test_grid.png", plots_dir);
    if (!report_file_exists(fp32_ckpt) || !report_file_exists(low_ckpt)) {
        report_note(&rp->notes, "no checkpoint %s: the test-image grid is left out",
                    report_file_exists(fp32_ckpt) ? low_ckpt : fp32_ckpt);
        return;
    }
    qat_status st = report_grid_build(fp32_ckpt, low_ckpt, rp->o->device, rp->o->data_dir, path, &rp->grid);
    if (st == QAT_ERR_VULKAN) {
        report_note(&rp->notes, "test-image grid skipped: no usable Vulkan device to predict with (%s)",
                    qat_error_message());
        return;
    }
    if (st != QAT_OK) {
        report_note(&rp->notes, "test-image grid skipped: %s", qat_error_message());
        return;
    }
    rp->grid_low = low;
    snprintf(grid->file, sizeof grid->file, "test_grid.png");
    grid->drawn = true;
    char method[32], bits[24];
    report_method_name(low, method, sizeof method);
    report_bits_label(low->w_bits, low->a_bits, bits, sizeof bits);
    const report_grid_info *g = &rp->grid;
    snprintf(grid->caption, sizeof grid->caption,
             "Fashion-MNIST test images (numbered as in the table below), each with two bars: top, the FP32 "
             "baseline's prediction; bottom, the lowest-bit model's (%s %s, run %s); green right, red wrong. Of the "
             "first %u test images the FP32 model gets %u right and the %s model %u; they disagree on %u. Shown: "
             "the first %d of those disagreements, then the first other images, in test-set order.",
             method, bits, low->run_id, g->considered, g->fp32_correct, bits, g->low_correct, g->disagreements,
             REPORT_GRID_CELLS / 2);
}

/* --- writers --- */

static void heatmap_table(const report *rp, report_table *t)
{
    static const char *const header[] = { "bits", "mean |W − Q(W)|", "max |W − Q(W)|", "‖W − Q(W)‖ / ‖W‖" };
    static const bool numeric[] = { true, true, true, true };
    report_table_init(t, 4, header, numeric);
    for (int b = 0; b < REPORT_HEATMAP_BITS; b++) {
        const report_heatmap_stats *s = &rp->heatmap.stats[b];
        char bits[8], mean[32], max[32], rel[32];
        snprintf(bits, sizeof bits, "%d", s->bits);
        snprintf(mean, sizeof mean, "%.3e", s->mean_abs_err);
        snprintf(max, sizeof max, "%.3e", s->max_abs_err);
        snprintf(rel, sizeof rel, "%.2f%%", 100 * s->rel_rms_err);
        report_table_row(t, false, bits, mean, max, rel);
    }
}

static const char *class_name(int label)
{
    return label >= 0 && label < QAT_FASHION_MNIST_CLASSES ? qat_fashion_mnist_classes[label] : "?";
}

static void grid_html(qat_strbuf *sb, const report *rp)
{
    char bits[24];
    report_bits_label(rp->grid_low->w_bits, rp->grid_low->a_bits, bits, sizeof bits);
    qat_strbuf_append_str(sb, "<table class=\"grid\">\n");
    for (int row = 0; row < REPORT_GRID_ROWS; row++) {
        qat_strbuf_append_str(sb, "<tr>");
        for (int col = 0; col < REPORT_GRID_COLS; col++) {
            int i = row * REPORT_GRID_COLS + col;
            if (i >= rp->grid.ncells) {
                qat_strbuf_append_str(sb, "<td></td>");
                continue;
            }
            const report_grid_cell *c = &rp->grid.cells[i];
            qat_strbuf_printf(sb, "<td><b>%d</b> %s<br>FP32: <span%s>%s</span><br>%s: <span%s>%s</span></td>", i + 1,
                              class_name(c->label), c->fp32_pred == c->label ? "" : " class=\"wrong\"",
                              class_name(c->fp32_pred), bits, c->low_pred == c->label ? "" : " class=\"wrong\"",
                              class_name(c->low_pred));
        }
        qat_strbuf_append_str(sb, "</tr>\n");
    }
    qat_strbuf_append_str(sb, "</table>\n<p class=\"meta\">Each cell: its number in the image, the true class, then "
                              "the two models' predictions (red: wrong).</p>\n");
}

static void grid_md(qat_strbuf *sb, const report *rp)
{
    char bits[24];
    report_bits_label(rp->grid_low->w_bits, rp->grid_low->a_bits, bits, sizeof bits);
    qat_strbuf_printf(sb, "| # | test image | true class | FP32 prediction | %s prediction |\n|---:|---:|---|---|---|\n",
                      bits);
    for (int i = 0; i < rp->grid.ncells; i++) {
        const report_grid_cell *c = &rp->grid.cells[i];
        qat_strbuf_printf(sb, "| %d | %u | %s | %s%s | %s%s |\n", i + 1, c->index, class_name(c->label),
                          class_name(c->fp32_pred), c->fp32_pred == c->label ? "" : " ✗", class_name(c->low_pred),
                          c->low_pred == c->label ? "" : " ✗");
    }
    qat_strbuf_putc(sb, '\n');
}

static void write_html(const report *rp, qat_strbuf *sb)
{
    const report_data *d = &rp->d;
    char name[256], seeds[512];
    report_experiment_name(rp->o->run_dir, name, sizeof name);
    report_seeds_text(d->seeds, d->nseeds, seeds, sizeof seeds);
    qat_strbuf_append_str(sb, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>qat report: ");
    report_html_escape(sb, name);
    qat_strbuf_printf(sb, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>Quantization report: ", report_css);
    report_html_escape(sb, name);
    qat_strbuf_append_str(sb, "</h1>\n<p class=\"meta\">");
    qat_strbuf_printf(sb, "%d runs, %d configurations, %d seed%s (", d->nruns, d->nconfigs, d->nseeds,
                      d->nseeds == 1 ? "" : "s");
    report_html_escape(sb, seeds);
    qat_strbuf_append_str(sb, "); model ");
    qat_strbuf buf = { 0 };
    report_join(&buf, &rp->env.models, "unknown");
    report_html_escape(sb, buf.data);
    qat_strbuf_append_str(sb, "; generated ");
    report_html_escape(sb, rp->generated);
    qat_strbuf_append_str(sb, ".</p>\n\n<h2>Summary</h2>\n");
    report_notes sentences = { 0 };
    summary_sentences(rp, &sentences);
    if (!sentences.count) qat_strbuf_append_str(sb, "<p>No quantized runs yet.</p>\n");
    else qat_strbuf_append_str(sb, "<p>The best method at each bit width (highest mean test accuracy):</p>\n<ul>\n");
    for (int i = 0; i < sentences.count; i++) {
        qat_strbuf_append_str(sb, "<li>");
        report_html_escape(sb, sentences.items[i]);
        qat_strbuf_append_str(sb, "</li>\n");
    }
    if (sentences.count) qat_strbuf_append_str(sb, "</ul>\n");
    report_notes_free(&sentences);

    qat_strbuf_append_str(sb, "\n<h2>Plots</h2>\n");
    static const char *const plot_alt[] = { "test accuracy by bit width and method", "test accuracy vs model size",
                                            "validation accuracy during training" };
    for (int f = REPORT_FIG_BITS; f <= REPORT_FIG_CURVES; f++)
        if (rp->figures[f].drawn) report_html_figure(sb, &rp->figures[f], plot_alt[f]);

    qat_strbuf_append_str(sb, "\n<h2>Results</h2>\n<p>Mean ± sample standard deviation over seeds per "
                              "configuration; bold: the best of its bit width. Retention is test accuracy as a "
                              "percentage of the same seed's FP32 baseline. Model size counts the checkpoint's "
                              "tensor bytes (packed codes, scales, zero points, FP32 tensors).</p>\n");
    report_table_html(sb, &rp->configs);
    qat_strbuf_append_str(sb, "<h3>Every run</h3>\n");
    report_table_html(sb, &rp->runs);

    qat_strbuf_append_str(sb, "\n<h2>Images</h2>\n");
    if (rp->figures[REPORT_FIG_HEATMAP].drawn) {
        report_html_figure(sb, &rp->figures[REPORT_FIG_HEATMAP], "per-weight quantization error at 2, 3, 4 and 8 bits");
        report_table t;
        heatmap_table(rp, &t);
        report_table_html(sb, &t);
        report_table_free(&t);
    }
    if (rp->figures[REPORT_FIG_GRID].drawn) {
        report_html_figure(sb, &rp->figures[REPORT_FIG_GRID], "test images with FP32 and lowest-bit predictions");
        grid_html(sb, rp);
    }
    if (!rp->figures[REPORT_FIG_HEATMAP].drawn && !rp->figures[REPORT_FIG_GRID].drawn)
        qat_strbuf_append_str(sb, "<p>None: see the notes.</p>\n");
    report_mixed_html(sb, &rp->mixed);

    qat_strbuf_free(&buf);
    report_tail tail = { &rp->notes, &rp->env, seeds, rp->o->run_dir, rp->generated, rp->experiment_ini };
    report_tail_html(sb, &tail);
}

static void write_md(const report *rp, qat_strbuf *sb)
{
    const report_data *d = &rp->d;
    char name[256], seeds[512];
    report_experiment_name(rp->o->run_dir, name, sizeof name);
    report_seeds_text(d->seeds, d->nseeds, seeds, sizeof seeds);
    qat_strbuf buf = { 0 };
    report_join(&buf, &rp->env.models, "unknown");
    qat_strbuf_printf(sb, "# Quantization report: %s\n\n%d runs, %d configurations, %d seed%s (%s); model %s; "
                          "generated %s.\n\n## Summary\n\n", name, d->nruns, d->nconfigs, d->nseeds,
                      d->nseeds == 1 ? "" : "s", seeds, buf.data, rp->generated);
    report_notes sentences = { 0 };
    summary_sentences(rp, &sentences);
    if (!sentences.count) qat_strbuf_append_str(sb, "No quantized runs yet.\n");
    for (int i = 0; i < sentences.count; i++) qat_strbuf_printf(sb, "- %s\n", sentences.items[i]);
    report_notes_free(&sentences);
    qat_strbuf_append_str(sb, "\n## Plots\n\n");
    static const char *const plot_alt[] = { "test accuracy by bit width", "test accuracy vs model size",
                                            "training curves" };
    for (int f = REPORT_FIG_BITS; f <= REPORT_FIG_CURVES; f++)
        if (rp->figures[f].drawn) report_md_figure(sb, &rp->figures[f], plot_alt[f]);
    qat_strbuf_append_str(sb, "## Results\n\nMean ± sample standard deviation over seeds; bold: the best of its "
                              "bit width; retention in % of the same seed's FP32 test accuracy.\n\n");
    report_table_md(sb, &rp->configs);
    qat_strbuf_append_str(sb, "\n### Every run\n\n");
    report_table_md(sb, &rp->runs);
    qat_strbuf_append_str(sb, "\n## Images\n\n");
    if (rp->figures[REPORT_FIG_HEATMAP].drawn) {
        report_md_figure(sb, &rp->figures[REPORT_FIG_HEATMAP], "weight quantization error");
        report_table t;
        heatmap_table(rp, &t);
        report_table_md(sb, &t);
        report_table_free(&t);
        qat_strbuf_putc(sb, '\n');
    }
    if (rp->figures[REPORT_FIG_GRID].drawn) {
        report_md_figure(sb, &rp->figures[REPORT_FIG_GRID], "test images");
        grid_md(sb, rp);
    }
    if (!rp->figures[REPORT_FIG_HEATMAP].drawn && !rp->figures[REPORT_FIG_GRID].drawn)
        qat_strbuf_append_str(sb, "None: see the notes.\n\n");
    report_mixed_md(sb, &rp->mixed);
    qat_strbuf_free(&buf);
    report_tail tail = { &rp->notes, &rp->env, seeds, rp->o->run_dir, rp->generated, rp->experiment_ini };
    report_tail_md(sb, &tail);
}

/* --- orchestration --- */

static void report_free(report *rp)
{
    report_data_free(&rp->d);
    report_notes_free(&rp->notes);
    report_env_free(&rp->env);
    report_table_free(&rp->configs);
    report_table_free(&rp->runs);
    report_mixed_free(&rp->mixed);
    free(rp->experiment_ini);
}

/* Moves the mixed runs out of `runs` (keeping the others' order) into the
 * section, each with its seed's FP32 test accuracy beside it. */
static int split_mixed(report *rp, report_run *runs, int nruns)
{
    for (int i = 0; i < nruns; i++) {
        const report_run *r = &runs[i];
        if (r->kind != REPORT_MIXED) continue;
        report_mixed_run m = { .seed = r->seed, .avg_bits = r->avg_bits, .model_bytes = r->model_bytes,
                               .quality = 100 * r->test_acc, .reference = NAN, .forget = NAN };
        snprintf(m.run_id, sizeof m.run_id, "%s", r->run_id);
        snprintf(m.strategy, sizeof m.strategy, "%s", r->strategy);
        snprintf(m.budget, sizeof m.budget, "%s", r->budget);
        snprintf(m.algorithm, sizeof m.algorithm, "%s", r->algorithm);
        for (int k = 0; k < nruns && isnan(m.reference); k++)
            if (runs[k].kind == REPORT_BASELINE && runs[k].seed == r->seed) m.reference = 100 * runs[k].test_acc;
        report_mixed_add(&rp->mixed, &m);
    }
    int kept = 0;
    for (int i = 0; i < nruns; i++)
        if (runs[i].kind != REPORT_MIXED) runs[kept++] = runs[i];
    return kept;
}

/* Whether results.csv has the gpt's header (a missing or unreadable file is
 * left to the image reader to name). */
static bool results_are_text(const char *path)
{
    void *text;
    size_t size;
    if (qat_file_read_all(path, &text, &size) != QAT_OK) {
        qat_error_clear();
        return false;
    }
    const char *t = text;
    bool yes = false;
    /* Either header: the one with the mixed-precision columns, or the one before. */
    for (int h = 0; h < 2 && !yes; h++) {
        const char *header = h ? QAT_REPORT_TEXT_RESULTS_HEADER_V1 : QAT_REPORT_TEXT_RESULTS_HEADER;
        size_t n = strlen(header);
        yes = size >= n && memcmp(t, header, n) == 0 &&
              (t[n] == '\n' || t[n] == '\0' || (t[n] == '\r' && (t[n + 1] == '\n' || t[n + 1] == '\0')));
    }
    free(text);
    return yes;
}

qat_status qat_report_build(const qat_report_options *o)
{
    if (!o || !o->run_dir || !*o->run_dir) return qat_error_set(QAT_ERR_INVALID, "report: no run directory given");
    char path[4400], plots_dir[4200];
    snprintf(path, sizeof path, "%s/results.csv", o->run_dir);
    if (results_are_text(path)) return report_text_build(o);
    report *rp = qat_xcalloc(1, sizeof *rp);
    rp->o = o;
    report_run *runs;
    int nruns;
    qat_status st = report_results_load(path, &runs, &nruns);
    if (st != QAT_OK) {
        free(rp);
        return st;
    }
    nruns = split_mixed(rp, runs, nruns);
    report_data_build(&rp->d, runs, nruns);
    for (int i = 0; i < nruns && !rp->first_baseline; i++)
        if (runs[i].kind == REPORT_BASELINE) rp->first_baseline = &runs[i];
    rp->first_seed = rp->first_baseline ? rp->first_baseline->seed : nruns ? runs[0].seed : 0;
    if (!rp->first_baseline)
        report_note(&rp->notes, "no baseline run in results.csv: nothing to compare with FP32");

    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(rp->generated, sizeof rp->generated, "%Y-%m-%d %H:%M:%S UTC", &utc);

    snprintf(plots_dir, sizeof plots_dir, "%s/plots", o->run_dir);
    st = qat_mkdir_p(plots_dir);
    if (st == QAT_OK) st = report_plots_build(&rp->d, o->run_dir, plots_dir, rp->figures, &rp->notes);
    if (st == QAT_OK) st = report_mixed_plots(&rp->mixed, o->run_dir, plots_dir, &rp->notes);
    if (st == QAT_OK) {
        build_images(rp, plots_dir);
        const char **ids = qat_xmalloc((size_t)nruns * sizeof *ids);
        bool *baseline = qat_xmalloc((size_t)nruns * sizeof *baseline);
        for (int i = 0; i < nruns; i++) {
            ids[i] = rp->d.runs[i].run_id;
            baseline[i] = rp->d.runs[i].kind == REPORT_BASELINE;
        }
        report_env_read(o->run_dir, ids, baseline, nruns, &rp->env, &rp->notes);
        free(ids), free(baseline);
        snprintf(path, sizeof path, "%s/experiment.ini", o->run_dir);
        void *ini;
        size_t size;
        if (qat_file_read_all(path, &ini, &size) == QAT_OK) rp->experiment_ini = ini;
        else report_note(&rp->notes, "no experiment spec: %s", qat_error_message());
        build_tables(rp);
        qat_strbuf html = { 0 }, md = { 0 };
        write_html(rp, &html);
        write_md(rp, &md);
        st = report_pages_write(o->run_dir, &html, &md);
    }
    if (st == QAT_OK && !o->quiet) report_print_done(&rp->notes, o->run_dir, plots_dir);
    report_free(rp);
    free(rp);
    return st;
}
