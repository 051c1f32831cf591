/* `qat qlora`: LoRA fine-tuning of a gpt over a frozen 4-bit (or FP32) base. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "datasets/fortunes.h"
#include "qat/cli/cli.h"
#include "qat/qlora.h"

static void qlora_usage(FILE *out)
{
    fprintf(out,
            "usage: qat qlora --ckpt FILE --data fortunes:DOMAIN --out DIR [OPTIONS]\n"
            "\n"
            "Fine-tunes a gpt checkpoint on a text corpus through LoRA adapters while its\n"
            "own weights stay frozen: the adapted layers' weights live on the device only\n"
            "as 4-bit codes (QLoRA: NF4 blocks of 64, absmax double-quantized), or in FP32\n"
            "for plain LoRA. Writes DIR/adapters.safetensors, DIR/base.safetensors,\n"
            "DIR/metrics.csv and DIR/summary.json (val_bpc, base_val_bpc, forget_val_bpc,\n"
            "trainable_params, base_bytes_per_param, peak_device_bytes).\n"
            "\n"
            "  --ckpt FILE          FP32 gpt checkpoint written by 'qat train' (required)\n"
            "  --data SPEC          corpus to fine-tune and evaluate on (required; e.g.\n"
            "                       fortunes:tech)\n"
            "  --out DIR            output directory (required; created if missing)\n"
            "  --base TYPE          nf4, fp4 or fp32 (default nf4)\n"
            "  --no-double-quant    keep the 4-bit base's absmax values in FP32\n"
            "  --rank R             adapter rank (default 4)\n"
            "  --alpha A            adapter scaling alpha (updates scaled by alpha/rank;\n"
            "                       default 8)\n"
            "  --dropout P          dropout on the adapters' input (default 0)\n"
            "  --targets WHICH      blocks (every linear layer of the blocks) or all (the\n"
            "                       output head too) (default blocks)\n"
            "  --steps N            optimizer steps (default 300)\n"
            "  --batch N            windows per step (default 16)\n"
            "  --lr X               AdamW peak learning rate (default 1e-3)\n"
            "  --weight-decay X     default 0\n"
            "  --schedule NAME      cosine or constant (default cosine)\n"
            "  --warmup N           cosine warm-up steps (default 30)\n"
            "  --eval-every N       validation every N steps (default 0: at the end)\n"
            "  --forget-data SPEC   a second corpus evaluated before and after (default\n"
            "                       fortunes:general; 'none' to skip)\n"
            "  --merge              also write DIR/merged.safetensors: an FP32 checkpoint\n"
            "                       with the adapters folded into the dequantized base\n"
            "  --seed S             adapter initialisation, batches, dropout (default 1)\n"
            "  --val-permille N     entries held out for validation (default 100)\n"
            "  --data-dir DIR       the fortunes files\n"
            "  --device N|NAME      Vulkan device\n"
            "  --quiet              no per-evaluation lines\n"
            "  -h, --help           this text\n");
}

int cmd_qlora(int argc, char **argv)
{
    static const struct option options[] = {
        { "ckpt", required_argument, NULL, 'c' },     { "data", required_argument, NULL, 'T' },
        { "out", required_argument, NULL, 'o' },      { "base", required_argument, NULL, 'B' },
        { "no-double-quant", no_argument, NULL, 'N' }, { "rank", required_argument, NULL, 'r' },
        { "alpha", required_argument, NULL, 'a' },    { "dropout", required_argument, NULL, 'p' },
        { "targets", required_argument, NULL, 't' },  { "steps", required_argument, NULL, 'n' },
        { "batch", required_argument, NULL, 'b' },    { "lr", required_argument, NULL, 'l' },
        { "weight-decay", required_argument, NULL, 'w' }, { "schedule", required_argument, NULL, 'S' },
        { "warmup", required_argument, NULL, 'W' },   { "eval-every", required_argument, NULL, 'E' },
        { "forget-data", required_argument, NULL, 'F' }, { "merge", no_argument, NULL, 'm' },
        { "seed", required_argument, NULL, 's' },     { "val-permille", required_argument, NULL, 'V' },
        { "data-dir", required_argument, NULL, 'd' }, { "device", required_argument, NULL, 'D' },
        { "quiet", no_argument, NULL, 'q' },          { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cmd = "qlora";
    qat_qlora_options o = { .base = QAT_LORA_BASE_NF4, .double_quant = true, .rank = 4, .alpha = 8, .steps = 300,
                            .batch = 16, .seed = 1, .val_permille = 100, .forget_spec = "fortunes:general" };
    const char *schedule = "cosine";
    double lr = 1e-3, weight_decay = 0;
    long warmup = 30;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        long v;
        switch (c) {
        case 'c': o.ckpt = optarg; break;
        case 'T': o.data_spec = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'B':
            if (!qat_lora_base_parse(optarg, &o.base)) {
                fprintf(stderr, "qat qlora: --base: expected nf4, fp4 or fp32, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'N': o.double_quant = false; break;
        case 'r': if (!cli_parse_int(cmd, "--rank", optarg, 1, 4096, &v)) return 2; o.rank = (int)v; break;
        case 'a': if (!cli_parse_float(cmd, "--alpha", optarg, 1e-6, 1e6, &o.alpha)) return 2; break;
        case 'p': if (!cli_parse_float(cmd, "--dropout", optarg, 0, 0.99, &o.dropout)) return 2; break;
        case 't':
            if (strcmp(optarg, "blocks") == 0) o.adapt_head = false;
            else if (strcmp(optarg, "all") == 0) o.adapt_head = true;
            else {
                fprintf(stderr, "qat qlora: --targets: expected blocks or all, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'n': if (!cli_parse_int(cmd, "--steps", optarg, 1, 100000000, &v)) return 2; o.steps = (int)v; break;
        case 'b': if (!cli_parse_int(cmd, "--batch", optarg, 1, 65536, &v)) return 2; o.batch = (int)v; break;
        case 'l': if (!cli_parse_float(cmd, "--lr", optarg, 1e-12, 100, &lr)) return 2; break;
        case 'w': if (!cli_parse_float(cmd, "--weight-decay", optarg, 0, 10, &weight_decay)) return 2; break;
        case 'S': schedule = optarg; break;
        case 'W': if (!cli_parse_int(cmd, "--warmup", optarg, 0, 100000000, &warmup)) return 2; break;
        case 'E': if (!cli_parse_int(cmd, "--eval-every", optarg, 0, 100000000, &v)) return 2; o.eval_every = (int)v; break;
        case 'F': o.forget_spec = strcmp(optarg, "none") == 0 ? NULL : optarg; break;
        case 'm': o.merge = true; break;
        case 's': if (!cli_parse_u64(cmd, "--seed", optarg, &o.seed)) return 2; break;
        case 'V': if (!cli_parse_int(cmd, "--val-permille", optarg, 1, 999, &v)) return 2; o.val_permille = (uint32_t)v; break;
        case 'd': o.data_dir = optarg; break;
        case 'D': o.device = optarg; break;
        case 'q': o.quiet = true; break;
        case 'h': qlora_usage(stdout); return 0;
        default: return cli_bad_option(cmd, c, argv[optind - 1]);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qat qlora: unexpected argument '%s' (see 'qat qlora --help')\n", argv[optind]);
        return 2;
    }
    const char *missing = !o.ckpt ? "--ckpt" : !o.data_spec ? "--data" : !o.out_dir ? "--out" : NULL;
    if (missing) {
        fprintf(stderr, "qat qlora: %s is required (see 'qat qlora --help')\n", missing);
        return 2;
    }
    if (!qat_text_spec_is_fortunes(o.data_spec)) {
        fprintf(stderr, "qat qlora: --data: '%s' is not a text corpus (expected fortunes:DOMAIN)\n", o.data_spec);
        return 2;
    }
    if (o.forget_spec && !qat_text_spec_is_fortunes(o.forget_spec)) {
        fprintf(stderr, "qat qlora: --forget-data: '%s' is not a text corpus (expected fortunes:DOMAIN or none)\n",
                o.forget_spec);
        return 2;
    }
    if (o.base == QAT_LORA_BASE_FP32 && !o.double_quant) {
        fprintf(stderr, "qat qlora: --no-double-quant applies to the 4-bit bases (nf4, fp4)\n");
        return 2;
    }
    o.optim = qat_optim_defaults(QAT_OPTIM_ADAMW, lr);
    o.optim.weight_decay = weight_decay;
    if (!cli_parse_schedule(cmd, schedule, &o.optim.schedule)) return 2;
    o.optim.warmup_steps = (int)warmup;
    qat_qlora_result r;
    if (qat_qlora_run(&o, &r) != QAT_OK) return cli_fail(cmd);
    printf("qlora: val_bpc %.4f (base %.4f)", r.val_bpc, r.base_val_bpc);
    if (o.forget_spec) printf("  %s %.4f (base %.4f)", o.forget_spec, r.forget_val_bpc, r.base_forget_val_bpc);
    printf("  trainable %lld (%.2f%%)  base %.3f bytes/param  %.1f s\n", (long long)r.trainable_params,
           100.0 * (double)r.trainable_params / (double)r.params,
           (double)r.base_device_bytes / (double)r.base_params, r.wall_seconds);
    printf("results in %s/ (summary.json, metrics.csv, adapters.safetensors, base.safetensors%s)\n", o.out_dir,
           o.merge ? ", merged.safetensors" : "");
    return 0;
}
