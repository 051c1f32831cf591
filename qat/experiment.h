/* Experiment specs: experiments/NAME.ini, expanded into the grid of runs
 * `qat run` executes.
 *
 *   [experiment]
 *   name = fashion-mnist          ; runs go to runs/NAME/
 *   model = mlp                   ; mlp | cnn, or gpt (below)
 *   dataset = fashion-mnist       ; the only one for mlp and cnn
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
 * and the section.
 *
 * The gpt on text (model = gpt): pretrain on one corpus, then compare ways
 * of getting a 4-bit model of another (the target domain), each evaluated on
 * the target and on a forget domain:
 *   (a) fine-tune then quantize   [finetune], then [ptq] of = finetune
 *   (b) quantize then fine-tune   [qlora] bases = nf4 (or fp4)
 *   (c) both at once              [qat]
 *   (d) LoRA on the FP32 base     [qlora] bases = fp32
 *   (e) PTQ of the base alone     [ptq] of = base
 *
 *   [experiment]
 *   name = fortunes
 *   model = gpt
 *   dataset = fortunes:general    ; the pretraining corpus (datasets/fortunes.h)
 *   seeds = 1
 *
 *   [baseline]                    ; pretraining, as `qat train --model gpt`
 *   steps = 2000                  ; optimizer steps on random windows
 *   eval_every = 500              ; validation every N steps (0: at the end)
 *   batch = 16                    ; windows per step; every run of the experiment uses it
 *   layers = 4                    ; the gpt's size: layers 1..15, width 4..4096,
 *   width = 128                   ;   heads 1..width dividing width, context 1..4096
 *   heads = 4
 *   context = 128
 *   val_permille = 100            ; entries held out for validation, 1..999, in every corpus
 *   optimizer, lr, momentum, weight_decay, schedule, warmup: as for images
 *
 *   [finetune]                    ; the target domain, and arm (a)'s FP32 fine-tune
 *   data = fortunes:tech          ; required
 *   forget = fortunes:general     ; default: the [experiment] dataset
 *   steps = 300
 *   lr = 1e-3                     ; AdamW, cosine
 *   warmup = 100
 *   weight_decay = 0.01
 *   eval_every = 50
 *
 *   [ptq]                         ; arms (a) and (e): as for images, and
 *   of = finetune, base           ; which checkpoints to quantize (default both)
 *   calib = 8                     ; batches of windows of the target domain
 *
 *   [qat]                         ; arm (c): from the base, on the target domain
 *   steps = 300                   ; instead of epochs
 *   lr = 1e-4                     ; AdamW, cosine, no warm-up or weight decay
 *   calib = 8
 *   eval_every = 50
 *
 *   [qlora]                       ; arms (b) and (d), from the base
 *   bases = nf4                   ; nf4 | fp4 | fp32 (plain LoRA), comma-separated
 *   rank = 4                      ; 1..4096
 *   alpha = 8                     ; (0, 1e6]
 *   dropout = 0                   ; [0, 0.99]
 *   steps = 300
 *   lr = 1e-3                     ; AdamW, cosine, no weight decay
 *   warmup = 30
 *   eval_every = 50
 *
 *   [mixed]                       ; mixed precision, below; of = base | finetune
 *
 * Defaults are the values shown, those of `qat train --model gpt`, `qat
 * train --init`, `qat ptq`, `qat qat` and `qat qlora` on a gpt, except that
 * the fine-tune takes 300 steps (as QAT and QLoRA do) and every fine-tuning
 * arm evaluates every 50 steps (so the arms compare at one budget and the
 * report draws their curves). Ranges:
 * steps 1..100000000, eval_every and warmup 0..100000000, lr (0, 100],
 * weight_decay [0, 10]. A gpt experiment with [ptq], [qat] or [qlora]
 * needs [finetune]. epochs, val and train_limit ([baseline]) and epochs
 * ([qat]) are for mlp and cnn only; the gpt keys above, [finetune] and
 * [qlora] for the gpt only: using one with the other model is an error
 * naming its line, wherever [experiment] model comes in the file.
 *
 * Mixed precision (any model): per-layer weight bits chosen under a budget
 * by the strategies of qat/bits.h (`qat bits`), then each bit map quantized
 * (and optionally fine-tuned) as `qat ptq --bits-map` / `qat qat --bits-map`:
 *
 *   [mixed]
 *   strategies = uniform, hawq    ; required: registry names (qat bits --list), not manual
 *   budgets = 3, 2.5              ; required: average weight bits or bytes ("120KB"), at most 16 characters
 *   sensitivity = hessian         ; hessian | fisher | perturbation, for strategies that weigh cost
 *   candidates = 2, 3, 4, 8       ; ascending widths within 2..8 (default all of 2..8)
 *   granularity = channel         ; one weight granularity: tensor | channel | group:G
 *   abits = fp32                  ; input bits written into every map: 2..8 or fp32
 *   methods = rtn                 ; PTQ of each map: rtn, gptq (comma-separated), or none
 *   qat = none                    ; also QAT of each map: ste, lsq, pact (comma-separated), or none
 *   qat_epochs = 3                ; mlp and cnn: the QAT runs' epochs, 1..100000
 *   qat_steps = 300               ; gpt: their steps, 1..100000000
 *   qat_eval_every = 50           ; gpt: validation every N steps
 *   qat_lr = 1e-4                 ; AdamW, cosine, as [qat]
 *   calib = 8                     ; calibration batches, 1..100000 (sensitivity and PTQ)
 *   max_probes = 16               ; Hutchinson probes at most (hessian), 2..100000
 *   unit = layer                  ; what gets one width: layer, or rows:N (blocks of N output
 *                                 ; channels; needs channel or group:G)
 *   of = base                     ; gpt: base | finetune, the checkpoint the maps are for
 *
 * methods and qat together name at least one method. The gpt's [mixed]
 * needs [finetune] (its data is the target domain the sensitivity and PTQ
 * calibrate on and the runs are evaluated on), and of = finetune quantizes
 * its fine-tune. */
#ifndef QAT_EXPERIMENT_H
#define QAT_EXPERIMENT_H

#include "qat/mixed.h"
#include "qat/qlora.h"
#include "qat/quantize.h"
#include "qat/train.h"

#define QAT_EXP_MAX_SEEDS 16
#define QAT_EXP_MAX_LIST 16
#define QAT_RUN_ID_MAX 96
/* A [mixed] budget's text, e.g. "2.5" or "120KB" (it goes into run ids). */
#define QAT_EXP_BUDGET_MAX 16
#define QAT_EXP_STRATEGY_MAX 24

typedef struct qat_bits_pair {
    int wbits, abits;            /* 0: FP32 */
} qat_bits_pair;

typedef struct qat_gran_choice {
    qat_granularity gran;
    int group;
} qat_gran_choice;

/* Which checkpoint a gpt PTQ run quantizes. */
typedef enum qat_ptq_source { QAT_PTQ_OF_BASE, QAT_PTQ_OF_FINETUNE } qat_ptq_source;

typedef struct qat_experiment {
    char name[64];
    char source[1024];           /* the file it came from */
    qat_model_kind model;
    char dataset[256];           /* gpt: the pretraining corpus, e.g. "fortunes:general" */
    int nseeds;
    uint64_t seeds[QAT_EXP_MAX_SEEDS];

    /* [baseline], with the optimizer resolved (qat_optim_defaults, then the
     * keys given). model is set; seed (0 here) and paths are filled per run.
     * The gpt: model.gpt, steps, eval_every and val_permille are set too, and
     * data_spec is NULL (the runner points it at `dataset`). */
    qat_train_options baseline;

    /* [finetune] (gpt): the target domain every arm trains, calibrates and
     * is evaluated on, the forget domain evaluated beside it, and the FP32
     * fine-tune of arm (a) (AdamW, cosine). */
    bool has_finetune;
    char finetune_data[256];
    char forget_data[256];
    int finetune_steps, finetune_eval_every, finetune_warmup;
    double finetune_lr, finetune_weight_decay;

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
    int n_ptq_of;                               /* gpt; 0 for mlp and cnn */
    qat_ptq_source ptq_of[2];

    bool has_qat;
    int n_qat_quantizers;
    qat_quantizer_kind qat_quantizers[QAT_EXP_MAX_LIST];
    int n_qat_bits;
    qat_bits_pair qat_bits[QAT_EXP_MAX_LIST];
    int n_qat_gran;
    qat_gran_choice qat_gran[QAT_EXP_MAX_LIST];
    int qat_epochs;                             /* mlp and cnn */
    double qat_lr;
    int qat_calib;
    int qat_steps, qat_eval_every;              /* gpt */

    /* [qlora] (gpt): LoRA fine-tunes from the base over each frozen base type. */
    bool has_qlora;
    int n_qlora_bases;
    qat_lora_base qlora_bases[3];
    int qlora_rank;
    double qlora_alpha, qlora_dropout, qlora_lr;
    int qlora_steps, qlora_warmup, qlora_eval_every;

    /* [mixed]: strategies x budgets, each map quantized by every method. */
    bool has_mixed;
    int n_mixed_strategies;
    char mixed_strategies[QAT_EXP_MAX_LIST][QAT_EXP_STRATEGY_MAX];
    int n_mixed_budgets;
    char mixed_budgets[QAT_EXP_MAX_LIST][QAT_EXP_BUDGET_MAX + 1];
    qat_sensitivity_kind mixed_sensitivity;
    int n_mixed_candidates;                     /* 0: every width 2..8 */
    int mixed_candidates[QAT_BITS_MAX_CANDIDATES];
    qat_gran_choice mixed_gran;
    int mixed_abits;                            /* 0: FP32 */
    int n_mixed_methods;                        /* PTQ; 0 with `methods = none` */
    bool mixed_gptq[2];
    int n_mixed_qat;                            /* QAT; 0 with `qat = none` */
    qat_quantizer_kind mixed_qat[3];
    int mixed_qat_epochs, mixed_qat_steps, mixed_qat_eval_every;
    double mixed_qat_lr;
    int mixed_calib, mixed_max_probes;
    int mixed_unit_rows;                        /* 0: whole layers; N: blocks of N output channels */
    qat_ptq_source mixed_of;                    /* gpt */
} qat_experiment;

qat_status qat_experiment_load(const char *path, qat_experiment *out);
/* The same from text in memory; `source` names it in errors. */
qat_status qat_experiment_parse(const char *text, size_t len, const char *source, qat_experiment *out);

/* Kinds in the order they were added (the values are stable). */
typedef enum qat_run_kind {
    QAT_RUN_BASELINE, QAT_RUN_PTQ, QAT_RUN_QAT, QAT_RUN_FINETUNE, QAT_RUN_QLORA,
    QAT_RUN_MIXED,       /* a bit map by a [mixed] strategy, then PTQ or QAT of it */
} qat_run_kind;

typedef struct qat_run_spec {
    /* Readable and stable: "<kind>-<algorithm>-w<W>a<A>-<granularity>-s<seed>-<hash>",
     * e.g. "ptq-gptq-w4a8-channel-s1-24b89c13", "baseline-fp32-s1-8a38c0ba"
     * (model mlp, every other setting its default: tests/test_experiment.c);
     * bits as numbers, FP32 as 32 ("w32a8"); granularity "tensor",
     * "channel" or "g<G>". The gpt adds "finetune-fp32-s<seed>-<hash>",
     * "qlora-<base>-r<rank>-s<seed>-<hash>" and "-ft" after the method of a
     * PTQ run of the fine-tuned model ("ptq-gptq-ft-w4a32-g64-s1-<hash>";
     * without it, PTQ of the base). The hash is the first 8 of the 16 hex
     * digits of FNV-1a 64 of `settings` (its top 32 bits), so changing any
     * setting that affects the result gives a new id. Mixed runs:
     * "mixed-<strategy>-<method>[-ft]-b<budget>-<granularity>-s<seed>-<hash>"
     * with method rtn, gptq (PTQ) or ste, lsq, pact (QAT) and the budget's
     * '.' written 'p' ("mixed-hawq-rtn-b2p5-channel-s1-<hash>"). */
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
     * as qat_granularity_format writes it, doubles as "%.17g".
     * The gpt: baseline.* are steps, eval_every, batch, layers, width, heads,
     * context, val_permille and the optimizer's; every other run adds data
     * and forget (the target and forget domains); finetune adds
     * finetune.{steps, lr, warmup, weight_decay, eval_every}; PTQ adds source
     * (base | finetune, and the finetune.* lines of the fine-tune it
     * quantizes); QAT has steps and eval_every instead of epochs; QLoRA adds
     * base, rank, alpha, dropout, steps, lr, warmup, eval_every. Mixed runs
     * add strategy, budget, candidates, granularity, abits, calib, observer
     * (minmax), method (ptq-rtn, ptq-gptq, qat-ste, qat-lsq, qat-pact),
     * sensitivity (strategies that weigh cost only, so that a uniform run's
     * id does not change with it) and max_probes (those with hessian);
     * QAT ones epochs (or steps and eval_every) and lr; the gpt's data,
     * forget, source (and the fine-tune's settings) as PTQ. */
    char settings[4096];
    /* Every run but a baseline: the baseline run of the same seed (the
     * pretrained base, for the gpt). */
    char baseline_id[QAT_RUN_ID_MAX];
    /* PTQ of the fine-tuned gpt: the finetune run it quantizes; "" otherwise. */
    char finetune_id[QAT_RUN_ID_MAX];
    /* PTQ / QAT */
    int wbits, abits;
    qat_granularity gran;
    int group;
    bool gptq;                      /* PTQ */
    qat_observer_kind observer;     /* PTQ; QAT uses minmax for its initial scales */
    qat_quantizer_kind quantizer;   /* QAT */
    int epochs;                     /* QAT of mlp and cnn */
    double lr;                      /* QAT, finetune, QLoRA */
    int calib;
    /* The gpt's fine-tuning runs (finetune, QAT, QLoRA) */
    int steps, eval_every;
    int warmup;                     /* finetune, QLoRA */
    double weight_decay;            /* finetune */
    qat_lora_base lora_base;        /* QLoRA */
    int rank;
    double alpha, dropout;
    /* Mixed: the map's strategy and budget (its text as given), then PTQ
     * (gptq as above) or, with mixed_qat, QAT by `quantizer` (epochs or
     * steps/eval_every and lr as above) at wbits 8 under the map. */
    char strategy[QAT_EXP_STRATEGY_MAX];
    char budget[QAT_EXP_BUDGET_MAX + 1];
    bool mixed_qat;
    bool needs_cost;                /* the strategy weighs a measured sensitivity */
    qat_sensitivity_kind sensitivity;
    int ncandidates;                /* 0: every width 2..8 */
    int candidates[QAT_BITS_MAX_CANDIDATES];
    int max_probes;
    int unit_rows;              /* qat bits --unit: 0 layer, N rows:N */
} qat_run_spec;

/* The grid: the baselines first (one per seed, in seed order), then for each
 * seed its PTQ runs (methods x observers x bits x granularity, in list order,
 * granularity varying fastest) and its QAT runs (quantizers x bits x
 * granularity). The gpt: after the baselines, for each seed its finetune
 * run, its PTQ runs (for each `of` entry in list order, the PTQ grid above),
 * its QAT runs and its QLoRA runs (one per base), so every run comes after
 * the runs it starts from. Last of each seed (every model): its mixed runs,
 * strategies x budgets x methods in list order, the PTQ methods before the
 * QAT quantizers. The caller frees *runs. */
qat_status qat_experiment_expand(const qat_experiment *e, qat_run_spec **runs, int *count);

/* "rtn", "gptq", "ste", "lsq", "pact", "fp32" (baseline, finetune) or, for
 * QLoRA, its base: "nf4", "fp4" or "fp32"; a mixed run's PTQ method or QAT
 * quantizer. */
const char *qat_run_algorithm(const qat_run_spec *r);
/* A budget's text as run ids and plot files carry it: '.' becomes 'p'
 * ("2.5" -> "2p5", "120KB" stays). */
void qat_run_budget_id(const char *budget, char *out, size_t size);
/* "baseline", "ptq", "qat", "finetune", "qlora" or "mixed". */
const char *qat_run_kind_name(qat_run_kind kind);

#endif
