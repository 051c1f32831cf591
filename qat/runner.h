/* `qat run`: executes an experiment's grid of runs into runs/NAME/, each in
 * its own directory runs/NAME/RUN_ID/, then writes runs/NAME/results.csv and
 * the report.
 *
 * Resuming: a run is finished when RUN_ID/settings.txt exists and holds
 * exactly its settings; that file is written (atomically) after everything
 * else of the run, so a run killed at any moment has none and is redone from
 * scratch, and a finished run whose settings changed gets a new id anyway.
 * Runs are deterministic for a seed and device, so a redone run ends with
 * the same results.
 *
 * Sharding: with --shard i/n, shard i runs the runs other than baselines
 * whose index among them is i - 1 modulo n, and every run they start from
 * (their baseline; for PTQ of a gpt's fine-tune, the finetune run too).
 * Copying the shards' run directories into one runs/NAME/ and running `qat
 * report` there merges them: results.csv is rebuilt from the finished runs
 * of the grid.
 *
 * The gpt (qat/experiment.h): pretraining is `qat train --model gpt`, the
 * fine-tune `qat train --init` (the runner then evaluates the base and the
 * result on the forget domain into RUN_ID/forget.json: forget_data,
 * forget_val_bpc, start_forget_val_bpc, seconds), PTQ and QAT `qat ptq` /
 * `qat qat` with --data and --forget-data, QLoRA `qat qlora`. results.csv
 * gets the header QAT_REPORT_TEXT_RESULTS_HEADER (reports/report.h), a row
 * per finished run: val_bpc and forget_bpc of the result (the baseline: the
 * pretrained base as the seed's first finished run from it measured it,
 * the fine-tune's before-values first; without [finetune], its own val_bpc
 * and no forget), start_val_bpc of the checkpoint it started from, the
 * parameters it trained (baseline, finetune: all; QAT: all and, with LSQ,
 * its step sizes, from layers.csv; QLoRA: the adapters; PTQ: 0),
 * model_bytes (QLoRA: the frozen base as the device holds it, the other
 * parameters and the adapters in FP32), seconds (the fine-tune's include
 * its forget evaluation) and peak device bytes. --data-dir points at the
 * fortunes files for a gpt experiment.
 *
 * Mixed runs ([mixed], qat/experiment.h) are `qat bits` then `qat ptq` (or
 * `qat qat`) in one run directory: the bit map of the run's strategy and
 * budget into RUN_ID/bits.map (calibrating as the model's PTQ runs do, on
 * the seed of the run; the gpt on its target domain), RUN_ID/bits.csv
 * (layer,weights,bits,bytes,sensitivity,cost; the last two empty for
 * strategies that measure nothing) and RUN_ID/bits.json (the map's totals:
 * avg_bits, model_bytes, seconds ...), then the quantization of the baseline
 * (or, for a gpt's of = finetune, of the fine-tune) with that map over
 * 8-bit weights. The costs a strategy weighs are measured once per
 * checkpoint and measure: the first run writes runs/NAME/sensitivity-
 * SOURCE_ID-MEASURE.txt (keyed by the checkpoint's hash and every setting
 * that changes them, qat/mixed.h) and the others read it. Their
 * prerequisites for sharding are those of PTQ. Both
 * results.csv headers end with strategy,budget,avg_bits, empty but for
 * mixed runs, whose w_bits is empty (the bits vary by layer) and whose
 * seconds add the map's. */
#ifndef QAT_RUNNER_H
#define QAT_RUNNER_H

#include <stdbool.h>

#include "qat/experiment.h"

typedef struct qat_runner_options {
    const char *spec_path;
    const char *runs_root;      /* NULL: "runs" */
    const char *device;
    const char *data_dir;
    int shard_index, shard_count; /* 1-based; 1 of 1 for everything */
    bool dry_run;               /* list the runs (and what is finished) and stop */
    bool no_report;
    bool quiet;
} qat_runner_options;

qat_status qat_runner_run(const qat_runner_options *o);

/* Rebuilds DIR/results.csv from the finished runs of the grid in
 * DIR/experiment.ini, then the report (`qat report DIR`). */
qat_status qat_runner_report(const char *dir, const char *device, const char *data_dir, bool quiet);

/* Whether run r of shard i/n runs (baselines: when a run of that shard needs them). */
bool qat_runner_in_shard(const qat_run_spec *runs, int count, int r, int shard_index, int shard_count);

#endif
