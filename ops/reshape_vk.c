/* reshape / flatten: a view of the same memory, so no kernel and no CPU
 * reference beyond the identity. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

int qat_reshape(qat_graph *g, int x, int ndim, const int64_t *shape)
{
    const qat_tensor *t = qat_tensor_get(g, x);
    QAT_ASSERT_MSG(qat_shape_numel(ndim, shape) == t->numel, "reshape must keep the element count");
    qat_dtype dtype = t->dtype;
    int out = qat_tensor_new(g, NULL, dtype, ndim, shape, QAT_STORE_VIEW);
    qat_tensor_get(g, out)->base = x;
    qat_node_add(g, QAT_OP_RESHAPE, &x, 1, out);
    return out;
}

int qat_flatten(qat_graph *g, int x)
{
    const qat_tensor *t = qat_tensor_get(g, x);
    int64_t shape[2] = { t->shape[0], t->numel / t->shape[0] };
    return qat_reshape(g, x, 2, shape);
}

static void backward_reshape(qat_graph *g, int node, int dy, int *dx)
{
    const qat_tensor *in = qat_tensor_get(g, qat_node_get(g, node)->in[0]);
    int64_t shape[QAT_MAX_DIMS];
    int ndim = in->ndim;
    memcpy(shape, in->shape, sizeof shape);
    dx[0] = qat_reshape(g, dy, ndim, shape);
}

const qat_op_def qat_op_reshape_def = { "reshape", NULL, backward_reshape };
