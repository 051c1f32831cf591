/* `qat train --model gpt`: trains (or, from --init, fine-tunes) the gpt on
 * a text corpus and writes the run layout of training. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/checkpoint.h"
#include "qat/fileio.h"
#include "qat/json.h"
#include "qat/progress.h"
#include "qat/summary.h"
#include "qat/textlm.h"
#include "qat/train.h"
#include "qat/version.h"

typedef struct text_run {
    qat_ctx *ctx;
    qat_graph *g;
    qat_seq *train, *forward;
    qat_text_corpus data;
    bool data_loaded;
    qat_checkpoint init;
    qat_model_desc desc;
} text_run;

static void text_run_free(text_run *s)
{
    qat_seq_free(s->train);
    qat_seq_free(s->forward);
    qat_graph_free(s->g);
    qat_ctx_free(s->ctx);
    if (s->data_loaded) qat_text_corpus_free(&s->data);
    qat_checkpoint_close(&s->init);
}

static void write_config_json(qat_strbuf *sb, const qat_train_options *o, const qat_model_config *c)
{
    qat_strbuf_printf(sb, "{\"model\": \"gpt\", \"layers\": %d, \"width\": %d, \"heads\": %d, \"context\": %d, "
                          "\"vocab\": %d, \"data\": ", c->gpt.layers, c->gpt.width, c->gpt.heads, c->gpt.context,
                      c->gpt.vocab);
    qat_json_write_string(sb, o->data_spec);
    qat_strbuf_printf(sb, ", \"val_permille\": %u, \"steps\": %d, \"eval_every\": %d, \"batch\": %d, "
                          "\"seed\": %llu, \"init\": ", o->val_permille, o->steps, o->eval_every, o->batch,
                      (unsigned long long)o->seed);
    if (o->init_ckpt) qat_json_write_string(sb, o->init_ckpt);
    else qat_json_write_null(sb);
    qat_strbuf_printf(sb, ", \"optimizer\": ");
    qat_json_write_string(sb, qat_optim_name(o->optim.kind));
    qat_strbuf_printf(sb, ", \"lr\": ");
    qat_json_write_number(sb, o->optim.lr);
    qat_strbuf_printf(sb, ", \"weight_decay\": ");
    qat_json_write_number(sb, o->optim.weight_decay);
    qat_strbuf_printf(sb, ", \"schedule\": \"%s\", \"warmup_steps\": %d}",
                      o->optim.schedule == QAT_SCHEDULE_COSINE ? "cosine" : "constant", o->optim.warmup_steps);
}

static qat_status write_summary(const qat_train_options *o, const qat_train_result *r, const text_run *s,
                                const char *path)
{
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "{\n  \"kind\": \"%s\"", o->init_ckpt ? "finetune" : "train");
    qat_summary_str(&sb, "model", "gpt");
    qat_summary_str(&sb, "data", o->data_spec);
    qat_summary_num(&sb, "val_bpc", r->val_bpc);
    qat_summary_num(&sb, "val_loss", r->val.loss);
    qat_summary_num(&sb, "train_loss", r->final_train_loss);
    if (o->init_ckpt) {
        qat_summary_str(&sb, "source_checkpoint", o->init_ckpt);
        qat_summary_num(&sb, "init_val_bpc", r->init_val_bpc);
    }
    qat_summary_num(&sb, "params", (double)r->params);
    qat_summary_num(&sb, "trainable_params", (double)r->params);
    qat_summary_num(&sb, "model_bytes", (double)r->model_bytes);
    qat_summary_num(&sb, "train_bytes", (double)s->data.train.len);
    qat_summary_num(&sb, "val_bytes", (double)s->data.val.len);
    qat_summary_num(&sb, "seed", (double)o->seed);
    qat_summary_key(&sb, "config");
    write_config_json(&sb, o, &s->desc.config);
    qat_summary_environment(&sb, s->ctx);
    qat_summary_num(&sb, "wall_seconds", r->wall_seconds);
    qat_summary_num(&sb, "train_seconds", r->train_seconds);
    qat_summary_num(&sb, "tokens_per_second", r->images_per_second);
    qat_summary_num(&sb, "peak_device_bytes", (double)s->ctx->peak_device_bytes);
    qat_strbuf_printf(&sb, "\n}\n");
    qat_status st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

static qat_status text_loop(const qat_train_options *o, qat_train_result *r, text_run *s)
{
    double t0 = qat_now();
    memset(r, 0, sizeof *r);
    qat_model_config config = o->model;
    if (o->init_ckpt) {
        QAT_TRY(qat_checkpoint_open(o->init_ckpt, &s->init));
        if (s->init.config.kind != QAT_MODEL_GPT)
            return qat_error_set(QAT_ERR_INVALID, "%s: --init needs a gpt checkpoint, this is a %s", o->init_ckpt,
                                 qat_model_name(s->init.config.kind));
        config = s->init.config;
    }
    QAT_TRY(qat_model_desc_init(&s->desc, &config));
    QAT_TRY(qat_fortunes_load(o->data_spec, o->data_dir, o->val_permille, &s->data));
    s->data_loaded = true;
    int ctx_len = config.gpt.context;
    if (s->data.train.len <= (size_t)ctx_len || s->data.val.len < 2)
        return qat_error_set(QAT_ERR_INVALID, "%s: the training split (%zu bytes) must exceed the context (%d) and "
                             "the validation split (%zu bytes) must not be empty", o->data_spec, s->data.train.len,
                             ctx_len, s->data.val.len);
    QAT_TRY(qat_mkdir_p(o->out_dir));
    QAT_TRY(qat_ctx_init(o->device, &s->ctx));

    s->g = qat_graph_create(s->ctx);
    qat_model m;
    qat_model_build(s->g, &s->desc, o->batch, true, &m);
    int backward_start = qat_graph_backward(s->g, m.loss);
    qat_optim_config optim = o->optim;
    optim.total_steps = o->steps;
    qat_graph_add_optimizer(s->g, &optim);
    QAT_TRY(qat_graph_compile(s->g));
    if (o->init_ckpt) QAT_TRY(qat_checkpoint_apply(&s->init, s->g, &m));
    else QAT_TRY(qat_model_init_params(s->g, &m, o->seed));
    QAT_TRY(qat_seq_create(s->g, 0, qat_graph_node_count(s->g), &s->train));
    QAT_TRY(qat_seq_create(s->g, 0, backward_start, &s->forward));
    if (o->init_ckpt) {
        qat_text_eval before;
        QAT_TRY(qat_text_evaluate(s->g, &m, s->forward, &s->data.val, &before));
        r->init_val_bpc = before.bpc;
        if (!o->quiet) printf("%s before fine-tuning: val_bpc %.4f\n", o->init_ckpt, before.bpc);
    }

    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.csv", o->out_dir);
    qat_text_loop loop = { s->g, &m, s->train, s->forward, &s->data.train, &s->data.val, &optim, o->steps,
                           o->eval_every, o->seed, o->quiet, path, o->init_ckpt ? "finetune" : "train" };
    qat_text_loop_result lr;
    QAT_TRY(qat_text_train_steps(&loop, &lr));
    r->val.loss = lr.val.loss;
    r->val.count = (uint32_t)lr.val.count;
    r->val_bpc = lr.val.bpc;
    r->final_train_loss = lr.final_train_loss;
    r->train_seconds = lr.train_seconds;
    r->params = m.param_count;
    r->model_bytes = (uint64_t)m.param_count * sizeof(float);
    r->images_per_second = lr.train_seconds > 0 ? (double)lr.steps * o->batch * ctx_len / lr.train_seconds : 0;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    const char *extra[] = { "seed", seed, "git_commit", qat_git_commit(), "device", s->ctx->info.name, "data",
                            o->data_spec, NULL };
    snprintf(path, sizeof path, "%s/model.safetensors", o->out_dir);
    QAT_TRY(qat_checkpoint_save(s->g, &m, path, 0.0f, 1.0f, extra));
    r->wall_seconds = qat_now() - t0;
    snprintf(path, sizeof path, "%s/summary.json", o->out_dir);
    return write_summary(o, r, s, path);
}

qat_status qat_train_text_run(const qat_train_options *o, qat_train_result *r)
{
    QAT_ASSERT(o->data_spec && o->steps > 0 && o->batch > 0);
    text_run s;
    memset(&s, 0, sizeof s);
    qat_status st = text_loop(o, r, &s);
    text_run_free(&s);
    return st;
}
