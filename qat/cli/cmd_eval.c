#include <getopt.h>
#include <stdio.h>

#include "qat/cli/cli.h"
#include "qat/train.h"

static void eval_usage(FILE *out)
{
    fprintf(out,
            "usage: qat eval --ckpt FILE [OPTIONS]\n"
            "\n"
            "Prints the test accuracy (and mean cross-entropy) of a checkpoint on the\n"
            "10,000 Fashion-MNIST test images.\n"
            "\n"
            "  --ckpt FILE        model.safetensors written by qat\n"
            "  --data-dir DIR     Fashion-MNIST IDX files\n"
            "  --device N|NAME    Vulkan device\n"
            "  -h, --help         this text\n");
}

int cmd_eval(int argc, char **argv)
{
    static const struct option options[] = {
        { "ckpt", required_argument, NULL, 'c' },    { "data-dir", required_argument, NULL, 'd' },
        { "device", required_argument, NULL, 'D' },  { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *ckpt = NULL, *data_dir = NULL, *device = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'D': device = optarg; break;
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
    qat_eval_result r;
    if (qat_eval_checkpoint(ckpt, data_dir, device, &r) != QAT_OK) return cli_fail("eval");
    printf("test_acc %.4f  test_loss %.4f  (%u images)\n", r.accuracy, r.loss, r.count);
    return 0;
}
