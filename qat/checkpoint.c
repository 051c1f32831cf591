#include "qat/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const gpt_keys[5] = { "gpt_layers", "gpt_width", "gpt_heads", "gpt_context", "gpt_vocab" };

static int *gpt_field(qat_gpt_config *c, int i)
{
    int *fields[5] = { &c->layers, &c->width, &c->heads, &c->context, &c->vocab };
    return fields[i];
}

void qat_checkpoint_write_config(qat_st_writer *w, const qat_model_config *config)
{
    qat_st_writer_set_metadata(w, "model", qat_model_name(config->kind));
    if (config->kind != QAT_MODEL_GPT) return;
    qat_gpt_config gpt = config->gpt;
    for (int i = 0; i < 5; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", *gpt_field(&gpt, i));
        qat_st_writer_set_metadata(w, gpt_keys[i], buf);
    }
}

qat_status qat_checkpoint_read_config(const qat_st_file *file, const char *path, qat_model_config *out)
{
    memset(out, 0, sizeof *out);
    const char *model = qat_st_metadata(file, "model");
    if (!model)
        return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"model\" is missing (not a qat checkpoint?)", path);
    if (!qat_model_parse(model, &out->kind))
        return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"model\": unknown model \"%s\"", path, model);
    if (out->kind != QAT_MODEL_GPT) return QAT_OK;
    for (int i = 0; i < 5; i++) {
        const char *v = qat_st_metadata(file, gpt_keys[i]);
        if (!v) return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" is missing", path, gpt_keys[i]);
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (end == v || *end != '\0' || errno || n < 1 || n > 1 << 20)
            return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" is not a positive integer: \"%s\"", path,
                                 gpt_keys[i], v);
        *gpt_field(&out->gpt, i) = (int)n;
    }
    /* Dimensions the description refuses are a bad file, not a bad flag. */
    qat_model_desc *d = qat_xmalloc(sizeof *d);
    qat_status st = qat_model_desc_init(d, out);
    free(d);
    if (st != QAT_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", qat_error_message());
        return qat_error_set(QAT_ERR_FORMAT, "%s: %s", path, why);
    }
    return QAT_OK;
}

qat_status qat_checkpoint_save(qat_graph *g, const qat_model *m, const char *path, float input_mean,
                               float input_std, const char *const *extra)
{
    qat_st_writer w;
    qat_st_writer_init(&w);
    qat_status st = QAT_OK;
    for (int i = 0; i < m->nparams && st == QAT_OK; i++) {
        const qat_tensor *t = qat_tensor_get(g, m->params[i]);
        float *data = qat_xmalloc((size_t)t->numel * sizeof(float));
        st = qat_tensor_read(g, m->params[i], data);
        uint64_t shape[QAT_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++) shape[d] = (uint64_t)t->shape[d];
        if (st == QAT_OK)
            st = qat_st_writer_add(&w, t->name, QAT_ST_F32, shape, t->ndim, data, (size_t)t->numel * sizeof(float));
        free(data);
    }
    char buf[64];
    qat_st_writer_set_metadata(&w, "format", "qat-fp32-v1");
    qat_checkpoint_write_config(&w, &m->desc->config);
    if (m->kind != QAT_MODEL_GPT) {
        snprintf(buf, sizeof buf, "%.9g", (double)input_mean);
        qat_st_writer_set_metadata(&w, "input_mean", buf);
        snprintf(buf, sizeof buf, "%.9g", (double)input_std);
        qat_st_writer_set_metadata(&w, "input_std", buf);
    }
    for (int i = 0; extra && extra[i] && extra[i + 1]; i += 2) qat_st_writer_set_metadata(&w, extra[i], extra[i + 1]);
    if (st == QAT_OK) st = qat_st_writer_save(&w, path);
    qat_st_writer_free(&w);
    return st;
}

static qat_status parse_float_meta(const qat_checkpoint *ck, const char *key, float *out)
{
    const char *v = qat_st_metadata(ck->file, key);
    if (!v) return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" is missing", ck->path, key);
    char *end;
    *out = strtof(v, &end);
    if (end == v || *end != '\0')
        return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" is not a number: \"%s\"", ck->path, key, v);
    return QAT_OK;
}

qat_status qat_checkpoint_open(const char *path, qat_checkpoint *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    QAT_TRY(qat_st_load(path, &out->file));
    qat_status st = qat_checkpoint_read_config(out->file, path, &out->config);
    out->input_mean = 0.0f;
    out->input_std = 1.0f;
    if (st == QAT_OK && out->config.kind != QAT_MODEL_GPT) {
        st = parse_float_meta(out, "input_mean", &out->input_mean);
        if (st == QAT_OK) st = parse_float_meta(out, "input_std", &out->input_std);
        if (st == QAT_OK && !(out->input_std > 0))
            st = qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"input_std\" must be positive", path);
    }
    if (st != QAT_OK) qat_checkpoint_close(out);
    return st;
}

qat_status qat_checkpoint_apply(const qat_checkpoint *ck, qat_graph *g, const qat_model *m)
{
    for (int i = 0; i < m->nparams; i++) {
        if (m->params[i] < 0) continue;
        const qat_tensor *t = qat_tensor_get(g, m->params[i]);
        const qat_st_tensor *s = qat_st_find(ck->file, t->name);
        if (!s) return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\" is missing", ck->path, t->name);
        if (s->dtype != QAT_ST_F32)
            return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\" has dtype %s, expected F32", ck->path, t->name,
                                 qat_st_dtype_name(s->dtype));
        bool same = s->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = s->shape[d] == (uint64_t)t->shape[d];
        if (!same) {
            char want[64] = "", got[64] = "";
            for (int d = 0; d < t->ndim; d++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "", (long long)t->shape[d]);
            for (int d = 0; d < s->ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", d ? "," : "", (unsigned long long)s->shape[d]);
            return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\" has shape [%s], expected [%s]", ck->path, t->name,
                                 got, want);
        }
        QAT_TRY(qat_tensor_write(g, m->params[i], s->data));
    }
    return QAT_OK;
}

void qat_checkpoint_close(qat_checkpoint *ck)
{
    qat_st_free(ck->file);
    ck->file = NULL;
}
