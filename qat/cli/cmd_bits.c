/* `qat bits`: per-layer weight bits under a budget (qat/mixed.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/cli/cli.h"
#include "qat/mixed.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qat bits --list\n"
            "       qat bits --ckpt FILE --strategy NAME --budget B --out FILE.map [OPTIONS]\n"
            "\n"
            "Chooses each layer's weight bits so the model fits a budget, and writes the\n"
            "bit map that 'qat ptq --bits-map' and 'qat qat --bits-map' read. Strategies that\n"
            "weigh layers by sensitivity measure it first on calibration batches. Prints\n"
            "each layer's sensitivity and chosen bits. docs/bit-strategies.md explains the\n"
            "strategies and how to write one.\n"
            "\n"
            "  --list               the strategies' names, one per line (below: what each does)\n"
            "  --ckpt FILE          FP32 checkpoint written by 'qat train' (required)\n"
            "  --strategy NAME      see --list (required)\n"
            "  --budget B           average weight bits, 1..8 (e.g. 3 or 2.5: every weight's\n"
            "                       codes at B bits plus the layers' scales and zero points,\n"
            "                       so uniform B bits fits exactly), or the whole\n"
            "                       checkpoint's tensor bytes (e.g. 120KB, 1.5MB, 200000B)\n"
            "                       (required except for manual)\n"
            "  --out FILE           the bit map to write (required)\n"
            "  --sensitivity NAME   hessian (Hutchinson trace, HAWQ-v2), fisher (mean squared\n"
            "                       gradient) or perturbation (loss change with one layer\n"
            "                       quantized) (default hessian; measured when the strategy\n"
            "                       needs it or this flag is given)\n"
            "  --candidates LIST    widths to choose from, e.g. 2,3,4,8 (default 2,3,4,5,6,7,8)\n"
            "  --unit U             what gets one width: layer (default), or rows:N, blocks of\n"
            "                       N output channels of a layer, so a layer's rows can mix\n"
            "                       widths (needs channel or group:G)\n"
            "  --map FILE           the manual strategy's map ('LAYER WBITS ABITS [GRAN]' lines)\n"
            "  --abits N            input bits written into the map, 2..8 or fp32 (default fp32)\n"
            "  --granularity G      weights: tensor, channel or group:G (default channel)\n"
            "  --weight-scheme S    symmetric or affine (default symmetric)\n"
            "  --observer NAME      weight ranges: minmax, ema, percentile or mse (default minmax)\n"
            "  --calib N            calibration batches (default 32; gpt: 8)\n"
            "  --batch N            batch size (default 128; gpt: 16 windows)\n"
            "  --max-probes N       Hutchinson probes at most (default 32; at least 8)\n"
            "  --sensitivity-cache FILE  reuse the costs measured into FILE when it was\n"
            "                       written for this checkpoint and these settings; else\n"
            "                       measure and (re)write it (for sweeps over budgets)\n"
            "  --probe-tol X        stop probing once every layer's trace has a standard error\n"
            "                       within X of its value (default 0.1)\n"
            "  --seed S             calibration sample and probes (default 1)\n"
            "  --val N              images held out of the training file (default 5000)\n"
            "  --data-dir DIR       Fashion-MNIST IDX files (gpt: the fortunes files)\n"
            "  --data SPEC          gpt: the corpus to calibrate on (e.g. fortunes:general)\n"
            "  --val-permille N     gpt: entries held out for validation (default 100)\n"
            "  --device N|NAME      Vulkan device\n"
            "  --quiet              only the summary line\n"
            "  -h, --help           this text\n");
}

static bool parse_candidates(const char *text, qat_bits_options *o)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", text);
    o->ncandidates = 0;
    int last = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int bits;
        if (!qat_bits_parse(tok, &bits) || bits == 0 || bits <= last || o->ncandidates == QAT_BITS_MAX_CANDIDATES)
            goto bad;
        o->candidates[o->ncandidates++] = last = bits;
    }
    if (o->ncandidates) return true;
bad:
    fprintf(stderr, "qat bits: --candidates: expected ascending widths within 2..8 separated by commas, got '%s'\n",
            text);
    return false;
}

static void print_result(const qat_bits_options *o, const qat_bits_result *r)
{
    if (!o->q.quiet) {
        if (r->measured)
            printf("%-24s %9s %13s %4s %9s %11s\n", "layer", "weights", qat_sensitivity_name(r->sensitivity), "bits",
                   "bytes", "cost");
        else
            printf("%-24s %9s %4s %9s\n", "layer", "weights", "bits", "bytes");
        for (int i = 0; i < r->nlayers; i++) {
            const qat_bits_layer_report *l = &r->layers[i];
            if (r->measured) {
                int k = 0;
                while (r->candidates[k] != l->bits) k++;
                printf("%-24s %9lld %13.4g %4d %9llu %11.4g\n", l->name, (long long)l->numel, l->sensitivity, l->bits,
                       (unsigned long long)l->bytes, l->cost[k]);
            } else {
                printf("%-24s %9lld %4d %9llu\n", l->name, (long long)l->numel, l->bits,
                       (unsigned long long)l->bytes);
            }
        }
    }
    printf("bits: %s: %llu of %llu bytes for the layers (%.3f average weight bits, %.3f with scales and zero points), "
           "model %llu bytes (fp32 %llu)", o->strategy, (unsigned long long)r->layer_bytes,
           (unsigned long long)r->layer_budget_bytes, r->avg_bits, r->bits_per_weight,
           (unsigned long long)r->model_bytes, (unsigned long long)r->fp32_bytes);
    if (r->from_cache) printf(", %s read from %s", qat_sensitivity_name(r->sensitivity), o->sensitivity_cache);
    else if (r->measured) printf(", %s measured in %.1f s", qat_sensitivity_name(r->sensitivity), r->measure_seconds);
    printf("\nwrote %s\n", o->out_map);
}

int cmd_bits(int argc, char **argv)
{
    static const struct option options[] = {
        { "list", no_argument, NULL, 'L' },             { "ckpt", required_argument, NULL, 'c' },
        { "strategy", required_argument, NULL, 'S' },   { "budget", required_argument, NULL, 'B' },
        { "out", required_argument, NULL, 'o' },        { "sensitivity", required_argument, NULL, 'e' },
        { "candidates", required_argument, NULL, 'k' }, { "map", required_argument, NULL, 'm' },
        { "abits", required_argument, NULL, 'a' },      { "granularity", required_argument, NULL, 'g' },
        { "weight-scheme", required_argument, NULL, 'W' }, { "observer", required_argument, NULL, 'O' },
        { "calib", required_argument, NULL, 'C' },      { "batch", required_argument, NULL, 'b' },
        { "max-probes", required_argument, NULL, 'P' }, { "probe-tol", required_argument, NULL, 't' },
        { "seed", required_argument, NULL, 's' },       { "val", required_argument, NULL, 'v' },
        { "data-dir", required_argument, NULL, 'd' },   { "data", required_argument, NULL, 'T' },
        { "val-permille", required_argument, NULL, 'V' }, { "device", required_argument, NULL, 'D' },
        { "quiet", no_argument, NULL, 'q' },            { "help", no_argument, NULL, 'h' },
        { "sensitivity-cache", required_argument, NULL, 'K' },
        { "unit", required_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    qat_bits_options o = {
        .q = { .granularity = QAT_GRAN_CHANNEL, .weight_symmetric = true, .observer = QAT_OBS_MINMAX, .seed = 1,
               .val_count = 5000, .val_permille = 100 },
        .sensitivity = QAT_SENSITIVITY_HESSIAN,
    };
    bool list = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        long v;
        double x;
        switch (c) {
        case 'L': list = true; break;
        case 'c': o.q.ckpt = optarg; break;
        case 'S': o.strategy = optarg; break;
        case 'B': o.budget = optarg; break;
        case 'o': o.out_map = optarg; break;
        case 'e':
            if (!qat_sensitivity_parse(optarg, &o.sensitivity)) {
                fprintf(stderr, "qat bits: --sensitivity: expected hessian, fisher or perturbation, got '%s'\n", optarg);
                return 2;
            }
            o.sensitivity_set = true;
            break;
        case 'k': if (!parse_candidates(optarg, &o)) return 2; break;
        case 'm': o.q.bits_map = optarg; break;
        case 'a':
            if (!qat_bits_parse(optarg, &o.q.abits)) {
                fprintf(stderr, "qat bits: --abits: expected %d..%d or fp32, got '%s'\n", QAT_QBITS_MIN, QAT_QBITS_MAX,
                        optarg);
                return 2;
            }
            break;
        case 'g':
            if (!qat_granularity_parse(optarg, &o.q.granularity, &o.q.group)) {
                fprintf(stderr, "qat bits: --granularity: expected tensor, channel or group:G, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'W':
            if (strcmp(optarg, "symmetric") == 0) o.q.weight_symmetric = true;
            else if (strcmp(optarg, "affine") == 0) o.q.weight_symmetric = false;
            else {
                fprintf(stderr, "qat bits: --weight-scheme: expected symmetric or affine, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'O':
            if (!qat_observer_parse(optarg, &o.q.observer)) {
                fprintf(stderr, "qat bits: --observer: expected minmax, ema, percentile or mse, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'C': if (!cli_parse_int("bits", "--calib", optarg, 1, 100000, &v)) return 2; o.q.calib_batches = (int)v; break;
        case 'b': if (!cli_parse_int("bits", "--batch", optarg, 1, 65536, &v)) return 2; o.q.batch = (int)v; break;
        case 'P':
            if (!cli_parse_int("bits", "--max-probes", optarg, 2, 100000, &v)) return 2;
            o.max_probes = (int)v;
            break;
        case 't': if (!cli_parse_float("bits", "--probe-tol", optarg, 1e-6, 10, &x)) return 2; o.probe_tol = x; break;
        case 's': if (!cli_parse_u64("bits", "--seed", optarg, &o.q.seed)) return 2; break;
        case 'v': if (!cli_parse_int("bits", "--val", optarg, 0, 59000, &v)) return 2; o.q.val_count = (uint32_t)v; break;
        case 'd': o.q.data_dir = optarg; break;
        case 'T': o.q.data_spec = optarg; break;
        case 'V':
            if (!cli_parse_int("bits", "--val-permille", optarg, 1, 999, &v)) return 2;
            o.q.val_permille = (uint32_t)v;
            break;
        case 'D': o.q.device = optarg; break;
        case 'q': o.q.quiet = true; break;
        case 'K': o.sensitivity_cache = optarg; break;
        case 'U':
            if (!qat_bits_unit_parse(optarg, &o.unit_rows)) {
                fprintf(stderr, "qat bits: --unit: expected layer or rows:N (N in 1..65536), got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            printf("\nstrategies:\n");
            for (int i = 0; qat_bits_strategies[i]; i++)
                printf("  %-10s %s\n", qat_bits_strategies[i]->name, qat_bits_strategies[i]->summary);
            return 0;
        default: return cli_bad_option("bits", c, argv[optind - 1]);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qat bits: unexpected argument '%s' (see 'qat bits --help')\n", argv[optind]);
        return 2;
    }
    if (list) {
        for (int i = 0; qat_bits_strategies[i]; i++) printf("%s\n", qat_bits_strategies[i]->name);
        return 0;
    }
    const char *missing = !o.q.ckpt ? "--ckpt" : !o.strategy ? "--strategy" : !o.out_map ? "--out" : NULL;
    if (missing) {
        fprintf(stderr, "qat bits: %s is required (see 'qat bits --help')\n", missing);
        return 2;
    }
    if (o.max_probes && o.max_probes < 8) o.min_probes = o.max_probes;
    qat_bits_result r;
    if (qat_bits_run(&o, &r) != QAT_OK) return cli_fail("bits");
    print_result(&o, &r);
    return 0;
}
