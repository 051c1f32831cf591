/* Graph side of softmax cross-entropy, encoded onto shaders/softmax_ce.comp.
 * CPU reference: ops/softmax_ce.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

int qat_softmax_ce(qat_graph *g, int logits, int labels)
{
    const qat_tensor *tl = qat_tensor_get(g, logits), *ty = qat_tensor_get(g, labels);
    QAT_ASSERT_MSG(tl->ndim == 2 && ty->dtype == QAT_I32 && ty->numel == tl->shape[0],
                   "softmax_ce takes logits (batch, classes) and int32 labels (batch)");
    int64_t one = 1;
    int out = qat_act_new(g, "loss", QAT_F32, 1, &one);
    int in[2] = { logits, labels };
    qat_node_add(g, QAT_OP_SOFTMAX_CE, in, 2, out);
    return out;
}

static void backward_softmax_ce(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    int in[3] = { n.in[0], n.in[1], dy };
    dx[0] = qat_unary_like(g, QAT_OP_SOFTMAX_CE_BACK, in, 3, n.in[0]);
}

static void encode_softmax_ce(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    const qat_tensor *tl = qat_in(g, n, 0);
    uint32_t batch = (uint32_t)tl->shape[0], classes = (uint32_t)tl->shape[1];
    bool forward = n->op == QAT_OP_SOFTMAX_CE;
    if (forward) {
        /* One workgroup, so the mean over the batch has one fixed order. */
        qat_dispatch_1d(g, d, QAT_KERNEL_SOFTMAX_CE, 0, 1, 256);
        d->groups[0] = 1;
    } else {
        qat_dispatch_1d(g, d, QAT_KERNEL_SOFTMAX_CE, 1, batch, 64);
        d->groups[0] = (batch + 63) / 64;
    }
    qat_bind(d, n, 3);
    d->push[0] = batch;
    d->push[1] = classes;
}

const qat_op_def qat_op_softmax_ce_def = { "softmax_ce", encode_softmax_ce, backward_softmax_ce };
const qat_op_def qat_op_softmax_ce_back_def = { "softmax_ce_back", encode_softmax_ce, NULL };
