/* The strategy-independent half of mixed precision: the registry lookup, the
 * check of every strategy's answer, the bytes accounting and the budget. */
#include "qat/bits.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const qat_bits_strategy *qat_bits_strategy_find(const char *name)
{
    QAT_ASSERT(name);
    for (const qat_bits_strategy *const *s = qat_bits_strategies; *s; s++)
        if (strcmp((*s)->name, name) == 0) return *s;
    return NULL;
}

/* The table is built by `qat bits`, not typed by a user: a malformed one is
 * a programmer error. */
static void check_problem(const qat_bits_problem *p)
{
    QAT_ASSERT(p);
    QAT_ASSERT(p->nlayers >= 0 && (p->layers || p->nlayers == 0));
    QAT_ASSERT(p->ncandidates >= 1 && p->ncandidates <= QAT_BITS_MAX_CANDIDATES);
    for (int k = 0; k < p->ncandidates; k++) {
        QAT_ASSERT(p->bits[k] >= QAT_QBITS_MIN && p->bits[k] <= QAT_QBITS_MAX);
        QAT_ASSERT_MSG(k == 0 || p->bits[k] > p->bits[k - 1], "candidate bits must be strictly ascending");
    }
}

qat_status qat_bits_assign(const qat_bits_strategy *s, const qat_bits_problem *p, int *choice)
{
    QAT_ASSERT(s && s->assign);
    check_problem(p);
    QAT_ASSERT(choice || p->nlayers == 0);
    if (s->needs_cost) {
        if (!p->has_cost)
            return qat_error_set(QAT_ERR_INVALID, "the %s strategy needs a measured sensitivity (--sensitivity)",
                                 s->name);
        /* A NaN would make every comparison false and the answer arbitrary. */
        for (int l = 0; l < p->nlayers; l++)
            for (int k = 0; k < p->ncandidates; k++) {
                double c = p->layers[l].cost[k];
                if (!isfinite(c) || c < 0)
                    return qat_error_set(QAT_ERR_INVALID, "layer %s: the cost at %d bits is %g, not a finite value >= 0",
                                         p->layers[l].name, p->bits[k], c);
            }
    }
    for (int l = 0; l < p->nlayers; l++) choice[l] = -1;
    QAT_TRY(s->assign(p, choice));
    for (int l = 0; l < p->nlayers; l++)
        QAT_ASSERT_MSG(choice[l] >= 0 && choice[l] < p->ncandidates, "a strategy chose no valid candidate");
    QAT_ASSERT_MSG(qat_bits_total_bytes(p, choice) <= p->budget_bytes, "a strategy's choice exceeds the budget");
    return QAT_OK;
}

uint64_t qat_bits_weight_bytes(int64_t rows, int64_t cols, int bits, qat_granularity gran, int group)
{
    QAT_ASSERT(rows >= 0 && cols >= 0);
    qat_qscheme s = {.bits = bits, .symmetric = true, .gran = gran, .group = group};
    return (uint64_t)qat_packed_size(rows * cols, bits) + 8 * (uint64_t)qat_qscheme_scale_count(&s, rows, cols);
}

/* avg_bits is counted in thousandths of a bit (the nearest), so the
 * products are integers and exact: a parsed budget has at most 3 decimals
 * (qat_bits_budget_parse), where doubles are not exact: 720 weights times
 * the nearest double of 2.7 is 1944.0000000000002 bits, which a
 * floating-point ceil would turn into 244 bytes instead of 243. */
uint64_t qat_bits_budget_from_avg(int nlayers, const int64_t *numel, const uint64_t *scale_bytes, double avg_bits)
{
    QAT_ASSERT(nlayers >= 0 && ((numel && scale_bytes) || nlayers == 0));
    QAT_ASSERT(isfinite(avg_bits) && avg_bits > 0 && avg_bits <= QAT_QBITS_MAX);
    const uint64_t millibits = (uint64_t)llround(avg_bits * 1000.0);
    uint64_t total = 0;
    for (int l = 0; l < nlayers; l++) {
        QAT_ASSERT(numel[l] >= 0 && (uint64_t)numel[l] <= UINT64_MAX / 8000);
        total += ((uint64_t)numel[l] * millibits + 7999) / 8000 + scale_bytes[l];
    }
    return total;
}

/* Reads "D[.D]" (no sign, no exponent: a budget is never written so) into an
 * integer mantissa and its count of decimals; returns the end, or NULL when
 * there are no digits, more than max_decimals decimals or too many digits. */
static const char *parse_decimal(const char *s, int max_decimals, uint64_t *mantissa, int *decimals)
{
    uint64_t m = 0;
    int digits = 0, dec = 0;
    bool point = false;
    for (;; s++) {
        if (*s == '.' && !point) {
            point = true;
            continue;
        }
        if (*s < '0' || *s > '9') break;
        if (++digits > 18) return NULL; /* keeps m below 10^18, far from overflow */
        m = m * 10 + (uint64_t)(*s - '0');
        if (point && ++dec > max_decimals) return NULL;
    }
    if (digits == 0) return NULL;
    *mantissa = m;
    *decimals = dec;
    return s;
}

bool qat_bits_budget_parse(const char *text, bool *is_bytes, double *avg_bits, uint64_t *bytes)
{
    QAT_ASSERT(text && is_bytes && avg_bits && bytes);
    static const struct {
        const char *suffix;
        uint64_t unit;
    } units[] = {
        {"B", 1},
        {"KB", 1000}, {"kB", 1000}, {"MB", 1000000}, {"GB", 1000000000},
        /* GNU's single letters are binary, as in `truncate -s 10K`. */
        {"K", 1024}, {"KiB", 1024}, {"M", 1 << 20}, {"MiB", 1 << 20}, {"G", 1 << 30}, {"GiB", 1 << 30},
    };
    uint64_t m;
    int dec;
    /* Bits: thousandths at most, which budget_from_avg then counts exactly. */
    const char *end = parse_decimal(text, 3, &m, &dec);
    if (end && *end == '\0') {
        if (m > 8000) return false; /* too large already, and scaling it could overflow */
        for (; dec < 3; dec++) m *= 10;
        if (m < 1000 || m > 8000) return false;
        *is_bytes = false;
        *avg_bits = (double)m / 1000.0;
        return true;
    }
    /* Bytes, rounded down since the budget is a ceiling. With at most 9
     * decimals and units up to 2^30 the fraction's product stays below 2^63. */
    end = parse_decimal(text, 9, &m, &dec);
    if (!end) return false;
    uint64_t unit = 0;
    for (size_t i = 0; i < QAT_ARRAY_LEN(units); i++)
        if (strcmp(end, units[i].suffix) == 0) unit = units[i].unit;
    if (!unit) return false;
    uint64_t pow10 = 1;
    for (int i = 0; i < dec; i++) pow10 *= 10;
    const uint64_t whole = m / pow10, frac = m % pow10;
    if (whole > (UINT64_MAX - unit) / unit) return false;
    *is_bytes = true;
    *bytes = whole * unit + frac * unit / pow10;
    return true;
}

uint64_t qat_bits_total_bytes(const qat_bits_problem *p, const int *choice)
{
    check_problem(p);
    uint64_t total = 0;
    for (int l = 0; l < p->nlayers; l++) {
        QAT_ASSERT(choice[l] >= 0 && choice[l] < p->ncandidates);
        uint64_t b = p->layers[l].bytes[choice[l]];
        /* Saturates, so an absurd table reads as over any budget. */
        total = b > UINT64_MAX - total ? UINT64_MAX : total + b;
    }
    return total;
}

double qat_bits_total_cost(const qat_bits_problem *p, const int *choice)
{
    check_problem(p);
    QAT_ASSERT(p->has_cost);
    double total = 0;
    for (int l = 0; l < p->nlayers; l++) {
        QAT_ASSERT(choice[l] >= 0 && choice[l] < p->ncandidates);
        total += p->layers[l].cost[choice[l]];
    }
    return total;
}

bool qat_bits_unit_parse(const char *text, int *unit_rows)
{
    QAT_ASSERT(text && unit_rows);
    if (strcmp(text, "layer") == 0) {
        *unit_rows = 0;
        return true;
    }
    if (strncmp(text, "rows:", 5) != 0 || text[5] < '1' || text[5] > '9') return false;
    long v = 0;
    for (const char *p = text + 5; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
        if (v > 65536) return false;
    }
    *unit_rows = (int)v;
    return true;
}

void qat_bits_unit_format(int unit_rows, char *out, size_t size)
{
    QAT_ASSERT(out && size > 0 && unit_rows >= 0);
    if (unit_rows) snprintf(out, size, "rows:%d", unit_rows);
    else snprintf(out, size, "layer");
}
