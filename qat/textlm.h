/* Byte-level language modelling on text corpora (the gpt on fortunes):
 * evaluation in bits per character, the step loop that training, full
 * fine-tuning, QAT and QLoRA share, and `qat train --model gpt`. */
#ifndef QAT_TEXTLM_H
#define QAT_TEXTLM_H

#include "datasets/fortunes.h"
#include "qat/nn.h"
#include "qat/optimizer.h"
#include "qat/qmodel.h"

typedef struct qat_text_eval {
    double loss;           /* mean cross-entropy in nats per predicted byte */
    double bpc;            /* the same in bits: loss / ln 2 */
    uint64_t count;        /* predicted bytes */
} qat_text_eval;

/* Evaluates a forward graph of a gpt (batch m->batch) over a whole text
 * set: consecutive windows of the context, every byte after the first
 * predicted exactly once, the cross-entropy summed in double on the host
 * from the logits. */
qat_status qat_text_evaluate(qat_graph *g, const qat_model *m, qat_seq *forward, const qat_text_set *set,
                             qat_text_eval *out);

/* The same for a model on the host (FP32 or quantized), with a fresh graph
 * of batch `batch`. */
qat_status qat_qmodel_evaluate_text(const qat_qmodel *qm, qat_ctx *ctx, const qat_text_set *set, int batch,
                                    qat_text_eval *out);

/* Opens a checkpoint (a gpt, FP32 or quantized) and evaluates it on the
 * validation split of the corpus `spec`. */
qat_status qat_eval_text_checkpoint(const char *path, const char *spec, const char *data_dir, uint32_t val_permille,
                                    const char *device, int batch, qat_text_eval *out);

/* The step loop: step k trains on a batch of random windows drawn from
 * stream QAT_RNG_STREAM_TEXT_BATCHES of `seed`; every `eval_every` steps and
 * after the last one the validation set is evaluated and metrics_path is
 * rewritten (step, train_loss, val_loss, val_bpc, seconds). */
enum { QAT_RNG_STREAM_TEXT_BATCHES = 3 << 20 }; /* image shuffles use (1 << 20) + epoch, calibration 1 << 21 */

typedef struct qat_text_loop {
    qat_graph *g;
    const qat_model *m;
    qat_seq *train, *forward;
    const qat_text_set *train_set, *val_set;
    const qat_optim_config *optim;  /* with total_steps set */
    int steps;
    int eval_every;                 /* 0: only after the last step */
    uint64_t seed;
    bool quiet;
    const char *metrics_path;
    const char *label;              /* "train", "qlora": progress and lines */
} qat_text_loop;

typedef struct qat_text_loop_result {
    qat_text_eval val;              /* after the last step */
    double final_train_loss;        /* mean over the steps since the previous evaluation */
    double train_seconds;           /* the training steps alone */
    int steps;
} qat_text_loop_result;

qat_status qat_text_train_steps(const qat_text_loop *l, qat_text_loop_result *r);

/* Fills the graph's x and labels with the next batch of random windows
 * drawn from rng. */
void qat_text_fill_batch(qat_graph *g, const qat_model *m, const qat_text_set *set, qat_rng *rng);

#endif
