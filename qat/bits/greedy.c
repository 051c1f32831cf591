/* greedy: start every layer at the largest width, then, while the total is
 * over the budget, lower the one layer whose cost rises least per byte saved
 * (ties: the earliest layer). Cheap and easy to follow, but not always
 * optimal: it never undoes a step, so a big step that was the cheapest per
 * byte can save far more than needed where a costlier small step would have
 * sufficed (hawq finds the optimum). */
#include "qat/bits.h"

#include <inttypes.h>

/* The next width down from candidate k: the largest below it that saves
 * bytes (one that saves none would only add cost), or -1. */
static int step_down(const qat_bits_layer *layer, int k)
{
    for (int j = k - 1; j >= 0; j--)
        if (layer->bytes[j] < layer->bytes[k]) return j;
    return -1;
}

static qat_status greedy_assign(const qat_bits_problem *p, int *choice)
{
    for (int l = 0; l < p->nlayers; l++) choice[l] = p->ncandidates - 1;
    uint64_t total = qat_bits_total_bytes(p, choice);
    while (total > p->budget_bytes) {
        int best = -1, best_to = -1;
        double best_rise = 0;
        uint64_t best_saved = 0;
        for (int l = 0; l < p->nlayers; l++) {
            const qat_bits_layer *layer = &p->layers[l];
            int to = step_down(layer, choice[l]);
            if (to < 0) continue;
            double rise = layer->cost[to] - layer->cost[choice[l]];
            uint64_t saved = layer->bytes[choice[l]] - layer->bytes[to];
            /* rise / saved < best_rise / best_saved, without dividing */
            if (best < 0 || rise * (double)best_saved < best_rise * (double)saved) {
                best = l, best_to = to, best_rise = rise, best_saved = saved;
            }
        }
        if (best < 0)
            return qat_error_set(QAT_ERR_INVALID,
                                 "greedy: every layer at its smallest width still takes %" PRIu64
                                 " bytes, over the budget of %" PRIu64 " bytes",
                                 total, p->budget_bytes);
        choice[best] = best_to;
        total -= best_saved;
    }
    return QAT_OK;
}

const qat_bits_strategy qat_bits_strategy_greedy = {
    .name = "greedy",
    .summary = "from the largest width down, lowering the layer with the least cost per byte saved until it fits",
    .needs_cost = true,
    .assign = greedy_assign,
};
