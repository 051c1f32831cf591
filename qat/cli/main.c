/* `qat`: the command-line entry point; one subcommand per research task. */
#include <stdio.h>
#include <string.h>

#include "qat/cli/cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    { "train", cmd_train, "train a model (mlp, cnn on Fashion-MNIST; gpt on text) and write a checkpoint" },
    { "eval", cmd_eval, "print the test accuracy (or val_bpc) of a checkpoint (FP32 or quantized)" },
    { "ptq", cmd_ptq, "post-training quantization of a checkpoint (round-to-nearest or GPTQ)" },
    { "qat", cmd_qat, "quantization-aware fine-tuning of a checkpoint (STE, LSQ or PACT)" },
    { "qlora", cmd_qlora, "fine-tune a gpt through LoRA adapters over a frozen NF4 (or FP4, FP32) base" },
    { "bits", cmd_bits, "choose per-layer weight bits under a size budget (mixed precision) and write a bit map" },
    { "run", cmd_run, "run an experiment's grid (experiments/NAME.ini) and write its report" },
    { "report", cmd_report, "rebuild an experiment's results.csv and report from its runs" },
    { "devices", cmd_devices, "list the Vulkan devices and mark the one qat would use" },
    { "bench", cmd_bench, "measure matmul GFLOP/s and training throughput against references" },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: qat COMMAND [OPTIONS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'qat COMMAND --help' for a command's options.\n"
                 "Environment: QAT_DEVICE (device index or name), QAT_VK_VALIDATE=1 (Vulkan validation),\n"
                 "QAT_FASHION_MNIST_DIR, QAT_FORTUNES_DIR (dataset directories).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qat: unknown command '%s' (see 'qat --help')\n", argv[1]);
    return 2;
}
