/* hawq: the exact optimum. HAWQ-v3 (Yao et al., 2021) picks the widths that
 * minimise the summed sensitivity under a size budget as an integer linear
 * program; with one choice per layer that program is a multiple-choice
 * knapsack, which a dynamic program over bytes solves exactly in
 * layers x candidates x budget steps, small for our models (the gpt: ~25
 * layers, well under a million steps).
 *
 * The table is kept small: every layer's smallest width is paid up front
 * (only the increments over it are chosen), the increments and the slack
 * are counted in units of their greatest common divisor, and the slack is
 * clamped to what all layers at their largest widths could use. Ties go to
 * the fewest bytes, then to the earlier (smaller) candidate. */
#include "qat/bits.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

/* The choices table is layers x (slack + 1) bytes; past this it is not
 * worth the memory of a laptop (and our models never get near it). */
#define HAWQ_MAX_TABLE_BYTES ((uint64_t)512 << 20)

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b, b = t;
    }
    return a;
}

static uint64_t smallest_bytes(const qat_bits_problem *p, const qat_bits_layer *layer)
{
    uint64_t m = layer->bytes[0];
    for (int k = 1; k < p->ncandidates; k++)
        if (layer->bytes[k] < m) m = layer->bytes[k];
    return m;
}

static qat_status hawq_assign(const qat_bits_problem *p, int *choice)
{
    const int nl = p->nlayers, nk = p->ncandidates;
    uint64_t base = 0, unit = 0, reach = 0;
    for (int l = 0; l < nl; l++) {
        const uint64_t m = smallest_bytes(p, &p->layers[l]);
        base += m;
        for (int k = 0; k < nk; k++) unit = gcd_u64(unit, p->layers[l].bytes[k] - m);
    }
    if (base > p->budget_bytes)
        return qat_error_set(QAT_ERR_INVALID,
                             "hawq: the budget is %" PRIu64 " bytes, but every layer at its smallest width takes %" PRIu64
                             " bytes",
                             p->budget_bytes, base);
    if (nl == 0) return QAT_OK;
    if (unit == 0) unit = 1; /* every width of every layer takes the same bytes */
    for (int l = 0; l < nl; l++) {
        uint64_t m = smallest_bytes(p, &p->layers[l]), widest = 0;
        for (int k = 0; k < nk; k++)
            if ((p->layers[l].bytes[k] - m) / unit > widest) widest = (p->layers[l].bytes[k] - m) / unit;
        reach += widest;
    }
    uint64_t slack = (p->budget_bytes - base) / unit;
    if (slack > reach) slack = reach;
    const uint64_t width = slack + 1;
    if ((uint64_t)nl * width > HAWQ_MAX_TABLE_BYTES)
        return qat_error_set(QAT_ERR_INVALID,
                             "hawq: the search table would take %" PRIu64 " MiB (%d layers x %" PRIu64
                             " steps of %" PRIu64 " bytes), over the limit of %" PRIu64 " MiB; try --strategy greedy",
                             ((uint64_t)nl * width) >> 20, nl, width, unit, HAWQ_MAX_TABLE_BYTES >> 20);

    /* least[s]: the least cost of the layers so far taking exactly s steps
     * over their smallest widths (INFINITY: no choice takes exactly s);
     * from[l * width + s]: layer l's candidate in that choice. */
    uint8_t *from = qat_xmalloc((size_t)(nl * width));
    double *least = qat_xmalloc((size_t)width * sizeof *least);
    double *next = qat_xmalloc((size_t)width * sizeof *next);
    least[0] = 0;
    for (uint64_t s = 1; s < width; s++) least[s] = INFINITY;
    for (int l = 0; l < nl; l++) {
        const qat_bits_layer *layer = &p->layers[l];
        const uint64_t m = smallest_bytes(p, layer);
        uint64_t steps[QAT_BITS_MAX_CANDIDATES];
        for (int k = 0; k < nk; k++) steps[k] = (layer->bytes[k] - m) / unit;
        uint8_t *row = from + (size_t)l * width;
        for (uint64_t s = 0; s < width; s++) {
            next[s] = INFINITY;
            row[s] = 0;
            for (int k = 0; k < nk; k++) {
                if (steps[k] > s || least[s - steps[k]] == INFINITY) continue;
                const double c = least[s - steps[k]] + layer->cost[k];
                if (c < next[s]) next[s] = c, row[s] = (uint8_t)k;
            }
        }
        double *t = least;
        least = next, next = t;
    }
    /* The least cost at the fewest steps; s = 0 is always reachable. */
    uint64_t s = 0;
    for (uint64_t j = 1; j < width; j++)
        if (least[j] < least[s]) s = j;
    for (int l = nl - 1; l >= 0; l--) {
        const qat_bits_layer *layer = &p->layers[l];
        choice[l] = from[(size_t)l * width + s];
        s -= (layer->bytes[choice[l]] - smallest_bytes(p, layer)) / unit;
    }
    QAT_ASSERT(s == 0);
    free(from);
    free(least);
    free(next);
    return QAT_OK;
}

const qat_bits_strategy qat_bits_strategy_hawq = {
    .name = "hawq",
    .summary = "the exact least summed cost within the budget (HAWQ-v3's integer program, by dynamic programming)",
    .needs_cost = true,
    .assign = hawq_assign,
};
