/* The gpt: description and graph (see qat/nn.h and docs/gpt.md). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/ops_vk.h"
#include "qat/nn_internal.h"

/* GPT-2's initialisation (Radford et al. 2019; nanoGPT's _init_weights). */
#define GPT_INIT_STD 0.02f
#define GPT_LN_EPS 1e-5f

static qat_status check_dim(const char *field, int v, int lo, int hi)
{
    if (v < lo || v > hi)
        return qat_error_set(QAT_ERR_INVALID, "gpt %s must be in [%d, %d], got %d", field, lo, hi, v);
    return QAT_OK;
}

static void linear_layer(qat_model_desc *d, const char *name, int64_t out, int64_t in, int64_t context, float std)
{
    qat_layer_info l = { .rows = out, .cols = in, .positions = context };
    snprintf(l.name, sizeof l.name, "%.55s", name);
    qat_desc_add_layer(d, &l, QAT_INIT_NORMAL, std, QAT_INIT_ZEROS, 0.0f);
}

static void layer_norm_params(qat_model_desc *d, const char *name, int64_t width)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s.weight", name);
    qat_desc_add_param(d, buf, 1, &width, QAT_INIT_ONES, 0.0f);
    snprintf(buf, sizeof buf, "%s.bias", name);
    qat_desc_add_param(d, buf, 1, &width, QAT_INIT_ZEROS, 0.0f);
}

qat_status qat_gpt_desc_init(qat_model_desc *d, const qat_gpt_config *c)
{
    QAT_TRY(check_dim("layers", c->layers, 1, QAT_GPT_MAX_LAYERS));
    QAT_TRY(check_dim("width", c->width, 4, 4096));
    QAT_TRY(check_dim("heads", c->heads, 1, c->width));
    QAT_TRY(check_dim("context", c->context, 1, 4096));
    QAT_TRY(check_dim("vocab", c->vocab, 2, 65536));
    if (c->width % c->heads != 0)
        return qat_error_set(QAT_ERR_INVALID, "gpt width %d is not a multiple of heads %d", c->width, c->heads);
    int64_t C = c->width, T = c->context, V = c->vocab;
    /* GPT-2 scales the init of the projections that write into the residual
     * stream by 1/sqrt(2 layers), so the stream's variance does not grow
     * with depth. */
    float proj_std = GPT_INIT_STD / sqrtf(2.0f * (float)c->layers);
    int64_t wte[2] = { V, C }, wpe[2] = { T, C };
    qat_desc_add_param(d, "wte.weight", 2, wte, QAT_INIT_NORMAL, GPT_INIT_STD);
    qat_desc_add_param(d, "wpe.weight", 2, wpe, QAT_INIT_NORMAL, GPT_INIT_STD);
    char name[64];
    for (int b = 0; b < c->layers; b++) {
        snprintf(name, sizeof name, "blocks.%d.ln1", b);
        layer_norm_params(d, name, C);
        static const char *const qkv[3] = { "q", "k", "v" };
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "blocks.%d.attn.%s", b, qkv[i]);
            linear_layer(d, name, C, C, T, GPT_INIT_STD);
        }
        snprintf(name, sizeof name, "blocks.%d.attn.proj", b);
        linear_layer(d, name, C, C, T, proj_std);
        snprintf(name, sizeof name, "blocks.%d.ln2", b);
        layer_norm_params(d, name, C);
        snprintf(name, sizeof name, "blocks.%d.mlp.fc", b);
        linear_layer(d, name, 4 * C, C, T, GPT_INIT_STD);
        snprintf(name, sizeof name, "blocks.%d.mlp.proj", b);
        linear_layer(d, name, C, 4 * C, T, proj_std);
    }
    layer_norm_params(d, "ln_f", C);
    linear_layer(d, "head", V, C, T, GPT_INIT_STD);
    return QAT_OK;
}

/* The parameter of the description named `name` (which must exist). */
static int param(const qat_model *m, const char *name)
{
    int i = qat_model_param_find(m->desc, name);
    QAT_ASSERT_MSG(i >= 0, name);
    return m->params[i];
}

static int layer_norm(qat_graph *g, const qat_model *m, int x, const char *name)
{
    char w[96], b[96];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    return qat_layer_norm(g, x, param(m, w), param(m, b), GPT_LN_EPS);
}

static int reshape3(qat_graph *g, int x, int64_t a, int64_t b, int64_t c)
{
    int64_t s[3] = { a, b, c };
    return qat_reshape(g, x, 3, s);
}

static int reshape4(qat_graph *g, int x, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t s[4] = { a, b, c, d };
    return qat_reshape(g, x, 4, s);
}

/* (B, T, C) -> (B * H, T, D): heads split off the width and moved ahead of
 * the positions, so attention is one batched matmul over B * H. */
static int split_heads(qat_graph *g, int x, int64_t B, int64_t T, int64_t H, int64_t D)
{
    return reshape3(g, qat_transpose12(g, reshape4(g, x, B, T, H, D)), B * H, T, D);
}

static int causal_self_attention(qat_graph *g, qat_model *m, const qat_model_quant *q, int x)
{
    const qat_gpt_config *c = &m->desc->config.gpt;
    int64_t B = m->batch, T = c->context, C = c->width, H = c->heads, D = C / H;
    int qh = split_heads(g, qat_model_linear(g, m, q, x, QAT_EPILOGUE_BIAS), B, T, H, D);
    int kh = split_heads(g, qat_model_linear(g, m, q, x, QAT_EPILOGUE_BIAS), B, T, H, D);
    int vh = split_heads(g, qat_model_linear(g, m, q, x, QAT_EPILOGUE_BIAS), B, T, H, D);
    int scores = qat_matmul(g, qh, kh, false, true);                      /* (B H, T, T) */
    int att = qat_causal_softmax(g, scores, (float)(1.0 / sqrt((double)D)));
    int y = qat_matmul(g, att, vh, false, false);                         /* (B H, T, D) */
    y = reshape3(g, qat_transpose12(g, reshape4(g, y, B, H, T, D)), B, T, C);
    return qat_model_linear(g, m, q, y, QAT_EPILOGUE_BIAS);
}

int qat_gpt_build(qat_graph *g, qat_model *m, const qat_model_quant *q)
{
    const qat_gpt_config *c = &m->desc->config.gpt;
    int64_t B = m->batch, T = c->context, C = c->width;
    int64_t xs[2] = { B, T }, ls = B * T;
    m->x = qat_input(g, "x", QAT_I32, 2, xs);
    m->labels = qat_input(g, "labels", QAT_I32, 1, &ls);
    /* Token embeddings plus the position embeddings, the latter added as a
     * (T * C)-long bias over the batch. */
    int tok = qat_embedding(g, param(m, "wte.weight"), m->x);             /* (B, T, C) */
    int64_t flat[2] = { B, T * C }, pos_flat = T * C;
    int h = qat_bias_add(g, qat_reshape(g, tok, 2, flat), qat_reshape(g, param(m, "wpe.weight"), 1, &pos_flat), 1);
    h = reshape3(g, h, B, T, C);
    char name[64];
    for (int b = 0; b < c->layers; b++) {
        snprintf(name, sizeof name, "blocks.%d.ln1", b);
        h = qat_add(g, h, causal_self_attention(g, m, q, layer_norm(g, m, h, name)));
        snprintf(name, sizeof name, "blocks.%d.ln2", b);
        int a = qat_model_linear(g, m, q, layer_norm(g, m, h, name), QAT_EPILOGUE_BIAS);
        h = qat_add(g, h, qat_model_linear(g, m, q, qat_gelu(g, a), QAT_EPILOGUE_BIAS));
    }
    h = layer_norm(g, m, h, "ln_f");
    int logits = qat_model_linear(g, m, q, h, QAT_EPILOGUE_BIAS);          /* (B, T, V) */
    int64_t ls2[2] = { B * T, c->vocab };
    return qat_reshape(g, logits, 2, ls2);
}
