#include "qat/qlora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/checkpoint.h"
#include "qat/fileio.h"
#include "qat/json.h"
#include "qat/progress.h"
#include "qat/q4.h"
#include "qat/qmodel.h"
#include "qat/summary.h"
#include "qat/textlm.h"
#include "qat/version.h"

static const char *const base_names[] = { "nf4", "fp4", "fp32" };

const char *qat_lora_base_name(qat_lora_base base) { return base_names[base]; }

bool qat_lora_base_parse(const char *name, qat_lora_base *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, base_names[i]) == 0) {
            *out = (qat_lora_base)i;
            return true;
        }
    return false;
}

typedef struct qlora_run {
    const qat_qlora_options *o;
    qat_qmodel fp32;
    qat_text_corpus corpus, forget;
    bool corpus_loaded, forget_loaded;
    qat_ctx *ctx;
    qat_model_lora lora;
    qat_q4_weight q4[QAT_MODEL_MAX_LAYERS]; /* host copies of the 4-bit bases */
    qat_graph *g;
    qat_model m;
    qat_seq *train, *forward;
    double t0;
} qlora_run;

static void qlora_run_free(qlora_run *s)
{
    qat_seq_free(s->train);
    qat_seq_free(s->forward);
    qat_graph_free(s->g);
    qat_ctx_free(s->ctx);
    for (int i = 0; i < QAT_MODEL_MAX_LAYERS; i++)
        if (s->q4[i].packed) qat_q4_weight_free(&s->q4[i]);
    if (s->corpus_loaded) qat_text_corpus_free(&s->corpus);
    if (s->forget_loaded) qat_text_corpus_free(&s->forget);
    qat_qmodel_free(&s->fp32);
}

/* Which layers get adapters: every linear layer of the blocks (QLoRA's
 * choice), and the head when asked. */
static void choose_layers(qlora_run *s)
{
    const qat_qlora_options *o = s->o;
    const qat_model_desc *d = &s->fp32.desc;
    qat_model_lora *l = &s->lora;
    memset(l, 0, sizeof *l);
    for (int i = 0; i < d->nlayers; i++) l->layer[i] = strncmp(d->layers[i].name, "blocks.", 7) == 0 || o->adapt_head;
    l->rank = o->rank;
    l->alpha = (float)o->alpha;
    l->dropout = (float)o->dropout;
    l->seed = o->seed;
    l->q4_base = o->base != QAT_LORA_BASE_FP32;
    l->q4_type = o->base == QAT_LORA_BASE_FP4 ? QAT_Q4_FP4 : QAT_Q4_NF4;
    l->double_quant = o->double_quant;
}

static qat_status load_inputs(qlora_run *s)
{
    const qat_qlora_options *o = s->o;
    QAT_TRY(qat_qmodel_load(o->ckpt, &s->fp32));
    if (s->fp32.desc.config.kind != QAT_MODEL_GPT)
        return qat_error_set(QAT_ERR_INVALID, "%s is a %s checkpoint: qat qlora fine-tunes gpt checkpoints", o->ckpt,
                             qat_model_name(s->fp32.desc.config.kind));
    if (s->fp32.quantized)
        return qat_error_set(QAT_ERR_INVALID, "%s is a quantized checkpoint: qat qlora quantizes the FP32 "
                             "checkpoint written by 'qat train' itself", o->ckpt);
    if (o->rank > s->fp32.desc.config.gpt.width)
        return qat_error_set(QAT_ERR_INVALID, "--rank %d exceeds the model width %d", o->rank,
                             s->fp32.desc.config.gpt.width);
    QAT_TRY(qat_fortunes_load(o->data_spec, o->data_dir, o->val_permille, &s->corpus));
    s->corpus_loaded = true;
    if (s->corpus.train.len <= (size_t)s->fp32.desc.config.gpt.context)
        return qat_error_set(QAT_ERR_INVALID, "%s: the training split (%zu bytes) must exceed the context (%d)",
                             o->data_spec, s->corpus.train.len, s->fp32.desc.config.gpt.context);
    if (o->forget_spec) {
        QAT_TRY(qat_fortunes_load(o->forget_spec, o->data_dir, o->val_permille, &s->forget));
        s->forget_loaded = true;
    }
    return QAT_OK;
}

/* The training graph: frozen model, adapters, AdamW on the adapters only;
 * the 4-bit bases quantized on the host and uploaded as codes. */
static qat_status build(qlora_run *s, qat_qlora_result *r)
{
    const qat_qlora_options *o = s->o;
    const qat_model_desc *d = &s->fp32.desc;
    s->g = qat_graph_create(s->ctx);
    qat_model_build_opts bo = { .trainable = false, .lora = &s->lora };
    qat_model_build_ex(s->g, d, o->batch, &bo, &s->m);
    int backward_start = qat_graph_backward(s->g, s->m.loss);
    qat_optim_config optim = o->optim;
    optim.total_steps = o->steps;
    qat_graph_add_optimizer(s->g, &optim);
    QAT_TRY(qat_graph_compile(s->g));
    QAT_TRY(qat_qmodel_apply(&s->fp32, s->g, &s->m));
    QAT_TRY(qat_model_init_lora(s->g, &s->m, o->seed));
    r->params = d->param_count;
    for (int i = 0; i < d->nlayers; i++) {
        const qat_model_layer *ml = &s->m.layers[i];
        if (ml->lora_a < 0) continue;
        const qat_layer_info *info = &d->layers[i];
        r->trainable_params += qat_tensor_get(s->g, ml->lora_a)->numel + qat_tensor_get(s->g, ml->lora_b)->numel;
        r->base_params += info->rows * info->cols;
        if (!ml->q4) {
            r->base_device_bytes += qat_tensor_get(s->g, ml->weight)->bytes;
            continue;
        }
        qat_q4_weight_init(&s->q4[i], s->lora.q4_type, info->rows, info->cols, s->lora.double_quant);
        qat_q4_weight_quantize(&s->q4[i], s->fp32.values[info->weight]);
        QAT_TRY(qat_q4_weight_upload(s->g, &ml->q4_weight, &s->q4[i]));
        r->base_device_bytes += qat_q4_weight_device_bytes(&s->q4[i]);
    }
    QAT_TRY(qat_seq_create(s->g, 0, qat_graph_node_count(s->g), &s->train));
    return qat_seq_create(s->g, 0, backward_start, &s->forward);
}

static qat_status evaluate(qlora_run *s, const qat_text_set *set, double *bpc)
{
    qat_text_eval e;
    QAT_TRY(qat_text_evaluate(s->g, &s->m, s->forward, set, &e));
    *bpc = e.bpc;
    return QAT_OK;
}

/* adapters.safetensors: the adapters and how to apply them. */
static qat_status save_adapters(qlora_run *s, const char *path)
{
    const qat_qlora_options *o = s->o;
    qat_st_writer w;
    qat_st_writer_init(&w);
    qat_status st = QAT_OK;
    char targets[4096] = "";
    for (int i = 0; i < s->m.nlayers && st == QAT_OK; i++) {
        const qat_model_layer *ml = &s->m.layers[i];
        if (ml->lora_a < 0) continue;
        snprintf(targets + strlen(targets), sizeof targets - strlen(targets), "%s%s", targets[0] ? "," : "",
                 s->fp32.desc.layers[i].name);
        int ids[2] = { ml->lora_a, ml->lora_b };
        for (int k = 0; k < 2 && st == QAT_OK; k++) {
            const qat_tensor *t = qat_tensor_get(s->g, ids[k]);
            float *data = qat_xmalloc((size_t)t->numel * sizeof *data);
            st = qat_tensor_read(s->g, ids[k], data);
            uint64_t shape[2] = { (uint64_t)t->shape[0], (uint64_t)t->shape[1] };
            if (st == QAT_OK) st = qat_st_writer_add(&w, t->name, QAT_ST_F32, shape, 2, data, (size_t)t->numel * 4);
            free(data);
        }
    }
    char buf[64];
    qat_st_writer_set_metadata(&w, "format", "qat-lora-v1");
    qat_checkpoint_write_config(&w, &s->fp32.desc.config);
    snprintf(buf, sizeof buf, "%d", o->rank);
    qat_st_writer_set_metadata(&w, "lora_rank", buf);
    snprintf(buf, sizeof buf, "%.9g", o->alpha);
    qat_st_writer_set_metadata(&w, "lora_alpha", buf);
    snprintf(buf, sizeof buf, "%.9g", o->dropout);
    qat_st_writer_set_metadata(&w, "lora_dropout", buf);
    qat_st_writer_set_metadata(&w, "lora_targets", targets);
    qat_st_writer_set_metadata(&w, "base", qat_lora_base_name(o->base));
    qat_st_writer_set_metadata(&w, "source_checkpoint", o->ckpt);
    qat_st_writer_set_metadata(&w, "git_commit", qat_git_commit());
    if (st == QAT_OK) st = qat_st_writer_save(&w, path);
    qat_st_writer_free(&w);
    return st;
}

/* base.safetensors: the frozen base as the adapters were trained on it.
 * Each 4-bit weight L.weight becomes L.weight.nf4 (or .fp4; U8 packed
 * codes, element 2j in the high nibble) and L.weight.absmax (F32 per block
 * of 64, the double quantization undone), with the double-quantized
 * constants beside them; every other tensor is FP32 under its own name. */
static qat_status save_base(qlora_run *s, const char *path)
{
    const qat_qlora_options *o = s->o;
    const qat_model_desc *d = &s->fp32.desc;
    qat_st_writer w;
    qat_st_writer_init(&w);
    qat_status st = QAT_OK;
    char name[96];
    /* F32 first, U8 last, so every tensor's data stays aligned. */
    for (int p = 0; p < d->nparams && st == QAT_OK; p++) {
        const qat_param_info *pi = &d->params[p];
        bool q4 = pi->layer >= 0 && d->layers[pi->layer].weight == p && s->q4[pi->layer].packed;
        if (!q4) {
            uint64_t shape[4];
            for (int k = 0; k < pi->ndim; k++) shape[k] = (uint64_t)pi->shape[k];
            st = qat_st_writer_add(&w, pi->name, QAT_ST_F32, shape, pi->ndim, s->fp32.values[p],
                                   (size_t)pi->numel * 4);
            continue;
        }
        const qat_q4_weight *q = &s->q4[pi->layer];
        float *absmax = qat_xmalloc((size_t)q->nblocks * sizeof *absmax);
        qat_q4_weight_absmax(q, absmax);
        uint64_t n = (uint64_t)q->nblocks;
        snprintf(name, sizeof name, "%s.absmax", pi->name);
        st = qat_st_writer_add(&w, name, QAT_ST_F32, &n, 1, absmax, (size_t)n * 4);
        free(absmax);
        if (st == QAT_OK && q->double_quant) {
            uint64_t ns = (uint64_t)q->nscales, one = 1;
            snprintf(name, sizeof name, "%s.absmax_scale", pi->name);
            st = qat_st_writer_add(&w, name, QAT_ST_F32, &ns, 1, q->absmax_scale, (size_t)ns * 4);
            snprintf(name, sizeof name, "%s.absmax_offset", pi->name);
            if (st == QAT_OK) st = qat_st_writer_add(&w, name, QAT_ST_F32, &one, 1, &q->absmax_offset, 4);
        }
    }
    for (int i = 0; i < d->nlayers && st == QAT_OK; i++) {
        const qat_q4_weight *q = &s->q4[i];
        if (!q->packed) continue;
        uint64_t bytes = (uint64_t)qat_q4_packed_bytes(q->rows * q->cols), n = (uint64_t)q->nblocks;
        snprintf(name, sizeof name, "%s.weight.%s", d->layers[i].name, qat_q4_type_name(q->type));
        st = qat_st_writer_add(&w, name, QAT_ST_U8, &bytes, 1, q->packed, (size_t)bytes);
        if (st == QAT_OK && q->double_quant) {
            snprintf(name, sizeof name, "%s.weight.absmax_code", d->layers[i].name);
            st = qat_st_writer_add(&w, name, QAT_ST_U8, &n, 1, q->absmax_code, (size_t)n);
        }
    }
    qat_st_writer_set_metadata(&w, "format", "qat-q4-base-v1");
    qat_checkpoint_write_config(&w, &d->config);
    qat_st_writer_set_metadata(&w, "base", qat_lora_base_name(o->base));
    qat_st_writer_set_metadata(&w, "q4_block", "64");
    qat_st_writer_set_metadata(&w, "q4_double_quant", o->double_quant ? "256" : "none");
    qat_st_writer_set_metadata(&w, "source_checkpoint", o->ckpt);
    qat_st_writer_set_metadata(&w, "git_commit", qat_git_commit());
    if (st == QAT_OK) st = qat_st_writer_save(&w, path);
    qat_st_writer_free(&w);
    return st;
}

/* merged.safetensors: W = base + (alpha / r) B A for every adapted layer,
 * the base dequantized exactly as the layers read it. */
static qat_status save_merged(qlora_run *s, const char *path, qat_qmodel *merged)
{
    const qat_qlora_options *o = s->o;
    const qat_model_desc *d = &s->fp32.desc;
    memset(merged, 0, sizeof *merged);
    merged->desc = *d;
    merged->nparams = d->nparams;
    merged->nlayers = d->nlayers;
    merged->input_mean = 0.0f;
    merged->input_std = 1.0f;
    snprintf(merged->source, sizeof merged->source, "%.1000s", path);
    for (int p = 0; p < d->nparams; p++) {
        merged->numel[p] = d->params[p].numel;
        merged->values[p] = qat_xmalloc((size_t)merged->numel[p] * sizeof(float));
        memcpy(merged->values[p], s->fp32.values[p], (size_t)merged->numel[p] * sizeof(float));
    }
    float scale = (float)(o->alpha / o->rank);
    for (int i = 0; i < d->nlayers; i++) {
        const qat_model_layer *ml = &s->m.layers[i];
        if (ml->lora_a < 0) continue;
        const qat_layer_info *info = &d->layers[i];
        float *w = merged->values[info->weight];
        if (s->q4[i].packed) qat_q4_weight_dequantize(&s->q4[i], w);
        int64_t r = o->rank;
        float *a = qat_xmalloc((size_t)(r * info->cols) * sizeof *a), *b = qat_xmalloc((size_t)(info->rows * r) * sizeof *b);
        QAT_TRY(qat_tensor_read(s->g, ml->lora_a, a));
        QAT_TRY(qat_tensor_read(s->g, ml->lora_b, b));
        for (int64_t row = 0; row < info->rows; row++)
            for (int64_t col = 0; col < info->cols; col++) {
                float acc = 0.0f;
                for (int64_t k = 0; k < r; k++) acc += b[row * r + k] * a[k * info->cols + col];
                w[row * info->cols + col] += scale * acc;
            }
        free(a), free(b);
    }
    const char *extra[] = { "method", "qlora-merged", "git_commit", qat_git_commit(), NULL };
    return qat_qmodel_save(merged, path, extra);
}

static void write_config(qat_strbuf *sb, const qat_qlora_options *o)
{
    qat_strbuf_printf(sb, "{\"ckpt\": ");
    qat_json_write_string(sb, o->ckpt);
    qat_strbuf_printf(sb, ", \"data\": ");
    qat_json_write_string(sb, o->data_spec);
    qat_strbuf_printf(sb, ", \"forget_data\": ");
    if (o->forget_spec) qat_json_write_string(sb, o->forget_spec);
    else qat_json_write_null(sb);
    qat_strbuf_printf(sb, ", \"base\": \"%s\", \"double_quant\": %s, \"rank\": %d, \"alpha\": ", qat_lora_base_name(o->base),
                      o->double_quant ? "true" : "false", o->rank);
    qat_json_write_number(sb, o->alpha);
    qat_strbuf_printf(sb, ", \"dropout\": ");
    qat_json_write_number(sb, o->dropout);
    qat_strbuf_printf(sb, ", \"targets\": \"%s\", \"steps\": %d, \"batch\": %d, \"eval_every\": %d, "
                          "\"val_permille\": %u, \"seed\": %llu, \"optimizer\": \"%s\", \"lr\": ",
                      o->adapt_head ? "all" : "blocks", o->steps, o->batch, o->eval_every, o->val_permille,
                      (unsigned long long)o->seed, qat_optim_name(o->optim.kind));
    qat_json_write_number(sb, o->optim.lr);
    qat_strbuf_printf(sb, ", \"weight_decay\": ");
    qat_json_write_number(sb, o->optim.weight_decay);
    qat_strbuf_printf(sb, ", \"schedule\": \"%s\", \"warmup_steps\": %d}",
                      o->optim.schedule == QAT_SCHEDULE_COSINE ? "cosine" : "constant", o->optim.warmup_steps);
}

static qat_status write_summary(const qlora_run *s, const qat_qlora_result *r, const char *path)
{
    const qat_qlora_options *o = s->o;
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "{\n  \"kind\": \"qlora\"");
    qat_summary_str(&sb, "model", "gpt");
    qat_summary_str(&sb, "data", o->data_spec);
    qat_summary_str(&sb, "base", qat_lora_base_name(o->base));
    qat_summary_num(&sb, "val_bpc", r->val_bpc);
    qat_summary_num(&sb, "base_val_bpc", r->base_val_bpc);
    qat_summary_num(&sb, "quantized_base_val_bpc", r->quantized_base_val_bpc);
    if (o->forget_spec) {
        qat_summary_str(&sb, "forget_data", o->forget_spec);
        qat_summary_num(&sb, "forget_val_bpc", r->forget_val_bpc);
        qat_summary_num(&sb, "base_forget_val_bpc", r->base_forget_val_bpc);
    }
    if (o->merge) qat_summary_num(&sb, "merged_val_bpc", r->merged_val_bpc);
    qat_summary_num(&sb, "params", (double)r->params);
    qat_summary_num(&sb, "trainable_params", (double)r->trainable_params);
    qat_summary_num(&sb, "trainable_fraction", (double)r->trainable_params / (double)r->params);
    qat_summary_num(&sb, "base_params", (double)r->base_params);
    qat_summary_num(&sb, "base_device_bytes", (double)r->base_device_bytes);
    qat_summary_num(&sb, "base_bytes_per_param", (double)r->base_device_bytes / (double)r->base_params);
    qat_summary_num(&sb, "seed", (double)o->seed);
    qat_summary_key(&sb, "config");
    write_config(&sb, o);
    qat_summary_str(&sb, "source_checkpoint", o->ckpt);
    qat_summary_environment(&sb, s->ctx);
    qat_summary_num(&sb, "wall_seconds", r->wall_seconds);
    qat_summary_num(&sb, "train_seconds", r->train_seconds);
    qat_summary_num(&sb, "tokens_per_second", r->tokens_per_second);
    qat_summary_num(&sb, "peak_device_bytes", (double)r->peak_device_bytes);
    qat_strbuf_printf(&sb, "\n}\n");
    qat_status st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

static qat_status run(qlora_run *s, qat_qlora_result *r)
{
    const qat_qlora_options *o = s->o;
    QAT_TRY(load_inputs(s));
    choose_layers(s);
    QAT_TRY(qat_mkdir_p(o->out_dir));
    QAT_TRY(qat_ctx_init(o->device, &s->ctx));
    /* The FP32 model before fine-tuning, on both corpora. */
    qat_text_eval e;
    QAT_TRY(qat_qmodel_evaluate_text(&s->fp32, s->ctx, &s->corpus.val, o->batch, &e));
    r->base_val_bpc = e.bpc;
    if (s->forget_loaded) {
        QAT_TRY(qat_qmodel_evaluate_text(&s->fp32, s->ctx, &s->forget.val, o->batch, &e));
        r->base_forget_val_bpc = e.bpc;
    }
    /* Device memory from here on is the fine-tuning's own. */
    s->ctx->peak_device_bytes = s->ctx->device_bytes;
    QAT_TRY(build(s, r));
    /* B starts at zero: this is the frozen base the adapters train on. */
    QAT_TRY(evaluate(s, &s->corpus.val, &r->quantized_base_val_bpc));
    if (!o->quiet)
        printf("%s: val_bpc %.4f on %s (FP32), %.4f as the frozen %s base; %lld trainable parameters (%.2f%%), "
               "base %.3f bytes per parameter on the device\n",
               o->ckpt, r->base_val_bpc, o->data_spec, r->quantized_base_val_bpc, qat_lora_base_name(o->base),
               (long long)r->trainable_params, 100.0 * (double)r->trainable_params / (double)r->params,
               (double)r->base_device_bytes / (double)r->base_params);

    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.csv", o->out_dir);
    qat_optim_config optim = o->optim;
    optim.total_steps = o->steps;
    qat_text_loop loop = { s->g, &s->m, s->train, s->forward, &s->corpus.train, &s->corpus.val, &optim, o->steps,
                           o->eval_every, o->seed, o->quiet, path, "qlora" };
    qat_text_loop_result lr;
    QAT_TRY(qat_text_train_steps(&loop, &lr));
    r->peak_device_bytes = s->ctx->peak_device_bytes;
    r->val_bpc = lr.val.bpc;
    r->train_seconds = lr.train_seconds;
    r->tokens_per_second =
        lr.train_seconds > 0 ? (double)o->steps * o->batch * s->fp32.desc.config.gpt.context / lr.train_seconds : 0;
    if (s->forget_loaded) QAT_TRY(evaluate(s, &s->forget.val, &r->forget_val_bpc));

    snprintf(path, sizeof path, "%s/adapters.safetensors", o->out_dir);
    QAT_TRY(save_adapters(s, path));
    snprintf(path, sizeof path, "%s/base.safetensors", o->out_dir);
    QAT_TRY(save_base(s, path));
    if (o->merge) {
        qat_qmodel merged;
        snprintf(path, sizeof path, "%s/merged.safetensors", o->out_dir);
        qat_status st = save_merged(s, path, &merged);
        qat_qmodel_free(&merged);
        QAT_TRY(st);
        /* Evaluate what was written. */
        qat_qmodel back;
        QAT_TRY(qat_qmodel_load(path, &back));
        st = qat_qmodel_evaluate_text(&back, s->ctx, &s->corpus.val, o->batch, &e);
        qat_qmodel_free(&back);
        QAT_TRY(st);
        r->merged_val_bpc = e.bpc;
    }
    r->wall_seconds = qat_now() - s->t0;
    snprintf(path, sizeof path, "%s/summary.json", o->out_dir);
    return write_summary(s, r, path);
}

qat_status qat_qlora_run(const qat_qlora_options *o, qat_qlora_result *r)
{
    QAT_ASSERT(o->ckpt && o->out_dir && o->data_spec && o->rank > 0 && o->steps > 0 && o->batch > 0);
    memset(r, 0, sizeof *r);
    qlora_run *s = qat_xcalloc(1, sizeof *s);
    s->o = o;
    s->t0 = qat_now();
    qat_status st = run(s, r);
    qlora_run_free(s);
    free(s);
    return st;
}
