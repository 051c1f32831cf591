/* Compute kernels: the SPIR-V embedded at build time (one shaders/NAME.comp
 * each), turned into pipelines on first use and cached per set of
 * specialization constants.
 *
 * Specialization constant ids are shared by every shader:
 *   0, 1, 2  local_size_x, _y, _z
 *   3..      the kernel's own (mode, transposes, tile shape ...), see its .comp */
#ifndef QAT_KERNELS_H
#define QAT_KERNELS_H

#include "qat/context.h"

typedef enum qat_kernel {
    QAT_KERNEL_MATMUL,
    QAT_KERNEL_ELTWISE,
    QAT_KERNEL_REDUCE,
    QAT_KERNEL_SOFTMAX_CE,
    QAT_KERNEL_CONV2D,
    QAT_KERNEL_MAXPOOL2D,
    QAT_KERNEL_OPTIM,
    QAT_KERNEL_DROPOUT,
    QAT_KERNEL_FAKE_QUANT,
    QAT_KERNEL_EMBEDDING,
    QAT_KERNEL_LAYER_NORM,
    QAT_KERNEL_CAUSAL_SOFTMAX,
    QAT_KERNEL_TRANSPOSE,
    QAT_KERNEL_MATMUL_Q4,
    QAT_KERNEL_COUNT
} qat_kernel;

#define QAT_MAX_SPEC 12

typedef struct qat_spec {
    uint32_t local[3];
    uint32_t values[QAT_MAX_SPEC - 3]; /* ids 3.. */
} qat_spec;

const char *qat_kernel_name(qat_kernel kernel);

/* The pipeline for a kernel with the given specialization; created once per
 * context and cached. */
qat_status qat_kernel_pipeline(qat_ctx *ctx, qat_kernel kernel, const qat_spec *spec, VkPipeline *out);

/* Destroys the cached pipelines (called by qat_ctx_free). */
void qat_kernels_release(qat_ctx *ctx);

#endif
