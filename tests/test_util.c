#include "tests/test_util.h"

#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qat/fileio.h"

const char *test_data_path(const char *relative)
{
    static _Thread_local char path[PATH_MAX + 64];
    const char *env = getenv("QAT_GOLDEN_DIR");
    if (env && *env) {
        snprintf(path, sizeof path, "%s/../%s", env, relative);
        if (access(path, R_OK) == 0) return path;
    }
    snprintf(path, sizeof path, "tests/%s", relative);
    if (access(path, R_OK) == 0) return path;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        const char *ups[] = { "..", "../.." };
        for (size_t i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/%s/tests/%s", exe, ups[i], relative);
            if (access(path, R_OK) == 0) return path;
        }
    }
    return NULL;
}

void test_rmtree(const char *path) { qat_remove_tree(path); }

char test_tmpdir[64];

void test_tmpdir_make(void)
{
    strcpy(test_tmpdir, "/tmp/qat_test_XXXXXX");
    cr_assert_not_null(mkdtemp(test_tmpdir));
}

void test_tmpdir_remove(void) { test_rmtree(test_tmpdir); }

char *test_tmp_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", test_tmpdir, name);
    return p;
}

qat_ctx *test_gpu_ctx(void)
{
    qat_ctx *ctx = NULL;
    qat_status st = qat_ctx_init(NULL, &ctx);
    if (st != QAT_OK) {
        if (st == QAT_ERR_VULKAN) cr_skip_test("no usable Vulkan device: %s", qat_error_message());
        cr_assert_fail("cannot create a Vulkan context: %s", qat_error_message());
    }
    return ctx;
}

void test_gpu_done(qat_ctx *ctx)
{
    uint32_t messages = ctx->validation_messages;
    qat_ctx_free(ctx);
    cr_expect_eq(messages, 0, "the Vulkan validation layers reported %u message(s) (see stderr)", messages);
}

float test_rng_float(test_rng *r, float lo, float hi)
{
    for (;;) {
        float u = (float)(test_rng_next(r) >> 40) / (float)(1 << 24);
        float v = lo + (hi - lo) * u;
        if (fabsf(v) >= 1e-3f) return v;
    }
}

void test_fill(test_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = test_rng_float(r, lo, hi);
}

double test_rel_max_err(const float *a, const float *b, size_t n, double floor)
{
    double scale = floor, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)a[i] - (double)b[i]));
    return err / scale;
}

bool test_have_device(void)
{
    qat_device_info *devs;
    int count, chosen;
    qat_status st = qat_devices_list(NULL, &devs, &count, &chosen);
    free(devs);
    return st == QAT_OK;
}

bool test_have_data_and_device(void)
{
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0 &&
        !getenv("QAT_FASHION_MNIST_DIR"))
        return false;
    return test_have_device();
}

bool test_have_fortunes_and_device(void)
{
    if (access("/usr/share/games/fortunes/debian", R_OK) != 0 && !getenv("QAT_FORTUNES_DIR")) return false;
    return test_have_device();
}

void test_random_mlp(qat_qmodel *qm, uint64_t seed, float bound)
{
    memset(qm, 0, sizeof *qm);
    qat_model_desc_default(&qm->desc, QAT_MODEL_MLP);
    qm->input_mean = 0.286f;
    qm->input_std = 0.353f;
    qm->nlayers = 3;
    qm->nparams = 6;
    test_rng rng = { seed };
    for (int i = 0; i < 3; i++) {
        const qat_layer_info *info = &qm->desc.layers[i];
        qm->numel[2 * i] = info->rows * info->cols;
        qm->numel[2 * i + 1] = info->rows;
        float b = bound > 0 ? bound : 1.0f / sqrtf((float)info->cols);
        for (int k = 0; k < 2; k++) {
            qm->values[2 * i + k] = qat_xmalloc((size_t)qm->numel[2 * i + k] * sizeof(float));
            test_fill(&rng, qm->values[2 * i + k], (size_t)qm->numel[2 * i + k], -b, b);
        }
    }
}

void test_spec_expand(const char *path, const char *text, qat_run_spec **runs, int *count)
{
    cr_assert_eq(qat_file_write_atomic(path, text, strlen(text)), QAT_OK, "%s", qat_error_message());
    qat_experiment e;
    cr_assert_eq(qat_experiment_load(path, &e), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(qat_experiment_expand(&e, runs, count), QAT_OK, "%s", qat_error_message());
}

qat_experiment test_spec_parse_ok(const char *text, const char *source)
{
    qat_experiment e;
    memset(&e, 0x5a, sizeof e);
    cr_assert_eq(qat_experiment_parse(text, strlen(text), source, &e), QAT_OK, "%s\n%s", qat_error_message(), text);
    return e;
}

void test_spec_parse_fails(const char *text, const char *source, const char *where, ...)
{
    qat_experiment e;
    qat_error_clear();
    cr_assert_eq(qat_experiment_parse(text, strlen(text), source, &e), QAT_ERR_INVALID, "accepted:\n%s", text);
    const char *msg = qat_error_message();
    cr_assert(strncmp(msg, where, strlen(where)) == 0, "message \"%s\" does not start with \"%s\"", msg, where);
    cr_assert_null(strchr(msg, '\n'), "message spans lines: %s", msg);
    va_list ap;
    va_start(ap, where);
    for (const char *snippet; (snippet = va_arg(ap, const char *));)
        cr_assert(strstr(msg, snippet), "message \"%s\" does not mention \"%s\"", msg, snippet);
    va_end(ap);
}
