/* Reports of an experiment: `qat run` calls qat_report_build when its grid is
 * done, and `qat report runs/NAME` calls it again at any time; it reads only
 * files and never reruns anything.
 *
 * Input, in runs/NAME/:
 *   results.csv     one row per run, header
 *                   run_id,kind,algorithm,observer,w_bits,a_bits,granularity,seed,
 *                   test_acc,val_acc,retention_pct,model_bytes,seconds,peak_device_bytes,
 *                   strategy,budget,avg_bits
 *                   kind: baseline | ptq | qat | mixed; algorithm: fp32 | rtn |
 *                   gptq | ste | lsq | pact; bits 32 for FP32; accuracies in
 *                   [0, 1]; retention_pct = 100 * test_acc / the same seed's
 *                   FP32 test_acc. Mixed runs (a [mixed] bit map, then PTQ
 *                   (rtn, gptq) or QAT (ste, lsq, pact) of it): w_bits empty,
 *                   strategy and budget as in the spec, avg_bits the map's
 *                   average code bits per weight, seconds the map's and the
 *                   quantization's; RUN_ID/bits.csv
 *                   (layer,weights,bits,bytes,sensitivity,cost) gives its
 *                   layers' bits. The three last columns are empty for the
 *                   other kinds.
 *   experiment.ini  the spec the runs came from
 *   RUN_ID/         summary.json (device, driver, git_commit, seed ...),
 *                   metrics.csv (baseline and QAT runs: epoch,step,train_loss,
 *                   val_loss,val_acc,seconds), model.safetensors, layers.csv
 * A gpt experiment's results.csv has QAT_REPORT_TEXT_RESULTS_HEADER:
 *   kind: baseline | finetune | ptq | qat | qlora | mixed; algorithm: fp32 | rtn |
 *   gptq | ste | lsq | pact | nf4 | fp4 (QLoRA: the base; fp32 for LoRA);
 *   source: the checkpoint the run started from, base or finetune (empty
 *   for the baseline); val_bpc and forget_bpc: validation bits per
 *   character on the target and forget domains, start_val_bpc: the starting
 *   checkpoint's on the target (empty: not measured); trainable_params: what
 *   the run trained. Its RUN_ID/metrics.csv has step,train_loss,val_loss,
 *   val_bpc,seconds, and its report compares the arms of "fine-tune then
 *   quantize or quantize then fine-tune" (reports/report_text.c) instead of
 *   bit widths; there are no Fashion-MNIST images.
 *   Mixed runs as for images (source base or finetune).
 * Output, in runs/NAME/: report.html, report.md, and plots/ with the PNGs
 * they show. With mixed runs both pages get a "Mixed precision" section:
 * their table, quality against model bytes per strategy
 * (plots/mixed_pareto.png) and each budget's per-layer bits by strategy
 * (plots/mixed_bits_b<budget>.png). */
#ifndef QAT_REPORT_H
#define QAT_REPORT_H

#include <stdbool.h>

#include "qat/common.h"

/* The headers of results.csv (qat/runner.h writes them): image models and
 * the gpt. Both end with the columns of mixed-precision runs, empty for the
 * others. The headers without them (_V1, written before [mixed]) are still
 * read. */
#define QAT_REPORT_RESULTS_HEADER_V1                                                               \
    "run_id,kind,algorithm,observer,w_bits,a_bits,granularity,seed,test_acc,val_acc,retention_pct," \
    "model_bytes,seconds,peak_device_bytes"
#define QAT_REPORT_TEXT_RESULTS_HEADER_V1                                                          \
    "run_id,kind,algorithm,source,w_bits,a_bits,granularity,seed,val_bpc,forget_bpc,start_val_bpc," \
    "trainable_params,model_bytes,seconds,peak_device_bytes"
#define QAT_REPORT_MIXED_COLUMNS ",strategy,budget,avg_bits"
#define QAT_REPORT_RESULTS_HEADER QAT_REPORT_RESULTS_HEADER_V1 QAT_REPORT_MIXED_COLUMNS
#define QAT_REPORT_TEXT_RESULTS_HEADER QAT_REPORT_TEXT_RESULTS_HEADER_V1 QAT_REPORT_MIXED_COLUMNS

typedef struct qat_report_options {
    const char *run_dir;        /* runs/NAME */
    const char *device;         /* for the image grid's predictions; NULL: the preferred one */
    const char *data_dir;       /* Fashion-MNIST; NULL: the default */
    bool quiet;
} qat_report_options;

qat_status qat_report_build(const qat_report_options *o);

#endif
