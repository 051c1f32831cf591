/* Graph side of matmul: shape rule, backward (as matmuls with transposes),
 * encoding onto shaders/matmul.comp. CPU reference: ops/matmul.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

#include <unistd.h>

/* iarg: 0 trans_a, 1 trans_b, 2 epilogue, 3 batch, 4 m, 5 n, 6 k,
 *       7 bit 0: A batched, bit 1: B batched */

int qat_matmul_ex(qat_graph *g, int a, int b, bool trans_a, bool trans_b, int bias, qat_epilogue epilogue)
{
    const qat_tensor *ta = qat_tensor_get(g, a), *tb = qat_tensor_get(g, b);
    QAT_ASSERT_MSG(ta->ndim >= 2 && ta->ndim <= 3 && tb->ndim >= 2 && tb->ndim <= 3, "matmul takes 2-d or 3-d operands");
    int64_t batch_a = ta->ndim == 3 ? ta->shape[0] : 1, batch_b = tb->ndim == 3 ? tb->shape[0] : 1;
    const int64_t *sa = ta->shape + (ta->ndim - 2), *sb = tb->shape + (tb->ndim - 2);
    int64_t m = trans_a ? sa[1] : sa[0], k = trans_a ? sa[0] : sa[1];
    int64_t kb = trans_b ? sb[1] : sb[0], n = trans_b ? sb[0] : sb[1];
    QAT_ASSERT_MSG(k == kb, "matmul inner dimensions differ");
    QAT_ASSERT_MSG(ta->ndim == 2 || tb->ndim == 2 || batch_a == batch_b, "matmul batch sizes differ");
    int64_t batch = batch_a > batch_b ? batch_a : batch_b;
    int64_t out_shape[3];
    int out_ndim;
    bool a_batched = ta->ndim == 3, b_batched = tb->ndim == 3;
    if (a_batched && !b_batched && !trans_a) {
        /* (batch, m, k) @ (k, n): the batch folds into the rows, which makes
         * the weight gradient one plain matmul instead of a sum over the batch. */
        m *= batch;
        batch = 1;
        a_batched = false;
    }
    if (ta->ndim == 3 || tb->ndim == 3) {
        out_shape[0] = ta->ndim == 3 ? ta->shape[0] : tb->shape[0];
        out_shape[1] = ta->ndim == 3 && batch == 1 ? m / out_shape[0] : m;
        out_shape[2] = n;
        out_ndim = 3;
    } else {
        out_shape[0] = m, out_shape[1] = n;
        out_ndim = 2;
    }
    int in[3] = { a, b, bias };
    int nin = 2;
    if (epilogue != QAT_EPILOGUE_NONE) {
        QAT_ASSERT_MSG(bias >= 0 && qat_tensor_get(g, bias)->numel == n, "matmul epilogue bias must have n elements");
        nin = 3;
    }
    int out = qat_act_new(g, NULL, QAT_F32, out_ndim, out_shape);
    qat_node *node = qat_node_get(g, qat_node_add(g, QAT_OP_MATMUL, in, nin, out));
    node->iarg[0] = trans_a;
    node->iarg[1] = trans_b;
    node->iarg[2] = (int32_t)epilogue;
    node->iarg[3] = (int32_t)batch;
    node->iarg[4] = (int32_t)m;
    node->iarg[5] = (int32_t)n;
    node->iarg[6] = (int32_t)k;
    node->iarg[7] = (a_batched ? 1 : 0) | (b_batched ? 2 : 0);
    return out;
}

int qat_matmul(qat_graph *g, int a, int b, bool trans_a, bool trans_b)
{
    return qat_matmul_ex(g, a, b, trans_a, trans_b, -1, QAT_EPILOGUE_NONE);
}

int qat_linear(qat_graph *g, int x, int w, int bias)
{
    return qat_matmul_ex(g, x, w, false, true, bias, bias >= 0 ? QAT_EPILOGUE_BIAS : QAT_EPILOGUE_NONE);
}

/* 2-d view of a tensor whose leading dimensions fold into rows. */
static int as_rows(qat_graph *g, int t, int64_t rows)
{
    const qat_tensor *tt = qat_tensor_get(g, t);
    if (tt->ndim == 2 && tt->shape[0] == rows) return t;
    int64_t shape[2] = { rows, tt->numel / rows };
    return qat_reshape(g, t, 2, shape);
}

static void backward_matmul(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    bool ta = n.iarg[0], tb = n.iarg[1];
    int a = n.in[0], b = n.in[1];
    int64_t batch = n.iarg[3], m = n.iarg[4];
    bool a_batched = n.iarg[7] & 1, b_batched = n.iarg[7] & 2;
    int dz = dy;
    if (n.iarg[2] == QAT_EPILOGUE_BIAS_RELU) dz = qat_relu_back(g, dy, n.out);
    if (batch == 1) {
        /* Folded or plain 2-d: work on 2-d views. */
        dz = as_rows(g, dz, m);
        if (!ta) a = as_rows(g, a, m);
    } else {
        QAT_ASSERT_MSG(a_batched && b_batched, "matmul backward with a broadcast operand over a batch is not supported");
    }
    if (qat_tensor_get(g, n.in[0])->requires_grad) {
        int da;
        if (!ta) da = tb ? qat_matmul(g, dz, b, false, false) : qat_matmul(g, dz, b, false, true);
        else da = tb ? qat_matmul(g, b, dz, true, true) : qat_matmul(g, b, dz, false, true);
        const qat_tensor *tin = qat_tensor_get(g, n.in[0]);
        if (qat_tensor_get(g, da)->ndim != tin->ndim) {
            int64_t shape[QAT_MAX_DIMS];
            memcpy(shape, tin->shape, sizeof shape);
            da = qat_reshape(g, da, tin->ndim, shape);
        }
        dx[0] = da;
    }
    if (qat_tensor_get(g, n.in[1])->requires_grad) {
        if (!tb) dx[1] = ta ? qat_matmul(g, a, dz, false, false) : qat_matmul(g, a, dz, true, false);
        else dx[1] = ta ? qat_matmul(g, dz, a, true, true) : qat_matmul(g, dz, a, true, false);
    }
    if (n.nin == 3 && qat_tensor_get(g, n.in[2])->requires_grad)
        dx[2] = qat_sum_keep(g, dz, batch * m, n.iarg[5], 1);
}

static uint32_t ceil_div(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

/* CPU implementations (lavapipe): shaders/matmul.comp, CPU_PATH 1. A lane
 * owns TM x TN outputs and makes TM + TN texel fetches per 4 TM TN
 * multiply-adds; a fetch costs about as much as 25 of them, so blocks are
 * large (32 x 8: the accumulators spill to the stack, which is cheaper than
 * fetching more; 16 x 16 measures about the same, larger blocks are slower).
 * Lanes go along n, 8 to a subgroup, one subgroup to a workgroup so
 * llvmpipe's threads can share the work out finely. Returns whether the
 * operands are swapped (C^T = op(B)^T op(A)^T is computed instead). */
static bool encode_cpu(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    uint32_t m = (uint32_t)n->iarg[4], nn = (uint32_t)n->iarg[5], k = (uint32_t)n->iarg[6];
    bool ta = n->iarg[0], tb = n->iarg[1];
    /* A short n (a 10-class head) would leave most lanes idle: put it on the rows. */
    bool swap = nn < 32 && m > nn;
    uint32_t sm = swap ? nn : m, sn = swap ? m : nn;
    bool sta = swap ? !tb : ta, stb = swap ? !ta : tb;
    uint32_t tn = sn <= 32 ? 4 : 8;
    /* Rows: at most 32, spread evenly over the row blocks. With few k the
     * stores dominate and a large block only costs JIT time (llvmpipe
     * compiles a 32 x 8 block in about 0.4 s, 8 x 8 in 0.1 s). */
    uint32_t max_tm = k < 64 ? 8 : 32;
    uint32_t tm = ceil_div(sm, ceil_div(sm, max_tm));
    bool a_along_m = sta && sm % 4 == 0; /* vec4 runs of 4 rows */
    if (a_along_m) tm = (tm + 3) / 4 * 4;
    /* Enough blocks for every CPU thread (lavapipe runs one per CPU). */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t want = cpus > 1 ? (uint32_t)(cpus < 64 ? cpus : 64) : 1;
    uint32_t batch = (uint32_t)n->iarg[3];
    while (tm > 8 && ceil_div(sm, tm) * ceil_div(sn, 8 * tn) * batch < want) {
        tm = ceil_div(tm, 2);
        if (a_along_m) tm = (tm + 3) / 4 * 4;
    }
    bool vec_a = sta ? (sm % 4 == 0 && tm % 4 == 0) : k % 4 == 0;
    bool vec_b = stb ? k % 4 == 0 : (sn % 4 == 0 && tn % 4 == 0);
    bool vec_c = !swap && sn % 4 == 0 && tn % 4 == 0;
    d->spec.local[0] = 8;
    d->spec.local[1] = 1;
    d->spec.local[2] = 1;
    d->spec.values[0] = sta;
    d->spec.values[1] = stb;
    d->spec.values[3] = tm;
    d->spec.values[4] = tn;
    d->spec.values[5] = 1;
    d->spec.values[6] = (vec_a ? 1u : 0u) | (vec_b ? 2u : 0u) | (swap ? 4u : 0u) | (vec_c ? 8u : 0u) |
                       (k % 4 != 0 ? 16u : 0u);
    d->groups[0] = ceil_div(ceil_div(sn, tn), 8);
    d->groups[1] = ceil_div(sm, tm);
    d->texel[0] = true;
    d->texel[1] = true;
    d->texel[3] = n->iarg[2] != 0; /* the bias */
    /* Last texel of each view (the views round the tensors up to whole texels). */
    uint64_t numel_a = (uint64_t)qat_tensor_cget(g, n->in[swap ? 1 : 0])->numel;
    uint64_t numel_b = (uint64_t)qat_tensor_cget(g, n->in[swap ? 0 : 1])->numel;
    d->push[6] = (uint32_t)((numel_a + 3) / 4 - 1);
    d->push[7] = (uint32_t)((numel_b + 3) / 4 - 1);
    return swap;
}

static void encode_matmul(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    uint32_t m = (uint32_t)n->iarg[4], nn = (uint32_t)n->iarg[5], k = (uint32_t)n->iarg[6];
    d->kernel = QAT_KERNEL_MATMUL;
    d->spec.values[0] = (uint32_t)n->iarg[0];
    d->spec.values[1] = (uint32_t)n->iarg[1];
    d->spec.values[2] = (uint32_t)n->iarg[2];
    bool swap = false;
    if (qat_ctx_is_cpu(qat_graph_ctx(g))) {
        swap = encode_cpu(g, n, d);
    } else {
        /* Register tile per invocation and workgroup shape. Small outputs (a
         * 10-class head) use narrow tiles so the work still spreads over groups. */
        uint32_t tm = 4, tn = 4, wx = 16, wy = 16;
        if (nn <= 32) tn = 1, wx = nn <= 16 ? 16 : 32, wy = 8;
        d->spec.local[0] = wx;
        d->spec.local[1] = wy;
        d->spec.local[2] = 1;
        d->spec.values[3] = tm;
        d->spec.values[4] = tn;
        d->groups[0] = ceil_div(nn, wx * tn);
        d->groups[1] = ceil_div(m, wy * tm);
    }
    d->groups[2] = (uint32_t)n->iarg[3];
    const uint32_t *max_groups = qat_graph_ctx(g)->props.limits.maxComputeWorkGroupCount;
    QAT_ASSERT_MSG(d->groups[0] <= max_groups[0] && d->groups[1] <= max_groups[1] && d->groups[2] <= max_groups[2],
                   "matmul too large for one dispatch");
    qat_bind(d, n, -1);
    if (swap) d->binding[0] = n->in[1], d->binding[1] = n->in[0];
    d->binding[2] = n->out;
    d->writes[2] = true;
    if (n->nin == 3) d->binding[3] = n->in[2];
    else d->binding[3] = -1;
    bool a_batched = n->iarg[7] & 1, b_batched = n->iarg[7] & 2;
    uint32_t stride_a = a_batched ? m * k : 0, stride_b = b_batched ? k * nn : 0;
    d->push[0] = swap ? nn : m;
    d->push[1] = swap ? m : nn;
    d->push[2] = k;
    d->push[3] = swap ? stride_b : stride_a;
    d->push[4] = swap ? stride_a : stride_b;
    d->push[5] = m * nn;
}

const qat_op_def qat_op_matmul_def = { "matmul", encode_matmul, backward_matmul };
