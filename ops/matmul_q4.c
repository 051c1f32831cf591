/* The 4-bit linear layer, CPU reference: plain loops over a weight that is
 * only ever read as codes (see ops/ops_ref.h and ops/q4_format.h). */
#include "ops/ops_ref.h"
#include "ops/q4_format.h"
#include "qat/common.h"

/* W[o][i], from its code and its block's absmax. */
static float weight_at(const qat_q4_weight *w, const float *map, size_t o, size_t i)
{
    int64_t e = (int64_t)(o * (size_t)w->cols + i);
    return qat_q4_dequant(w->type, qat_q4_code_at(w->packed, e), qat_q4_weight_block_absmax(w, map, e / QAT_Q4_BLOCK));
}

void qat_matmul_q4_forward_ref(float *y, const float *x, size_t rows, const qat_q4_weight *w, const float *bias)
{
    size_t out = (size_t)w->rows, in = (size_t)w->cols;
    float map[QAT_Q4_DYNAMIC_LEN];
    qat_q4_dynamic_map(map);
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < out; o++) {
            float acc = 0.0f;
            for (size_t i = 0; i < in; i++) acc += x[r * in + i] * weight_at(w, map, o, i);
            y[r * out + o] = bias ? acc + bias[o] : acc;
        }
}

void qat_matmul_q4_backward_input_ref(float *dx, const float *dy, size_t rows, const qat_q4_weight *w)
{
    size_t out = (size_t)w->rows, in = (size_t)w->cols;
    float map[QAT_Q4_DYNAMIC_LEN];
    qat_q4_dynamic_map(map);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < in; i++) {
            float acc = 0.0f;
            for (size_t o = 0; o < out; o++) acc += dy[r * out + o] * weight_at(w, map, o, i);
            dx[r * in + i] = acc;
        }
}
