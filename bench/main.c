/* qat-bench (run by `qat bench`): flags, the header that says what was
 * measured where, then the matmul and training tables. */
#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "qat/version.h"

#define WARMUP_RUNS 3
#define DEFAULT_REPEATS 7
/* A run repeats its work until it lasts this long, so timer resolution and
 * scheduling noise stay small beside it. */
#define TARGET_RUN_SECONDS 0.1

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qat bench [OPTIONS]   (or bin/qat-bench [OPTIONS])\n"
            "\n"
            "Measures qat on a Vulkan device beside CPU references run in the same process:\n"
            "matmul GFLOP/s against OpenBLAS cblas_sgemm, and training images/s of the mlp and\n"
            "cnn (batch 128, synthetic data) against CPU training steps doing the same math.\n"
            "Each number is the median of timed runs after %d warm-up runs; ratio = qat / reference\n"
            "throughput (above 1: qat is faster).\n"
            "\n"
            "  --device N|NAME   Vulkan device (default $QAT_DEVICE or the preferred one)\n"
            "  --repeats N       timed runs per measurement (default %d)\n"
            "  --only WHAT       matmul, train or q4 (4-bit linear layers): run one section\n"
            "  -h, --help        this text\n"
            "\n"
            "OpenBLAS picks its kernels by CPU detection; OPENBLAS_CORETYPE=NAME (e.g. Haswell,\n"
            "SkylakeX) overrides it and OPENBLAS_NUM_THREADS sets its thread count.\n",
            WARMUP_RUNS, DEFAULT_REPEATS);
}

static void print_header(const qat_ctx *ctx, const bench_config *cfg)
{
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    const qat_device_info *d = &ctx->info;
    printf("qat-bench  %s  commit %s\n", date, qat_git_commit());
    printf("device     %s (%s, Vulkan %u.%u.%u)\n", d->name, d->type_name, VK_API_VERSION_MAJOR(d->api_version),
           VK_API_VERSION_MINOR(d->api_version), VK_API_VERSION_PATCH(d->api_version));
    printf("driver     %s %s\n", d->driver_name, d->driver_info);
    if (qat_ctx_is_cpu(ctx)) {
        const char *lp = getenv("LP_NUM_THREADS");
        printf("           a CPU driver: it shares the CPU cores with the reference (LP_NUM_THREADS %s%s)\n",
               lp ? "= " : "unset: one thread per core", lp ? lp : "");
    }
    if (ctx->validate)
        printf("           Vulkan validation layers on (QAT_VK_VALIDATE): qat's timings are not representative\n");
    /* OpenBLAS chooses its kernels by detecting the CPU at load time; on a
     * virtual CPU the detection can pick a core older than the one present,
     * so the choice is printed and can be overridden. */
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    printf("reference  OpenBLAS core %s, %d threads; config: %s\n", openblas_get_corename(),
           openblas_get_num_threads(), openblas_get_config());
    if (coretype)
        printf("           core chosen by OPENBLAS_CORETYPE=%s from the environment\n", coretype);
    else
        printf("           core detected by OpenBLAS, which can misdetect a virtual CPU; it honours\n"
               "           OPENBLAS_CORETYPE=NAME (e.g. Haswell, SkylakeX) to override the detection\n");
    printf("timing     %d warm-up runs, then %d timed run%s: median and min per run; a run repeats the work\n"
           "           `reps` times, reps chosen so a run lasts >= %.0f ms; ratio = qat / reference throughput\n",
           cfg->warmup, cfg->repeats, cfg->repeats == 1 ? "" : "s", cfg->target_s * 1e3);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        { "device", required_argument, NULL, 'd' },
        { "repeats", required_argument, NULL, 'r' },
        { "only", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bench_config cfg = { .warmup = WARMUP_RUNS, .repeats = DEFAULT_REPEATS, .target_s = TARGET_RUN_SECONDS };
    const char *device = NULL;
    bool do_matmul = true, do_train = true, do_q4 = true;
    opterr = 0; /* errors are reported below, in one line */
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'd':
            device = optarg;
            break;
        case 'r': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end != '\0' || v < 1 || v > 1000) {
                fprintf(stderr, "qat-bench: --repeats: expected an integer in [1, 1000], got '%s'\n", optarg);
                return 2;
            }
            cfg.repeats = (int)v;
            break;
        }
        case 'o':
            if (strcmp(optarg, "matmul") == 0) do_train = do_q4 = false;
            else if (strcmp(optarg, "train") == 0) do_matmul = do_q4 = false;
            else if (strcmp(optarg, "q4") == 0) do_matmul = do_train = false;
            else {
                fprintf(stderr, "qat-bench: --only: expected matmul, train or q4, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "qat-bench: option '%s' needs an argument (see --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "qat-bench: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qat-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }

    qat_ctx *ctx;
    qat_status init = qat_ctx_init(device, &ctx);
    if (init != QAT_OK) {
        fprintf(stderr, "qat-bench: %s\n", qat_error_message());
        return init == QAT_ERR_INVALID ? 2 : 1; /* a --device that names no device is a bad flag */
    }
    print_header(ctx, &cfg);
    fflush(stdout);
    bool mismatch = false;
    qat_status st = QAT_OK;
    if (do_matmul) st = bench_matmul(ctx, &cfg, &mismatch);
    fflush(stdout);
    if (st == QAT_OK && do_train) st = bench_train(ctx, &cfg, &mismatch);
    fflush(stdout);
    if (st == QAT_OK && do_q4) st = bench_q4(ctx, &cfg, &mismatch);
    fflush(stdout);
    uint32_t validation = ctx->validation_messages;
    qat_ctx_free(ctx);
    if (st != QAT_OK) {
        fprintf(stderr, "qat-bench: %s\n", qat_error_message());
        return 1;
    }
    if (validation) {
        fprintf(stderr, "qat-bench: the Vulkan validation layers reported %u messages\n", validation);
        return 1;
    }
    if (mismatch) {
        fprintf(stderr, "qat-bench: qat's results disagree with the reference (rows marked MISMATCH); "
                        "their timings do not measure working code\n");
        return 1;
    }
    return 0;
}
