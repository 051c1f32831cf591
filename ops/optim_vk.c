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

const qat_op_def qat_op_sgd_def = { "sgd", encode_optim, NULL };
const qat_op_def qat_op_adamw_def = { "adamw", encode_optim, NULL };
