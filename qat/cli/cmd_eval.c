#include <getopt.h>
#include <stdio.h>

#include "qat/cli/cli.h"
#include "qat/textlm.h"
#include "qat/train.h"

static void eval_usage(FILE *out)
{
    fprintf(out,
            "usage: qat eval --ckpt FILE [OPTIONS]\n"
            "       qat eval --ckpt FILE --data fortunes:DOMAIN [OPTIONS]\n"
            "\n"
            "Prints the test accuracy (and mean cross-entropy) of an mlp or cnn checkpoint\n"
            "on the 10,000 Fashion-MNIST test images, or the validation bits per character\n"
            "of a gpt checkpoint on a text corpus.\n"
            "\n"
            "  --ckpt FILE        model.safetensors written by qat\n"
            "  --data SPEC        gpt: the corpus (fortunes:general, fortunes:tech, ...)\n"
            "  --val-permille N   gpt: entries held out for validation (default 100)\n"
            "  --batch N          gpt: windows per forward pass (default 16)\n"
            "  --data-dir DIR     Fashion-MNIST IDX files, or the fortunes files\n"
            "  --device N|NAME    Vulkan device\n"
            "  -h, --help         this text\n");
}

int cmd_eval(int argc, char **argv)
{
    static const struct option options[] = {
        { "ckpt", required_argument, NULL, 'c' },    { "data-dir", required_argument, NULL, 'd' },
        { "device", required_argument, NULL, 'D' },  { "help", no_argument, NULL, 'h' },
        { "data", required_argument, NULL, 'T' },    { "val-permille", required_argument, NULL, 'V' },
        { "batch", required_argument, NULL, 'b' },
        { NULL, 0, NULL, 0 },
    };
    const char *ckpt = NULL, *data_dir = NULL, *device = NULL, *spec = NULL;
    long val_permille = 100, batch = 16;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'D': device = optarg; break;
        case 'T': spec = optarg; break;
        case 'V': if (!cli_parse_int("eval", "--val-permille", optarg, 1, 999, &val_permille)) return 2; break;
        case 'b': if (!cli_parse_int("eval", "--batch", optarg, 1, 65536, &batch)) return 2; break;
        case 'h': eval_usage(stdout); return 0;
        default: return cli_bad_option("eval", c, argv[optind - 1]);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "qat eval: unexpected argument '%s' (see 'qat eval --help')\n", argv[optind]);
        return 2;
    }
    if (!ckpt) {
        fprintf(stderr, "qat eval: --ckpt is required\n");
        return 2;
    }
    if (spec) {
        qat_text_eval t;
        if (qat_eval_text_checkpoint(ckpt, spec, data_dir, (uint32_t)val_permille, device, (int)batch, &t) != QAT_OK)
            return cli_fail("eval");
        printf("val_bpc %.4f  val_loss %.4f  (%llu bytes of %s)\n", t.bpc, t.loss, (unsigned long long)t.count,
               spec);
        return 0;
    }
    qat_eval_result r;
    if (qat_eval_checkpoint(ckpt, data_dir, device, &r) != QAT_OK) return cli_fail("eval");
    printf("test_acc %.4f  test_loss %.4f  (%u images)\n", r.accuracy, r.loss, r.count);
    return 0;
}
