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
 *   lr = 1e-3                     ; default 1e-3 adamw, 0.05 sgd
 *   momentum = 0.9                ; sgd
 *   weight_decay = 0.01           ; default 0.01 adamw, 5e-4 sgd
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
 * ';' and '#' start comments (at the start of a line, or after a blank:
 * qat/ini.h). Every key is optional except [experiment] name and model, and
 * bits in a [ptq] or [qat] section that is present; defaults are those of
 * `qat train`, `qat ptq` and `qat qat` (the values shown above; [ptq]:
 * methods rtn, observers minmax, granularity channel, calib 32; [qat]:
 * quantizers lsq, granularity channel, epochs 3, lr 1e-4, calib 32).
 * name is 1..63 of [A-Za-z0-9._-] (not "." or ".."). Lists are
 * comma-separated with optional blanks, at most QAT_EXP_MAX_LIST entries
 * (seeds: QAT_EXP_MAX_SEEDS, each a u64), none twice. Numbers are parsed
 * strictly and range-checked as by the CLI: epochs 1..100000, batch 1..65536,
 * lr (0, 100], momentum [0, 0.999999], weight_decay [0, 10], warmup
 * 0..100000000, val 0..59000, train_limit 0..60000, calib 1..100000.
 * An unknown section or key, a repeated section or key, a key before any
 * section, a line that is neither, or a bad value is a QAT_ERR_INVALID whose
 * one-line message names the file and line ("exp.ini:7: [ptq] bits: '9/8':
 * weight bits must be 2..8 or fp32"); a missing required key names the file
 * and the section. */
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

    /* [baseline], with the optimizer resolved (qat_optim_defaults, then the
     * keys given). model is set; seed (0 here) and paths are filled per run. */
    qat_train_options baseline;

    /* Without the section, has_ptq / has_qat is false and its counts are 0. */
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
     * e.g. "ptq-gptq-w4a8-channel-s1-24b89c13", "baseline-fp32-s1-8a38c0ba"
     * (model mlp, every other setting its default: tests/test_experiment.c);
     * bits as numbers, FP32 as 32 ("w32a8"); granularity "tensor",
     * "channel" or "g<G>". The hash is the first 8 of the 16 hex digits of
     * FNV-1a 64 of `settings` (its top 32 bits), so changing any setting
     * that affects the result gives a new id. */
    char id[QAT_RUN_ID_MAX];
    qat_run_kind kind;
    uint64_t seed;
    /* The canonical text of every setting that affects the result (model,
     * dataset, seed, the baseline's settings, the run's own), one
     * "key=value" per line, sorted: stored beside the results and compared
     * to decide whether they are still valid. Every run: model, dataset,
     * seed, kind (baseline | ptq | qat) and baseline.* (epochs, batch,
     * optimizer, lr, momentum, beta1, beta2, eps, weight_decay, schedule,
     * warmup, val, train_limit); PTQ adds method, observer, wbits, abits,
     * granularity, calib; QAT adds quantizer, observer (minmax), wbits, abits,
     * granularity, epochs, lr, calib. Bits are 2..8 or "fp32", granularity
     * as qat_granularity_format writes it, doubles as "%.17g". */
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

/* The grid: the baselines first (one per seed, in seed order), then for each
 * seed its PTQ runs (methods x observers x bits x granularity, in list order,
 * granularity varying fastest) and its QAT runs (quantizers x bits x
 * granularity). The caller frees *runs. */
qat_status qat_experiment_expand(const qat_experiment *e, qat_run_spec **runs, int *count);

/* "rtn", "gptq", "ste", "lsq", "pact" or "fp32". */
const char *qat_run_algorithm(const qat_run_spec *r);

#endif
