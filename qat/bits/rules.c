/* rules: the transformer folklore without any measurement. Attention
 * projections and the first and last layers (the embedding-facing and the
 * logit-facing ones) are known to suffer most from few bits, the MLPs hold
 * most of the weights and tolerate them: so two widths, high for the former,
 * low for the rest. Among pairs high >= low that fit, it takes the largest
 * low (the bulk of the bytes), then the largest high. Models without
 * attention (the image models) get high ends and a low middle. */
#include "qat/bits.h"

#include <inttypes.h>

static bool rules_high(const qat_bits_layer *layer)
{
    return layer->role == QAT_BITS_ROLE_ATTENTION || layer->first || layer->last;
}

static qat_status rules_assign(const qat_bits_problem *p, int *choice)
{
    for (int lo = p->ncandidates - 1; lo >= 0; lo--)
        for (int hi = p->ncandidates - 1; hi >= lo; hi--) {
            for (int l = 0; l < p->nlayers; l++) choice[l] = rules_high(&p->layers[l]) ? hi : lo;
            if (qat_bits_total_bytes(p, choice) <= p->budget_bytes) return QAT_OK;
        }
    /* The pair (0, 0) is the smallest the rule can do; choice holds it. */
    return qat_error_set(QAT_ERR_INVALID,
                         "rules: the budget is %" PRIu64 " bytes, but every layer at %d bits takes %" PRIu64 " bytes",
                         p->budget_bytes, p->bits[0], qat_bits_total_bytes(p, choice));
}

const qat_bits_strategy qat_bits_strategy_rules = {
    .name = "rules",
    .summary = "attention, first and last layers at a high width, the rest (MLPs) low: the best pair that fits",
    .needs_cost = false,
    .assign = rules_assign,
};
