/* The gpt experiment's report from a hand-made run directory: the arms'
 * table (labels, order, means over seeds, change vs the base, the best
 * quantized model), the summary, the three plots and their data, notes for
 * what is missing, and the results.csv reader's errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qat/fileio.h"
#include "reports/report.h"
#include "reports/report_internal.h"
#include "tests/test_util.h"

TestSuite(report_gpt, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

typedef struct fake_run {
    const char *id_prefix, *kind, *algorithm, *source;
    int w, a;
    const char *granularity;
    double target[2], forget[2]; /* seeds 1 and 2 */
    long trainable, bytes;
    bool curve;
} fake_run;

static const fake_run fake_runs[] = {
    { "baseline-fp32", "baseline", "fp32", "", 32, 32, "", { 2.40, 2.42 }, { 2.10, 2.12 }, 830000, 3320000, true },
    { "finetune-fp32", "finetune", "fp32", "base", 32, 32, "", { 2.00, 2.02 }, { 2.30, 2.32 }, 830000, 3320000, true },
    { "ptq-rtn-ft-w4a32-g64", "ptq", "rtn", "finetune", 4, 32, "group:64", { 2.10, 2.12 }, { 2.36, 2.38 }, 0, 480000,
      false },
    { "ptq-gptq-ft-w4a32-g64", "ptq", "gptq", "finetune", 4, 32, "group:64", { 2.05, 2.07 }, { 2.33, 2.35 }, 0,
      480000, false },
    { "ptq-rtn-w4a32-g64", "ptq", "rtn", "base", 4, 32, "group:64", { 2.50, 2.52 }, { 2.15, 2.17 }, 0, 480000, false },
    { "ptq-gptq-w4a32-g64", "ptq", "gptq", "base", 4, 32, "group:64", { 2.45, 2.47 }, { 2.13, 2.15 }, 0, 480000,
      false },
    { "qat-lsq-w4a32-g64", "qat", "lsq", "base", 4, 32, "group:64", { 2.03, 2.05 }, { 2.28, 2.30 }, 842000, 480000,
      true },
    { "qlora-nf4-r4", "qlora", "nf4", "base", 4, 32, "block:64", { 2.08, 2.10 }, { 2.20, 2.22 }, 24576, 1020000, true },
    { "qlora-fp32-r4", "qlora", "fp32", "base", 32, 32, "", { 2.06, 2.08 }, { 2.19, 2.21 }, 24576, 3420000, true },
};

static void write_text(const char *path, const char *text)
{
    cr_assert_eq(qat_file_write_atomic(path, text, strlen(text)), QAT_OK, "%s", qat_error_message());
}

static char *read_text(const char *path)
{
    void *data;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &data, &size), QAT_OK, "%s", qat_error_message());
    return data;
}

static void run_id(const fake_run *f, int seed, char *out, size_t size)
{
    snprintf(out, size, "%s-s%d-abcd00%02d", f->id_prefix, seed, (int)(f - fake_runs) * 2 + seed);
}

static const char *const experiment_ini = "[experiment]\nname = fake\nmodel = gpt\nseeds = 1, 2\n"
                                          "[finetune]\ndata = fortunes:tech   ; <tech> & more\n";

/* results.csv, every run's summary.json, metrics.csv of the training runs
 * and experiment.ini. */
static const char *make_run_dir(void)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("runs/fake"));
    cr_assert_eq(qat_mkdir_p(dir), QAT_OK, "%s", qat_error_message());
    qat_strbuf csv = { 0 };
    qat_strbuf_printf(&csv, "%s\n", QAT_REPORT_TEXT_RESULTS_HEADER);
    char path[1024], id[128];
    for (int seed = 1; seed <= 2; seed++)
        for (size_t i = 0; i < QAT_ARRAY_LEN(fake_runs); i++) {
            const fake_run *f = &fake_runs[i];
            run_id(f, seed, id, sizeof id);
            bool base = strcmp(f->kind, "baseline") == 0;
            double start = base ? NAN : strcmp(f->source, "finetune") == 0 ? fake_runs[1].target[seed - 1]
                                                                           : fake_runs[0].target[seed - 1];
            qat_strbuf_printf(&csv, "%s,%s,%s,%s,%d,%d,%s,%d,%.6f,%.6f,", id, f->kind, f->algorithm, f->source, f->w,
                              f->a, f->granularity, seed, f->target[seed - 1], f->forget[seed - 1]);
            if (!base) qat_strbuf_printf(&csv, "%.6f", start);
            qat_strbuf_printf(&csv, ",%ld,%ld,%.3f,%ld,,,\n", f->trainable, f->bytes, 10.0 * (double)(i + 1) + seed,
                              (long)(20 + i) << 20);
            snprintf(path, sizeof path, "%s/%s", dir, id);
            cr_assert_eq(qat_mkdir_p(path), QAT_OK);
            snprintf(path, sizeof path, "%s/%s/summary.json", dir, id);
            char summary[512];
            snprintf(summary, sizeof summary,
                     "{\"kind\": \"%s\", \"model\": \"gpt\", \"data\": \"%s\", %s\"git_commit\": \"abc1234\", "
                     "\"device\": \"llvmpipe (LLVM 15.0.6, 256 bits)\", \"driver\": \"llvmpipe Mesa 22.3.6\"}\n",
                     f->kind, base ? "fortunes:general" : "fortunes:tech",
                     base || strcmp(f->kind, "finetune") == 0 ? "" : "\"forget_data\": \"fortunes:general\", ");
            write_text(path, summary);
            if (f->curve) {
                qat_strbuf m = { 0 };
                qat_strbuf_append_str(&m, "step,train_loss,val_loss,val_bpc,seconds\n");
                double from = base ? 5.0 : start, to = f->target[seed - 1];
                for (int k = 1; k <= 4; k++)
                    qat_strbuf_printf(&m, "%d,%.4f,%.4f,%.6f,%.3f\n", k * 50, 1.5, 1.4, from + (to - from) * k / 4.0,
                                      k * 2.0);
                snprintf(path, sizeof path, "%s/%s/metrics.csv", dir, id);
                write_text(path, m.data);
                qat_strbuf_free(&m);
            }
        }
    snprintf(path, sizeof path, "%s/results.csv", dir);
    write_text(path, csv.data);
    qat_strbuf_free(&csv);
    snprintf(path, sizeof path, "%s/experiment.ini", dir);
    write_text(path, experiment_ini);
    return dir;
}

static bool contains(const char *haystack, const char *needle) { return strstr(haystack, needle) != NULL; }

#define EXPECT_HAS(text, needle, what) cr_expect(contains((text), (needle)), "%s lacks \"%s\"", (what), (needle))

static void expect_png(const char *path, int width, int height)
{
    void *data;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &data, &size), QAT_OK, "%s", qat_error_message());
    const uint8_t *p = data;
    cr_assert(size > 33 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0, "%s is not a PNG", path);
    uint32_t w = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19];
    uint32_t h = (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
    cr_expect_eq(w, (uint32_t)width, "%s: width %u", path, w);
    cr_expect_eq(h, (uint32_t)height, "%s: height %u", path, h);
    free(data);
}

static bool gnuplot_installed(void) { return report_gnuplot_check() == QAT_OK; }

Test(report_gpt, builds_the_arms_table_summary_and_plots, .timeout = 240)
{
    if (!gnuplot_installed()) cr_skip_test("gnuplot is not installed");
    const char *dir = make_run_dir();
    qat_report_options o = { .run_dir = dir, .quiet = true };
    cr_assert_eq(qat_report_build(&o), QAT_OK, "%s", qat_error_message());
    char path[1024];
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = read_text(path);
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = read_text(path);

    /* The arms in the order, means and sample std over two seeds. */
    const char *const rows[] = {
        "<td>pretrained base (FP32, no fine-tuning)</td><td>—</td><td class=\"num\">2</td>"
        "<td class=\"num\">2.410 ± 0.014</td><td class=\"num\">2.110 ± 0.014</td><td class=\"num\">—</td>"
        "<td class=\"num\">830,000</td><td class=\"num\">3242.2</td>",
        "<td>(a) fine-tune then quantize: FP32 fine-tune, before quantization</td><td>—</td><td class=\"num\">2</td>"
        "<td class=\"num\">2.010 ± 0.014</td><td class=\"num\">2.310 ± 0.014</td>"
        "<td class=\"num\">-0.400 ± 0.000</td>",
        "<td>(a) fine-tune then quantize: FP32 fine-tune + PTQ-RTN W4</td><td>group:64</td>",
        "<td>(a) fine-tune then quantize: FP32 fine-tune + PTQ-GPTQ W4</td><td>group:64</td><td class=\"num\">2</td>"
        "<td class=\"num\">2.060 ± 0.014</td><td class=\"num\">2.340 ± 0.014</td>"
        "<td class=\"num\">-0.350 ± 0.000</td><td class=\"num\">0</td><td class=\"num\">468.8</td>",
        "<td>(b) quantize then fine-tune: QLoRA on the NF4 base</td><td>block:64</td><td class=\"num\">2</td>"
        "<td class=\"num\">2.090 ± 0.014</td><td class=\"num\">2.210 ± 0.014</td>"
        "<td class=\"num\">-0.320 ± 0.000</td><td class=\"num\">24,576</td>",
        "<tr class=\"best\"><td>(c) both at once: QAT-LSQ W4</td><td>group:64</td><td class=\"num\">2</td>"
        "<td class=\"num\">2.040 ± 0.014</td><td class=\"num\">2.290 ± 0.014</td>"
        "<td class=\"num\">-0.370 ± 0.000</td><td class=\"num\">842,000</td>",
        "<td>(d) LoRA on the FP32 base</td><td>—</td>",
        "<td>(e) PTQ of the base without fine-tuning: PTQ-RTN W4</td><td>group:64</td><td class=\"num\">2</td>"
        "<td class=\"num\">2.510 ± 0.014</td><td class=\"num\">2.160 ± 0.014</td>"
        "<td class=\"num\">+0.100 ± 0.000</td>",
        "<td>(e) PTQ of the base without fine-tuning: PTQ-GPTQ W4</td>",
    };
    const char *prev = html;
    for (size_t i = 0; i < QAT_ARRAY_LEN(rows); i++) {
        const char *at = strstr(html, rows[i]);
        cr_expect(at, "report.html lacks row %zu: %s", i, rows[i]);
        if (at) cr_expect(at > prev, "row %zu out of order", i);
        if (at) prev = at;
    }
    /* The peak device memory: (20 + i) MiB for the i-th fake run. */
    EXPECT_HAS(html, "<td class=\"num\">20.0</td>", "report.html");
    /* Every run by id, with its start bpc. */
    char id[128];
    for (int seed = 1; seed <= 2; seed++)
        for (size_t i = 0; i < QAT_ARRAY_LEN(fake_runs); i++) {
            run_id(&fake_runs[i], seed, id, sizeof id);
            EXPECT_HAS(html, id, "report.html");
            EXPECT_HAS(md, id, "report.md");
        }
    run_id(&fake_runs[2], 2, id, sizeof id);
    char row[512];
    snprintf(row, sizeof row, "<td>%s</td><td>(a) FT+RTN W4</td><td class=\"num\">2</td><td class=\"num\">2.120</td>"
                              "<td class=\"num\">2.380</td><td class=\"num\">2.020</td>", id);
    EXPECT_HAS(html, row, "report.html");
    run_id(&fake_runs[0], 1, id, sizeof id);
    snprintf(row, sizeof row, "<td>%s</td><td>base</td><td class=\"num\">1</td><td class=\"num\">2.400</td>"
                              "<td class=\"num\">2.100</td><td class=\"num\">—</td>", id);
    EXPECT_HAS(html, row, "report.html");

    EXPECT_HAS(html, "target domain fortunes:tech, forget domain fortunes:general", "report.html");
    EXPECT_HAS(html, "The pretrained base scores 2.410 bpc on the target domain (fortunes:tech) and 2.110 on the "
                     "forget domain (fortunes:general).", "report.html");
    EXPECT_HAS(html, "Lowest target bpc of a quantized model: (c) both at once: QAT-LSQ W4, 2.040 (-0.370 vs the "
                     "base), forget domain 2.290 (+0.180), 468.8 KiB.", "report.html");
    EXPECT_HAS(html, "Lowest target bpc of any arm: (a) fine-tune then quantize: FP32 fine-tune, before "
                     "quantization, 2.010 (not quantized).", "report.html");
    EXPECT_HAS(html, "Least forgetting among the fine-tuned models: (d) LoRA on the FP32 base, 2.200 bpc on the "
                     "forget domain (+0.090 vs the base).", "report.html");
    EXPECT_HAS(html, "Fewest trainable parameters: (b) quantize then fine-tune: QLoRA on the NF4 base, 24,576 "
                     "(2.96% of the model's 830,000).", "report.html");
    EXPECT_HAS(html, "<img src=\"plots/target_bpc.png\"", "report.html");
    EXPECT_HAS(html, "<img src=\"plots/target_vs_forget.png\"", "report.html");
    EXPECT_HAS(html, "<img src=\"plots/bpc_curves.png\"", "report.html");
    EXPECT_HAS(html, "llvmpipe (LLVM 15.0.6, 256 bits)", "report.html");
    EXPECT_HAS(html, "data = fortunes:tech   ; &lt;tech&gt; &amp; more", "report.html");
    cr_expect(!contains(html, "Notes</h2>"), "unexpected notes in:\n%s", strstr(html, "Notes</h2>"));
    cr_expect(!contains(html, "test_grid") && !contains(html, "heatmap"), "no Fashion-MNIST images for the gpt");
    EXPECT_HAS(md, "| **(c) both at once: QAT-LSQ W4** | **group:64** | **2** | **2.040 ± 0.014** | "
                   "**2.290 ± 0.014** | **-0.370 ± 0.000** | **842,000** |", "report.md");
    EXPECT_HAS(md, "| (d) LoRA on the FP32 base | — | 2 | 2.070 ± 0.014 | 2.200 ± 0.014 | -0.340 ± 0.000 | 24,576 | "
                   "3339.8 |", "report.md");
    EXPECT_HAS(md, "![target bpc per arm](plots/target_bpc.png)", "report.md");
    EXPECT_HAS(md, "```ini\n[experiment]\nname = fake\n", "report.md");

    /* The plots carry their data. */
    snprintf(path, sizeof path, "%s/plots/target_bpc.gp", dir);
    char *gp = read_text(path);
    EXPECT_HAS(gp, "set terminal pngcairo size 945,600", path);
    EXPECT_HAS(gp, "base_bpc = 2.41000", path);
    EXPECT_HAS(gp, "$arm4 << EOD\n# x  target_bpc  std  seeds\n5 2.04000 0.01414 2\nEOD", path);
    EXPECT_HAS(gp, "'(a) FT+GPTQ W4' 3", path);
    EXPECT_HAS(gp, "title '(c) QAT'", path);
    free(gp);
    snprintf(path, sizeof path, "%s/plots/target_vs_forget.gp", dir);
    gp = read_text(path);
    EXPECT_HAS(gp, "$arm3 << EOD\n# forget_bpc  target_bpc  forget_std  target_std  label\n"
                   "2.21000 2.09000 0.01414 0.01414 \"(b) QLoRA NF4\"\nEOD", path);
    free(gp);
    snprintf(path, sizeof path, "%s/plots/bpc_curves.gp", dir);
    gp = read_text(path);
    EXPECT_HAS(gp, "$pretrain1 << EOD\n# step  val_bpc\n50 4.35500\n", path);
    /* Fine-tuning curves start at step 0 from the base. */
    EXPECT_HAS(gp, "$finetune0 << EOD\n# step  val_bpc\n0 2.40000\n50 2.30000\n", path);
    EXPECT_HAS(gp, "$finetune7 << EOD", path);
    cr_expect(!contains(gp, "$finetune8 << EOD"), "curves of 4 configurations x 2 seeds");
    free(gp);
    snprintf(path, sizeof path, "%s/plots/target_bpc.png", dir);
    expect_png(path, 945, 600);
    snprintf(path, sizeof path, "%s/plots/target_vs_forget.png", dir);
    expect_png(path, 900, 600);
    snprintf(path, sizeof path, "%s/plots/bpc_curves.png", dir);
    expect_png(path, 1300, 600);
    free(html);
    free(md);
}

Test(report_gpt, missing_values_and_files_become_dashes_and_notes, .timeout = 240)
{
    if (!gnuplot_installed()) cr_skip_test("gnuplot is not installed");
    const char *dir = make_run_dir();
    char path[1024], id[128];
    run_id(&fake_runs[6], 1, id, sizeof id);
    snprintf(path, sizeof path, "%s/%s/metrics.csv", dir, id);
    cr_assert_eq(unlink(path), 0);
    snprintf(path, sizeof path, "%s/experiment.ini", dir);
    cr_assert_eq(unlink(path), 0);
    /* Only the baseline of seed 1 and a PTQ run, the baseline without its
     * target and forget bpc (its fine-tune had not finished). */
    char base_id[128], ptq_id[128], csv[2048];
    run_id(&fake_runs[0], 1, base_id, sizeof base_id);
    run_id(&fake_runs[4], 1, ptq_id, sizeof ptq_id);
    snprintf(csv, sizeof csv, "%s\n%s,baseline,fp32,,32,32,,1,,,,830000,3320000,600,0\n"
                              "%s,ptq,rtn,base,4,32,group:64,1,2.5,2.15,2.4,0,480000,3,0\n",
             QAT_REPORT_TEXT_RESULTS_HEADER_V1, base_id, ptq_id);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    write_text(path, csv);
    qat_report_options o = { .run_dir = dir, .quiet = true };
    cr_assert_eq(qat_report_build(&o), QAT_OK, "%s", qat_error_message());
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = read_text(path);
    EXPECT_HAS(html, "<td>pretrained base (FP32, no fine-tuning)</td><td>—</td><td class=\"num\">1</td>"
                     "<td class=\"num\">—</td><td class=\"num\">—</td><td class=\"num\">—</td>", "report.html");
    /* The change vs the base from the PTQ run's own start. */
    EXPECT_HAS(html, "<td class=\"num\">2.500</td><td class=\"num\">2.150</td><td class=\"num\">+0.100</td>",
               "report.html");
    EXPECT_HAS(html, "experiment.ini not found", "report.html");
    EXPECT_HAS(html, "Notes</h2>", "report.html");
    EXPECT_HAS(html, "no experiment spec", "report.html");
    free(html);

    /* All runs again, one training curve missing. */
    make_run_dir();
    snprintf(path, sizeof path, "%s/%s/metrics.csv", dir, id);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(qat_report_build(&o), QAT_OK, "%s", qat_error_message());
    snprintf(path, sizeof path, "%s/report.html", dir);
    html = read_text(path);
    char note[300];
    snprintf(note, sizeof note, "no bpc curve for run %s", id);
    EXPECT_HAS(html, note, "report.html");
    free(html);
}

/* --- bad input --- */

static void expect_csv_error(const char *rows, const char *needle1, const char *needle2)
{
    char text[2048];
    snprintf(text, sizeof text, "%s\n%s", QAT_REPORT_TEXT_RESULTS_HEADER_V1, rows);
    report_text_run *runs = NULL;
    int n = -1;
    cr_expect_eq(report_text_results_parse(text, strlen(text), "runs/x/results.csv", &runs, &n), QAT_ERR_FORMAT,
                 "accepted:\n%s", text);
    const char *msg = qat_error_message();
    cr_expect(contains(msg, needle1) && (!needle2 || contains(msg, needle2)), "message for \"%s\": %s", rows, msg);
    cr_expect(!strchr(msg, '\n'), "one line: %s", msg);
    cr_expect(runs == NULL && n == 0);
}

#define BASE "b1,baseline,fp32,,32,32,,1,2.4,2.1,,830000,3320000,600,1\n"

Test(report_gpt, results_csv_errors_name_file_and_line)
{
    expect_csv_error("", "runs/x/results.csv", "no runs");
    expect_csv_error(BASE "f1,finetune,fp32,base,32,32,,1,2.0,2.3,2.4,830000,3320000,600\n", "runs/x/results.csv:3:",
                     "14 fields, expected 15");
    expect_csv_error(BASE "f1,tune,fp32,base,32,32,,1,2.0,2.3,2.4,830000,3320000,600,1\n", "runs/x/results.csv:3:",
                     "kind 'tune'");
    expect_csv_error(BASE "q1,qlora,int4,base,4,32,,1,2.0,2.3,2.4,1,1,1,1\n", "runs/x/results.csv:3:",
                     "algorithm 'int4' does not fit kind qlora");
    expect_csv_error(BASE "f1,finetune,rtn,base,32,32,,1,2.0,2.3,2.4,1,1,1,1\n", "runs/x/results.csv:3:",
                     "algorithm 'rtn'");
    expect_csv_error(BASE "q1,qat,lsq,finetune,4,32,,1,2.0,2.3,2.4,1,1,1,1\n", "runs/x/results.csv:3:",
                     "source 'finetune' does not fit kind qat");
    expect_csv_error("b1,baseline,fp32,base,32,32,,1,2.4,2.1,,1,1,1,1\n", "runs/x/results.csv:2:",
                     "source 'base' does not fit kind baseline");
    expect_csv_error(BASE "p1,ptq,rtn,,4,32,,1,2.0,2.3,2.4,0,1,1,1\n", "runs/x/results.csv:3:", "source ''");
    expect_csv_error(BASE "p1,ptq,rtn,base,4,32,,1,low,2.3,2.4,0,1,1,1\n", "runs/x/results.csv:3:",
                     "val_bpc 'low' is not a number");
    expect_csv_error(BASE "p1,ptq,rtn,base,4,32,,1,2.0,-1,2.4,0,1,1,1\n", "runs/x/results.csv:3:",
                     "forget_bpc -1 is outside");
    expect_csv_error(BASE "p1,ptq,rtn,base,1,32,,1,2.0,2.3,2.4,0,1,1,1\n", "runs/x/results.csv:3:", "w_bits 1");
    expect_csv_error(BASE "p1,ptq,rtn,base,4,32,,1,2.0,2.3,2.4,-5,1,1,1\n", "runs/x/results.csv:3:",
                     "trainable_params '-5'");
    expect_csv_error(BASE BASE, "runs/x/results.csv:3:", "b1 is listed twice (first at line 2)");
    report_text_run *runs;
    int n;
    const char bad_header[] = "run_id,kind,algorithm,observer\n" BASE;
    cr_expect_eq(report_text_results_parse(bad_header, strlen(bad_header), "r.csv", &runs, &n), QAT_ERR_FORMAT);
    cr_expect(contains(qat_error_message(), "r.csv:1: header is"), "%s", qat_error_message());
}

Test(report_gpt, results_csv_rows_and_arms)
{
    const char text[] = QAT_REPORT_TEXT_RESULTS_HEADER_V1 "\r\n" BASE "\r\n"
                        "p1,ptq,gptq,finetune,3,8,group:32,1,2.0,,2.1,0,12345,1.25,7\n"
                        "l1,qlora,fp32,base,32,32,,1,2.2,2.3,2.4,24576,1,1,1\n"
                        "l2,qlora,fp4,base,4,32,block:64,1,2.2,2.3,2.4,24576,1,1,1\n";
    report_text_run *runs;
    int n;
    cr_assert_eq(report_text_results_parse(text, sizeof text - 1, "r.csv", &runs, &n), QAT_OK, "%s",
                 qat_error_message());
    cr_assert_eq(n, 4);
    cr_expect(isnan(runs[0].start_val_bpc), "an empty field is not measured");
    cr_expect_eq(runs[0].val_bpc, 2.4);
    cr_expect_eq(runs[1].kind, REPORT_TEXT_PTQ);
    cr_expect(runs[1].of_finetune);
    cr_expect_eq(runs[1].w_bits, 3);
    cr_expect_eq(runs[1].a_bits, 8);
    cr_expect(isnan(runs[1].forget_bpc));
    cr_expect_eq(runs[1].model_bytes, 12345);
    cr_expect_eq(runs[1].line, 4);
    cr_expect_eq(report_text_arm(&runs[0]), REPORT_ARM_BASE);
    cr_expect_eq(report_text_arm(&runs[1]), REPORT_ARM_A);
    cr_expect_eq(report_text_arm(&runs[2]), REPORT_ARM_D);
    cr_expect_eq(report_text_arm(&runs[3]), REPORT_ARM_B);
    report_text_data d;
    report_text_data_build(&d, runs, n);
    cr_assert_eq(d.nconfigs, 4);
    cr_expect_str_eq(d.configs[1].label, "(a) fine-tune then quantize: FP32 fine-tune + PTQ-GPTQ W3A8");
    cr_expect_str_eq(d.configs[1].short_label, "(a) FT+GPTQ W3A8");
    cr_expect_str_eq(d.configs[2].label, "(b) quantize then fine-tune: QLoRA on the FP4 base");
    cr_expect_str_eq(d.configs[3].label, "(d) LoRA on the FP32 base");
    cr_expect(fabs(d.configs[3].delta_mean - (2.2 - 2.4)) < 1e-12);
    cr_expect_eq(d.configs[1].n_forget, 0);
    cr_expect(isnan(d.configs[1].forget_mean));
    report_text_data_free(&d);
}

Test(report_gpt, granularity_joins_labels_only_where_a_method_has_several)
{
    const char text[] = QAT_REPORT_TEXT_RESULTS_HEADER_V1 "\n" BASE
                        "p1,ptq,rtn,base,4,32,group:64,1,2.5,2.2,2.4,0,1,1,1\n"
                        "p2,ptq,rtn,base,4,32,channel,1,2.6,2.2,2.4,0,1,1,1\n"
                        "p3,ptq,gptq,base,4,32,channel,1,2.45,2.2,2.4,0,1,1,1\n";
    report_text_run *runs;
    int n;
    cr_assert_eq(report_text_results_parse(text, sizeof text - 1, "r.csv", &runs, &n), QAT_OK, "%s",
                 qat_error_message());
    report_text_data d;
    report_text_data_build(&d, runs, n);
    cr_assert_eq(d.nconfigs, 4);
    cr_expect_str_eq(d.configs[1].short_label, "(e) RTN W4 (channel)");
    cr_expect_str_eq(d.configs[2].short_label, "(e) RTN W4 (group:64)");
    cr_expect_str_eq(d.configs[3].short_label, "(e) GPTQ W4");
    report_text_data_free(&d);
}
