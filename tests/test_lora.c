/* LoRA adapters in the gpt, over an FP32 and over a 4-bit base: the adapted
 * model computes what a plain model with the merged weights
 * W + (alpha / r) B A computes, only the adapters train, and their device
 * gradients match finite differences of the loss. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/nn.h"
#include "qat/q4.h"
#include "tests/test_util.h"

enum { BATCH = 2, RANK = 3 };
static const float ALPHA = 6.0f;

typedef struct lora_case {
    qat_ctx *ctx;
    qat_model_desc desc;
    float *values[QAT_MODEL_MAX_PARAMS]; /* the model's parameters */
    float *a[QAT_MODEL_MAX_LAYERS], *b[QAT_MODEL_MAX_LAYERS];
    qat_q4_weight q4[QAT_MODEL_MAX_LAYERS];
    qat_model_lora lora;
    int32_t x[BATCH * 8], y[BATCH * 8];
} lora_case;

static void case_init(lora_case *c, bool q4_base)
{
    memset(c, 0, sizeof *c);
    c->ctx = test_gpu_ctx();
    qat_model_config config = { .kind = QAT_MODEL_GPT, .gpt = { 1, 16, 2, 8, 256 } };
    cr_assert_eq(qat_model_desc_init(&c->desc, &config), QAT_OK);
    for (int i = 0; i < c->desc.nparams; i++)
        c->values[i] = malloc((size_t)c->desc.params[i].numel * sizeof(float));
    qat_model_init_values(&c->desc, 5, c->values);
    test_rng rng = { 77 };
    for (int i = 0; i < c->desc.nparams; i++) {
        /* Larger weights than GPT-2's init, so every path matters. */
        const qat_param_info *p = &c->desc.params[i];
        if (p->init == QAT_INIT_NORMAL) test_fill(&rng, c->values[i], (size_t)p->numel, -0.4f, 0.4f);
    }
    c->lora.rank = RANK;
    c->lora.alpha = ALPHA;
    c->lora.q4_base = q4_base;
    c->lora.q4_type = QAT_Q4_NF4;
    c->lora.double_quant = true;
    for (int l = 0; l < c->desc.nlayers; l++) {
        const qat_layer_info *info = &c->desc.layers[l];
        if (strncmp(info->name, "blocks.", 7) != 0) continue;
        c->lora.layer[l] = true;
        c->a[l] = malloc((size_t)(RANK * info->cols) * sizeof(float));
        c->b[l] = malloc((size_t)(info->rows * RANK) * sizeof(float));
        test_fill(&rng, c->a[l], (size_t)(RANK * info->cols), -0.3f, 0.3f);
        test_fill(&rng, c->b[l], (size_t)(info->rows * RANK), -0.3f, 0.3f);
        if (q4_base) {
            qat_q4_weight_init(&c->q4[l], QAT_Q4_NF4, info->rows, info->cols, true);
            qat_q4_weight_quantize(&c->q4[l], c->values[info->weight]);
        }
    }
    for (int i = 0; i < BATCH * 8; i++) {
        c->x[i] = (int32_t)(test_rng_next(&rng) % 256);
        c->y[i] = (int32_t)(test_rng_next(&rng) % 256);
    }
}

static void case_free(lora_case *c)
{
    for (int i = 0; i < c->desc.nparams; i++) free(c->values[i]);
    for (int l = 0; l < c->desc.nlayers; l++) {
        free(c->a[l]), free(c->b[l]);
        if (c->q4[l].packed) qat_q4_weight_free(&c->q4[l]);
    }
    test_gpu_done(c->ctx);
}

/* The adapted model: frozen parameters written, the 4-bit bases uploaded,
 * the case's adapter values written. */
static qat_graph *build_adapted(lora_case *c, qat_model *m, int *backward_start)
{
    qat_graph *g = qat_graph_create(c->ctx);
    qat_model_build_opts o = { .trainable = false, .lora = &c->lora };
    qat_model_build_ex(g, &c->desc, BATCH, &o, m);
    *backward_start = qat_graph_backward(g, m->loss);
    cr_assert_eq(qat_graph_compile(g), QAT_OK, "%s", qat_error_message());
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i] >= 0) cr_assert_eq(qat_tensor_write(g, m->params[i], c->values[i]), QAT_OK);
    for (int l = 0; l < m->nlayers; l++) {
        const qat_model_layer *ml = &m->layers[l];
        if (ml->lora_a < 0) continue;
        if (ml->q4) cr_assert_eq(qat_q4_weight_upload(g, &ml->q4_weight, &c->q4[l]), QAT_OK);
        cr_assert_eq(qat_tensor_write(g, ml->lora_a, c->a[l]), QAT_OK);
        cr_assert_eq(qat_tensor_write(g, ml->lora_b, c->b[l]), QAT_OK);
    }
    memcpy(qat_graph_input_slot(g, m->x), c->x, sizeof c->x);
    memcpy(qat_graph_input_slot(g, m->labels), c->y, sizeof c->y);
    return g;
}

/* The plain model's logits with W replaced by base(W) + (alpha / r) B A. */
static float *merged_logits(lora_case *c)
{
    qat_graph *g = qat_graph_create(c->ctx);
    qat_model m;
    qat_model_build(g, &c->desc, BATCH, false, &m);
    cr_assert_eq(qat_graph_compile(g), QAT_OK);
    for (int i = 0; i < m.nparams; i++) {
        const qat_param_info *p = &c->desc.params[i];
        float *v = malloc((size_t)p->numel * sizeof *v);
        memcpy(v, c->values[i], (size_t)p->numel * sizeof *v);
        int l = p->layer;
        if (l >= 0 && c->lora.layer[l] && c->desc.layers[l].weight == i) {
            const qat_layer_info *info = &c->desc.layers[l];
            if (c->q4[l].packed) qat_q4_weight_dequantize(&c->q4[l], v);
            for (int64_t r = 0; r < info->rows; r++)
                for (int64_t k = 0; k < info->cols; k++) {
                    double acc = 0;
                    for (int j = 0; j < RANK; j++) acc += (double)c->b[l][r * RANK + j] * c->a[l][j * info->cols + k];
                    v[r * info->cols + k] += (float)(ALPHA / RANK * acc);
                }
        }
        cr_assert_eq(qat_tensor_write(g, m.params[i], v), QAT_OK);
        free(v);
    }
    memcpy(qat_graph_input_slot(g, m.x), c->x, sizeof c->x);
    memcpy(qat_graph_input_slot(g, m.labels), c->y, sizeof c->y);
    qat_seq *s;
    cr_assert_eq(qat_seq_create(g, 0, qat_graph_node_count(g), &s), QAT_OK);
    qat_graph_set_phase(g, false, 0);
    cr_assert_eq(qat_seq_run(s), QAT_OK);
    size_t n = (size_t)qat_tensor_get(g, m.logits)->numel;
    float *out = malloc(n * sizeof *out);
    memcpy(out, qat_graph_output_slot(g, m.logits), n * sizeof *out);
    qat_seq_free(s);
    qat_graph_free(g);
    return out;
}

static void check_adapted_equals_merged(bool q4_base)
{
    lora_case c;
    case_init(&c, q4_base);
    qat_model m;
    int backward_start;
    qat_graph *g = build_adapted(&c, &m, &backward_start);
    /* Only the adapters train; the frozen weights have no gradient tensors. */
    int adapted = 0;
    for (int l = 0; l < m.nlayers; l++) adapted += m.layers[l].lora_a >= 0;
    cr_expect_eq(adapted, 6);
    cr_expect_eq(qat_graph_param_count(g), 2 * adapted);
    for (int i = 0; i < m.nparams; i++)
        if (m.params[i] >= 0) cr_expect_eq(qat_tensor_get(g, m.params[i])->grad, -1, "%s has a gradient",
                                           c.desc.params[i].name);
    for (int l = 0; l < m.nlayers; l++)
        if (m.layers[l].lora_a >= 0) cr_expect_eq(m.layers[l].q4, q4_base);
    qat_seq *fwd;
    cr_assert_eq(qat_seq_create(g, 0, backward_start, &fwd), QAT_OK);
    qat_graph_set_phase(g, false, 0);
    cr_assert_eq(qat_seq_run(fwd), QAT_OK);
    float *want = merged_logits(&c);
    size_t n = (size_t)qat_tensor_get(g, m.logits)->numel;
    /* Merging reassociates one sum of rank products per weight: ~1e-6. */
    double err = test_rel_max_err(qat_graph_output_slot(g, m.logits), want, n, 1e-6);
    cr_expect(err <= 2e-5, "%s base: adapted logits differ from the merged model's by %g", q4_base ? "nf4" : "fp32",
              err);
    free(want);
    qat_seq_free(fwd);
    qat_graph_free(g);
    case_free(&c);
}

Test(lora, adapters_over_fp32_base_equal_the_merged_model) { check_adapted_equals_merged(false); }
Test(lora, adapters_over_nf4_base_equal_the_merged_dequantized_model) { check_adapted_equals_merged(true); }

/* d loss / d A and d B on the device against central differences of the
 * device's own loss (float32: h = 1e-2, entries of size ~0.3). */
Test(lora, adapter_gradients_match_finite_differences_through_the_nf4_base)
{
    lora_case c;
    case_init(&c, true);
    qat_model m;
    int backward_start;
    qat_graph *g = build_adapted(&c, &m, &backward_start);
    qat_seq *all, *fwd;
    cr_assert_eq(qat_seq_create(g, 0, qat_graph_node_count(g), &all), QAT_OK);
    cr_assert_eq(qat_seq_create(g, 0, backward_start, &fwd), QAT_OK);
    qat_graph_set_phase(g, false, 0);
    cr_assert_eq(qat_seq_run(all), QAT_OK);
    /* The first block's q adapter (the gradient crosses the whole block and
     * the 4-bit layers after it) and its mlp.proj adapter. */
    const char *layers[2] = { "blocks.0.attn.q", "blocks.0.mlp.proj" };
    for (int k = 0; k < 2; k++) {
        int l = qat_model_layer_find(&c.desc, layers[k]);
        const qat_model_layer *ml = &m.layers[l];
        int ids[2] = { ml->lora_a, ml->lora_b };
        float *host[2] = { c.a[l], c.b[l] };
        for (int t = 0; t < 2; t++) {
            const qat_tensor *p = qat_tensor_get(g, ids[t]);
            float *grad = malloc((size_t)p->numel * sizeof *grad);
            cr_assert_eq(qat_tensor_read(g, p->grad, grad), QAT_OK);
            for (int probe = 0; probe < 4; probe++) {
                int64_t e = (probe * 7919) % p->numel;
                float saved = host[t][e], h = 1e-2f;
                double loss[2];
                for (int side = 0; side < 2; side++) {
                    host[t][e] = saved + (side ? h : -h);
                    cr_assert_eq(qat_tensor_write(g, ids[t], host[t]), QAT_OK);
                    cr_assert_eq(qat_seq_run(fwd), QAT_OK);
                    loss[side] = *(const float *)qat_graph_output_slot(g, m.loss);
                }
                host[t][e] = saved;
                cr_assert_eq(qat_tensor_write(g, ids[t], host[t]), QAT_OK);
                double numeric = (loss[1] - loss[0]) / (2.0 * h);
                cr_expect(fabs(numeric - grad[e]) <= 2e-3 + 0.02 * fabs(numeric), "%s %s[%lld]: device %g, numeric %g",
                          layers[k], t ? "B" : "A", (long long)e, (double)grad[e], numeric);
            }
            free(grad);
        }
    }
    qat_seq_free(all);
    qat_seq_free(fwd);
    qat_graph_free(g);
    case_free(&c);
}
