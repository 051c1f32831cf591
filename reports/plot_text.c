/* The gpt report's plots (through report_gnuplot_render, as plot.c's): each
 * arm's bits per character on the target domain, target against forget bpc
 * (what fine-tuning on the target costs on the forget domain), and the
 * validation bpc during pretraining and fine-tuning. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/report_internal.h"

#define TEXT_PLOT_HEIGHT 600
#define TEXT_CURVES_WIDTH 1300
#define BASE_COLOR "#444444"

/* (a)'s fine-tune and its quantized models share a colour; the base is grey. */
static const char *arm_color(report_arm arm)
{
    if (arm == REPORT_ARM_BASE) return BASE_COLOR;
    return report_plot_color(arm == REPORT_ARM_A_FINETUNE ? 0 : (int)arm - REPORT_ARM_A);
}

/* Open circle for the FP32 fine-tune, filled shapes for the rest. */
static int arm_point(report_arm arm)
{
    static const int types[] = { 7, 6, 7, 5, 9, 13, 11 };
    _Static_assert(QAT_ARRAY_LEN(types) == REPORT_ARM_COUNT, "a point type per arm");
    return types[arm];
}

static const char *arm_legend(report_arm arm)
{
    static const char *const legend[] = { "pretrained base", "(a) FP32 fine-tune", "(a) fine-tune, then PTQ",
                                          "(b) QLoRA", "(c) QAT", "(d) LoRA, FP32 base", "(e) PTQ of the base" };
    _Static_assert(QAT_ARRAY_LEN(legend) == REPORT_ARM_COUNT, "a legend entry per arm");
    return legend[arm];
}

static double base_target_mean(const report_text_data *d)
{
    return d->base >= 0 ? d->configs[d->base].target_mean : NAN;
}

/* --- target bpc per arm --- */

static void plot_target(const report_text_data *d, qat_strbuf *sb)
{
    report_plot_style(sb, "Target-domain bits per character of each arm", "",
                      "target-domain validation bpc (lower is better)");
    for (int arm = 0; arm < REPORT_ARM_COUNT; arm++) {
        qat_strbuf_printf(sb, "$arm%d << EOD\n# x  target_bpc  std  seeds\n", arm);
        for (int c = 0; c < d->nconfigs; c++) {
            const report_text_config *cf = &d->configs[c];
            if ((int)cf->arm == arm && cf->n_target)
                qat_strbuf_printf(sb, "%d %.5f %.5f %d\n", c, cf->target_mean, cf->target_std, cf->n_target);
        }
        qat_strbuf_append_str(sb, "EOD\n");
    }
    double base = base_target_mean(d);
    if (isfinite(base)) qat_strbuf_printf(sb, "base_bpc = %.5f\n", base);
    qat_strbuf_printf(sb, "set xrange [-0.6:%.1f]\nset xtics rotate by -35 font ',9' (", d->nconfigs - 0.4);
    for (int c = 0; c < d->nconfigs; c++) {
        if (c) qat_strbuf_append_str(sb, ", ");
        report_gp_string(sb, d->configs[c].short_label);
        qat_strbuf_printf(sb, " %d", c);
    }
    qat_strbuf_append_str(sb, ")\nset bmargin 7\nset offsets 0, 0, 0.02, 0.02\nset bars 0.6\n"
                              "set key outside right top vertical Left reverse samplen 2 spacing 1.3 title 'arm'\nplot ");
    bool first = true;
    if (isfinite(base)) {
        qat_strbuf_printf(sb, "base_bpc with lines ls 1 title 'pretrained base (%.3f)'", base);
        first = false;
    }
    for (int arm = 0; arm < REPORT_ARM_COUNT; arm++) {
        bool any = false;
        for (int c = 0; c < d->nconfigs; c++) any |= (int)d->configs[c].arm == arm && d->configs[c].n_target;
        if (!any) continue;
        qat_strbuf_printf(sb, "%s$arm%d using 1:2:3 with yerrorbars pt %d ps 1.5 lw 1.5 lc rgb '%s' ",
                          first ? "" : ", \\\n     ", arm, arm_point((report_arm)arm), arm_color((report_arm)arm));
        if (arm == REPORT_ARM_BASE) {
            qat_strbuf_append_str(sb, "notitle");
        } else {
            qat_strbuf_append_str(sb, "title ");
            report_gp_string(sb, arm_legend((report_arm)arm));
        }
        first = false;
    }
    qat_strbuf_putc(sb, '\n');
}

/* --- target against forget --- */

static void plot_tradeoff(const report_text_data *d, qat_strbuf *sb)
{
    report_plot_style(sb, "Target domain against forget domain", "forget-domain validation bpc (lower: less forgotten)",
                      "target-domain validation bpc (lower: better learnt)");
    for (int arm = 0; arm < REPORT_ARM_COUNT; arm++) {
        qat_strbuf_printf(sb, "$arm%d << EOD\n# forget_bpc  target_bpc  forget_std  target_std  label\n", arm);
        for (int c = 0; c < d->nconfigs; c++) {
            const report_text_config *cf = &d->configs[c];
            if ((int)cf->arm != arm || !cf->n_target || !cf->n_forget) continue;
            qat_strbuf_printf(sb, "%.5f %.5f %.5f %.5f ", cf->forget_mean, cf->target_mean, cf->forget_std,
                              cf->target_std);
            report_gp_data_string(sb, cf->short_label);
            qat_strbuf_putc(sb, '\n');
        }
        qat_strbuf_append_str(sb, "EOD\n");
    }
    qat_strbuf_append_str(sb, "set offsets graph 0.08, graph 0.08, graph 0.06, graph 0.06\nset bars 0.6\n"
                              "set key outside right top vertical Left reverse samplen 2 spacing 1.3 title 'arm'\nplot ");
    bool first = true;
    for (int arm = 0; arm < REPORT_ARM_COUNT; arm++) {
        bool any = false;
        for (int c = 0; c < d->nconfigs; c++)
            any |= (int)d->configs[c].arm == arm && d->configs[c].n_target && d->configs[c].n_forget;
        if (!any) continue;
        qat_strbuf_printf(sb, "%s$arm%d using 1:2:3:4 with xyerrorbars pt %d ps 1.5 lw 1.5 lc rgb '%s' title ",
                          first ? "" : ", \\\n     ", arm, arm_point((report_arm)arm), arm_color((report_arm)arm));
        report_gp_string(sb, arm_legend((report_arm)arm));
        qat_strbuf_printf(sb, ", \\\n     $arm%d using 1:2:5 with labels left offset char 0.8,0.6 font ',9' "
                              "tc rgb '#333333' notitle", arm);
        first = false;
    }
    qat_strbuf_putc(sb, '\n');
}

/* --- bpc during training --- */

typedef struct bpc_curves {
    int n;
    int *config, *run;
    report_bpc_curve *curves;
} bpc_curves;

/* Curves of the runs of the arms in `arms` (a mask of 1 << report_arm). */
static void curves_load(const report_text_data *d, const char *run_dir, unsigned arms, bpc_curves *out,
                        report_notes *notes)
{
    memset(out, 0, sizeof *out);
    out->config = qat_xmalloc((size_t)d->nruns * sizeof(int));
    out->run = qat_xmalloc((size_t)d->nruns * sizeof(int));
    out->curves = qat_xcalloc((size_t)d->nruns, sizeof(report_bpc_curve));
    for (int c = 0; c < d->nconfigs; c++) {
        const report_text_config *cf = &d->configs[c];
        if (!(arms & 1u << cf->arm)) continue;
        for (int i = 0; i < cf->nruns; i++) {
            const report_text_run *r = &d->runs[cf->runs[i]];
            /* PTQ trains nothing: no curve. */
            if (r->kind == REPORT_TEXT_PTQ) continue;
            char path[4400];
            snprintf(path, sizeof path, "%s/%s/metrics.csv", run_dir, r->run_id);
            if (report_bpc_curve_load(path, &out->curves[out->n]) != QAT_OK) {
                report_note(notes, "no bpc curve for run %s: %s", r->run_id, qat_error_message());
                continue;
            }
            out->config[out->n] = c;
            out->run[out->n] = cf->runs[i];
            out->n++;
        }
    }
}

static void curves_free(bpc_curves *s)
{
    for (int i = 0; i < s->n; i++) report_bpc_curve_free(&s->curves[i]);
    free(s->config), free(s->run), free(s->curves);
}

/* from_start: the fine-tuning curves begin at step 0 with the bpc of the
 * checkpoint they start from. */
static void curve_blocks(qat_strbuf *sb, const char *prefix, const report_text_data *d, const bpc_curves *s,
                         bool from_start)
{
    for (int i = 0; i < s->n; i++) {
        qat_strbuf_printf(sb, "$%s%d << EOD\n# step  val_bpc\n", prefix, i);
        double start = d->runs[s->run[i]].start_val_bpc;
        if (from_start && isfinite(start)) qat_strbuf_printf(sb, "0 %.5f\n", start);
        for (int k = 0; k < s->curves[i].n; k++)
            qat_strbuf_printf(sb, "%d %.5f\n", s->curves[i].step[k], s->curves[i].val_bpc[k]);
        qat_strbuf_append_str(sb, "EOD\n");
    }
}

static void plot_curves(const report_text_data *d, const bpc_curves *pre, const bpc_curves *fine, qat_strbuf *sb)
{
    report_plot_style(sb, "", "", "validation bpc");
    curve_blocks(sb, "pretrain", d, pre, false);
    curve_blocks(sb, "finetune", d, fine, true);
    qat_strbuf_printf(sb, "set multiplot layout 1,%d title 'Validation bits per character during training' "
                          "font ',14'\n", pre->n && fine->n ? 2 : 1);
    qat_strbuf_append_str(sb, "set offsets 0, 0, 0.02, 0.02\n");
    if (pre->n) {
        qat_strbuf_append_str(sb, "set title 'pretraining, on its own corpus'\nset xlabel 'step'\n"
                                  "set key top right Left reverse samplen 2 spacing 1.2 opaque box lc rgb '#cccccc'\n"
                                  "plot ");
        for (int i = 0; i < pre->n; i++)
            qat_strbuf_printf(sb, "%s$pretrain%d using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '%s' "
                                  "title 'seed %llu'", i ? ", \\\n     " : "", i, report_plot_color(i),
                              (unsigned long long)d->runs[pre->run[i]].seed);
        qat_strbuf_putc(sb, '\n');
    }
    if (fine->n) {
        double base = base_target_mean(d);
        qat_strbuf_append_str(sb, "set title 'fine-tuning from the base, on the target domain'\n"
                                  "set xlabel 'fine-tuning step'\n"
                                  "set key outside right top vertical Left reverse samplen 4 spacing 1.2 noopaque "
                                  "nobox\nplot ");
        if (isfinite(base))
            qat_strbuf_printf(sb, "%.5f with lines ls 1 title 'pretrained base (%.3f)', \\\n     ", base, base);
        /* A legend entry per configuration, its seeds sharing it. */
        int last = -1;
        for (int i = 0; i < fine->n; i++) {
            const report_text_config *cf = &d->configs[fine->config[i]];
            qat_strbuf_printf(sb, "%s$finetune%d using 1:2 with linespoints lw 2 pt %d ps 0.8 lc rgb '%s' ",
                              i ? ", \\\n     " : "", i, arm_point(cf->arm), arm_color(cf->arm));
            if (fine->config[i] != last) {
                qat_strbuf_append_str(sb, "title ");
                report_gp_string(sb, cf->short_label);
            } else {
                qat_strbuf_append_str(sb, "notitle");
            }
            last = fine->config[i];
        }
        qat_strbuf_putc(sb, '\n');
    }
    qat_strbuf_append_str(sb, "unset multiplot\n");
}

/* --- all of them --- */

qat_status report_text_plots_build(const report_text_data *d, const char *run_dir, const char *plots_dir,
                                   report_figure *figures, report_notes *notes)
{
    QAT_TRY(report_gnuplot_check());
    qat_strbuf body = { 0 };
    int measured = 0, both = 0;
    for (int c = 0; c < d->nconfigs; c++) {
        measured += d->configs[c].n_target > 0;
        both += d->configs[c].n_target > 0 && d->configs[c].n_forget > 0;
    }
    qat_status st = QAT_OK;
    if (!measured) {
        report_note(notes, "no run with a target-domain bpc yet: the plots of the arms are left out");
    } else {
        plot_target(d, &body);
        /* Room for the labels along the axis. */
        int width = d->nconfigs > 8 ? 900 + 45 * (d->nconfigs - 8) : 900;
        st = report_figure_render(plots_dir, &figures[REPORT_TEXT_FIG_TARGET],
                                  "target_bpc", width, TEXT_PLOT_HEIGHT, &body);
        snprintf(figures[REPORT_TEXT_FIG_TARGET].caption, sizeof figures[REPORT_TEXT_FIG_TARGET].caption,
                 "Validation bits per character on the target domain of each configuration (mean over %d seed%s, "
                 "error bars one sample standard deviation), grouped by arm. The dashed line is the pretrained "
                 "base on the same data; below it, an arm learnt the target domain.", d->nseeds,
                 d->nseeds == 1 ? "" : "s");
    }
    if (st == QAT_OK && both) {
        plot_tradeoff(d, &body);
        st = report_figure_render(plots_dir, &figures[REPORT_TEXT_FIG_TRADEOFF],
                                  "target_vs_forget", 900, TEXT_PLOT_HEIGHT, &body);
        snprintf(figures[REPORT_TEXT_FIG_TRADEOFF].caption, sizeof figures[REPORT_TEXT_FIG_TRADEOFF].caption,
                 "The forgetting trade-off: each configuration's bpc on the target domain against its bpc on the "
                 "forget domain (means over seeds, error bars one standard deviation each way). Down is better "
                 "on the target, left is less forgotten; the grey point is the pretrained base.");
    } else if (st == QAT_OK && measured) {
        report_note(notes, "no run with both a target and a forget bpc: the trade-off plot is left out");
    }
    if (st == QAT_OK) {
        bpc_curves pre, fine;
        curves_load(d, run_dir, 1u << REPORT_ARM_BASE, &pre, notes);
        curves_load(d, run_dir,
                    1u << REPORT_ARM_A_FINETUNE | 1u << REPORT_ARM_B | 1u << REPORT_ARM_C | 1u << REPORT_ARM_D, &fine,
                    notes);
        if (pre.n + fine.n == 0) {
            report_note(notes, "no metrics.csv of a pretraining or fine-tuning run: the bpc curves are left out");
        } else {
            plot_curves(d, &pre, &fine, &body);
            st = report_figure_render(plots_dir, &figures[REPORT_TEXT_FIG_CURVES], "bpc_curves",
                        pre.n && fine.n ? TEXT_CURVES_WIDTH : 900, TEXT_PLOT_HEIGHT, &body);
            snprintf(figures[REPORT_TEXT_FIG_CURVES].caption, sizeof figures[REPORT_TEXT_FIG_CURVES].caption,
                     "Validation bpc from each run's metrics.csv: the pretraining on its own corpus%s, and the "
                     "fine-tuning arms (FP32 fine-tune, QAT, QLoRA, LoRA) on the target domain%s, each drawn from "
                     "step 0 at the FP32 base's bpc (dashed), the checkpoint it starts from. Seeds of one "
                     "configuration share a colour.",
                     pre.n ? "" : " (no curves found)", fine.n ? "" : " (no curves found)");
        }
        curves_free(&pre);
        curves_free(&fine);
    }
    qat_strbuf_free(&body);
    return st;
}
