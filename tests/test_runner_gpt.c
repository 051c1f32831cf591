/* The runner on the gpt: shards that carry each run's prerequisites (the
 * baseline, the fine-tune a PTQ run quantizes), results.csv built from
 * made-up run directories, and one tiny experiment end to end (every arm
 * runs, a rerun reuses every run, shards merge into the unsharded results,
 * the report is written). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/fortunes.h"
#include "qat/context.h"
#include "qat/fileio.h"
#include "qat/runner.h"
#include "reports/report.h"
#include "tests/test_util.h"

TestSuite(runner_gpt, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

static char *slurp(const char *path)
{
    void *data;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &data, &size), QAT_OK, "%s", qat_error_message());
    return data;
}

static void write_text(const char *path, const char *text)
{
    cr_assert_eq(qat_file_write_atomic(path, text, strlen(text)), QAT_OK, "%s", qat_error_message());
}

static bool gnuplot_installed(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* Only the end-to-end test has a timeout: Criterion 2.4.1's timeout
 * watchdog leaks 48 bytes in the runner process when a test with an earlier
 * deadline starts while another's timeout is pending (seen here as a short
 * timeout starting during test_runner.c's 900 s one; main's binary leaks the
 * same with --filter '@(report|runner|cli)/ *'), and the sanitizer build
 * fails on the leak. */

/* --- shards --- */

static const char SHARD_SPEC[] = "[experiment]\nname = s\nmodel = gpt\nseeds = 1, 2\n"
                                 "[finetune]\ndata = fortunes:tech\n"
                                 "[ptq]\nmethods = rtn, gptq\nbits = 4/fp32, 8/fp32\n"
                                 "[qat]\nbits = 4/fp32\n[qlora]\nbases = nf4, fp4, fp32\n";

static bool depends(const qat_run_spec *a, const qat_run_spec *b)
{
    return strcmp(a->baseline_id, b->id) == 0 || strcmp(a->finetune_id, b->id) == 0;
}

Test(runner_gpt, shards_carry_the_runs_each_run_starts_from)
{
    qat_experiment e;
    cr_assert_eq(qat_experiment_parse(SHARD_SPEC, strlen(SHARD_SPEC), "s.ini", &e), QAT_OK, "%s",
                 qat_error_message());
    qat_run_spec *runs;
    int count;
    cr_assert_eq(qat_experiment_expand(&e, &runs, &count), QAT_OK);
    cr_assert_eq(count, 2 + 2 * (1 + 8 + 1 + 3));
    for (int n = 1; n <= 7; n++) {
        int *shards_of = calloc((size_t)count, sizeof *shards_of);
        for (int s = 1; s <= n; s++) {
            for (int r = 0; r < count; r++) {
                if (!qat_runner_in_shard(runs, count, r, s, n)) continue;
                shards_of[r]++;
                /* What a run starts from is in its shard. */
                for (int d = 0; d < count; d++)
                    if (depends(&runs[r], &runs[d]))
                        cr_expect(qat_runner_in_shard(runs, count, d, s, n), "shard %d/%d has %s but not %s", s, n,
                                  runs[r].id, runs[d].id);
            }
        }
        for (int r = 0; r < count; r++) {
            bool needed = false;
            for (int k = 0; k < count; k++) needed |= depends(&runs[k], &runs[r]);
            /* Runs nothing starts from are in exactly one shard; the others
             * in at least one, more only where several shards need them. */
            if (!needed) cr_expect_eq(shards_of[r], 1, "%s in %d shards of %d", runs[r].id, shards_of[r], n);
            else cr_expect(shards_of[r] >= 1 && shards_of[r] <= n, "%s in %d shards of %d", runs[r].id, shards_of[r], n);
            if (runs[r].kind == QAT_RUN_FINETUNE) {
                /* Its own shard, and every shard that quantizes it. */
                int want = 0;
                for (int s = 1; s <= n; s++) {
                    bool home = false, quantized = false;
                    int k = 0;
                    for (int i = 0; i < r; i++) k += runs[i].kind != QAT_RUN_BASELINE;
                    home = k % n == s - 1;
                    for (int i = 0; i < count; i++)
                        quantized |= strcmp(runs[i].finetune_id, runs[r].id) == 0 &&
                                     qat_runner_in_shard(runs, count, i, s, n);
                    want += home || quantized;
                }
                cr_expect_eq(shards_of[r], want, "%s in %d shards, expected %d (of %d)", runs[r].id, shards_of[r],
                             want, n);
            }
        }
        free(shards_of);
    }
    free(runs);
}

/* --- results.csv from made-up run directories --- */

static const char FAKE_SPEC[] = "[experiment]\nname = fake\nmodel = gpt\ndataset = fortunes:linuxcookie\n"
                                "[baseline]\nsteps = 20\nlayers = 1\nwidth = 16\nheads = 2\ncontext = 16\nbatch = 4\n"
                                "[finetune]\ndata = fortunes:debian\nsteps = 10\n"
                                "[ptq]\nbits = 4/fp32\ngranularity = group:8\ncalib = 2\n"
                                "[qat]\nbits = 4/fp32\ngranularity = group:8\nsteps = 10\ncalib = 2\n"
                                "[qlora]\nbases = nf4, fp32\nsteps = 10\n";

static void make_run(const char *root, const qat_run_spec *r, const char *summary, bool finished)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", root, r->id);
    cr_assert_eq(qat_mkdir_p(path), QAT_OK);
    snprintf(path, sizeof path, "%s/%s/summary.json", root, r->id);
    write_text(path, summary);
    snprintf(path, sizeof path, "%s/%s/settings.txt", root, r->id);
    if (finished) write_text(path, r->settings);
}

static void run_path(const char *root, const qat_run_spec *r, const char *file, char *out, size_t size)
{
    snprintf(out, size, "%s/%s/%s", root, r->id, file);
}

Test(runner_gpt, results_csv_from_made_up_run_directories)
{
    char root[600], path[1200];
    snprintf(root, sizeof root, "%s/runs/fake", test_tmpdir);
    cr_assert_eq(qat_mkdir_p(root), QAT_OK);
    snprintf(path, sizeof path, "%s/experiment.ini", root);
    qat_run_spec *runs;
    int count;
    test_spec_expand(path, FAKE_SPEC, &runs, &count);
    /* baseline, finetune, PTQ of each, QAT, QLoRA nf4 and fp32 */
    cr_assert_eq(count, 7);
    make_run(root, &runs[0], "{\"kind\": \"train\", \"model\": \"gpt\", \"val_bpc\": 5.9, \"trainable_params\": 12016, "
                             "\"model_bytes\": 48064, \"wall_seconds\": 1.5, \"peak_device_bytes\": 1600000}", true);
    make_run(root, &runs[1], "{\"kind\": \"finetune\", \"data\": \"fortunes:debian\", \"val_bpc\": 5.2, "
                             "\"init_val_bpc\": 5.5, \"trainable_params\": 12016, \"model_bytes\": 48064, "
                             "\"wall_seconds\": 2.25, \"peak_device_bytes\": 1700000}", true);
    run_path(root, &runs[1], "forget.json", path, sizeof path);
    write_text(path, "{\"forget_data\": \"fortunes:linuxcookie\", \"forget_val_bpc\": 5.95, "
                     "\"start_forget_val_bpc\": 5.91, \"seconds\": 0.5}\n");
    cr_assert_str_eq(runs[2].finetune_id, runs[1].id);
    make_run(root, &runs[2], "{\"kind\": \"ptq\", \"val_bpc\": 5.25, \"fp32_val_bpc\": 5.2, \"forget_val_bpc\": 5.97, "
                             "\"fp32_forget_val_bpc\": 5.95, \"model_bytes\": 30144, \"fp32_bytes\": 48064, "
                             "\"wall_seconds\": 0.3, \"peak_device_bytes\": 1300000}", true);
    cr_assert_str_eq(runs[3].finetune_id, "");
    make_run(root, &runs[3], "{\"kind\": \"ptq\", \"val_bpc\": 5.6, \"fp32_val_bpc\": 5.5001, \"forget_val_bpc\": 5.93, "
                             "\"fp32_forget_val_bpc\": 5.9101, \"model_bytes\": 30144, \"fp32_bytes\": 48064, "
                             "\"wall_seconds\": 0.25, \"peak_device_bytes\": 1300000}", true);
    cr_assert_eq(runs[4].kind, QAT_RUN_QAT);
    make_run(root, &runs[4], "{\"kind\": \"qat\", \"val_bpc\": 5.3, \"fp32_val_bpc\": 5.5, \"forget_val_bpc\": 5.94, "
                             "\"fp32_forget_val_bpc\": 5.91, \"model_bytes\": 30144, \"fp32_bytes\": 48064, "
                             "\"wall_seconds\": 0.75, \"peak_device_bytes\": 1650000}", true);
    /* The head kept at FP32 weights (no scales), one input at 8 bits: LSQ
     * learns 384 weight step sizes and one input step size. */
    run_path(root, &runs[4], "layers.csv", path, sizeof path);
    write_text(path, "layer,weight_bits,input_bits,granularity,weight_scheme,scales,weight_rel_err,input_scale,"
                     "input_zero_point\n"
                     "blocks.0.attn.q,4,32,group:8,symmetric,32,0.0057,0,0\n"
                     "blocks.0.attn.k,4,32,group:8,symmetric,32,0.0058,0,0\n"
                     "blocks.0.attn.v,4,8,group:8,symmetric,32,0.0066,0.02,3\n"
                     "blocks.0.attn.proj,4,32,group:8,symmetric,32,0.0081,0,0\n"
                     "blocks.0.mlp.fc,4,32,group:8,symmetric,128,0.0068,0,0\n"
                     "blocks.0.mlp.proj,4,32,group:8,symmetric,128,0.0075,0,0\n"
                     "head,32,32,,,0,0,0,0\n");
    make_run(root, &runs[5], "{\"kind\": \"qlora\", \"val_bpc\": 5.4, \"base_val_bpc\": 5.5, \"forget_val_bpc\": 5.92, "
                             "\"base_forget_val_bpc\": 5.91, \"params\": 12016, \"trainable_params\": 1152, "
                             "\"base_params\": 3072, \"base_device_bytes\": 2048, \"wall_seconds\": 0.9, "
                             "\"peak_device_bytes\": 1400000}", true);
    /* Killed before it finished: no row. */
    make_run(root, &runs[6], "{\"kind\": \"qlora\", \"val_bpc\": 1}", false);

    qat_status st = qat_runner_report(root, "no-such-device-anywhere", NULL, true);
    if (gnuplot_installed()) cr_expect_eq(st, QAT_OK, "%s", qat_error_message());
    snprintf(path, sizeof path, "%s/results.csv", root);
    char *csv = slurp(path);
    char expected[4096];
    snprintf(expected, sizeof expected,
             "%s\n"
             "%s,baseline,fp32,,32,32,,1,5.500000,5.910000,,12016,48064,1.500,1600000,,,\n"
             "%s,finetune,fp32,base,32,32,,1,5.200000,5.950000,5.500000,12016,48064,2.750,1700000,,,\n"
             "%s,ptq,rtn,finetune,4,32,group:8,1,5.250000,5.970000,5.200000,0,30144,0.300,1300000,,,\n"
             "%s,ptq,rtn,base,4,32,group:8,1,5.600000,5.930000,5.500100,0,30144,0.250,1300000,,,\n"
             "%s,qat,lsq,base,4,32,group:8,1,5.300000,5.940000,5.500000,12401,30144,0.750,1650000,,,\n"
             "%s,qlora,nf4,base,4,32,block:64,1,5.400000,5.920000,5.500000,1152,42432,0.900,1400000,,,\n",
             QAT_REPORT_TEXT_RESULTS_HEADER, runs[0].id, runs[1].id, runs[2].id, runs[3].id, runs[4].id, runs[5].id);
    cr_expect_str_eq(csv, expected);
    free(csv);
    if (gnuplot_installed()) {
        snprintf(path, sizeof path, "%s/report.html", root);
        char *html = slurp(path);
        cr_expect(strstr(html, "(a) fine-tune then quantize: FP32 fine-tune + PTQ-RTN W4"), "report.html lacks arm (a)");
        cr_expect(strstr(html, "(b) quantize then fine-tune: QLoRA on the NF4 base"), "report.html lacks arm (b)");
        cr_expect(strstr(html, "target domain fortunes:debian"), "report.html lacks the target domain");
        free(html);
    }

    /* Without the fine-tune, the base's values come from the next run that
     * measured them (PTQ of the base). */
    run_path(root, &runs[1], "settings.txt", path, sizeof path);
    cr_assert_eq(unlink(path), 0);
    qat_runner_report(root, "no-such-device-anywhere", NULL, true);
    snprintf(path, sizeof path, "%s/results.csv", root);
    csv = slurp(path);
    char row[256];
    snprintf(row, sizeof row, "\n%s,baseline,fp32,,32,32,,1,5.500100,5.910100,,12016,", runs[0].id);
    cr_expect(strstr(csv, row), "%s lacks %s", csv, row + 1);
    cr_expect(!strstr(csv, runs[1].id), "an unfinished fine-tune has no row");

    /* A finished fine-tune without forget.json is an error naming it. */
    run_path(root, &runs[1], "settings.txt", path, sizeof path);
    write_text(path, runs[1].settings);
    run_path(root, &runs[1], "forget.json", path, sizeof path);
    cr_assert_eq(unlink(path), 0);
    cr_expect_neq(qat_runner_report(root, NULL, NULL, true), QAT_OK);
    cr_expect(strstr(qat_error_message(), "forget.json"), "%s", qat_error_message());
    free(csv);
    free(runs);
}

/* Without [finetune] the pretraining corpus is the only domain: the
 * baseline's own val_bpc, no forget bpc. */
Test(runner_gpt, a_baseline_alone_reports_its_own_bpc)
{
    static const char spec[] = "[experiment]\nname = alone\nmodel = gpt\n[baseline]\nsteps = 5\n";
    char root[600], path[1200];
    snprintf(root, sizeof root, "%s/runs/alone", test_tmpdir);
    cr_assert_eq(qat_mkdir_p(root), QAT_OK);
    snprintf(path, sizeof path, "%s/experiment.ini", root);
    qat_run_spec *runs;
    int count;
    test_spec_expand(path, spec, &runs, &count);
    cr_assert_eq(count, 1);
    make_run(root, &runs[0], "{\"val_bpc\": 3.25, \"trainable_params\": 100, \"model_bytes\": 400, "
                             "\"wall_seconds\": 2, \"peak_device_bytes\": 5}", true);
    qat_runner_report(root, NULL, NULL, true);
    snprintf(path, sizeof path, "%s/results.csv", root);
    char *csv = slurp(path), expected[512];
    snprintf(expected, sizeof expected, "%s\n%s,baseline,fp32,,32,32,,1,3.250000,,,100,400,2.000,5,,,\n",
             QAT_REPORT_TEXT_RESULTS_HEADER, runs[0].id);
    cr_expect_str_eq(csv, expected);
    free(csv), free(runs);
}

/* --- end to end --- */

static const char TINY_SPEC[] = "[experiment]\nname = tinygpt\nmodel = gpt\ndataset = fortunes:linuxcookie\nseeds = 1\n"
                                "[baseline]\nsteps = 20\neval_every = 10\nbatch = 4\nlayers = 1\nwidth = 16\nheads = 2\n"
                                "context = 16\nlr = 1e-2\nwarmup = 2\n"
                                "[finetune]\ndata = fortunes:debian\nsteps = 10\neval_every = 5\nlr = 3e-3\nwarmup = 2\n"
                                "[ptq]\nmethods = rtn, gptq\nbits = 4/fp32\ngranularity = group:8\ncalib = 2\n"
                                "[qat]\nbits = 4/fp32\ngranularity = group:8\nsteps = 10\neval_every = 5\ncalib = 2\n"
                                "[qlora]\nbases = nf4, fp32\nsteps = 10\neval_every = 5\nwarmup = 2\n";

static bool have_corpus_and_device(void)
{
    const char *dir = getenv(QAT_FORTUNES_DIR_ENV);
    char path[4200];
    snprintf(path, sizeof path, "%s/debian", dir && *dir ? dir : QAT_FORTUNES_DEFAULT_DIR);
    if (access(path, R_OK) != 0) return false;
    snprintf(path, sizeof path, "%s/linuxcookie", dir && *dir ? dir : QAT_FORTUNES_DEFAULT_DIR);
    if (access(path, R_OK) != 0) return false;
    qat_device_info *devs;
    int count, chosen;
    qat_status st = qat_devices_list(NULL, &devs, &count, &chosen);
    free(devs);
    return st == QAT_OK;
}

static void run(const char *spec, const char *runs_root, int shard, int shards, bool report)
{
    qat_runner_options o = { .spec_path = spec, .runs_root = runs_root, .shard_index = shard,
                             .shard_count = shards, .no_report = !report, .quiet = true };
    cr_assert_eq(qat_runner_run(&o), QAT_OK, "%s", qat_error_message());
}

/* results.csv without its seconds column (the 14th), which a rerun changes. */
static char *results_without_seconds(const char *root)
{
    char path[700];
    snprintf(path, sizeof path, "%s/results.csv", root);
    char *csv = slurp(path), *out = malloc(strlen(csv) + 1), *w = out;
    int column = 0;
    for (const char *p = csv; *p; p++) {
        if (*p == '\n') column = 0;
        else if (*p == ',') column++;
        if (column != 13) *w++ = *p;
    }
    *w = '\0';
    free(csv);
    return out;
}

/* The n-th comma-separated field of the row that starts with id. */
static void field(const char *csv, const char *id, int n, char *out, size_t size)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s,", id);
    const char *p = strstr(csv, key);
    cr_assert_not_null(p, "no row for %s", id);
    p++;
    for (int i = 0; i < n; i++) p = strchr(p, ',') + 1;
    size_t len = strcspn(p, ",\n");
    snprintf(out, size, "%.*s", (int)len, p);
}

Test(runner_gpt, tiny_experiment_runs_every_arm_reuses_them_and_merges_shards, .timeout = 900)
{
    if (!have_corpus_and_device())
        cr_skip_test("needs the fortunes corpus (debian, linuxcookie) and a Vulkan device");
    const char *spec = test_tmp_path("tiny.ini");
    qat_run_spec *runs;
    int count;
    test_spec_expand(spec, TINY_SPEC, &runs, &count);
    cr_assert_eq(count, 9, "baseline, finetune, 4 PTQ, QAT, 2 QLoRA");

    char root[600], dir[700], path[1200];
    snprintf(root, sizeof root, "%s/whole", test_tmpdir);
    snprintf(dir, sizeof dir, "%s/tinygpt", root);
    bool report = gnuplot_installed();
    run(spec, root, 1, 1, report);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    char *csv = slurp(path);
    cr_assert(strncmp(csv, QAT_REPORT_TEXT_RESULTS_HEADER "\n", strlen(QAT_REPORT_TEXT_RESULTS_HEADER) + 1) == 0,
              "%s", csv);
    int lines = 0;
    for (const char *p = csv; *p; p++) lines += *p == '\n';
    cr_expect_eq(lines, 1 + count, "%s", csv);
    char v[64], start[64], base_target[64];
    field(csv, runs[0].id, 8, base_target, sizeof base_target);
    for (int i = 0; i < count; i++) {
        const qat_run_spec *r = &runs[i];
        /* Every run has its bpc on both domains. */
        field(csv, r->id, 8, v, sizeof v);
        cr_expect(atof(v) > 0.5 && atof(v) < 8.5, "%s val_bpc '%s'", r->id, v);
        field(csv, r->id, 9, v, sizeof v);
        cr_expect(atof(v) > 0.5 && atof(v) < 8.5, "%s forget_bpc '%s'", r->id, v);
        field(csv, r->id, 10, start, sizeof start);
        if (r->kind == QAT_RUN_BASELINE) cr_expect_str_eq(start, "");
        /* Runs from the base start from the baseline's target bpc. */
        else if (!r->finetune_id[0]) cr_expect_str_eq(start, base_target, "%s", r->id);
        field(csv, r->id, 11, v, sizeof v);
        long trainable = atol(v);
        if (r->kind == QAT_RUN_PTQ) cr_expect_eq(trainable, 0, "%s", r->id);
        if (r->kind == QAT_RUN_QLORA) cr_expect_eq(trainable, 1152, "%s: rank 4 on 6 layers of width 16", r->id);
        if (r->kind == QAT_RUN_BASELINE || r->kind == QAT_RUN_FINETUNE) cr_expect_eq(trainable, 12016, "%s", r->id);
        if (r->kind == QAT_RUN_QAT) /* one step size per group of 8 in the blocks; the head stays FP32 */
            cr_expect_eq(trainable, 12016 + 384, "%s: weights and step sizes (%ld)", r->id, trainable);
    }
    /* PTQ of the fine-tune starts where the fine-tune ended. */
    field(csv, runs[1].id, 8, v, sizeof v);
    field(csv, runs[2].id, 10, start, sizeof start);
    cr_expect_str_eq(start, v);
    snprintf(path, sizeof path, "%s/%s/forget.json", dir, runs[1].id);
    cr_expect(access(path, R_OK) == 0, "the fine-tune's forgetting is recorded");
    if (report) {
        const char *files[] = { "report.html", "report.md", "plots/target_bpc.png", "plots/target_vs_forget.png",
                                "plots/bpc_curves.png" };
        for (size_t i = 0; i < QAT_ARRAY_LEN(files); i++) {
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            cr_expect(access(path, R_OK) == 0, "%s missing", path);
        }
    }

    /* A second call reuses everything. */
    struct stat before[9], after;
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%s/summary.json", dir, runs[i].id);
        cr_assert_eq(stat(path, &before[i]), 0);
    }
    run(spec, root, 1, 1, false);
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%s/summary.json", dir, runs[i].id);
        cr_assert_eq(stat(path, &after), 0);
        cr_expect(after.st_mtim.tv_sec == before[i].st_mtim.tv_sec && after.st_mtim.tv_nsec == before[i].st_mtim.tv_nsec,
                  "finished run %s was redone", runs[i].id);
    }
    /* --dry-run lists them all as finished. */
    snprintf(path, sizeof path, "%s/dry-run.txt", test_tmpdir);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    cr_assert_not_null(freopen(path, "w", stdout));
    qat_runner_options dry = { .spec_path = spec, .runs_root = root, .shard_index = 1, .shard_count = 1,
                               .dry_run = true };
    qat_status st = qat_runner_run(&dry);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    cr_assert_eq(st, QAT_OK, "%s", qat_error_message());
    char *listing = slurp(path);
    for (int i = 0; i < count; i++) {
        char *at = strstr(listing, runs[i].id);
        cr_expect(at && strncmp(at + strlen(runs[i].id) + strspn(at + strlen(runs[i].id), " "), "finished", 8) == 0,
                  "%s not listed as finished:\n%s", runs[i].id, listing);
    }
    free(listing);

    /* Two shards, each with what its runs start from, merge into the same
     * results. */
    char *first = results_without_seconds(dir);
    char shard_root[2][600], cmd[2048];
    for (int s = 0; s < 2; s++) {
        snprintf(shard_root[s], sizeof shard_root[s], "%s/shard%d", test_tmpdir, s + 1);
        run(spec, shard_root[s], s + 1, 2, false);
    }
    snprintf(cmd, sizeof cmd, "cp -r %s/tinygpt/. %s/tinygpt/", shard_root[1], shard_root[0]);
    cr_assert_eq(system(cmd), 0);
    snprintf(dir, sizeof dir, "%s/tinygpt", shard_root[0]);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    cr_assert_eq(unlink(path), 0);
    qat_runner_report(dir, NULL, NULL, true);
    cr_assert(access(path, R_OK) == 0, "merge wrote no results.csv: %s", qat_error_message());
    char *merged = results_without_seconds(dir);
    cr_expect_str_eq(merged, first, "merged shards differ from the unsharded run");
    free(merged), free(first), free(csv), free(runs);
}
