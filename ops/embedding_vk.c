/* Graph side of the token embedding: builder, backward rule (a gather over
 * table rows) and their encoding onto shaders/embedding.comp. CPU reference:
 * ops/embedding.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

enum { MODE_FORWARD, MODE_BACKWARD };

/* iarg: 0 n (tokens), 1 vocab, 2 dim; the same on the backward node. */
int qat_embedding(qat_graph *g, int table, int ids)
{
    const qat_tensor *tt = qat_tensor_get(g, table), *ti = qat_tensor_get(g, ids);
    QAT_ASSERT_MSG(tt->ndim == 2 && tt->dtype == QAT_F32, "embedding table must be (vocab, dim) float");
    QAT_ASSERT_MSG(ti->dtype == QAT_I32, "embedding ids must be int32");
    QAT_ASSERT_MSG(ti->ndim < QAT_MAX_DIMS, "embedding output (ids shape..., dim) has too many axes");
    QAT_ASSERT_MSG(ti->numel * tt->shape[1] <= (int64_t)UINT32_MAX - (1 << 24) &&
                       tt->numel <= (int64_t)UINT32_MAX - (1 << 24),
                   "embedding indexes elements with 32 bits");
    int64_t shape[QAT_MAX_DIMS];
    memcpy(shape, ti->shape, (size_t)ti->ndim * sizeof *shape);
    shape[ti->ndim] = tt->shape[1];
    int out = qat_act_new(g, NULL, QAT_F32, ti->ndim + 1, shape);
    int in[2] = { table, ids };
    qat_node *n = qat_node_get(g, qat_node_add(g, QAT_OP_EMBEDDING, in, 2, out));
    n->iarg[0] = (int32_t)ti->numel;
    n->iarg[1] = (int32_t)tt->shape[0];
    n->iarg[2] = (int32_t)tt->shape[1];
    return out;
}

static void backward_embedding(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    int in[2] = { dy, n.in[1] };
    int out = qat_act_like(g, n.in[0], NULL);
    qat_node *b = qat_node_get(g, qat_node_add(g, QAT_OP_EMBEDDING_BACK, in, 2, out));
    memcpy(b->iarg, n.iarg, sizeof b->iarg);
    dx[0] = out;
}

static void encode_embedding(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    uint32_t tokens = (uint32_t)n->iarg[0], vocab = (uint32_t)n->iarg[1], dim = (uint32_t)n->iarg[2];
    bool vec = dim % 4 == 0;
    uint32_t dimv = vec ? dim / 4 : dim;
    bool forward = n->op == QAT_OP_EMBEDDING;
    uint64_t items;
    uint32_t v = 1, chunks = 0;
    if (forward) {
        items = (uint64_t)tokens * dimv;
    } else {
        /* A row's units split into chunks of V <= 8. Every invocation scans
         * all the tokens, so fewer, longer chunks scan less; but a subgroup
         * of 8 lanes then spans several rows and runs the union of their
         * matches (see the shader). Measured on lavapipe for dim 128 (2048
         * tokens, vocab 256): V 4 (a row per subgroup) 3.5 ms, V 8 2.4 ms,
         * V 16 about the same as 8 with twice the registers. */
        v = dimv / 4;
        if (v < 1) v = 1;
        if (v > 8) v = 8;
        chunks = (dimv + v - 1) / v;
        items = (uint64_t)vocab * chunks;
    }
    qat_dispatch_1d(g, d, QAT_KERNEL_EMBEDDING, forward ? MODE_FORWARD : MODE_BACKWARD, items, 64);
    if (cpu && d->groups[0] > 256) d->groups[0] = 256;
    d->spec.values[1] = cpu;                  /* TEXEL */
    d->spec.values[2] = vec;                  /* VEC */
    d->spec.values[3] = items >= (1u << 22);  /* EXACT_DIV */
    d->spec.values[4] = v;                    /* V */
    d->texel[0] = cpu;
    d->texel[1] = true; /* the ids' integer view is declared by the shader, so bound everywhere */
    qat_bind(d, n, 2);
    d->push[0] = tokens;
    d->push[1] = vocab;
    d->push[2] = dimv;
    d->push[3] = (uint32_t)items;
    d->push[4] = chunks;
}

const qat_op_def qat_op_embedding_def = { "embedding", encode_embedding, backward_embedding };
const qat_op_def qat_op_embedding_back_def = { "embedding_back", encode_embedding, NULL };
