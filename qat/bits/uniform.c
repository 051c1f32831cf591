/* uniform: every layer at the same width, the largest that fits. The
 * baseline every mixed assignment must beat at the same size. */
#include "qat/bits.h"

#include <inttypes.h>

static qat_status uniform_assign(const qat_bits_problem *p, int *choice)
{
    uint64_t smallest = UINT64_MAX;
    for (int k = p->ncandidates - 1; k >= 0; k--) {
        for (int l = 0; l < p->nlayers; l++) choice[l] = k;
        uint64_t total = qat_bits_total_bytes(p, choice);
        if (total <= p->budget_bytes) return QAT_OK;
        if (total < smallest) smallest = total;
    }
    return qat_error_set(QAT_ERR_INVALID,
                         "uniform: the budget is %" PRIu64 " bytes, but every layer at one width takes at least %" PRIu64
                         " bytes",
                         p->budget_bytes, smallest);
}

const qat_bits_strategy qat_bits_strategy_uniform = {
    .name = "uniform",
    .summary = "every layer at the same width: the largest whose total fits the budget",
    .needs_cost = false,
    .assign = uniform_assign,
};
