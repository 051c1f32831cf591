/* Graph side of the causal softmax of attention scores, encoded onto
 * shaders/causal_softmax.comp. CPU reference: ops/causal_softmax.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

enum { MODE_FORWARD, MODE_BACKWARD };

/* iarg: 0 rows (batch * T), 1 T; farg 0: scale. */
int qat_causal_softmax(qat_graph *g, int x, float scale)
{
    const qat_tensor *t = qat_tensor_get(g, x);
    QAT_ASSERT_MSG(t->dtype == QAT_F32 && t->ndim >= 2 && t->shape[t->ndim - 1] == t->shape[t->ndim - 2],
                   "causal_softmax takes float scores (batch, T, T)");
    QAT_ASSERT_MSG(t->numel <= (int64_t)UINT32_MAX - (1 << 24), "causal_softmax indexes elements with 32 bits");
    int out = qat_act_like(g, x, NULL);
    qat_node *n = qat_node_get(g, qat_node_add(g, QAT_OP_CAUSAL_SOFTMAX, &x, 1, out));
    int64_t len = t->shape[t->ndim - 1];
    n->iarg[0] = (int32_t)(t->numel / len);
    n->iarg[1] = (int32_t)len;
    n->farg[0] = scale;
    return out;
}

/* Reads the forward's output, which the softmax's gradient is written in. */
static void backward_causal_softmax(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    int in[2] = { n.out, dy };
    int out = qat_act_like(g, n.in[0], NULL);
    qat_node *b = qat_node_get(g, qat_node_add(g, QAT_OP_CAUSAL_SOFTMAX_BACK, in, 2, out));
    memcpy(b->iarg, n.iarg, sizeof b->iarg);
    memcpy(b->farg, n.farg, sizeof b->farg);
    dx[0] = out;
}

static void encode_causal_softmax(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    uint32_t rows = (uint32_t)n->iarg[0], t = (uint32_t)n->iarg[1];
    bool vec = t % 4 == 0;
    bool forward = n->op == QAT_OP_CAUSAL_SOFTMAX;
    /* An invocation per row, grid-stride; a few hundred groups at most on
     * llvmpipe (each group has a fixed cost). */
    qat_dispatch_1d(g, d, QAT_KERNEL_CAUSAL_SOFTMAX, forward ? MODE_FORWARD : MODE_BACKWARD, rows, 64);
    if (cpu && d->groups[0] > 256) d->groups[0] = 256;
    d->spec.values[1] = cpu;                /* TEXEL */
    d->spec.values[2] = vec;                /* VEC */
    d->spec.values[3] = rows >= (1u << 22); /* EXACT_DIV */
    d->texel[0] = cpu;
    d->texel[1] = cpu && !forward;
    qat_bind(d, n, 2);
    d->push[0] = rows;
    d->push[1] = t;
    d->push[2] = vec ? t / 4 : t;
    d->push[3] = qat_float_bits(n->farg[0]);
}

const qat_op_def qat_op_causal_softmax_def = { "causal_softmax", encode_causal_softmax, backward_causal_softmax };
const qat_op_def qat_op_causal_softmax_back_def = { "causal_softmax_back", encode_causal_softmax, NULL };
