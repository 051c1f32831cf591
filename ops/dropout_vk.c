/* Graph side of dropout, encoded onto shaders/dropout.comp. CPU reference:
 * ops/dropout.c. */
#include "ops/op_util.h"
#include "ops/ops_ref.h"
#include "ops/ops_vk.h"

/* iarg: 0 seed lo, 1 seed hi, 2 salt; farg 0: p */
static int dropout_node(qat_graph *g, int x, float p, int32_t seed_lo, int32_t seed_hi, int32_t salt)
{
    int out = qat_act_like(g, x, NULL);
    qat_node *n = qat_node_get(g, qat_node_add(g, QAT_OP_DROPOUT, &x, 1, out));
    n->iarg[0] = seed_lo;
    n->iarg[1] = seed_hi;
    n->iarg[2] = salt;
    n->farg[0] = p;
    return out;
}

int qat_dropout(qat_graph *g, int x, float p, uint64_t seed, uint32_t salt)
{
    QAT_ASSERT_MSG(p >= 0.0f && p < 1.0f, "dropout probability must lie in [0, 1)");
    QAT_ASSERT_MSG(qat_tensor_get(g, x)->numel < (int64_t)1 << 34, "dropout addresses blocks with 32 bits");
    return dropout_node(g, x, p, (int32_t)(uint32_t)seed, (int32_t)(uint32_t)(seed >> 32), (int32_t)salt);
}

/* The same mask and scale, applied to dy. */
static void backward_dropout(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    dx[0] = dropout_node(g, dy, n.farg[0], n.iarg[0], n.iarg[1], n.iarg[2]);
}

static void encode_dropout(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    uint64_t count = (uint64_t)qat_tensor_cget(g, n->out)->numel;
    qat_dispatch_1d(g, d, QAT_KERNEL_DROPOUT, 0, (count + 3) / 4, 64);
    d->binding[0] = n->in[0];
    d->binding[2] = n->out;
    d->writes[2] = true;
    d->push[0] = (uint32_t)count;
    d->push[1] = qat_dropout_threshold(n->farg[0]);
    d->push[2] = qat_float_bits((float)(1.0 / (1.0 - (double)n->farg[0])));
    d->push[3] = (uint32_t)n->iarg[0];
    d->push[4] = (uint32_t)n->iarg[1];
    d->push[5] = (uint32_t)n->iarg[2];
}

const qat_op_def qat_op_dropout_def = { "dropout", encode_dropout, backward_dropout };
