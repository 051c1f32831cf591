/* Graph side of 2x2 max pooling, encoded onto shaders/maxpool2d.comp. CPU
 * reference: ops/maxpool2d.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

int qat_maxpool2d(qat_graph *g, int x)
{
    const qat_tensor *t = qat_tensor_get(g, x);
    QAT_ASSERT_MSG(t->ndim == 4 && t->shape[2] >= 2 && t->shape[3] >= 2, "maxpool2d takes (N, C, H, W), H, W >= 2");
    int64_t shape[4] = { t->shape[0], t->shape[1], t->shape[2] / 2, t->shape[3] / 2 };
    int out = qat_act_new(g, NULL, QAT_F32, 4, shape);
    qat_node_add(g, QAT_OP_MAXPOOL2D, &x, 1, out);
    return out;
}

static void backward_maxpool2d(qat_graph *g, int node, int dy, int *dx)
{
    int in[2] = { qat_node_get(g, node)->in[0], dy };
    dx[0] = qat_unary_like(g, QAT_OP_MAXPOOL2D_BACK, in, 2, in[0]);
}

static void encode_maxpool2d(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    const qat_tensor *x = qat_in(g, n, 0);
    bool forward = n->op == QAT_OP_MAXPOOL2D;
    uint32_t planes = (uint32_t)(x->shape[0] * x->shape[1]), h = (uint32_t)x->shape[2], w = (uint32_t)x->shape[3];
    uint64_t windows = (uint64_t)planes * (h / 2) * (w / 2);
    /* Forward: vec4s of outputs; backward: windows (then the dropped edges);
     * on llvmpipe with W % 4 == 0, pairs of windows. */
    uint32_t local = cpu ? 256 : 64;
    bool pairs = cpu && w % 4 == 0;
    uint64_t items = pairs ? windows / 2 : forward ? (windows + 3) / 4 : windows;
    qat_dispatch_1d(g, d, QAT_KERNEL_MAXPOOL2D, forward ? 0 : 1, items, local);
    if (cpu && d->groups[0] > 256) d->groups[0] = 256;
    qat_bind(d, n, 2);
    d->spec.values[1] = cpu;                        /* TEXEL */
    d->spec.values[2] = w % 2 == 0;                 /* EVEN_W */
    d->spec.values[3] = windows + 4 >= (1u << 22);  /* EXACT_DIV */
    d->spec.values[4] = pairs;                      /* PAIRS */
    d->texel[0] = cpu;
    d->texel[1] = cpu && !forward;
    d->push[0] = planes;
    d->push[1] = h;
    d->push[2] = w;
    d->push[3] = h / 2;
    d->push[4] = w / 2;
    d->push[5] = (uint32_t)windows;
}

const qat_op_def qat_op_maxpool2d_def = { "maxpool2d", encode_maxpool2d, backward_maxpool2d };
const qat_op_def qat_op_maxpool2d_back_def = { "maxpool2d_back", encode_maxpool2d, NULL };
