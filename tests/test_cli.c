/* The `qat` command end to end: every subcommand's --help, bad flags, bad
 * files and devices get one clear line and a non-zero exit, and two training
 * runs with the same seed give bit-identical results. Runs bin/qat (the one
 * beside this test binary) as a child process. */
#include <fcntl.h>
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qat/fileio.h"
#include "qat/qmodel.h"
#include "tests/test_util.h"

typedef struct result {
    int status;  /* exit code, or 128 + signal */
    char out[16384], err[16384];
} result;

static const char *qat_binary(void)
{
    static char path[PATH_MAX + 8];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(path, sizeof path, "%s/qat", exe);
    cr_assert(access(path, X_OK) == 0, "%s not built", path);
    return path;
}

static void slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* Runs qat with the arguments (NULL-terminated), capturing both streams. */
static void run_qat(result *r, const char *const *args)
{
    char dir[] = "/tmp/qat-cli-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char out_path[64], err_path[64];
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);
    const char *argv[32] = { qat_binary() };
    int argc = 1;
    for (; args[argc - 1]; argc++) argv[argc] = args[argc - 1];
    argv[argc] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fo, 1), dup2(fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    slurp(out_path, r->out, sizeof r->out);
    slurp(err_path, r->err, sizeof r->err);
    unlink(out_path), unlink(err_path), rmdir(dir);
}

/* A failure: the given exit code and exactly one line on stderr containing
 * every needle. */
static void expect_error(const char *const *args, int code, const char *needle1, const char *needle2)
{
    result r;
    run_qat(&r, args);
    cr_expect_eq(r.status, code, "qat %s: exit %d, expected %d; stderr: %s", args[0], r.status, code, r.err);
    const char *nl = strchr(r.err, '\n');
    cr_expect(nl && nl[1] == '\0', "qat %s: expected one line on stderr, got: %s", args[0], r.err);
    cr_expect(strstr(r.err, needle1), "qat %s: stderr lacks \"%s\": %s", args[0], needle1, r.err);
    if (needle2) cr_expect(strstr(r.err, needle2), "qat %s: stderr lacks \"%s\": %s", args[0], needle2, r.err);
}

Test(cli, every_subcommand_has_help)
{
    const char *cmds[] = { "train", "eval", "devices", "bench", "ptq", "qat", "bits", "run", "report" };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cmds); i++) {
        if (strcmp(cmds[i], "bench") == 0) {
            char bench[PATH_MAX + 32];
            snprintf(bench, sizeof bench, "%s-bench", qat_binary());
            if (access(bench, X_OK) != 0) continue; /* built by `make`, not by every configuration */
        }
        const char *args[] = { cmds[i], "--help", NULL };
        result r;
        run_qat(&r, args);
        cr_expect_eq(r.status, 0, "qat %s --help exited %d: %s", cmds[i], r.status, r.err);
        cr_expect(strstr(r.out, "usage: qat"), "qat %s --help printed no usage: %s", cmds[i], r.out);
    }
    const char *top[] = { "--help", NULL };
    result r;
    run_qat(&r, top);
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "train"));
}

Test(cli, bad_commands_and_flags_name_the_problem)
{
    expect_error((const char *[]){ "frobnicate", NULL }, 2, "unknown command 'frobnicate'", NULL);
    expect_error((const char *[]){ "train", "--model", "mlp", "--out", "/tmp/x", "--epochs", "abc", NULL }, 2,
                 "--epochs", "'abc'");
    expect_error((const char *[]){ "train", "--model", "mlp", "--out", "/tmp/x", "--epochs", "0", NULL }, 2,
                 "--epochs", NULL);
    expect_error((const char *[]){ "train", "--model", "transformer", "--out", "/tmp/x", NULL }, 2, "--model",
                 "transformer");
    expect_error((const char *[]){ "train", "--model", "mlp", "--out", "/tmp/x", "--lr", "-1", NULL }, 2, "--lr", NULL);
    expect_error((const char *[]){ "train", "--model", "mlp", "--out", "/tmp/x", "--optimizer", "lion", NULL }, 2,
                 "--optimizer", "lion");
    expect_error((const char *[]){ "train", "--model", "mlp", "--out", "/tmp/x", "--frobnicate", NULL }, 2,
                 "--frobnicate", NULL);
    expect_error((const char *[]){ "train", "--model", "mlp", "--out", NULL }, 2, "--out", NULL);
    expect_error((const char *[]){ "train", "--model", "mlp", NULL }, 2, "--out is required", NULL);
    expect_error((const char *[]){ "eval", NULL }, 2, "--ckpt is required", NULL);
    expect_error((const char *[]){ "devices", "--device", "99", NULL }, 1, "--device", "out of range");
    expect_error((const char *[]){ "devices", "--device", "no-such-gpu", NULL }, 1, "no-such-gpu", NULL);
}

Test(cli, missing_dataset_names_the_directory_and_the_fix)
{
    expect_error((const char *[]){ "train", "--model", "mlp", "--out", "/tmp/qat-cli-nodata", "--data-dir",
                                   "/nonexistent/fmnist", NULL },
                 1, "/nonexistent/fmnist", "dataset-fashion-mnist");
}

Test(cli, bad_checkpoints_name_the_file_and_the_problem)
{
    char dir[] = "/tmp/qat-ckpt-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    expect_error((const char *[]){ "eval", "--ckpt", path, NULL }, 1, path, NULL);

    /* Truncated: a header length pointing past the end. */
    snprintf(path, sizeof path, "%s/truncated.safetensors", dir);
    const unsigned char trunc[] = { 0x40, 0, 0, 0, 0, 0, 0, 0, '{', '}' };
    cr_assert_eq(qat_file_write_atomic(path, trunc, sizeof trunc), QAT_OK);
    expect_error((const char *[]){ "eval", "--ckpt", path, NULL }, 1, path, NULL);

    /* A valid safetensors file that is not a qat checkpoint. */
    snprintf(path, sizeof path, "%s/foreign.safetensors", dir);
    const char header[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    unsigned char buf[128] = { 0 };
    size_t hl = sizeof header - 1;
    buf[0] = (unsigned char)hl;
    memcpy(buf + 8, header, hl);
    cr_assert_eq(qat_file_write_atomic(path, buf, 8 + hl + 4), QAT_OK);
    expect_error((const char *[]){ "eval", "--ckpt", path, NULL }, 1, path, "model");

    /* Right metadata, wrong tensors. */
    snprintf(path, sizeof path, "%s/shapes.safetensors", dir);
    const char header2[] = "{\"__metadata__\":{\"model\":\"mlp\",\"input_mean\":\"0\",\"input_std\":\"1\"},"
                           "\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    hl = sizeof header2 - 1;
    memset(buf, 0, sizeof buf);
    unsigned char big[256] = { 0 };
    big[0] = (unsigned char)hl;
    memcpy(big + 8, header2, hl);
    cr_assert_eq(qat_file_write_atomic(path, big, 8 + hl + 4), QAT_OK);
    expect_error((const char *[]){ "eval", "--ckpt", path, NULL }, 1, path, "fc1.weight");
    test_rmtree(dir);
}

static char *read_file(const char *path, size_t *size)
{
    void *data;
    cr_assert_eq(qat_file_read_all(path, &data, size), QAT_OK, "%s", qat_error_message());
    return data;
}

/* metrics.csv without its last column (seconds). */
static void strip_seconds(char *csv)
{
    char *w = csv;
    for (char *line = csv; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *comma = NULL;
        for (size_t i = 0; i < len; i++)
            if (line[i] == ',') comma = line + i;
        size_t keep = comma ? (size_t)(comma - line) : len;
        memmove(w, line, keep);
        w += keep;
        *w++ = '\n';
        line += len + (end ? 1 : 0);
    }
    *w = '\0';
}

Test(cli, same_seed_gives_bit_identical_runs, .timeout = 600)
{
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0 &&
        !getenv("QAT_FASHION_MNIST_DIR"))
        cr_skip_test("Fashion-MNIST not installed (Debian package dataset-fashion-mnist)");
    qat_device_info *devs;
    int count, chosen;
    qat_status st = qat_devices_list(NULL, &devs, &count, &chosen);
    free(devs);
    if (st != QAT_OK) cr_skip_test("no usable Vulkan device: %s", qat_error_message());
    char dir[] = "/tmp/qat-det-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char out[2][128];
    for (int run = 0; run < 2; run++) {
        snprintf(out[run], sizeof out[run], "%s/run%d", dir, run);
        const char *args[] = { "train", "--model", "mlp", "--epochs", "2", "--seed", "7", "--train-limit", "1024",
                               "--val", "500", "--out", out[run], "--quiet", NULL };
        result r;
        run_qat(&r, args);
        cr_assert_eq(r.status, 0, "training run %d failed: %s", run, r.err);
        cr_expect(!strstr(r.err, "validation"), "training run %d: Vulkan validation messages: %s", run, r.err);
    }
    char a[256], b[256];
    size_t na, nb;
    snprintf(a, sizeof a, "%s/metrics.csv", out[0]);
    snprintf(b, sizeof b, "%s/metrics.csv", out[1]);
    char *ma = read_file(a, &na), *mb = read_file(b, &nb);
    strip_seconds(ma), strip_seconds(mb);
    cr_expect_str_eq(ma, mb, "metrics differ between two runs with the same seed");
    free(ma), free(mb);
    snprintf(a, sizeof a, "%s/model.safetensors", out[0]);
    snprintf(b, sizeof b, "%s/model.safetensors", out[1]);
    ma = read_file(a, &na), mb = read_file(b, &nb);
    cr_expect(na == nb && memcmp(ma, mb, na) == 0, "checkpoints differ between two runs with the same seed");
    free(ma), free(mb);

    /* The checkpoint evaluates to the accuracy the run reported. */
    const char *eval[] = { "eval", "--ckpt", a, NULL };
    result r;
    run_qat(&r, eval);
    cr_expect_eq(r.status, 0, "qat eval failed: %s", r.err);
    snprintf(b, sizeof b, "%s/summary.json", out[0]);
    char *summary = read_file(b, &nb);
    double test_acc = strtod(strstr(summary, "\"test_acc\": ") + 12, NULL);
    double eval_acc = strtod(strstr(r.out, "test_acc ") + 9, NULL);
    cr_expect(test_acc > 0.5 && fabs(test_acc - eval_acc) < 1e-4, "summary test_acc %f, qat eval %f", test_acc,
              eval_acc);
    free(summary);
    test_rmtree(dir);
}

Test(cli, bad_quantization_flags_name_the_flag)
{
    const char *base[] = { "--ckpt", "/tmp/none.safetensors", "--out", "/tmp/qat-cli-q" };
#define Q(cmd, ...) (const char *[]){ cmd, base[0], base[1], base[2], base[3], __VA_ARGS__, NULL }
    expect_error(Q("ptq", "--wbits", "9", "--abits", "8"), 2, "--wbits", "'9'");
    expect_error(Q("ptq", "--wbits", "4", "--abits", "1"), 2, "--abits", "'1'");
    expect_error(Q("ptq", "--wbits", "4", "--abits", "8", "--granularity", "group:0"), 2, "--granularity",
                 "'group:0'");
    expect_error(Q("ptq", "--wbits", "4", "--abits", "8", "--granularity", "row"), 2, "--granularity", "'row'");
    expect_error(Q("ptq", "--wbits", "4", "--abits", "8", "--method", "awq"), 2, "--method", "'awq'");
    expect_error(Q("ptq", "--wbits", "4", "--abits", "8", "--observer", "kl"), 2, "--observer", "'kl'");
    expect_error(Q("ptq", "--wbits", "4", "--abits", "8", "--calib", "0"), 2, "--calib", NULL);
    expect_error(Q("ptq", "--wbits", "4", "--abits", "8", "--weight-scheme", "odd"), 2, "--weight-scheme", "'odd'");
    expect_error(Q("ptq", "--wbits", "4", "--abits", "8", "--epochs", "3"), 2, "'--epochs' belongs to 'qat qat'",
                 NULL);
    expect_error(Q("qat", "--wbits", "4", "--abits", "8", "--method", "gptq"), 2, "'--method' belongs to 'qat ptq'",
                 NULL);
    expect_error(Q("qat", "--wbits", "4", "--abits", "8", "--quantizer", "dorefa"), 2, "--quantizer", "'dorefa'");
    expect_error(Q("qat", "--wbits", "4", "--abits", "8", "--lr", "0"), 2, "--lr", NULL);
    expect_error(Q("ptq", "--wbits", "4"), 2, "--abits is required", NULL);
    expect_error((const char *[]){ "qat", "--wbits", "4", "--abits", "4", "--out", "/tmp/x", NULL }, 2,
                 "--ckpt is required", NULL);
    expect_error(Q("ptq", "--wbits", "4", "--abits", "8"), 1, "/tmp/none.safetensors", NULL);
#undef Q
}


/* A random FP32 mlp checkpoint: quantization runs on it as on a trained one. */
static void write_random_mlp(const char *path)
{
    qat_qmodel qm;
    test_random_mlp(&qm, 99, 0.1f);
    cr_assert_eq(qat_qmodel_save(&qm, path, NULL), QAT_OK, "%s", qat_error_message());
    qat_qmodel_free(&qm);
}

static double json_number(const char *json, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *p = strstr(json, pattern);
    cr_assert_not_null(p, "summary lacks %s", key);
    return strtod(p + strlen(pattern), NULL);
}

/* PTQ and QAT end to end on a small budget: the outputs exist, the summary's
 * model_bytes is the checkpoint's data size, `qat eval` reproduces the
 * summary's accuracy, and a bad bit map is refused naming its line. */
Test(cli, ptq_and_qat_write_checkpoints_that_eval_reproduces, .timeout = 600)
{
    if (!test_have_data_and_device()) cr_skip_test("needs Fashion-MNIST and a Vulkan device");
    char dir[] = "/tmp/qat-quant-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char ckpt[128], map[128], out[128], path[256];
    snprintf(ckpt, sizeof ckpt, "%s/fp32.safetensors", dir);
    write_random_mlp(ckpt);
    snprintf(map, sizeof map, "%s/bits.map", dir);
    const char bad_map[] = "fc1 4 8\nfc4 4 8\n";
    cr_assert_eq(qat_file_write_atomic(map, bad_map, strlen(bad_map)), QAT_OK);
    snprintf(out, sizeof out, "%s/bad", dir);
    expect_error((const char *[]){ "ptq", "--ckpt", ckpt, "--wbits", "4", "--abits", "8", "--bits-map", map,
                                   "--out", out, "--quiet", NULL },
                 1, "bits.map:2:", "unknown layer 'fc4'");

    const char good_map[] = "fc2 3 fp32 group:32\n";
    cr_assert_eq(qat_file_write_atomic(map, good_map, strlen(good_map)), QAT_OK);
    const char *runs[2][32] = {
        { "ptq", "--ckpt", ckpt, "--wbits", "4", "--abits", "8", "--method", "gptq", "--calib", "2", "--val", "500",
          "--bits-map", map, "--observer", "percentile", "--quiet", "--out", NULL },
        { "qat", "--ckpt", ckpt, "--wbits", "4", "--abits", "4", "--epochs", "1", "--train-limit", "512", "--calib",
          "2", "--val", "500", "--quiet", "--out", NULL },
    };
    for (int k = 0; k < 2; k++) {
        snprintf(out, sizeof out, "%s/%s", dir, runs[k][0]);
        const char **args = runs[k];
        int n = 0;
        while (args[n]) n++;
        args[n] = out;
        result r;
        run_qat(&r, args);
        cr_assert_eq(r.status, 0, "qat %s failed: %s", args[0], r.err);
        cr_expect(!strstr(r.err, "validation"), "Vulkan validation messages: %s", r.err);
        size_t size;
        snprintf(path, sizeof path, "%s/summary.json", out);
        char *summary = read_file(path, &size);
        snprintf(path, sizeof path, "%s/model.safetensors", out);
        struct stat sb;
        cr_assert_eq(stat(path, &sb), 0);
        double model_bytes = json_number(summary, "model_bytes"), file_bytes = json_number(summary, "file_bytes");
        cr_expect_eq(file_bytes, (double)sb.st_size);
        cr_expect(model_bytes < file_bytes && file_bytes - model_bytes < 4096,
                  "model_bytes %.0f vs file %.0f: the difference is the header", model_bytes, file_bytes);
        double fp32_bytes = json_number(summary, "fp32_bytes");
        cr_expect(model_bytes < fp32_bytes / 3, "4-bit model %.0f bytes vs fp32 %.0f", model_bytes, fp32_bytes);
        const char *eval[] = { "eval", "--ckpt", path, NULL };
        run_qat(&r, eval);
        cr_expect_eq(r.status, 0, "qat eval failed: %s", r.err);
        double eval_acc = strtod(strstr(r.out, "test_acc ") + 9, NULL);
        double test_acc = json_number(summary, "test_acc");
        cr_expect(fabs(test_acc - eval_acc) < 1e-4, "%s: summary test_acc %f, qat eval %f", args[0], test_acc,
                  eval_acc);
        free(summary);
        snprintf(path, sizeof path, "%s/layers.csv", out);
        char *layers = read_file(path, &size);
        if (k == 0) cr_expect(strstr(layers, "fc2,3,32,group:32,symmetric,"), "bit map not applied: %s", layers);
        free(layers);
        if (k == 1) {
            snprintf(path, sizeof path, "%s/metrics.csv", out);
            cr_expect_eq(access(path, R_OK), 0, "QAT writes metrics.csv");
            /* Same seed, same device: the same bits. */
            char again[160], a[256], b[256];
            snprintf(again, sizeof again, "%s/qat-again", dir);
            args[n] = again;
            run_qat(&r, args);
            cr_assert_eq(r.status, 0, "second QAT run failed: %s", r.err);
            snprintf(a, sizeof a, "%s/model.safetensors", out);
            snprintf(b, sizeof b, "%s/model.safetensors", again);
            size_t na, nb;
            char *ma = read_file(a, &na), *mb = read_file(b, &nb);
            cr_expect(na == nb && memcmp(ma, mb, na) == 0, "QAT checkpoints differ between runs with the same seed");
            free(ma), free(mb);
        }
    }
    test_rmtree(dir);
}

/* `qat bits` end to end on a random mlp: each sensitivity measure feeds
 * hawq, the map it writes is one `qat ptq` takes, the checkpoint that PTQ
 * writes has exactly the bytes `qat bits` accounted, and the same seed gives
 * the same map. */
/* The model bytes `qat bits` printed ("... model N bytes ..."). */
static double printed_model_bytes(const char *out)
{
    const char *model = strstr(out, "model ");
    cr_assert_not_null(model, "%s", out);
    return strtod(model + 6, NULL);
}

/* A bit map over a checkpoint's layers, row by row: every row's width must
 * be one of `widths` (digits); sums the weights and their code bits. */
static void map_code_bits(const char *ckpt, const char *map, const char *widths, double *weights, double *code_bits)
{
    qat_qmodel qm;
    cr_assert_eq(qat_qmodel_load(ckpt, &qm), QAT_OK);
    qat_qconfig qc;
    qat_qconfig_uniform(&qc, &qm.desc, 5, 0, QAT_GRAN_CHANNEL, 0);
    cr_assert_eq(qat_qconfig_load_bits_map(&qc, map), QAT_OK, "%s", qat_error_message());
    *weights = *code_bits = 0;
    for (int l = 0; l < qc.nlayers; l++) {
        qat_qscheme s = qat_qconfig_weight_scheme(&qc, l);
        for (int64_t row = 0; row < qm.desc.layers[l].rows; row++) {
            const int b = qat_qscheme_row_bits(&s, row);
            cr_expect(strchr(widths, '0' + b), "%s row %lld: %d bits", qm.desc.layers[l].name, (long long)row, b);
            *weights += (double)qm.desc.layers[l].cols;
            *code_bits += (double)qm.desc.layers[l].cols * b;
        }
    }
    qat_qmodel_free(&qm);
}

Test(cli, bits_maps_a_budget_that_ptq_meets_to_the_byte, .timeout = 600)
{
    expect_error((const char *[]){ "bits", "--ckpt", "x", "--out", "y.map", "--budget", "3", NULL }, 2,
                 "--strategy is required", NULL);
    expect_error((const char *[]){ "bits", "--candidates", "4,3", NULL }, 2, "--candidates", NULL);
    expect_error((const char *[]){ "bits", "--sensitivity", "trace", NULL }, 2, "--sensitivity", "hessian");
    result r;
    run_qat(&r, (const char *[]){ "bits", "--list", NULL });
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "uniform\n") && strstr(r.out, "greedy\n") && strstr(r.out, "hawq\n") &&
                  strstr(r.out, "manual\n") && strstr(r.out, "rules\n"),
              "qat bits --list: %s", r.out);
    if (!test_have_data_and_device()) cr_skip_test("needs Fashion-MNIST and a Vulkan device");
    char dir[] = "/tmp/qat-bits-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char ckpt[128], map[128], map2[128], out[128], path[256];
    snprintf(ckpt, sizeof ckpt, "%s/fp32.safetensors", dir);
    write_random_mlp(ckpt);
    snprintf(map, sizeof map, "%s/bits.map", dir);
    expect_error((const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "optimal", "--budget", "3", "--out", map,
                                   NULL },
                 1, "unknown strategy 'optimal'", "hawq");
    expect_error((const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "uniform", "--budget", "3 bits", "--out",
                                   map, NULL },
                 1, "--budget", "3 bits");
    expect_error((const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "uniform", "--budget", "1KB", "--out", map,
                                   NULL },
                 1, "--budget 1KB", "FP32");
    /* An impossible budget is refused before anything is measured. */
    expect_error((const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "hawq", "--budget", "1", "--out", map, NULL },
                 1, "--budget 1", "every layer at 2 bits");
    const char bad_map[] = "fc1 4 fp32\nfc2 2 fp32\n# fc3 at 8 bits\nfc9 8 fp32\n";
    cr_assert_eq(qat_file_write_atomic(map, bad_map, strlen(bad_map)), QAT_OK);
    snprintf(map2, sizeof map2, "%s/out.map", dir);
    expect_error((const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "manual", "--map", map, "--out", map2, NULL },
                 1, "bits.map:4:", "unknown layer 'fc9'");

    const char *sens[] = { "hessian", "fisher", "perturbation" };
    for (int k = 0; k < 3; k++) {
        const char *args[] = { "bits", "--ckpt", ckpt, "--strategy", "hawq", "--budget", "3", "--sensitivity",
                               sens[k], "--calib", "2", "--batch", "64", "--val", "500", "--max-probes", "6",
                               "--candidates", "2,3,4,8", "--granularity", "group:64", "--out", map, NULL };
        run_qat(&r, args);
        cr_assert_eq(r.status, 0, "qat bits --sensitivity %s: %s", sens[k], r.err);
        cr_expect(!strstr(r.err, "validation"), "Vulkan validation messages: %s", r.err);
        cr_expect(strstr(r.out, sens[k]) && strstr(r.out, "fc1") && strstr(r.out, "fc3"), "%s", r.out);
        double bits_model_bytes = printed_model_bytes(r.out);
        /* The map is one PTQ reads, every layer at a candidate width. */
        double weights, code_bits;
        map_code_bits(ckpt, map, "2348", &weights, &code_bits);
        cr_expect(code_bits <= 3 * weights, "%.0f code bits for %.0f weights exceed 3 bits each", code_bits, weights);
        size_t map_size;
        char *map_text = read_file(map, &map_size);
        cr_expect(strstr(map_text, "\nfc1 ") && strstr(map_text, " group:64 "), "the map keeps --granularity: %s",
                  map_text);
        free(map_text);
        snprintf(out, sizeof out, "%s/ptq-%s", dir, sens[k]);
        run_qat(&r, (const char *[]){ "ptq", "--ckpt", ckpt, "--wbits", "5", "--abits", "fp32", "--bits-map", map,
                                      "--calib", "2", "--batch", "64", "--val", "500", "--quiet", "--out", out,
                                      NULL });
        cr_assert_eq(r.status, 0, "ptq with the map: %s", r.err);
        size_t size;
        snprintf(path, sizeof path, "%s/summary.json", out);
        char *summary = read_file(path, &size);
        cr_expect_eq(json_number(summary, "model_bytes"), bits_model_bytes, "qat bits accounted %.0f bytes, PTQ "
                     "wrote %.0f", bits_model_bytes, json_number(summary, "model_bytes"));
        free(summary);
        if (k == 0) {
            /* Same seed, same map. */
            size_t na, nb;
            char *a = read_file(map, &na);
            args[QAT_ARRAY_LEN(args) - 2] = map2;
            run_qat(&r, args);
            cr_assert_eq(r.status, 0, "%s", r.err);
            char *b = read_file(map2, &nb);
            cr_expect(na == nb && memcmp(a, b, na) == 0, "two runs with the same seed wrote different maps");
            free(a), free(b);
        }
    }
    /* A sensitivity cache: the first run measures and writes it, a run at
     * another budget reads it and maps exactly as a run that measures, a
     * run whose settings differ (the seed) measures again. */
    char cache[128], lines_a[4096], lines_b[4096];
    snprintf(cache, sizeof cache, "%s/fisher.txt", dir);
    for (int k = 0; k < 4; k++) {
        const char *budget = k == 0 ? "3" : "2.5";
        const char *seed = k == 3 ? "2" : "1";
        const char *args[] = { "bits", "--ckpt", ckpt, "--strategy", "hawq", "--budget", budget, "--sensitivity",
                               "fisher", "--calib", "2", "--batch", "64", "--val", "500", "--seed", seed, "--out",
                               k == 2 ? map2 : map, k == 2 ? NULL : "--sensitivity-cache", cache, NULL };
        run_qat(&r, args);
        cr_assert_eq(r.status, 0, "%s", r.err);
        bool read = strstr(r.out, "fisher read from") != NULL;
        cr_expect_eq(read, k == 1, "run %d: %s", k, r.out);
        cr_expect_eq(access(cache, R_OK), 0);
        if (k == 1 || k == 2) {
            /* The maps' layer lines (comments aside) are the same. */
            size_t n;
            char *text = read_file(k == 1 ? map : map2, &n);
            char *dst = k == 1 ? lines_a : lines_b;
            dst[0] = '\0';
            for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
                if (line[0] != '#') snprintf(dst + strlen(dst), 4096 - strlen(dst), "%s\n", line);
            free(text);
        }
    }
    cr_expect_str_eq(lines_a, lines_b, "a map from cached costs differs from one measured afresh");
    cr_expect(strlen(lines_a) > 20);

    /* manual: the map's bits, checked against the budget. */
    const char manual[] = "fc1 2 fp32\nfc2 8 fp32\nfc3 4 fp32\n";
    cr_assert_eq(qat_file_write_atomic(map, manual, strlen(manual)), QAT_OK);
    run_qat(&r, (const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "manual", "--map", map, "--out", map2,
                                  "--quiet", NULL });
    cr_assert_eq(r.status, 0, "%s", r.err);
    size_t n;
    char *written = read_file(map2, &n);
    cr_expect(strstr(written, "\nfc1 2 fp32 channel") && strstr(written, "\nfc2 8 fp32 channel") &&
                  strstr(written, "\nfc3 4 fp32 channel"),
              "%s", written);
    free(written);
    expect_error((const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "manual", "--map", map, "--budget", "2",
                                   "--out", map2, NULL },
                 1, "budget", NULL);
    test_rmtree(dir);
}

/* --unit rows:N: blocks of output channels get their own widths; the map
 * holds runs, PTQ writes exactly the bytes qat bits counted, QAT trains
 * such a map, and a manual map must align with the blocks. */
Test(cli, bits_by_blocks_of_rows_writes_runs_that_ptq_and_qat_take, .timeout = 600)
{
    expect_error((const char *[]){ "bits", "--unit", "rows:0", NULL }, 2, "--unit", "rows:N");
    if (!test_have_data_and_device()) cr_skip_test("needs Fashion-MNIST and a Vulkan device");
    char dir[] = "/tmp/qat-bits-rows-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char ckpt[128], map[128], map2[128], out[128], path[256];
    snprintf(ckpt, sizeof ckpt, "%s/fp32.safetensors", dir);
    write_random_mlp(ckpt);
    snprintf(map, sizeof map, "%s/bits.map", dir);
    snprintf(map2, sizeof map2, "%s/manual.map", dir);
    expect_error((const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "uniform", "--budget", "3", "--unit",
                                   "rows:64", "--granularity", "tensor", "--out", map, NULL },
                 1, "--unit rows:64", "per-row scales");
    expect_error((const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "uniform", "--budget", "3", "--unit",
                                   "rows:2", "--out", map, NULL },
                 1, "layer fc1 has 256 rows", "rows:4");
    result r;
    run_qat(&r, (const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "hawq", "--budget", "2.5", "--sensitivity",
                                  "fisher", "--unit", "rows:64", "--candidates", "2,3,4", "--calib", "2", "--batch",
                                  "64", "--val", "500", "--out", map, NULL });
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "fc1[0:64]") && strstr(r.out, "fc2[192:256]") && strstr(r.out, "fc3[0:10]"), "%s", r.out);
    double bits_model_bytes = printed_model_bytes(r.out);
    double weights, code_bits;
    map_code_bits(ckpt, map, "234", &weights, &code_bits);
    cr_expect(code_bits <= 2.5 * weights, "%.0f code bits for %.0f weights exceed 2.5 bits each", code_bits, weights);
    snprintf(out, sizeof out, "%s/ptq", dir);
    run_qat(&r, (const char *[]){ "ptq", "--ckpt", ckpt, "--wbits", "8", "--abits", "fp32", "--bits-map", map,
                                  "--calib", "2", "--batch", "64", "--val", "500", "--quiet", "--out", out, NULL });
    cr_assert_eq(r.status, 0, "ptq with the map: %s", r.err);
    size_t size;
    snprintf(path, sizeof path, "%s/summary.json", out);
    char *summary = read_file(path, &size);
    cr_expect_eq(json_number(summary, "model_bytes"), bits_model_bytes, "qat bits accounted %.0f bytes, PTQ wrote %.0f",
                 bits_model_bytes, json_number(summary, "model_bytes"));
    free(summary);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    run_qat(&r, (const char *[]){ "eval", "--ckpt", path, "--val", "500", NULL });
    cr_expect_eq(r.status, 0, "qat eval of a checkpoint with runs: %s", r.err);

    /* QAT trains a map whose rows mix widths (LSQ: the learned scales keep
     * each row's grid) and writes the runs into its checkpoint. */
    const char runs[] = "fc1 2x128+4x128 fp32 channel\nfc2 3 fp32 channel\nfc3 4 fp32 channel\n";
    cr_assert_eq(qat_file_write_atomic(map2, runs, strlen(runs)), QAT_OK);
    snprintf(out, sizeof out, "%s/qat", dir);
    run_qat(&r, (const char *[]){ "qat", "--ckpt", ckpt, "--wbits", "8", "--abits", "fp32", "--bits-map", map2,
                                  "--quantizer", "lsq", "--epochs", "1", "--train-limit", "512", "--calib", "2",
                                  "--batch", "64", "--val", "500", "--quiet", "--out", out, NULL });
    cr_assert_eq(r.status, 0, "qat with per-row widths: %s", r.err);
    cr_expect(!strstr(r.err, "validation"), "Vulkan validation messages: %s", r.err);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    qat_qmodel trained;
    cr_assert_eq(qat_qmodel_load(path, &trained), QAT_OK, "%s", qat_error_message());
    qat_qscheme ts = trained.layers[0].wscheme;
    cr_expect_eq(ts.runs.count, 2, "fc1 keeps its runs");
    for (int64_t i = 0; i < trained.numel[0]; i++) {
        const int row_bits = qat_qscheme_row_bits(&ts, i / trained.desc.layers[0].cols);
        if (trained.layers[0].codes[i] > qat_qmax(row_bits)) {
            cr_expect(false, "fc1 code %lld is %d, over its row's %d bits", (long long)i, trained.layers[0].codes[i],
                      row_bits);
            break;
        }
    }
    qat_qmodel_free(&trained);
    /* manual with runs: aligned with the blocks it passes, else it names the block. */
    run_qat(&r, (const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "manual", "--map", map2, "--unit", "rows:64",
                                  "--out", map, "--quiet", NULL });
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *written = read_file(map, &size);
    cr_expect(strstr(written, "\nfc1 2x128+4x128 fp32 channel"), "%s", written);
    free(written);
    expect_error((const char *[]){ "bits", "--ckpt", ckpt, "--strategy", "manual", "--map", map2, "--unit",
                                   "rows:100", "--out", map, NULL },
                 1, "fc1[100:200]", "different widths");
    test_rmtree(dir);
}

Test(cli, bad_runner_input_names_the_flag_file_or_line)
{
    char dir[] = "/tmp/qat-run-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char spec[128];
    snprintf(spec, sizeof spec, "%s/bad.ini", dir);
    const char text[] = "[experiment]\nname = x\nmodel = mlp\n[ptq]\nbits = 4/9\n";
    cr_assert_eq(qat_file_write_atomic(spec, text, strlen(text)), QAT_OK);
    expect_error((const char *[]){ "run", spec, NULL }, 1, "bad.ini:5:", "'4/9'");
    expect_error((const char *[]){ "run", "--shard", "3/2", spec, NULL }, 2, "--shard", "'3/2'");
    expect_error((const char *[]){ "run", NULL }, 2, "experiment file is required", NULL);
    expect_error((const char *[]){ "run", "/nonexistent/x.ini", NULL }, 1, "/nonexistent/x.ini", NULL);
    expect_error((const char *[]){ "report", dir, NULL }, 1, "experiment.ini", NULL);
    test_rmtree(dir);
}

Test(cli, gpt_flags_and_files_name_the_problem)
{
    expect_error((const char *[]){ "train", "--model", "gpt", "--out", "/tmp/x", NULL }, 2, "--data", NULL);
    expect_error((const char *[]){ "train", "--model", "gpt", "--data", "fortunes:tech", "--epochs", "2", "--out",
                                   "/tmp/x", NULL },
                 2, "--epochs", "--steps");
    expect_error((const char *[]){ "train", "--model", "mlp", "--data", "fortunes:tech", "--out", "/tmp/x", NULL }, 2,
                 "--data", "gpt");
    expect_error((const char *[]){ "train", "--model", "gpt", "--data", "mnist", "--out", "/tmp/x", NULL }, 2,
                 "--data", "'mnist'");
    expect_error((const char *[]){ "train", "--model", "gpt", "--data", "fortunes:tech", "--width", "30", "--heads",
                                   "4", "--out", "/tmp/qat-cli-gpt-bad", NULL },
                 1, "width 30", "heads 4");
    expect_error((const char *[]){ "train", "--model", "gpt", "--data", "fortunes:tech", "--steps", "0", "--out",
                                   "/tmp/x", NULL },
                 2, "--steps", NULL);
    expect_error((const char *[]){ "train", "--model", "gpt", "--data", "fortunes:tech", "--data-dir",
                                   "/nonexistent/fortunes", "--out", "/tmp/qat-cli-gpt-bad", NULL },
                 1, "/nonexistent/fortunes", "apt-get install fortunes");
}

/* The gpt end to end at a tiny size on one small fortunes file: training is
 * bit-identical for a seed and `qat eval` reproduces its val_bpc; a
 * fine-tune from it starts where it ended; PTQ (GPTQ, 4-bit groups) and QAT
 * on text write checkpoints whose val_bpc `qat eval` reproduces. */
Test(cli, gpt_trains_finetunes_and_quantizes_on_text, .timeout = 600)
{
    if (!test_have_fortunes_and_device())
        cr_skip_test("needs the fortunes corpus (Debian package fortunes) and a Vulkan device");
    char dir[] = "/tmp/qat-gpt-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char out[2][128], path[256], ckpt[256];
    for (int run = 0; run < 2; run++) {
        snprintf(out[run], sizeof out[run], "%s/run%d", dir, run);
        const char *args[] = { "train", "--model", "gpt", "--data", "fortunes:debian", "--layers", "1", "--width",
                               "16", "--heads", "2", "--context", "16", "--batch", "4", "--steps", "30",
                               "--lr", "0.01", "--warmup", "5", "--eval-every", "15", "--seed", "3", "--out",
                               out[run], "--quiet", NULL };
        result r;
        run_qat(&r, args);
        cr_assert_eq(r.status, 0, "gpt training run %d failed: %s", run, r.err);
    }
    char a[256], b[256];
    size_t na, nb;
    snprintf(a, sizeof a, "%s/metrics.csv", out[0]);
    char *metrics = read_file(a, &na);
    cr_expect(strncmp(metrics, "step,train_loss,val_loss,val_bpc,seconds\n15,", 44) == 0 && strstr(metrics, "\n30,"),
              "metrics.csv: %s", metrics);
    free(metrics);
    snprintf(a, sizeof a, "%s/model.safetensors", out[0]);
    snprintf(b, sizeof b, "%s/model.safetensors", out[1]);
    char *ma = read_file(a, &na), *mb = read_file(b, &nb);
    cr_expect(na == nb && memcmp(ma, mb, na) == 0, "gpt checkpoints differ between two runs with the same seed");
    free(ma), free(mb);
    snprintf(ckpt, sizeof ckpt, "%s", a);
    snprintf(path, sizeof path, "%s/summary.json", out[0]);
    char *summary = read_file(path, &na);
    double val_bpc = json_number(summary, "val_bpc");
    /* 30 steps move a byte model well below uniform (8 bits) on English text. */
    cr_expect(val_bpc > 1 && val_bpc < 7.5, "val_bpc %f", val_bpc);
    cr_expect(strstr(summary, "\"data\": \"fortunes:debian\"") && strstr(summary, "\"git_commit\""), "%s", summary);
    free(summary);
    result r;
    run_qat(&r, (const char *[]){ "eval", "--ckpt", ckpt, "--data", "fortunes:debian", "--batch", "4", NULL });
    cr_assert_eq(r.status, 0, "qat eval failed: %s", r.err);
    double eval_bpc = strtod(strstr(r.out, "val_bpc ") + 8, NULL);
    cr_expect(fabs(eval_bpc - val_bpc) < 1e-4, "summary val_bpc %f, qat eval %f", val_bpc, eval_bpc);
    expect_error((const char *[]){ "eval", "--ckpt", ckpt, NULL }, 1, "gpt checkpoint", "--data");

    /* Fine-tuning from it: its starting val_bpc is the one above. */
    snprintf(path, sizeof path, "%s/finetune", dir);
    run_qat(&r, (const char *[]){ "train", "--model", "gpt", "--init", ckpt, "--data", "fortunes:debian", "--batch",
                                  "4", "--steps", "10", "--eval-every", "0", "--out", path, "--quiet", NULL });
    cr_assert_eq(r.status, 0, "fine-tuning failed: %s", r.err);
    snprintf(path, sizeof path, "%s/finetune/summary.json", dir);
    summary = read_file(path, &na);
    cr_expect(strstr(summary, "\"kind\": \"finetune\""), "%s", summary);
    cr_expect(fabs(json_number(summary, "init_val_bpc") - val_bpc) < 1e-6, "%s", summary);
    free(summary);

    const char *runs[2][40] = {
        { "ptq", "--ckpt", ckpt, "--data", "fortunes:debian", "--forget-data", "fortunes:linuxcookie", "--wbits", "4",
          "--abits", "fp32", "--granularity", "group:16", "--method", "gptq", "--calib", "2", "--batch", "4",
          "--quiet", "--out", NULL },
        { "qat", "--ckpt", ckpt, "--data", "fortunes:debian", "--wbits", "4", "--abits", "8", "--granularity",
          "group:16", "--steps", "5", "--calib", "2", "--batch", "4", "--quiet", "--out", NULL },
    };
    for (int k = 0; k < 2; k++) {
        const char **args = runs[k];
        int n = 0;
        while (args[n]) n++;
        snprintf(path, sizeof path, "%s/%s", dir, args[0]);
        args[n] = path;
        run_qat(&r, args);
        cr_assert_eq(r.status, 0, "qat %s on the gpt failed: %s", args[0], r.err);
        char file[300];
        snprintf(file, sizeof file, "%s/summary.json", path);
        summary = read_file(file, &na);
        double q_bpc = json_number(summary, "val_bpc"), fp32_bpc = json_number(summary, "fp32_val_bpc");
        cr_expect(fabs(fp32_bpc - val_bpc) < 1e-6, "%s: fp32_val_bpc %f vs %f", args[0], fp32_bpc, val_bpc);
        cr_expect(q_bpc > 1 && q_bpc < 8, "%s: val_bpc %f", args[0], q_bpc);
        if (k == 0) cr_expect(json_number(summary, "forget_val_bpc") > 1, "%s", summary);
        snprintf(file, sizeof file, "%s/model.safetensors", path);
        run_qat(&r, (const char *[]){ "eval", "--ckpt", file, "--data", "fortunes:debian", "--batch", "4", NULL });
        cr_assert_eq(r.status, 0, "qat eval of the %s checkpoint failed: %s", args[0], r.err);
        eval_bpc = strtod(strstr(r.out, "val_bpc ") + 8, NULL);
        cr_expect(fabs(eval_bpc - q_bpc) < 1e-4, "%s: summary val_bpc %f, qat eval %f", args[0], q_bpc, eval_bpc);
        free(summary);
    }

    /* QLoRA over NF4 (merged: qat eval reproduces its val_bpc) and plain
     * LoRA over the FP32 base. */
    const char *bases[2] = { "nf4", "fp32" };
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/qlora-%s", dir, bases[k]);
        run_qat(&r, (const char *[]){ "qlora", "--ckpt", ckpt, "--data", "fortunes:debian", "--forget-data",
                                      "fortunes:linuxcookie", "--base", bases[k], "--rank", "2", "--steps", "20",
                                      "--lr", "0.01", "--batch", "4", "--merge", "--out", path, "--quiet", NULL });
        cr_assert_eq(r.status, 0, "qat qlora --base %s failed: %s", bases[k], r.err);
        char file[300];
        snprintf(file, sizeof file, "%s/summary.json", path);
        summary = read_file(file, &na);
        double q_bpc = json_number(summary, "val_bpc"), base_bpc = json_number(summary, "base_val_bpc");
        cr_expect(fabs(base_bpc - val_bpc) < 1e-6, "qlora %s: base_val_bpc %f vs %f", bases[k], base_bpc, val_bpc);
        cr_expect(q_bpc < json_number(summary, "quantized_base_val_bpc"), "qlora %s did not learn: %s", bases[k],
                  summary);
        /* 6 adapted 16x16 or 16x64 layers, rank 2: A and B each. */
        cr_expect_eq(json_number(summary, "trainable_params"), 4 * 2 * (16 + 16) + 2 * 2 * (16 + 64));
        cr_expect(json_number(summary, "forget_val_bpc") > 1, "%s", summary);
        /* At this toy size every 4-bit tensor's 256-byte alignment and each
         * layer's 1104-byte table dominate: 2048 bytes per 16x16 layer and
         * 2304 per 16x64 one (the default gpt's layers take 0.56 bytes per
         * weight, tests/test_q4.c). */
        double bytes = json_number(summary, "base_bytes_per_param");
        double want = k == 0 ? (4 * 2048 + 2 * 2304) / (4 * 256 + 2 * 1024.0) : 4;
        cr_expect(fabs(bytes - want) < 1e-9, "qlora %s: %g base bytes per parameter, expected %g", bases[k], bytes,
                  want);
        snprintf(file, sizeof file, "%s/merged.safetensors", path);
        run_qat(&r, (const char *[]){ "eval", "--ckpt", file, "--data", "fortunes:debian", "--batch", "4", NULL });
        cr_assert_eq(r.status, 0, "qat eval of the merged checkpoint failed: %s", r.err);
        eval_bpc = strtod(strstr(r.out, "val_bpc ") + 8, NULL);
        cr_expect(fabs(eval_bpc - q_bpc) < 1e-3, "qlora %s: val_bpc %f, merged checkpoint %f", bases[k], q_bpc,
                  eval_bpc);
        snprintf(file, sizeof file, "%s/base.safetensors", path);
        cr_expect_eq(access(file, R_OK), 0);
        snprintf(file, sizeof file, "%s/adapters.safetensors", path);
        cr_expect_eq(access(file, R_OK), 0);
        free(summary);
    }
    expect_error((const char *[]){ "qlora", "--ckpt", ckpt, "--data", "fortunes:debian", "--rank", "99", "--out",
                                   path, NULL },
                 1, "--rank 99", "width 16");
    expect_error((const char *[]){ "qlora", "--ckpt", ckpt, "--data", "fortunes:debian", "--base", "int4", "--out",
                                   path, NULL },
                 2, "--base", "'int4'");
    test_rmtree(dir);
}
