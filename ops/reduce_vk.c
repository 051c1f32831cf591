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

static int sum_node(qat_graph *g, qat_op op, int x, int ndim, const int64_t *shape, int64_t outer, int64_t n,
                    int64_t inner)
{
    int out = qat_act_new(g, NULL, QAT_F32, ndim, shape);
    qat_node *node = qat_node_get(g, qat_node_add(g, op, &x, 1, out));
    node->iarg[0] = (int32_t)outer;
    node->iarg[1] = (int32_t)n;
    node->iarg[2] = (int32_t)inner;
    node->farg[0] = 1.0f;
    return out;
}

int qat_sum_keep(qat_graph *g, int x, int64_t outer, int64_t n, int64_t inner)
{
    QAT_ASSERT(qat_tensor_get(g, x)->numel == outer * n * inner);
    if (inner == 1 || outer == 1) return sum_node(g, QAT_OP_SUM_KEEP, x, 1, &n, outer, n, inner);
    /* A conv bias' gradient: first over outer (a sequential sum for each of
     * the n * inner positions, every lane busy), then over inner. A fixed
     * order, though not the reference's single accumulator. */
    int64_t mid = n * inner;
    int partial = sum_node(g, QAT_OP_SUM, x, 1, &mid, 1, outer, n * inner);
    return sum_node(g, QAT_OP_SUM, partial, 1, &n, n, inner, 1);
}

static void backward_reduce(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    dx[0] = qat_broadcast(g, dy, n.in[0], n.iarg[0], n.iarg[1], n.iarg[2], 1.0f);
    /* A mean's gradient divides by n, as the reference does (no 1/n rounding). */
    if (n.op == QAT_OP_MEAN) qat_node_get(g, qat_tensor_get(g, dx[0])->producer)->farg[1] = (float)n.iarg[1];
}

enum { MODE_SUM_MIDDLE_TREE = 2 };

static void encode_reduce(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    uint32_t outer = (uint32_t)n->iarg[0], count = (uint32_t)n->iarg[1], inner = (uint32_t)n->iarg[2];
    bool keep = n->op == QAT_OP_SUM_KEEP;
    if (keep && inner == 1) {
        /* (outer, n, 1) is (1, outer, n): column sums (a linear bias'
         * gradient), one sequential sum per column, in the same order. */
        keep = false;
        inner = count, count = outer, outer = 1;
    }
    bool vec = inner % 4 == 0;
    uint64_t outputs = keep ? count : (uint64_t)outer * inner;
    uint64_t per_output = keep ? (uint64_t)outer * inner : count;
    d->kernel = QAT_KERNEL_REDUCE;
    d->spec.local[1] = d->spec.local[2] = 1;
    d->spec.values[4] = 1;                                            /* V */
    d->spec.values[1] = cpu && vec;                                   /* TEXEL */
    d->spec.values[2] = vec;                                          /* VEC */
    d->spec.values[3] = (uint64_t)outer * inner >= (1u << 22);        /* EXACT_DIV */
    d->texel[0] = cpu && vec;
    d->binding[0] = n->in[0];
    d->binding[2] = n->out;
    d->writes[2] = true;
    d->push[0] = outer;
    d->push[1] = count;
    d->push[2] = inner;
    d->push[3] = qat_float_bits(n->op == QAT_OP_MEAN ? 1.0f : n->farg[0]);
    d->push[4] = qat_float_bits(n->op == QAT_OP_MEAN ? (float)n->iarg[1] : 0.0f);
    uint64_t lanes = vec ? outputs / 4 : outputs;
    if (!keep && (lanes >= 64 || (lanes >= 8 && count <= 4096))) {
        /* Enough outputs to give lanes one each (or short sums): sequential
         * sums, the reference's order. */
        /* On llvmpipe, several vec4 outputs per invocation keep more loads
         * in flight (the sums stride through memory). */
        uint32_t v = vec && cpu ? (lanes >= 1024 ? 8 : lanes >= 256 ? 4 : 1) : 1;
        d->spec.values[4] = v;
        lanes = (lanes + v - 1) / v;
        d->spec.local[0] = 64;
        d->spec.values[0] = MODE_SUM_MIDDLE;
        d->groups[0] = qat_groups_for(g, lanes, 64);
        if (cpu && d->groups[0] > 256) d->groups[0] = 256;
        d->groups[1] = d->groups[2] = 1;
        return;
    }
    if (!keep) {
        d->spec.values[1] = d->spec.values[2] = false; /* the tree reads scalars */
        d->texel[0] = false;
    }
    /* A workgroup per output; small reductions get small groups so lanes
     * are not left idle. Power of two for the tree. */
    uint64_t items = keep && vec ? per_output / 4 : per_output;
    uint32_t local = 16;
    while (local < 256 && local < items) local *= 2;
    d->spec.local[0] = local;
    d->spec.values[0] = keep ? MODE_KEEP_MIDDLE : MODE_SUM_MIDDLE_TREE;
    uint32_t max_x = 65535;
    d->groups[0] = outputs < max_x ? (uint32_t)outputs : max_x;
    d->groups[1] = (uint32_t)((outputs + max_x - 1) / max_x);
    d->groups[2] = 1;
}

const qat_op_def qat_op_sum_def = { "sum", encode_reduce, backward_reduce };
const qat_op_def qat_op_mean_def = { "mean", encode_reduce, backward_reduce };
const qat_op_def qat_op_sum_keep_def = { "sum_keep", encode_reduce, NULL };
