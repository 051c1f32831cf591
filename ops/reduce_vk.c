/* Graph side of the reductions (sum, mean, and the keep-middle sum that bias
 * gradients need), encoded onto shaders/reduce.comp. CPU reference:
 * ops/reduce.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

enum { MODE_SUM_MIDDLE, MODE_KEEP_MIDDLE };

/* iarg: 0 outer, 1 n, 2 inner; farg 0: scale */
static int reduce(qat_graph *g, qat_op op, int x, int axis)
{
    const qat_tensor *t = qat_tensor_get(g, x);
    int64_t outer = 1, n, inner = 1, shape[QAT_MAX_DIMS];
    int ndim = 0;
    if (axis < 0) {
        n = t->numel;
        shape[ndim++] = 1;
    } else {
        QAT_ASSERT(axis < t->ndim);
        for (int i = 0; i < axis; i++) outer *= t->shape[i], shape[ndim++] = t->shape[i];
        n = t->shape[axis];
        for (int i = axis + 1; i < t->ndim; i++) inner *= t->shape[i], shape[ndim++] = t->shape[i];
        if (ndim == 0) shape[ndim++] = 1;
    }
    int out = qat_act_new(g, NULL, QAT_F32, ndim, shape);
    qat_node *node = qat_node_get(g, qat_node_add(g, op, &x, 1, out));
    node->iarg[0] = (int32_t)outer;
    node->iarg[1] = (int32_t)n;
    node->iarg[2] = (int32_t)inner;
    node->farg[0] = op == QAT_OP_MEAN ? 1.0f / (float)n : 1.0f;
    return out;
}

int qat_sum(qat_graph *g, int x, int axis) { return reduce(g, QAT_OP_SUM, x, axis); }
int qat_mean(qat_graph *g, int x, int axis) { return reduce(g, QAT_OP_MEAN, x, axis); }

int qat_sum_keep(qat_graph *g, int x, int64_t outer, int64_t n, int64_t inner)
{
    QAT_ASSERT(qat_tensor_get(g, x)->numel == outer * n * inner);
    int out = qat_act_new(g, NULL, QAT_F32, 1, &n);
    qat_node *node = qat_node_get(g, qat_node_add(g, QAT_OP_SUM_KEEP, &x, 1, out));
    node->iarg[0] = (int32_t)outer;
    node->iarg[1] = (int32_t)n;
    node->iarg[2] = (int32_t)inner;
    node->farg[0] = 1.0f;
    return out;
}

static void backward_reduce(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    dx[0] = qat_broadcast(g, dy, n.in[0], n.iarg[0], n.iarg[1], n.iarg[2], n.farg[0]);
}

static void encode_reduce(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    uint32_t outer = (uint32_t)n->iarg[0], count = (uint32_t)n->iarg[1], inner = (uint32_t)n->iarg[2];
    bool keep = n->op == QAT_OP_SUM_KEEP;
    uint64_t outputs = keep ? count : (uint64_t)outer * inner;
    uint64_t per_output = keep ? (uint64_t)outer * inner : count;
    /* A workgroup per output; small reductions get small groups so lanes
     * are not left idle. Power of two for the tree. */
    uint32_t local = 16;
    while (local < 256 && local < per_output) local *= 2;
    d->kernel = QAT_KERNEL_REDUCE;
    d->spec.local[0] = local;
    d->spec.local[1] = d->spec.local[2] = 1;
    d->spec.values[0] = keep ? MODE_KEEP_MIDDLE : MODE_SUM_MIDDLE;
    uint32_t max_x = 65535;
    d->groups[0] = outputs < max_x ? (uint32_t)outputs : max_x;
    d->groups[1] = (uint32_t)((outputs + max_x - 1) / max_x);
    d->groups[2] = 1;
    d->binding[0] = n->in[0];
    d->binding[2] = n->out;
    d->writes[2] = true;
    d->push[0] = outer;
    d->push[1] = count;
    d->push[2] = inner;
    d->push[3] = qat_float_bits(n->farg[0]);
    (void)g;
}

const qat_op_def qat_op_sum_def = { "sum", encode_reduce, backward_reduce };
const qat_op_def qat_op_mean_def = { "mean", encode_reduce, backward_reduce };
const qat_op_def qat_op_sum_keep_def = { "sum_keep", encode_reduce, NULL };
