/* `qat ptq` and `qat qat`: they share the flags that say what to quantize. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "qat/cli/cli.h"
#include "qat/quantize.h"

static const char common_help[] =
    "  --ckpt FILE          FP32 checkpoint written by 'qat train' (required)\n"
    "  --out DIR            output directory (required; created if missing)\n"
    "  --wbits N            weight bits, 2..8 or fp32 (required); on a gpt, of the\n"
    "                       blocks' linear layers (its head stays FP32 unless a\n"
    "                       --bits-map names it)\n"
    "  --abits N            bits of each quantized layer's input, 2..8 or fp32 (required)\n"
    "  --granularity G      weights: tensor, channel or group:G along the input\n"
    "                       (default channel; inputs are always per tensor)\n"
    "  --weight-scheme S    symmetric or affine (default symmetric)\n"
    "  --act-scheme S       symmetric or affine (default affine)\n"
    "  --bits-map FILE      per-layer bits: lines 'LAYER WBITS ABITS [GRANULARITY]';\n"
    "                       layers it does not list keep --wbits/--abits\n"
    "  --ends-8bit          keep the first and last layers at 8 bits (W8A8)\n"
    "  --observer NAME      minmax, ema, percentile or mse (default minmax)\n"
    "  --calib N            training batches for calibration (default 32; gpt: 8)\n"
    "  --batch N            batch size (default 128; gpt: 16 windows)\n"
    "  --seed S             seed of the calibration sample (and QAT shuffling; default 1)\n"
    "  --val N              images held out of the training file, as in training\n"
    "                       (default 5000)\n"
    "  --data-dir DIR       Fashion-MNIST IDX files (gpt: the fortunes files)\n"
    "gpt checkpoints (text):\n"
    "  --data SPEC          corpus to calibrate, fine-tune and evaluate on (required;\n"
    "                       e.g. fortunes:tech); val_bpc in summary.json\n"
    "  --forget-data SPEC   a second corpus evaluated before and after (forgetting;\n"
    "                       e.g. fortunes:general): forget_val_bpc\n"
    "  --val-permille N     entries held out for validation (default 100)\n"
    "  --device N|NAME      Vulkan device\n"
    "  --quiet              no per-epoch lines\n"
    "  -h, --help           this text\n";

static void ptq_usage(FILE *out)
{
    fprintf(out,
            "usage: qat ptq --ckpt FILE --wbits N --abits N --out DIR [OPTIONS]\n"
            "\n"
            "Post-training quantization: calibrates activation ranges on training batches,\n"
            "quantizes the weights by round-to-nearest or GPTQ, and writes DIR/summary.json,\n"
            "DIR/layers.csv and DIR/model.safetensors (codes, scales, zero points; see\n"
            "docs/checkpoints.md).\n"
            "\n"
            "  --method NAME        rtn or gptq (default rtn)\n%s",
            common_help);
}

static void qat_usage(FILE *out)
{
    fprintf(out,
            "usage: qat qat --ckpt FILE --wbits N --abits N --out DIR [OPTIONS]\n"
            "\n"
            "Quantization-aware training: starts from the FP32 checkpoint with scales set as\n"
            "'qat ptq --method rtn' sets them, fine-tunes with fake quantization in the loop,\n"
            "and writes DIR/metrics.csv, DIR/summary.json, DIR/layers.csv and\n"
            "DIR/model.safetensors.\n"
            "\n"
            "  --quantizer NAME     ste (fixed scales), lsq (learned scales, kept at least\n"
            "                       FLT_EPSILON as PyTorch does) or pact (learned input\n"
            "                       clip; fixed weight scales) (default lsq)\n"
            "  --epochs N           default 3\n"
            "  --optimizer NAME     adamw or sgd (default adamw)\n"
            "  --lr X               peak learning rate (default 1e-4 adamw, 0.005 sgd)\n"
            "  --momentum X         SGD momentum (default 0.9)\n"
            "  --weight-decay X     default 0\n"
            "  --schedule NAME      cosine or constant (default cosine)\n"
            "  --warmup N           cosine warm-up steps (default 0)\n"
            "  --train-limit N      train on the first N training images only\n"
            "  --steps N            gpt: optimizer steps (default 300)\n"
            "  --eval-every N       gpt: validation every N steps (default 0: at the end)\n%s",
            common_help);
}

static bool parse_bits(const char *cmd, const char *flag, const char *value, int *bits)
{
    if (qat_bits_parse(value, bits)) return true;
    fprintf(stderr, "qat %s: %s: expected %d..%d or fp32, got '%s'\n", cmd, flag, QAT_QBITS_MIN, QAT_QBITS_MAX,
            value);
    return false;
}

static bool parse_scheme(const char *cmd, const char *flag, const char *value, bool *symmetric)
{
    if (strcmp(value, "symmetric") == 0) *symmetric = true;
    else if (strcmp(value, "affine") == 0) *symmetric = false;
    else {
        fprintf(stderr, "qat %s: %s: expected symmetric or affine, got '%s'\n", cmd, flag, value);
        return false;
    }
    return true;
}

static int run_quantize(int argc, char **argv, bool is_qat)
{
    const char *cmd = is_qat ? "qat" : "ptq";
    static const struct option options[] = {
        { "ckpt", required_argument, NULL, 'c' },       { "out", required_argument, NULL, 'o' },
        { "wbits", required_argument, NULL, 'w' },      { "abits", required_argument, NULL, 'a' },
        { "granularity", required_argument, NULL, 'g' }, { "weight-scheme", required_argument, NULL, 'W' },
        { "act-scheme", required_argument, NULL, 'A' }, { "bits-map", required_argument, NULL, 'B' },
        { "ends-8bit", no_argument, NULL, 'E' },        { "observer", required_argument, NULL, 'O' },
        { "calib", required_argument, NULL, 'C' },      { "batch", required_argument, NULL, 'b' },
        { "seed", required_argument, NULL, 's' },       { "val", required_argument, NULL, 'v' },
        { "data-dir", required_argument, NULL, 'd' },   { "device", required_argument, NULL, 'D' },
        { "quiet", no_argument, NULL, 'q' },            { "help", no_argument, NULL, 'h' },
        { "method", required_argument, NULL, 'm' },     { "quantizer", required_argument, NULL, 'Q' },
        { "epochs", required_argument, NULL, 'e' },     { "optimizer", required_argument, NULL, 'P' },
        { "lr", required_argument, NULL, 'l' },         { "momentum", required_argument, NULL, 'M' },
        { "weight-decay", required_argument, NULL, 'y' }, { "schedule", required_argument, NULL, 'S' },
        { "warmup", required_argument, NULL, 'u' },     { "train-limit", required_argument, NULL, 'L' },
        { "data", required_argument, NULL, 'T' },       { "forget-data", required_argument, NULL, 'F' },
        { "val-permille", required_argument, NULL, 'V' }, { "steps", required_argument, NULL, 'n' },
        { "eval-every", required_argument, NULL, 'X' },
        { NULL, 0, NULL, 0 },
    };
    /* Flags of the other command are refused by name. */
    static const char ptq_only[] = "m", qat_only[] = "QePlMySuLnX";
    qat_quantize_options o = {
        .granularity = QAT_GRAN_CHANNEL, .weight_symmetric = true, .observer = QAT_OBS_MINMAX,
        .calib_batches = 0, .batch = 0, .seed = 1, .val_count = 5000, .quantizer = QAT_QUANTIZER_LSQ,
        .epochs = 3, .val_permille = 100, .steps = 300,
    };
    bool have_wbits = false, have_abits = false;
    const char *optimizer = "adamw", *schedule = "cosine";
    double lr = -1, momentum = -1, weight_decay = 0;
    long warmup = 0;
    opterr = 0;
    optind = 1;
    int c, index = -1;
    while ((c = getopt_long(argc, argv, ":h", options, &index)) != -1) {
        long v;
        if (c != ':' && c != '?' && strchr(is_qat ? ptq_only : qat_only, c)) {
            fprintf(stderr, "qat %s: option '--%s' belongs to 'qat %s' (see 'qat %s --help')\n", cmd,
                    options[index].name, is_qat ? "ptq" : "qat", cmd);
            return 2;
        }
        switch (c) {
        case 'c': o.ckpt = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'w': if (!parse_bits(cmd, "--wbits", optarg, &o.wbits)) return 2; have_wbits = true; break;
        case 'a': if (!parse_bits(cmd, "--abits", optarg, &o.abits)) return 2; have_abits = true; break;
        case 'g':
            if (!qat_granularity_parse(optarg, &o.granularity, &o.group)) {
                fprintf(stderr, "qat %s: --granularity: expected tensor, channel or group:G, got '%s'\n", cmd,
                        optarg);
                return 2;
            }
            break;
        case 'W': if (!parse_scheme(cmd, "--weight-scheme", optarg, &o.weight_symmetric)) return 2; break;
        case 'A': if (!parse_scheme(cmd, "--act-scheme", optarg, &o.act_symmetric)) return 2; break;
        case 'B': o.bits_map = optarg; break;
        case 'E': o.ends_8bit = true; break;
        case 'O':
            if (!qat_observer_parse(optarg, &o.observer)) {
                fprintf(stderr, "qat %s: --observer: expected minmax, ema, percentile or mse, got '%s'\n", cmd,
                        optarg);
                return 2;
            }
            break;
        case 'C': if (!cli_parse_int(cmd, "--calib", optarg, 1, 100000, &v)) return 2; o.calib_batches = (int)v; break;
        case 'b': if (!cli_parse_int(cmd, "--batch", optarg, 1, 65536, &v)) return 2; o.batch = (int)v; break;
        case 's': if (!cli_parse_u64(cmd, "--seed", optarg, &o.seed)) return 2; break;
        case 'v': if (!cli_parse_int(cmd, "--val", optarg, 0, 59000, &v)) return 2; o.val_count = (uint32_t)v; break;
        case 'd': o.data_dir = optarg; break;
        case 'D': o.device = optarg; break;
        case 'q': o.quiet = true; break;
        case 'h': (is_qat ? qat_usage : ptq_usage)(stdout); return 0;
        case 'm':
            if (strcmp(optarg, "rtn") == 0) o.gptq = false;
            else if (strcmp(optarg, "gptq") == 0) o.gptq = true;
            else {
                fprintf(stderr, "qat ptq: --method: expected rtn or gptq, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'Q':
            if (!qat_quantizer_parse(optarg, &o.quantizer)) {
                fprintf(stderr, "qat qat: --quantizer: expected ste, lsq or pact, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'e': if (!cli_parse_int(cmd, "--epochs", optarg, 1, 100000, &v)) return 2; o.epochs = (int)v; break;
        case 'P': optimizer = optarg; break;
        case 'l': if (!cli_parse_float(cmd, "--lr", optarg, 1e-12, 100, &lr)) return 2; break;
        case 'M': if (!cli_parse_float(cmd, "--momentum", optarg, 0, 0.999999, &momentum)) return 2; break;
        case 'y': if (!cli_parse_float(cmd, "--weight-decay", optarg, 0, 10, &weight_decay)) return 2; break;
        case 'S': schedule = optarg; break;
        case 'u': if (!cli_parse_int(cmd, "--warmup", optarg, 0, 100000000, &warmup)) return 2; break;
        case 'L': if (!cli_parse_int(cmd, "--train-limit", optarg, 1, 60000, &v)) return 2; o.train_limit = (uint32_t)v; break;
        case 'T': o.data_spec = optarg; break;
        case 'F': o.forget_spec = optarg; break;
        case 'V': if (!cli_parse_int(cmd, "--val-permille", optarg, 1, 999, &v)) return 2; o.val_permille = (uint32_t)v; break;
        case 'n': if (!cli_parse_int(cmd, "--steps", optarg, 1, 100000000, &v)) return 2; o.steps = (int)v; break;
        case 'X': if (!cli_parse_int(cmd, "--eval-every", optarg, 0, 100000000, &v)) return 2; o.eval_every = (int)v; break;
        default: return cli_bad_option(cmd, c, argv[optind - 1]);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qat %s: unexpected argument '%s' (see 'qat %s --help')\n", cmd, argv[optind], cmd);
        return 2;
    }
    const char *missing = !o.ckpt ? "--ckpt" : !o.out_dir ? "--out" : !have_wbits ? "--wbits" : !have_abits ? "--abits" : NULL;
    if (missing) {
        fprintf(stderr, "qat %s: %s is required (see 'qat %s --help')\n", cmd, missing, cmd);
        return 2;
    }
    if (is_qat) {
        qat_optim_kind kind;
        if (!cli_parse_optimizer(cmd, optimizer, &kind)) return 2;
        o.optim = qat_optim_defaults(kind, lr > 0 ? lr : kind == QAT_OPTIM_ADAMW ? 1e-4 : 0.005);
        if (momentum >= 0) o.optim.momentum = momentum;
        o.optim.weight_decay = weight_decay;
        if (!cli_parse_schedule(cmd, schedule, &o.optim.schedule)) return 2;
        o.optim.warmup_steps = (int)warmup;
    }
    qat_quantize_result r;
    if ((is_qat ? qat_qat_run : qat_ptq_run)(&o, &r) != QAT_OK) return cli_fail(cmd);
    if (o.data_spec)
        printf("%s: val_bpc %.4f (fp32 %.4f)", cmd, r.val_bpc, r.fp32_val_bpc);
    else
        printf("%s: test_acc %.4f (fp32 %.4f)", cmd, r.test.accuracy, r.fp32_test.accuracy);
    printf("  model %llu bytes (fp32 %llu, %.2fx smaller)  %.1f s\n", (unsigned long long)r.model_bytes,
           (unsigned long long)r.fp32_bytes, r.model_bytes ? (double)r.fp32_bytes / (double)r.model_bytes : 0.0,
           r.wall_seconds);
    printf("results in %s/ (summary.json, layers.csv, model.safetensors%s)\n", o.out_dir,
           is_qat ? ", metrics.csv" : "");
    return 0;
}

int cmd_ptq(int argc, char **argv) { return run_quantize(argc, argv, false); }
int cmd_qat(int argc, char **argv) { return run_quantize(argc, argv, true); }
