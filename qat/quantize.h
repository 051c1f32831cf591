/* Quantizing a trained checkpoint: post-training quantization (`qat ptq`,
 * round-to-nearest or GPTQ weights, observer-calibrated activations) and
 * quantization-aware fine-tuning (`qat qat`, STE / LSQ / PACT). Both write
 * the run layout of training: DIR/summary.json, DIR/model.safetensors (a
 * quantized checkpoint, docs/checkpoints.md), DIR/layers.csv and, for QAT,
 * DIR/metrics.csv. */
#ifndef QAT_QUANTIZE_H
#define QAT_QUANTIZE_H

#include "qat/observer.h"
#include "qat/optimizer.h"
#include "qat/qconfig.h"
#include "qat/qmodel.h"
#include "qat/train.h"

typedef enum qat_quantizer_kind { QAT_QUANTIZER_STE, QAT_QUANTIZER_LSQ, QAT_QUANTIZER_PACT } qat_quantizer_kind;

const char *qat_quantizer_name(qat_quantizer_kind kind);
bool qat_quantizer_parse(const char *name, qat_quantizer_kind *out);

typedef struct qat_quantize_options {
    const char *ckpt;           /* FP32 checkpoint */
    const char *out_dir;
    const char *data_dir;       /* NULL: the default Fashion-MNIST directory */
    const char *device;         /* NULL: the preferred device */
    /* Every layer at wbits / abits (0: FP32) with the weight granularity,
     * then the bit map file (NULL: none) on top, then ends_8bit. */
    int wbits, abits;
    qat_granularity granularity;
    int group;
    bool weight_symmetric, act_symmetric;
    const char *bits_map;
    bool ends_8bit;
    qat_observer_kind observer; /* weights and activations */
    int calib_batches;          /* training batches for activation ranges and GPTQ */
    int batch;
    uint64_t seed;              /* calibration sample and QAT shuffling */
    uint32_t val_count;         /* images held out of the training file, as in training */
    bool quiet;
    /* PTQ */
    bool gptq;
    /* QAT */
    qat_quantizer_kind quantizer;
    int epochs;
    qat_optim_config optim;     /* total_steps is filled in from epochs (steps for the gpt) */
    uint32_t train_limit;
    /* The gpt on text: the corpus to calibrate, fine-tune and evaluate on,
     * and a second one evaluated before and after (forgetting); batch
     * counts windows, epochs, val_count and train_limit do not apply. */
    const char *data_spec;      /* e.g. "fortunes:tech" */
    const char *forget_spec;    /* e.g. "fortunes:general", or NULL */
    uint32_t val_permille;
    int steps;                  /* QAT steps */
    int eval_every;
} qat_quantize_options;

typedef struct qat_quantize_result {
    qat_eval_result val, test;
    qat_eval_result fp32_test;  /* the source checkpoint, same run */
    /* The gpt: validation bits per character on data_spec and forget_spec,
     * of the result and of the source checkpoint. */
    double val_bpc, fp32_val_bpc, forget_val_bpc, fp32_forget_val_bpc;
    uint64_t model_bytes;       /* tensor data of the quantized checkpoint */
    uint64_t file_bytes;        /* its size on disk (model_bytes plus the header) */
    uint64_t fp32_bytes;        /* every parameter in FP32 */
    double wall_seconds;
} qat_quantize_result;

qat_status qat_ptq_run(const qat_quantize_options *o, qat_quantize_result *r);
qat_status qat_qat_run(const qat_quantize_options *o, qat_quantize_result *r);

#endif
