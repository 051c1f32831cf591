/* Optimizer nodes (built by qat/optim.c), encoded onto shaders/optim.comp.
 * CPU reference: ops/optim.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

static void encode_optim(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    const qat_tensor *params = qat_in(g, n, 0);
    uint64_t count = params->bytes / 4;
    /* The flat span is padded to QAT_BUFFER_ALIGN bytes: whole vec4s. */
    QAT_ASSERT(count % 4 == 0);
    uint32_t local = cpu ? 256 : 64;
    qat_dispatch_1d(g, d, QAT_KERNEL_OPTIM, n->op == QAT_OP_ADAMW ? 1 : 0, count / 4, local);
    if (cpu && d->groups[0] > 64) d->groups[0] = 64;
    for (int i = 0; i < n->nin; i++) d->binding[i] = n->in[i];
    d->writes[0] = true;
    d->writes[2] = true;
    d->writes[3] = n->nin > 3;
    d->spec.values[1] = cpu; /* TEXEL */
    d->texel[1] = cpu;
    d->push[0] = (uint32_t)count;
    for (int i = 0; i < 6; i++) d->push[1 + i] = qat_float_bits(n->farg[i]);
}

int qat_param_floor(qat_graph *g, int param, float lo)
{
    const qat_tensor *t = qat_tensor_get(g, param);
    QAT_ASSERT_MSG(t->dtype == QAT_F32 && t->requires_grad, "a floor is for a trainable F32 parameter");
    QAT_ASSERT_MSG(t->numel <= (int64_t)UINT32_MAX - (1 << 24), "param floor indexes elements with 32 bits");
    int id = qat_node_add(g, QAT_OP_PARAM_FLOOR, &param, 1, -1);
    qat_node_get(g, id)->farg[0] = lo;
    return id;
}

/* The optimizer's kernel in MODE_FLOOR, one float per invocation step over
 * the parameter's own range. */
static void encode_param_floor(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    uint64_t count = (uint64_t)qat_in(g, n, 0)->numel;
    qat_dispatch_1d(g, d, QAT_KERNEL_OPTIM, 2, count, 64);
    if (d->groups[0] > 64) d->groups[0] = 64;
    d->binding[0] = n->in[0];
    d->writes[0] = true;
    d->push[0] = (uint32_t)count;
    d->push[1] = qat_float_bits(n->farg[0]);
}

const qat_op_def qat_op_param_floor_def = { "param_floor", encode_param_floor, NULL };
const qat_op_def qat_op_sgd_def = { "sgd", encode_optim, NULL };
const qat_op_def qat_op_adamw_def = { "adamw", encode_optim, NULL };
