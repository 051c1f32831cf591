#include "qat/quantize_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qat/fileio.h"
#include "qat/json.h"
#include "qat/progress.h"
#include "qat/rng.h"
#include "qat/summary.h"
#include "qat/version.h"

/* The calibration sample's stream of the run's seed (training shuffles use
 * streams 1 << 20 and up, see qat/train.c). */
enum { RNG_STREAM_CALIB = 1 << 21 };

/* Batches of 500 divide both evaluation splits (5,000 and 10,000 images), as
 * in `qat eval`, so a run's figures and `qat eval` of its checkpoint agree. */
enum { EVAL_BATCH = 500 };

static const char *const quantizer_names[] = { "ste", "lsq", "pact" };

const char *qat_quantizer_name(qat_quantizer_kind kind) { return quantizer_names[kind]; }

bool qat_quantizer_parse(const char *name, qat_quantizer_kind *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, quantizer_names[i]) == 0) {
            *out = (qat_quantizer_kind)i;
            return true;
        }
    return false;
}

static void qmodel_copy(const qat_qmodel *src, qat_qmodel *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->desc = src->desc;
    dst->input_mean = src->input_mean;
    dst->input_std = src->input_std;
    dst->nparams = src->nparams;
    dst->nlayers = src->nlayers;
    snprintf(dst->source, sizeof dst->source, "%s", src->source);
    for (int i = 0; i < src->nparams; i++) {
        dst->numel[i] = src->numel[i];
        dst->values[i] = qat_xmalloc((size_t)src->numel[i] * sizeof(float));
        memcpy(dst->values[i], src->values[i], (size_t)src->numel[i] * sizeof(float));
    }
}

static qat_status load_images(quant_run *run)
{
    const qat_quantize_options *o = run->o;
    QAT_TRY(qat_fashion_mnist_load(o->data_dir, o->val_count, &run->data));
    run->data_loaded = true;
    if (o->train_limit && o->train_limit < run->data.train.count) run->data.train.count = o->train_limit;
    uint64_t calib_images = (uint64_t)o->calib_batches * (uint64_t)o->batch;
    if (calib_images > run->data.train.count)
        return qat_error_set(QAT_ERR_INVALID, "--calib %d batches of %d images need %llu images; the training split "
                             "has %u", o->calib_batches, o->batch, (unsigned long long)calib_images,
                             run->data.train.count);
    uint32_t *order = qat_xmalloc(run->data.train.count * sizeof *order);
    for (uint32_t i = 0; i < run->data.train.count; i++) order[i] = i;
    qat_rng rng = qat_rng_init(o->seed, RNG_STREAM_CALIB);
    qat_rng_shuffle_u32(&rng, order, run->data.train.count);
    run->calib = order;
    return QAT_OK;
}

static qat_status load_text(quant_run *run)
{
    const qat_quantize_options *o = run->o;
    if (!o->data_spec)
        return qat_error_set(QAT_ERR_INVALID, "%s is a gpt checkpoint: pass the text to quantize on with --data "
                             "(e.g. fortunes:tech)", o->ckpt);
    QAT_TRY(qat_fortunes_load(o->data_spec, o->data_dir, o->val_permille, &run->corpus));
    run->corpus_loaded = true;
    int ctx = run->fp32.desc.config.gpt.context;
    if (run->corpus.train.len <= (size_t)ctx)
        return qat_error_set(QAT_ERR_INVALID, "%s: the training split (%zu bytes) must exceed the context (%d)",
                             o->data_spec, run->corpus.train.len, ctx);
    if (o->forget_spec) {
        QAT_TRY(qat_fortunes_load(o->forget_spec, o->data_dir, o->val_permille, &run->forget));
        run->forget_loaded = true;
    }
    return QAT_OK;
}

qat_status quant_evaluate_text(quant_run *run, const qat_qmodel *qm, double *bpc, double *forget_bpc)
{
    qat_text_eval e;
    QAT_TRY(qat_qmodel_evaluate_text(qm, run->ctx, &run->corpus.val, run->o->batch, &e));
    *bpc = e.bpc;
    *forget_bpc = 0;
    if (run->forget_loaded) {
        QAT_TRY(qat_qmodel_evaluate_text(qm, run->ctx, &run->forget.val, run->o->batch, &e));
        *forget_bpc = e.bpc;
    }
    return QAT_OK;
}

qat_status quant_run_load(quant_run *run, const qat_quantize_options *o)
{
    memset(run, 0, sizeof *run);
    run->o = o;
    run->t0 = qat_now();
    QAT_TRY(qat_qmodel_load(o->ckpt, &run->fp32));
    if (run->fp32.quantized)
        return qat_error_set(QAT_ERR_INVALID, "%s: already a quantized checkpoint; pass the FP32 checkpoint "
                             "written by 'qat train'", o->ckpt);
    qat_qconfig_uniform(&run->qc, &run->fp32.desc, o->wbits, o->abits, o->granularity, o->group);
    run->qc.weight_symmetric = o->weight_symmetric;
    run->qc.act_symmetric = o->act_symmetric;
    /* The gpt's uniform bits apply to the linear layers of its blocks: its
     * output head stays FP32, as QLoRA (and bitsandbytes' 4-bit loading)
     * leaves it, so the methods compare on the same quantized weights. A
     * bit map may still name it. */
    for (int i = 0; i < run->qc.nlayers; i++)
        if (run->fp32.desc.config.kind == QAT_MODEL_GPT && strncmp(run->fp32.desc.layers[i].name, "blocks.", 7) != 0)
            run->qc.layers[i].wbits = run->qc.layers[i].abits = 0;
    if (o->bits_map) QAT_TRY(qat_qconfig_load_bits_map(&run->qc, o->bits_map));
    if (o->ends_8bit) qat_qconfig_set_ends_8bit(&run->qc);
    qmodel_copy(&run->fp32, &run->qm);

    run->text = run->fp32.desc.config.kind == QAT_MODEL_GPT;
    if (!run->text && (o->data_spec || o->forget_spec))
        return qat_error_set(QAT_ERR_INVALID, "%s is a %s checkpoint: --data and --forget-data apply to gpt "
                             "checkpoints", o->ckpt, qat_model_name(run->fp32.desc.config.kind));
    /* Defaults that depend on the model: windows of text are much larger
     * than images. */
    run->opts = *o;
    if (!run->opts.batch) run->opts.batch = run->text ? 16 : 128;
    if (!run->opts.calib_batches) run->opts.calib_batches = run->text ? 8 : 32;
    run->o = o = &run->opts;
    QAT_TRY(run->text ? load_text(run) : load_images(run));
    return qat_ctx_init(o->device, &run->ctx);
}

qat_status quant_run_begin(quant_run *run, const qat_quantize_options *o, qat_quantize_result *r)
{
    memset(r, 0, sizeof *r);
    QAT_TRY(quant_run_load(run, o));
    o = run->o;
    QAT_TRY(qat_mkdir_p(o->out_dir));
    if (run->text) {
        QAT_TRY(quant_evaluate_text(run, &run->fp32, &r->fp32_val_bpc, &r->fp32_forget_val_bpc));
        if (!o->quiet) printf("fp32 checkpoint %s: val_bpc %.4f on %s\n", o->ckpt, r->fp32_val_bpc, o->data_spec);
    } else {
        QAT_TRY(qat_qmodel_evaluate(&run->fp32, run->ctx, &run->data.test, EVAL_BATCH, &r->fp32_test));
        if (!o->quiet) printf("fp32 checkpoint %s: test_acc %.4f\n", o->ckpt, r->fp32_test.accuracy);
    }
    for (int i = 0; i < run->fp32.nparams; i++) r->fp32_bytes += (uint64_t)run->fp32.numel[i] * sizeof(float);
    return QAT_OK;
}

void quant_run_end(quant_run *run)
{
    qat_qmodel_free(&run->fp32);
    qat_qmodel_free(&run->qm);
    free(run->calib);
    if (run->data_loaded) qat_fashion_mnist_free(&run->data);
    if (run->corpus_loaded) qat_text_corpus_free(&run->corpus);
    if (run->forget_loaded) qat_text_corpus_free(&run->forget);
    qat_ctx_free(run->ctx);
    memset(run, 0, sizeof *run);
}

void quant_fill_calib_batch(quant_run *run, qat_graph *g, const qat_model *m, int b)
{
    if (run->text) {
        qat_rng rng = qat_rng_init(run->o->seed, RNG_STREAM_CALIB + (uint64_t)b);
        qat_text_fill_batch(g, m, &run->corpus.train, &rng);
        return;
    }
    qat_image_set_batch_f32(&run->data.train, run->calib + (size_t)b * (size_t)m->batch, (uint32_t)m->batch,
                            run->qm.input_mean, run->qm.input_std, qat_graph_input_slot(g, m->x),
                            qat_graph_input_slot(g, m->labels));
}

qat_status quant_calibrate_inputs(quant_run *run)
{
    const qat_quantize_options *o = run->o;
    qat_observer obs[QAT_MODEL_MAX_LAYERS];
    bool any = false, second = false;
    for (int i = 0; i < run->qc.nlayers; i++) {
        qat_observer_init(&obs[i], o->observer);
        any |= run->qc.layers[i].abits > 0;
        second |= qat_observer_needs_second_pass(&obs[i]);
    }
    qat_status st = QAT_OK;
    qat_graph *g = NULL;
    qat_seq *forward = NULL;
    qat_model m;
    if (any) {
        g = qat_graph_create(run->ctx);
        qat_model_quant q = { .expose_inputs = true };
        qat_model_build_quant(g, &run->qm.desc, o->batch, false, &q, &m);
        st = qat_graph_compile(g);
        if (st == QAT_OK) st = qat_qmodel_apply(&run->qm, g, &m);
        if (st == QAT_OK) st = qat_seq_create(g, 0, qat_graph_node_count(g), &forward);
    }
    for (int pass = 1; any && pass <= (second ? 2 : 1) && st == QAT_OK; pass++) {
        if (pass == 2)
            for (int i = 0; i < run->qc.nlayers; i++) qat_observer_start_second_pass(&obs[i]);
        qat_progress bar;
        qat_progress_begin(&bar, pass == 1 ? "calibrate" : "histogram", (uint64_t)o->calib_batches);
        for (int b = 0; b < o->calib_batches && st == QAT_OK; b++) {
            quant_fill_calib_batch(run, g, &m, b);
            st = qat_seq_run(forward);
            for (int i = 0; i < run->qc.nlayers && st == QAT_OK; i++) {
                if (!run->qc.layers[i].abits) continue;
                int t = m.layers[i].input;
                qat_observer_observe(&obs[i], qat_graph_output_slot(g, t), qat_tensor_get(g, t)->numel);
            }
            qat_progress_update(&bar, (uint64_t)b + 1, "");
        }
        qat_progress_end(&bar);
    }
    for (int i = 0; i < run->qc.nlayers; i++) {
        int bits = run->qc.layers[i].abits;
        if (bits && st == QAT_OK) {
            float scale;
            int32_t zp;
            qat_observer_qparams(&obs[i], bits, run->qc.act_symmetric, &scale, &zp);
            qat_qmodel_set_input(&run->qm, i, bits, run->qc.act_symmetric, scale, zp);
        }
        qat_observer_free(&obs[i]);
    }
    qat_seq_free(forward);
    qat_graph_free(g);
    return st;
}

void quant_weight_rtn(quant_run *run, int layer, const float *w)
{
    const qat_layer_info *info = &run->qm.desc.layers[layer];
    qat_qscheme s = qat_qconfig_weight_scheme(&run->qc, layer);
    qat_qmodel_prepare_weight(&run->qm, layer, &s);
    qat_qlayer *l = &run->qm.layers[layer];
    qat_weight_qparams(w, info->rows, info->cols, &s, run->o->observer, l->w_scale, l->w_zero_point);
    qat_quantize_weight(w, info->rows, info->cols, &s, l->w_scale, l->w_zero_point, l->codes);
    qat_qmodel_dequantize_weight(&run->qm, layer);
}

static double weight_rel_err(const quant_run *run, int layer)
{
    int p = run->fp32.desc.layers[layer].weight;
    const float *w = run->fp32.values[p], *q = run->qm.values[p];
    double err = 0, norm = 0;
    for (int64_t i = 0; i < run->fp32.numel[p]; i++) {
        double d = (double)q[i] - w[i];
        err += d * d;
        norm += (double)w[i] * w[i];
    }
    return norm > 0 ? err / norm : 0;
}

static qat_status write_layers_csv(const quant_run *run, const char *path)
{
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "layer,weight_bits,input_bits,granularity,weight_scheme,scales,weight_rel_err,"
                           "input_scale,input_zero_point\n");
    for (int i = 0; i < run->qm.nlayers; i++) {
        const qat_qlayer *l = &run->qm.layers[i];
        char gran[32] = "";
        if (l->wbits) qat_granularity_format(l->wscheme.gran, l->wscheme.group, gran, sizeof gran);
        /* Per-row widths as their runs ("2x16+3x112"), which hold no comma. */
        char wbits[QAT_BIT_RUNS_TEXT_MAX];
        if (l->wbits && l->wscheme.runs.count) qat_bit_runs_format(&l->wscheme.runs, wbits, sizeof wbits);
        else snprintf(wbits, sizeof wbits, "%d", l->wbits ? l->wbits : 32);
        qat_strbuf_printf(&sb, "%s,%s,%d,%s,%s,%lld,%.6g,%.9g,%d\n", run->qm.desc.layers[i].name, wbits,
                          l->abits ? l->abits : 32, l->wbits ? gran : "",
                          l->wbits ? (l->wscheme.symmetric ? "symmetric" : "affine") : "", (long long)l->nscales,
                          weight_rel_err(run, i), (double)l->a_scale, l->a_zero_point);
    }
    qat_status st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

static void write_config(qat_strbuf *sb, const quant_run *run, const char *kind)
{
    const qat_quantize_options *o = run->o;
    char gran[32];
    qat_granularity_format(o->granularity, o->group, gran, sizeof gran);
    qat_strbuf_printf(sb, "{\"ckpt\": ");
    qat_json_write_string(sb, o->ckpt);
    qat_strbuf_printf(sb, ", \"wbits\": %d, \"abits\": %d, \"granularity\": \"%s\", \"weight_scheme\": \"%s\", "
                          "\"act_scheme\": \"%s\", \"bits_map\": ", o->wbits, o->abits, gran,
                      o->weight_symmetric ? "symmetric" : "affine", o->act_symmetric ? "symmetric" : "affine");
    if (o->bits_map) qat_json_write_string(sb, o->bits_map);
    else qat_json_write_null(sb);
    qat_strbuf_printf(sb, ", \"ends_8bit\": %s, \"observer\": \"%s\", \"calib_batches\": %d, \"batch\": %d, "
                          "\"seed\": %llu, \"val_count\": %u",
                      o->ends_8bit ? "true" : "false", qat_observer_name(o->observer), o->calib_batches, o->batch,
                      (unsigned long long)o->seed, o->val_count);
    if (strcmp(kind, "ptq") == 0) {
        qat_strbuf_printf(sb, ", \"method\": \"%s\"", o->gptq ? "gptq" : "rtn");
    } else {
        qat_strbuf_printf(sb, ", \"quantizer\": \"%s\", \"epochs\": %d, \"optimizer\": \"%s\", \"lr\": ",
                          qat_quantizer_name(o->quantizer), o->epochs, qat_optim_name(o->optim.kind));
        qat_json_write_number(sb, o->optim.lr);
        qat_strbuf_printf(sb, ", \"weight_decay\": ");
        qat_json_write_number(sb, o->optim.weight_decay);
        qat_strbuf_printf(sb, ", \"schedule\": \"%s\", \"warmup_steps\": %d, \"train_limit\": %u",
                          o->optim.schedule == QAT_SCHEDULE_COSINE ? "cosine" : "constant", o->optim.warmup_steps,
                          o->train_limit);
        if (run->text) qat_strbuf_printf(sb, ", \"steps\": %d", o->steps);
    }
    if (run->text) {
        qat_strbuf_printf(sb, ", \"data\": ");
        qat_json_write_string(sb, o->data_spec);
        qat_strbuf_printf(sb, ", \"forget_data\": ");
        if (o->forget_spec) qat_json_write_string(sb, o->forget_spec);
        else qat_json_write_null(sb);
        qat_strbuf_printf(sb, ", \"val_permille\": %u", o->val_permille);
    }
    qat_strbuf_printf(sb, "}");
}

static qat_status write_summary(const quant_run *run, const char *kind, const qat_quantize_result *r,
                                const char *path)
{
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "{\n  \"kind\": \"%s\"", kind);
    qat_summary_str(&sb, "model", qat_model_name(run->qm.desc.config.kind));
    if (run->text) {
        const qat_quantize_options *o = run->o;
        qat_summary_str(&sb, "data", o->data_spec);
        qat_summary_num(&sb, "val_bpc", r->val_bpc);
        qat_summary_num(&sb, "fp32_val_bpc", r->fp32_val_bpc);
        if (run->forget_loaded) {
            qat_summary_str(&sb, "forget_data", o->forget_spec);
            qat_summary_num(&sb, "forget_val_bpc", r->forget_val_bpc);
            qat_summary_num(&sb, "fp32_forget_val_bpc", r->fp32_forget_val_bpc);
        }
    } else {
        qat_summary_num(&sb, "test_acc", r->test.accuracy);
        qat_summary_num(&sb, "test_loss", r->test.loss);
        qat_summary_num(&sb, "val_acc", r->val.accuracy);
        qat_summary_num(&sb, "val_loss", r->val.loss);
        qat_summary_num(&sb, "fp32_test_acc", r->fp32_test.accuracy);
    }
    qat_summary_num(&sb, "wbits", run->o->wbits);
    qat_summary_num(&sb, "abits", run->o->abits);
    qat_summary_key(&sb, "ends_8bit");
    qat_json_write_bool(&sb, run->qc.ends_8bit);
    qat_summary_key(&sb, "layers");
    qat_strbuf_printf(&sb, "[");
    for (int i = 0; i < run->qm.nlayers; i++) {
        const qat_qlayer *l = &run->qm.layers[i];
        char gran[32] = "";
        if (l->wbits) qat_granularity_format(l->wscheme.gran, l->wscheme.group, gran, sizeof gran);
        qat_strbuf_printf(&sb, "%s\n    {\"name\": \"%s\", \"weight_bits\": %d, \"input_bits\": %d, "
                               "\"granularity\": ", i ? "," : "", run->qm.desc.layers[i].name,
                          l->wbits ? l->wbits : 32, l->abits ? l->abits : 32);
        if (l->wbits) qat_json_write_string(&sb, gran);
        else qat_json_write_null(&sb);
        if (l->wbits && l->wscheme.runs.count) {
            /* weight_bits is then the widest run. */
            char runs[QAT_BIT_RUNS_TEXT_MAX];
            qat_bit_runs_format(&l->wscheme.runs, runs, sizeof runs);
            qat_strbuf_printf(&sb, ", \"weight_bit_runs\": ");
            qat_json_write_string(&sb, runs);
        }
        qat_strbuf_printf(&sb, ", \"weight_rel_err\": ");
        qat_json_write_number(&sb, weight_rel_err(run, i));
        qat_strbuf_printf(&sb, "}");
    }
    qat_strbuf_printf(&sb, "\n  ]");
    qat_summary_num(&sb, "model_bytes", (double)r->model_bytes);
    qat_summary_num(&sb, "file_bytes", (double)r->file_bytes);
    qat_summary_num(&sb, "fp32_bytes", (double)r->fp32_bytes);
    qat_summary_num(&sb, "compression", r->model_bytes ? (double)r->fp32_bytes / (double)r->model_bytes : 0);
    qat_summary_key(&sb, "config");
    write_config(&sb, run, kind);
    qat_summary_num(&sb, "seed", (double)run->o->seed);
    qat_summary_str(&sb, "source_checkpoint", run->o->ckpt);
    qat_summary_environment(&sb, run->ctx);
    qat_summary_num(&sb, "wall_seconds", r->wall_seconds);
    qat_summary_num(&sb, "peak_device_bytes", (double)run->ctx->peak_device_bytes);
    qat_strbuf_printf(&sb, "\n}\n");
    qat_status st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

qat_status quant_run_finish(quant_run *run, const char *kind, qat_quantize_result *r)
{
    const qat_quantize_options *o = run->o;
    char path[1200], seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    const char *extra[] = { "method", kind, "seed", seed, "git_commit", qat_git_commit(), "device",
                            run->ctx->info.name, NULL };
    snprintf(path, sizeof path, "%s/model.safetensors", o->out_dir);
    QAT_TRY(qat_qmodel_save(&run->qm, path, extra));
    r->model_bytes = qat_qmodel_bytes(&run->qm);
    struct stat sbuf;
    if (stat(path, &sbuf) == 0) r->file_bytes = (uint64_t)sbuf.st_size;
    /* Evaluate what was written, so the figures are those of the file. */
    qat_qmodel saved;
    QAT_TRY(qat_qmodel_load(path, &saved));
    qat_status st;
    if (run->text) {
        st = quant_evaluate_text(run, &saved, &r->val_bpc, &r->forget_val_bpc);
    } else {
        st = qat_qmodel_evaluate(&saved, run->ctx, &run->data.test, EVAL_BATCH, &r->test);
        if (st == QAT_OK && run->data.val.count)
            st = qat_qmodel_evaluate(&saved, run->ctx, &run->data.val, EVAL_BATCH, &r->val);
    }
    qat_qmodel_free(&saved);
    QAT_TRY(st);
    snprintf(path, sizeof path, "%s/layers.csv", o->out_dir);
    QAT_TRY(write_layers_csv(run, path));
    r->wall_seconds = qat_now() - run->t0;
    snprintf(path, sizeof path, "%s/summary.json", o->out_dir);
    return write_summary(run, kind, r, path);
}
