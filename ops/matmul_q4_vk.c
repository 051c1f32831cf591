/* Graph side of the 4-bit linear layer: the builder (shape rule), the
 * backward (dx through the frozen weight, the bias gradient) and the encoding
 * of both onto shaders/matmul_q4.comp. CPU reference: ops/matmul_q4.c. */
#include <unistd.h>

#include "ops/op_util.h"
#include "ops/ops_vk.h"

enum { MODE_FORWARD, MODE_BACK_INPUT };

/* iarg: 0 type, 1 double_quant, 2 out, 3 in, 4 rows, 5 has_bias.
 * Inputs: A (x, or dy for the input gradient), packed, absmax, table, then
 * the scales with double quantization, then the bias (forward only). */

static void check_weight(const qat_graph *g, const qat_q4_weight_tensors *w)
{
    QAT_ASSERT_MSG(w->type < QAT_Q4_TYPE_COUNT && w->out > 0 && w->in > 0, "bad 4-bit weight");
    int64_t n = w->out * w->in, nblocks = (n + QAT_Q4_BLOCK - 1) / QAT_Q4_BLOCK;
    const qat_tensor *p = qat_tensor_cget(g, w->packed), *a = qat_tensor_cget(g, w->absmax);
    const qat_tensor *t = qat_tensor_cget(g, w->table);
    QAT_ASSERT_MSG(p->dtype == QAT_U8 && p->numel == (n + 1) / 2, "4-bit weight: packed must be U8 (ceil(out * in / 2))");
    QAT_ASSERT_MSG(a->dtype == (w->double_quant ? QAT_U8 : QAT_F32) && a->numel == nblocks,
                   "4-bit weight: absmax must be one U8 code (double quantization) or F32 per 64 weights");
    QAT_ASSERT_MSG(t->dtype == QAT_F32 && t->numel == QAT_Q4_TABLE_LEN, "4-bit weight: table must be QAT_Q4_TABLE_LEN F32");
    QAT_ASSERT_MSG(!p->requires_grad && !a->requires_grad && !t->requires_grad, "4-bit weights are frozen");
    if (w->double_quant) {
        const qat_tensor *s = qat_tensor_cget(g, w->scales);
        QAT_ASSERT_MSG(s->dtype == QAT_F32 && s->numel == (nblocks + QAT_Q4_DQ_BLOCK - 1) / QAT_Q4_DQ_BLOCK &&
                           !s->requires_grad,
                       "4-bit weight: scales must be one frozen F32 per 256 blocks");
    }
    /* The kernel indexes weights, and activations up to rows * max(in, out), with 32 bits. */
    QAT_ASSERT_MSG(n < (int64_t)1 << 31, "4-bit weight too large for 32-bit indices");
}

/* The weight's tensors as node inputs; returns the count. */
static int weight_inputs(const qat_q4_weight_tensors *w, int *in)
{
    in[0] = w->packed, in[1] = w->absmax, in[2] = w->table;
    if (w->double_quant) in[3] = w->scales;
    return w->double_quant ? 4 : 3;
}

static void store_args(qat_node *n, const qat_q4_weight_tensors *w, int64_t rows, bool has_bias)
{
    n->iarg[0] = (int32_t)w->type;
    n->iarg[1] = w->double_quant;
    n->iarg[2] = (int32_t)w->out;
    n->iarg[3] = (int32_t)w->in;
    n->iarg[4] = (int32_t)rows;
    n->iarg[5] = has_bias;
}

int qat_matmul_q4(qat_graph *g, int x, const qat_q4_weight_tensors *w, int bias)
{
    check_weight(g, w);
    const qat_tensor *tx = qat_tensor_get(g, x);
    QAT_ASSERT_MSG(tx->dtype == QAT_F32 && (tx->ndim == 2 || tx->ndim == 3) && tx->shape[tx->ndim - 1] == w->in,
                   "matmul_q4: x must be F32 (rows, in) or (B, T, in)");
    int64_t rows = tx->numel / w->in;
    QAT_ASSERT_MSG(rows * (w->in > w->out ? w->in : w->out) < (int64_t)1 << 31, "matmul_q4: too many rows");
    if (bias >= 0) {
        const qat_tensor *tb = qat_tensor_get(g, bias);
        QAT_ASSERT_MSG(tb->dtype == QAT_F32 && tb->numel == w->out, "matmul_q4: bias must be F32 (out)");
    }
    int64_t shape[QAT_MAX_DIMS];
    memcpy(shape, tx->shape, sizeof shape);
    shape[tx->ndim - 1] = w->out;
    int out = qat_act_new(g, NULL, QAT_F32, tx->ndim, shape);
    int in[QAT_NODE_MAX_IN] = { x };
    int nin = 1 + weight_inputs(w, in + 1);
    if (bias >= 0) in[nin++] = bias;
    store_args(qat_node_get(g, qat_node_add(g, QAT_OP_MATMUL_Q4, in, nin, out)), w, rows, bias >= 0);
    return out;
}

static qat_q4_weight_tensors weight_of(const qat_node *n)
{
    bool dq = n->iarg[1];
    return (qat_q4_weight_tensors){
        .type = (qat_q4_type)n->iarg[0],
        .out = n->iarg[2],
        .in = n->iarg[3],
        .double_quant = dq,
        .packed = n->in[1],
        .absmax = n->in[2],
        .table = n->in[3],
        .scales = dq ? n->in[4] : -1,
    };
}

int qat_matmul_q4_back_input(qat_graph *g, int dy, const qat_q4_weight_tensors *w, int like)
{
    check_weight(g, w);
    const qat_tensor *tdy = qat_tensor_get(g, dy), *tlike = qat_tensor_get(g, like);
    int64_t rows = tdy->numel / w->out;
    QAT_ASSERT_MSG(tdy->dtype == QAT_F32 && tdy->shape[tdy->ndim - 1] == w->out && tlike->numel == rows * w->in,
                   "matmul_q4 input gradient: dy must be (rows, out) and x (rows, in)");
    int in[QAT_NODE_MAX_IN] = { dy };
    int nin = 1 + weight_inputs(w, in + 1);
    int grad = qat_act_like(g, like, NULL);
    store_args(qat_node_get(g, qat_node_add(g, QAT_OP_MATMUL_Q4_BACK_INPUT, in, nin, grad)), w, rows, false);
    return grad;
}

static void backward_matmul_q4(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    qat_q4_weight_tensors w = weight_of(&n);
    int64_t rows = n.iarg[4];
    if (qat_tensor_get(g, n.in[0])->requires_grad) dx[0] = qat_matmul_q4_back_input(g, dy, &w, n.in[0]);
    /* The weight's tensors are frozen: no gradient (dx stays -1 for them). */
    if (n.iarg[5]) {
        int b = n.nin - 1;
        if (qat_tensor_get(g, n.in[b])->requires_grad) dx[b] = qat_sum_keep(g, dy, rows, w.out, 1);
    }
}

static uint32_t ceil_div(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

static void encode_matmul_q4(const qat_graph *g, const qat_node *node, qat_dispatch *d)
{
    qat_q4_weight_tensors w = weight_of(node);
    bool input_grad = node->op == QAT_OP_MATMUL_Q4_BACK_INPUT;
    uint32_t rows = (uint32_t)node->iarg[4], out = (uint32_t)w.out, in = (uint32_t)w.in;
    uint32_t m = rows, n = input_grad ? in : out, k = input_grad ? out : in;
    bool fast = in % 8 == 0 && (!input_grad || out % 4 == 0);
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    uint32_t tm = 4, tn = fast && input_grad ? 8 : 4;
    if (cpu && fast) {
        /* See the shader: a decoded weight serves the TM rows of a lane, so
         * TM is large; rows spread evenly over the row blocks, halved while
         * there are fewer blocks than CPU threads (lavapipe runs one per CPU).
         * On GPT's layers (2048 rows; 128 -> 128, 128 -> 512, 512 -> 128),
         * in CPU time with LP_NUM_THREADS=1 (best of 36 runs on a busy
         * machine), 64 x 8 measured 1.3-1.5x the FP32 matmul, 32 x 8
         * 1.3-1.6x, 32 x 16 (forward) 1.4-1.65x. */
        tn = 8;
        tm = ceil_div(m, ceil_div(m, 64));
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        uint32_t want = cpus > 1 ? (uint32_t)(cpus < 64 ? cpus : 64) : 1;
        while (tm > 8 && ceil_div(m, tm) * ceil_div(n, 8 * tn) < want) tm = ceil_div(tm, 2);
    }
    d->kernel = QAT_KERNEL_MATMUL_Q4;
    d->spec.local[0] = 8;
    d->spec.local[1] = cpu ? 1 : 8;
    d->spec.local[2] = 1;
    d->spec.values[0] = input_grad ? MODE_BACK_INPUT : MODE_FORWARD;
    d->spec.values[1] = w.double_quant;
    d->spec.values[2] = node->iarg[5] && !input_grad;
    d->spec.values[3] = tm;
    d->spec.values[4] = tn;
    d->spec.values[5] = fast;
    d->spec.values[6] = n % 4 == 0 && tn % 4 == 0;
    d->spec.values[7] = in % 64 == 0;
    d->groups[0] = ceil_div(ceil_div(n, tn), d->spec.local[0]);
    d->groups[1] = ceil_div(ceil_div(m, tm), d->spec.local[1]);
    d->groups[2] = 1;
    const uint32_t *max_groups = qat_graph_ctx(g)->props.limits.maxComputeWorkGroupCount;
    QAT_ASSERT_MSG(d->groups[0] <= max_groups[0] && d->groups[1] <= max_groups[1], "matmul_q4 too large for one dispatch");
    for (int b = 0; b < 4; b++) d->binding[b] = node->in[b], d->texel[b] = true;
    d->texel_uint[1] = d->texel_uint[2] = true;
    d->binding[4] = w.double_quant ? w.scales : -1;
    d->texel[4] = true;
    d->binding[5] = d->spec.values[2] ? node->in[node->nin - 1] : -1;
    d->binding[6] = node->out;
    d->writes[6] = true;
    d->push[0] = m;
    d->push[1] = n;
    d->push[2] = k;
    d->push[3] = in;
    d->push[4] = QAT_Q4_TABLE_DYNAMIC;
    d->push[5] = QAT_Q4_TABLE_OFFSET;
}

const qat_op_def qat_op_matmul_q4_def = { "matmul_q4", encode_matmul_q4, backward_matmul_q4 };
const qat_op_def qat_op_matmul_q4_back_input_def = { "matmul_q4_back_input", encode_matmul_q4, NULL };
