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

static int add_param(qat_graph *g, qat_model *m, const char *name, int ndim, const int64_t *shape, bool trainable)
{
    QAT_ASSERT(m->nparams < QAT_MODEL_MAX_PARAMS);
    int id = qat_param(g, name, ndim, shape, trainable);
    m->params[m->nparams++] = id;
    m->param_count += qat_shape_numel(ndim, shape);
    return id;
}

/* A linear layer named `name`: weight (out, in), bias (out). */
static int linear(qat_graph *g, qat_model *m, const char *name, int x, int64_t in, int64_t out, bool relu,
                  bool trainable)
{
    char wname[64], bname[64];
    snprintf(wname, sizeof wname, "%s.weight", name);
    snprintf(bname, sizeof bname, "%s.bias", name);
    int64_t wshape[2] = { out, in };
    int w = add_param(g, m, wname, 2, wshape, trainable);
    int b = add_param(g, m, bname, 1, &out, trainable);
    return qat_matmul_ex(g, x, w, false, true, b, relu ? QAT_EPILOGUE_BIAS_RELU : QAT_EPILOGUE_BIAS);
}

static int conv_relu_pool(qat_graph *g, qat_model *m, const char *name, int x, int64_t in, int64_t out,
                          bool trainable)
{
    char wname[64], bname[64];
    snprintf(wname, sizeof wname, "%s.weight", name);
    snprintf(bname, sizeof bname, "%s.bias", name);
    int64_t wshape[4] = { out, in, 3, 3 };
    int w = add_param(g, m, wname, 4, wshape, trainable);
    int b = add_param(g, m, bname, 1, &out, trainable);
    int y = qat_conv2d(g, x, w, 1, 1);
    y = qat_bias_add(g, y, b, 1);
    y = qat_relu(g, y);
    return qat_maxpool2d(g, y);
}

void qat_model_build(qat_graph *g, qat_model_kind kind, int batch, bool trainable, qat_model *m)
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
        h = linear(g, m, "fc1", m->x, 784, 256, true, trainable);
        h = linear(g, m, "fc2", h, 256, 256, true, trainable);
        h = linear(g, m, "fc3", h, 256, 10, false, trainable);
    } else {
        int64_t xs[4] = { batch, 1, 28, 28 };
        m->x = qat_input(g, "x", QAT_F32, 4, xs);
        h = conv_relu_pool(g, m, "conv1", m->x, 1, 16, trainable);
        h = conv_relu_pool(g, m, "conv2", h, 16, 32, trainable);
        h = qat_flatten(g, h);
        h = linear(g, m, "fc1", h, 32 * 7 * 7, 128, true, trainable);
        h = linear(g, m, "fc2", h, 128, 10, false, trainable);
    }
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
