/* Batched matmul with optional transposes: reference forward and backward.
 * See ops_ref.h for the contract; this file is the spec the shaders follow. */
#include "ops/ops_ref.h"

#include "qat/common.h"

static void check_dims(const qat_matmul_dims *d)
{
    QAT_ASSERT(d != NULL);
    /* Overlapping batch entries would make the gradient of a shared element a
     * sum over entries that a plain gather per stored element cannot see. */
    QAT_ASSERT_MSG(d->stride_a == 0 || d->stride_a >= d->m * d->k, "matmul: A batch entries overlap");
    QAT_ASSERT_MSG(d->stride_b == 0 || d->stride_b >= d->k * d->n, "matmul: B batch entries overlap");
}

static size_t span(size_t batch, size_t stride, size_t size)
{
    if (stride == 0 || batch == 0) return size;
    return (batch - 1) * stride + size;
}

size_t qat_matmul_a_span(const qat_matmul_dims *d)
{
    check_dims(d);
    return span(d->batch, d->stride_a, d->m * d->k);
}

size_t qat_matmul_b_span(const qat_matmul_dims *d)
{
    check_dims(d);
    return span(d->batch, d->stride_b, d->k * d->n);
}

/* Offset of opA_b(i, p) (logical (m, k)) within a. */
static size_t a_index(const qat_matmul_dims *d, size_t b, size_t i, size_t p)
{
    return b * d->stride_a + (d->trans_a ? p * d->m + i : i * d->k + p);
}

/* Offset of opB_b(p, j) (logical (k, n)) within b. */
static size_t b_index(const qat_matmul_dims *d, size_t b, size_t p, size_t j)
{
    return b * d->stride_b + (d->trans_b ? j * d->k + p : p * d->n + j);
}

void qat_matmul_forward_ref(float *c,       /* (batch, m, n) */
                            const float *a, /* qat_matmul_a_span(d) */
                            const float *b, /* qat_matmul_b_span(d) */
                            const qat_matmul_dims *d)
{
    check_dims(d);
    for (size_t bi = 0; bi < d->batch; bi++)
        for (size_t i = 0; i < d->m; i++)
            for (size_t j = 0; j < d->n; j++) {
                float acc = 0.0f;
                for (size_t p = 0; p < d->k; p++)
                    acc += a[a_index(d, bi, i, p)] * b[b_index(d, bi, p, j)];
                c[(bi * d->m + i) * d->n + j] = acc;
            }
}

void qat_matmul_backward_ref(float *da,       /* like a, or NULL */
                             float *db,       /* like b, or NULL */
                             const float *dc, /* (batch, m, n) */
                             const float *a,  /* qat_matmul_a_span(d) */
                             const float *b,  /* qat_matmul_b_span(d) */
                             const qat_matmul_dims *d, bool accumulate)
{
    check_dims(d);
    /* A stored matrix number `s` receives the gradient of batch entries
     * s + e for e in [0, entries): itself only, or every entry when it is
     * broadcast (stride 0). The same for B. */
    if (da) {
        size_t stored = d->stride_a ? d->batch : 1;
        size_t entries = d->stride_a ? 1 : d->batch;
        for (size_t s = 0; s < stored; s++)
            for (size_t i = 0; i < d->m; i++)
                for (size_t p = 0; p < d->k; p++) {
                    /* dopA(i, p) = sum_j dC(i, j) opB(p, j) */
                    float acc = 0.0f;
                    for (size_t e = 0; e < entries; e++) {
                        size_t bi = s + e;
                        for (size_t j = 0; j < d->n; j++)
                            acc += dc[(bi * d->m + i) * d->n + j] * b[b_index(d, bi, p, j)];
                    }
                    float *dst = &da[a_index(d, s, i, p)];
                    *dst = accumulate ? *dst + acc : acc;
                }
    }
    if (db) {
        size_t stored = d->stride_b ? d->batch : 1;
        size_t entries = d->stride_b ? 1 : d->batch;
        for (size_t s = 0; s < stored; s++)
            for (size_t p = 0; p < d->k; p++)
                for (size_t j = 0; j < d->n; j++) {
                    /* dopB(p, j) = sum_i opA(i, p) dC(i, j) */
                    float acc = 0.0f;
                    for (size_t e = 0; e < entries; e++) {
                        size_t bi = s + e;
                        for (size_t i = 0; i < d->m; i++)
                            acc += a[a_index(d, bi, i, p)] * dc[(bi * d->m + i) * d->n + j];
                    }
                    float *dst = &db[b_index(d, s, p, j)];
                    *dst = accumulate ? *dst + acc : acc;
                }
    }
}
