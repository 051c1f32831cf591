#include "qat/kernels.h"

#include <stdlib.h>
#include <string.h>

/* Each include is the SPIR-V of shaders/NAME.comp as a C initializer, written
 * by glslc -mfmt=c (see the Makefile's shaders target). */
static const uint32_t spv_matmul[] =
#include "matmul.spv.inc"
;
static const uint32_t spv_eltwise[] =
#include "eltwise.spv.inc"
;
static const uint32_t spv_reduce[] =
#include "reduce.spv.inc"
;
static const uint32_t spv_softmax_ce[] =
#include "softmax_ce.spv.inc"
;
static const uint32_t spv_conv2d[] =
#include "conv2d.spv.inc"
;
static const uint32_t spv_maxpool2d[] =
#include "maxpool2d.spv.inc"
;
static const uint32_t spv_optim[] =
#include "optim.spv.inc"
;
static const uint32_t spv_dropout[] =
#include "dropout.spv.inc"
;
static const uint32_t spv_fake_quant[] =
#include "fake_quant.spv.inc"
;
static const uint32_t spv_embedding[] =
#include "embedding.spv.inc"
;
static const uint32_t spv_layer_norm[] =
#include "layer_norm.spv.inc"
;
static const uint32_t spv_causal_softmax[] =
#include "causal_softmax.spv.inc"
;
static const uint32_t spv_transpose[] =
#include "transpose.spv.inc"
;
static const uint32_t spv_matmul_q4[] =
#include "matmul_q4.spv.inc"
;

static const struct {
    const char *name;
    const uint32_t *code;
    size_t bytes;
} kernel_table[] = {
    [QAT_KERNEL_MATMUL] = { "matmul", spv_matmul, sizeof spv_matmul },
    [QAT_KERNEL_ELTWISE] = { "eltwise", spv_eltwise, sizeof spv_eltwise },
    [QAT_KERNEL_REDUCE] = { "reduce", spv_reduce, sizeof spv_reduce },
    [QAT_KERNEL_SOFTMAX_CE] = { "softmax_ce", spv_softmax_ce, sizeof spv_softmax_ce },
    [QAT_KERNEL_CONV2D] = { "conv2d", spv_conv2d, sizeof spv_conv2d },
    [QAT_KERNEL_MAXPOOL2D] = { "maxpool2d", spv_maxpool2d, sizeof spv_maxpool2d },
    [QAT_KERNEL_OPTIM] = { "optim", spv_optim, sizeof spv_optim },
    [QAT_KERNEL_DROPOUT] = { "dropout", spv_dropout, sizeof spv_dropout },
    [QAT_KERNEL_FAKE_QUANT] = { "fake_quant", spv_fake_quant, sizeof spv_fake_quant },
    [QAT_KERNEL_EMBEDDING] = { "embedding", spv_embedding, sizeof spv_embedding },
    [QAT_KERNEL_LAYER_NORM] = { "layer_norm", spv_layer_norm, sizeof spv_layer_norm },
    [QAT_KERNEL_CAUSAL_SOFTMAX] = { "causal_softmax", spv_causal_softmax, sizeof spv_causal_softmax },
    [QAT_KERNEL_TRANSPOSE] = { "transpose", spv_transpose, sizeof spv_transpose },
    [QAT_KERNEL_MATMUL_Q4] = { "matmul_q4", spv_matmul_q4, sizeof spv_matmul_q4 },
};
_Static_assert(QAT_ARRAY_LEN(kernel_table) == QAT_KERNEL_COUNT, "every kernel needs its SPIR-V");

struct qat_pipeline_entry {
    qat_kernel kernel;
    qat_spec spec;
    VkShaderModule module;
    VkPipeline pipeline;
    qat_pipeline_entry *next;
};

const char *qat_kernel_name(qat_kernel kernel)
{
    QAT_ASSERT(kernel < QAT_KERNEL_COUNT);
    return kernel_table[kernel].name;
}

qat_status qat_kernel_pipeline(qat_ctx *ctx, qat_kernel kernel, const qat_spec *spec, VkPipeline *out)
{
    QAT_ASSERT(kernel < QAT_KERNEL_COUNT);
    for (qat_pipeline_entry *e = ctx->pipelines; e; e = e->next)
        if (e->kernel == kernel && memcmp(&e->spec, spec, sizeof *spec) == 0) {
            *out = e->pipeline;
            return QAT_OK;
        }
    qat_pipeline_entry *e = qat_xcalloc(1, sizeof *e);
    e->kernel = kernel;
    e->spec = *spec;
    VkShaderModuleCreateInfo module_info = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = kernel_table[kernel].bytes,
        .pCode = kernel_table[kernel].code,
    };
    VkResult r = vkCreateShaderModule(ctx->device, &module_info, NULL, &e->module);
    if (r != VK_SUCCESS) {
        free(e);
        return qat_vk_error(r, "vkCreateShaderModule");
    }
    VkSpecializationMapEntry entries[QAT_MAX_SPEC];
    for (uint32_t i = 0; i < QAT_MAX_SPEC; i++)
        entries[i] = (VkSpecializationMapEntry){ .constantID = i, .offset = 4 * i, .size = 4 };
    VkSpecializationInfo spec_info = {
        .mapEntryCount = QAT_MAX_SPEC,
        .pMapEntries = entries,
        .dataSize = sizeof *spec,
        .pData = spec,
    };
    _Static_assert(sizeof(qat_spec) == 4 * QAT_MAX_SPEC, "spec constants are packed uint32s");
    VkComputePipelineCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
            .stage = VK_SHADER_STAGE_COMPUTE_BIT,
            .module = e->module,
            .pName = "main",
            .pSpecializationInfo = &spec_info,
        },
        .layout = ctx->pipeline_layout,
    };
    r = vkCreateComputePipelines(ctx->device, VK_NULL_HANDLE, 1, &info, NULL, &e->pipeline);
    if (r != VK_SUCCESS) {
        vkDestroyShaderModule(ctx->device, e->module, NULL);
        free(e);
        return qat_vk_error(r, "vkCreateComputePipelines");
    }
    e->next = ctx->pipelines;
    ctx->pipelines = e;
    *out = e->pipeline;
    return QAT_OK;
}

void qat_kernels_release(qat_ctx *ctx)
{
    qat_pipeline_entry *e = ctx->pipelines;
    while (e) {
        qat_pipeline_entry *next = e->next;
        vkDestroyPipeline(ctx->device, e->pipeline, NULL);
        vkDestroyShaderModule(ctx->device, e->module, NULL);
        free(e);
        e = next;
    }
    ctx->pipelines = NULL;
}
