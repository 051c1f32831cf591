#include "qat/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_vk.h"
#include "qat/nn_internal.h"
#include "qat/q4.h"
#include "qat/rng.h"

static const char *const model_names[QAT_MODEL_KIND_COUNT] = { "mlp", "cnn", "gpt" };

const char *qat_model_name(qat_model_kind kind)
{
    QAT_ASSERT(kind < QAT_MODEL_KIND_COUNT);
    return model_names[kind];
}

bool qat_model_parse(const char *name, qat_model_kind *out)
{
    for (int i = 0; i < QAT_MODEL_KIND_COUNT; i++)
        if (strcmp(name, model_names[i]) == 0) {
            *out = (qat_model_kind)i;
            return true;
        }
    return false;
}

/* ---- descriptions ----------------------------------------------------------- */

int qat_desc_add_param(qat_model_desc *d, const char *name, int ndim, const int64_t *shape, qat_param_init init,
                       float init_arg)
{
    QAT_ASSERT(d->nparams < QAT_MODEL_MAX_PARAMS && ndim >= 1 && ndim <= 4);
    qat_param_info *p = &d->params[d->nparams];
    memset(p, 0, sizeof *p);
    int n = snprintf(p->name, sizeof p->name, "%s", name);
    QAT_ASSERT(n > 0 && (size_t)n < sizeof p->name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= shape[i];
    }
    p->init = init;
    p->init_arg = init_arg;
    p->layer = -1;
    d->param_count += p->numel;
    return d->nparams++;
}

/* A layer with its weight and bias parameters, added in that order. A
 * conv's weight is (rows, in_channels, 3, 3); a linear's (rows, cols). */
int qat_desc_add_layer(qat_model_desc *d, const qat_layer_info *shape_only, qat_param_init weight_init,
                       float weight_arg, qat_param_init bias_init, float bias_arg)
{
    QAT_ASSERT(d->nlayers < QAT_MODEL_MAX_LAYERS);
    int index = d->nlayers++;
    qat_layer_info *l = &d->layers[index];
    *l = *shape_only;
    if (l->positions == 0) l->positions = 1;
    char name[96];
    int64_t wshape[4] = { l->rows, l->conv ? l->in_channels : l->cols, 3, 3 };
    snprintf(name, sizeof name, "%s.weight", l->name);
    l->weight = qat_desc_add_param(d, name, l->conv ? 4 : 2, wshape, weight_init, weight_arg);
    snprintf(name, sizeof name, "%s.bias", l->name);
    l->bias = qat_desc_add_param(d, name, 1, &l->rows, bias_init, bias_arg);
    d->params[l->weight].layer = index;
    d->params[l->bias].layer = index;
    return index;
}

static void image_layer(qat_model_desc *d, const char *name, bool conv, int64_t rows, int64_t cols,
                        int64_t in_channels, int64_t in_height, int64_t in_width, bool input_nonnegative)
{
    qat_layer_info l = { .conv = conv, .rows = rows, .cols = cols, .in_channels = in_channels,
                         .in_height = in_height, .in_width = in_width, .input_nonnegative = input_nonnegative };
    snprintf(l.name, sizeof l.name, "%s", name);
    /* PyTorch's reset_parameters: weight and bias both use the weight's fan-in. */
    float fan_in = (float)cols;
    qat_desc_add_layer(d, &l, QAT_INIT_FAN_IN, fan_in, QAT_INIT_FAN_IN, fan_in);
}

qat_status qat_model_desc_init(qat_model_desc *d, const qat_model_config *config)
{
    memset(d, 0, sizeof *d);
    d->config = *config;
    switch (config->kind) {
    case QAT_MODEL_MLP:
        image_layer(d, "fc1", false, 256, 784, 0, 0, 0, false);
        image_layer(d, "fc2", false, 256, 256, 0, 0, 0, true);
        image_layer(d, "fc3", false, 10, 256, 0, 0, 0, true);
        return QAT_OK;
    case QAT_MODEL_CNN:
        image_layer(d, "conv1", true, 16, 1 * 9, 1, 28, 28, false);
        image_layer(d, "conv2", true, 32, 16 * 9, 16, 14, 14, true);
        image_layer(d, "fc1", false, 128, 32 * 7 * 7, 0, 0, 0, true);
        image_layer(d, "fc2", false, 10, 128, 0, 0, 0, true);
        return QAT_OK;
    case QAT_MODEL_GPT:
        return qat_gpt_desc_init(d, &config->gpt);
    case QAT_MODEL_KIND_COUNT:
        break;
    }
    QAT_ASSERT_MSG(false, "unknown model kind");
    return QAT_ERR_INVALID;
}

void qat_model_desc_default(qat_model_desc *d, qat_model_kind kind)
{
    qat_model_config config = { .kind = kind, .gpt = QAT_GPT_DEFAULT_CONFIG };
    qat_status st = qat_model_desc_init(d, &config);
    QAT_ASSERT(st == QAT_OK);
}

int64_t qat_layer_input_numel(const qat_layer_info *info, int batch)
{
    if (info->conv) return (int64_t)batch * info->in_channels * info->in_height * info->in_width;
    return (int64_t)batch * info->positions * info->cols;
}

int qat_model_layer_find(const qat_model_desc *d, const char *name)
{
    for (int i = 0; i < d->nlayers; i++)
        if (strcmp(d->layers[i].name, name) == 0) return i;
    return -1;
}

int qat_model_param_find(const qat_model_desc *d, const char *name)
{
    for (int i = 0; i < d->nparams; i++)
        if (strcmp(d->params[i].name, name) == 0) return i;
    return -1;
}

void qat_model_layer_names(const qat_model_desc *d, char *out, size_t size)
{
    out[0] = '\0';
    for (int i = 0; i < d->nlayers; i++) {
        size_t len = strlen(out);
        int n = snprintf(out + len, size - len, "%s%s", i ? ", " : "", d->layers[i].name);
        if (n < 0 || (size_t)n >= size - len) {
            if (size > 4) snprintf(out + size - 4, 4, "...");
            break;
        }
    }
}

/* ---- graphs ----------------------------------------------------------------- */

/* x -> fake_quant(x) with parameters NAME.SUFFIX_scale / _zero_point (and
 * _qmax when ranged). */
static int fake_quant(qat_graph *g, int x, const char *layer, const char *what, const qat_model_fq *fq, int *scale,
                      int *zero_point, int *qmax)
{
    char name[96];
    int64_t numel = qat_tensor_get(g, x)->numel;
    qat_fq_params params = fq->params;
    /* A per-tensor quantizer is set up without knowing the batch. */
    if (params.layout.group == 0 && params.layout.channels == 1) params.layout = qat_fq_per_tensor(numel);
    int64_t n = qat_fq_scale_count(&params.layout, numel);
    snprintf(name, sizeof name, "%s.%s_scale", layer, what);
    *scale = qat_param(g, name, 1, &n, fq->trainable_scale);
    snprintf(name, sizeof name, "%s.%s_zero_point", layer, what);
    *zero_point = qat_param(g, name, 1, &n, false);
    if (fq->ranged) {
        QAT_ASSERT(qmax);
        snprintf(name, sizeof name, "%s.%s_qmax", layer, what);
        *qmax = qat_param(g, name, 1, &n, false);
    }
    return qat_fake_quant_ranged(g, x, *scale, params.estimator == QAT_FQ_PACT ? -1 : *zero_point,
                                 fq->ranged ? *qmax : -1, &params);
}

int qat_model_layer_begin(qat_graph *g, qat_model *m, const qat_model_quant *q, int index, int x, int *x_used)
{
    QAT_ASSERT(index == m->nlayers && index < m->desc->nlayers);
    m->nlayers++;
    const qat_layer_info *info = &m->desc->layers[index];
    qat_model_layer *l = &m->layers[index];
    l->weight = m->params[info->weight];
    l->bias = m->params[info->bias];
    l->in_scale = l->in_zero_point = l->w_scale = l->w_zero_point = l->w_qmax = -1;
    l->lora_a = l->lora_b = -1;
    l->q4 = false;
    if (m->lora && m->lora->layer[index] && m->lora->q4_base) {
        char name[96];
        snprintf(name, sizeof name, "%s.weight", info->name);
        l->q4 = true;
        l->q4_weight = qat_q4_weight_add(g, name, m->lora->q4_type, info->rows, info->cols, m->lora->double_quant);
        QAT_ASSERT(!(q && q->weight[index].enabled));
    }
    if (m->lora && m->lora->layer[index]) {
        QAT_ASSERT_MSG(!info->conv, "LoRA adapters apply to linear layers");
        char name[96];
        int64_t a_shape[2] = { m->lora->rank, info->cols }, b_shape[2] = { info->rows, m->lora->rank };
        snprintf(name, sizeof name, "%s.lora_A.weight", info->name);
        l->lora_a = qat_param(g, name, 2, a_shape, true);
        snprintf(name, sizeof name, "%s.lora_B.weight", info->name);
        l->lora_b = qat_param(g, name, 2, b_shape, true);
    }
    l->input_raw = x;
    if (q && q->input[index].enabled)
        x = fake_quant(g, x, info->name, "input", &q->input[index], &l->in_scale, &l->in_zero_point, NULL);
    l->input = x;
    if (q && q->expose_inputs) qat_graph_mark_output(g, x);
    *x_used = x;
    int w = l->weight;
    if (q && q->weight[index].enabled)
        w = fake_quant(g, w, info->name, "weight", &q->weight[index], &l->w_scale, &l->w_zero_point, &l->w_qmax);
    return w;
}

int qat_model_linear(qat_graph *g, qat_model *m, const qat_model_quant *q, int x, qat_epilogue epilogue)
{
    int index = m->nlayers;
    int w = qat_model_layer_begin(g, m, q, index, x, &x);
    const qat_model_layer *l = &m->layers[index];
    if (l->lora_a < 0) return qat_matmul_ex(g, x, w, false, true, l->bias, epilogue);
    QAT_ASSERT_MSG(epilogue == QAT_EPILOGUE_BIAS, "a LoRA layer adds its adapters after the bias: no fused relu");
    int y = l->q4 ? qat_matmul_q4(g, x, &l->q4_weight, l->bias) : qat_matmul_ex(g, x, w, false, true, l->bias, epilogue);
    const qat_model_lora *lora = m->lora;
    int xd = lora->dropout > 0 ? qat_dropout(g, x, lora->dropout, lora->seed, (uint32_t)index) : x;
    /* alpha / rank scales the rank-wide down projection rather than the
     * out-wide result: the same product, a pass over out / rank times fewer
     * elements. */
    int down = qat_scale(g, qat_matmul(g, xd, l->lora_a, false, true), lora->alpha / (float)lora->rank);
    int up = qat_matmul(g, down, l->lora_b, false, true); /* (rows, out) */
    return qat_add(g, y, up);
}

static int conv_relu_pool(qat_graph *g, qat_model *m, const qat_model_quant *q, int x)
{
    int index = m->nlayers;
    int w = qat_model_layer_begin(g, m, q, index, x, &x);
    int y = qat_conv2d(g, x, w, 1, 1);
    y = qat_bias_add(g, y, m->layers[index].bias, 1);
    y = qat_relu(g, y);
    return qat_maxpool2d(g, y);
}

void qat_model_build(qat_graph *g, const qat_model_desc *d, int batch, bool trainable, qat_model *m)
{
    qat_model_build_quant(g, d, batch, trainable, NULL, m);
}

void qat_model_build_quant(qat_graph *g, const qat_model_desc *d, int batch, bool trainable,
                           const qat_model_quant *q, qat_model *m)
{
    qat_model_build_opts o = { .trainable = trainable, .quant = q };
    qat_model_build_ex(g, d, batch, &o, m);
}

void qat_model_build_ex(qat_graph *g, const qat_model_desc *d, int batch, const qat_model_build_opts *o,
                        qat_model *m)
{
    memset(m, 0, sizeof *m);
    m->desc = d;
    m->lora = o->lora;
    m->kind = d->config.kind;
    m->batch = batch;
    const qat_model_quant *q = o->quant;
    /* Every parameter up front, in the description's order: checkpoints and
     * initialisation streams follow that order. */
    for (int i = 0; i < d->nparams; i++) {
        const qat_param_info *p = &d->params[i];
        m->param_count += p->numel;
        bool q4_weight = o->lora && o->lora->q4_base && p->layer >= 0 && o->lora->layer[p->layer] &&
                         d->layers[p->layer].weight == i;
        m->params[i] = q4_weight ? -1 : qat_param(g, p->name, p->ndim, p->shape, o->trainable);
    }
    m->nparams = d->nparams;
    int h;
    switch (d->config.kind) {
    case QAT_MODEL_MLP: {
        int64_t nb = batch, xs[2] = { batch, 784 };
        m->labels = qat_input(g, "labels", QAT_I32, 1, &nb);
        m->x = qat_input(g, "x", QAT_F32, 2, xs);
        h = qat_model_linear(g, m, q, m->x, QAT_EPILOGUE_BIAS_RELU);
        h = qat_model_linear(g, m, q, h, QAT_EPILOGUE_BIAS_RELU);
        h = qat_model_linear(g, m, q, h, QAT_EPILOGUE_BIAS);
        break;
    }
    case QAT_MODEL_CNN: {
        int64_t nb = batch, xs[4] = { batch, 1, 28, 28 };
        m->labels = qat_input(g, "labels", QAT_I32, 1, &nb);
        m->x = qat_input(g, "x", QAT_F32, 4, xs);
        h = conv_relu_pool(g, m, q, m->x);
        h = conv_relu_pool(g, m, q, h);
        h = qat_flatten(g, h);
        h = qat_model_linear(g, m, q, h, QAT_EPILOGUE_BIAS_RELU);
        h = qat_model_linear(g, m, q, h, QAT_EPILOGUE_BIAS);
        break;
    }
    case QAT_MODEL_GPT:
        h = qat_gpt_build(g, m, q);
        break;
    default:
        QAT_ASSERT_MSG(false, "unknown model kind");
        return;
    }
    QAT_ASSERT(m->nlayers == d->nlayers);
    m->logits = h;
    m->loss = qat_softmax_ce(g, m->logits, m->labels);
    qat_graph_mark_output(g, m->logits);
    qat_graph_mark_output(g, m->loss);
}

void qat_model_init_values(const qat_model_desc *d, uint64_t seed, float **values)
{
    for (int i = 0; i < d->nparams; i++) {
        const qat_param_info *p = &d->params[i];
        qat_rng rng = qat_rng_init(seed, (uint64_t)i);
        float bound = p->init == QAT_INIT_FAN_IN ? 1.0f / sqrtf(p->init_arg) : 0.0f;
        for (int64_t j = 0; j < p->numel; j++) {
            switch (p->init) {
            case QAT_INIT_FAN_IN: values[i][j] = qat_rng_uniform_range(&rng, -bound, bound); break;
            case QAT_INIT_NORMAL: values[i][j] = p->init_arg * qat_rng_normal(&rng); break;
            case QAT_INIT_ONES: values[i][j] = 1.0f; break;
            case QAT_INIT_ZEROS: values[i][j] = 0.0f; break;
            }
        }
    }
}

qat_status qat_model_init_lora(qat_graph *g, const qat_model *m, uint64_t seed)
{
    qat_status st = QAT_OK;
    for (int i = 0; i < m->nlayers && st == QAT_OK; i++) {
        const qat_model_layer *l = &m->layers[i];
        if (l->lora_a < 0) continue;
        const qat_tensor *a = qat_tensor_get(g, l->lora_a), *b = qat_tensor_get(g, l->lora_b);
        float *values = qat_xcalloc((size_t)(a->numel > b->numel ? a->numel : b->numel), sizeof *values);
        float bound = 1.0f / sqrtf((float)a->shape[1]);
        qat_rng rng = qat_rng_init(seed, QAT_RNG_STREAM_LORA + (uint64_t)i);
        for (int64_t j = 0; j < a->numel; j++) values[j] = qat_rng_uniform_range(&rng, -bound, bound);
        st = qat_tensor_write(g, l->lora_a, values);
        memset(values, 0, (size_t)b->numel * sizeof *values);
        if (st == QAT_OK) st = qat_tensor_write(g, l->lora_b, values);
        free(values);
    }
    return st;
}

qat_status qat_model_init_params(qat_graph *g, const qat_model *m, uint64_t seed)
{
    const qat_model_desc *d = m->desc;
    float **values = qat_xcalloc((size_t)d->nparams, sizeof *values);
    for (int i = 0; i < d->nparams; i++) values[i] = qat_xmalloc((size_t)d->params[i].numel * sizeof(float));
    qat_model_init_values(d, seed, values);
    qat_status st = QAT_OK;
    for (int i = 0; i < d->nparams && st == QAT_OK; i++)
        if (m->params[i] >= 0) st = qat_tensor_write(g, m->params[i], values[i]);
    for (int i = 0; i < d->nparams; i++) free(values[i]);
    free(values);
    return st;
}
