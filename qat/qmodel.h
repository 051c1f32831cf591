/* A model's parameters on the host together with how each layer is
 * quantized: what PTQ and QAT produce, what quantized checkpoints hold, and
 * what evaluation rebuilds on the device.
 *
 * Evaluation of a quantized model runs the float graph with the dequantized
 * weights, (code - zero_point) * scale, and fake quantization on the input of
 * every layer with activation bits: the same numbers integer kernels would
 * produce before their output rescaling. */
#ifndef QAT_QMODEL_H
#define QAT_QMODEL_H

#include "qat/checkpoint.h"
#include "qat/qconfig.h"
#include "qat/train.h"

typedef struct qat_qlayer {
    int wbits;               /* 0: FP32 weight */
    qat_qscheme wscheme;
    int64_t nscales;
    float *w_scale;          /* nscales */
    int32_t *w_zero_point;   /* nscales, code units */
    uint8_t *codes;          /* rows * cols, unpacked */
    int abits;               /* 0: FP32 input */
    bool a_symmetric;
    float a_scale;
    int32_t a_zero_point;
} qat_qlayer;

typedef struct qat_qmodel {
    qat_model_desc desc;
    float input_mean, input_std;
    int nparams;
    /* Parameter values in the description's order (layer i's weight is
     * desc.layers[i].weight); a quantized weight holds its dequantized
     * values. */
    float *values[QAT_MODEL_MAX_PARAMS];
    int64_t numel[QAT_MODEL_MAX_PARAMS];
    int nlayers;
    qat_qlayer layers[QAT_MODEL_MAX_LAYERS];
    bool quantized;          /* read from or meant for a quantized checkpoint */
    char source[1024];
} qat_qmodel;

/* Loads a checkpoint written by qat, FP32 (format qat-fp32-v1) or quantized
 * (qat-quant-v1), validating every tensor; errors name the file and tensor. */
qat_status qat_qmodel_load(const char *path, qat_qmodel *out);
void qat_qmodel_free(qat_qmodel *qm);

/* Sets layer `layer`'s weight quantization: takes the codes, scales and zero
 * points (copied) and replaces the weight values with their dequantization. */
void qat_qmodel_set_weight(qat_qmodel *qm, int layer, const qat_qscheme *s, const uint8_t *codes,
                           const float *scale, const int32_t *zero_point);
/* The same in two steps for code that computes the codes in place: sizes the
 * layer's w_scale, w_zero_point and codes for the scheme (contents
 * undefined), then, once they are filled, replaces the weight values with
 * their dequantization. */
void qat_qmodel_prepare_weight(qat_qmodel *qm, int layer, const qat_qscheme *s);
void qat_qmodel_dequantize_weight(qat_qmodel *qm, int layer);
void qat_qmodel_set_input(qat_qmodel *qm, int layer, int bits, bool symmetric, float scale, int32_t zero_point);

/* The fake quantization an evaluation graph needs (inputs only: weights are
 * written dequantized). */
void qat_qmodel_eval_quant(const qat_qmodel *qm, qat_model_quant *q);
/* The fake-quant parameters of an activation grid on a tensor of `numel`. */
qat_fq_params qat_act_fq_params(int bits, int64_t numel, qat_fq_estimator estimator);
/* Writes parameters and input quantizer settings into a graph built with
 * qat_qmodel_eval_quant's settings (or with more quantizers). */
qat_status qat_qmodel_apply(const qat_qmodel *qm, qat_graph *g, const qat_model *m);

/* Bytes of tensor data a quantized checkpoint of qm holds: packed codes,
 * scales, zero points and every FP32 tensor. */
uint64_t qat_qmodel_bytes(const qat_qmodel *qm);
/* Writes qm as a quantized checkpoint (see docs/checkpoints.md); extra is a
 * NULL-terminated list of metadata pairs. */
qat_status qat_qmodel_save(const qat_qmodel *qm, const char *path, const char *const *extra);

/* A forward graph of qm with batch `batch`, its parameters written and
 * its input quantizers set: what evaluation runs. The caller frees the
 * sequence and the graph (also on failure; both may be NULL then). */
qat_status qat_qmodel_eval_graph(const qat_qmodel *qm, qat_ctx *ctx, int batch, qat_graph **g, qat_model *m,
                                 qat_seq **forward);

/* Evaluates qm on a set with a fresh graph of batch `batch`. */
qat_status qat_qmodel_evaluate(const qat_qmodel *qm, qat_ctx *ctx, const qat_image_set *set, int batch,
                               qat_eval_result *out);

/* The predicted class of the first `count` images of a set (count at most
 * set->count), one forward pass per batch of `batch`. */
qat_status qat_qmodel_predict(const qat_qmodel *qm, qat_ctx *ctx, const qat_image_set *set, uint32_t count,
                              int batch, int *predictions);

#endif
