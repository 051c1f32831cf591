/* Helpers shared by the Criterion suites. */
#ifndef QAT_TEST_UTIL_H
#define QAT_TEST_UTIL_H

#include <criterion/criterion.h>

#include "qat/context.h"
#include "qat/experiment.h"
#include "qat/qmodel.h"

/* Path of a file under tests/ (e.g. "golden/mlp_golden.safetensors"),
 * found from $QAT_GOLDEN_DIR/.. , the repository root as working directory,
 * or the test binary's location (bin/ or bin/CONFIG/). NULL if absent. */
const char *test_data_path(const char *relative);

/* Removes a directory tree (a test's mkdtemp scratch space). */
void test_rmtree(const char *path);

/* A scratch directory per test (Criterion runs each test in its own
 * process): use test_tmpdir_make / test_tmpdir_remove as a suite's .init and
 * .fini; test_tmp_path(name) is a path inside it (valid for the next 8 calls). */
extern char test_tmpdir[64];
void test_tmpdir_make(void);
void test_tmpdir_remove(void);
char *test_tmp_path(const char *name);

/* A Vulkan context for a GPU test, or skips the test with a clear message
 * when no device exists (CI installs lavapipe, so there it runs). */
qat_ctx *test_gpu_ctx(void);
/* Fails the test if the validation layers said anything, then frees. */
void test_gpu_done(qat_ctx *ctx);

/* Deterministic test data: xorshift64*, values never exactly zero. */
typedef struct test_rng { uint64_t s; } test_rng;
static inline uint64_t test_rng_next(test_rng *r)
{
    r->s ^= r->s >> 12, r->s ^= r->s << 25, r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}
/* Uniform in [lo, hi), resampled away from 0 by at least 1e-3. */
float test_rng_float(test_rng *r, float lo, float hi);
void test_fill(test_rng *r, float *x, size_t n, float lo, float hi);

/* max |a - b| / max(max |b|, floor): an error relative to the tensor's scale,
 * so tiny entries do not dominate. */
double test_rel_max_err(const float *a, const float *b, size_t n, double floor);

/* Fashion-MNIST installed and a Vulkan device present: what the end-to-end
 * tests need (they skip otherwise). */
bool test_have_data_and_device(void);
/* A Vulkan device; the fortunes corpus and a device (the gpt's tests). */
bool test_have_device(void);
bool test_have_fortunes_and_device(void);

/* An FP32 mlp with every parameter uniform in +-bound (bound <= 0: the
 * layer's 1 / sqrt(fan_in)) from test_rng {seed}, weight then bias per layer;
 * free with qat_qmodel_free. */
void test_random_mlp(qat_qmodel *qm, uint64_t seed, float bound);

/* Parses spec text named `source` in messages; fails the test on an error.
 * The struct starts filled with junk, so a key left unset shows. */
qat_experiment test_spec_parse_ok(const char *text, const char *source);
/* Parsing fails with a one-line message that starts with `where` and
 * mentions each of the NULL-terminated snippets after it. */
void test_spec_parse_fails(const char *text, const char *source, const char *where, ...);

/* Writes an experiment spec to `path`, loads it and expands its grid into
 * *runs (to free) and *count; fails the test on any error. */
void test_spec_expand(const char *path, const char *text, qat_run_spec **runs, int *count);

#endif
