/* Token embedding lookup: reference forward and backward (see ops_ref.h). */
#include "ops/ops_ref.h"

#include "qat/common.h"

static size_t checked_id(const int32_t *ids, size_t t, size_t vocab)
{
    QAT_ASSERT_MSG(ids[t] >= 0 && (size_t)ids[t] < vocab, "embedding: token id out of range");
    return (size_t)ids[t];
}

void qat_embedding_forward_ref(float *y,           /* (n, dim) */
                               const float *table, /* (vocab, dim) */
                               const int32_t *ids, /* (n) */
                               size_t n, size_t vocab, size_t dim)
{
    for (size_t t = 0; t < n; t++) {
        const float *row = table + checked_id(ids, t, vocab) * dim;
        for (size_t c = 0; c < dim; c++) y[t * dim + c] = row[c];
    }
}

/* A gather over table rows (each row scans the tokens in order) rather than
 * a scatter-add over tokens: the order of each sum is then fixed by the
 * token order alone, which is how the shader does it without atomics. */
void qat_embedding_backward_ref(float *dtable,      /* (vocab, dim) */
                                const float *dy,    /* (n, dim) */
                                const int32_t *ids, /* (n) */
                                size_t n, size_t vocab, size_t dim)
{
    for (size_t t = 0; t < n; t++) checked_id(ids, t, vocab);
    for (size_t v = 0; v < vocab; v++)
        for (size_t c = 0; c < dim; c++) {
            float acc = 0.0f;
            for (size_t t = 0; t < n; t++)
                if ((size_t)ids[t] == v) acc += dy[t * dim + c];
            dtable[v * dim + c] = acc;
        }
}
