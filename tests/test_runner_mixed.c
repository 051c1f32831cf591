/* Mixed-precision runs end to end on a tiny mlp: a bit map per strategy and
 * budget, PTQ of it, results.csv's mixed columns, the map's bytes against
 * the quantized checkpoint's, and the report's mixed section. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qat/fileio.h"
#include "qat/runner.h"
#include "reports/report_internal.h"
#include "qat/sensitivity.h"
#include "tests/test_util.h"

TestSuite(runner_mixed, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

static const char mixed_spec[] =
    "[experiment]\nname = tinymix\nmodel = mlp\nseeds = 1\n"
    "[baseline]\nepochs = 1\ntrain_limit = 1024\nval = 500\nwarmup = 0\n"
    "[mixed]\nstrategies = uniform, hawq\nbudgets = 3, 2.5\ncalib = 2\nmax_probes = 4\n";

static char *slurp(const char *path)
{
    void *data;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &data, &size), QAT_OK, "%s", qat_error_message());
    return data;
}

/* Field n (0-based) of the row of run `id`. */
static void field(const char *csv, const char *id, int n, char *out, size_t size)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s,", id);
    const char *p = strstr(csv, key);
    cr_assert_not_null(p, "no row for %s in\n%s", id, csv);
    p++;
    for (int i = 0; i < n; i++) p = strchr(p, ',') + 1;
    size_t len = strcspn(p, ",\n");
    snprintf(out, size, "%.*s", (int)len, p);
}

/* "model N bytes" of a bit map's first comment line. */
static unsigned long long map_model_bytes(const char *path)
{
    char *map = slurp(path);
    const char *p = strstr(map, "; model ");
    cr_assert_not_null(p, "%s: no model bytes in\n%s", path, map);
    unsigned long long bytes = strtoull(p + strlen("; model "), NULL, 10);
    cr_assert(strchr(map, '\n') > p, "%s: model bytes not in the first line", path);
    free(map);
    return bytes;
}

Test(runner_mixed, maps_ptq_results_and_report, .timeout = 900)
{
    if (!test_have_data_and_device()) cr_skip_test("needs Fashion-MNIST and a Vulkan device");
    const char *spec = test_tmp_path("tinymix.ini");
    qat_run_spec *runs;
    int count;
    test_spec_expand(spec, mixed_spec, &runs, &count);
    cr_assert_eq(count, 5, "baseline, 2 strategies x 2 budgets");

    /* Shards: the mixed runs split, the baseline in both. */
    for (int i = 1; i < count; i++)
        cr_expect(qat_runner_in_shard(runs, count, i, 1, 2) != qat_runner_in_shard(runs, count, i, 2, 2));
    cr_expect(qat_runner_in_shard(runs, count, 0, 1, 2) && qat_runner_in_shard(runs, count, 0, 2, 2));

    char root[600], dir[700], path[1200];
    snprintf(root, sizeof root, "%s/runs", test_tmpdir);
    snprintf(dir, sizeof dir, "%s/tinymix", root);
    bool report = report_gnuplot_check() == QAT_OK;
    qat_runner_options o = { .spec_path = spec, .runs_root = root, .shard_index = 1, .shard_count = 1,
                             .no_report = !report, .quiet = true };
    cr_assert_eq(qat_runner_run(&o), QAT_OK, "%s", qat_error_message());

    snprintf(path, sizeof path, "%s/results.csv", dir);
    char *csv = slurp(path);
    cr_assert(strncmp(csv, QAT_REPORT_RESULTS_HEADER "\n", strlen(QAT_REPORT_RESULTS_HEADER) + 1) == 0, "%s", csv);
    int lines = 0;
    for (const char *p = csv; *p; p++) lines += *p == '\n';
    cr_expect_eq(lines, 1 + count, "%s", csv);
    char v[64];
    field(csv, runs[0].id, 14, v, sizeof v);
    cr_expect_str_eq(v, "", "a baseline has no strategy");
    for (int i = 1; i < count; i++) {
        const qat_run_spec *r = &runs[i];
        cr_assert_eq(r->kind, QAT_RUN_MIXED);
        field(csv, r->id, 1, v, sizeof v);
        cr_expect_str_eq(v, "mixed");
        field(csv, r->id, 2, v, sizeof v);
        cr_expect_str_eq(v, "rtn");
        field(csv, r->id, 4, v, sizeof v);
        cr_expect_str_eq(v, "", "%s: weight bits vary by layer", r->id);
        field(csv, r->id, 14, v, sizeof v);
        cr_expect_str_eq(v, r->strategy);
        field(csv, r->id, 15, v, sizeof v);
        cr_expect_str_eq(v, r->budget);
        field(csv, r->id, 16, v, sizeof v);
        double avg = atof(v), budget = atof(r->budget);
        cr_expect(avg > 1.5 && avg <= budget + 1e-9, "%s: avg_bits %s over budget %s", r->id, v, r->budget);
        if (strcmp(r->budget, "3") == 0) cr_expect_str_eq(v, "3.0000", "%s: 3 bits everywhere fits exactly", r->id);
        field(csv, r->id, 8, v, sizeof v);
        cr_expect(atof(v) > 0.3, "%s: test accuracy %s", r->id, v);
        /* The quantized checkpoint takes what the map said it would. */
        field(csv, r->id, 11, v, sizeof v);
        snprintf(path, sizeof path, "%s/%s/bits.map", dir, r->id);
        cr_expect_eq(strtoull(v, NULL, 10), map_model_bytes(path), "%s: model_bytes %s", r->id, v);
        snprintf(path, sizeof path, "%s/%s/bits.csv", dir, r->id);
        int n;
        char(*names)[64];
        int *bits;
        cr_assert_eq(report_bits_csv_load(path, &n, &names, &bits), QAT_OK, "%s", qat_error_message());
        cr_expect_eq(n, 3, "the mlp's three layers");
        cr_expect_str_eq(names[0], "fc1");
        for (int k = 0; k < n; k++)
            if (strcmp(r->strategy, "uniform") == 0 && strcmp(r->budget, "3") == 0) cr_expect_eq(bits[k], 3);
        free(names), free(bits);
        snprintf(path, sizeof path, "%s/%s/model.safetensors", dir, r->id);
        cr_expect(access(path, R_OK) == 0, "%s: no checkpoint", r->id);
    }
    /* hawq measured its costs, uniform did not. */
    snprintf(path, sizeof path, "%s/%s/bits.csv", dir, runs[1].id);
    char *bits_csv = slurp(path);
    cr_expect(strstr(bits_csv, "\nfc1,200704,3,") && strstr(bits_csv, ",,\n"), "%s", bits_csv);
    free(bits_csv);
    snprintf(path, sizeof path, "%s/%s/bits.csv", dir, runs[3].id);
    bits_csv = slurp(path);
    cr_expect(!strstr(bits_csv, ",,\n"), "hawq's bits.csv has sensitivities: %s", bits_csv);
    free(bits_csv);
    /* hawq measured once, at its first budget: the second read the costs
     * from the experiment's sensitivity file. */
    cr_assert(runs[3].needs_cost && runs[4].needs_cost && strcmp(runs[3].strategy, runs[4].strategy) == 0);
    snprintf(path, sizeof path, "%s/sensitivity-%s-%s.txt", dir, runs[3].baseline_id,
             qat_sensitivity_name(runs[3].sensitivity));
    cr_expect(access(path, R_OK) == 0, "no %s", path);
    for (int k = 3; k <= 4; k++) {
        snprintf(path, sizeof path, "%s/%s/bits.map", dir, runs[k].id);
        char *map = slurp(path);
        cr_expect_eq(strstr(map, "costs read from") != NULL, k == 4, "%s: %s", runs[k].id, map);
        free(map);
    }

    if (report) {
        snprintf(path, sizeof path, "%s/report.html", dir);
        char *html = slurp(path);
        cr_expect(strstr(html, "<h2>Mixed precision</h2>"), "report.html lacks the mixed section");
        for (int i = 1; i < count; i++) cr_expect(strstr(html, runs[i].id), "report.html lacks %s", runs[i].id);
        cr_expect(strstr(html, "plots/mixed_pareto.png"));
        free(html);
        const char *const plots[] = { "mixed_pareto.png", "mixed_pareto.gp", "mixed_bits_b3.png", "mixed_bits_b2p5.png" };
        for (size_t i = 0; i < QAT_ARRAY_LEN(plots); i++) {
            snprintf(path, sizeof path, "%s/plots/%s", dir, plots[i]);
            cr_expect(access(path, R_OK) == 0, "no %s", path);
        }
        snprintf(path, sizeof path, "%s/report.md", dir);
        char *md = slurp(path);
        cr_expect(strstr(md, "## Mixed precision"), "report.md lacks the mixed section");
        free(md);
    }
    free(csv), free(runs);
}

/* unit = rows:N: every strategy allocates by blocks of output channels; the
 * runs' bits.csv lists the blocks, the map gives layers runs of rows, and
 * the checkpoint takes the bytes the map says. */
Test(runner_mixed, blocks_of_rows, .timeout = 900)
{
    if (!test_have_data_and_device()) cr_skip_test("needs Fashion-MNIST and a Vulkan device");
    static const char spec_text[] =
        "[experiment]\nname = tinyrows\nmodel = mlp\nseeds = 1\n"
        "[baseline]\nepochs = 1\ntrain_limit = 1024\nval = 500\nwarmup = 0\n"
        "[mixed]\nstrategies = greedy\nbudgets = 2.5\nsensitivity = fisher\ncandidates = 2, 3, 4\ncalib = 2\n"
        "unit = rows:128\nqat = ste\nqat_epochs = 1\n";
    const char *spec = test_tmp_path("tinyrows.ini");
    qat_run_spec *runs;
    int count;
    test_spec_expand(spec, spec_text, &runs, &count);
    cr_assert_eq(count, 3, "baseline, greedy by PTQ and by QAT");
    cr_assert(runs[2].mixed_qat);
    char root[600], dir[700], path[1200];
    snprintf(root, sizeof root, "%s/runs", test_tmpdir);
    snprintf(dir, sizeof dir, "%s/tinyrows", root);
    qat_runner_options o = { .spec_path = spec, .runs_root = root, .shard_index = 1, .shard_count = 1,
                             .no_report = report_gnuplot_check() != QAT_OK, .quiet = true };
    cr_assert_eq(qat_runner_run(&o), QAT_OK, "%s", qat_error_message());
    snprintf(path, sizeof path, "%s/%s/bits.csv", dir, runs[1].id);
    int n;
    char(*names)[64];
    int *bits;
    cr_assert_eq(report_bits_csv_load(path, &n, &names, &bits), QAT_OK, "%s", qat_error_message());
    cr_expect_eq(n, 5, "fc1 and fc2 in two blocks of 128 rows, fc3 in one of 10");
    cr_expect_str_eq(names[0], "fc1[0:128]");
    cr_expect_str_eq(names[3], "fc2[128:256]");
    cr_expect_str_eq(names[4], "fc3[0:10]");
    free(names), free(bits);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    char *csv = slurp(path);
    char v[64];
    field(csv, runs[1].id, 11, v, sizeof v);
    snprintf(path, sizeof path, "%s/%s/bits.map", dir, runs[1].id);
    cr_expect_eq(strtoull(v, NULL, 10), map_model_bytes(path), "model_bytes %s", v);
    field(csv, runs[1].id, 8, v, sizeof v);
    cr_expect(atof(v) > 0.3, "test accuracy %s", v);
    /* QAT trained a map of the same strategy and budget (the costs read from the shared file). */
    field(csv, runs[2].id, 8, v, sizeof v);
    cr_expect(atof(v) > 0.3, "QAT test accuracy %s", v);
    field(csv, runs[2].id, 11, v, sizeof v);
    char qat_map[1200];
    snprintf(qat_map, sizeof qat_map, "%s/%s/bits.map", dir, runs[2].id);
    cr_expect_eq(strtoull(v, NULL, 10), map_model_bytes(qat_map), "QAT model_bytes %s", v);
    char *map = slurp(path);
    cr_expect(strstr(map, "\n#   fc1[128:256] "), "one comment line per block: %s", map);
    free(map), free(csv), free(runs);
}
