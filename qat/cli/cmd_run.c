/* `qat run` (an experiment's grid) and `qat report` (its report again). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/cli/cli.h"
#include "qat/runner.h"

static void run_usage(FILE *out)
{
    fprintf(out,
            "usage: qat run [OPTIONS] experiments/NAME.ini\n"
            "\n"
            "Runs an experiment's grid (an FP32 baseline per seed, then its PTQ and QAT\n"
            "runs; for the gpt, pretraining, then fine-tuning, PTQ, QAT and QLoRA on the\n"
            "target domain) into runs/NAME/RUN_ID/, writes runs/NAME/results.csv and the\n"
            "report runs/NAME/report.html. Finished runs are reused: a second call, or one\n"
            "after the runner was killed, redoes only what had not finished.\n"
            "\n"
            "  -n, --dry-run        list the runs the grid expands to, and which are finished\n"
            "      --shard I/N      run only shard I of N (the runs they start from included);\n"
            "                       copy the shards' runs/NAME/ directories together and run\n"
            "                       'qat report runs/NAME' to merge them\n"
            "      --runs-dir DIR   where runs/NAME goes (default runs)\n"
            "      --no-report      stop after results.csv\n"
            "      --data-dir DIR   Fashion-MNIST IDX files (gpt: the fortunes files)\n"
            "      --device N|NAME  Vulkan device\n"
            "      --quiet          only errors\n"
            "  -h, --help           this text\n");
}

static bool parse_shard(const char *text, int *index, int *count)
{
    char *end;
    long i = strtol(text, &end, 10);
    if (end == text || *end != '/') return false;
    const char *rest = end + 1;
    long n = strtol(rest, &end, 10);
    if (end == rest || *end != '\0' || n < 1 || n > 10000 || i < 1 || i > n) return false;
    *index = (int)i;
    *count = (int)n;
    return true;
}

int cmd_run(int argc, char **argv)
{
    static const struct option options[] = {
        { "dry-run", no_argument, NULL, 'n' },        { "shard", required_argument, NULL, 's' },
        { "runs-dir", required_argument, NULL, 'r' }, { "no-report", no_argument, NULL, 'N' },
        { "data-dir", required_argument, NULL, 'd' }, { "device", required_argument, NULL, 'D' },
        { "quiet", no_argument, NULL, 'q' },          { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    qat_runner_options o = { .shard_index = 1, .shard_count = 1 };
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":hn", options, NULL)) != -1) {
        switch (c) {
        case 'n': o.dry_run = true; break;
        case 's':
            if (!parse_shard(optarg, &o.shard_index, &o.shard_count)) {
                fprintf(stderr, "qat run: --shard: expected I/N with 1 <= I <= N, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'r': o.runs_root = optarg; break;
        case 'N': o.no_report = true; break;
        case 'd': o.data_dir = optarg; break;
        case 'D': o.device = optarg; break;
        case 'q': o.quiet = true; break;
        case 'h': run_usage(stdout); return 0;
        default: return cli_bad_option("run", c, argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "qat run: an experiment file is required (e.g. experiments/fashion-mnist.ini)\n");
        return 2;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "qat run: unexpected argument '%s' (see 'qat run --help')\n", argv[optind + 1]);
        return 2;
    }
    o.spec_path = argv[optind];
    if (qat_runner_run(&o) != QAT_OK) return cli_fail("run");
    return 0;
}

static void report_usage(FILE *out)
{
    fprintf(out,
            "usage: qat report [OPTIONS] runs/NAME\n"
            "\n"
            "Rebuilds runs/NAME/results.csv from the finished runs of the grid in\n"
            "runs/NAME/experiment.ini (merging shards copied there), then report.html,\n"
            "report.md and plots/, without rerunning anything.\n"
            "\n"
            "      --data-dir DIR   Fashion-MNIST IDX files (for the image grid)\n"
            "      --device N|NAME  Vulkan device (for the image grid's predictions)\n"
            "      --quiet          only errors\n"
            "  -h, --help           this text\n");
}

int cmd_report(int argc, char **argv)
{
    static const struct option options[] = {
        { "data-dir", required_argument, NULL, 'd' }, { "device", required_argument, NULL, 'D' },
        { "quiet", no_argument, NULL, 'q' },          { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *data_dir = NULL, *device = NULL;
    bool quiet = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'd': data_dir = optarg; break;
        case 'D': device = optarg; break;
        case 'q': quiet = true; break;
        case 'h': report_usage(stdout); return 0;
        default: return cli_bad_option("report", c, argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "qat report: a run directory is required (e.g. runs/fashion-mnist)\n");
        return 2;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "qat report: unexpected argument '%s' (see 'qat report --help')\n", argv[optind + 1]);
        return 2;
    }
    if (qat_runner_report(argv[optind], device, data_dir, quiet) != QAT_OK) return cli_fail("report");
    return 0;
}
