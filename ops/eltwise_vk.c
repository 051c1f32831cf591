/* Graph side of the elementwise ops (add, mul, relu, gelu and their
 * backward kernels, bias add, broadcast): builders, backward rules and their
 * encoding onto shaders/eltwise.comp. CPU references: ops/mul.c, relu.c,
 * gelu.c, bias_add.c, reduce.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

enum { MODE_ADD, MODE_MUL, MODE_RELU, MODE_RELU_BACK, MODE_GELU, MODE_GELU_BACK, MODE_BIAS_ADD, MODE_BROADCAST };

static void same_shape(const qat_graph *g, int a, int b)
{
    const qat_tensor *ta = qat_tensor_cget(g, a), *tb = qat_tensor_cget(g, b);
    QAT_ASSERT_MSG(ta->numel == tb->numel && ta->ndim == tb->ndim, "elementwise operands differ in shape");
    for (int i = 0; i < ta->ndim; i++) QAT_ASSERT_MSG(ta->shape[i] == tb->shape[i], "elementwise operands differ in shape");
}

int qat_add(qat_graph *g, int a, int b)
{
    same_shape(g, a, b);
    int in[2] = { a, b };
    return qat_unary_like(g, QAT_OP_ADD, in, 2, a);
}

int qat_mul(qat_graph *g, int a, int b)
{
    same_shape(g, a, b);
    int in[2] = { a, b };
    return qat_unary_like(g, QAT_OP_MUL, in, 2, a);
}

int qat_relu(qat_graph *g, int x) { return qat_unary_like(g, QAT_OP_RELU, &x, 1, x); }
int qat_gelu(qat_graph *g, int x) { return qat_unary_like(g, QAT_OP_GELU, &x, 1, x); }

int qat_bias_add(qat_graph *g, int x, int bias, int axis)
{
    const qat_tensor *tx = qat_tensor_get(g, x);
    QAT_ASSERT(axis >= 0 && axis < tx->ndim);
    QAT_ASSERT_MSG(qat_tensor_get(g, bias)->numel == tx->shape[axis], "bias length must match the axis");
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= tx->shape[i];
    for (int i = axis + 1; i < tx->ndim; i++) inner *= tx->shape[i];
    int in[2] = { x, bias };
    int out = qat_act_like(g, x, NULL);
    qat_node *n = qat_node_get(g, qat_node_add(g, QAT_OP_BIAS_ADD, in, 2, out));
    n->iarg[0] = (int32_t)outer;
    n->iarg[1] = (int32_t)tx->shape[axis];
    n->iarg[2] = (int32_t)inner;
    return out;
}

/* y (outer, n, inner) = x (outer, inner) * scale; `like` gives y's shape.
 * A node's farg[1], when not 0, is a divisor used instead of the scale. */
int qat_broadcast(qat_graph *g, int x, int like, int64_t outer, int64_t n, int64_t inner, float scale)
{
    int out = qat_act_like(g, like, NULL);
    qat_node *node = qat_node_get(g, qat_node_add(g, QAT_OP_BROADCAST, &x, 1, out));
    node->iarg[0] = (int32_t)outer;
    node->iarg[1] = (int32_t)n;
    node->iarg[2] = (int32_t)inner;
    node->farg[0] = scale;
    return out;
}

/* Grid-stride over vec4s. On llvmpipe a few hundred large workgroups (each
 * group has a fixed cost, and each runs on one thread) read through the
 * texel views; on GPUs one invocation per vec4 from storage buffers. */
static void encode_eltwise(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    static const uint32_t modes[QAT_OP_COUNT] = {
        [QAT_OP_ADD] = MODE_ADD, [QAT_OP_MUL] = MODE_MUL, [QAT_OP_RELU] = MODE_RELU,
        [QAT_OP_RELU_BACK] = MODE_RELU_BACK, [QAT_OP_GELU] = MODE_GELU, [QAT_OP_GELU_BACK] = MODE_GELU_BACK,
        [QAT_OP_BIAS_ADD] = MODE_BIAS_ADD, [QAT_OP_BROADCAST] = MODE_BROADCAST,
    };
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    uint64_t count = (uint64_t)qat_tensor_cget(g, n->out)->numel;
    uint32_t local = cpu ? 256 : 64;
    qat_dispatch_1d(g, d, QAT_KERNEL_ELTWISE, modes[n->op], (count + 3) / 4, local);
    if (cpu && d->groups[0] > 256) d->groups[0] = 256;
    qat_bind(d, n, 2);
    bool channels = n->op == QAT_OP_BIAS_ADD || n->op == QAT_OP_BROADCAST;
    d->spec.values[1] = cpu;                                  /* TEXEL */
    d->spec.values[2] = count >= (1u << 22);                  /* EXACT_DIV */
    d->spec.values[3] = channels && n->iarg[2] % 4 == 0;      /* VEC_INNER */
    d->texel[0] = cpu;
    d->texel[1] = cpu && n->nin > 1;
    d->push[0] = (uint32_t)count;
    if (channels) {
        d->push[1] = (uint32_t)n->iarg[1];
        d->push[2] = (uint32_t)n->iarg[2];
    }
    if (n->op == QAT_OP_BIAS_ADD && n->iarg[2] % 4 == 0) {
        /* A row of workgroups per channel (see the shader). */
        uint64_t per_channel = count / 4 / (uint64_t)n->iarg[1];
        uint32_t gx = qat_groups_for(g, per_channel, local);
        uint32_t cap = cpu ? (256 + (uint32_t)n->iarg[1] - 1) / (uint32_t)n->iarg[1] : gx;
        d->groups[0] = gx < cap ? gx : cap;
        d->groups[1] = (uint32_t)n->iarg[1];
        QAT_ASSERT(d->groups[1] <= 65535);
    }
    d->push[3] = qat_float_bits(n->op == QAT_OP_BROADCAST ? n->farg[0] : 1.0f);
    d->push[4] = qat_float_bits(n->op == QAT_OP_BROADCAST ? n->farg[1] : 0.0f);
}

int qat_scale(qat_graph *g, int x, float s)
{
    return qat_broadcast(g, x, x, 1, 1, qat_tensor_get(g, x)->numel, s);
}

/* Only the plain scaling (n == 1) is differentiable: broadcasts over n > 1
 * appear in backward graphs alone. */
static void backward_broadcast(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    QAT_ASSERT_MSG(n.iarg[1] == 1 && n.farg[1] == 0.0f, "broadcast over n > 1 has no backward rule");
    dx[0] = qat_broadcast(g, dy, dy, n.iarg[0], 1, n.iarg[2], n.farg[0]);
}

static void backward_add(qat_graph *g, int node, int dy, int *dx)
{
    (void)g, (void)node;
    dx[0] = dy;
    dx[1] = dy;
}

static void backward_mul(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    if (qat_tensor_get(g, n.in[0])->requires_grad) dx[0] = qat_mul(g, dy, n.in[1]);
    if (qat_tensor_get(g, n.in[1])->requires_grad) dx[1] = qat_mul(g, dy, n.in[0]);
}

/* Backward kernels read the forward tensors they need: relu its output (y > 0
 * is the same mask as x > 0, and the output is what a fused matmul epilogue
 * leaves behind), gelu its input. */
int qat_relu_back(qat_graph *g, int dy, int y)
{
    int in[2] = { dy, y };
    return qat_unary_like(g, QAT_OP_RELU_BACK, in, 2, dy);
}

static void backward_relu(qat_graph *g, int node, int dy, int *dx)
{
    dx[0] = qat_relu_back(g, dy, qat_node_get(g, node)->out);
}

static void backward_gelu(qat_graph *g, int node, int dy, int *dx)
{
    int in[2] = { dy, qat_node_get(g, node)->in[0] };
    dx[0] = qat_unary_like(g, QAT_OP_GELU_BACK, in, 2, dy);
}

static void backward_bias_add(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    dx[0] = dy;
    if (qat_tensor_get(g, n.in[1])->requires_grad) dx[1] = qat_sum_keep(g, dy, n.iarg[0], n.iarg[1], n.iarg[2]);
}

const qat_op_def qat_op_add_def = { "add", encode_eltwise, backward_add };
const qat_op_def qat_op_mul_def = { "mul", encode_eltwise, backward_mul };
const qat_op_def qat_op_relu_def = { "relu", encode_eltwise, backward_relu };
const qat_op_def qat_op_relu_back_def = { "relu_back", encode_eltwise, NULL };
const qat_op_def qat_op_gelu_def = { "gelu", encode_eltwise, backward_gelu };
const qat_op_def qat_op_gelu_back_def = { "gelu_back", encode_eltwise, NULL };
const qat_op_def qat_op_bias_add_def = { "bias_add", encode_eltwise, backward_bias_add };
const qat_op_def qat_op_broadcast_def = { "broadcast", encode_eltwise, backward_broadcast };
