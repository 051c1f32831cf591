/* Host-side quantization numerics: code grids, quantization parameters from
 * ranges (PyTorch's observer rules), quantizing and dequantizing weights, and
 * packing codes for checkpoints. The device side is the fake-quant op
 * (ops/fake_quant.c); both round the same way, see
 * ../shared/reference/quant-numerics.md.
 *
 * Codes are unsigned, in [0, 2^bits - 1], with a zero point in code units:
 * real value = (code - zero_point) * scale. A symmetric grid has zero point
 * 2^(bits - 1) (codes -2^(b-1) .. 2^(b-1) - 1 around it). */
#ifndef QAT_QUANT_H
#define QAT_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"
#include "qat/common.h"

#define QAT_QBITS_MIN 2
#define QAT_QBITS_MAX 8

typedef enum qat_granularity { QAT_GRAN_TENSOR, QAT_GRAN_CHANNEL, QAT_GRAN_GROUP } qat_granularity;

/* Mixed precision inside a layer: consecutive runs of output channels
 * (rows), each at its own width. Written "2x16+3x112": 16 rows at 2 bits,
 * then 112 rows at 3. Each row keeps its own scales (per channel or per
 * group), so a row's width only changes its code grid; per-tensor scales
 * cannot mix. */
#define QAT_MAX_BIT_RUNS 64
#define QAT_BIT_RUNS_TEXT_MAX 800
typedef struct qat_bit_runs {
    int count;              /* 0: every row at the scheme's bits */
    uint8_t bits[QAT_MAX_BIT_RUNS];
    int32_t rows[QAT_MAX_BIT_RUNS];
} qat_bit_runs;

typedef struct qat_qscheme {
    int bits;               /* QAT_QBITS_MIN .. QAT_QBITS_MAX; with runs, the widest run's */
    bool symmetric;         /* zero point fixed at 2^(bits - 1) */
    qat_granularity gran;
    int group;              /* QAT_GRAN_GROUP: consecutive elements of a row per scale */
    qat_bit_runs runs;      /* per-row widths (count 0: none); never with QAT_GRAN_TENSOR */
} qat_qscheme;

static inline int32_t qat_qmax(int bits) { return (1 << bits) - 1; }

/* The width of row `row` (s->bits without runs). */
int qat_qscheme_row_bits(const qat_qscheme *s, int64_t row);
/* Parses "BxN+BxN+..." (B in 2..8, N >= 1, at most QAT_MAX_BIT_RUNS runs;
 * neighbouring runs of one width are merged). A plain "B" is not runs. */
bool qat_bit_runs_parse(const char *text, qat_bit_runs *runs);
/* Writes the text qat_bit_runs_parse reads (QAT_BIT_RUNS_TEXT_MAX is enough). */
void qat_bit_runs_format(const qat_bit_runs *runs, char *out, size_t size);
int64_t qat_bit_runs_rows(const qat_bit_runs *runs);
int qat_bit_runs_max_bits(const qat_bit_runs *runs);
/* Appends rows at a width, merging with the last run when it has that width;
 * false when QAT_MAX_BIT_RUNS runs would not hold it. */
bool qat_bit_runs_append(qat_bit_runs *runs, int bits, int64_t rows);
/* The mean width over the rows, weighted by row. */
double qat_bit_runs_mean_bits(const qat_bit_runs *runs);

/* A weight is viewed as rows x cols: rows are the output channels (axis 0),
 * cols everything else (in, or in * kh * kw). Per tensor: one scale; per
 * channel: one per row; per group: ceil(cols / group) per row, row-major. */
int64_t qat_qscheme_scale_count(const qat_qscheme *s, int64_t rows, int64_t cols);
qat_fq_layout qat_qscheme_layout(const qat_qscheme *s, int64_t rows, int64_t cols);
/* "tensor", "channel", "group:G" (G in 1..65536); false if malformed. */
bool qat_granularity_parse(const char *text, qat_granularity *gran, int *group);
/* Writes "tensor", "channel" or "group:G". */
void qat_granularity_format(qat_granularity gran, int group, char *out, size_t size);

/* PyTorch's observer rules for a range [lo, hi] (widened to include 0):
 *   affine:    scale = max((hi - lo) / qmax, FLT_EPSILON),
 *              zero_point = clamp(0 - round(lo / scale), 0, qmax)
 *   symmetric: scale = max(max(-lo, hi) / (qmax / 2), FLT_EPSILON),
 *              zero_point = 2^(bits - 1)
 * with qmax = 2^bits - 1 (and round half to even). */
void qat_qparams_from_range(float lo, float hi, int bits, bool symmetric, float *scale, int32_t *zero_point);

/* code = clamp(zero_point + roundEven(x * (1.0f / scale)), 0, qmax): the
 * same arithmetic as the fake-quant op. scale / zero_point hold
 * qat_qscheme_scale_count elements. */
void qat_quantize_weight(const float *w, int64_t rows, int64_t cols, const qat_qscheme *s, const float *scale,
                         const int32_t *zero_point, uint8_t *codes);
/* w = (code - zero_point) * scale, in float. */
void qat_dequantize_weight(const uint8_t *codes, int64_t rows, int64_t cols, const qat_qscheme *s,
                           const float *scale, const int32_t *zero_point, float *w);

/* Checkpoint packing (qat-quant-v2): the codes as one bit stream, `bits`
 * bits each, most significant bit first, zero-padded to a whole byte. At 4
 * bits element 2j is the high nibble of byte j; at 8 bits one code per
 * byte; at 2, 3, 5, 6 and 7 bits nothing is wasted, so a model's bytes fall
 * with every bit a layer gives up (mixed precision, qat/bits.h). */
size_t qat_packed_size(int64_t count, int bits);
/* A rows x cols weight's codes under a scheme: with runs, each row's codes at
 * its own width, one stream across the rows. */
size_t qat_qscheme_packed_size(const qat_qscheme *s, int64_t rows, int64_t cols);
void qat_pack_weight_codes(const uint8_t *codes, int64_t rows, int64_t cols, const qat_qscheme *s, uint8_t *packed);
qat_status qat_unpack_weight_codes(const uint8_t *packed, size_t packed_bytes, int64_t rows, int64_t cols,
                                   const qat_qscheme *s, uint8_t *codes, const char *what);
void qat_pack_codes(const uint8_t *codes, int64_t count, int bits, uint8_t *packed);
/* Fails (QAT_ERR_FORMAT, naming `what`) if the size is wrong or the padding
 * bits are not 0. */
qat_status qat_unpack_codes(const uint8_t *packed, size_t packed_bytes, int64_t count, int bits, uint8_t *codes,
                            const char *what);
/* qat-quant-v1 checkpoints: at 4 bits or fewer two codes per byte (element
 * 2j in the high nibble), above 4 bits one code per byte. Read only. */
size_t qat_packed_size_v1(int64_t count, int bits);
qat_status qat_unpack_codes_v1(const uint8_t *packed, size_t packed_bytes, int64_t count, int bits, uint8_t *codes,
                               const char *what);

#endif
