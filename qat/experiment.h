/* Experiment specs: experiments/NAME.ini, expanded into the grid of runs
 * `qat run` executes.
 *
 *   [experiment]
 *   name = fashion-mnist          ; runs go to runs/NAME/
 *   model = mlp                   ; mlp | cnn
 *   dataset = fashion-mnist       ; the only one so far
 *   seeds = 1                     ; comma-separated: 1, 2, 3
 *
 *   [baseline]                    ; FP32 training, once per seed
 *   epochs = 10
 *   batch = 128
 *   optimizer = adamw             ; adamw | sgd
 *   lr = 1e-3
 *   weight_decay = 0.01
 *   schedule = cosine             ; cosine | constant
 *   warmup = 100
 *   val = 5000
 *   train_limit = 0               ; 0: the whole training split
 *
 *   [ptq]                         ; optional
 *   methods = rtn, gptq
 *   observers = minmax            ; minmax | ema | percentile | mse
 *   bits = 8/8, 4/8, 4/4, 3/8     ; weight/activation pairs; fp32 allowed
 *   granularity = channel         ; tensor | channel | group:G, comma-separated
 *   calib = 32
 *
 *   [qat]                         ; optional
 *   quantizers = ste, lsq         ; ste | lsq | pact
 *   bits = 4/4, 2/4
 *   granularity = channel
 *   epochs = 3
 *   lr = 1e-4
 *   calib = 32
 *
 * ';' and '#' start comments. Every key is optional except [experiment]
 * name and model; defaults are those of `qat train`, `qat ptq` and `qat qat`.
 * An unknown section or key, a repeated key or a bad value is an error naming
 * the file and line. */
#ifndef QAT_EXPERIMENT_H
#define QAT_EXPERIMENT_H

#include "qat/quantize.h"
#include "qat/train.h"

#define QAT_EXP_MAX_SEEDS 16
#define QAT_EXP_MAX_LIST 16
#define QAT_RUN_ID_MAX 96

typedef struct qat_bits_pair {
    int wbits, abits;            /* 0: FP32 */
} qat_bits_pair;

typedef struct qat_gran_choice {
    qat_granularity gran;
    int group;
} qat_gran_choice;

typedef struct qat_experiment {
    char name[64];
    char source[1024];           /* the file it came from */
    qat_model_kind model;
    char dataset[32];
    int nseeds;
    uint64_t seeds[QAT_EXP_MAX_SEEDS];

    /* [baseline]: model, seed and paths are filled per run */
    qat_train_options baseline;

    bool has_ptq;
    int n_ptq_methods;
    bool ptq_gptq[QAT_EXP_MAX_LIST];            /* false: rtn */
    int n_ptq_observers;
    qat_observer_kind ptq_observers[QAT_EXP_MAX_LIST];
    int n_ptq_bits;
    qat_bits_pair ptq_bits[QAT_EXP_MAX_LIST];
    int n_ptq_gran;
    qat_gran_choice ptq_gran[QAT_EXP_MAX_LIST];
    int ptq_calib;

    bool has_qat;
    int n_qat_quantizers;
    qat_quantizer_kind qat_quantizers[QAT_EXP_MAX_LIST];
    int n_qat_bits;
    qat_bits_pair qat_bits[QAT_EXP_MAX_LIST];
    int n_qat_gran;
    qat_gran_choice qat_gran[QAT_EXP_MAX_LIST];
    int qat_epochs;
    double qat_lr;
    int qat_calib;
} qat_experiment;

qat_status qat_experiment_load(const char *path, qat_experiment *out);
/* The same from text in memory; `source` names it in errors. */
qat_status qat_experiment_parse(const char *text, size_t len, const char *source, qat_experiment *out);

typedef enum qat_run_kind { QAT_RUN_BASELINE, QAT_RUN_PTQ, QAT_RUN_QAT } qat_run_kind;

typedef struct qat_run_spec {
    /* Readable and stable: "<kind>-<algorithm>-w<W>a<A>-<granularity>-s<seed>-<hash>",
     * e.g. "ptq-gptq-w4a8-channel-s1-9c1f0a2b", "baseline-fp32-s1-5d20e1c3";
     * the hash (8 hex digits of FNV-1a 64) covers `settings`, so changing
     * any setting that affects the result gives a new id. */
    char id[QAT_RUN_ID_MAX];
    qat_run_kind kind;
    uint64_t seed;
    /* The canonical text of every setting that affects the result (model,
     * dataset, seed, the baseline's settings, the run's own), one
     * "key=value" per line, sorted: stored beside the results and compared
     * to decide whether they are still valid. */
    char settings[2048];
    char baseline_id[QAT_RUN_ID_MAX];  /* PTQ and QAT: the baseline run of the same seed */
    /* PTQ / QAT */
    int wbits, abits;
    qat_granularity gran;
    int group;
    bool gptq;                      /* PTQ */
    qat_observer_kind observer;     /* PTQ; QAT uses minmax for its initial scales */
    qat_quantizer_kind quantizer;   /* QAT */
    int epochs;                     /* QAT */
    double lr;                      /* QAT */
    int calib;
} qat_run_spec;

/* The grid, baselines first (one per seed), then PTQ then QAT runs in the
 * order of the lists (seed outermost). The caller frees *runs. */
qat_status qat_experiment_expand(const qat_experiment *e, qat_run_spec **runs, int *count);

/* "rtn", "gptq", "ste", "lsq", "pact" or "fp32". */
const char *qat_run_algorithm(const qat_run_spec *r);

#endif
