#include "qat/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qat_graph {
    qat_ctx *ctx;
    qat_tensor *tensors;
    int ntensors, tensor_cap;
    qat_node *nodes;
    int nnodes, node_cap;
    int scalars;               /* INPUT tensor of QAT_SCALAR_COUNT floats */
    int *params;               /* trainable parameters, creation order */
    int nparams;
    bool compiled;
    qat_buffer buffers[QAT_BUF_COUNT];
    qat_buffer host_io;        /* host-visible slots for inputs and outputs */
    uint64_t trainable_bytes;  /* span of the trainable parameters (and grads) */
    VkDescriptorPool descriptor_pool;
    VkDescriptorSet *sets;     /* per node; VK_NULL_HANDLE for views */
    VkPipeline *pipelines;     /* per node */
    qat_dispatch *dispatches;  /* per node */
    VkBufferView *views;       /* texel views made for dispatches */
    int nviews;
};

struct qat_seq {
    qat_graph *g;
    VkCommandBuffer cmd;
    int dispatches, barriers;
    /* Profiling (QAT_PROFILE=1): a timestamp before and after each dispatch. */
    VkQueryPool queries;
    int *profiled_nodes;       /* node id of each timed dispatch */
    double *profile_ns;        /* accumulated per timed dispatch */
    int profile_runs;
};

int64_t qat_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

size_t qat_dtype_size(qat_dtype dtype)
{
    switch (dtype) {
    case QAT_F32: return 4;
    case QAT_I32: return 4;
    case QAT_U8: return 1;
    }
    return 0;
}

qat_graph *qat_graph_create(qat_ctx *ctx)
{
    qat_graph *g = qat_xcalloc(1, sizeof *g);
    g->ctx = ctx;
    int64_t n = QAT_SCALAR_COUNT;
    g->scalars = qat_input(g, "scalars", QAT_F32, 1, &n);
    return g;
}

void qat_graph_free(qat_graph *g)
{
    if (!g) return;
    qat_ctx *ctx = g->ctx;
    if (g->compiled) {
        vkDeviceWaitIdle(ctx->device);
        for (int i = 0; i < QAT_BUF_COUNT; i++) qat_buffer_destroy(ctx, &g->buffers[i]);
        qat_buffer_destroy(ctx, &g->host_io);
        if (g->descriptor_pool) vkDestroyDescriptorPool(ctx->device, g->descriptor_pool, NULL);
        for (int i = 0; i < g->nviews; i++) vkDestroyBufferView(ctx->device, g->views[i], NULL);
    }
    free(g->views);
    free(g->sets);
    free(g->pipelines);
    free(g->dispatches);
    free(g->tensors);
    free(g->nodes);
    free(g->params);
    free(g);
}

qat_ctx *qat_graph_ctx(const qat_graph *g) { return g->ctx; }
int qat_graph_tensor_count(const qat_graph *g) { return g->ntensors; }
int qat_graph_node_count(const qat_graph *g) { return g->nnodes; }
int qat_graph_scalars(const qat_graph *g) { return g->scalars; }
int qat_graph_param_count(const qat_graph *g) { return g->nparams; }

int qat_graph_param_id(const qat_graph *g, int i)
{
    QAT_ASSERT(i >= 0 && i < g->nparams);
    return g->params[i];
}

qat_tensor *qat_tensor_get(qat_graph *g, int id)
{
    QAT_ASSERT(id >= 0 && id < g->ntensors);
    return &g->tensors[id];
}

const qat_tensor *qat_tensor_cget(const qat_graph *g, int id)
{
    QAT_ASSERT(id >= 0 && id < g->ntensors);
    return &g->tensors[id];
}

qat_node *qat_node_get(qat_graph *g, int id)
{
    QAT_ASSERT(id >= 0 && id < g->nnodes);
    return &g->nodes[id];
}

int qat_graph_find(const qat_graph *g, const char *name)
{
    for (int i = 0; i < g->ntensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return i;
    return -1;
}

void qat_graph_mark_output(qat_graph *g, int t)
{
    QAT_ASSERT(!g->compiled);
    qat_tensor_get(g, t)->output = true;
}

int qat_tensor_new(qat_graph *g, const char *name, qat_dtype dtype, int ndim, const int64_t *shape,
                   qat_storage storage)
{
    QAT_ASSERT_MSG(!g->compiled, "tensors cannot be added to a compiled graph");
    QAT_ASSERT(ndim >= 0 && ndim <= QAT_MAX_DIMS);
    if (g->ntensors == g->tensor_cap) {
        g->tensor_cap = g->tensor_cap ? 2 * g->tensor_cap : 64;
        g->tensors = qat_xrealloc(g->tensors, (size_t)g->tensor_cap * sizeof *g->tensors);
    }
    int id = g->ntensors++;
    qat_tensor *t = &g->tensors[id];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    if (!name || !*name) snprintf(t->name, sizeof t->name, "t%d", id);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        QAT_ASSERT_MSG(shape[i] > 0, "tensor dimensions must be positive");
        t->shape[i] = shape[i];
    }
    t->numel = qat_shape_numel(ndim, shape);
    t->storage = storage;
    t->base = -1;
    t->grad = -1;
    t->grad_of = -1;
    t->producer = -1;
    t->buffer = -1;
    return id;
}

int qat_input(qat_graph *g, const char *name, qat_dtype dtype, int ndim, const int64_t *shape)
{
    return qat_tensor_new(g, name, dtype, ndim, shape, QAT_STORE_INPUT);
}

int qat_param(qat_graph *g, const char *name, int ndim, const int64_t *shape, bool trainable)
{
    int id = qat_tensor_new(g, name, QAT_F32, ndim, shape, QAT_STORE_PARAM);
    g->tensors[id].requires_grad = trainable;
    if (trainable) {
        g->params = qat_xrealloc(g->params, (size_t)(g->nparams + 1) * sizeof *g->params);
        g->params[g->nparams++] = id;
    }
    return id;
}

int qat_const(qat_graph *g, const char *name, int ndim, const int64_t *shape, const float *data)
{
    int id = qat_tensor_new(g, name, QAT_F32, ndim, shape, QAT_STORE_CONST);
    g->tensors[id].init_data = data;
    return id;
}

int qat_act_new(qat_graph *g, const char *name, qat_dtype dtype, int ndim, const int64_t *shape)
{
    return qat_tensor_new(g, name, dtype, ndim, shape, QAT_STORE_ACT);
}

int qat_node_add(qat_graph *g, qat_op op, const int *in, int nin, int out)
{
    QAT_ASSERT_MSG(!g->compiled, "nodes cannot be added to a compiled graph");
    QAT_ASSERT(op < QAT_OP_COUNT && nin <= QAT_NODE_MAX_IN);
    if (g->nnodes == g->node_cap) {
        g->node_cap = g->node_cap ? 2 * g->node_cap : 64;
        g->nodes = qat_xrealloc(g->nodes, (size_t)g->node_cap * sizeof *g->nodes);
    }
    int id = g->nnodes++;
    qat_node *n = &g->nodes[id];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->nin = nin;
    bool requires_grad = false;
    for (int i = 0; i < nin; i++) {
        QAT_ASSERT(in[i] >= 0 && in[i] < g->ntensors);
        n->in[i] = in[i];
        requires_grad |= g->tensors[in[i]].requires_grad;
    }
    n->out = out;
    if (out >= 0) {
        qat_tensor *t = qat_tensor_get(g, out);
        QAT_ASSERT_MSG(t->producer < 0, "a tensor has one producer");
        t->producer = id;
        t->requires_grad = requires_grad;
    }
    return id;
}

/* ---- reverse mode ---------------------------------------------------------- */

typedef struct contributions {
    int *ids;
    int count, cap;
} contributions;

static void contribute(contributions *c, int grad)
{
    if (c->count == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 2;
        c->ids = qat_xrealloc(c->ids, (size_t)c->cap * sizeof *c->ids);
    }
    c->ids[c->count++] = grad;
}

/* A copy as a node, for the rare gradient that cannot simply be re-homed. */
static int copy_tensor(qat_graph *g, int src)
{
    const qat_tensor *t = qat_tensor_get(g, src);
    int64_t shape[QAT_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    int out = qat_act_new(g, NULL, QAT_F32, t->ndim, shape);
    int nid = qat_node_add(g, QAT_OP_BROADCAST, &src, 1, out);
    qat_node *n = qat_node_get(g, nid);
    n->iarg[0] = 1;                 /* outer */
    n->iarg[1] = 1;                 /* n */
    n->iarg[2] = (int32_t)t->numel; /* inner */
    n->farg[0] = 1.0f;
    n->backward = true;
    return out;
}

/* Sums the contributions in the order they arrived (fixed by the graph) and
 * records the result as the tensor's gradient. Parameters get theirs in the
 * flat gradient buffer so one optimizer dispatch covers them all. */
static int finalize_grad(qat_graph *g, int t, contributions *c)
{
    if (c->count == 0) return -1;
    int sum = c->ids[0];
    for (int i = 1; i < c->count; i++) {
        int first_new = g->nnodes;
        sum = qat_add(g, sum, c->ids[i]);
        for (int k = first_new; k < g->nnodes; k++) g->nodes[k].backward = true;
    }
    qat_tensor *target = qat_tensor_get(g, t);
    if (target->storage == QAT_STORE_PARAM) {
        qat_tensor *s = qat_tensor_get(g, sum);
        if (s->storage != QAT_STORE_ACT || s->producer < 0 || s->grad_of >= 0) sum = copy_tensor(g, sum);
        s = qat_tensor_get(g, sum);
        s->storage = QAT_STORE_GRAD;
        char name[64];
        snprintf(name, sizeof name, "%.58s.grad", qat_tensor_get(g, t)->name);
        memcpy(s->name, name, sizeof name);
    }
    qat_tensor_get(g, sum)->grad_of = t;
    qat_tensor_get(g, t)->grad = sum;
    return sum;
}

int qat_graph_backward(qat_graph *g, int loss)
{
    QAT_ASSERT_MSG(qat_tensor_get(g, loss)->numel == 1, "backward needs a scalar loss");
    QAT_ASSERT_MSG(qat_tensor_get(g, loss)->requires_grad, "the loss does not depend on any parameter");
    int first = g->nnodes;
    int ntensors_before = g->ntensors;
    contributions *contrib = qat_xcalloc((size_t)ntensors_before, sizeof *contrib);
    static const float one = 1.0f;
    int64_t shape1 = 1;
    contribute(&contrib[loss], qat_const(g, "dloss", 1, &shape1, &one));
    for (int i = first - 1; i >= 0; i--) {
        qat_node node = g->nodes[i]; /* copy: builders below may grow the array */
        if (node.out < 0 || !g->tensors[node.out].requires_grad) continue;
        int dy = finalize_grad(g, node.out, &contrib[node.out]);
        if (dy < 0) continue;
        const qat_op_def *def = qat_op_defs[node.op];
        QAT_ASSERT_MSG(def->backward, "op has no backward rule");
        int dx[QAT_NODE_MAX_IN];
        for (int k = 0; k < QAT_NODE_MAX_IN; k++) dx[k] = -1;
        int first_new = g->nnodes;
        def->backward(g, i, dy, dx);
        for (int k = first_new; k < g->nnodes; k++) g->nodes[k].backward = true;
        for (int k = 0; k < node.nin; k++)
            if (dx[k] >= 0 && g->tensors[node.in[k]].requires_grad) contribute(&contrib[node.in[k]], dx[k]);
    }
    for (int p = 0; p < g->nparams; p++) {
        int id = g->params[p];
        if (finalize_grad(g, id, &contrib[id]) < 0) {
            /* No path from the loss: its gradient is zero, which the zeroed
             * gradient buffer already holds. */
            qat_tensor *t = qat_tensor_get(g, id);
            char name[64];
            snprintf(name, sizeof name, "%.58s.grad", t->name);
            int gid = qat_tensor_new(g, name, QAT_F32, t->ndim, t->shape, QAT_STORE_GRAD);
            qat_tensor_get(g, gid)->grad_of = id;
            qat_tensor_get(g, id)->grad = gid;
        }
    }
    for (int t = 0; t < ntensors_before; t++) free(contrib[t].ids);
    free(contrib);
    return first;
}

/* ---- compile --------------------------------------------------------------- */

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

uint32_t qat_groups_for(const qat_graph *g, uint64_t n, uint32_t local)
{
    uint64_t groups = (n + local - 1) / local;
    uint64_t cap = g->ctx->props.limits.maxComputeWorkGroupCount[0];
    if (cap > 65535) cap = 65535;
    if (groups > cap) groups = cap;
    return groups ? (uint32_t)groups : 1;
}

static int resolve_view(const qat_graph *g, int id)
{
    while (g->tensors[id].storage == QAT_STORE_VIEW) id = g->tensors[id].base;
    return id;
}

/* Places the activations in the arena by liveness: a tensor occupies its
 * range from the node that produces it to the last node that reads it (or
 * through the end for outputs and for results nobody reads, which the host
 * may still fetch), and later tensors reuse freed ranges, first fit. The
 * node order is the recording order of every sequence (sequences are
 * ranges of it), so the plan holds for each. Reuse only adds write-after-read
 * hazards, which the recorder's barriers already cover. */
typedef struct live_range {
    uint64_t begin, end;
} live_range;

static void plan_activations(qat_graph *g, uint64_t *arena_end)
{
    int nt = g->ntensors, nn = g->nnodes;
    int *first = qat_xmalloc((size_t)nt * sizeof *first), *last = qat_xmalloc((size_t)nt * sizeof *last);
    for (int t = 0; t < nt; t++) first[t] = last[t] = -1;
    for (int i = 0; i < nn; i++) {
        const qat_node *n = &g->nodes[i];
        for (int k = 0; k < n->nin; k++) {
            int b = resolve_view(g, n->in[k]);
            if (last[b] < i) last[b] = i;
        }
        if (n->out >= 0) {
            int b = resolve_view(g, n->out);
            if (first[b] < 0) first[b] = i;
            if (last[b] < i) last[b] = i;
        }
    }
    for (int t = 0; t < nt; t++) {
        int b = resolve_view(g, t);
        if (g->tensors[t].output) last[b] = nn;
    }
    for (int t = 0; t < nt; t++) {
        if (g->tensors[t].storage != QAT_STORE_ACT) continue;
        if (first[t] < 0) first[t] = 0, last[t] = nn; /* never produced: keep it whole */
        if (last[t] == first[t]) last[t] = nn;          /* a result nobody reads */
    }
    live_range *live = qat_xmalloc((size_t)nt * sizeof *live);
    int *owner = qat_xmalloc((size_t)nt * sizeof *owner);
    int nlive = 0;
    uint64_t end = *arena_end;
    for (int i = 0; i <= nn; i++) {
        for (int t = 0; t < nt; t++) {
            qat_tensor *tt = &g->tensors[t];
            if (tt->storage != QAT_STORE_ACT || first[t] != i) continue;
            uint64_t need = align_up(tt->bytes ? tt->bytes : 1, QAT_BUFFER_ALIGN);
            /* Lowest gap between live ranges (sorted by offset) that fits;
             * the persistent tensors below *arena_end come first. */
            uint64_t at = *arena_end;
            int pos = 0;
            for (; pos < nlive; pos++) {
                if (live[pos].begin >= at + need) break;
                if (live[pos].end > at) at = live[pos].end;
            }
            memmove(live + pos + 1, live + pos, (size_t)(nlive - pos) * sizeof *live);
            memmove(owner + pos + 1, owner + pos, (size_t)(nlive - pos) * sizeof *owner);
            live[pos] = (live_range){ at, at + need };
            owner[pos] = t;
            nlive++;
            tt->offset = at;
            if (at + need > end) end = at + need;
        }
        for (int k = 0; k < nlive;) {
            if (last[owner[k]] == i) {
                memmove(live + k, live + k + 1, (size_t)(nlive - k - 1) * sizeof *live);
                memmove(owner + k, owner + k + 1, (size_t)(nlive - k - 1) * sizeof *owner);
                nlive--;
            } else {
                k++;
            }
        }
    }
    *arena_end = end;
    free(first), free(last), free(live), free(owner);
}

static void plan_memory(qat_graph *g, uint64_t sizes[QAT_BUF_COUNT], uint64_t *host_bytes)
{
    memset(sizes, 0, sizeof(uint64_t) * QAT_BUF_COUNT);
    *host_bytes = 0;
    /* Trainable parameters first, in creation order, so they (and their
     * gradients at the same offsets) form one span for the optimizer. */
    for (int p = 0; p < g->nparams; p++) {
        qat_tensor *t = &g->tensors[g->params[p]];
        t->buffer = QAT_BUF_PARAM;
        t->bytes = (uint64_t)t->numel * qat_dtype_size(t->dtype);
        t->offset = sizes[QAT_BUF_PARAM];
        sizes[QAT_BUF_PARAM] = align_up(t->offset + t->bytes, QAT_BUFFER_ALIGN);
    }
    g->trainable_bytes = sizes[QAT_BUF_PARAM];
    sizes[QAT_BUF_GRAD] = g->trainable_bytes;
    for (int i = 0; i < g->ntensors; i++) {
        qat_tensor *t = &g->tensors[i];
        if (t->buffer >= 0) continue;
        t->bytes = (uint64_t)t->numel * qat_dtype_size(t->dtype);
        switch (t->storage) {
        case QAT_STORE_PARAM:
            if (t->flat) {
                t->buffer = QAT_BUF_PARAM, t->offset = 0, t->bytes = g->trainable_bytes;
                break;
            }
            t->buffer = QAT_BUF_PARAM;
            t->offset = sizes[QAT_BUF_PARAM];
            sizes[QAT_BUF_PARAM] = align_up(t->offset + t->bytes, QAT_BUFFER_ALIGN);
            break;
        case QAT_STORE_GRAD:
            t->buffer = QAT_BUF_GRAD;
            if (t->flat) {
                t->offset = 0, t->bytes = g->trainable_bytes;
            } else {
                QAT_ASSERT(t->grad_of >= 0 && g->tensors[t->grad_of].buffer == QAT_BUF_PARAM);
                t->offset = g->tensors[t->grad_of].offset;
            }
            break;
        case QAT_STORE_OPT:
            if (t->flat) t->bytes = g->trainable_bytes;
            t->buffer = QAT_BUF_OPT;
            t->offset = sizes[QAT_BUF_OPT];
            sizes[QAT_BUF_OPT] = align_up(t->offset + t->bytes, QAT_BUFFER_ALIGN);
            break;
        case QAT_STORE_ACT:
            t->buffer = QAT_BUF_ACT; /* offset from plan_activations below */
            break;
        case QAT_STORE_INPUT:
        case QAT_STORE_CONST:
            t->buffer = QAT_BUF_ACT;
            t->offset = sizes[QAT_BUF_ACT];
            sizes[QAT_BUF_ACT] = align_up(t->offset + t->bytes, QAT_BUFFER_ALIGN);
            break;
        case QAT_STORE_VIEW:
            break;
        }
        if (t->storage == QAT_STORE_INPUT || t->output) {
            t->host_offset = *host_bytes;
            *host_bytes = align_up(*host_bytes + t->bytes, QAT_BUFFER_ALIGN);
        }
    }
    plan_activations(g, &sizes[QAT_BUF_ACT]);
    for (int i = 0; i < g->ntensors; i++) {
        qat_tensor *t = &g->tensors[i];
        if (t->storage != QAT_STORE_VIEW) continue;
        const qat_tensor *b = &g->tensors[resolve_view(g, i)];
        t->buffer = b->buffer;
        t->offset = b->offset;
        t->bytes = (uint64_t)t->numel * qat_dtype_size(t->dtype);
        if (t->output) {
            t->host_offset = *host_bytes;
            *host_bytes = align_up(*host_bytes + t->bytes, QAT_BUFFER_ALIGN);
        }
    }
}

static qat_status zero_and_upload(qat_graph *g)
{
    qat_ctx *ctx = g->ctx;
    VkCommandBufferBeginInfo begin = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VkResult r = vkBeginCommandBuffer(ctx->oneshot, &begin);
    if (r != VK_SUCCESS) return qat_vk_error(r, "vkBeginCommandBuffer");
    for (int i = 0; i < QAT_BUF_COUNT; i++)
        vkCmdFillBuffer(ctx->oneshot, g->buffers[i].buffer, 0, VK_WHOLE_SIZE, 0);
    VkMemoryBarrier barrier = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
    };
    vkCmdPipelineBarrier(ctx->oneshot, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier,
                         0, NULL, 0, NULL);
    r = vkEndCommandBuffer(ctx->oneshot);
    if (r != VK_SUCCESS) return qat_vk_error(r, "vkEndCommandBuffer");
    QAT_TRY(qat_ctx_submit_wait(ctx, ctx->oneshot));
    memset(g->host_io.mapped, 0, g->host_io.size);
    for (int i = 0; i < g->ntensors; i++) {
        const qat_tensor *t = &g->tensors[i];
        if (t->storage == QAT_STORE_CONST && t->init_data)
            QAT_TRY(qat_buffer_upload(ctx, &g->buffers[t->buffer], t->offset, t->init_data, t->bytes));
    }
    return QAT_OK;
}

qat_status qat_graph_compile(qat_graph *g)
{
    QAT_ASSERT(!g->compiled);
    qat_ctx *ctx = g->ctx;
    uint64_t sizes[QAT_BUF_COUNT], host_bytes;
    plan_memory(g, sizes, &host_bytes);
    for (int i = 0; i < QAT_BUF_COUNT; i++) QAT_TRY(qat_buffer_create(ctx, sizes[i], false, &g->buffers[i]));
    QAT_TRY(qat_buffer_create(ctx, host_bytes, true, &g->host_io));
    g->compiled = true; /* from here on qat_graph_free releases the buffers */

    g->dispatches = qat_xcalloc((size_t)g->nnodes, sizeof *g->dispatches);
    g->pipelines = qat_xcalloc((size_t)g->nnodes, sizeof *g->pipelines);
    g->sets = qat_xcalloc((size_t)g->nnodes, sizeof *g->sets);
    uint32_t nsets = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const qat_op_def *def = qat_op_defs[g->nodes[i].op];
        if (!def->encode) continue;
        qat_dispatch *d = &g->dispatches[i];
        for (int b = 0; b < QAT_SCALARS_BINDING; b++) d->binding[b] = -1;
        def->encode(g, &g->nodes[i], d);
        QAT_TRY(qat_kernel_pipeline(ctx, d->kernel, &d->spec, &g->pipelines[i]));
        nsets++;
    }
    if (nsets) {
        VkDescriptorPoolSize pool_sizes[2] = {
            { .type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = nsets * QAT_MAX_BINDINGS },
            { .type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, .descriptorCount = nsets * QAT_TEXEL_BINDINGS },
        };
        VkDescriptorPoolCreateInfo pool_info = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
            .maxSets = nsets,
            .poolSizeCount = 2,
            .pPoolSizes = pool_sizes,
        };
        VkResult r = vkCreateDescriptorPool(ctx->device, &pool_info, NULL, &g->descriptor_pool);
        if (r != VK_SUCCESS) return qat_vk_error(r, "vkCreateDescriptorPool");
    }
    const qat_tensor *scalars = &g->tensors[g->scalars];
    for (int i = 0; i < g->nnodes; i++) {
        if (!g->pipelines[i]) continue;
        VkDescriptorSetAllocateInfo alloc = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
            .descriptorPool = g->descriptor_pool,
            .descriptorSetCount = 1,
            .pSetLayouts = &ctx->set_layout,
        };
        VkResult r = vkAllocateDescriptorSets(ctx->device, &alloc, &g->sets[i]);
        if (r != VK_SUCCESS) return qat_vk_error(r, "vkAllocateDescriptorSets");
        VkDescriptorBufferInfo infos[QAT_MAX_BINDINGS];
        VkBufferView views[QAT_TEXEL_BINDINGS];
        VkWriteDescriptorSet writes[QAT_MAX_BINDINGS + QAT_TEXEL_BINDINGS];
        for (int b = 0; b < QAT_MAX_BINDINGS; b++) {
            int tid = b < QAT_SCALARS_BINDING ? g->dispatches[i].binding[b] : -1;
            const qat_tensor *t = tid >= 0 ? &g->tensors[tid] : scalars;
            infos[b] = (VkDescriptorBufferInfo){
                .buffer = g->buffers[t->buffer].buffer,
                .offset = t->offset,
                .range = align_up(t->bytes ? t->bytes : 4, 4),
            };
            writes[b] = (VkWriteDescriptorSet){
                .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                .dstSet = g->sets[i],
                .dstBinding = (uint32_t)b,
                .descriptorCount = 1,
                .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                .pBufferInfo = &infos[b],
            };
        }
        for (int b = 0; b < QAT_TEXEL_BINDINGS; b++) {
            int tid = g->dispatches[i].binding[b];
            bool uint_texels = g->dispatches[i].texel_uint[b];
            views[b] = uint_texels ? ctx->dummy_view_uint : ctx->dummy_view;
            if (g->dispatches[i].texel[b] && tid >= 0) {
                const qat_tensor *t = &g->tensors[tid];
                QAT_ASSERT_MSG(uint_texels || t->dtype != QAT_U8, "a U8 tensor is read as raw words (texel_uint)");
                VkFormat format = uint_texels             ? VK_FORMAT_R32G32B32A32_UINT
                                  : t->dtype == QAT_I32 ? VK_FORMAT_R32G32B32A32_SINT
                                                        : VK_FORMAT_R32G32B32A32_SFLOAT;
                g->views = qat_xrealloc(g->views, (size_t)(g->nviews + 1) * sizeof *g->views);
                QAT_TRY(qat_texel_view_create(ctx, &g->buffers[t->buffer], t->offset, t->bytes, format, &views[b]));
                g->views[g->nviews++] = views[b];
            }
            writes[QAT_MAX_BINDINGS + b] = (VkWriteDescriptorSet){
                .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                .dstSet = g->sets[i],
                .dstBinding = (uint32_t)(QAT_TEXEL_BASE + b),
                .descriptorCount = 1,
                .descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
                .pTexelBufferView = &views[b],
            };
        }
        vkUpdateDescriptorSets(ctx->device, QAT_MAX_BINDINGS + QAT_TEXEL_BINDINGS, writes, 0, NULL);
    }
    return zero_and_upload(g);
}

void *qat_graph_input_slot(qat_graph *g, int t)
{
    QAT_ASSERT(g->compiled);
    const qat_tensor *tt = qat_tensor_get(g, t);
    QAT_ASSERT_MSG(tt->storage == QAT_STORE_INPUT, "only INPUT tensors have input slots");
    return (char *)g->host_io.mapped + tt->host_offset;
}

const void *qat_graph_output_slot(qat_graph *g, int t)
{
    QAT_ASSERT(g->compiled);
    const qat_tensor *tt = qat_tensor_get(g, t);
    QAT_ASSERT_MSG(tt->output, "tensor was not marked as an output");
    return (const char *)g->host_io.mapped + tt->host_offset;
}

float *qat_graph_scalar_slot(qat_graph *g) { return qat_graph_input_slot(g, g->scalars); }

void qat_graph_set_phase(qat_graph *g, bool training, uint32_t step)
{
    float *s = qat_graph_scalar_slot(g);
    s[QAT_SCALAR_TRAINING] = training ? 1.0f : 0.0f;
    memcpy(&s[QAT_SCALAR_STEP_INDEX], &step, sizeof step);
}

qat_status qat_tensor_write(qat_graph *g, int t, const void *data)
{
    QAT_ASSERT(g->compiled);
    const qat_tensor *tt = qat_tensor_get(g, t);
    return qat_buffer_upload(g->ctx, &g->buffers[tt->buffer], tt->offset, data, tt->bytes);
}

qat_status qat_tensor_read(qat_graph *g, int t, void *data)
{
    QAT_ASSERT(g->compiled);
    const qat_tensor *tt = qat_tensor_get(g, t);
    return qat_buffer_download(g->ctx, &g->buffers[tt->buffer], tt->offset, data, tt->bytes);
}

uint64_t qat_graph_device_bytes(const qat_graph *g)
{
    uint64_t total = g->host_io.size;
    for (int i = 0; i < QAT_BUF_COUNT; i++) total += g->buffers[i].size;
    return total;
}

/* ---- recording ------------------------------------------------------------- */

typedef struct range {
    int buffer;
    uint64_t begin, end;
} range;

typedef struct range_set {
    range *items;
    int count, cap;
} range_set;

static void range_add(range_set *s, range r)
{
    if (s->count == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->items = qat_xrealloc(s->items, (size_t)s->cap * sizeof *s->items);
    }
    s->items[s->count++] = r;
}

static bool range_overlaps(const range_set *s, range r)
{
    for (int i = 0; i < s->count; i++)
        if (s->items[i].buffer == r.buffer && s->items[i].begin < r.end && r.begin < s->items[i].end) return true;
    return false;
}

static void full_barrier(VkCommandBuffer cmd, VkPipelineStageFlags src_stage, VkAccessFlags src,
                         VkPipelineStageFlags dst_stage, VkAccessFlags dst)
{
    VkMemoryBarrier b = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = src, .dstAccessMask = dst };
    vkCmdPipelineBarrier(cmd, src_stage, dst_stage, 0, 1, &b, 0, NULL, 0, NULL);
}

static void record_host_copies(qat_graph *g, VkCommandBuffer cmd, bool inputs, int begin, int end)
{
    VkBufferCopy *regions = qat_xcalloc((size_t)g->ntensors, sizeof *regions);
    for (int b = 0; b < QAT_BUF_COUNT; b++) {
        uint32_t n = 0;
        for (int i = 0; i < g->ntensors; i++) {
            const qat_tensor *t = &g->tensors[i];
            if (t->buffer != b || t->bytes == 0) continue;
            if (inputs && t->storage != QAT_STORE_INPUT) continue;
            if (!inputs) {
                if (!t->output) continue;
                int producer = g->tensors[resolve_view(g, i)].producer;
                if (producer >= 0 && (producer < begin || producer >= end)) continue;
            }
            regions[n++] = inputs ? (VkBufferCopy){ t->host_offset, t->offset, t->bytes }
                                  : (VkBufferCopy){ t->offset, t->host_offset, t->bytes };
        }
        if (n == 0) continue;
        if (inputs) vkCmdCopyBuffer(cmd, g->host_io.buffer, g->buffers[b].buffer, n, regions);
        else vkCmdCopyBuffer(cmd, g->buffers[b].buffer, g->host_io.buffer, n, regions);
    }
    free(regions);
}

qat_status qat_seq_create(qat_graph *g, int begin, int end, qat_seq **out)
{
    QAT_ASSERT(g->compiled && begin >= 0 && begin <= end && end <= g->nnodes);
    qat_ctx *ctx = g->ctx;
    qat_seq *s = qat_xcalloc(1, sizeof *s);
    s->g = g;
    VkCommandBufferAllocateInfo alloc = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = ctx->command_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    VkResult r = vkAllocateCommandBuffers(ctx->device, &alloc, &s->cmd);
    if (r != VK_SUCCESS) {
        free(s);
        return qat_vk_error(r, "vkAllocateCommandBuffers");
    }
    const char *profile_env = getenv("QAT_PROFILE");
    if (profile_env && *profile_env && strcmp(profile_env, "0") != 0 && ctx->props.limits.timestampComputeAndGraphics) {
        VkQueryPoolCreateInfo qinfo = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = (uint32_t)(2 * (end - begin) + 2),
        };
        r = vkCreateQueryPool(ctx->device, &qinfo, NULL, &s->queries);
        if (r != VK_SUCCESS) {
            qat_seq_free(s);
            return qat_vk_error(r, "vkCreateQueryPool");
        }
        s->profiled_nodes = qat_xcalloc((size_t)(end - begin) + 1, sizeof *s->profiled_nodes);
        s->profile_ns = qat_xcalloc((size_t)(end - begin) + 1, sizeof *s->profile_ns);
    }
    VkCommandBufferBeginInfo begin_info = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO };
    vkBeginCommandBuffer(s->cmd, &begin_info);
    if (s->queries) vkCmdResetQueryPool(s->cmd, s->queries, 0, (uint32_t)(2 * (end - begin) + 2));
    /* The previous run (or anything before it) may still have writes that are
     * not yet visible, and may have read what this run's copies overwrite. */
    full_barrier(s->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                 VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                 VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                     VK_ACCESS_TRANSFER_WRITE_BIT);
    record_host_copies(g, s->cmd, true, begin, end);
    full_barrier(s->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);

    /* Barriers from data flow: a dispatch waits only when it reads what an
     * earlier dispatch since the last barrier wrote, or overwrites what one
     * read or wrote. */
    range_set written = { 0 }, read = { 0 };
    for (int i = begin; i < end; i++) {
        if (!g->pipelines[i]) continue;
        const qat_dispatch *d = &g->dispatches[i];
        bool conflict = false;
        for (int b = 0; b < QAT_SCALARS_BINDING && !conflict; b++) {
            int tid = d->binding[b];
            if (tid < 0) continue;
            const qat_tensor *t = &g->tensors[tid];
            range rg = { t->buffer, t->offset, t->offset + t->bytes };
            conflict = range_overlaps(&written, rg) || (d->writes[b] && range_overlaps(&read, rg));
        }
        if (conflict) {
            full_barrier(s->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
            written.count = read.count = 0;
            s->barriers++;
        }
        for (int b = 0; b < QAT_SCALARS_BINDING; b++) {
            int tid = d->binding[b];
            if (tid < 0) continue;
            const qat_tensor *t = &g->tensors[tid];
            range rg = { t->buffer, t->offset, t->offset + t->bytes };
            range_add(d->writes[b] ? &written : &read, rg);
        }
        vkCmdBindPipeline(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, g->pipelines[i]);
        vkCmdBindDescriptorSets(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, ctx->pipeline_layout, 0, 1, &g->sets[i],
                                0, NULL);
        vkCmdPushConstants(s->cmd, ctx->pipeline_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, QAT_PUSH_WORDS * 4,
                           d->push);
        if (s->queries)
            vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, s->queries, (uint32_t)(2 * s->dispatches));
        vkCmdDispatch(s->cmd, d->groups[0], d->groups[1] ? d->groups[1] : 1, d->groups[2] ? d->groups[2] : 1);
        if (s->queries) {
            vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, s->queries,
                                (uint32_t)(2 * s->dispatches + 1));
            s->profiled_nodes[s->dispatches] = i;
        }
        s->dispatches++;
    }
    free(written.items);
    free(read.items);
    full_barrier(s->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                 VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
    record_host_copies(g, s->cmd, false, begin, end);
    full_barrier(s->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_HOST_BIT,
                 VK_ACCESS_HOST_READ_BIT);
    r = vkEndCommandBuffer(s->cmd);
    if (r != VK_SUCCESS) {
        qat_seq_free(s);
        return qat_vk_error(r, "vkEndCommandBuffer");
    }
    *out = s;
    return QAT_OK;
}

qat_status qat_seq_run(qat_seq *s)
{
    QAT_TRY(qat_ctx_submit_wait(s->g->ctx, s->cmd));
    if (s->queries && s->dispatches) {
        uint64_t *stamps = qat_xcalloc((size_t)(2 * s->dispatches), sizeof *stamps);
        VkResult r = vkGetQueryPoolResults(s->g->ctx->device, s->queries, 0, (uint32_t)(2 * s->dispatches),
                                           (size_t)(2 * s->dispatches) * sizeof *stamps, stamps, sizeof *stamps,
                                           VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
        if (r == VK_SUCCESS) {
            double period = s->g->ctx->props.limits.timestampPeriod;
            for (int i = 0; i < s->dispatches; i++)
                s->profile_ns[i] += (double)(stamps[2 * i + 1] - stamps[2 * i]) * period;
            s->profile_runs++;
        }
        free(stamps);
    }
    return QAT_OK;
}

void qat_seq_profile_print(const qat_seq *s, FILE *out)
{
    if (!s->queries || !s->profile_runs) return;
    const qat_graph *g = s->g;
    double total = 0;
    for (int i = 0; i < s->dispatches; i++) total += s->profile_ns[i];
    fprintf(out, "profile over %d runs: %.3f ms of dispatches per run, %d dispatches, %d barriers\n",
            s->profile_runs, total / s->profile_runs * 1e-6, s->dispatches, s->barriers);
    for (int i = 0; i < s->dispatches; i++) {
        const qat_node *n = &g->nodes[s->profiled_nodes[i]];
        const qat_tensor *t = n->out >= 0 ? &g->tensors[n->out] : NULL;
        char shape[64] = "";
        for (int d = 0; t && d < t->ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? "x" : "", (long long)t->shape[d]);
        fprintf(out, "  %4d %-20s %-16s %9.1f us %5.1f%%\n", s->profiled_nodes[i], qat_op_defs[n->op]->name, shape,
                s->profile_ns[i] / s->profile_runs * 1e-3, 100.0 * s->profile_ns[i] / total);
    }
}
int qat_seq_dispatch_count(const qat_seq *s) { return s->dispatches; }
int qat_seq_barrier_count(const qat_seq *s) { return s->barriers; }

void qat_seq_free(qat_seq *s)
{
    if (!s) return;
    if (s->cmd) vkFreeCommandBuffers(s->g->ctx->device, s->g->ctx->command_pool, 1, &s->cmd);
    if (s->queries) vkDestroyQueryPool(s->g->ctx->device, s->queries, NULL);
    free(s->profiled_nodes);
    free(s->profile_ns);
    free(s);
}
