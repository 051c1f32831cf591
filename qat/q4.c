/* Host side of the 4-bit weights: quantization, double quantization, the
 * weight struct and its graph tensors. Arithmetic as in ops/q4_format.h. */
#include "qat/q4.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t qat_q4_packed_bytes(int64_t n) { return (n + 1) / 2; }
int64_t qat_q4_block_count(int64_t n) { return (n + QAT_Q4_BLOCK - 1) / QAT_Q4_BLOCK; }
int64_t qat_q4_scale_count(int64_t nblocks) { return (nblocks + QAT_Q4_DQ_BLOCK - 1) / QAT_Q4_DQ_BLOCK; }

/* max |x| over a block, as the kernel's fmaxf reduction from -FLT_MAX. */
static float block_absmax(const float *x, int64_t n)
{
    float m = -FLT_MAX;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

void qat_q4_quantize(qat_q4_type type, const float *x, int64_t n, uint8_t *packed, float *absmax)
{
    QAT_ASSERT(n > 0 && type < QAT_Q4_TYPE_COUNT);
    memset(packed, 0, (size_t)qat_q4_packed_bytes(n));
    for (int64_t b = 0; b < qat_q4_block_count(n); b++) {
        int64_t begin = b * QAT_Q4_BLOCK, end = begin + QAT_Q4_BLOCK < n ? begin + QAT_Q4_BLOCK : n;
        float m = block_absmax(x + begin, end - begin);
        absmax[b] = m;
        /* An all-zero block gives inf, and 0 * inf a NaN, which encodes to
         * code 0 as in bitsandbytes; dequantized with absmax 0 it is zero. */
        float inv = 1.0f / m;
        for (int64_t i = begin; i < end; i++) {
            uint8_t code = qat_q4_encode(type, x[i] * inv);
            packed[i >> 1] |= (i & 1) ? code : (uint8_t)(code << 4);
        }
        if ((end & 1) && end == n) packed[end >> 1] |= qat_q4_encode(type, 0.0f * inv);
    }
}

void qat_q4_dequantize(qat_q4_type type, const uint8_t *packed, const float *absmax, int64_t n, float *x)
{
    QAT_ASSERT(n > 0 && type < QAT_Q4_TYPE_COUNT);
    for (int64_t i = 0; i < n; i++) x[i] = qat_q4_dequant(type, qat_q4_code_at(packed, i), absmax[i / QAT_Q4_BLOCK]);
}

float qat_q4_absmax_mean(const float *absmax, int64_t nblocks)
{
    QAT_ASSERT(nblocks > 0);
    double sum = 0;
    for (int64_t b = 0; b < nblocks; b++) sum += absmax[b];
    return (float)(sum / (double)nblocks);
}

void qat_q4_double_quantize(const float *absmax, int64_t nblocks, float offset, uint8_t *codes, float *scales)
{
    QAT_ASSERT(nblocks > 0);
    float map[QAT_Q4_DYNAMIC_LEN];
    qat_q4_dynamic_map(map);
    float centred[QAT_Q4_DQ_BLOCK];
    for (int64_t s = 0; s < qat_q4_scale_count(nblocks); s++) {
        int64_t begin = s * QAT_Q4_DQ_BLOCK;
        int64_t count = nblocks - begin < QAT_Q4_DQ_BLOCK ? nblocks - begin : QAT_Q4_DQ_BLOCK;
        for (int64_t i = 0; i < count; i++) centred[i] = absmax[begin + i] - offset;
        float m = block_absmax(centred, count);
        scales[s] = m;
        float inv = 1.0f / m;
        for (int64_t i = 0; i < count; i++) codes[begin + i] = qat_q4_dynamic_encode(map, centred[i] * inv);
    }
}

void qat_q4_double_dequantize(const uint8_t *codes, const float *scales, float offset, int64_t nblocks,
                              float *absmax)
{
    float map[QAT_Q4_DYNAMIC_LEN];
    qat_q4_dynamic_map(map);
    for (int64_t b = 0; b < nblocks; b++)
        absmax[b] = qat_q4_absmax_dequant(map, codes[b], scales[b / QAT_Q4_DQ_BLOCK], offset);
}

void qat_q4_weight_init(qat_q4_weight *w, qat_q4_type type, int64_t rows, int64_t cols, bool double_quant)
{
    QAT_ASSERT(type < QAT_Q4_TYPE_COUNT && rows > 0 && cols > 0);
    memset(w, 0, sizeof *w);
    w->type = type;
    w->rows = rows;
    w->cols = cols;
    w->nblocks = qat_q4_block_count(rows * cols);
    w->double_quant = double_quant;
    w->packed = qat_xcalloc((size_t)qat_q4_packed_bytes(rows * cols), 1);
    if (double_quant) {
        w->nscales = qat_q4_scale_count(w->nblocks);
        w->absmax_code = qat_xcalloc((size_t)w->nblocks, 1);
        w->absmax_scale = qat_xcalloc((size_t)w->nscales, sizeof *w->absmax_scale);
    } else {
        w->absmax = qat_xcalloc((size_t)w->nblocks, sizeof *w->absmax);
    }
}

void qat_q4_weight_free(qat_q4_weight *w)
{
    if (!w) return;
    free(w->packed);
    free(w->absmax);
    free(w->absmax_code);
    free(w->absmax_scale);
    memset(w, 0, sizeof *w);
}

void qat_q4_weight_quantize(qat_q4_weight *w, const float *weight)
{
    if (!w->double_quant) {
        qat_q4_quantize(w->type, weight, w->rows * w->cols, w->packed, w->absmax);
        return;
    }
    float *absmax = qat_xmalloc((size_t)w->nblocks * sizeof *absmax);
    qat_q4_quantize(w->type, weight, w->rows * w->cols, w->packed, absmax);
    w->absmax_offset = qat_q4_absmax_mean(absmax, w->nblocks);
    qat_q4_double_quantize(absmax, w->nblocks, w->absmax_offset, w->absmax_code, w->absmax_scale);
    free(absmax);
}

void qat_q4_weight_absmax(const qat_q4_weight *w, float *absmax)
{
    if (w->double_quant)
        qat_q4_double_dequantize(w->absmax_code, w->absmax_scale, w->absmax_offset, w->nblocks, absmax);
    else
        memcpy(absmax, w->absmax, (size_t)w->nblocks * sizeof *absmax);
}

void qat_q4_weight_dequantize(const qat_q4_weight *w, float *weight)
{
    float *absmax = qat_xmalloc((size_t)w->nblocks * sizeof *absmax);
    qat_q4_weight_absmax(w, absmax);
    qat_q4_dequantize(w->type, w->packed, absmax, w->rows * w->cols, weight);
    free(absmax);
}

static uint64_t aligned(uint64_t bytes) { return (bytes + QAT_BUFFER_ALIGN - 1) / QAT_BUFFER_ALIGN * QAT_BUFFER_ALIGN; }

uint64_t qat_q4_weight_device_bytes(const qat_q4_weight *w)
{
    uint64_t bytes = aligned((uint64_t)qat_q4_packed_bytes(w->rows * w->cols));
    bytes += aligned((uint64_t)w->nblocks * (w->double_quant ? 1 : sizeof(float)));
    if (w->double_quant) bytes += aligned((uint64_t)w->nscales * sizeof(float));
    return bytes + aligned(QAT_Q4_TABLE_LEN * sizeof(float));
}

qat_q4_weight_tensors qat_q4_weight_add(qat_graph *g, const char *name, qat_q4_type type, int64_t out, int64_t in,
                                        bool double_quant)
{
    QAT_ASSERT(type < QAT_Q4_TYPE_COUNT && out > 0 && in > 0);
    qat_q4_weight_tensors t = { .type = type, .out = out, .in = in, .double_quant = double_quant, .scales = -1 };
    char sub[96];
    int64_t bytes = qat_q4_packed_bytes(out * in), nblocks = qat_q4_block_count(out * in);
    t.packed = qat_tensor_new(g, name, QAT_U8, 1, &bytes, QAT_STORE_PARAM);
    snprintf(sub, sizeof sub, "%s.absmax", name);
    if (double_quant) {
        t.absmax = qat_tensor_new(g, sub, QAT_U8, 1, &nblocks, QAT_STORE_PARAM);
        int64_t nscales = qat_q4_scale_count(nblocks);
        snprintf(sub, sizeof sub, "%s.nested_absmax", name);
        t.scales = qat_param(g, sub, 1, &nscales, false);
    } else {
        t.absmax = qat_param(g, sub, 1, &nblocks, false);
    }
    int64_t table_len = QAT_Q4_TABLE_LEN;
    snprintf(sub, sizeof sub, "%s.q4_table", name);
    t.table = qat_param(g, sub, 1, &table_len, false);
    return t;
}

qat_status qat_q4_weight_upload(qat_graph *g, const qat_q4_weight_tensors *t, const qat_q4_weight *w)
{
    QAT_ASSERT_MSG(w->type == (qat_q4_type)t->type && w->rows == t->out && w->cols == t->in &&
                       w->double_quant == t->double_quant,
                   "4-bit weight does not match its tensors");
    QAT_TRY(qat_tensor_write(g, t->packed, w->packed));
    QAT_TRY(qat_tensor_write(g, t->absmax, w->double_quant ? (const void *)w->absmax_code : w->absmax));
    if (w->double_quant) QAT_TRY(qat_tensor_write(g, t->scales, w->absmax_scale));
    float table[QAT_Q4_TABLE_LEN];
    qat_q4_table_fill(table, w->type, w->double_quant ? w->absmax_offset : 0.0f);
    return qat_tensor_write(g, t->table, table);
}
