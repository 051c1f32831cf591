/* Graph side of conv2d (NCHW, OIHW, stride, zero padding; bias is a separate
 * bias_add), encoded onto shaders/conv2d.comp. CPU reference: ops/conv2d.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

enum { MODE_FORWARD, MODE_BACK_INPUT, MODE_BACK_WEIGHT };

/* iarg: 0 stride, 1 padding; shapes come from the tensors. */
int qat_conv2d(qat_graph *g, int x, int w, int stride, int padding)
{
    const qat_tensor *tx = qat_tensor_get(g, x), *tw = qat_tensor_get(g, w);
    QAT_ASSERT_MSG(tx->ndim == 4 && tw->ndim == 4 && tx->shape[1] == tw->shape[1],
                   "conv2d takes x (N, C, H, W) and w (O, C, KH, KW)");
    QAT_ASSERT(stride >= 1 && padding >= 0);
    int64_t oh = (tx->shape[2] + 2 * padding - tw->shape[2]) / stride + 1;
    int64_t ow = (tx->shape[3] + 2 * padding - tw->shape[3]) / stride + 1;
    QAT_ASSERT_MSG(oh > 0 && ow > 0, "conv2d kernel larger than the padded input");
    int64_t shape[4] = { tx->shape[0], tw->shape[0], oh, ow };
    int out = qat_act_new(g, NULL, QAT_F32, 4, shape);
    int in[2] = { x, w };
    qat_node *n = qat_node_get(g, qat_node_add(g, QAT_OP_CONV2D, in, 2, out));
    n->iarg[0] = stride;
    n->iarg[1] = padding;
    return out;
}

static void backward_conv2d(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    if (qat_tensor_get(g, n.in[0])->requires_grad) {
        /* Inputs: dy, w, and x only for its shape. */
        int in[3] = { dy, n.in[1], n.in[0] };
        int out = qat_act_like(g, n.in[0], NULL);
        qat_node *b = qat_node_get(g, qat_node_add(g, QAT_OP_CONV2D_BACK_INPUT, in, 3, out));
        b->iarg[0] = n.iarg[0], b->iarg[1] = n.iarg[1];
        dx[0] = out;
    }
    if (qat_tensor_get(g, n.in[1])->requires_grad) {
        int in[3] = { dy, n.in[0], n.in[1] };
        int out = qat_act_like(g, n.in[1], NULL);
        qat_node *b = qat_node_get(g, qat_node_add(g, QAT_OP_CONV2D_BACK_WEIGHT, in, 3, out));
        b->iarg[0] = n.iarg[0], b->iarg[1] = n.iarg[1];
        dx[1] = out;
    }
}

static void encode_conv2d(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    const qat_tensor *x, *w, *y;
    uint32_t mode;
    if (n->op == QAT_OP_CONV2D) {
        x = qat_in(g, n, 0), w = qat_in(g, n, 1), y = qat_tensor_cget(g, n->out), mode = MODE_FORWARD;
    } else if (n->op == QAT_OP_CONV2D_BACK_INPUT) {
        y = qat_in(g, n, 0), w = qat_in(g, n, 1), x = qat_in(g, n, 2), mode = MODE_BACK_INPUT;
    } else {
        y = qat_in(g, n, 0), x = qat_in(g, n, 1), w = qat_in(g, n, 2), mode = MODE_BACK_WEIGHT;
    }
    uint64_t total = (uint64_t)qat_tensor_cget(g, n->out)->numel;
    qat_dispatch_1d(g, d, QAT_KERNEL_CONV2D, mode, total, 64);
    d->binding[0] = n->in[0];
    d->binding[1] = n->in[1];
    d->binding[2] = n->out;
    d->writes[2] = true;
    uint32_t push[12] = {
        (uint32_t)x->shape[0], (uint32_t)x->shape[1], (uint32_t)x->shape[2], (uint32_t)x->shape[3],
        (uint32_t)w->shape[0], (uint32_t)w->shape[2], (uint32_t)w->shape[3], (uint32_t)y->shape[2],
        (uint32_t)y->shape[3], (uint32_t)n->iarg[0], (uint32_t)n->iarg[1], (uint32_t)total,
    };
    memcpy(d->push, push, sizeof push);
}

const qat_op_def qat_op_conv2d_def = { "conv2d", encode_conv2d, backward_conv2d };
const qat_op_def qat_op_conv2d_back_input_def = { "conv2d_back_input", encode_conv2d, NULL };
const qat_op_def qat_op_conv2d_back_weight_def = { "conv2d_back_weight", encode_conv2d, NULL };
