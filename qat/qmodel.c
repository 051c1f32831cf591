#include "qat/qmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/train.h"

#define FORMAT_FP32 "qat-fp32-v1"
#define FORMAT_QUANT "qat-quant-v2"
/* Read only: the same but 2, 3 bits packed as nibbles and 5 to 7 bits as bytes. */
#define FORMAT_QUANT_V1 "qat-quant-v1"

static void weight_shape(const qat_layer_info *info, int *ndim, int64_t *shape)
{
    shape[0] = info->rows;
    if (info->conv) {
        *ndim = 4;
        shape[1] = info->in_channels;
        shape[2] = shape[3] = 3;
    } else {
        *ndim = 2;
        shape[1] = info->cols;
    }
}

static void shape_text(int ndim, const int64_t *shape, char *out, size_t size)
{
    out[0] = '\0';
    for (int d = 0; d < ndim; d++)
        snprintf(out + strlen(out), size - strlen(out), "%s%lld", d ? "," : "", (long long)shape[d]);
}

/* The shape of a layer's scale tensor: [1], [rows] or [rows, groups]. */
static void scale_shape(const qat_qscheme *s, const qat_layer_info *info, int *ndim, int64_t *shape)
{
    if (s->gran == QAT_GRAN_TENSOR) {
        *ndim = 1;
        shape[0] = 1;
    } else if (s->gran == QAT_GRAN_CHANNEL) {
        *ndim = 1;
        shape[0] = info->rows;
    } else {
        *ndim = 2;
        shape[0] = info->rows;
        shape[1] = (info->cols + s->group - 1) / s->group;
    }
}

static qat_status find_tensor(const qat_checkpoint *ck, const char *name, qat_st_dtype dtype, int ndim,
                              const int64_t *shape, const qat_st_tensor **out)
{
    const qat_st_tensor *t = qat_st_find(ck->file, name);
    if (!t) return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\" is missing", ck->path, name);
    if (t->dtype != dtype)
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\" has dtype %s, expected %s", ck->path, name,
                             qat_st_dtype_name(t->dtype), qat_st_dtype_name(dtype));
    bool same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == (uint64_t)shape[d];
    if (!same) {
        char want[64], got[64] = "";
        shape_text(ndim, shape, want, sizeof want);
        for (int d = 0; d < t->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", d ? "," : "",
                     (unsigned long long)t->shape[d]);
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\" has shape [%s], expected [%s]", ck->path, name, got,
                             want);
    }
    *out = t;
    return QAT_OK;
}

static qat_status meta_bits(const qat_checkpoint *ck, const char *key, int *bits)
{
    const char *v = qat_st_metadata(ck->file, key);
    if (!v) return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" is missing", ck->path, key);
    if (!qat_bits_parse(v, bits) || *bits == 0)
        return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" must be %d..%d, got \"%s\"", ck->path, key,
                             QAT_QBITS_MIN, QAT_QBITS_MAX, v);
    return QAT_OK;
}

/* A weight's width: "2".."8", or runs of rows ("2x16+3x112") that must
 * cover the layer's rows and come with per-row scales. */
static qat_status meta_weight_bits(const qat_checkpoint *ck, const char *key, const qat_layer_info *info,
                                   qat_qscheme *s)
{
    memset(&s->runs, 0, sizeof s->runs);
    const char *v = qat_st_metadata(ck->file, key);
    if (!v || !strchr(v, 'x')) return meta_bits(ck, key, &s->bits);
    if (!qat_bit_runs_parse(v, &s->runs))
        return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" must be %d..%d or runs BITSxROWS joined by '+', "
                             "got \"%s\"", ck->path, key, QAT_QBITS_MIN, QAT_QBITS_MAX, v);
    if (qat_bit_runs_rows(&s->runs) != info->rows)
        return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" covers %lld rows, the weight has %lld",
                             ck->path, key, (long long)qat_bit_runs_rows(&s->runs), (long long)info->rows);
    s->bits = qat_bit_runs_max_bits(&s->runs);
    return QAT_OK;
}

static qat_status meta_scheme(const qat_checkpoint *ck, const char *key, bool *symmetric)
{
    const char *v = qat_st_metadata(ck->file, key);
    if (!v) return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" is missing", ck->path, key);
    if (strcmp(v, "symmetric") == 0) *symmetric = true;
    else if (strcmp(v, "affine") == 0) *symmetric = false;
    else
        return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" must be symmetric or affine, got \"%s\"",
                             ck->path, key, v);
    return QAT_OK;
}

/* With a scheme, element i's width is its row's (per-row widths);
 * otherwise every element's is `bits`. */
static qat_status check_qparams(const qat_checkpoint *ck, const char *layer, const char *what, const float *scale,
                                const int32_t *zp, int64_t n, int bits, const qat_qscheme *s, int64_t cols)
{
    const int64_t per_row = s && s->gran == QAT_GRAN_GROUP ? (cols + s->group - 1) / s->group : 1;
    for (int64_t i = 0; i < n; i++) {
        if (s && s->runs.count) bits = qat_qscheme_row_bits(s, i / per_row);
        if (!(isfinite(scale[i]) && scale[i] > 0))
            return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s.%s_scale\" element %lld is %g (must be positive)",
                                 ck->path, layer, what, (long long)i, (double)scale[i]);
        if (zp[i] < 0 || zp[i] > qat_qmax(bits))
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: tensor \"%s.%s_zero_point\" element %lld is %d, outside [0, %d]", ck->path,
                                 layer, what, (long long)i, zp[i], qat_qmax(bits));
    }
    return QAT_OK;
}

static qat_status load_weight(const qat_checkpoint *ck, qat_qmodel *qm, int layer, bool v1_packing)
{
    const qat_layer_info *info = &qm->desc.layers[layer];
    int ndim;
    int64_t shape[4];
    weight_shape(info, &ndim, shape);
    char name[96];
    int p = info->weight;
    snprintf(name, sizeof name, "%s.weight_q", info->name);
    if (!qat_st_find(ck->file, name)) {
        const qat_st_tensor *t;
        snprintf(name, sizeof name, "%s.weight", info->name);
        QAT_TRY(find_tensor(ck, name, QAT_ST_F32, ndim, shape, &t));
        memcpy(qm->values[p], t->data, t->nbytes);
        return QAT_OK;
    }
    if (!qm->quantized)
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\" in a checkpoint whose format is not %s", ck->path,
                             name, FORMAT_QUANT);
    qat_qscheme s;
    snprintf(name, sizeof name, "%s.weight_bits", info->name);
    QAT_TRY(meta_weight_bits(ck, name, info, &s));
    if (s.runs.count && v1_packing)
        return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\": per-row widths in a %s checkpoint", ck->path,
                             name, qat_st_metadata(ck->file, "format"));
    snprintf(name, sizeof name, "%s.weight_scheme", info->name);
    QAT_TRY(meta_scheme(ck, name, &s.symmetric));
    snprintf(name, sizeof name, "%s.weight_granularity", info->name);
    const char *gran = qat_st_metadata(ck->file, name);
    if (!gran) return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\" is missing", ck->path, name);
    if (!qat_granularity_parse(gran, &s.gran, &s.group))
        return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\": bad granularity \"%s\"", ck->path, name,
                             gran);
    if (s.runs.count && s.gran == QAT_GRAN_TENSOR)
        return qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"%s\": per-row widths need per-row scales, not \"%s\"",
                             ck->path, name, gran);
    int sdim;
    int64_t sshape[2];
    scale_shape(&s, info, &sdim, sshape);
    const qat_st_tensor *ts, *tz, *tq;
    snprintf(name, sizeof name, "%s.weight_scale", info->name);
    QAT_TRY(find_tensor(ck, name, QAT_ST_F32, sdim, sshape, &ts));
    snprintf(name, sizeof name, "%s.weight_zero_point", info->name);
    QAT_TRY(find_tensor(ck, name, QAT_ST_I32, sdim, sshape, &tz));
    int64_t count = info->rows * info->cols;
    int64_t packed = (int64_t)(v1_packing ? qat_packed_size_v1(count, s.bits)
                                          : qat_qscheme_packed_size(&s, info->rows, info->cols));
    snprintf(name, sizeof name, "%s.weight_q", info->name);
    if (v1_packing ? s.bits <= 4 : s.bits < 8 || s.runs.count) QAT_TRY(find_tensor(ck, name, QAT_ST_U8, 1, &packed, &tq));
    else QAT_TRY(find_tensor(ck, name, QAT_ST_U8, ndim, shape, &tq));
    int64_t nscales = qat_qscheme_scale_count(&s, info->rows, info->cols);
    QAT_TRY(check_qparams(ck, info->name, "weight", ts->data, tz->data, nscales, s.bits, &s, info->cols));
    uint8_t *codes = qat_xmalloc((size_t)count);
    char what[1200];
    snprintf(what, sizeof what, "%s: tensor \"%s\"", ck->path, name);
    qat_status st = v1_packing ? qat_unpack_codes_v1(tq->data, tq->nbytes, count, s.bits, codes, what)
                               : qat_unpack_weight_codes(tq->data, tq->nbytes, info->rows, info->cols, &s, codes, what);
    if (st == QAT_OK) qat_qmodel_set_weight(qm, layer, &s, codes, ts->data, tz->data);
    free(codes);
    return st;
}

static qat_status load_input(const qat_checkpoint *ck, qat_qmodel *qm, int layer)
{
    const qat_layer_info *info = &qm->desc.layers[layer];
    char name[96];
    snprintf(name, sizeof name, "%s.input_scale", info->name);
    if (!qat_st_find(ck->file, name)) return QAT_OK;
    if (!qm->quantized)
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\" in a checkpoint whose format is not %s", ck->path,
                             name, FORMAT_QUANT);
    int bits;
    bool symmetric;
    const qat_st_tensor *ts, *tz;
    int64_t one = 1;
    QAT_TRY(find_tensor(ck, name, QAT_ST_F32, 1, &one, &ts));
    snprintf(name, sizeof name, "%s.input_zero_point", info->name);
    QAT_TRY(find_tensor(ck, name, QAT_ST_I32, 1, &one, &tz));
    snprintf(name, sizeof name, "%s.input_bits", info->name);
    QAT_TRY(meta_bits(ck, name, &bits));
    snprintf(name, sizeof name, "%s.input_scheme", info->name);
    QAT_TRY(meta_scheme(ck, name, &symmetric));
    QAT_TRY(check_qparams(ck, info->name, "input", ts->data, tz->data, 1, bits, NULL, 0));
    qat_qmodel_set_input(qm, layer, bits, symmetric, *(const float *)ts->data, *(const int32_t *)tz->data);
    return QAT_OK;
}

qat_status qat_qmodel_load(const char *path, qat_qmodel *qm)
{
    memset(qm, 0, sizeof *qm);
    qat_checkpoint ck;
    QAT_TRY(qat_checkpoint_open(path, &ck));
    snprintf(qm->source, sizeof qm->source, "%s", path);
    qat_status st = qat_model_desc_init(&qm->desc, &ck.config);
    QAT_ASSERT(st == QAT_OK); /* qat_checkpoint_open checked the configuration */
    qm->input_mean = ck.input_mean;
    qm->input_std = ck.input_std;
    qm->nlayers = qm->desc.nlayers;
    qm->nparams = qm->desc.nparams;
    const char *format = qat_st_metadata(ck.file, "format");
    bool v1_packing = format && strcmp(format, FORMAT_QUANT_V1) == 0;
    if (format && (strcmp(format, FORMAT_QUANT) == 0 || v1_packing)) qm->quantized = true;
    else if (format && strcmp(format, FORMAT_FP32) != 0)
        st = qat_error_set(QAT_ERR_FORMAT, "%s: metadata field \"format\": unknown format \"%s\" (expected %s or %s)",
                           path, format, FORMAT_FP32, FORMAT_QUANT);
    for (int i = 0; i < qm->nparams; i++) {
        qm->numel[i] = qm->desc.params[i].numel;
        qm->values[i] = qat_xmalloc((size_t)qm->numel[i] * sizeof(float));
    }
    /* Layer weights may be quantized and their inputs carry quantization
     * after the bias; every other parameter is FP32. */
    for (int i = 0; i < qm->nparams && st == QAT_OK; i++) {
        const qat_param_info *p = &qm->desc.params[i];
        const qat_layer_info *layer = p->layer >= 0 ? &qm->desc.layers[p->layer] : NULL;
        if (layer && layer->weight == i) {
            st = load_weight(&ck, qm, p->layer, v1_packing);
            continue;
        }
        const qat_st_tensor *t;
        st = find_tensor(&ck, p->name, QAT_ST_F32, p->ndim, p->shape, &t);
        if (st == QAT_OK) memcpy(qm->values[i], t->data, t->nbytes);
        if (st == QAT_OK && layer && layer->bias == i) st = load_input(&ck, qm, p->layer);
    }
    qat_checkpoint_close(&ck);
    if (st != QAT_OK) qat_qmodel_free(qm);
    return st;
}

void qat_qmodel_free(qat_qmodel *qm)
{
    for (int i = 0; i < QAT_MODEL_MAX_PARAMS; i++) free(qm->values[i]);
    for (int i = 0; i < QAT_MODEL_MAX_LAYERS; i++) {
        free(qm->layers[i].w_scale);
        free(qm->layers[i].w_zero_point);
        free(qm->layers[i].codes);
    }
    memset(qm, 0, sizeof *qm);
}

void qat_qmodel_prepare_weight(qat_qmodel *qm, int layer, const qat_qscheme *s)
{
    const qat_layer_info *info = &qm->desc.layers[layer];
    qat_qlayer *l = &qm->layers[layer];
    l->wbits = s->bits;
    l->wscheme = *s;
    l->nscales = qat_qscheme_scale_count(s, info->rows, info->cols);
    l->w_scale = realloc(l->w_scale, (size_t)l->nscales * sizeof(float));
    l->w_zero_point = realloc(l->w_zero_point, (size_t)l->nscales * sizeof(int32_t));
    l->codes = realloc(l->codes, (size_t)(info->rows * info->cols));
    QAT_ASSERT(l->w_scale && l->w_zero_point && l->codes);
    qm->quantized = true;
}

void qat_qmodel_dequantize_weight(qat_qmodel *qm, int layer)
{
    const qat_layer_info *info = &qm->desc.layers[layer];
    const qat_qlayer *l = &qm->layers[layer];
    qat_dequantize_weight(l->codes, info->rows, info->cols, &l->wscheme, l->w_scale, l->w_zero_point,
                          qm->values[info->weight]);
}

void qat_qmodel_set_weight(qat_qmodel *qm, int layer, const qat_qscheme *s, const uint8_t *codes, const float *scale,
                           const int32_t *zero_point)
{
    const qat_layer_info *info = &qm->desc.layers[layer];
    qat_qmodel_prepare_weight(qm, layer, s);
    qat_qlayer *l = &qm->layers[layer];
    memcpy(l->w_scale, scale, (size_t)l->nscales * sizeof(float));
    memcpy(l->w_zero_point, zero_point, (size_t)l->nscales * sizeof(int32_t));
    memcpy(l->codes, codes, (size_t)(info->rows * info->cols));
    qat_qmodel_dequantize_weight(qm, layer);
}

void qat_qmodel_set_input(qat_qmodel *qm, int layer, int bits, bool symmetric, float scale, int32_t zero_point)
{
    qat_qlayer *l = &qm->layers[layer];
    l->abits = bits;
    l->a_symmetric = symmetric;
    l->a_scale = scale;
    l->a_zero_point = zero_point;
    if (bits) qm->quantized = true;
}

qat_fq_params qat_act_fq_params(int bits, int64_t numel, qat_fq_estimator estimator)
{
    return (qat_fq_params){ .qmin = 0, .qmax = qat_qmax(bits), .layout = qat_fq_per_tensor(numel),
                            .estimator = estimator, .grad_scale = 1.0f };
}

void qat_qmodel_eval_quant(const qat_qmodel *qm, qat_model_quant *q)
{
    memset(q, 0, sizeof *q);
    for (int i = 0; i < qm->nlayers; i++) {
        if (!qm->layers[i].abits) continue;
        q->input[i].enabled = true;
        /* Per tensor: the layout does not depend on the batch. */
        const qat_layer_info *info = &qm->desc.layers[i];
        q->input[i].params = qat_act_fq_params(qm->layers[i].abits, qat_layer_input_numel(info, 1),
                                               QAT_FQ_STE_CLIPPED);
    }
}

qat_status qat_qmodel_apply(const qat_qmodel *qm, qat_graph *g, const qat_model *m)
{
    QAT_ASSERT(m->kind == qm->desc.config.kind && m->nparams == qm->nparams);
    for (int i = 0; i < qm->nparams; i++)
        if (m->params[i] >= 0) QAT_TRY(qat_tensor_write(g, m->params[i], qm->values[i]));
    for (int i = 0; i < qm->nlayers; i++) {
        const qat_model_layer *ml = &m->layers[i];
        if (ml->in_scale < 0) continue;
        const qat_qlayer *l = &qm->layers[i];
        QAT_ASSERT(l->abits > 0);
        float zp = (float)l->a_zero_point;
        QAT_TRY(qat_tensor_write(g, ml->in_scale, &l->a_scale));
        QAT_TRY(qat_tensor_write(g, ml->in_zero_point, &zp));
    }
    return QAT_OK;
}

/* Tensor order: every F32 and I32 tensor first, in the description's
 * parameter order (a quantized weight's scale and zero point in the
 * weight's place, a layer's input quantization after its bias), the U8
 * codes last, so each tensor's data stays aligned to its element size. */
static qat_status build_writer(const qat_qmodel *qm, qat_st_writer *w, uint64_t *bytes)
{
    *bytes = 0;
    char name[96];
    uint64_t shape[4];
    for (int p = 0; p < qm->nparams; p++) {
        const qat_param_info *pi = &qm->desc.params[p];
        const qat_layer_info *info = pi->layer >= 0 ? &qm->desc.layers[pi->layer] : NULL;
        const qat_qlayer *l = info ? &qm->layers[pi->layer] : NULL;
        int ndim;
        int64_t s64[4];
        if (info && info->weight == p && l->wbits) {
            scale_shape(&l->wscheme, info, &ndim, s64);
            for (int d = 0; d < ndim; d++) shape[d] = (uint64_t)s64[d];
            snprintf(name, sizeof name, "%s.weight_scale", info->name);
            QAT_TRY(qat_st_writer_add(w, name, QAT_ST_F32, shape, ndim, l->w_scale, (size_t)l->nscales * 4));
            snprintf(name, sizeof name, "%s.weight_zero_point", info->name);
            QAT_TRY(qat_st_writer_add(w, name, QAT_ST_I32, shape, ndim, l->w_zero_point, (size_t)l->nscales * 4));
            *bytes += (uint64_t)l->nscales * 8;
            continue;
        }
        for (int d = 0; d < pi->ndim; d++) shape[d] = (uint64_t)pi->shape[d];
        QAT_TRY(qat_st_writer_add(w, pi->name, QAT_ST_F32, shape, pi->ndim, qm->values[p], (size_t)pi->numel * 4));
        *bytes += (uint64_t)pi->numel * 4;
        if (info && info->bias == p && l->abits) {
            shape[0] = 1;
            snprintf(name, sizeof name, "%s.input_scale", info->name);
            QAT_TRY(qat_st_writer_add(w, name, QAT_ST_F32, shape, 1, &l->a_scale, 4));
            snprintf(name, sizeof name, "%s.input_zero_point", info->name);
            QAT_TRY(qat_st_writer_add(w, name, QAT_ST_I32, shape, 1, &l->a_zero_point, 4));
            *bytes += 8;
        }
    }
    for (int i = 0; i < qm->nlayers; i++) {
        const qat_layer_info *info = &qm->desc.layers[i];
        const qat_qlayer *l = &qm->layers[i];
        if (!l->wbits) continue;
        size_t packed_bytes = qat_qscheme_packed_size(&l->wscheme, info->rows, info->cols);
        uint8_t *packed = qat_xmalloc(packed_bytes ? packed_bytes : 1);
        qat_pack_weight_codes(l->codes, info->rows, info->cols, &l->wscheme, packed);
        int ndim = 1;
        int64_t s64[4] = { (int64_t)packed_bytes };
        if (l->wbits == 8 && !l->wscheme.runs.count) weight_shape(info, &ndim, s64);
        for (int d = 0; d < ndim; d++) shape[d] = (uint64_t)s64[d];
        snprintf(name, sizeof name, "%s.weight_q", info->name);
        qat_status st = qat_st_writer_add(w, name, QAT_ST_U8, shape, ndim, packed, packed_bytes);
        free(packed);
        QAT_TRY(st);
        *bytes += packed_bytes;
    }
    return QAT_OK;
}

uint64_t qat_qmodel_bytes(const qat_qmodel *qm)
{
    qat_st_writer w;
    qat_st_writer_init(&w);
    uint64_t bytes = 0;
    qat_status st = build_writer(qm, &w, &bytes);
    QAT_ASSERT(st == QAT_OK);
    qat_st_writer_free(&w);
    return bytes;
}

qat_status qat_qmodel_save(const qat_qmodel *qm, const char *path, const char *const *extra)
{
    qat_st_writer w;
    qat_st_writer_init(&w);
    uint64_t bytes;
    qat_status st = build_writer(qm, &w, &bytes);
    char key[96], value[QAT_BIT_RUNS_TEXT_MAX];
    qat_st_writer_set_metadata(&w, "format", qm->quantized ? FORMAT_QUANT : FORMAT_FP32);
    qat_checkpoint_write_config(&w, &qm->desc.config);
    if (qm->desc.config.kind != QAT_MODEL_GPT) {
        snprintf(value, sizeof value, "%.9g", (double)qm->input_mean);
        qat_st_writer_set_metadata(&w, "input_mean", value);
        snprintf(value, sizeof value, "%.9g", (double)qm->input_std);
        qat_st_writer_set_metadata(&w, "input_std", value);
    }
    for (int i = 0; i < qm->nlayers; i++) {
        const qat_layer_info *info = &qm->desc.layers[i];
        const qat_qlayer *l = &qm->layers[i];
        if (l->wbits) {
            int ndim;
            int64_t shape[4];
            weight_shape(info, &ndim, shape);
            snprintf(key, sizeof key, "%s.weight_bits", info->name);
            if (l->wscheme.runs.count) qat_bit_runs_format(&l->wscheme.runs, value, sizeof value);
            else snprintf(value, sizeof value, "%d", l->wbits);
            qat_st_writer_set_metadata(&w, key, value);
            snprintf(key, sizeof key, "%s.weight_scheme", info->name);
            qat_st_writer_set_metadata(&w, key, l->wscheme.symmetric ? "symmetric" : "affine");
            snprintf(key, sizeof key, "%s.weight_granularity", info->name);
            qat_granularity_format(l->wscheme.gran, l->wscheme.group, value, sizeof value);
            qat_st_writer_set_metadata(&w, key, value);
            snprintf(key, sizeof key, "%s.weight_shape", info->name);
            shape_text(ndim, shape, value, sizeof value);
            qat_st_writer_set_metadata(&w, key, value);
        }
        if (l->abits) {
            snprintf(key, sizeof key, "%s.input_bits", info->name);
            snprintf(value, sizeof value, "%d", l->abits);
            qat_st_writer_set_metadata(&w, key, value);
            snprintf(key, sizeof key, "%s.input_scheme", info->name);
            qat_st_writer_set_metadata(&w, key, l->a_symmetric ? "symmetric" : "affine");
        }
    }
    for (int i = 0; extra && extra[i] && extra[i + 1]; i += 2) qat_st_writer_set_metadata(&w, extra[i], extra[i + 1]);
    if (st == QAT_OK) st = qat_st_writer_save(&w, path);
    qat_st_writer_free(&w);
    return st;
}

qat_status qat_qmodel_eval_graph(const qat_qmodel *qm, qat_ctx *ctx, int batch, qat_graph **g, qat_model *m,
                                 qat_seq **forward)
{
    *g = qat_graph_create(ctx);
    *forward = NULL;
    qat_model_quant q;
    qat_qmodel_eval_quant(qm, &q);
    qat_model_build_quant(*g, &qm->desc, batch, false, &q, m);
    QAT_TRY(qat_graph_compile(*g));
    QAT_TRY(qat_qmodel_apply(qm, *g, m));
    return qat_seq_create(*g, 0, qat_graph_node_count(*g), forward);
}

qat_status qat_qmodel_evaluate(const qat_qmodel *qm, qat_ctx *ctx, const qat_image_set *set, int batch,
                               qat_eval_result *out)
{
    qat_graph *g;
    qat_model m;
    qat_seq *forward;
    qat_status st = qat_qmodel_eval_graph(qm, ctx, batch, &g, &m, &forward);
    if (st == QAT_OK) st = qat_evaluate(g, &m, forward, set, qm->input_mean, qm->input_std, out);
    qat_seq_free(forward);
    qat_graph_free(g);
    return st;
}

qat_status qat_qmodel_predict(const qat_qmodel *qm, qat_ctx *ctx, const qat_image_set *set, uint32_t count,
                              int batch, int *predictions)
{
    QAT_ASSERT(count <= set->count && batch > 0);
    qat_graph *g;
    qat_model m;
    qat_seq *forward;
    qat_status st = qat_qmodel_eval_graph(qm, ctx, batch, &g, &m, &forward);
    uint32_t *indices = qat_xmalloc((size_t)batch * sizeof *indices);
    int classes = (int)qat_tensor_get(g, m.logits)->shape[1];
    qat_graph_set_phase(g, false, 0);
    for (uint32_t start = 0; start < count && st == QAT_OK; start += (uint32_t)batch) {
        uint32_t valid = count - start < (uint32_t)batch ? count - start : (uint32_t)batch;
        for (uint32_t i = 0; i < (uint32_t)batch; i++) indices[i] = start + (i < valid ? i : 0);
        qat_image_set_batch_f32(set, indices, (uint32_t)batch, qm->input_mean, qm->input_std,
                                qat_graph_input_slot(g, m.x), qat_graph_input_slot(g, m.labels));
        st = qat_seq_run(forward);
        const float *logits = qat_graph_output_slot(g, m.logits);
        for (uint32_t i = 0; st == QAT_OK && i < valid; i++) {
            const float *row = logits + (size_t)i * classes;
            int best = 0;
            for (int j = 1; j < classes; j++)
                if (row[j] > row[best]) best = j;
            predictions[start + i] = best;
        }
    }
    free(indices);
    qat_seq_free(forward);
    qat_graph_free(g);
    return st;
}
