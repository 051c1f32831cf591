/* Optimizer nodes (built by qat/optim.c), encoded onto shaders/optim.comp.
 * CPU reference: ops/optim.c. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

static void encode_optim(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    const qat_tensor *params = qat_in(g, n, 0);
    uint64_t count = params->bytes / 4;
    qat_dispatch_1d(g, d, QAT_KERNEL_OPTIM, n->op == QAT_OP_ADAMW ? 1 : 0, count, 256);
    for (int i = 0; i < n->nin; i++) d->binding[i] = n->in[i];
    d->writes[0] = true;
    d->writes[2] = true;
    d->writes[3] = n->nin > 3;
    d->push[0] = (uint32_t)count;
    for (int i = 0; i < 4; i++) d->push[1 + i] = qat_float_bits(n->farg[i]);
}

const qat_op_def qat_op_sgd_def = { "sgd", encode_optim, NULL };
const qat_op_def qat_op_adamw_def = { "adamw", encode_optim, NULL };
