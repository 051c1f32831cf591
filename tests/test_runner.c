/* The experiment runner end to end on a tiny grid: results.csv, reuse of
 * finished runs, a run killed half-way redone to the same bits, and shards
 * merged by `qat report` into the results of one unsharded run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qat/fileio.h"
#include "qat/runner.h"
#include "tests/test_util.h"

TestSuite(runner, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

static const char tiny_spec[] =
    "[experiment]\nname = tiny\nmodel = mlp\nseeds = 1\n"
    "[baseline]\nepochs = 1\ntrain_limit = 1024\nval = 500\nwarmup = 0\n"
    "[ptq]\nmethods = rtn\nbits = 8/8, 4/4\ncalib = 2\n"
    "[qat]\nquantizers = lsq\nbits = 4/4\nepochs = 1\ncalib = 2\n";


static char *slurp(const char *path)
{
    void *data;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &data, &size), QAT_OK, "%s", qat_error_message());
    return data;
}

/* results.csv without the seconds column (the 13th), which a redone run
 * changes. */
static char *results_without_seconds(const char *root)
{
    char path[600];
    snprintf(path, sizeof path, "%s/results.csv", root);
    char *csv = slurp(path), *out = malloc(strlen(csv) + 1), *w = out;
    int column = 0;
    for (const char *p = csv; *p; p++) {
        if (*p == '\n') column = 0;
        else if (*p == ',') column++;
        if (column != 12) *w++ = *p;
    }
    *w = '\0';
    free(csv);
    return out;
}

static void run(const char *spec, const char *runs_root, int shard, int shards)
{
    qat_runner_options o = { .spec_path = spec, .runs_root = runs_root, .shard_index = shard,
                             .shard_count = shards, .no_report = true, .quiet = true };
    cr_assert_eq(qat_runner_run(&o), QAT_OK, "%s", qat_error_message());
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++) n += *text == '\n';
    return n;
}

/* The tensor data of a safetensors file (the header carries the commit and
 * device, which are the same here anyway). */
static char *tensor_data(const char *path, size_t *size)
{
    void *data;
    size_t total;
    cr_assert_eq(qat_file_read_all(path, &data, &total), QAT_OK);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--) header = header << 8 | ((uint8_t *)data)[i];
    *size = total - 8 - header;
    char *out = malloc(*size);
    memcpy(out, (char *)data + 8 + header, *size);
    free(data);
    return out;
}

Test(runner, resumes_redoes_killed_runs_and_merges_shards, .timeout = 900)
{
    if (!test_have_data_and_device()) cr_skip_test("needs Fashion-MNIST and a Vulkan device");
    const char *spec = test_tmp_path("tiny.ini");
    qat_run_spec *runs;
    int count;
    test_spec_expand(spec, tiny_spec, &runs, &count);
    cr_assert_eq(count, 4, "baseline, two PTQ runs, one QAT run");

    char root[600], path[900];
    snprintf(root, sizeof root, "%s/whole", test_tmpdir);
    run(spec, root, 1, 1);
    char exp_dir[700];
    snprintf(exp_dir, sizeof exp_dir, "%s/tiny", root);
    char *first = results_without_seconds(exp_dir);
    cr_expect_eq(count_lines(first), 1 + count, "a header and a row per run: %s", first);
    for (int i = 0; i < count; i++) cr_expect(strstr(first, runs[i].id), "%s missing from results.csv", runs[i].id);
    snprintf(path, sizeof path, "%s/experiment.ini", exp_dir);
    char *copy = slurp(path);
    cr_expect_str_eq(copy, tiny_spec, "the spec is kept beside its results");
    free(copy);

    /* A second call reuses everything: no run directory is touched. */
    struct stat before[8], after;
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%s/summary.json", exp_dir, runs[i].id);
        cr_assert_eq(stat(path, &before[i]), 0);
    }
    run(spec, root, 1, 1);
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%s/summary.json", exp_dir, runs[i].id);
        cr_assert_eq(stat(path, &after), 0);
        cr_expect(after.st_mtim.tv_sec == before[i].st_mtim.tv_sec &&
                      after.st_mtim.tv_nsec == before[i].st_mtim.tv_nsec,
                  "finished run %s was redone", runs[i].id);
    }

    /* The QAT run killed half-way: no settings.txt, a truncated checkpoint. */
    int qat_run = count - 1;
    cr_assert_eq(runs[qat_run].kind, QAT_RUN_QAT);
    char ckpt[900];
    snprintf(ckpt, sizeof ckpt, "%s/%s/model.safetensors", exp_dir, runs[qat_run].id);
    size_t n_before, n_after;
    char *bytes_before = tensor_data(ckpt, &n_before);
    snprintf(path, sizeof path, "%s/%s/settings.txt", exp_dir, runs[qat_run].id);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(truncate(ckpt, 100), 0);
    run(spec, root, 1, 1);
    char *bytes_after = tensor_data(ckpt, &n_after);
    cr_expect(n_before == n_after && memcmp(bytes_before, bytes_after, n_before) == 0,
              "the redone QAT run differs from the first");
    char *again = results_without_seconds(exp_dir);
    cr_expect_str_eq(again, first, "results after the redone run differ");
    free(bytes_before), free(bytes_after), free(again);

    /* Two shards in separate places, copied together and merged. */
    char shard_root[2][600];
    for (int s = 0; s < 2; s++) {
        snprintf(shard_root[s], sizeof shard_root[s], "%s/shard%d", test_tmpdir, s + 1);
        run(spec, shard_root[s], s + 1, 2);
    }
    int in_first = 0;
    for (int i = 0; i < count; i++) {
        bool mine = qat_runner_in_shard(runs, count, i, 1, 2), theirs = qat_runner_in_shard(runs, count, i, 2, 2);
        if (runs[i].kind == QAT_RUN_BASELINE) cr_expect(mine && theirs, "both shards need the baseline");
        else cr_expect(mine != theirs, "run %s is in exactly one shard", runs[i].id);
        in_first += mine && runs[i].kind != QAT_RUN_BASELINE;
    }
    cr_expect(in_first == 2, "3 quantization runs split 2 + 1");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -r %s/tiny/. %s/tiny/", shard_root[1], shard_root[0]);
    cr_assert_eq(system(cmd), 0);
    snprintf(exp_dir, sizeof exp_dir, "%s/tiny", shard_root[0]);
    char results[800];
    snprintf(results, sizeof results, "%s/results.csv", exp_dir);
    cr_assert_eq(unlink(results), 0);
    qat_status st = qat_runner_report(exp_dir, NULL, NULL, true);
    cr_assert(access(results, R_OK) == 0, "merge wrote no results.csv: %s", qat_error_message());
    (void)st; /* the report itself is tested in test_report.c */
    char *merged = results_without_seconds(exp_dir);
    cr_expect_str_eq(merged, first, "merged shards differ from the unsharded run");
    free(merged), free(first), free(runs);
}
