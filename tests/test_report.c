/* The experiment report: the statistics and Pareto helpers, the results.csv
 * reader's errors, and a whole report built from a hand-made run directory
 * (tables, gnuplot scripts, PNGs, notes for what is missing). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/fashion_mnist.h"
#include "qat/fileio.h"
#include "qat/observer.h"
#include "qat/qmodel.h"
#include "reports/report.h"
#include "reports/report_internal.h"
#include "tests/test_util.h"

TestSuite(report, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

/* --- helpers --- */

Test(report, mean_and_sample_std)
{
    double mean, std;
    const double x[] = { 1, 2, 3, 4 };
    report_mean_std(x, 4, &mean, &std);
    cr_expect_float_eq(mean, 2.5, 1e-12);
    cr_expect_float_eq(std, sqrt(5.0 / 3.0), 1e-12, "n - 1 in the denominator: %g", std);
    report_mean_std(x + 2, 1, &mean, &std);
    cr_expect_float_eq(mean, 3, 1e-12);
    cr_expect_eq(std, 0, "one value has no spread");
    report_mean_std(x, 0, &mean, &std);
    cr_expect(mean == 0 && std == 0);
    /* Accuracies close together: the two-pass form keeps the digits. */
    const double close[] = { 89.53 + 1e9, 89.55 + 1e9 };
    report_mean_std(close, 2, &mean, &std);
    cr_expect_float_eq(std, 0.02 / sqrt(2.0), 1e-6, "%g", std);
}

Test(report, pareto_front_keeps_the_undominated_points_by_size)
{
    /* size (KiB), accuracy (%) */
    const double size[] = { 1052, 137, 269, 137, 269, 137, 500 };
    const double acc[] = { 89.5, 85.3, 89.6, 88.2, 89.0, 88.2, 89.55 };
    int front[7];
    int n = report_pareto_front(size, acc, 7, front);
    /* 137: the best there is 88.2 (index 3; 5 is its duplicate); 269: 89.6
     * (index 2) beats everything larger, so 1052 and 500 are dominated. */
    cr_assert_eq(n, 2, "front of %d", n);
    cr_expect_eq(front[0], 3);
    cr_expect_eq(front[1], 2);

    const double s2[] = { 4, 1, 2, 3 }, a2[] = { 4, 1, 2, 3 };
    cr_assert_eq(report_pareto_front(s2, a2, 4, front), 4, "a monotone trade-off is all front");
    for (int i = 0; i < 4; i++) cr_expect_eq(front[i], i == 3 ? 0 : i + 1, "ordered by size");
    cr_expect_eq(report_pareto_front(s2, a2, 0, front), 0);
}

Test(report, bits_labels_and_method_names)
{
    char s[32];
    report_bits_label(4, 8, s, sizeof s);
    cr_expect_str_eq(s, "W4A8");
    report_bits_label(32, 32, s, sizeof s);
    cr_expect_str_eq(s, "FP32");
    report_run r = { .kind = REPORT_QAT, .algorithm = "lsq" };
    report_method_name(&r, s, sizeof s);
    cr_expect_str_eq(s, "QAT-LSQ");
    r = (report_run){ .kind = REPORT_PTQ, .algorithm = "gptq" };
    report_method_name(&r, s, sizeof s);
    cr_expect_str_eq(s, "PTQ-GPTQ");
}

/* --- a run directory --- */

#define FP32_BYTES 1077288
#define W8_BYTES 275088
#define W4_BYTES 140688

typedef struct fake_run {
    const char *kind, *algorithm, *observer;
    int w, a;
    const char *granularity;
    double acc[2];            /* seeds 1 and 2 */
} fake_run;

/* Baseline, PTQ RTN and GPTQ, QAT LSQ; two seeds. */
static const fake_run fake_runs[] = {
    { "baseline", "fp32", "-", 32, 32, "-", { 0.8950, 0.8970 } },
    { "ptq", "rtn", "minmax", 8, 8, "channel", { 0.8945, 0.8965 } },
    { "ptq", "rtn", "minmax", 4, 4, "channel", { 0.8895, 0.8905 } },
    { "ptq", "rtn", "minmax", 2, 2, "channel", { 0.5752, 0.5852 } },
    { "ptq", "gptq", "minmax", 4, 4, "channel", { 0.8920, 0.8930 } },
    { "ptq", "gptq", "minmax", 2, 2, "channel", { 0.7596, 0.7606 } },
    { "qat", "lsq", "minmax", 4, 4, "channel", { 0.8937, 0.8947 } },
    { "qat", "lsq", "minmax", 2, 2, "channel", { 0.8530, 0.8510 } },
};

static void run_id(const fake_run *f, int seed, char *out, size_t size)
{
    if (f->w == 32) snprintf(out, size, "%s-%s-s%d-0000000%d", f->kind, f->algorithm, seed, seed);
    else snprintf(out, size, "%s-%s-w%da%d-%s-s%d-1234abc%d", f->kind, f->algorithm, f->w, f->a, f->granularity, seed, seed);
}

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

static void write_metrics(const char *path, int epochs, double start, double end)
{
    qat_strbuf sb = { 0 };
    qat_strbuf_append_str(&sb, "epoch,step,train_loss,val_loss,val_acc,seconds\n");
    for (int e = 1; e <= epochs; e++) {
        double t = epochs > 1 ? (double)(e - 1) / (epochs - 1) : 1;
        qat_strbuf_printf(&sb, "%d,%d,%.6f,%.6f,%.6f,%.3f\n", e, e * 390, 0.6 - 0.3 * t, 0.5 - 0.2 * t,
                          start + (end - start) * sqrt(t), 3.5);
    }
    write_text(path, sb.data);
    qat_strbuf_free(&sb);
}

/* A random FP32 mlp (every layer unquantized), and the same at 2 bits per
 * channel with 2-bit inputs for the lowest-bit run. */

static void quantize_mlp(qat_qmodel *qm, int bits)
{
    const qat_qscheme s = {.bits = bits, .symmetric = true, .gran = QAT_GRAN_CHANNEL, .group = 0};
    for (int i = 0; i < qm->nlayers; i++) {
        const qat_layer_info *info = &qm->desc.layers[i];
        float *scale = malloc((size_t)info->rows * sizeof *scale);
        int32_t *zp = malloc((size_t)info->rows * sizeof *zp);
        uint8_t *codes = malloc((size_t)qm->numel[2 * i]);
        qat_weight_qparams(qm->values[2 * i], info->rows, info->cols, &s, QAT_OBS_MINMAX, scale, zp);
        qat_quantize_weight(qm->values[2 * i], info->rows, info->cols, &s, scale, zp, codes);
        qat_qmodel_set_weight(qm, i, &s, codes, scale, zp);
        qat_qmodel_set_input(qm, i, bits, false, i == 0 ? 3.0f / 3 : 0.5f, i == 0 ? 1 : 0);
        free(scale), free(zp), free(codes);
    }
}

static const char *const experiment_ini =
    "[experiment]\nname = fake\nmodel = mlp\nseeds = 1, 2\n\n[baseline]\nepochs = 5\n\n"
    "[ptq]\nmethods = rtn, gptq\nbits = 8/8, 4/4, 2/2\n\n[qat]\nquantizers = lsq\nbits = 4/4, 2/2\n"
    "epochs = 2   ; <fine-tuning> & more\n";

/* Writes results.csv, every run's summary.json, metrics.csv for baselines
 * and QAT runs, experiment.ini, and the two checkpoints the images need. */
static const char *make_run_dir(void)
{
    const char *dir = test_tmp_path("runs/fake");
    static char dir_copy[512];
    snprintf(dir_copy, sizeof dir_copy, "%s", dir);
    cr_assert_eq(qat_mkdir_p(dir_copy), QAT_OK, "%s", qat_error_message());
    qat_strbuf csv = { 0 };
    qat_strbuf_append_str(&csv, QAT_REPORT_RESULTS_HEADER "\n");
    char path[1024], id[128];
    for (int seed = 1; seed <= 2; seed++) {
        for (size_t i = 0; i < QAT_ARRAY_LEN(fake_runs); i++) {
            const fake_run *f = &fake_runs[i];
            run_id(f, seed, id, sizeof id);
            int bytes = f->w == 32 ? FP32_BYTES : f->w == 8 ? W8_BYTES : W4_BYTES;
            double acc = f->acc[seed - 1];
            qat_strbuf_printf(&csv, "%s,%s,%s,%s,%d,%d,%s,%d,%.4f,%.4f,%.6f,%d,%.1f,%d,,,\n", id, f->kind,
                              f->algorithm, f->observer, f->w, f->a, f->granularity, seed, acc, acc + 0.004,
                              100 * acc / fake_runs[0].acc[seed - 1], bytes, 10.0 + i + seed, (int)(40 + i) << 20);
            snprintf(path, sizeof path, "%s/%s", dir_copy, id);
            cr_assert_eq(qat_mkdir_p(path), QAT_OK);
            snprintf(path, sizeof path, "%s/%s/summary.json", dir_copy, id);
            char summary[512];
            /* One QAT run was made by a later commit: the report lists both. */
            snprintf(summary, sizeof summary,
                     "{\"kind\": \"%s\", \"model\": \"mlp\", \"test_acc\": %.4f, \"seed\": %d, "
                     "\"git_commit\": \"%s\", \"device\": \"llvmpipe (LLVM 15.0.6, 256 bits)\", "
                     "\"driver\": \"llvmpipe Mesa 22.3.6\"}\n", f->kind, acc, seed,
                     strcmp(f->kind, "qat") == 0 && f->w == 2 && seed == 2 ? "def5678" : "abc1234");
            write_text(path, summary);
            if (strcmp(f->kind, "baseline") == 0 || strcmp(f->kind, "qat") == 0) {
                snprintf(path, sizeof path, "%s/%s/metrics.csv", dir_copy, id);
                if (f->w == 32) write_metrics(path, 5, 0.82 + 0.01 * seed, acc + 0.004);
                else write_metrics(path, 2, acc - 0.02, acc + 0.004);
            }
        }
    }
    snprintf(path, sizeof path, "%s/results.csv", dir_copy);
    write_text(path, csv.data);
    qat_strbuf_free(&csv);
    snprintf(path, sizeof path, "%s/experiment.ini", dir_copy);
    write_text(path, experiment_ini);

    qat_qmodel qm;
    test_random_mlp(&qm, 7, 0);
    run_id(&fake_runs[0], 1, id, sizeof id);
    snprintf(path, sizeof path, "%s/%s/model.safetensors", dir_copy, id);
    cr_assert_eq(qat_qmodel_save(&qm, path, NULL), QAT_OK, "%s", qat_error_message());
    /* The lowest-bit run of seed 1: W2A2, the most accurate of them (LSQ). */
    quantize_mlp(&qm, 2);
    run_id(&fake_runs[7], 1, id, sizeof id);
    snprintf(path, sizeof path, "%s/%s/model.safetensors", dir_copy, id);
    cr_assert_eq(qat_qmodel_save(&qm, path, NULL), QAT_OK, "%s", qat_error_message());
    qat_qmodel_free(&qm);
    return dir_copy;
}

static bool gnuplot_installed(void) { return report_gnuplot_check() == QAT_OK; }

/* Width and height from a PNG's IHDR, after checking the signature. */
static void expect_png(const char *path, int width, int height)
{
    void *data;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &data, &size), QAT_OK, "%s", qat_error_message());
    const uint8_t *p = data;
    cr_assert(size > 33 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0, "%s is not a PNG", path);
    cr_assert(memcmp(p + 12, "IHDR", 4) == 0, "%s: no IHDR first", path);
    uint32_t w = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19];
    uint32_t h = (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
    if (width > 0) cr_expect_eq(w, (uint32_t)width, "%s: width %u", path, w);
    else cr_expect(w >= (uint32_t)-width, "%s: width %u", path, w);
    if (height > 0) cr_expect_eq(h, (uint32_t)height, "%s: height %u", path, h);
    else cr_expect(h >= (uint32_t)-height, "%s: height %u", path, h);
    free(data);
}

static bool contains(const char *haystack, const char *needle) { return strstr(haystack, needle) != NULL; }

#define EXPECT_HAS(text, needle, what) cr_expect(contains((text), (needle)), "%s lacks \"%s\"", (what), (needle))

/* Whether this machine can predict: a Vulkan device and the test set. */
static bool grid_possible(void)
{
    qat_ctx *ctx = NULL;
    if (qat_ctx_init(NULL, &ctx) != QAT_OK) return false;
    qat_ctx_free(ctx);
    const char *dir = getenv(QAT_FASHION_MNIST_DIR_ENV);
    char path[4200];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir && *dir ? dir : QAT_FASHION_MNIST_DEFAULT_DIR);
    return access(path, R_OK) == 0;
}

Test(report, builds_tables_plots_and_images_from_a_run_directory, .timeout = 240)
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

    /* Seeds 1 and 2: mean and sample standard deviation (n - 1). */
    const char *const rows[] = {
        "<td>FP32 baseline</td><td>FP32</td><td>—</td><td>—</td><td class=\"num\">2</td>"
        "<td class=\"num\">89.60 ± 0.14</td><td class=\"num\">100.0 ± 0.0</td><td class=\"num\">1052.0</td>"
        "<td class=\"num\">1.0×</td>",
        "<tr class=\"best\"><td>QAT-LSQ</td><td>W2A2</td><td>channel</td><td>minmax</td><td class=\"num\">2</td>"
        "<td class=\"num\">85.20 ± 0.14</td>",
        "<td>PTQ-RTN</td><td>W2A2</td><td>channel</td><td>minmax</td><td class=\"num\">2</td>"
        "<td class=\"num\">58.02 ± 0.71</td>",
        "<td>PTQ-GPTQ</td><td>W4A4</td><td>channel</td><td>minmax</td><td class=\"num\">2</td>"
        "<td class=\"num\">89.25 ± 0.07</td>",
        "<td class=\"num\">137.4</td><td class=\"num\">7.7×</td>",
        "<td class=\"num\">268.6</td><td class=\"num\">3.9×</td>",
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(rows); i++) EXPECT_HAS(html, rows[i], "report.html");
    /* Every run by id, the summary, the environment and the spec. */
    char id[128];
    for (int seed = 1; seed <= 2; seed++)
        for (size_t i = 0; i < QAT_ARRAY_LEN(fake_runs); i++) {
            run_id(&fake_runs[i], seed, id, sizeof id);
            EXPECT_HAS(html, id, "report.html");
            EXPECT_HAS(md, id, "report.md");
        }
    EXPECT_HAS(html, "At W2A2, QAT-LSQ retains 95.1% of FP32 (test accuracy 85.20% vs 89.60%)", "report.html");
    EXPECT_HAS(html, "At W4A4, QAT-LSQ retains 99.8% of FP32 (test accuracy 89.42% vs 89.60%), 137.4 KiB (7.7× "
                     "smaller than FP32), in 17.5 s; next: PTQ-GPTQ at 99.6% (0.17 points lower).", "report.html");
    EXPECT_HAS(html, "At W8A8, PTQ-RTN retains", "report.html");
    EXPECT_HAS(html, "llvmpipe (LLVM 15.0.6, 256 bits)", "report.html");
    EXPECT_HAS(html, "abc1234; def5678", "report.html");
    EXPECT_HAS(html, "epochs = 2   ; &lt;fine-tuning&gt; &amp; more", "report.html");
    EXPECT_HAS(html, "<img src=\"plots/quality_vs_bits.png\"", "report.html");
    EXPECT_HAS(html, "<img src=\"plots/quality_vs_size.png\"", "report.html");
    EXPECT_HAS(html, "<img src=\"plots/training_curves.png\"", "report.html");
    EXPECT_HAS(html, "<img src=\"plots/weight_error_heatmap.png\"", "report.html");
    cr_expect(!contains(html, "Notes</h2>") || contains(html, "test-image grid"), "unexpected notes in:\n%s",
              strstr(html, "Notes</h2>"));
    EXPECT_HAS(md, "| **QAT-LSQ** | **W2A2** | **channel** | **minmax** | **2** | **85.20 ± 0.14** |", "report.md");
    EXPECT_HAS(md, "| FP32 baseline | FP32 | — | — | 2 | 89.60 ± 0.14 | 100.0 ± 0.0 | 1052.0 | 1.0× |", "report.md");
    EXPECT_HAS(md, "![test accuracy by bit width](plots/quality_vs_bits.png)", "report.md");
    EXPECT_HAS(md, "![weight quantization error](plots/weight_error_heatmap.png)", "report.md");
    EXPECT_HAS(md, "```ini\n[experiment]\nname = fake\n", "report.md");

    /* The scripts carry their data and draw PNGs of the declared size. */
    const char *const scripts[] = { "quality_vs_bits", "quality_vs_size", "training_curves" };
    const int widths[] = { 900, 900, 1300 };
    for (size_t i = 0; i < QAT_ARRAY_LEN(scripts); i++) {
        snprintf(path, sizeof path, "%s/plots/%s.gp", dir, scripts[i]);
        char *gp = read_text(path);
        char terminal[128];
        snprintf(terminal, sizeof terminal, "set terminal pngcairo size %d,560", widths[i]);
        EXPECT_HAS(gp, terminal, path);
        snprintf(terminal, sizeof terminal, "set output '%s.png'", scripts[i]);
        EXPECT_HAS(gp, terminal, path);
        EXPECT_HAS(gp, "<< EOD", path);
        free(gp);
        snprintf(path, sizeof path, "%s/plots/%s.png", dir, scripts[i]);
        expect_png(path, widths[i], 560);
    }
    snprintf(path, sizeof path, "%s/plots/quality_vs_bits.gp", dir);
    char *gp = read_text(path);
    EXPECT_HAS(gp, "85.2000 0.1414 W2A2 2", path);
    EXPECT_HAS(gp, "58.0200 0.7071 W2A2 2", path);
    EXPECT_HAS(gp, "fp32_acc = 89.6000", path);
    EXPECT_HAS(gp, "set xtics ('FP32' 0, 'W8A8' 1, 'W4A4' 2, 'W2A2' 3)", path);
    EXPECT_HAS(gp, "title 'QAT-LSQ'", path);
    free(gp);
    snprintf(path, sizeof path, "%s/plots/quality_vs_size.gp", dir);
    gp = read_text(path);
    EXPECT_HAS(gp, "$front << EOD", path);
    /* Smallest first; PTQ-RTN W4A4 and every W2A2 are beaten at their size. */
    EXPECT_HAS(gp, "$front << EOD\n# KiB  test_acc_pct  label\n137.391 89.4200 \"QAT-LSQ W4A4\"\n"
                   "268.641 89.5500 \"PTQ-RTN W8A8\"\n1052.039 89.6000 \"FP32\"\nEOD\n", path);
    free(gp);
    snprintf(path, sizeof path, "%s/plots/training_curves.gp", dir);
    gp = read_text(path);
    EXPECT_HAS(gp, "$baseline1 << EOD", path);
    EXPECT_HAS(gp, "$qat3 << EOD", path);
    free(gp);
    snprintf(path, sizeof path, "%s/plots/weight_error_heatmap.png", dir);
    expect_png(path, -4 * 256, -256);
    EXPECT_HAS(html, "|W − Q(W)| of layer fc2 of the FP32 baseline (seed 1), 256 × 256", "report.html");

    snprintf(path, sizeof path, "%s/plots/test_grid.png", dir);
    if (grid_possible()) {
        expect_png(path, -8 * 84, -4 * 84);
        EXPECT_HAS(html, "<img src=\"plots/test_grid.png\"", "report.html");
        EXPECT_HAS(html, "the lowest-bit model's (QAT-LSQ W2A2", "report.html");
        EXPECT_HAS(html, "<table class=\"grid\">", "report.html");
        EXPECT_HAS(html, "qat-lsq-w2a2-channel-s1-1234abc1", "report.html");
        EXPECT_HAS(md, "| # | test image | true class | FP32 prediction | W2A2 prediction |", "report.md");
    } else {
        EXPECT_HAS(html, "test-image grid skipped", "report.html");
    }
    free(html);
    free(md);
}

Test(report, missing_optional_files_become_notes, .timeout = 240)
{
    if (!gnuplot_installed()) cr_skip_test("gnuplot is not installed");
    const char *dir = make_run_dir();
    char path[1024], id[128];
    snprintf(path, sizeof path, "%s/experiment.ini", dir);
    cr_assert_eq(unlink(path), 0);
    run_id(&fake_runs[6], 2, id, sizeof id);
    snprintf(path, sizeof path, "%s/%s/metrics.csv", dir, id);
    cr_assert_eq(unlink(path), 0);
    run_id(&fake_runs[0], 1, id, sizeof id);
    snprintf(path, sizeof path, "%s/%s/model.safetensors", dir, id);
    cr_assert_eq(unlink(path), 0);
    /* A device selector no device matches: the grid is skipped, not the report. */
    qat_report_options o = { .run_dir = dir, .device = "no-such-device-anywhere", .quiet = true };
    cr_assert_eq(qat_report_build(&o), QAT_OK, "%s", qat_error_message());
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = read_text(path);
    EXPECT_HAS(html, "Notes</h2>", "report.html");
    EXPECT_HAS(html, "no experiment spec", "report.html");
    EXPECT_HAS(html, "experiment.ini not found", "report.html");
    char note[300];
    run_id(&fake_runs[6], 2, id, sizeof id);
    snprintf(note, sizeof note, "no training curve for run %s", id);
    EXPECT_HAS(html, note, "report.html");
    EXPECT_HAS(html, "the weight-error heatmap is left out", "report.html");
    EXPECT_HAS(html, "the test-image grid is left out", "report.html");
    cr_expect(!contains(html, "weight_error_heatmap.png"), "a heatmap without a checkpoint");
    free(html);
    snprintf(path, sizeof path, "%s/plots/training_curves.png", dir);
    expect_png(path, 1300, 560);
}

Test(report, no_device_skips_the_grid_with_a_note, .timeout = 240)
{
    if (!gnuplot_installed()) cr_skip_test("gnuplot is not installed");
    const char *dir = make_run_dir();
    qat_report_options o = { .run_dir = dir, .device = "no-such-device-anywhere", .quiet = true };
    cr_assert_eq(qat_report_build(&o), QAT_OK, "%s", qat_error_message());
    char path[1024];
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = read_text(path);
    EXPECT_HAS(html, "test-image grid skipped", "report.html");
    EXPECT_HAS(html, "no-such-device-anywhere", "report.html");
    EXPECT_HAS(html, "weight_error_heatmap.png", "report.html");
    free(html);
}

Test(report, without_gnuplot_the_error_says_how_to_install_it)
{
    const char *dir = make_run_dir();
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty-path", test_tmpdir);
    cr_assert_eq(qat_mkdir_p(empty), QAT_OK);
    setenv("PATH", empty, 1);
    qat_report_options o = { .run_dir = dir, .quiet = true };
    cr_expect_eq(qat_report_build(&o), QAT_ERR_IO);
    cr_expect_str_eq(qat_error_message(),
                     "gnuplot not found: install Debian's gnuplot-nox (apt-get install gnuplot-nox)");
}

/* --- bad input --- */

static void expect_csv_error(const char *text, const char *needle1, const char *needle2)
{
    report_run *runs = NULL;
    int n = -1;
    cr_expect_eq(report_results_parse(text, strlen(text), "runs/x/results.csv", &runs, &n), QAT_ERR_FORMAT,
                 "accepted:\n%s", text);
    const char *msg = qat_error_message();
    cr_expect(contains(msg, needle1) && (!needle2 || contains(msg, needle2)), "message for \"%s\": %s", text, msg);
    cr_expect(!strchr(msg, '\n'), "one line: %s", msg);
    cr_expect(runs == NULL && n == 0);
}

#define HEADER QAT_REPORT_RESULTS_HEADER_V1 "\n"
#define BASE_ROW "b1,baseline,fp32,-,32,32,-,1,0.895,0.9,100,1077288,30.5,41943040\n"

Test(report, results_csv_errors_name_file_and_line)
{
    expect_csv_error("run_id,kind\n" BASE_ROW, "runs/x/results.csv:1:", "expected 'run_id,kind,algorithm");
    expect_csv_error("", "runs/x/results.csv", "expected a header");
    expect_csv_error(HEADER, "runs/x/results.csv", "no runs");
    expect_csv_error(HEADER BASE_ROW "p1,ptq,rtn,minmax,4,8,channel,1,abc,0.9,100,140688,3,1\n",
                     "runs/x/results.csv:3:", "test_acc 'abc' is not a number");
    expect_csv_error(HEADER BASE_ROW "p1,ptq,rtn,minmax,4,8,channel,1,0.8,0.9,100,140688,3\n",
                     "runs/x/results.csv:3:", "13 fields, expected 14");
    expect_csv_error(HEADER BASE_ROW "p1,ptq,rtn,minmax,4,8,channel,1,0.8,0.9,100,140688,3,1,extra\n",
                     "runs/x/results.csv:3:", "15 fields");
    expect_csv_error(HEADER BASE_ROW "p1,ptq,rtn,minmax,4,8,channel,1,1.5,0.9,100,140688,3,1\n",
                     "runs/x/results.csv:3:", "test_acc 1.5 is outside [0, 1]");
    expect_csv_error(HEADER BASE_ROW "p1,ptq,lsq,minmax,4,8,channel,1,0.8,0.9,100,140688,3,1\n",
                     "runs/x/results.csv:3:", "algorithm 'lsq' does not fit kind ptq");
    expect_csv_error(HEADER BASE_ROW "p1,ptk,rtn,minmax,4,8,channel,1,0.8,0.9,100,140688,3,1\n",
                     "runs/x/results.csv:3:", "kind 'ptk'");
    expect_csv_error(HEADER BASE_ROW "p1,ptq,rtn,minmax,9,8,channel,1,0.8,0.9,100,140688,3,1\n",
                     "runs/x/results.csv:3:", "w_bits 9");
    expect_csv_error(HEADER BASE_ROW "p1,ptq,rtn,minmax,4,8,channel,-1,0.8,0.9,100,140688,3,1\n",
                     "runs/x/results.csv:3:", "seed '-1'");
    expect_csv_error(HEADER BASE_ROW "p1,ptq,rtn,minmax,4,8,channel,1,0.8,0.9,100,1.5e5,3,1\n",
                     "runs/x/results.csv:3:", "model_bytes '1.5e5'");
    expect_csv_error(HEADER BASE_ROW "\n" BASE_ROW, "runs/x/results.csv:4:", "b1 is listed twice (first at line 2)");
    expect_csv_error(HEADER "b1,baseline,fp32,-,8,8,-,1,0.895,0.9,100,1077288,30.5,41943040\n",
                     "runs/x/results.csv:2:", "a baseline has 32-bit");
}

Test(report, results_csv_accepts_crlf_and_blank_lines)
{
    const char text[] = QAT_REPORT_RESULTS_HEADER_V1 "\r\n"
                        "b1,baseline,fp32,,32,32,,1,0.895,0.9,100,1077288,30.5,41943040\r\n\r\n"
                        "p1,ptq,gptq,mse,3,8,group:64,1,0.8,0.81,89.4,140688,3.25,1\r\n";
    report_run *runs;
    int n;
    cr_assert_eq(report_results_parse(text, sizeof text - 1, "r.csv", &runs, &n), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(n, 2);
    cr_expect_str_eq(runs[1].run_id, "p1");
    cr_expect_eq(runs[1].kind, REPORT_PTQ);
    cr_expect_str_eq(runs[1].algorithm, "gptq");
    cr_expect_str_eq(runs[1].observer, "mse");
    cr_expect_str_eq(runs[1].granularity, "group:64");
    cr_expect_eq(runs[1].w_bits, 3);
    cr_expect_eq(runs[1].a_bits, 8);
    cr_expect_float_eq(runs[1].seconds, 3.25, 1e-12);
    cr_expect_eq(runs[1].peak_device_bytes, 1);
    cr_expect_eq(runs[1].line, 4);
    free(runs);
}

Test(report, bad_or_missing_results_csv_fails_naming_it)
{
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/runs/broken", test_tmpdir);
    cr_assert_eq(qat_mkdir_p(dir), QAT_OK);
    qat_report_options o = { .run_dir = dir, .quiet = true };
    cr_expect_eq(qat_report_build(&o), QAT_ERR_IO);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    cr_expect(contains(qat_error_message(), path), "%s", qat_error_message());
    write_text(path, HEADER BASE_ROW "p1,ptq,rtn,minmax,4,8,channel,1,0.8,0.9,100,140688,3\n");
    cr_expect_eq(qat_report_build(&o), QAT_ERR_FORMAT);
    char where[720];
    snprintf(where, sizeof where, "%s:3:", path);
    cr_expect(contains(qat_error_message(), where), "%s", qat_error_message());
    snprintf(path, sizeof path, "%s/report.html", dir);
    cr_expect(access(path, F_OK) != 0, "no report from bad input");
}

Test(report, series_split_by_observer_and_granularity_only_when_they_vary)
{
    const char text[] = QAT_REPORT_RESULTS_HEADER_V1 "\n" BASE_ROW
                        "p1,ptq,rtn,minmax,4,8,channel,1,0.8,0.81,89.4,140688,3,1\n"
                        "p2,ptq,rtn,mse,4,8,channel,1,0.82,0.81,91.6,140688,3,1\n"
                        "p3,ptq,gptq,minmax,4,8,channel,1,0.85,0.81,95,140688,3,1\n"
                        "p4,ptq,gptq,minmax,4,8,group:64,1,0.86,0.81,96,150000,3,1\n"
                        "q1,qat,lsq,minmax,4,8,channel,1,0.87,0.81,97,140688,3,1\n";
    report_run *runs;
    int n;
    cr_assert_eq(report_results_parse(text, sizeof text - 1, "r.csv", &runs, &n), QAT_OK, "%s", qat_error_message());
    report_data d;
    report_data_build(&d, runs, n);
    const char *const labels[] = { "PTQ-RTN (minmax)", "PTQ-RTN (mse)", "PTQ-GPTQ (channel)", "PTQ-GPTQ (group:64)",
                                   "QAT-LSQ" };
    cr_assert_eq(d.nseries, 5);
    for (int i = 0; i < 5; i++) cr_expect_str_eq(d.series[i].label, labels[i]);
    cr_expect_eq(d.nconfigs, 6);
    cr_expect_eq(d.baseline, 0);
    cr_expect_eq(d.nbits, 2);
    cr_expect_str_eq(d.bits[0].label, "FP32");
    cr_expect_str_eq(d.bits[1].label, "W4A8");
    report_data_free(&d);
}

/* metrics.csv, image (per epoch) and gpt (per evaluation): CRLF reads as LF,
 * empty lines are skipped, and a bad header, value or empty table is an
 * error naming the file and line. */
Test(report, metrics_csv_curves_and_their_errors)
{
    const char *path = test_tmp_path("metrics.csv");
    write_text(path, "epoch,step,train_loss,val_loss,val_acc,seconds\r\n1,100,0.5,0.4,0.85,3.0\r\n\r\n"
                     "2,200,0.4,0.35,0.875,6.0\r\n");
    report_curve c;
    cr_assert_eq(report_curve_load(path, &c), QAT_OK, "%s", qat_error_message());
    cr_expect_eq(c.n, 2);
    cr_expect(c.epoch[0] == 1 && c.epoch[1] == 2);
    cr_expect_float_eq(c.val_acc_pct[1], 87.5, 1e-9);
    report_curve_free(&c);
    write_text(path, "step,train_loss,val_loss,val_bpc,seconds\n50,2.1,2.2,3.25,10\n100,1.9,2.0,3.0,20\n");
    report_bpc_curve b;
    cr_assert_eq(report_bpc_curve_load(path, &b), QAT_OK, "%s", qat_error_message());
    cr_expect(b.n == 2 && b.step[1] == 100 && b.val_bpc[0] == 3.25);
    report_bpc_curve_free(&b);
    const char *bad[][2] = {
        {"epoch,val_acc\n1,0.5\n", "metrics.csv:1: header"},
        {"epoch,step,train_loss,val_loss,val_acc,seconds\n1,100,0.5,0.4,1.5,3.0\n", "metrics.csv:2:"},
        {"epoch,step,train_loss,val_loss,val_acc,seconds\n1,100,0.5\n", "metrics.csv:2: 3 fields, expected 6"},
        {"epoch,step,train_loss,val_loss,val_acc,seconds\n", "no epochs"},
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(bad); i++) {
        write_text(path, bad[i][0]);
        cr_expect_eq(report_curve_load(path, &c), QAT_ERR_FORMAT, "accepted %s", bad[i][0]);
        cr_expect(strstr(qat_error_message(), bad[i][1]), "%s: %s", bad[i][0], qat_error_message());
        cr_expect(c.n == 0 && !c.epoch && !c.val_acc_pct);
    }
    write_text(path, "step,train_loss,val_loss,val_bpc,seconds\n");
    cr_expect_eq(report_bpc_curve_load(path, &b), QAT_ERR_FORMAT);
    cr_expect(strstr(qat_error_message(), "no evaluations"), "%s", qat_error_message());
}
