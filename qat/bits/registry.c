/* Every strategy, one line each, in the order `qat bits --list` shows them.
 * Adding one (docs/bit-strategies.md): define qat_bits_strategy_NAME in
 * qat/bits/NAME.c and add X(NAME) below. */
#include "qat/bits.h"

#define QAT_BITS_STRATEGY_LIST(X)                                              \
    X(uniform)                                                                 \
    X(manual)                                                                  \
    X(rules)                                                                   \
    X(greedy)                                                                  \
    X(hawq)

#define DECLARE(name) extern const qat_bits_strategy qat_bits_strategy_##name;
#define ENTRY(name) &qat_bits_strategy_##name,

QAT_BITS_STRATEGY_LIST(DECLARE)

const qat_bits_strategy *const qat_bits_strategies[] = {QAT_BITS_STRATEGY_LIST(ENTRY) NULL};
