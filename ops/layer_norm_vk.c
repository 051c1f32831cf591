/* Graph side of layer normalization: builder, backward rule (dx, d gamma as
 * chunk partials then their sum, d beta as a column sum) and the encoding
 * onto shaders/layer_norm.comp. CPU reference: ops/layer_norm.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

enum { MODE_FORWARD, MODE_BACK_DX, MODE_BACK_GAMMA };

/* Rows per d gamma partial: enough chunks to share out among CPU threads at
 * the model's sizes (2048 rows: 32), few enough that their sum is cheap. */
enum { GAMMA_CHUNK_ROWS = 64 };

/* iarg: 0 rows, 1 C; farg 0: eps. The backward nodes carry the same. */
int qat_layer_norm(qat_graph *g, int x, int gamma, int beta, float eps)
{
    const qat_tensor *tx = qat_tensor_get(g, x);
    QAT_ASSERT_MSG(tx->dtype == QAT_F32 && tx->ndim >= 1, "layer_norm takes a float tensor (..., C)");
    int64_t c = tx->shape[tx->ndim - 1];
    const qat_tensor *tg = qat_tensor_get(g, gamma), *tb = qat_tensor_get(g, beta);
    QAT_ASSERT_MSG(tg->ndim == 1 && tg->shape[0] == c && tb->ndim == 1 && tb->shape[0] == c,
                   "layer_norm gamma and beta must be (C) for x (..., C)");
    QAT_ASSERT_MSG(eps > 0.0f, "layer_norm eps must be positive");
    QAT_ASSERT_MSG(tx->numel <= (int64_t)UINT32_MAX - (1 << 24), "layer_norm indexes elements with 32 bits");
    int in[3] = { x, gamma, beta };
    int out = qat_act_like(g, x, NULL);
    qat_node *n = qat_node_get(g, qat_node_add(g, QAT_OP_LAYER_NORM, in, 3, out));
    n->iarg[0] = (int32_t)(tx->numel / c);
    n->iarg[1] = (int32_t)c;
    n->farg[0] = eps;
    return out;
}

static int back_node(qat_graph *g, const qat_node *fwd, qat_op op, const int *in, int nin, int ndim,
                     const int64_t *shape)
{
    int out = qat_act_new(g, NULL, QAT_F32, ndim, shape);
    qat_node *n = qat_node_get(g, qat_node_add(g, op, in, nin, out));
    memcpy(n->iarg, fwd->iarg, sizeof n->iarg);
    memcpy(n->farg, fwd->farg, sizeof n->farg);
    return out;
}

static void backward_layer_norm(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    int64_t rows = n.iarg[0], c = n.iarg[1];
    if (qat_tensor_get(g, n.in[0])->requires_grad) {
        const qat_tensor *tx = qat_tensor_get(g, n.in[0]);
        int64_t shape[QAT_MAX_DIMS];
        memcpy(shape, tx->shape, sizeof shape);
        int in[3] = { n.in[0], n.in[1], dy };
        dx[0] = back_node(g, &n, QAT_OP_LAYER_NORM_BACK, in, 3, tx->ndim, shape);
    }
    if (qat_tensor_get(g, n.in[1])->requires_grad) {
        int64_t chunks = (rows + GAMMA_CHUNK_ROWS - 1) / GAMMA_CHUNK_ROWS;
        int in[2] = { n.in[0], dy };
        if (chunks == 1) {
            dx[1] = back_node(g, &n, QAT_OP_LAYER_NORM_BACK_GAMMA, in, 2, 1, &c);
        } else {
            int64_t shape[2] = { chunks, c };
            dx[1] = qat_sum(g, back_node(g, &n, QAT_OP_LAYER_NORM_BACK_GAMMA, in, 2, 2, shape), 0);
        }
    }
    if (qat_tensor_get(g, n.in[2])->requires_grad) dx[2] = qat_sum_keep(g, dy, rows, c, 1);
}

static void encode_layer_norm(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    uint32_t rows = (uint32_t)n->iarg[0], c = (uint32_t)n->iarg[1];
    bool vec = c % 4 == 0;
    if (n->op == QAT_OP_LAYER_NORM_BACK_GAMMA) {
        /* A workgroup per chunk of rows (see the shader). */
        uint32_t chunks = (rows + GAMMA_CHUNK_ROWS - 1) / GAMMA_CHUNK_ROWS;
        d->kernel = QAT_KERNEL_LAYER_NORM;
        d->spec.local[0] = 64;
        d->spec.local[1] = d->spec.local[2] = 1;
        d->spec.values[0] = MODE_BACK_GAMMA;
        uint32_t max_x = 65535;
        d->groups[0] = chunks < max_x ? chunks : max_x;
        d->groups[1] = (chunks + max_x - 1) / max_x;
        d->groups[2] = 1;
        d->binding[0] = n->in[0];
        d->binding[2] = n->in[1];
        d->binding[3] = n->out;
        d->writes[3] = true;
        d->texel[0] = d->texel[2] = cpu;
    } else {
        /* An invocation per row, grid-stride; a few hundred groups at most
         * on llvmpipe (each group has a fixed cost). */
        qat_dispatch_1d(g, d, QAT_KERNEL_LAYER_NORM, n->op == QAT_OP_LAYER_NORM ? MODE_FORWARD : MODE_BACK_DX, rows,
                        64);
        if (cpu && d->groups[0] > 256) d->groups[0] = 256;
        qat_bind(d, n, 3);
        d->texel[0] = d->texel[1] = d->texel[2] = cpu;
    }
    d->spec.values[1] = cpu;              /* TEXEL */
    d->spec.values[2] = vec;              /* VEC */
    d->spec.values[3] = GAMMA_CHUNK_ROWS; /* ROWS */
    d->push[0] = rows;
    d->push[1] = c;
    d->push[2] = vec ? c / 4 : c;
    d->push[3] = qat_float_bits(n->farg[0]);
}

const qat_op_def qat_op_layer_norm_def = { "layer_norm", encode_layer_norm, backward_layer_norm };
const qat_op_def qat_op_layer_norm_back_def = { "layer_norm_back", encode_layer_norm, NULL };
const qat_op_def qat_op_layer_norm_back_gamma_def = { "layer_norm_back_gamma", encode_layer_norm, NULL };
