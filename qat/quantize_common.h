/* Internal to qat/quantize.c, qat/ptq.c and qat/finetune.c: the steps that
 * post-training quantization and QAT share. */
#ifndef QAT_QUANTIZE_COMMON_H
#define QAT_QUANTIZE_COMMON_H

#include "qat/quantize.h"
#include "qat/textlm.h"

typedef struct quant_run {
    const qat_quantize_options *o; /* &opts */
    qat_quantize_options opts;  /* the caller's, with model-dependent defaults filled in */
    qat_qconfig qc;
    qat_ctx *ctx;
    qat_fashion_mnist data;
    bool data_loaded;
    bool text;                  /* the gpt: corpus (and forget) instead of data */
    qat_text_corpus corpus, forget;
    bool corpus_loaded, forget_loaded;
    qat_qmodel fp32;            /* the source checkpoint */
    qat_qmodel qm;              /* the result, starting as a copy of fp32 */
    uint32_t *calib;            /* images: calib_batches * batch training image indices */
    double t0;
} quant_run;

/* Loads the checkpoint, the config (bit map included) and the data, fills in
 * the model-dependent defaults, draws the calibration sample and creates the
 * device context. */
qat_status quant_run_load(quant_run *run, const qat_quantize_options *o);
/* quant_run_load, then creates the output directory and evaluates the FP32
 * model on the test split (the gpt: on the validation splits). */
qat_status quant_run_begin(quant_run *run, const qat_quantize_options *o, qat_quantize_result *r);
void quant_run_end(quant_run *run);

/* The gpt: validation bits per character of qm on the run's corpus and,
 * when there is one, on the forgetting corpus (0 otherwise). */
qat_status quant_evaluate_text(quant_run *run, const qat_qmodel *qm, double *bpc, double *forget_bpc);

/* Fills the graph's inputs with calibration batch b (images: from the
 * sample drawn at the start; text: random windows from stream
 * RNG_STREAM_CALIB + b, the same each time b is asked for). */
void quant_fill_calib_batch(quant_run *run, qat_graph *g, const qat_model *m, int b);

/* Activation ranges of every layer with input bits, observed on the
 * calibration batches through the model with run->qm's current weights and no
 * quantization, set in run->qm. */
qat_status quant_calibrate_inputs(quant_run *run);
/* Round-to-nearest of one layer's weight with the run's observer. */
void quant_weight_rtn(quant_run *run, int layer, const float *w);

/* Saves run->qm to DIR/model.safetensors, evaluates the saved file on the
 * validation and test splits, writes DIR/layers.csv and DIR/summary.json
 * (kind "ptq" or "qat"). */
qat_status quant_run_finish(quant_run *run, const char *kind, qat_quantize_result *r);

#endif
