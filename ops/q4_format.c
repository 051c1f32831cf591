/* The 4-bit weight format's numbers and encoders; the spec is the comment in
 * ops/q4_format.h. */
#include "ops/q4_format.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qat/common.h"

const float qat_q4_codebook[QAT_Q4_TYPE_COUNT][16] = {
    /* dDequantizeNF4 (create_normal_map(0.9677083) as float32). */
    [QAT_Q4_NF4] = { -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                     -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                     0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                     0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f },
    /* dDequantizeFP4Tree; code 8 is -0.0f as `0.0f * absmax * -1.0f` is. */
    [QAT_Q4_FP4] = { 0.0f, 5.208333333e-03f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f,
                     -0.0f, -5.208333333e-03f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f },
};

/* dQuantizeNF4's tree, flattened: the thresholds in ascending order. */
const float qat_q4_nf4_thresholds[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f,
};

/* dQuantizeFP4's tree on |x|, flattened likewise. */
const float qat_q4_fp4_thresholds[7] = {
    0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f,
};
const uint8_t qat_q4_fp4_by_magnitude[8] = { 0, 1, 6, 7, 4, 5, 2, 3 };

const char *qat_q4_type_name(qat_q4_type type)
{
    QAT_ASSERT(type < QAT_Q4_TYPE_COUNT);
    return type == QAT_Q4_NF4 ? "nf4" : "fp4";
}

/* The trees test `x > t` down a path; with ascending thresholds that is the
 * same as counting the thresholds below x (a NaN counts none, as it fails
 * every test of the tree). */
uint8_t qat_q4_encode(qat_q4_type type, float x)
{
    QAT_ASSERT(type < QAT_Q4_TYPE_COUNT);
    if (type == QAT_Q4_NF4) {
        uint8_t code = 0;
        for (int i = 0; i < 15; i++) code += x > qat_q4_nf4_thresholds[i];
        return code;
    }
    uint8_t sign = x < 0 ? 8 : 0;
    float a = fabsf(x);
    int rank = 0;
    for (int i = 0; i < 7; i++) rank += a > qat_q4_fp4_thresholds[i];
    return (uint8_t)(qat_q4_fp4_by_magnitude[rank] + sign);
}

/* torch.linspace(0.1, 1, steps) in float32 as torch 1.13's x86 CPU kernel
 * computes it (RangeFactoriesKernel.cpp, built with FMA contraction and
 * AVX2's 8-float vectors). Each value is start + step * idx before the middle
 * and end - step * (steps - 1 - idx) from it, each contracted into one fma;
 * but while 16 or more values remain they come as two vectors of 8, and lane
 * j of a vector adds fl(j * step) to its first lane's value (no fma).
 * Without either detail some values (from 9 steps on) are an ulp off torch's,
 * and so are entries of the dynamic map. */
static float linspace_at(float step, int steps, int idx)
{
    const float start = 0.1f, end = 1.0f;
    return idx < steps / 2 ? fmaf(step, (float)idx, start) : fmaf(-step, (float)(steps - idx - 1), end);
}

static void torch_linspace(float *out, int steps)
{
    float step = (1.0f - 0.1f) / (float)(steps - 1);
    int idx = 0;
    for (; idx + 16 <= steps; idx += 16)
        for (int v = idx; v < idx + 16; v += 8) {
            float base = linspace_at(step, steps, v);
            out[v] = base;
            for (int j = 1; j < 8; j++) out[v + j] = base + (float)j * step;
        }
    for (; idx < steps; idx++) out[idx] = linspace_at(step, steps, idx);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void qat_q4_dynamic_map(float map[QAT_Q4_DYNAMIC_LEN])
{
    /* Python's 10 ** (i - 6), which torch rounds to float for the product. */
    static const double power[7] = { 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0 };
    float bounds[65];
    int n = 0;
    for (int i = 0; i < 7; i++) {
        int items = (1 << i) + 1;
        torch_linspace(bounds, items);
        float p = (float)power[i];
        for (int k = 0; k + 1 < items; k++) {
            float mean = (bounds[k] + bounds[k + 1]) / 2.0f;
            map[n++] = p * mean;
            map[n++] = -(p * mean);
        }
    }
    map[n++] = 0.0f;
    map[n++] = 1.0f;
    QAT_ASSERT(n == QAT_Q4_DYNAMIC_LEN);
    qsort(map, QAT_Q4_DYNAMIC_LEN, sizeof *map, cmp_float);
}

uint8_t qat_q4_dynamic_encode(const float code[QAT_Q4_DYNAMIC_LEN], float x)
{
    /* dQuantize<0> of csrc/kernels.cu, statement for statement. */
    int pivot = 127, upper_pivot = 255, lower_pivot = 0;
    float lower = -1.0f, upper = 1.0f;
    float val = code[pivot];
    for (int i = 64; i > 0; i >>= 1) {
        if (x > val) {
            lower_pivot = pivot;
            lower = val;
            pivot += i;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= i;
        }
        val = code[pivot];
    }
    if (upper_pivot == 255) upper = code[upper_pivot];
    if (lower_pivot == 0) lower = code[lower_pivot];
    if (x > val) {
        float midpoint = (upper + val) * 0.5f;
        return (uint8_t)(x > midpoint ? upper_pivot : pivot);
    }
    float midpoint = (lower + val) * 0.5f;
    return (uint8_t)(x < midpoint ? lower_pivot : pivot);
}

float qat_q4_weight_block_absmax(const qat_q4_weight *w, const float *map, int64_t b)
{
    QAT_ASSERT(b >= 0 && b < w->nblocks);
    if (!w->double_quant) return w->absmax[b];
    return qat_q4_absmax_dequant(map, w->absmax_code[b], w->absmax_scale[b / QAT_Q4_DQ_BLOCK], w->absmax_offset);
}

void qat_q4_table_fill(float table[QAT_Q4_TABLE_LEN], qat_q4_type type, float offset)
{
    QAT_ASSERT(type < QAT_Q4_TYPE_COUNT);
    memset(table, 0, QAT_Q4_TABLE_LEN * sizeof *table);
    memcpy(table + QAT_Q4_TABLE_CODEBOOK, qat_q4_codebook[type], 16 * sizeof *table);
    qat_q4_dynamic_map(table + QAT_Q4_TABLE_DYNAMIC);
    table[QAT_Q4_TABLE_OFFSET] = offset;
}
