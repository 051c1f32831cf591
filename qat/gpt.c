/* The gpt: its description (see qat/nn.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

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
