/* Model descriptions: the parameters and layers every kind declares, and the
 * gpt's size checks. */
#include <string.h>

#include "qat/nn.h"
#include "tests/test_util.h"

Test(models, image_models_keep_their_layers_and_checkpoint_order)
{
    static qat_model_desc d;
    qat_model_desc_default(&d, QAT_MODEL_MLP);
    cr_expect_eq(d.nlayers, 3);
    cr_expect_eq(d.nparams, 6);
    cr_expect_eq(d.param_count, 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10);
    cr_expect_str_eq(d.params[2].name, "fc2.weight");
    cr_expect_eq(d.layers[1].weight, 2);
    cr_expect_eq(d.layers[1].bias, 3);
    qat_model_desc_default(&d, QAT_MODEL_CNN);
    cr_expect_eq(d.nlayers, 4);
    cr_expect(d.layers[1].conv && d.layers[1].cols == 16 * 9);
    cr_expect_eq(qat_model_layer_find(&d, "fc1"), 2);
    cr_expect_eq(qat_model_layer_find(&d, "fc3"), -1);
}

Test(models, gpt_description_matches_docs_gpt_md)
{
    static qat_model_desc d;
    qat_model_desc_default(&d, QAT_MODEL_GPT);
    /* 4 blocks of 16 parameters and 6 linear layers, plus wte, wpe, ln_f, head. */
    cr_expect_eq(d.nparams, 4 * 16 + 6);
    cr_expect_eq(d.nlayers, 4 * 6 + 1);
    int64_t C = 128, V = 256, T = 128;
    int64_t block = 2 * C + 4 * (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C);
    cr_expect_eq(d.param_count, V * C + T * C + 4 * block + 2 * C + V * C + V);
    cr_expect_str_eq(d.params[0].name, "wte.weight");
    cr_expect_str_eq(d.params[d.nparams - 1].name, "head.bias");
    int fc = qat_model_layer_find(&d, "blocks.3.mlp.fc");
    cr_assert(fc >= 0);
    cr_expect_eq(d.layers[fc].rows, 4 * C);
    cr_expect_eq(d.layers[fc].cols, C);
    cr_expect_eq(d.layers[fc].positions, T);
    cr_expect_eq(qat_layer_input_numel(&d.layers[fc], 2), 2 * T * C);
    cr_expect_str_eq(d.params[d.layers[fc].weight].name, "blocks.3.mlp.fc.weight");
    /* GPT-2's initialisation: the residual projections are scaled down. */
    int proj = qat_model_param_find(&d, "blocks.0.attn.proj.weight"), q = qat_model_param_find(&d, "blocks.0.attn.q.weight");
    cr_expect(d.params[proj].init == QAT_INIT_NORMAL && d.params[proj].init_arg < d.params[q].init_arg);
    cr_expect_eq(d.params[qat_model_param_find(&d, "ln_f.weight")].init, QAT_INIT_ONES);
}

Test(models, bad_gpt_sizes_name_the_field)
{
    static qat_model_desc d;
    qat_model_config c = { .kind = QAT_MODEL_GPT, .gpt = QAT_GPT_DEFAULT_CONFIG };
    c.gpt.heads = 3;
    cr_expect_eq(qat_model_desc_init(&d, &c), QAT_ERR_INVALID);
    cr_expect(strstr(qat_error_message(), "width 128") && strstr(qat_error_message(), "heads 3"), "%s",
              qat_error_message());
    c.gpt = QAT_GPT_DEFAULT_CONFIG;
    c.gpt.layers = QAT_GPT_MAX_LAYERS + 1;
    cr_expect_eq(qat_model_desc_init(&d, &c), QAT_ERR_INVALID);
    cr_expect(strstr(qat_error_message(), "layers"), "%s", qat_error_message());
    c.gpt.layers = QAT_GPT_MAX_LAYERS;
    cr_expect_eq(qat_model_desc_init(&d, &c), QAT_OK, "%s", qat_error_message());
}
