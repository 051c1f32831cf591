/* The 4-bit weight format of QLoRA (Dettmers et al. 2023) as bitsandbytes
 * stores it: the codebooks, how one value is encoded, the 8-bit "dynamic"
 * map of double quantization, and the dequantization formulas. This is the one
 * place these numbers live: the host quantizer (qat/q4.c), the CPU reference
 * of the 4-bit matmul (ops/matmul_q4.c) and, through the table tensor built by
 * qat_q4_table_fill, the shader (shaders/matmul_q4.comp) all read them here.
 *
 * ---- the spec, from bitsandbytes' sources --------------------------------------
 * Read in bitsandbytes-foundation/bitsandbytes: bitsandbytes/functional.py
 * (create_normal_map, create_dynamic_map, quantize_4bit, dequantize_4bit,
 * quantize_blockwise), csrc/kernels.cu and csrc/cuda/blockwise_quantization.cu
 * (dQuantizeNF4, dQuantizeFP4, dDequantizeNF4, dDequantizeFP4Tree, dQuantize,
 * kQuantizeBlockwise, kDequantizeBlockwise), csrc/common.cpp (the CPU 8-bit
 * quantizer) and bitsandbytes/backends/default/ops.py (the torch fallback).
 * qat follows the CUDA kernels, the path QLoRA was trained with.
 *
 * Blockwise 4-bit (kQuantizeBlockwise, blocksize 64, DATA_TYPE NF4 / FP4):
 * - The weight is flattened row-major and cut into blocks of 64 (the last one
 *   may be short). absmax = max |x| over the block's elements (fmaxf from
 *   -FLT_MAX); inv = 1.0f / absmax (float division, CUDA's default IEEE
 *   rounding); each element is encoded from the float product x * inv.
 * - NF4 (dQuantizeNF4): a comparison tree on 15 float thresholds, each `>`
 *   strict, so an exact tie goes to the lower code. The thresholds are
 *   bitsandbytes' literals (16 digits of the midpoints, each `f` literal
 *   rounded once to float as C and CUDA compilers do): each is a float nearest
 *   the exact midpoint of its two codes. Seven midpoints lie halfway between
 *   two floats, where the literal's last digits pick the side; at four of
 *   them (between codes 0|1, 8|9, 12|13, 14|15) that is not the even float,
 *   so fl((c[i] + c[i+1]) * 0.5f) and a literal read through double (as
 *   Python does) are an ulp away from the kernel's threshold there.
 * - FP4 (dQuantizeFP4): sign bit 8 when x < 0, then a tree on |x| with the
 *   literal thresholds 0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f,
 *   0.4166667f, 0.583333f, 0.8333333f, again `>` (ties to the smaller
 *   magnitude). These are the midpoints rounded to the few digits written in
 *   the source, so they differ from the exact float midpoints by 0.3 to 14 ulp:
 *   qat uses the literals, as bitsandbytes does.
 * - A NaN (also 0 * inf from an all-zero block) fails every `>`: code 0 (NF4
 *   -1.0, FP4 +0.0); dequantized with absmax 0 it is zero again.
 * - Packing: element 2j in the high nibble and 2j+1 in the low nibble of byte
 *   j. An odd count leaves a last low nibble, which holds the code of 0.0f *
 *   inv (bitsandbytes' block load pads with 0.0f): NF4 7, FP4 0.
 * - Dequantization (kDequantizeBlockwise): w = code_value * absmax, one float
 *   multiply (dDequantizeFP4Tree's `c * absmax * sign` is the same number).
 *   bitsandbytes' default (torch) backend instead picks argmin |x - code| and
 *   clamps to [-1, 1]; it can differ from the trees by one code at ulp-level
 *   near-ties.
 *
 * Double quantization (quantize_4bit with compress_statistics=True):
 *   offset = absmax.mean(); absmax -= offset;
 *   qabsmax, state2 = quantize_blockwise(absmax, code=create_dynamic_map(), blocksize=256)
 * and dequantize_4bit undoes it as dequantize_blockwise(qabsmax, state2) +
 * offset, i.e. absmax' = fl(fl(dyn[code] * scale) + offset) with scale the
 * F32 absmax of each block of 256 centred values.
 * - The mean is a float32 torch reduction whose summation order depends on the
 *   device (CUDA tree, CPU cascade); qat computes the correctly rounded mean
 *   (a double sum, one rounding), which agrees with torch's to an ulp or two.
 * - The 8-bit code (dQuantize<0>, CUDA): x = centred * (1.0f / scale), then a
 *   7-step binary search from pivot 127 over the sorted 256-value map with
 *   `x > code[pivot]`; the last probe p is always even. Then, if x > code[p],
 *   p + 1 when x > fl((code[p] + code[p+1]) * 0.5f), else p; otherwise p - 1
 *   when x < fl((code[p-1] + code[p]) * 0.5f), else p. So an exact tie goes to
 *   the even index of the pair, not always the lower one. bitsandbytes' CPU
 *   path (csrc/common.cpp) divides by the scale instead, and breaks ties to
 *   the lower index (`dist_right < dist_left`); the torch fallback uses argmin.
 *   qat follows CUDA.
 * - The dynamic map (create_dynamic_map(signed=True, 7 exponent bits)): for
 *   i = 0..6 the midpoints m of torch.linspace(0.1, 1, 2^i + 1) (float32),
 *   times float(10^(i-6)), both signs; plus 0 and 1.0; sorted. 127 negative
 *   values, 0 at index 127, 127 positive ones below 1, and 1.0 at 255 (the most
 *   negative is about -0.993, so -1 has no code). Its exact float values depend
 *   on how torch's CPU linspace rounds; qat reproduces torch 1.13's x86 kernel
 *   bit for bit (see qat_q4_dynamic_map) and the fixture test checks it.
 *
 * FP4 (e2m1 with bitsandbytes' bias, values divided by 12) dequantization
 * table, dDequantizeFP4Tree, code 0..7 (8..15 the same, negated):
 *   0, 0.0052083333 (= 0.0625/12), 0.66666667, 1, 0.33333333, 0.5,
 *   0.16666667, 0.25
 */
#ifndef QAT_Q4_FORMAT_H
#define QAT_Q4_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

typedef enum qat_q4_type { QAT_Q4_NF4, QAT_Q4_FP4, QAT_Q4_TYPE_COUNT } qat_q4_type;

#define QAT_Q4_BLOCK 64     /* weights per absmax */
#define QAT_Q4_DQ_BLOCK 256 /* absmax values per double-quantization scale */
#define QAT_Q4_DYNAMIC_LEN 256

/* The F32 table a 4-bit layer carries on the device: its codebook, the
 * dynamic map and the double-quantization offset (0 without), padded to
 * whole vec4 texels. */
enum {
    QAT_Q4_TABLE_CODEBOOK = 0,
    QAT_Q4_TABLE_DYNAMIC = 16,
    QAT_Q4_TABLE_OFFSET = QAT_Q4_TABLE_DYNAMIC + QAT_Q4_DYNAMIC_LEN,
    QAT_Q4_TABLE_LEN = QAT_Q4_TABLE_OFFSET + 4,
};

/* Code c (0..15) dequantizes to qat_q4_codebook[type][c] * absmax. */
extern const float qat_q4_codebook[QAT_Q4_TYPE_COUNT][16];
/* NF4: the 15 decision thresholds, ascending; code = number of them below x. */
extern const float qat_q4_nf4_thresholds[15];
/* FP4: the 7 thresholds on |x|, ascending; qat_q4_fp4_by_magnitude[r] is the
 * code (sign bit clear) of the r-th smallest magnitude. */
extern const float qat_q4_fp4_thresholds[7];
extern const uint8_t qat_q4_fp4_by_magnitude[8];

const char *qat_q4_type_name(qat_q4_type type); /* "nf4", "fp4" */

/* The 4-bit code of one normalized value (x already multiplied by 1/absmax). */
uint8_t qat_q4_encode(qat_q4_type type, float x);

/* bitsandbytes' create_dynamic_map(signed=True) as torch computes it. */
void qat_q4_dynamic_map(float map[QAT_Q4_DYNAMIC_LEN]);
/* The 8-bit code of x in a sorted 256-value map, by the CUDA kernel's binary
 * search and tie rule (dQuantize<0>). */
uint8_t qat_q4_dynamic_encode(const float map[QAT_Q4_DYNAMIC_LEN], float x);

/* One absmax back from double quantization: fl(fl(map[code] * scale) + offset). */
static inline float qat_q4_absmax_dequant(const float *map, uint8_t code, float scale, float offset)
{
    float v = map[code] * scale;
    return v + offset;
}

/* One weight: fl(codebook value * absmax). */
static inline float qat_q4_dequant(qat_q4_type type, uint8_t code, float absmax)
{
    return qat_q4_codebook[type][code & 15] * absmax;
}

/* Code of element i of a packed array (high nibble first). */
static inline uint8_t qat_q4_code_at(const uint8_t *packed, int64_t i)
{
    uint8_t byte = packed[i >> 1];
    return (i & 1) ? (byte & 15) : (byte >> 4);
}

/* A quantized (out, in) weight on the host: the codes and either the F32
 * absmax per block or its double-quantized triple. Filled by qat/q4.h. */
typedef struct qat_q4_weight {
    qat_q4_type type;
    int64_t rows, cols;    /* out, in */
    int64_t nblocks;       /* ceil(rows * cols / 64) */
    int64_t nscales;       /* ceil(nblocks / 256) with double quantization, else 0 */
    bool double_quant;
    uint8_t *packed;       /* (ceil(rows * cols / 2)) */
    float *absmax;         /* (nblocks) without double quantization, else NULL */
    uint8_t *absmax_code;  /* (nblocks) with double quantization, else NULL */
    float *absmax_scale;   /* (nscales) with double quantization, else NULL */
    float absmax_offset;   /* the mean subtracted before double quantization */
} qat_q4_weight;

/* Absmax of block b, dequantized when double-quantized (map: the dynamic map,
 * only read then). */
float qat_q4_weight_block_absmax(const qat_q4_weight *w, const float *map, int64_t b);

/* The device table (QAT_Q4_TABLE_LEN floats) for a weight of this type and
 * offset (0 without double quantization). */
void qat_q4_table_fill(float table[QAT_Q4_TABLE_LEN], qat_q4_type type, float offset);

#endif
