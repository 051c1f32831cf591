/* Quantization-aware fine-tuning: the FP32 checkpoint with fake quantization
 * on every quantized weight and layer input, scales initialised as PTQ's
 * round-to-nearest sets them, trained through the record-once engine.
 *   ste   fixed scales, clipped straight-through gradients
 *   lsq   learned step sizes for weights and inputs (Esser et al. 2020)
 *   pact  learned clip for inputs that come out of a ReLU; fixed weight
 *         scales (and a fixed grid for the signed network input) */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/quantize_common.h"

/* LSQ's positive code count: how many steps above the zero point. */
static int32_t lsq_qp(int bits, int32_t zero_point)
{
    int32_t qp = qat_qmax(bits) - zero_point;
    return qp > 0 ? qp : 1;
}

static void build_quant(const quant_run *run, int batch, qat_model_quant *q)
{
    const qat_quantize_options *o = run->o;
    memset(q, 0, sizeof *q);
    for (int i = 0; i < run->qc.nlayers; i++) {
        const qat_layer_info *info = &run->qm.desc.layers[i];
        const qat_qlayer *l = &run->qm.layers[i];
        if (l->abits) {
            int64_t numel = qat_layer_input_numel(info, batch);
            qat_fq_estimator est = QAT_FQ_STE_CLIPPED;
            if (o->quantizer == QAT_QUANTIZER_LSQ) est = QAT_FQ_LSQ;
            if (o->quantizer == QAT_QUANTIZER_PACT && info->input_nonnegative && !l->a_symmetric) est = QAT_FQ_PACT;
            q->input[i].enabled = true;
            q->input[i].params = qat_act_fq_params(l->abits, numel, est);
            q->input[i].trainable_scale = est != QAT_FQ_STE_CLIPPED;
            q->input[i].params.grad_scale = (float)(1.0 / sqrt((double)numel * lsq_qp(l->abits, l->a_zero_point)));
        }
        if (l->wbits) {
            int64_t numel = info->rows * info->cols;
            bool lsq = o->quantizer == QAT_QUANTIZER_LSQ;
            q->weight[i].enabled = true;
            q->weight[i].params = (qat_fq_params){
                .qmin = 0,
                .qmax = qat_qmax(l->wbits),
                .layout = qat_qscheme_layout(&l->wscheme, info->rows, info->cols),
                .estimator = lsq ? QAT_FQ_LSQ : QAT_FQ_STE_CLIPPED,
                .grad_scale = (float)(1.0 / sqrt((double)numel *
                                                 lsq_qp(l->wbits, l->wscheme.symmetric ? 1 << (l->wbits - 1) : 0))),
            };
            q->weight[i].trainable_scale = lsq;
            /* Rows at their own widths (a bit map of runs): qmax per scale
             * element; LSQ's gradient scale keeps the widest width's Qp. */
            q->weight[i].ranged = l->wscheme.runs.count > 0;
        }
    }
}

/* FP32 weights, initial weight scales, and initial input scales (PACT: the
 * clip alpha = scale * qmax, the calibrated upper end of the range). */
static qat_status write_initial(const quant_run *run, qat_graph *g, const qat_model *m, const qat_model_quant *q)
{
    for (int i = 0; i < run->fp32.nparams; i++) QAT_TRY(qat_tensor_write(g, m->params[i], run->fp32.values[i]));
    for (int i = 0; i < run->qc.nlayers; i++) {
        const qat_qlayer *l = &run->qm.layers[i];
        const qat_model_layer *ml = &m->layers[i];
        if (ml->in_scale >= 0) {
            bool pact = q->input[i].params.estimator == QAT_FQ_PACT;
            float scale = pact ? l->a_scale * (float)qat_qmax(l->abits) : l->a_scale;
            float zp = (float)l->a_zero_point;
            QAT_TRY(qat_tensor_write(g, ml->in_scale, &scale));
            QAT_TRY(qat_tensor_write(g, ml->in_zero_point, &zp));
        }
        if (ml->w_scale >= 0) {
            float *zp = qat_xmalloc((size_t)l->nscales * sizeof *zp);
            for (int64_t k = 0; k < l->nscales; k++) zp[k] = (float)l->w_zero_point[k];
            qat_status st = qat_tensor_write(g, ml->w_scale, l->w_scale);
            if (st == QAT_OK) st = qat_tensor_write(g, ml->w_zero_point, zp);
            if (st == QAT_OK && ml->w_qmax >= 0) {
                /* Reuses zp's buffer: every scale element's row width. */
                const int64_t per_row = l->nscales / run->qm.desc.layers[i].rows;
                for (int64_t k = 0; k < l->nscales; k++)
                    zp[k] = (float)qat_qmax(qat_qscheme_row_bits(&l->wscheme, k / per_row));
                st = qat_tensor_write(g, ml->w_qmax, zp);
            }
            free(zp);
            QAT_TRY(st);
        }
    }
    return QAT_OK;
}

/* Every parameter trained; the trained weights become codes under the
 * trained scales, the same arithmetic the fake quantization ran. */
static qat_status collect_result(quant_run *run, qat_graph *g, const qat_model *m, const qat_model_quant *q)
{
    for (int p = 0; p < m->nparams; p++) QAT_TRY(qat_tensor_read(g, m->params[p], run->qm.values[p]));
    for (int i = 0; i < run->qc.nlayers; i++) {
        const qat_layer_info *info = &run->qm.desc.layers[i];
        qat_qlayer *l = &run->qm.layers[i];
        const qat_model_layer *ml = &m->layers[i];
        float *w = run->qm.values[info->weight];
        if (ml->in_scale >= 0) {
            float v;
            QAT_TRY(qat_tensor_read(g, ml->in_scale, &v));
            bool pact = q->input[i].params.estimator == QAT_FQ_PACT;
            float scale = pact ? v / (float)qat_qmax(l->abits) : v;
            if (!(isfinite(scale) && scale > 0))
                return qat_error_set(QAT_ERR_INVALID, "training drove the input %s of layer %s to %g (try a smaller "
                                     "--lr)", pact ? "clip" : "scale", info->name, (double)v);
            qat_qmodel_set_input(&run->qm, i, l->abits, l->a_symmetric, scale, pact ? 0 : l->a_zero_point);
        }
        if (ml->w_scale >= 0) {
            QAT_TRY(qat_tensor_read(g, ml->w_scale, l->w_scale));
            for (int64_t k = 0; k < l->nscales; k++)
                if (!(isfinite(l->w_scale[k]) && l->w_scale[k] > 0))
                    return qat_error_set(QAT_ERR_INVALID, "training drove weight scale %lld of layer %s to %g (try "
                                         "a smaller --lr)", (long long)k, info->name, (double)l->w_scale[k]);
            qat_quantize_weight(w, info->rows, info->cols, &l->wscheme, l->w_scale, l->w_zero_point, l->codes);
            qat_qmodel_dequantize_weight(&run->qm, i);
        }
    }
    return QAT_OK;
}

static qat_status train(quant_run *run)
{
    const qat_quantize_options *o = run->o;
    qat_graph *g = qat_graph_create(run->ctx);
    qat_model_quant q;
    build_quant(run, o->batch, &q);
    qat_model m;
    qat_model_build_quant(g, &run->qm.desc, o->batch, true, &q, &m);
    int backward_start = qat_graph_backward(g, m.loss);
    qat_optim_config optim = o->optim;
    if (run->text) optim.total_steps = o->steps;
    else optim.total_steps = (int)(run->data.train.count / (uint32_t)o->batch) * o->epochs;
    qat_graph_add_optimizer(g, &optim);
    /* LSQ's steps stay at least FLT_EPSILON after every update, as
     * PyTorch's _LearnableFakeQuantize clamps its scale before each forward:
     * without the floor an update can drive a step to 0 or below. PACT's
     * clip is left free, as in PACT. */
    for (int i = 0; i < run->qc.nlayers; i++) {
        if (m.layers[i].w_scale >= 0 && q.weight[i].trainable_scale && q.weight[i].params.estimator == QAT_FQ_LSQ)
            qat_param_floor(g, m.layers[i].w_scale, FLT_EPSILON);
        if (m.layers[i].in_scale >= 0 && q.input[i].trainable_scale && q.input[i].params.estimator == QAT_FQ_LSQ)
            qat_param_floor(g, m.layers[i].in_scale, FLT_EPSILON);
    }
    qat_seq *train_seq = NULL, *forward = NULL;
    qat_status st = qat_graph_compile(g);
    if (st == QAT_OK) st = write_initial(run, g, &m, &q);
    if (st == QAT_OK) st = qat_seq_create(g, 0, qat_graph_node_count(g), &train_seq);
    if (st == QAT_OK) st = qat_seq_create(g, 0, backward_start, &forward);

    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.csv", o->out_dir);
    if (run->text) {
        qat_text_loop loop = { g, &m, train_seq, forward, &run->corpus.train, &run->corpus.val, &optim, o->steps,
                               o->eval_every, o->seed, o->quiet, path, "qat" };
        qat_text_loop_result lr;
        if (st == QAT_OK) st = qat_text_train_steps(&loop, &lr);
    } else {
        qat_epoch_loop loop = { g, &m, train_seq, forward, &run->data.train, &run->data.val, run->qm.input_mean,
                                run->qm.input_std, &optim, o->epochs, o->seed, o->quiet, path, "qat" };
        qat_epoch_result er;
        if (st == QAT_OK) st = qat_train_epochs(&loop, &er);
    }
    if (st == QAT_OK) st = collect_result(run, g, &m, &q);
    qat_seq_free(train_seq);
    qat_seq_free(forward);
    qat_graph_free(g);
    return st;
}

qat_status qat_qat_run(const qat_quantize_options *o, qat_quantize_result *r)
{
    quant_run run;
    qat_status st = quant_run_begin(&run, o, r);
    if (st == QAT_OK && !run.text && run.data.train.count < (uint32_t)run.o->batch)
        st = qat_error_set(QAT_ERR_INVALID, "--batch %d is larger than the training split (%u images)", run.o->batch,
                           run.data.train.count);
    if (st == QAT_OK) st = quant_calibrate_inputs(&run);
    for (int l = 0; st == QAT_OK && l < run.qc.nlayers; l++)
        if (run.qc.layers[l].wbits) quant_weight_rtn(&run, l, run.fp32.values[run.fp32.desc.layers[l].weight]);
    if (st == QAT_OK) st = train(&run);
    if (st == QAT_OK) st = quant_run_finish(&run, "qat", r);
    quant_run_end(&run);
    return st;
}
