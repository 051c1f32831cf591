/* manual: the widths a person wrote in a map, checked against the candidates
 * and the budget, so hand-made assignments go through the same path (and the
 * same report of bytes) as computed ones. A budget of UINT64_MAX means none:
 * the map alone decides. */
#include "qat/bits.h"

#include <inttypes.h>

static qat_status manual_assign(const qat_bits_problem *p, int *choice)
{
    if (!p->manual_bits) return qat_error_set(QAT_ERR_INVALID, "the manual strategy needs a map (--map FILE)");
    for (int l = 0; l < p->nlayers; l++) {
        choice[l] = -1;
        for (int k = 0; k < p->ncandidates; k++)
            if (p->bits[k] == p->manual_bits[l]) choice[l] = k;
        if (choice[l] < 0)
            return qat_error_set(QAT_ERR_INVALID, "manual: layer %s has %d bits in the map, not one of the candidates",
                                 p->layers[l].name, p->manual_bits[l]);
    }
    if (p->budget_bytes != UINT64_MAX) {
        uint64_t total = qat_bits_total_bytes(p, choice);
        if (total > p->budget_bytes)
            return qat_error_set(QAT_ERR_INVALID,
                                 "manual: the map takes %" PRIu64 " bytes, over the budget of %" PRIu64 " bytes", total,
                                 p->budget_bytes);
    }
    return QAT_OK;
}

const qat_bits_strategy qat_bits_strategy_manual = {
    .name = "manual",
    .summary = "the widths of a bit map (--map FILE), checked against the candidates and the budget",
    .needs_cost = false,
    .assign = manual_assign,
};
