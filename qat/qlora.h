/* `qat qlora`: fine-tunes a gpt checkpoint on a text corpus through LoRA
 * adapters over a frozen base held as 4-bit codes on the device (QLoRA,
 * Dettmers et al. 2023: NF4 or FP4 blocks of 64 with double-quantized
 * absmax), or over the FP32 base (plain LoRA) for comparison. Writes
 * DIR/adapters.safetensors, DIR/base.safetensors (docs/checkpoints.md),
 * DIR/metrics.csv and DIR/summary.json, and with --merge
 * DIR/merged.safetensors, an FP32 checkpoint with the adapters folded into
 * the dequantized base. */
#ifndef QAT_QLORA_H
#define QAT_QLORA_H

#include "ops/q4_format.h"
#include "qat/optimizer.h"

typedef enum qat_lora_base { QAT_LORA_BASE_NF4, QAT_LORA_BASE_FP4, QAT_LORA_BASE_FP32 } qat_lora_base;

const char *qat_lora_base_name(qat_lora_base base);
bool qat_lora_base_parse(const char *name, qat_lora_base *out);

typedef struct qat_qlora_options {
    const char *ckpt;           /* FP32 gpt checkpoint */
    const char *out_dir;
    const char *data_spec;      /* fine-tuning corpus, e.g. "fortunes:tech" */
    const char *forget_spec;    /* evaluated before and after (forgetting), or NULL */
    const char *data_dir;
    const char *device;
    uint32_t val_permille;
    qat_lora_base base;
    bool double_quant;          /* 4-bit bases: double-quantize the absmax values */
    int rank;
    double alpha;
    double dropout;
    bool adapt_head;            /* adapters on the output head too (default: the blocks' linear layers) */
    int steps, batch, eval_every;
    uint64_t seed;
    qat_optim_config optim;     /* total_steps is filled in from steps */
    bool merge;
    bool quiet;
} qat_qlora_options;

typedef struct qat_qlora_result {
    double val_bpc;             /* after fine-tuning, on data_spec */
    double base_val_bpc;        /* the FP32 checkpoint before fine-tuning, same data */
    double quantized_base_val_bpc; /* the frozen base as trained through (4-bit or FP32), no adapters */
    double forget_val_bpc, base_forget_val_bpc; /* on forget_spec, after and before */
    double merged_val_bpc;      /* merged.safetensors (with --merge) */
    int64_t params;             /* the model's, adapters excluded */
    int64_t trainable_params;   /* the adapters' */
    int64_t base_params;        /* weights of the adapted layers (the quantized base) */
    uint64_t base_device_bytes; /* device memory of those weights as the layers read them */
    uint64_t peak_device_bytes; /* the training phase's peak */
    double train_seconds, wall_seconds, tokens_per_second;
} qat_qlora_result;

qat_status qat_qlora_run(const qat_qlora_options *o, qat_qlora_result *r);

#endif
