#include "qat/mixed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/context.h"
#include "qat/fileio.h"
#include "qat/observer.h"
#include "qat/progress.h"
#include "qat/quantize_common.h"
#include "qat/version.h"

typedef struct bits_run {
    const qat_bits_options *o;
    quant_run run;
    int nq;                         /* quantizable layers */
    int qlayer[QAT_MODEL_MAX_LAYERS];/* their indices in the description */
    int n;                          /* units: the layers, or blocks of their rows */
    int layer[QAT_BITS_MAX_UNITS];  /* a unit's layer (index in the description) */
    int64_t row0[QAT_BITS_MAX_UNITS], rows[QAT_BITS_MAX_UNITS];
    qat_bits_layer table[QAT_BITS_MAX_UNITS];
    qat_bits_problem problem;
    int manual_bits[QAT_BITS_MAX_UNITS];
    uint64_t rest_bytes;            /* everything in the checkpoint but the layers' weights */
    /* Sensitivity on the device. */
    qat_graph *g;
    qat_model m;
    qat_seq *seq;
} bits_run;

static qat_bits_role layer_role(const char *name)
{
    if (strstr(name, ".attn.")) return QAT_BITS_ROLE_ATTENTION;
    if (strstr(name, ".mlp.")) return QAT_BITS_ROLE_MLP;
    return QAT_BITS_ROLE_OTHER;
}

/* Unit i's FP32 weights: its rows of its layer's weight. */
static const float *fp32_weight(const bits_run *b, int i)
{
    const qat_layer_info *info = &b->run.fp32.desc.layers[b->layer[i]];
    return b->run.fp32.values[info->weight] + b->row0[i] * info->cols;
}

/* Round to nearest at `bits` with the run's scheme and observer, as PTQ's
 * rtn does it: unit i's dequantized weight into q. Scales are per row or
 * per group of a row (build_problem refuses row units per tensor), so a
 * block of rows quantizes as it does within the whole layer. */
static void weight_rtn(const bits_run *b, int i, int bits, float *q)
{
    const qat_layer_info *info = &b->run.fp32.desc.layers[b->layer[i]];
    qat_qscheme s = qat_qconfig_weight_scheme(&b->run.qc, b->layer[i]);
    s.bits = bits;
    memset(&s.runs, 0, sizeof s.runs);
    const int64_t rows = b->rows[i];
    int64_t nscales = qat_qscheme_scale_count(&s, rows, info->cols);
    float *scale = qat_xmalloc((size_t)nscales * sizeof *scale);
    int32_t *zero = qat_xmalloc((size_t)nscales * sizeof *zero);
    uint8_t *codes = qat_xmalloc((size_t)(rows * info->cols));
    const float *w = fp32_weight(b, i);
    qat_weight_qparams(w, rows, info->cols, &s, b->run.o->observer, scale, zero);
    qat_quantize_weight(w, rows, info->cols, &s, scale, zero, codes);
    qat_dequantize_weight(codes, rows, info->cols, &s, scale, zero, q);
    free(scale), free(zero), free(codes);
}

static qat_status build_graph(bits_run *b, bool gradients)
{
    quant_run *run = &b->run;
    b->g = qat_graph_create(run->ctx);
    qat_model_build(b->g, &run->fp32.desc, run->o->batch, gradients, &b->m);
    if (gradients) qat_graph_backward(b->g, b->m.loss);
    QAT_TRY(qat_graph_compile(b->g));
    QAT_TRY(qat_qmodel_apply(&run->fp32, b->g, &b->m));
    qat_graph_set_phase(b->g, false, 0);
    return qat_seq_create(b->g, 0, qat_graph_node_count(b->g), &b->seq);
}

static void free_graph(bits_run *b)
{
    qat_seq_free(b->seq);
    qat_graph_free(b->g);
    b->seq = NULL;
    b->g = NULL;
}

/* The mean loss over the calibration batches, summed in double. */
static qat_status calib_loss(bits_run *b, double *loss)
{
    double sum = 0;
    for (int k = 0; k < b->run.o->calib_batches; k++) {
        quant_fill_calib_batch(&b->run, b->g, &b->m, k);
        QAT_TRY(qat_seq_run(b->seq));
        sum += *(const float *)qat_graph_output_slot(b->g, b->m.loss);
    }
    *loss = sum / b->run.o->calib_batches;
    return QAT_OK;
}

static qat_status measure_perturbation(bits_run *b, qat_bits_result *r)
{
    const qat_bits_problem *p = &b->problem;
    QAT_TRY(build_graph(b, false));
    QAT_TRY(calib_loss(b, &r->calib_loss));
    qat_progress bar;
    qat_progress_begin(&bar, "perturbation", (uint64_t)(b->n * p->ncandidates));
    qat_status st = QAT_OK;
    for (int i = 0; i < b->n && st == QAT_OK; i++) {
        const qat_layer_info *info = &b->run.fp32.desc.layers[b->layer[i]];
        int t = b->m.params[info->weight];
        /* The whole layer in FP32 but the unit's rows. */
        const float *w = b->run.fp32.values[info->weight];
        float *layer = qat_xmalloc((size_t)(info->rows * info->cols) * sizeof *layer);
        memcpy(layer, w, (size_t)(info->rows * info->cols) * sizeof *layer);
        float *q = layer + b->row0[i] * info->cols;
        for (int k = 0; k < p->ncandidates && st == QAT_OK; k++) {
            weight_rtn(b, i, p->bits[k], q);
            double loss = 0;
            st = qat_tensor_write(b->g, t, layer);
            if (st == QAT_OK) st = calib_loss(b, &loss);
            /* A quantized layer can lower the calibration loss by chance;
             * strategies read that as "free", not as a gain. */
            b->table[i].cost[k] = fmax(loss - r->calib_loss, 0.0);
            if (k == 0) r->layers[i].sensitivity = loss - r->calib_loss;
            qat_progress_update(&bar, (uint64_t)(i * p->ncandidates + k + 1), info->name);
        }
        if (st == QAT_OK) st = qat_tensor_write(b->g, t, w);
        free(layer);
    }
    qat_progress_end(&bar);
    return st;
}

/* Runs calibration batch k forward and backward; the loss into *loss and
 * the gradients of the quantizable layers' weights, concatenated in layer
 * order, into g. */
static qat_status batch_gradient(bits_run *b, int k, float *g, double *loss)
{
    const qat_model_desc *d = &b->run.fp32.desc;
    quant_fill_calib_batch(&b->run, b->g, &b->m, k);
    QAT_TRY(qat_seq_run(b->seq));
    *loss = *(const float *)qat_graph_output_slot(b->g, b->m.loss);
    int64_t at = 0;
    for (int i = 0; i < b->nq; i++) {
        const qat_layer_info *info = &d->layers[b->qlayer[i]];
        QAT_TRY(qat_tensor_read(b->g, qat_tensor_cget(b->g, b->m.params[info->weight])->grad, g + at));
        at += info->rows * info->cols;
    }
    return QAT_OK;
}

/* The gradient of the mean calibration loss with respect to the quantizable
 * layers' weights, concatenated in layer order. */
static qat_status layers_gradient(void *user, const float *w, float *grad, double *loss_out)
{
    bits_run *b = user;
    const qat_model_desc *d = &b->run.fp32.desc;
    int64_t at = 0;
    for (int i = 0; i < b->nq; i++) {
        const qat_layer_info *info = &d->layers[b->qlayer[i]];
        QAT_TRY(qat_tensor_write(b->g, b->m.params[info->weight], w + at));
        at += info->rows * info->cols;
    }
    int64_t total = at;
    double *sum = qat_xcalloc((size_t)total, sizeof *sum);
    float *g = qat_xmalloc((size_t)total * sizeof *g);
    double loss = 0;
    qat_status st = QAT_OK;
    for (int k = 0; k < b->run.o->calib_batches && st == QAT_OK; k++) {
        double batch_loss = 0;
        st = batch_gradient(b, k, g, &batch_loss);
        loss += batch_loss;
        for (int64_t j = 0; j < total; j++) sum[j] += g[j];
    }
    for (int64_t j = 0; j < total; j++) grad[j] = (float)(sum[j] / b->run.o->calib_batches);
    if (loss_out) *loss_out = loss / b->run.o->calib_batches;
    free(sum), free(g);
    return st;
}

static int64_t layers_numel(const bits_run *b)
{
    int64_t n = 0;
    for (int i = 0; i < b->n; i++) n += b->table[i].numel;
    return n;
}

static float *concat_weights(const bits_run *b)
{
    float *w = qat_xmalloc((size_t)layers_numel(b) * sizeof *w);
    int64_t at = 0;
    for (int i = 0; i < b->n; i++) {
        memcpy(w + at, fp32_weight(b, i), (size_t)b->table[i].numel * sizeof *w);
        at += b->table[i].numel;
    }
    return w;
}

static void weight_errors(const bits_run *b, qat_bits_result *r)
{
    for (int i = 0; i < b->n; i++) {
        float *q = qat_xmalloc((size_t)b->table[i].numel * sizeof *q);
        const float *w = fp32_weight(b, i);
        for (int k = 0; k < b->problem.ncandidates; k++) {
            weight_rtn(b, i, b->problem.bits[k], q);
            double e = 0;
            for (int64_t j = 0; j < b->table[i].numel; j++) e += ((double)q[j] - w[j]) * ((double)q[j] - w[j]);
            r->layers[i].weight_error[k] = e;
        }
        free(q);
    }
}

static qat_status measure_hessian(bits_run *b, qat_bits_result *r)
{
    const qat_bits_options *o = b->o;
    QAT_TRY(build_graph(b, true));
    QAT_TRY(calib_loss(b, &r->calib_loss));
    int64_t numel[QAT_BITS_MAX_UNITS];
    for (int i = 0; i < b->n; i++) numel[i] = b->table[i].numel;
    qat_hutchinson_options ho = {
        .min_probes = o->min_probes ? o->min_probes : 8, .max_probes = o->max_probes ? o->max_probes : 32,
        .rel_tol = o->probe_tol > 0 ? o->probe_tol : 0.1, .eps_rel = 1e-2, .seed = b->run.o->seed,
        .progress_label = "hutchinson",
    };
    if (ho.max_probes < ho.min_probes) ho.min_probes = ho.max_probes;
    float *w0 = concat_weights(b);
    double trace[QAT_BITS_MAX_UNITS], err[QAT_BITS_MAX_UNITS];
    qat_hutchinson_result hr;
    qat_status st = qat_hutchinson_trace(layers_gradient, b, b->n, numel, w0, &ho, trace, err, &hr);
    free(w0);
    if (st != QAT_OK) return st;
    r->probes = hr.probes;
    r->settled = hr.settled;
    for (int i = 0; i < b->n; i++) {
        r->layers[i].sensitivity = trace[i] / (double)numel[i];
        r->layers[i].sensitivity_err = err[i] / (double)numel[i];
        /* A negative trace (a saddle direction, or noise around zero)
         * would make quantizing that layer look like a gain. */
        double curvature = fmax(trace[i], 0.0) / (double)numel[i];
        for (int k = 0; k < b->problem.ncandidates; k++)
            b->table[i].cost[k] = curvature * r->layers[i].weight_error[k];
    }
    return QAT_OK;
}

static qat_status measure_fisher(bits_run *b, qat_bits_result *r)
{
    QAT_TRY(build_graph(b, true));
    int64_t total = layers_numel(b);
    double *fisher = qat_xcalloc((size_t)total, sizeof *fisher);
    float *g = qat_xmalloc((size_t)total * sizeof *g);
    double loss = 0;
    qat_status st = QAT_OK;
    int batches = b->run.o->calib_batches;
    qat_progress bar;
    qat_progress_begin(&bar, "fisher", (uint64_t)batches);
    for (int k = 0; k < batches && st == QAT_OK; k++) {
        double batch_loss = 0;
        st = batch_gradient(b, k, g, &batch_loss);
        loss += batch_loss;
        for (int64_t j = 0; j < total; j++) fisher[j] += (double)g[j] * g[j] / batches;
        qat_progress_update(&bar, (uint64_t)k + 1, "");
    }
    qat_progress_end(&bar);
    r->calib_loss = loss / batches;
    int64_t at = 0;
    for (int i = 0; i < b->n && st == QAT_OK; i++) {
        int64_t n = b->table[i].numel;
        double mean = 0;
        for (int64_t j = 0; j < n; j++) mean += fisher[at + j];
        r->layers[i].sensitivity = mean / (double)n;
        float *q = qat_xmalloc((size_t)n * sizeof *q);
        const float *w = fp32_weight(b, i);
        for (int k = 0; k < b->problem.ncandidates; k++) {
            weight_rtn(b, i, b->problem.bits[k], q);
            double c = 0;
            for (int64_t j = 0; j < n; j++) c += fisher[at + j] * ((double)q[j] - w[j]) * ((double)q[j] - w[j]);
            b->table[i].cost[k] = c;
        }
        free(q);
        at += n;
    }
    free(fisher), free(g);
    return st;
}

/* --- the sensitivity cache --- */

static void cache_key(const bits_run *b, const qat_bits_options *o, qat_sensitivity_kind kind, uint64_t ckpt_hash,
                      size_t ckpt_bytes, char *key, size_t size)
{
    const qat_quantize_options *q = b->run.o;
    char cands[32] = "";
    for (int k = 0; k < b->problem.ncandidates; k++)
        snprintf(cands + strlen(cands), sizeof cands - strlen(cands), "%s%d", k ? "," : "", b->problem.bits[k]);
    char gran[32];
    qat_granularity_format(q->granularity, q->group, gran, sizeof gran);
    snprintf(key, size,
             "qat-sensitivity-v1 %s ckpt=%016llx:%zu calib=%d batch=%d seed=%llu val=%u train_limit=%u data=%s "
             "val_permille=%u candidates=%s granularity=%s symmetric=%d observer=%s probes=%d:%d tol=%.17g unit=%d",
             qat_sensitivity_name(kind), (unsigned long long)ckpt_hash, ckpt_bytes, q->calib_batches, q->batch,
             (unsigned long long)q->seed, q->val_count, q->train_limit, q->data_spec ? q->data_spec : "-",
             q->val_permille, cands, gran, q->weight_symmetric, qat_observer_name(q->observer), o->min_probes,
             o->max_probes, o->probe_tol, o->unit_rows);
}

/* Reads the costs if the file holds this key and every layer; false on any
 * mismatch (then the caller measures and rewrites it). */
static bool cache_read(bits_run *b, const char *path, const char *key, qat_bits_result *r)
{
    void *data;
    size_t size;
    if (qat_file_read_all(path, &data, &size) != QAT_OK) {
        qat_error_clear();
        return false;
    }
    char *text = qat_xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    free(data);
    bool ok = false;
    size_t klen = strlen(key);
    char *p = text;
    if (strncmp(p, key, klen) == 0 && p[klen] == '\n') {
        p += klen + 1;
        int probes, settled, used;
        ok = sscanf(p, "%lf %d %d\n%n", &r->calib_loss, &probes, &settled, &used) == 3;
        p += ok ? used : 0;
        r->probes = probes, r->settled = settled;
        for (int i = 0; ok && i < b->n; i++) {
            char name[64];
            ok = sscanf(p, "%63s %lf %lf%n", name, &r->layers[i].sensitivity, &r->layers[i].sensitivity_err, &used) ==
                     3 && strcmp(name, b->table[i].name) == 0;
            p += ok ? used : 0;
            for (int k = 0; ok && k < b->problem.ncandidates; k++) {
                ok = sscanf(p, "%lf%n", &b->table[i].cost[k], &used) == 1;
                p += ok ? used : 0;
            }
        }
    }
    free(text);
    return ok;
}

static qat_status cache_write(const bits_run *b, const char *path, const char *key, const qat_bits_result *r)
{
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    /* %.17g: the values read back are the measured ones, bit for bit. */
    qat_strbuf_printf(&sb, "%s\n%.17g %d %d\n", key, r->calib_loss, r->probes, (int)r->settled);
    for (int i = 0; i < b->n; i++) {
        qat_strbuf_printf(&sb, "%s %.17g %.17g", b->table[i].name, r->layers[i].sensitivity,
                          r->layers[i].sensitivity_err);
        for (int k = 0; k < b->problem.ncandidates; k++) qat_strbuf_printf(&sb, " %.17g", b->table[i].cost[k]);
        qat_strbuf_printf(&sb, "\n");
    }
    qat_status st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

static qat_status measure(bits_run *b, qat_bits_result *r)
{
    qat_status st = r->sensitivity == QAT_SENSITIVITY_PERTURBATION ? measure_perturbation(b, r)
                    : r->sensitivity == QAT_SENSITIVITY_HESSIAN    ? measure_hessian(b, r)
                                                                   : measure_fisher(b, r);
    free_graph(b);
    return st;
}

/* Measures (or reads from the cache) every layer's cost at every candidate. */
static qat_status measure_costs(bits_run *b, const qat_bits_options *o, qat_bits_result *r)
{
    weight_errors(b, r);
    if (!o->sensitivity_cache) return measure(b, r);
    void *ckpt;
    size_t ckpt_bytes;
    QAT_TRY(qat_file_read_all(o->q.ckpt, &ckpt, &ckpt_bytes));
    uint64_t hash = qat_fnv1a64(ckpt, ckpt_bytes);
    free(ckpt);
    char key[1024];
    cache_key(b, o, r->sensitivity, hash, ckpt_bytes, key, sizeof key);
    if (cache_read(b, o->sensitivity_cache, key, r)) {
        r->from_cache = true;
        return QAT_OK;
    }
    QAT_TRY(measure(b, r));
    return cache_write(b, o->sensitivity_cache, key, r);
}

/* The table: the layers the run's uniform config quantizes (every layer of
 * the image models, the blocks' linear layers of the gpt) with their bytes at
 * each candidate; the rest of the checkpoint counted once. */
static qat_status build_problem(bits_run *b, const qat_bits_options *o)
{
    quant_run *run = &b->run;
    const qat_model_desc *d = &run->fp32.desc;
    qat_bits_problem *p = &b->problem;
    memset(p, 0, sizeof *p);
    if (o->ncandidates) {
        p->ncandidates = o->ncandidates;
        memcpy(p->bits, o->candidates, sizeof p->bits);
    } else {
        for (int bits = QAT_QBITS_MIN; bits <= QAT_QBITS_MAX; bits++) p->bits[p->ncandidates++] = bits;
    }
    b->rest_bytes = 0;
    for (int i = 0; i < d->nparams; i++) {
        const qat_param_info *pi = &d->params[i];
        if (pi->layer >= 0 && d->layers[pi->layer].weight == i && run->qc.layers[pi->layer].wbits) continue;
        b->rest_bytes += (uint64_t)pi->numel * 4;
    }
    for (int l = 0; l < d->nlayers; l++) {
        if (!run->qc.layers[l].wbits) continue;
        if (o->q.abits) b->rest_bytes += 8; /* the input's scale and zero point */
        const qat_layer_info *info = &d->layers[l];
        const qat_layer_qconfig *lq = &run->qc.layers[l];
        if (o->unit_rows && lq->gran == QAT_GRAN_TENSOR)
            return qat_error_set(QAT_ERR_INVALID, "--unit rows:%d: blocks of rows need per-row scales, use "
                                 "--granularity channel or group:G", o->unit_rows);
        b->qlayer[b->nq++] = l;
        const int64_t step = o->unit_rows ? o->unit_rows : info->rows;
        /* A map line holds at most QAT_MAX_BIT_RUNS runs per layer. */
        if ((info->rows + step - 1) / step > QAT_MAX_BIT_RUNS)
            return qat_error_set(QAT_ERR_INVALID, "--unit rows:%d: layer %s has %lld rows, more than %d blocks; use "
                                 "rows:%lld or more", o->unit_rows, info->name, (long long)info->rows,
                                 QAT_MAX_BIT_RUNS, (long long)((info->rows + QAT_MAX_BIT_RUNS - 1) / QAT_MAX_BIT_RUNS));
        for (int64_t r0 = 0; r0 < info->rows; r0 += step) {
            if (b->n == QAT_BITS_MAX_UNITS)
                return qat_error_set(QAT_ERR_INVALID, "--unit rows:%d: more than %d units; use larger blocks",
                                     o->unit_rows, QAT_BITS_MAX_UNITS);
            int i = b->n++;
            b->layer[i] = l;
            b->row0[i] = r0;
            b->rows[i] = info->rows - r0 < step ? info->rows - r0 : step;
            qat_bits_layer *t = &b->table[i];
            memset(t, 0, sizeof *t);
            if (o->unit_rows)
                snprintf(t->name, sizeof t->name, "%s[%lld:%lld]", info->name, (long long)r0,
                         (long long)(r0 + b->rows[i]));
            else
                snprintf(t->name, sizeof t->name, "%s", info->name);
            t->numel = b->rows[i] * info->cols;
            t->role = layer_role(info->name);
            t->first = b->nq == 1;
            /* Each unit's codes rounded up to whole bytes: a layer's stream
             * across its units takes at most that. */
            for (int k = 0; k < p->ncandidates; k++)
                t->bytes[k] = qat_bits_weight_bytes(b->rows[i], info->cols, p->bits[k], lq->gran, lq->group);
        }
    }
    for (int i = b->n - 1; i >= 0 && b->layer[i] == b->layer[b->n - 1]; i--) b->table[i].last = true;
    p->nlayers = b->n;
    p->layers = b->table;
    return QAT_OK;
}

static qat_status set_budget(bits_run *b, const qat_bits_options *o)
{
    qat_bits_problem *p = &b->problem;
    if (!o->budget) {
        p->budget_bytes = UINT64_MAX;
        return QAT_OK;
    }
    bool is_bytes;
    double avg;
    uint64_t bytes;
    if (!qat_bits_budget_parse(o->budget, &is_bytes, &avg, &bytes))
        return qat_error_set(QAT_ERR_INVALID, "--budget: expected average weight bits (1..8, e.g. 3 or 2.5) or a "
                             "size (e.g. 120KB, 1.5MB), got '%s'", o->budget);
    if (is_bytes) {
        if (bytes <= b->rest_bytes)
            return qat_error_set(QAT_ERR_INVALID, "--budget %s: the checkpoint's FP32 tensors alone take %llu bytes",
                                 o->budget, (unsigned long long)b->rest_bytes);
        p->budget_bytes = bytes - b->rest_bytes;
        return QAT_OK;
    }
    int64_t numel[QAT_BITS_MAX_UNITS];
    uint64_t scale_bytes[QAT_BITS_MAX_UNITS];
    for (int i = 0; i < b->n; i++) {
        numel[i] = b->table[i].numel;
        scale_bytes[i] = b->table[i].bytes[0] - qat_packed_size(numel[i], p->bits[0]);
    }
    p->budget_bytes = qat_bits_budget_from_avg(b->n, numel, scale_bytes, avg);
    return QAT_OK;
}

/* The manual strategy's bits: the map applied over the uniform config. */
static qat_status load_manual(bits_run *b, const qat_bits_options *o)
{
    if (!o->q.bits_map) return QAT_OK;
    qat_qconfig mapped = b->run.qc;
    QAT_TRY(qat_qconfig_load_bits_map(&mapped, o->q.bits_map));
    for (int i = 0; i < b->n; i++) {
        const qat_layer_qconfig *lq = &mapped.layers[b->layer[i]];
        if (!lq->wbits)
            return qat_error_set(QAT_ERR_INVALID, "%s: layer %s is fp32; the manual strategy assigns bits to every "
                                 "quantizable layer", o->q.bits_map, b->table[i].name);
        qat_qscheme s = {.bits = lq->wbits, .gran = QAT_GRAN_CHANNEL, .runs = lq->wruns};
        b->manual_bits[i] = qat_qscheme_row_bits(&s, b->row0[i]);
        for (int64_t r = b->row0[i] + 1; r < b->row0[i] + b->rows[i]; r++)
            if (qat_qscheme_row_bits(&s, r) != b->manual_bits[i])
                return qat_error_set(QAT_ERR_INVALID, "%s: the rows of unit %s have different widths; choose a --unit "
                                     "that the map's runs align with", o->q.bits_map, b->table[i].name);
    }
    b->problem.manual_bits = b->manual_bits;
    return QAT_OK;
}

/* The units of layer b->qlayer[q]: [*first, *end). */
static void layer_units(const bits_run *b, int q, int *first, int *end)
{
    int i = 0;
    while (i < b->n && b->layer[i] != b->qlayer[q]) i++;
    *first = i;
    while (i < b->n && b->layer[i] == b->qlayer[q]) i++;
    *end = i;
}

/* Layer b->qlayer[q]'s scheme with the widths its units got (runs only
 * when they differ), and the bytes its weight takes in a checkpoint. */
static uint64_t layer_choice(const bits_run *b, const qat_bits_result *r, int q, qat_qscheme *s)
{
    const int l = b->qlayer[q];
    const qat_layer_info *info = &b->run.fp32.desc.layers[l];
    *s = qat_qconfig_weight_scheme(&b->run.qc, l);
    memset(&s->runs, 0, sizeof s->runs);
    int first, end;
    layer_units(b, q, &first, &end);
    for (int i = first; i < end; i++) {
        bool fits = qat_bit_runs_append(&s->runs, r->layers[i].bits, b->rows[i]);
        QAT_ASSERT(fits); /* build_problem keeps a layer's units within QAT_MAX_BIT_RUNS */
    }
    s->bits = qat_bit_runs_max_bits(&s->runs);
    if (s->runs.count == 1) memset(&s->runs, 0, sizeof s->runs);
    return qat_qscheme_packed_size(s, info->rows, info->cols) +
           8 * (uint64_t)qat_qscheme_scale_count(s, info->rows, info->cols);
}

static qat_status write_map(const bits_run *b, const qat_bits_result *r, const qat_bits_options *o)
{
    const quant_run *run = &b->run;
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "# qat bits --strategy %s --budget %s: %llu of %llu bytes for the layers' weights "
                      "(%.3f average weight bits, %.3f with scales and zero points); model %llu bytes (fp32 %llu)\n",
                      o->strategy, o->budget ? o->budget : "none", (unsigned long long)r->layer_bytes,
                      (unsigned long long)r->layer_budget_bytes, r->avg_bits, r->bits_per_weight,
                      (unsigned long long)r->model_bytes, (unsigned long long)r->fp32_bytes);
    if (r->measured) {
        qat_strbuf_printf(&sb, "# sensitivity %s on %d calibration batches of %d (loss %.6f)", 
                          qat_sensitivity_name(r->sensitivity), run->o->calib_batches, run->o->batch, r->calib_loss);
        if (r->sensitivity == QAT_SENSITIVITY_HESSIAN)
            qat_strbuf_printf(&sb, ", %d Hutchinson probes%s", r->probes, r->settled ? "" : " (not settled)");
        qat_strbuf_printf(&sb, "; total cost %.6g", r->total_cost);
        if (r->from_cache) qat_strbuf_printf(&sb, "; costs read from %s", o->sensitivity_cache);
        qat_strbuf_printf(&sb, "\n");
    }
    qat_strbuf_printf(&sb, "# checkpoint %s, seed %llu, qat %s, device %s (%s %s)\n", o->q.ckpt,
                      (unsigned long long)run->o->seed, qat_git_commit(), run->ctx->info.name,
                      run->ctx->info.driver_name, run->ctx->info.driver_info);
    qat_strbuf_printf(&sb, "# layer  weight-bits  activation-bits  granularity   # weights, bytes%s\n",
                      r->measured ? ", sensitivity, cost" : "");
    for (int q = 0; q < b->nq; q++) {
        const qat_layer_info *info = &run->fp32.desc.layers[b->qlayer[q]];
        const qat_layer_qconfig *lq = &run->qc.layers[b->qlayer[q]];
        char gran[32], abits[8], wbits[QAT_BIT_RUNS_TEXT_MAX];
        qat_granularity_format(lq->gran, lq->group, gran, sizeof gran);
        if (o->q.abits) snprintf(abits, sizeof abits, "%d", o->q.abits);
        else snprintf(abits, sizeof abits, "fp32");
        qat_qscheme s;
        uint64_t bytes = layer_choice(b, r, q, &s);
        if (s.runs.count) qat_bit_runs_format(&s.runs, wbits, sizeof wbits);
        else snprintf(wbits, sizeof wbits, "%d", s.bits);
        qat_strbuf_printf(&sb, "%s %s %s %s   # %lld, %llu", info->name, wbits, abits, gran,
                          (long long)(info->rows * info->cols), (unsigned long long)bytes);
        int first, end;
        layer_units(b, q, &first, &end);
        /* Whole-layer units: the layer's figures on its line; row blocks:
         * one comment line per block. */
        for (int i = first; i < end; i++) {
            const qat_bits_layer_report *l = &r->layers[i];
            if (o->unit_rows)
                qat_strbuf_printf(&sb, "\n#   %s %d   # %lld, %llu", l->name, l->bits, (long long)l->numel,
                                  (unsigned long long)l->bytes);
            if (r->measured) {
                int k = 0;
                while (r->candidates[k] != l->bits) k++;
                qat_strbuf_printf(&sb, ", %.6g, %.6g", l->sensitivity, l->cost[k]);
            }
        }
        qat_strbuf_printf(&sb, "\n");
    }
    qat_status st = qat_file_write_atomic(o->out_map, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

static qat_status bits_run_all(bits_run *b, const qat_bits_options *o, qat_bits_result *r)
{
    const qat_bits_strategy *s = qat_bits_strategy_find(o->strategy);
    if (!s) {
        char names[256] = "";
        for (int i = 0; qat_bits_strategies[i]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     qat_bits_strategies[i]->name);
        return qat_error_set(QAT_ERR_INVALID, "--strategy: unknown strategy '%s' (qat bits --list: %s)", o->strategy,
                             names);
    }
    if (!o->budget && strcmp(s->name, "manual") != 0)
        return qat_error_set(QAT_ERR_INVALID, "--budget is required with --strategy %s", s->name);
    qat_quantize_options q = o->q;
    q.wbits = QAT_QBITS_MAX; /* which layers are quantizable; their bits come from the strategy */
    q.bits_map = NULL;
    q.ends_8bit = false;
    QAT_TRY(quant_run_load(&b->run, &q));
    QAT_TRY(build_problem(b, o));
    if (!b->n) return qat_error_set(QAT_ERR_INVALID, "%s: no layer to quantize", o->q.ckpt);
    QAT_TRY(set_budget(b, o));
    /* Before measuring anything: no strategy can go below the smallest
     * width everywhere. */
    uint64_t smallest = 0;
    for (int i = 0; i < b->n; i++) smallest += b->table[i].bytes[0];
    if (smallest > b->problem.budget_bytes)
        return qat_error_set(QAT_ERR_INVALID, "--budget %s allows the layers' weights %llu bytes, but every layer at %d "
                             "bits takes %llu", o->budget, (unsigned long long)b->problem.budget_bytes,
                             b->problem.bits[0], (unsigned long long)smallest);
    QAT_TRY(load_manual(b, o));
    r->nlayers = b->n;
    r->ncandidates = b->problem.ncandidates;
    memcpy(r->candidates, b->problem.bits, sizeof r->candidates);
    for (int i = 0; i < b->n; i++) {
        snprintf(r->layers[i].name, sizeof r->layers[i].name, "%s", b->table[i].name);
        r->layers[i].layer = b->layer[i];
        r->layers[i].row0 = b->row0[i];
        r->layers[i].rows = b->rows[i];
        r->layers[i].numel = b->table[i].numel;
    }
    r->fp32_bytes = b->rest_bytes - (o->q.abits ? 8 * (uint64_t)b->nq : 0) + 4 * (uint64_t)layers_numel(b);

    double t0 = qat_now();
    if (s->needs_cost || o->sensitivity_set) {
        r->measured = true;
        r->sensitivity = o->sensitivity_set ? o->sensitivity : QAT_SENSITIVITY_HESSIAN;
        QAT_TRY(measure_costs(b, o, r));
        b->problem.has_cost = true;
        for (int i = 0; i < b->n; i++) memcpy(r->layers[i].cost, b->table[i].cost, sizeof r->layers[i].cost);
    }
    r->measure_seconds = qat_now() - t0;

    int *choice = qat_xmalloc((size_t)b->n * sizeof *choice);
    qat_status st = qat_bits_assign(s, &b->problem, choice);
    if (st != QAT_OK) {
        free(choice);
        return st;
    }
    r->layer_budget_bytes = b->problem.budget_bytes;
    r->total_cost = b->problem.has_cost ? qat_bits_total_cost(&b->problem, choice) : 0;
    for (int i = 0; i < b->n; i++) {
        r->layers[i].bits = b->problem.bits[choice[i]];
        r->layers[i].bytes = b->table[i].bytes[choice[i]];
    }
    free(choice);
    /* What the checkpoint will take: with row blocks a layer's codes are one
     * stream, so this can be below the table's sum of whole-byte units. */
    r->layer_bytes = 0;
    uint64_t scale_bytes = 0;
    for (int q = 0; q < b->nq; q++) {
        qat_qscheme ls;
        r->layer_bytes += layer_choice(b, r, q, &ls);
        const qat_layer_info *info = &b->run.fp32.desc.layers[b->qlayer[q]];
        scale_bytes += 8 * (uint64_t)qat_qscheme_scale_count(&ls, info->rows, info->cols);
    }
    r->model_bytes = b->rest_bytes + r->layer_bytes;
    r->avg_bits = (double)(r->layer_bytes - scale_bytes) * 8.0 / (double)layers_numel(b);
    r->bits_per_weight = (double)r->layer_bytes * 8.0 / (double)layers_numel(b);
    return o->out_map ? write_map(b, r, o) : QAT_OK;
}

qat_status qat_bits_run(const qat_bits_options *o, qat_bits_result *r)
{
    memset(r, 0, sizeof *r);
    bits_run *b = qat_xcalloc(1, sizeof *b);
    b->o = o;
    double t0 = qat_now();
    qat_status st = bits_run_all(b, o, r);
    r->wall_seconds = qat_now() - t0;
    free_graph(b);
    quant_run_end(&b->run);
    free(b);
    return st;
}
