/* Graph side of transpose12 (a swap of axes 1 and 2 of a 4-d tensor),
 * encoded onto shaders/transpose.comp. CPU reference: ops/transpose.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

int qat_transpose12(qat_graph *g, int x)
{
    const qat_tensor *t = qat_tensor_get(g, x);
    QAT_ASSERT_MSG(t->ndim == 4 && t->dtype == QAT_F32, "transpose12 takes a 4-d float tensor");
    QAT_ASSERT_MSG(t->numel <= (int64_t)UINT32_MAX - (1 << 24), "transpose12 indexes elements with 32 bits");
    int64_t shape[4] = { t->shape[0], t->shape[2], t->shape[1], t->shape[3] };
    int out = qat_act_new(g, NULL, QAT_F32, 4, shape);
    qat_node_add(g, QAT_OP_TRANSPOSE12, &x, 1, out);
    return out;
}

/* The swap is its own adjoint. */
static void backward_transpose12(qat_graph *g, int node, int dy, int *dx)
{
    (void)node;
    dx[0] = qat_transpose12(g, dy);
}

static void encode_transpose12(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    const qat_tensor *x = qat_in(g, n, 0);
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    bool vec = x->shape[3] % 4 == 0;
    uint64_t rows = (uint64_t)(x->shape[0] * x->shape[1] * x->shape[2]);
    /* An invocation per row of D; as the elementwise kernels, a few hundred
     * wide groups on llvmpipe (each group has a fixed cost). */
    qat_dispatch_1d(g, d, QAT_KERNEL_TRANSPOSE, 0, rows, cpu ? 256 : 64);
    if (cpu && d->groups[0] > 256) d->groups[0] = 256;
    d->spec.values[0] = cpu;                   /* TEXEL */
    d->spec.values[1] = vec;                   /* VEC */
    d->spec.values[2] = rows >= (1u << 22);    /* EXACT_DIV: fdiv's estimate is exact below 2^22 */
    d->texel[0] = cpu;
    qat_bind(d, n, 2);
    d->push[0] = (uint32_t)rows;
    d->push[1] = (uint32_t)x->shape[1];
    d->push[2] = (uint32_t)x->shape[2];
    d->push[3] = (uint32_t)(x->shape[3] / (vec ? 4 : 1));
}

const qat_op_def qat_op_transpose12_def = { "transpose12", encode_transpose12, backward_transpose12 };
