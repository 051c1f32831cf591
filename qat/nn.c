#include "qat/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_vk.h"
#include "qat/rng.h"

static const char *const model_names[QAT_MODEL_KIND_COUNT] = { "mlp", "cnn" };

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

static const qat_layer_info mlp_layers[] = {
    { "fc1", false, 256, 784, 0, 0, 0, false },
    { "fc2", false, 256, 256, 0, 0, 0, true },
    { "fc3", false, 10, 256, 0, 0, 0, true },
};
static const qat_layer_info cnn_layers[] = {
    { "conv1", true, 16, 1 * 9, 1, 28, 28, false },
    { "conv2", true, 32, 16 * 9, 16, 14, 14, true },
    { "fc1", false, 128, 32 * 7 * 7, 0, 0, 0, true },
    { "fc2", false, 10, 128, 0, 0, 0, true },
};

int qat_model_layer_count(qat_model_kind kind)
{
    QAT_ASSERT(kind < QAT_MODEL_KIND_COUNT);
    return kind == QAT_MODEL_MLP ? 3 : 4;
}

const qat_layer_info *qat_model_layer_info(qat_model_kind kind, int layer)
{
    QAT_ASSERT(layer >= 0 && layer < qat_model_layer_count(kind));
    return kind == QAT_MODEL_MLP ? &mlp_layers[layer] : &cnn_layers[layer];
}

int64_t qat_layer_input_numel(const qat_layer_info *info, int batch)
{
    return (int64_t)batch * (info->conv ? info->in_channels * info->in_height * info->in_width : info->cols);
}

int qat_model_layer_find(qat_model_kind kind, const char *name)
{
    for (int i = 0; i < qat_model_layer_count(kind); i++)
        if (strcmp(qat_model_layer_info(kind, i)->name, name) == 0) return i;
    return -1;
}

static int add_param(qat_graph *g, qat_model *m, const char *name, int ndim, const int64_t *shape, bool trainable)
{
    QAT_ASSERT(m->nparams < QAT_MODEL_MAX_PARAMS);
    int id = qat_param(g, name, ndim, shape, trainable);
    m->params[m->nparams++] = id;
    m->param_count += qat_shape_numel(ndim, shape);
    return id;
}

/* x -> fake_quant(x) with parameters NAME.SUFFIX_scale / _zero_point. */
static int fake_quant(qat_graph *g, int x, const char *layer, const char *what, const qat_model_fq *fq, int *scale,
                      int *zero_point)
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
    return qat_fake_quant(g, x, *scale, params.estimator == QAT_FQ_PACT ? -1 : *zero_point, &params);
}

/* Creates the layer's parameters and applies its quantizers; returns the
 * weight as the layer uses it. */
static int layer_begin(qat_graph *g, qat_model *m, const qat_model_quant *q, int x, int *x_used, bool trainable)
{
    int index = m->nlayers++;
    const qat_layer_info *info = qat_model_layer_info(m->kind, index);
    qat_model_layer *l = &m->layers[index];
    char wname[64], bname[64];
    snprintf(wname, sizeof wname, "%s.weight", info->name);
    snprintf(bname, sizeof bname, "%s.bias", info->name);
    int64_t wshape[4] = { info->rows, info->conv ? info->in_channels : info->cols, 3, 3 };
    l->weight = add_param(g, m, wname, info->conv ? 4 : 2, wshape, trainable);
    l->bias = add_param(g, m, bname, 1, &info->rows, trainable);
    l->in_scale = l->in_zero_point = l->w_scale = l->w_zero_point = -1;
    l->input_raw = x;
    if (q && q->input[index].enabled)
        x = fake_quant(g, x, info->name, "input", &q->input[index], &l->in_scale, &l->in_zero_point);
    l->input = x;
    if (q && q->expose_inputs) qat_graph_mark_output(g, x);
    *x_used = x;
    int w = l->weight;
    if (q && q->weight[index].enabled)
        w = fake_quant(g, w, info->name, "weight", &q->weight[index], &l->w_scale, &l->w_zero_point);
    return w;
}

static int linear(qat_graph *g, qat_model *m, const qat_model_quant *q, int x, bool relu, bool trainable)
{
    int w = layer_begin(g, m, q, x, &x, trainable);
    int b = m->layers[m->nlayers - 1].bias;
    return qat_matmul_ex(g, x, w, false, true, b, relu ? QAT_EPILOGUE_BIAS_RELU : QAT_EPILOGUE_BIAS);
}

static int conv_relu_pool(qat_graph *g, qat_model *m, const qat_model_quant *q, int x, bool trainable)
{
    int w = layer_begin(g, m, q, x, &x, trainable);
    int b = m->layers[m->nlayers - 1].bias;
    int y = qat_conv2d(g, x, w, 1, 1);
    y = qat_bias_add(g, y, b, 1);
    y = qat_relu(g, y);
    return qat_maxpool2d(g, y);
}

void qat_model_build(qat_graph *g, qat_model_kind kind, int batch, bool trainable, qat_model *m)
{
    qat_model_build_quant(g, kind, batch, trainable, NULL, m);
}

void qat_model_build_quant(qat_graph *g, qat_model_kind kind, int batch, bool trainable, const qat_model_quant *q,
                           qat_model *m)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->batch = batch;
    int64_t nb = batch;
    m->labels = qat_input(g, "labels", QAT_I32, 1, &nb);
    int h;
    if (kind == QAT_MODEL_MLP) {
        int64_t xs[2] = { batch, 784 };
        m->x = qat_input(g, "x", QAT_F32, 2, xs);
        h = linear(g, m, q, m->x, true, trainable);
        h = linear(g, m, q, h, true, trainable);
        h = linear(g, m, q, h, false, trainable);
    } else {
        int64_t xs[4] = { batch, 1, 28, 28 };
        m->x = qat_input(g, "x", QAT_F32, 4, xs);
        h = conv_relu_pool(g, m, q, m->x, trainable);
        h = conv_relu_pool(g, m, q, h, trainable);
        h = qat_flatten(g, h);
        h = linear(g, m, q, h, true, trainable);
        h = linear(g, m, q, h, false, trainable);
    }
    QAT_ASSERT(m->nlayers == qat_model_layer_count(kind));
    m->logits = h;
    m->loss = qat_softmax_ce(g, m->logits, m->labels);
    qat_graph_mark_output(g, m->logits);
    qat_graph_mark_output(g, m->loss);
}

void qat_model_init_values(const qat_graph *g, const qat_model *m, uint64_t seed, float **values)
{
    /* Weights come in (weight, bias) pairs; both use the weight's fan-in
     * (inputs times kernel area), as PyTorch's reset_parameters does. */
    int64_t fan_in = 1;
    for (int i = 0; i < m->nparams; i++) {
        const qat_tensor *t = qat_tensor_cget(g, m->params[i]);
        if (t->ndim >= 2) fan_in = t->numel / t->shape[0];
        float bound = 1.0f / sqrtf((float)fan_in);
        qat_rng rng = qat_rng_init(seed, (uint64_t)i);
        for (int64_t j = 0; j < t->numel; j++) values[i][j] = qat_rng_uniform_range(&rng, -bound, bound);
    }
}

qat_status qat_model_init_params(qat_graph *g, const qat_model *m, uint64_t seed)
{
    float *values[QAT_MODEL_MAX_PARAMS];
    for (int i = 0; i < m->nparams; i++)
        values[i] = qat_xmalloc((size_t)qat_tensor_get(g, m->params[i])->numel * sizeof(float));
    qat_model_init_values(g, m, seed, values);
    qat_status st = QAT_OK;
    for (int i = 0; i < m->nparams && st == QAT_OK; i++) st = qat_tensor_write(g, m->params[i], values[i]);
    for (int i = 0; i < m->nparams; i++) free(values[i]);
    return st;
}
