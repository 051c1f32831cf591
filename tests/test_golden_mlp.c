/* The mlp against PyTorch: one step's loss, logits and gradients, and a
 * 10-step loss curve with each optimizer, from tests/golden/mlp_golden.safetensors
 * (made by tests/golden/gen_mlp_golden.py; see tests/golden/README.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/nn.h"
#include "qat/optimizer.h"
#include "qat/safetensors.h"
#include "tests/test_util.h"

enum { BATCH = 32, STEPS = 10 };

static qat_st_file *load_golden(void)
{
    const char *path = test_data_path("golden/mlp_golden.safetensors");
    cr_assert_not_null(path, "tests/golden/mlp_golden.safetensors not found");
    qat_st_file *f;
    cr_assert_eq(qat_st_load(path, &f), QAT_OK, "%s", qat_error_message());
    return f;
}

static const float *golden_f32(const qat_st_file *f, const char *name, size_t count)
{
    const qat_st_tensor *t = qat_st_find(f, name);
    cr_assert_not_null(t, "golden tensor %s missing", name);
    cr_assert_eq(t->nbytes, count * sizeof(float), "golden tensor %s has the wrong size", name);
    return t->data;
}

typedef struct fixture {
    qat_ctx *ctx;
    qat_graph *g;
    qat_model_desc desc;
    qat_model m;
    int optimizer_node;
    qat_optim_config optim;
} fixture;

static void setup(fixture *fx, const qat_st_file *f, qat_optim_config optim)
{
    fx->g = qat_graph_create(fx->ctx);
    qat_model_desc_default(&fx->desc, QAT_MODEL_MLP);
    qat_model_build(fx->g, &fx->desc, BATCH, true, &fx->m);
    qat_graph_backward(fx->g, fx->m.loss);
    fx->optim = optim;
    fx->optimizer_node = qat_graph_add_optimizer(fx->g, &optim);
    cr_assert_eq(qat_graph_compile(fx->g), QAT_OK, "%s", qat_error_message());
    for (int i = 0; i < fx->m.nparams; i++) {
        const qat_tensor *t = qat_tensor_get(fx->g, fx->m.params[i]);
        char name[80];
        snprintf(name, sizeof name, "init.%s", t->name);
        cr_assert_eq(qat_tensor_write(fx->g, fx->m.params[i], golden_f32(f, name, (size_t)t->numel)), QAT_OK);
    }
}

/* Batch s of the golden inputs, pixels / 255 as the generator used. */
static void feed(fixture *fx, const qat_st_file *f, int step)
{
    const uint8_t *x = qat_st_find(f, "x")->data;
    const int32_t *y = qat_st_find(f, "y")->data;
    float *xs = qat_graph_input_slot(fx->g, fx->m.x);
    int32_t *ys = qat_graph_input_slot(fx->g, fx->m.labels);
    for (int i = 0; i < BATCH * 784; i++) xs[i] = x[(size_t)step * BATCH * 784 + i] / 255.0f;
    memcpy(ys, y + step * BATCH, BATCH * sizeof(int32_t));
}

static qat_optim_config sgd_config(void)
{
    qat_optim_config c = qat_optim_defaults(QAT_OPTIM_SGD, 0.05);
    c.momentum = 0.9;
    c.weight_decay = 5e-4;
    return c;
}

static qat_optim_config adamw_config(void)
{
    qat_optim_config c = qat_optim_defaults(QAT_OPTIM_ADAMW, 1e-3);
    c.beta1 = 0.9, c.beta2 = 0.999, c.eps = 1e-8, c.weight_decay = 0.01;
    return c;
}

Test(golden_mlp, one_step_loss_logits_and_gradients_match_pytorch)
{
    qat_st_file *f = load_golden();
    fixture fx = { .ctx = test_gpu_ctx() };
    setup(&fx, f, sgd_config());
    feed(&fx, f, 0);
    qat_seq *fwd_bwd;
    cr_assert_eq(qat_seq_create(fx.g, 0, fx.optimizer_node, &fwd_bwd), QAT_OK);
    cr_assert_eq(qat_seq_run(fwd_bwd), QAT_OK);
    /* float32 sums in a different order than PyTorch's BLAS: a few ulp of the
     * largest values, so 1e-5 relative to each tensor's scale. */
    float loss = *(const float *)qat_graph_output_slot(fx.g, fx.m.loss);
    float want_loss = golden_f32(f, "step1.loss", 1)[0];
    cr_expect(fabsf(loss - want_loss) <= 1e-5f * fabsf(want_loss), "loss %.8f, PyTorch %.8f", loss, want_loss);
    double err = test_rel_max_err(qat_graph_output_slot(fx.g, fx.m.logits), golden_f32(f, "step1.logits", BATCH * 10),
                                  BATCH * 10, 1e-6);
    cr_expect(err <= 1e-5, "logits differ from PyTorch by %g (relative to their scale)", err);
    for (int i = 0; i < fx.m.nparams; i++) {
        const qat_tensor *p = qat_tensor_get(fx.g, fx.m.params[i]);
        size_t n = (size_t)p->numel;
        float *grad = malloc(n * sizeof *grad);
        cr_assert_eq(qat_tensor_read(fx.g, p->grad, grad), QAT_OK);
        char name[80];
        snprintf(name, sizeof name, "step1.grad.%s", p->name);
        err = test_rel_max_err(grad, golden_f32(f, name, n), n, 1e-6);
        cr_expect(err <= 1e-4, "gradient of %s differs from PyTorch by %g (relative to its scale)", p->name, err);
        free(grad);
    }
    qat_seq_free(fwd_bwd);
    qat_graph_free(fx.g);
    test_gpu_done(fx.ctx);
    qat_st_free(f);
}

static void check_curve(qat_optim_config optim, const char *prefix)
{
    qat_st_file *f = load_golden();
    fixture fx = { .ctx = test_gpu_ctx() };
    setup(&fx, f, optim);
    qat_seq *step;
    cr_assert_eq(qat_seq_create(fx.g, 0, qat_graph_node_count(fx.g), &step), QAT_OK);
    char name[80];
    snprintf(name, sizeof name, "%s.losses", prefix);
    const float *want = golden_f32(f, name, STEPS);
    for (int s = 0; s < STEPS; s++) {
        feed(&fx, f, s);
        qat_optim_set_step(fx.g, &fx.optim, s);
        cr_assert_eq(qat_seq_run(step), QAT_OK);
        float loss = *(const float *)qat_graph_output_slot(fx.g, fx.m.loss);
        /* The optimizers round as PyTorch does, so what remains is the
         * summation order of the matmuls, compounding over the steps:
         * measured under 1e-6 relative; 5e-6 leaves room for other drivers. */
        cr_expect(fabsf(loss - want[s]) <= 5e-6f * fabsf(want[s]), "%s step %d: loss %.7f, PyTorch %.7f", prefix, s,
                  loss, want[s]);
    }
    int fc3w = qat_graph_find(fx.g, "fc3.weight"), fc3b = qat_graph_find(fx.g, "fc3.bias");
    float w[2560], b[10];
    cr_assert_eq(qat_tensor_read(fx.g, fc3w, w), QAT_OK);
    cr_assert_eq(qat_tensor_read(fx.g, fc3b, b), QAT_OK);
    snprintf(name, sizeof name, "%s.final.fc3.weight", prefix);
    double err = test_rel_max_err(w, golden_f32(f, name, 2560), 2560, 1e-6);
    cr_expect(err <= 1e-5, "%s: fc3.weight after %d steps differs from PyTorch by %g", prefix, STEPS, err);
    snprintf(name, sizeof name, "%s.final.fc3.bias", prefix);
    err = test_rel_max_err(b, golden_f32(f, name, 10), 10, 1e-6);
    cr_expect(err <= 1e-5, "%s: fc3.bias after %d steps differs from PyTorch by %g", prefix, STEPS, err);
    qat_seq_free(step);
    qat_graph_free(fx.g);
    test_gpu_done(fx.ctx);
    qat_st_free(f);
}

Test(golden_mlp, sgd_momentum_loss_curve_matches_pytorch) { check_curve(sgd_config(), "sgd"); }
Test(golden_mlp, adamw_loss_curve_matches_pytorch) { check_curve(adamw_config(), "adamw"); }
