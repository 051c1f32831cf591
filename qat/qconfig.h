/* What to quantize in a model and how: per layer, the weight bits and
 * granularity and the bits of the layer's input activations. Built from
 * uniform command-line settings, then overridden by a bit map file:
 *
 *   # layer  weight-bits  activation-bits  [granularity]
 *   fc1      4            8                group:64
 *   fc2      2            4
 *   fc3      fp32         8
 *   fc1      2x16+3x112   fp32         channel
 *
 * Bits are 2..8, or "fp32" to leave that tensor unquantized; weight bits may
 * also be runs of output channels at their own widths (qat/quant.h's
 * qat_bit_runs; they must cover the layer's rows and need channel or group
 * granularity, and only PTQ takes them); granularity is
 * tensor, channel or group:G (default: the command line's). '#' starts a
 * comment. Errors name the file and line. */
#ifndef QAT_QCONFIG_H
#define QAT_QCONFIG_H

#include "qat/nn.h"
#include "qat/quant.h"

typedef struct qat_layer_qconfig {
    int wbits;               /* 0: the weight stays FP32; with runs, the widest run */
    int abits;               /* 0: the input stays FP32 */
    qat_granularity gran;    /* of the weight */
    int group;
    qat_bit_runs wruns;      /* per-row weight widths (count 0: every row at wbits) */
} qat_layer_qconfig;

typedef struct qat_qconfig {
    const qat_model_desc *desc; /* not owned */
    int nlayers;
    qat_layer_qconfig layers[QAT_MODEL_MAX_LAYERS];
    bool weight_symmetric;   /* weights: symmetric (default) or affine */
    bool act_symmetric;      /* activations: affine (default) or symmetric */
    bool ends_8bit;          /* first and last layers forced to W8A8 */
} qat_qconfig;

/* Every layer at wbits / abits (0: FP32) with the given granularity. */
void qat_qconfig_uniform(qat_qconfig *c, const qat_model_desc *desc, int wbits, int abits, qat_granularity gran,
                         int group);
/* Applies a bit map file on top of c. */
qat_status qat_qconfig_load_bits_map(qat_qconfig *c, const char *path);
/* The same from text in memory (`source` names it in errors). */
qat_status qat_qconfig_parse_bits_map(qat_qconfig *c, const char *text, size_t len, const char *source);
/* Forces the first and last layers to 8-bit weights and inputs (where they
 * are quantized at all) and records that it did. */
void qat_qconfig_set_ends_8bit(qat_qconfig *c);

/* The weight's scheme of a layer (valid when wbits > 0). */
qat_qscheme qat_qconfig_weight_scheme(const qat_qconfig *c, int layer);

/* Parses "2".."8" or "fp32" (0); false otherwise. */
bool qat_bits_parse(const char *text, int *bits);

#endif
