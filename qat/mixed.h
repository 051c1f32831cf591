/* `qat bits`: a checkpoint's per-layer weight bits under a budget. Measures
 * the layers' sensitivity on calibration data (qat/sensitivity.h) when the
 * strategy needs it, builds the strategy's table (qat/bits.h), runs the
 * strategy and writes the bit map that `qat ptq --bits-map` and
 * `qat qat --bits-map` read, with every layer's figures as comments. */
#ifndef QAT_MIXED_H
#define QAT_MIXED_H

#include "qat/bits.h"
#include "qat/quantize.h"
#include "qat/sensitivity.h"

typedef struct qat_bits_options {
    /* The checkpoint, data, device, calibration (calib_batches, batch,
     * seed), weight granularity and scheme and observer, as PTQ takes
     * them; abits is written into the map for every layer; bits_map is the
     * `manual` strategy's map. wbits is ignored. */
    qat_quantize_options q;
    const char *strategy;
    const char *budget;             /* qat_bits_budget_parse; NULL: none (manual only) */
    bool sensitivity_set;           /* measure even if the strategy does not need it */
    qat_sensitivity_kind sensitivity; /* default hessian */
    int ncandidates;                /* 0: every width 2..8 */
    int candidates[QAT_BITS_MAX_CANDIDATES];
    int min_probes, max_probes;     /* Hutchinson; 0: 8 and 32 */
    double probe_tol;               /* 0: 0.1 */
    /* The allocation unit: 0, whole layers; N, blocks of N output channels
     * of a layer (the last block of a layer may be shorter), so a layer's
     * rows can get different widths (a map of runs, which qat ptq takes).
     * Needs channel or group granularity. */
    int unit_rows;
    const char *out_map;
    /* A file of measured sensitivities to reuse (NULL: none): when its first
     * line, the key (a hash of the checkpoint's bytes and every setting that
     * changes the costs), matches, the costs are read from it instead of
     * measured; otherwise they are measured and the file is (re)written.
     * The runner points every mixed run of a checkpoint at one such file, so
     * strategies and budgets share one measurement. */
    const char *sensitivity_cache;
} qat_bits_options;

/* One unit of the table (qat_bits_layer): a layer, or a block of its rows. */
typedef struct qat_bits_layer_report {
    char name[56];
    int layer;                      /* index in the model description */
    int64_t row0, rows;             /* the unit's output channels */
    int64_t numel;
    int bits;
    uint64_t bytes;
    /* hessian: Tr(H)/n and its standard error; fisher: the mean of F;
     * perturbation: the loss change at the smallest candidate. */
    double sensitivity, sensitivity_err;
    double weight_error[QAT_BITS_MAX_CANDIDATES]; /* ||Q_b(W) - W||^2, round to nearest */
    double cost[QAT_BITS_MAX_CANDIDATES];
} qat_bits_layer_report;

typedef struct qat_bits_result {
    int nlayers;                    /* units, in network order, a layer's rows in order */
    qat_bits_layer_report layers[QAT_BITS_MAX_UNITS];
    int ncandidates;
    int candidates[QAT_BITS_MAX_CANDIDATES];
    bool measured;
    bool from_cache;                /* the costs came from sensitivity_cache */
    qat_sensitivity_kind sensitivity;
    int probes;                     /* hessian */
    bool settled;
    double calib_loss;              /* the FP32 model on the calibration batches */
    double total_cost;
    uint64_t layer_budget_bytes;    /* what the strategy had for the layers' weights */
    uint64_t layer_bytes;           /* what it used */
    uint64_t model_bytes;           /* the quantized checkpoint's tensor data with this map */
    uint64_t fp32_bytes;
    double avg_bits;                /* the codes' bits per weight (what --budget B bits bounds) */
    double bits_per_weight;         /* layer_bytes * 8 / weights: scales and zero points included */
    double measure_seconds, wall_seconds;
} qat_bits_result;

qat_status qat_bits_run(const qat_bits_options *o, qat_bits_result *r);

#endif
