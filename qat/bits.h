/* Mixed precision: choosing each layer's weight bits under a size budget.
 *
 * A strategy sees the problem as a table: for every quantizable layer and
 * every candidate bit width, what the layer's weight takes in bytes (packed
 * codes plus its scales and zero points, exactly as a quantized checkpoint
 * stores them) and, when a sensitivity was measured, what it costs (the
 * estimated rise of the loss). It answers with one candidate per layer whose
 * bytes sum to at most the budget. Strategies never touch the device, the
 * model or files: `qat bits` (qat/cli/cmd_bits.c) measures the sensitivity
 * (qat/sensitivity.h), builds the table, runs the strategy and writes the
 * bit map that `qat ptq --bits-map` and `qat qat --bits-map` read.
 *
 * Writing a strategy (docs/bit-strategies.md walks through `greedy`):
 *   1. qat/bits/NAME.c defines one qat_bits_strategy with an assign function;
 *   2. one line in qat/bits/registry.c lists it.
 */
#ifndef QAT_BITS_H
#define QAT_BITS_H

#include "qat/common.h"
#include "qat/quant.h"

/* Candidate widths are a subset of 2..8 bits. */
#define QAT_BITS_MAX_CANDIDATES 7
/* The most entries a problem has: whole layers, or blocks of a layer's
 * output channels (`qat bits --unit rows:N`). */
#define QAT_BITS_MAX_UNITS 512

/* What a layer does, for rule-based strategies. */
typedef enum qat_bits_role {
    QAT_BITS_ROLE_OTHER,      /* convolutions, fully connected layers of the image models, the gpt's head */
    QAT_BITS_ROLE_ATTENTION,  /* the gpt's blocks.I.attn.{q,k,v,proj} */
    QAT_BITS_ROLE_MLP,        /* the gpt's blocks.I.mlp.{fc,proj} */
} qat_bits_role;

/* One entry of the table: a layer's weight, or a block of its rows (output
 * channels) when the allocation unit is finer than a layer; strategies need
 * not know which. */
typedef struct qat_bits_layer {
    char name[56];            /* "fc1", or "fc1[0:16]" for rows 0..15 */
    int64_t numel;            /* weight elements */
    qat_bits_role role;
    bool first, last;         /* of the first and the last quantized layer in network order */
    /* Per candidate k (the problem's bits[k]): */
    uint64_t bytes[QAT_BITS_MAX_CANDIDATES]; /* packed codes + scales + zero points */
    double cost[QAT_BITS_MAX_CANDIDATES];    /* estimated loss increase, >= 0; valid when the problem has_cost */
} qat_bits_layer;

typedef struct qat_bits_problem {
    int nlayers;
    qat_bits_layer *layers;
    int ncandidates;
    int bits[QAT_BITS_MAX_CANDIDATES]; /* strictly ascending, within 2..8 */
    /* The layers' bytes must sum to at most this. */
    uint64_t budget_bytes;
    bool has_cost;            /* cost[] was measured (qat bits --sensitivity) */
    /* The `manual` strategy's map: the bits of every layer (one of bits[]),
     * or NULL. */
    const int *manual_bits;
} qat_bits_problem;

/* Fills choice[l] with an index into p->bits for every layer, such that the
 * chosen bytes sum to at most p->budget_bytes. When no choice can (or the
 * strategy needs what the problem lacks: a cost, a manual map) it returns
 * QAT_ERR_INVALID with a one-line message saying why (qat_error_set). */
typedef qat_status (*qat_bits_assign_fn)(const qat_bits_problem *p, int *choice);

typedef struct qat_bits_strategy {
    const char *name;         /* what --strategy takes */
    const char *summary;      /* one line for `qat bits --list` */
    bool needs_cost;          /* it reads cost[]: qat bits measures a sensitivity first */
    qat_bits_assign_fn assign;
} qat_bits_strategy;

/* The registry (qat/bits/registry.c): every strategy, NULL-terminated. */
extern const qat_bits_strategy *const qat_bits_strategies[];
/* The strategy of a name, or NULL. */
const qat_bits_strategy *qat_bits_strategy_find(const char *name);

/* Runs a strategy and checks its answer against the problem: a strategy
 * that returns a choice out of range or over the budget is a programmer
 * error (asserted), so every caller gets a valid assignment or a message. */
qat_status qat_bits_assign(const qat_bits_strategy *s, const qat_bits_problem *p, int *choice);

/* Bytes of a rows x cols weight quantized at `bits` with granularity
 * gran/group: the packed codes (qat_packed_size) plus one FP32 scale and one
 * int32 zero point per scale group, as qat_qmodel_bytes counts them. */
uint64_t qat_bits_weight_bytes(int64_t rows, int64_t cols, int bits, qat_granularity gran, int group);

/* The bytes a budget of `avg_bits` average weight bits allows the layers:
 * every layer's codes at avg_bits per weight (rounded up per layer, as
 * packing does) plus its scales and zero points, so uniform b bits meets a
 * budget of b exactly. scale_bytes[l] is layer l's scales and zero points;
 * numel[l] its weight elements. */
uint64_t qat_bits_budget_from_avg(int nlayers, const int64_t *numel, const uint64_t *scale_bytes, double avg_bits);

/* Parses a budget: average weight bits ("3", "2.5"; within 1..8) or a size
 * ("120000B", "120KB", "1.5MB", "0.2MiB"; KB = 1000 bytes, KiB = 1024).
 * Sets *is_bytes and either *avg_bits or *bytes. False on anything else. */
bool qat_bits_budget_parse(const char *text, bool *is_bytes, double *avg_bits, uint64_t *bytes);

/* The allocation unit: "layer" (0) or "rows:N", blocks of N output channels
 * (N in 1..65536). False on anything else. */
bool qat_bits_unit_parse(const char *text, int *unit_rows);
/* Writes "layer" or "rows:N". */
void qat_bits_unit_format(int unit_rows, char *out, size_t size);

/* The sum of the chosen bytes. */
uint64_t qat_bits_total_bytes(const qat_bits_problem *p, const int *choice);
/* The sum of the chosen costs (has_cost only). */
double qat_bits_total_cost(const qat_bits_problem *p, const int *choice);

#endif
