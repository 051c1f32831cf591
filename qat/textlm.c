#include "qat/textlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/fileio.h"
#include "qat/progress.h"

static int context_of(const qat_model *m) { return m->desc->config.gpt.context; }

void qat_text_fill_batch(qat_graph *g, const qat_model *m, const qat_text_set *set, qat_rng *rng)
{
    qat_text_batch_random(set, rng, m->batch, context_of(m), qat_graph_input_slot(g, m->x),
                          qat_graph_input_slot(g, m->labels));
}

/* -log softmax(row)[target] in double: the reference's log-sum-exp with the
 * maximum taken out first. */
static double cross_entropy(const float *row, int vocab, int target)
{
    float mx = row[0];
    for (int j = 1; j < vocab; j++)
        if (row[j] > mx) mx = row[j];
    double s = 0;
    for (int j = 0; j < vocab; j++) s += exp((double)row[j] - mx);
    return log(s) + mx - row[target];
}

qat_status qat_text_evaluate(qat_graph *g, const qat_model *m, qat_seq *forward, const qat_text_set *set,
                             qat_text_eval *out)
{
    int ctx = context_of(m), vocab = m->desc->config.gpt.vocab;
    uint32_t windows = qat_text_window_count(set, ctx);
    int32_t *x = qat_graph_input_slot(g, m->x), *y = qat_graph_input_slot(g, m->labels);
    int *valid = qat_xmalloc((size_t)m->batch * sizeof *valid);
    qat_graph_set_phase(g, false, 0);
    double loss_sum = 0;
    uint64_t count = 0;
    qat_status st = QAT_OK;
    for (uint32_t w0 = 0; w0 < windows && st == QAT_OK; w0 += (uint32_t)m->batch) {
        /* Rows past the last window repeat it and are not counted. */
        for (int b = 0; b < m->batch; b++) {
            uint32_t w = w0 + (uint32_t)b < windows ? w0 + (uint32_t)b : windows - 1;
            int n = qat_text_window(set, w, ctx, x + (size_t)b * ctx, y + (size_t)b * ctx);
            valid[b] = w0 + (uint32_t)b < windows ? n : 0;
        }
        st = qat_seq_run(forward);
        if (st != QAT_OK) break;
        const float *logits = qat_graph_output_slot(g, m->logits);
        for (int b = 0; b < m->batch; b++)
            for (int t = 0; t < valid[b]; t++) {
                size_t row = (size_t)b * ctx + t;
                loss_sum += cross_entropy(logits + row * vocab, vocab, y[row]);
                count++;
            }
    }
    free(valid);
    out->count = count;
    out->loss = count ? loss_sum / (double)count : 0;
    out->bpc = out->loss / log(2.0);
    return st;
}

qat_status qat_qmodel_evaluate_text(const qat_qmodel *qm, qat_ctx *ctx, const qat_text_set *set, int batch,
                                    qat_text_eval *out)
{
    QAT_ASSERT(qm->desc.config.kind == QAT_MODEL_GPT);
    qat_graph *g = NULL;
    qat_model m;
    qat_seq *forward = NULL;
    qat_status st = qat_qmodel_eval_graph(qm, ctx, batch, &g, &m, &forward);
    if (st == QAT_OK) st = qat_text_evaluate(g, &m, forward, set, out);
    qat_seq_free(forward);
    qat_graph_free(g);
    return st;
}

qat_status qat_eval_text_checkpoint(const char *path, const char *spec, const char *data_dir, uint32_t val_permille,
                                    const char *device, int batch, qat_text_eval *out)
{
    qat_qmodel qm;
    QAT_TRY(qat_qmodel_load(path, &qm));
    qat_status st = QAT_OK;
    if (qm.desc.config.kind != QAT_MODEL_GPT)
        st = qat_error_set(QAT_ERR_INVALID, "%s is a %s checkpoint: --data applies to gpt checkpoints", path,
                           qat_model_name(qm.desc.config.kind));
    qat_text_corpus corpus;
    bool loaded = false;
    qat_ctx *ctx = NULL;
    if (st == QAT_OK) st = qat_fortunes_load(spec, data_dir, val_permille, &corpus);
    loaded = st == QAT_OK;
    if (st == QAT_OK) st = qat_ctx_init(device, &ctx);
    if (st == QAT_OK) st = qat_qmodel_evaluate_text(&qm, ctx, &corpus.val, batch, out);
    qat_ctx_free(ctx);
    if (loaded) qat_text_corpus_free(&corpus);
    qat_qmodel_free(&qm);
    return st;
}

qat_status qat_text_train_steps(const qat_text_loop *l, qat_text_loop_result *r)
{
    memset(r, 0, sizeof *r);
    qat_strbuf csv;
    qat_strbuf_init(&csv);
    qat_strbuf_printf(&csv, "step,train_loss,val_loss,val_bpc,seconds\n");
    qat_rng rng = qat_rng_init(l->seed, QAT_RNG_STREAM_TEXT_BATCHES);
    qat_progress bar;
    qat_progress_begin(&bar, l->label, (uint64_t)l->steps);
    qat_status st = QAT_OK;
    double t0 = qat_now(), loss_sum = 0;
    int since_eval = 0;
    for (int step = 0; step < l->steps && st == QAT_OK; step++) {
        double step_start = qat_now();
        qat_text_fill_batch(l->g, l->m, l->train_set, &rng);
        qat_optim_set_step(l->g, l->optim, step);
        qat_graph_set_phase(l->g, true, (uint32_t)step);
        st = qat_seq_run(l->train);
        if (st != QAT_OK) break;
        r->train_seconds += qat_now() - step_start;
        float loss = *(const float *)qat_graph_output_slot(l->g, l->m->loss);
        if (!isfinite(loss)) {
            st = qat_error_set(QAT_ERR_INVALID, "training diverged: loss is %g at step %d (try a smaller --lr)",
                               (double)loss, step);
            break;
        }
        loss_sum += loss;
        since_eval++;
        char status[64];
        snprintf(status, sizeof status, "loss %.4f", loss_sum / since_eval);
        qat_progress_update(&bar, (uint64_t)step + 1, status);
        bool last = step + 1 == l->steps;
        if (!last && !(l->eval_every > 0 && (step + 1) % l->eval_every == 0)) continue;
        r->final_train_loss = loss_sum / since_eval;
        loss_sum = 0;
        since_eval = 0;
        st = qat_text_evaluate(l->g, l->m, l->forward, l->val_set, &r->val);
        if (st != QAT_OK) break;
        double seconds = qat_now() - t0;
        qat_strbuf_printf(&csv, "%d,%.6f,%.6f,%.6f,%.3f\n", step + 1, r->final_train_loss, r->val.loss, r->val.bpc,
                          seconds);
        st = qat_file_write_atomic(l->metrics_path, csv.data, csv.len);
        if (!l->quiet)
            qat_progress_line(&bar, "%s step %d/%d  train_loss %.4f  val_loss %.4f  val_bpc %.4f  %.1f s", l->label,
                              step + 1, l->steps, r->final_train_loss, r->val.loss, r->val.bpc, seconds);
    }
    qat_progress_end(&bar);
    qat_strbuf_free(&csv);
    qat_seq_profile_print(l->train, stderr);
    r->steps = l->steps;
    return st;
}
