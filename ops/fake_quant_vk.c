/* Graph side of fake quantization: the builder, the backward rule (a dx node
 * and, for LSQ and PACT, a d scale node) and their encoding onto
 * shaders/fake_quant.comp. CPU reference and layout helpers:
 * ops/fake_quant.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

enum { MODE_FORWARD, MODE_BACK_DX, MODE_BACK_SCALE };
enum { LAYOUT_TENSOR, LAYOUT_CHANNEL, LAYOUT_GROUP };

/* iarg: 0 qmin, 1 qmax, 2 estimator, 3 inner, 4 channels, 5 row, 6 group
 * (layout fields as uint32 bits: a per-tensor inner may pass 2^31), 7: 1
 * when the inputs hold a per-element qmax after the zero point; farg 0:
 * grad_scale. Every node of the op family carries the same args. */
static void store_params(qat_node *n, const qat_fq_params *p)
{
    n->iarg[0] = p->qmin;
    n->iarg[1] = p->qmax;
    n->iarg[2] = (int32_t)p->estimator;
    n->iarg[3] = (int32_t)(uint32_t)p->layout.inner;
    n->iarg[4] = (int32_t)(uint32_t)p->layout.channels;
    n->iarg[5] = (int32_t)(uint32_t)p->layout.row;
    n->iarg[6] = (int32_t)(uint32_t)p->layout.group;
    n->farg[0] = p->grad_scale;
}

static qat_fq_params load_params(const qat_node *n)
{
    return (qat_fq_params){
        .qmin = n->iarg[0],
        .qmax = n->iarg[1],
        .estimator = (qat_fq_estimator)n->iarg[2],
        .layout = { (uint32_t)n->iarg[3], (uint32_t)n->iarg[4], (uint32_t)n->iarg[5], (uint32_t)n->iarg[6] },
        .grad_scale = n->farg[0],
    };
}

static bool fits_u32(int64_t v) { return v >= 0 && v <= (int64_t)UINT32_MAX; }

int qat_fake_quant(qat_graph *g, int x, int scale, int zero_point, const qat_fq_params *p)
{
    return qat_fake_quant_ranged(g, x, scale, zero_point, -1, p);
}

int qat_fake_quant_ranged(qat_graph *g, int x, int scale, int zero_point, int qmax, const qat_fq_params *p)
{
    const qat_tensor *tx = qat_tensor_get(g, x);
    QAT_ASSERT_MSG(tx->dtype == QAT_F32, "fake quantization takes a float tensor");
    QAT_ASSERT_MSG(p->estimator < QAT_FQ_ESTIMATOR_COUNT, "unknown fake-quant estimator");
    /* The kernel clamps in float: the bounds must be exact there. */
    QAT_ASSERT_MSG(p->qmin < p->qmax && p->qmin >= -(1 << 24) && p->qmax <= (1 << 24),
                   "fake-quant code range must satisfy qmin < qmax, both within +-2^24");
    /* 32-bit indices, with room for a grid stride (< 2^24) past the end. */
    QAT_ASSERT_MSG(tx->numel <= (int64_t)UINT32_MAX - (1 << 24), "fake quantization indexes elements with 32 bits");
    const qat_fq_layout *l = &p->layout;
    QAT_ASSERT_MSG(fits_u32(l->inner) && fits_u32(l->channels) && fits_u32(l->row) && fits_u32(l->group),
                   "fake-quant layout fields must fit in 32 bits");
    int64_t count = qat_fq_scale_count(l, tx->numel);
    const qat_tensor *ts = qat_tensor_get(g, scale);
    QAT_ASSERT_MSG(ts->dtype == QAT_F32 && ts->numel == count, "fake-quant scale must hold qat_fq_scale_count floats");
    int in[4] = { x, scale, zero_point, qmax };
    int nin = 3;
    if (p->estimator == QAT_FQ_PACT) {
        QAT_ASSERT_MSG(zero_point < 0, "PACT has no zero point: pass -1");
        QAT_ASSERT_MSG(p->qmax > 0, "PACT needs qmax > 0 (s = alpha / qmax)");
        QAT_ASSERT_MSG(qmax < 0, "PACT takes one code range");
        nin = 2;
    } else {
        const qat_tensor *tz = qat_tensor_get(g, zero_point);
        QAT_ASSERT_MSG(tz->dtype == QAT_F32 && tz->numel == count, "fake-quant zero point must match the scale");
        if (qmax >= 0) {
            const qat_tensor *tq = qat_tensor_get(g, qmax);
            QAT_ASSERT_MSG(tq->dtype == QAT_F32 && tq->numel == count && !tq->requires_grad,
                           "fake-quant qmax must match the scale and not train");
            nin = 4;
        }
    }
    int out = qat_act_like(g, x, NULL);
    qat_node *node = qat_node_get(g, qat_node_add(g, QAT_OP_FAKE_QUANT, in, nin, out));
    store_params(node, p);
    node->iarg[7] = qmax >= 0;
    return out;
}

/* A backward node: the forward's inputs, then dy; its result is shaped like
 * `like` (x for dx, the scale for d scale). */
static int back_node(qat_graph *g, const qat_node *fwd, qat_op op, int dy, int like)
{
    int in[QAT_NODE_MAX_IN];
    QAT_ASSERT(fwd->nin < QAT_NODE_MAX_IN);
    for (int i = 0; i < fwd->nin; i++) in[i] = fwd->in[i];
    in[fwd->nin] = dy;
    int out = qat_act_like(g, like, NULL);
    qat_node *n = qat_node_get(g, qat_node_add(g, op, in, fwd->nin + 1, out));
    memcpy(n->iarg, fwd->iarg, sizeof n->iarg);
    memcpy(n->farg, fwd->farg, sizeof n->farg);
    return out;
}

static void backward_fake_quant(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    qat_fq_params p = load_params(&n);
    /* Each gradient only when its input wants one: x may be a frozen weight
     * whose scale alone learns, and a scale that is not a trainable
     * parameter must not cost a reduction. The zero point never learns. */
    if (qat_tensor_get(g, n.in[0])->requires_grad)
        dx[0] = p.estimator == QAT_FQ_STE ? dy : back_node(g, &n, QAT_OP_FAKE_QUANT_BACK, dy, n.in[0]);
    bool learned = p.estimator == QAT_FQ_LSQ || p.estimator == QAT_FQ_PACT;
    if (learned && qat_tensor_get(g, n.in[1])->requires_grad)
        dx[1] = back_node(g, &n, QAT_OP_FAKE_QUANT_BACK_SCALE, dy, n.in[1]);
}

static void encode_fake_quant(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    qat_fq_params p = load_params(n);
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    uint64_t count = (uint64_t)qat_in(g, n, 0)->numel;
    uint64_t scales = (uint64_t)qat_in(g, n, 1)->numel;
    bool pact = p.estimator == QAT_FQ_PACT;
    uint32_t mode = n->op == QAT_OP_FAKE_QUANT ? MODE_FORWARD
                    : n->op == QAT_OP_FAKE_QUANT_BACK ? MODE_BACK_DX : MODE_BACK_SCALE;
    uint32_t layout = scales == 1 ? LAYOUT_TENSOR : p.layout.group > 0 ? LAYOUT_GROUP : LAYOUT_CHANNEL;
    uint64_t gpr = p.layout.group > 0 ? (uint64_t)(p.layout.row + p.layout.group - 1) / (uint64_t)p.layout.group : 0;

    if (mode == MODE_BACK_SCALE) {
        /* A workgroup per scale element, sized to its member count (a power
         * of two for the tree); the order then depends only on the shapes.
         * It is not the reference's sequential order: for m members with
         * contributions t_i the result is within (ceil(m / 256) + 8) u
         * sum |t_i| of the exact sum (u = 2^-24; the reference's bound is
         * (m - 1) u sum |t_i|), plus one rounding for grad_scale. */
        uint64_t members = p.layout.group > 0 ? (uint64_t)p.layout.group : count / scales;
        /* lavapipe runs a workgroup's invocations 8 at a time on one thread
         * and pays for every barrier of the tree, so it gets narrow groups
         * that loop longer. */
        uint32_t local = 16, max_local = cpu ? 16 : 256;
        while (local < max_local && local < members) local *= 2;
        d->kernel = QAT_KERNEL_FAKE_QUANT;
        d->spec.local[0] = local;
        d->spec.local[1] = d->spec.local[2] = 1;
        uint32_t max_x = 65535;
        d->groups[0] = scales < max_x ? (uint32_t)scales : max_x;
        d->groups[1] = (uint32_t)((scales + max_x - 1) / max_x);
        d->groups[2] = 1;
    } else {
        /* Like the elementwise kernels: a few hundred wide groups on
         * llvmpipe (each group has a fixed cost), small ones on GPUs. */
        bool vec4 = count % 4 == 0 &&
                    (layout == LAYOUT_TENSOR || (layout == LAYOUT_CHANNEL && p.layout.inner % 4 == 0) ||
                     (layout == LAYOUT_GROUP && p.layout.group % 4 == 0 && p.layout.row % 4 == 0));
        d->spec.values[4] = vec4;
        qat_dispatch_1d(g, d, QAT_KERNEL_FAKE_QUANT, 0, vec4 ? count / 4 : count, cpu ? 256 : 64);
        if (cpu && d->groups[0] > 256) d->groups[0] = 256;
    }
    d->spec.values[0] = mode;
    d->spec.values[1] = (uint32_t)p.estimator;
    d->spec.values[2] = layout;
    d->spec.values[3] = count >= (1u << 22); /* EXACT_DIV: fdiv's estimate is exact below 2^22 */
    const bool ranged = n->iarg[7] != 0;
    d->spec.values[5] = ranged; /* PER_SCALE_QMAX */

    int at = 0;
    d->binding[0] = n->in[at++];
    d->binding[1] = n->in[at++];
    if (!pact) d->binding[2] = n->in[at++];
    if (ranged) d->binding[5] = n->in[at++];
    if (mode != MODE_FORWARD) d->binding[3] = n->in[at++];
    QAT_ASSERT(at == n->nin);
    d->binding[4] = n->out;
    d->writes[4] = true;

    d->push[0] = (uint32_t)count;
    d->push[1] = (uint32_t)p.layout.inner;
    d->push[2] = (uint32_t)p.layout.channels;
    d->push[3] = (uint32_t)p.layout.row;
    d->push[4] = (uint32_t)p.layout.group;
    d->push[5] = (uint32_t)gpr;
    d->push[6] = qat_float_bits((float)p.qmin);
    d->push[7] = qat_float_bits((float)p.qmax);
    d->push[8] = qat_float_bits(p.grad_scale);
    d->push[9] = (uint32_t)scales;
}

const qat_op_def qat_op_fake_quant_def = { "fake_quant", encode_fake_quant, backward_fake_quant };
const qat_op_def qat_op_fake_quant_back_def = { "fake_quant_back", encode_fake_quant, NULL };
const qat_op_def qat_op_fake_quant_back_scale_def = { "fake_quant_back_scale", encode_fake_quant, NULL };
