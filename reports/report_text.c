/* The report of a gpt experiment: the arms of "fine-tune then quantize or
 * quantize then fine-tune" side by side (target and forget bits per
 * character, trainable parameters, memory, time), from its results.csv. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qat/json.h"
#include "reports/report_internal.h"

typedef struct text_report {
    const qat_report_options *o;
    report_text_data d;
    report_notes notes;
    report_env env;
    report_figure figures[REPORT_TEXT_FIG_COUNT];
    char *experiment_ini;
    char target[256], forget[256];   /* the domains' corpora, from a run's summary.json ("" unknown) */
    char generated[64];
    report_table configs, runs;
    report_mixed mixed;              /* mixed runs: their own section, not in d */
} text_report;

/* Moves the mixed runs out of `runs` (keeping the others' order) into the
 * section; their reference is the checkpoint they quantized (start_val_bpc). */
static int split_mixed(text_report *rp, report_text_run *runs, int nruns)
{
    rp->mixed.text = true;
    for (int i = 0; i < nruns; i++) {
        const report_text_run *r = &runs[i];
        if (r->kind != REPORT_TEXT_MIXED) continue;
        report_mixed_run m = { .seed = r->seed, .of_finetune = r->of_finetune, .avg_bits = r->avg_bits,
                               .model_bytes = r->model_bytes, .quality = r->val_bpc, .reference = r->start_val_bpc,
                               .forget = r->forget_bpc };
        snprintf(m.run_id, sizeof m.run_id, "%s", r->run_id);
        snprintf(m.strategy, sizeof m.strategy, "%s", r->strategy);
        snprintf(m.budget, sizeof m.budget, "%s", r->budget);
        snprintf(m.algorithm, sizeof m.algorithm, "%s", r->algorithm);
        report_mixed_add(&rp->mixed, &m);
    }
    int kept = 0;
    for (int i = 0; i < nruns; i++)
        if (runs[i].kind != REPORT_TEXT_MIXED) runs[kept++] = runs[i];
    return kept;
}

/* "2.345", or "—" for a value no run recorded. */
static void bpc_text(char *out, size_t size, double mean, double std, int n)
{
    if (!n) snprintf(out, size, "—");
    else report_format_pm(out, size, mean, std, n, 3);
}

static void delta_text(char *out, size_t size, double mean, double std, int n)
{
    if (!n) snprintf(out, size, "—");
    else if (n > 1) snprintf(out, size, "%+.3f ± %.3f", mean, std);
    else snprintf(out, size, "%+.3f", mean);
}

/* 1234567 -> "1,234,567" */
static void count_text(char *out, size_t size, double v)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", v);
    size_t n = strlen(digits), o = 0;
    for (size_t i = 0; i < n && o + 2 < size; i++) {
        if (i && (n - i) % 3 == 0) out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

/* The quantized configuration (weights below 32 bits) with the lowest mean
 * target bpc, -1 for none. */
static int best_quantized(const report_text_data *d)
{
    int best = -1;
    for (int c = 0; c < d->nconfigs; c++) {
        const report_text_config *cf = &d->configs[c];
        if (cf->first->w_bits == REPORT_FP32_BITS || !cf->n_target) continue;
        if (best < 0 || cf->target_mean < d->configs[best].target_mean) best = c;
    }
    return best;
}

static void build_tables(text_report *rp)
{
    static const char *const config_header[] = { "arm", "granularity", "seeds", "target bpc", "forget bpc",
                                                 "Δ target vs base", "trainable params", "model (KiB)",
                                                 "peak device (MiB)", "seconds" };
    static const bool config_numeric[] = { false, false, true, true, true, true, true, true, true, true };
    static const char *const run_header[] = { "run id", "arm", "seed", "target bpc", "forget bpc", "start bpc",
                                              "trainable params", "model (KiB)", "peak device (MiB)", "seconds" };
    static const bool run_numeric[] = { false, false, true, true, true, true, true, true, true, true };
    const report_text_data *d = &rp->d;
    report_table_init(&rp->configs, (int)QAT_ARRAY_LEN(config_header), config_header, config_numeric);
    report_table_init(&rp->runs, (int)QAT_ARRAY_LEN(run_header), run_header, run_numeric);
    int best = best_quantized(d);
    for (int c = 0; c < d->nconfigs; c++) {
        const report_text_config *cf = &d->configs[c];
        char seeds[16], target[64], forget[64], delta[64], trainable[32], kib[32], peak[32], sec[64];
        snprintf(seeds, sizeof seeds, "%d", cf->nruns);
        bpc_text(target, sizeof target, cf->target_mean, cf->target_std, cf->n_target);
        bpc_text(forget, sizeof forget, cf->forget_mean, cf->forget_std, cf->n_forget);
        if (cf->arm == REPORT_ARM_BASE) snprintf(delta, sizeof delta, "—");
        else delta_text(delta, sizeof delta, cf->delta_mean, cf->delta_std, cf->n_delta);
        count_text(trainable, sizeof trainable, cf->trainable);
        snprintf(kib, sizeof kib, "%.1f", cf->model_bytes / 1024.0);
        if (isfinite(cf->peak_mib)) snprintf(peak, sizeof peak, "%.1f", cf->peak_mib);
        else snprintf(peak, sizeof peak, "—");
        report_format_pm(sec, sizeof sec, cf->seconds_mean, cf->seconds_std, cf->nruns, 1);
        report_table_row(&rp->configs, c == best, cf->label, *cf->first->granularity ? cf->first->granularity : "—",
                         seeds, target, forget, delta, trainable, kib, peak, sec);
    }
    for (int i = 0; i < d->nruns; i++) {
        const report_text_run *r = &d->runs[i];
        const char *label = "";
        for (int c = 0; c < d->nconfigs && !*label; c++)
            for (int k = 0; k < d->configs[c].nruns; k++)
                if (d->configs[c].runs[k] == i) label = d->configs[c].short_label;
        char seed[32], target[32], forget[32], start[32], trainable[32], kib[32], peak[32], sec[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->seed);
        bpc_text(target, sizeof target, r->val_bpc, 0, isfinite(r->val_bpc));
        bpc_text(forget, sizeof forget, r->forget_bpc, 0, isfinite(r->forget_bpc));
        bpc_text(start, sizeof start, r->start_val_bpc, 0, isfinite(r->start_val_bpc));
        count_text(trainable, sizeof trainable, (double)r->trainable_params);
        snprintf(kib, sizeof kib, "%.1f", (double)r->model_bytes / 1024.0);
        if (r->peak_device_bytes) snprintf(peak, sizeof peak, "%.1f", (double)r->peak_device_bytes / (1024.0 * 1024.0));
        else snprintf(peak, sizeof peak, "—");
        snprintf(sec, sizeof sec, "%.1f", r->seconds);
        report_table_row(&rp->runs, false, r->run_id, label, seed, target, forget, start, trainable, kib, peak, sec);
    }
}

static void domain(const char *name, char *out, size_t size)
{
    if (*name) snprintf(out, size, " (%s)", name);
    else out[0] = '\0';
}

/* What the table says in a few sentences. */
static void summary_sentences(const text_report *rp, report_notes *out)
{
    const report_text_data *d = &rp->d;
    char target[300], forget[300];
    domain(rp->target, target, sizeof target);
    domain(rp->forget, forget, sizeof forget);
    const report_text_config *base = d->base >= 0 ? &d->configs[d->base] : NULL;
    if (base && base->n_target && base->n_forget)
        report_note(out, "The pretrained base scores %.3f bpc on the target domain%s and %.3f on the forget "
                         "domain%s.", base->target_mean, target, base->forget_mean, forget);
    else if (base && base->n_target)
        report_note(out, "The pretrained base scores %.3f bpc on the target domain%s.", base->target_mean, target);
    double base_forget = base && base->n_forget ? base->forget_mean : NAN;
    int best = best_quantized(d), best_any = -1, least = -1, fewest = -1;
    for (int c = 0; c < d->nconfigs; c++) {
        const report_text_config *cf = &d->configs[c];
        if (cf->arm == REPORT_ARM_BASE) continue;
        if (cf->n_target && (best_any < 0 || cf->target_mean < d->configs[best_any].target_mean)) best_any = c;
        bool fine_tuned = cf->arm != REPORT_ARM_E;
        if (fine_tuned && cf->n_forget && (least < 0 || cf->forget_mean < d->configs[least].forget_mean)) least = c;
        bool trains = cf->first->kind != REPORT_TEXT_PTQ;
        if (trains && (fewest < 0 || cf->trainable < d->configs[fewest].trainable)) fewest = c;
    }
    if (best >= 0) {
        const report_text_config *cf = &d->configs[best];
        char change[96] = "";
        if (cf->n_delta) snprintf(change, sizeof change, " (%+.3f vs the base)", cf->delta_mean);
        char costs[160] = "";
        if (cf->n_forget && isfinite(base_forget))
            snprintf(costs, sizeof costs, ", forget domain %.3f (%+.3f)", cf->forget_mean,
                     cf->forget_mean - base_forget);
        report_note(out, "Lowest target bpc of a quantized model: %s, %.3f%s%s, %.1f KiB.", cf->label,
                    cf->target_mean, change, costs, cf->model_bytes / 1024.0);
    }
    if (best_any >= 0 && best_any != best) {
        const report_text_config *cf = &d->configs[best_any];
        report_note(out, "Lowest target bpc of any arm: %s, %.3f%s.", cf->label, cf->target_mean,
                    cf->first->w_bits == REPORT_FP32_BITS ? " (not quantized)" : "");
    }
    if (least >= 0 && isfinite(base_forget)) {
        const report_text_config *cf = &d->configs[least];
        report_note(out, "Least forgetting among the fine-tuned models: %s, %.3f bpc on the forget domain (%+.3f "
                         "vs the base).", cf->label, cf->forget_mean, cf->forget_mean - base_forget);
    }
    if (fewest >= 0 && base && base->trainable > 0) {
        const report_text_config *cf = &d->configs[fewest];
        char n[32], all[32];
        count_text(n, sizeof n, cf->trainable);
        count_text(all, sizeof all, base->trainable);
        report_note(out, "Fewest trainable parameters: %s, %s (%.2f%% of the model's %s).", cf->label, n,
                    100 * cf->trainable / base->trainable, all);
    }
}

static const char *const text_plot_alt[] = { "target bpc per arm", "target against forget bpc",
                                              "validation bpc during training" };

static void write_html(const text_report *rp, qat_strbuf *sb)
{
    const report_text_data *d = &rp->d;
    char name[256], seeds[512];
    report_experiment_name(rp->o->run_dir, name, sizeof name);
    report_seeds_text(d->seeds, d->nseeds, seeds, sizeof seeds);
    qat_strbuf_append_str(sb, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>qat report: ");
    report_html_escape(sb, name);
    qat_strbuf_printf(sb, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>Fine-tune and quantize: ", report_css);
    report_html_escape(sb, name);
    qat_strbuf_printf(sb, "</h1>\n<p class=\"meta\">%d runs, %d configurations, %d seed%s (", d->nruns, d->nconfigs,
                      d->nseeds, d->nseeds == 1 ? "" : "s");
    report_html_escape(sb, seeds);
    qat_strbuf_append_str(sb, "); model ");
    qat_strbuf buf = { 0 };
    report_join(&buf, &rp->env.models, "unknown");
    report_html_escape(sb, buf.data);
    qat_strbuf_append_str(sb, "; target domain ");
    report_html_escape(sb, *rp->target ? rp->target : "unknown");
    qat_strbuf_append_str(sb, ", forget domain ");
    report_html_escape(sb, *rp->forget ? rp->forget : "unknown");
    qat_strbuf_append_str(sb, "; generated ");
    report_html_escape(sb, rp->generated);
    qat_strbuf_append_str(sb, ".</p>\n\n<h2>Summary</h2>\n");
    report_notes sentences = { 0 };
    summary_sentences(rp, &sentences);
    if (!sentences.count) qat_strbuf_append_str(sb, "<p>No runs with a target-domain bpc yet.</p>\n");
    else qat_strbuf_append_str(sb, "<ul>\n");
    for (int i = 0; i < sentences.count; i++) {
        qat_strbuf_append_str(sb, "<li>");
        report_html_escape(sb, sentences.items[i]);
        qat_strbuf_append_str(sb, "</li>\n");
    }
    if (sentences.count) qat_strbuf_append_str(sb, "</ul>\n");
    report_notes_free(&sentences);

    qat_strbuf_append_str(sb, "\n<h2>The arms</h2>\n<p>Pretrained on one corpus, each arm gets a model of the "
                              "target domain: (a) an FP32 fine-tune, then post-training quantization; (b) QLoRA, "
                              "adapters trained over the frozen 4-bit base; (c) quantization-aware fine-tuning; "
                              "(d) LoRA over the FP32 base; (e) the base quantized without fine-tuning. Bits per "
                              "character on the validation split of the target and the forget domain (lower is "
                              "better), mean ± sample standard deviation over seeds; Δ is the target bpc minus the "
                              "same seed's pretrained base's. Trainable parameters: what the run trained (QAT: the "
                              "weights and learned step sizes; QLoRA and LoRA: the adapters; PTQ: none). Model size: "
                              "the checkpoint's tensor bytes (QLoRA, LoRA: the frozen base as the device holds it, "
                              "plus the adapters). Bold: the quantized model with the lowest target bpc.</p>\n");
    report_table_html(sb, &rp->configs);

    qat_strbuf_append_str(sb, "\n<h2>Plots</h2>\n");
    for (int f = 0; f < REPORT_TEXT_FIG_COUNT; f++)
        if (rp->figures[f].drawn) report_html_figure(sb, &rp->figures[f], text_plot_alt[f]);
    report_mixed_html(sb, &rp->mixed);
    qat_strbuf_append_str(sb, "\n<h2>Every run</h2>\n");
    report_table_html(sb, &rp->runs);
    qat_strbuf_free(&buf);
    report_tail tail = { &rp->notes, &rp->env, seeds, rp->o->run_dir, rp->generated, rp->experiment_ini };
    report_tail_html(sb, &tail);
}

static void write_md(const text_report *rp, qat_strbuf *sb)
{
    const report_text_data *d = &rp->d;
    char name[256], seeds[512];
    report_experiment_name(rp->o->run_dir, name, sizeof name);
    report_seeds_text(d->seeds, d->nseeds, seeds, sizeof seeds);
    qat_strbuf buf = { 0 };
    report_join(&buf, &rp->env.models, "unknown");
    qat_strbuf_printf(sb, "# Fine-tune and quantize: %s\n\n%d runs, %d configurations, %d seed%s (%s); model %s; "
                          "target domain %s, forget domain %s; generated %s.\n\n## Summary\n\n", name, d->nruns,
                      d->nconfigs, d->nseeds, d->nseeds == 1 ? "" : "s", seeds, buf.data,
                      *rp->target ? rp->target : "unknown", *rp->forget ? rp->forget : "unknown", rp->generated);
    report_notes sentences = { 0 };
    summary_sentences(rp, &sentences);
    if (!sentences.count) qat_strbuf_append_str(sb, "No runs with a target-domain bpc yet.\n");
    for (int i = 0; i < sentences.count; i++) qat_strbuf_printf(sb, "- %s\n", sentences.items[i]);
    report_notes_free(&sentences);
    qat_strbuf_append_str(sb, "\n## The arms\n\nBits per character on the validation split of the target and the "
                              "forget domain (lower is better), mean ± sample standard deviation over seeds; Δ: "
                              "target bpc minus the same seed's pretrained base's; bold: the quantized model with "
                              "the lowest target bpc.\n\n");
    report_table_md(sb, &rp->configs);
    qat_strbuf_append_str(sb, "\n## Plots\n\n");
    for (int f = 0; f < REPORT_TEXT_FIG_COUNT; f++)
        if (rp->figures[f].drawn) report_md_figure(sb, &rp->figures[f], text_plot_alt[f]);
    report_mixed_md(sb, &rp->mixed);
    qat_strbuf_append_str(sb, "## Every run\n\n");
    report_table_md(sb, &rp->runs);
    qat_strbuf_putc(sb, '\n');
    qat_strbuf_free(&buf);
    report_tail tail = { &rp->notes, &rp->env, seeds, rp->o->run_dir, rp->generated, rp->experiment_ini };
    report_tail_md(sb, &tail);
}

/* The corpora, as the first run that trained or evaluated on them recorded. */
static void read_domains(text_report *rp)
{
    for (int i = 0; i < rp->d.nruns && !(*rp->target && *rp->forget); i++) {
        const report_text_run *r = &rp->d.runs[i];
        if (r->kind == REPORT_TEXT_BASELINE) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s/summary.json", rp->o->run_dir, r->run_id);
        qat_json_value *json = NULL;
        if (qat_json_load(path, &json) != QAT_OK) {
            qat_error_clear();
            continue;
        }
        const qat_json_value *t = qat_json_get(json, "data"), *f = qat_json_get(json, "forget_data");
        if (!*rp->target && t && t->type == QAT_JSON_STRING) snprintf(rp->target, sizeof rp->target, "%s", t->string);
        if (!*rp->forget && f && f->type == QAT_JSON_STRING) snprintf(rp->forget, sizeof rp->forget, "%s", f->string);
        qat_json_free(json);
    }
}

qat_status report_text_build(const qat_report_options *o)
{
    char path[4400], plots_dir[4200];
    snprintf(path, sizeof path, "%s/results.csv", o->run_dir);
    void *text;
    size_t size;
    QAT_TRY(qat_file_read_all(path, &text, &size));
    report_text_run *runs;
    int nruns;
    qat_status st = report_text_results_parse(text, size, path, &runs, &nruns);
    free(text);
    QAT_TRY(st);
    text_report *rp = qat_xcalloc(1, sizeof *rp);
    rp->o = o;
    nruns = split_mixed(rp, runs, nruns);
    report_text_data_build(&rp->d, runs, nruns);
    if (rp->d.base < 0) report_note(&rp->notes, "no baseline run in results.csv: nothing to compare with the base");
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(rp->generated, sizeof rp->generated, "%Y-%m-%d %H:%M:%S UTC", &utc);

    snprintf(plots_dir, sizeof plots_dir, "%s/plots", o->run_dir);
    st = qat_mkdir_p(plots_dir);
    if (st == QAT_OK) st = report_text_plots_build(&rp->d, o->run_dir, plots_dir, rp->figures, &rp->notes);
    if (st == QAT_OK) st = report_mixed_plots(&rp->mixed, o->run_dir, plots_dir, &rp->notes);
    if (st == QAT_OK) {
        const char **ids = qat_xmalloc((size_t)nruns * sizeof *ids);
        bool *baseline = qat_xmalloc((size_t)nruns * sizeof *baseline);
        for (int i = 0; i < nruns; i++) {
            ids[i] = rp->d.runs[i].run_id;
            baseline[i] = rp->d.runs[i].kind == REPORT_TEXT_BASELINE;
        }
        report_env_read(o->run_dir, ids, baseline, nruns, &rp->env, &rp->notes);
        free(ids), free(baseline);
        read_domains(rp);
        snprintf(path, sizeof path, "%s/experiment.ini", o->run_dir);
        void *ini;
        if (qat_file_read_all(path, &ini, &size) == QAT_OK) rp->experiment_ini = ini;
        else report_note(&rp->notes, "no experiment spec: %s", qat_error_message());
        build_tables(rp);
        qat_strbuf html = { 0 }, md = { 0 };
        write_html(rp, &html);
        write_md(rp, &md);
        st = report_pages_write(o->run_dir, &html, &md);
    }
    if (st == QAT_OK && !o->quiet) report_print_done(&rp->notes, o->run_dir, plots_dir);
    report_text_data_free(&rp->d);
    report_notes_free(&rp->notes);
    report_env_free(&rp->env);
    report_table_free(&rp->configs);
    report_table_free(&rp->runs);
    report_mixed_free(&rp->mixed);
    free(rp->experiment_ini);
    free(rp);
    return st;
}
