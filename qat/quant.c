/* Host-side quantization numerics; see qat/quant.h and
 * ../shared/reference/quant-numerics.md. Everything that produces a code or a
 * parameter is float arithmetic in the order PyTorch uses (the build's
 * -std=c11 turns off floating-point contraction, so a * b + c is never fused). */
#include "qat/quant.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void check_scheme(const qat_qscheme *s)
{
    QAT_ASSERT(s);
    QAT_ASSERT(s->bits >= QAT_QBITS_MIN && s->bits <= QAT_QBITS_MAX);
    QAT_ASSERT(s->gran == QAT_GRAN_TENSOR || s->gran == QAT_GRAN_CHANNEL || s->gran == QAT_GRAN_GROUP);
    QAT_ASSERT(s->gran != QAT_GRAN_GROUP || s->group >= 1);
}

static int64_t groups_per_row(int64_t cols, int group) { return (cols + group - 1) / group; }

int64_t qat_qscheme_scale_count(const qat_qscheme *s, int64_t rows, int64_t cols)
{
    check_scheme(s);
    QAT_ASSERT(rows >= 0 && cols >= 0);
    switch (s->gran) {
    case QAT_GRAN_TENSOR: return 1;
    case QAT_GRAN_CHANNEL: return rows;
    case QAT_GRAN_GROUP: return rows * groups_per_row(cols, s->group);
    }
    return 0;
}

/* The fields as ops/ops.h describes them (filled here directly rather than
 * through qat_fq_per_*, which live in ops/fake_quant.c). */
qat_fq_layout qat_qscheme_layout(const qat_qscheme *s, int64_t rows, int64_t cols)
{
    check_scheme(s);
    QAT_ASSERT(rows >= 0 && cols >= 0);
    qat_fq_layout l = {0, 0, 0, 0};
    switch (s->gran) {
    case QAT_GRAN_TENSOR:
        l.inner = rows * cols;
        l.channels = 1;
        break;
    case QAT_GRAN_CHANNEL:
        l.inner = cols;
        l.channels = rows;
        break;
    case QAT_GRAN_GROUP:
        l.row = cols;
        l.group = s->group;
        break;
    }
    return l;
}

bool qat_granularity_parse(const char *text, qat_granularity *gran, int *group)
{
    QAT_ASSERT(text && gran && group);
    if (strcmp(text, "tensor") == 0) {
        *gran = QAT_GRAN_TENSOR;
        *group = 0;
        return true;
    }
    if (strcmp(text, "channel") == 0) {
        *gran = QAT_GRAN_CHANNEL;
        *group = 0;
        return true;
    }
    if (strncmp(text, "group:", 6) != 0) return false;
    const char *p = text + 6;
    if (*p == '\0') return false;
    long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
        if (v > 65536) return false;
    }
    if (v < 1) return false;
    *gran = QAT_GRAN_GROUP;
    *group = (int)v;
    return true;
}

void qat_granularity_format(qat_granularity gran, int group, char *out, size_t size)
{
    QAT_ASSERT(out && size > 0);
    switch (gran) {
    case QAT_GRAN_TENSOR: snprintf(out, size, "tensor"); return;
    case QAT_GRAN_CHANNEL: snprintf(out, size, "channel"); return;
    case QAT_GRAN_GROUP: snprintf(out, size, "group:%d", group); return;
    }
    QAT_ASSERT_MSG(0, "unknown granularity");
}

void qat_qparams_from_range(float lo, float hi, int bits, bool symmetric, float *scale, int32_t *zero_point)
{
    QAT_ASSERT(bits >= QAT_QBITS_MIN && bits <= QAT_QBITS_MAX);
    QAT_ASSERT(scale && zero_point);
    QAT_ASSERT(isfinite(lo) && isfinite(hi) && lo <= hi);
    const int32_t qmax = qat_qmax(bits);
    if (lo > 0.0f) lo = 0.0f;
    if (hi < 0.0f) hi = 0.0f;
    if (symmetric) {
        float m = -lo > hi ? -lo : hi;
        float s = m / ((float)qmax / 2.0f);
        *scale = s > FLT_EPSILON ? s : FLT_EPSILON;
        *zero_point = 1 << (bits - 1);
        return;
    }
    float s = (hi - lo) / (float)qmax;
    if (!(s > FLT_EPSILON)) s = FLT_EPSILON; /* also catches inf - inf, never reached with finite inputs */
    /* lo / s lies in [-qmax, 0] up to rounding, so the conversion is safe. */
    float r = nearbyintf(lo / s);
    int32_t z = (int32_t)(0.0f - r);
    if (z < 0) z = 0;
    if (z > qmax) z = qmax;
    *scale = s;
    *zero_point = z;
}

/* Which scale element element (r, c) uses. */
static inline int64_t scale_index(const qat_qscheme *s, int64_t r, int64_t c, int64_t gpr)
{
    switch (s->gran) {
    case QAT_GRAN_TENSOR: return 0;
    case QAT_GRAN_CHANNEL: return r;
    case QAT_GRAN_GROUP: return r * gpr + c / s->group;
    }
    return 0;
}

/* code = clamp(z + roundEven(x * (1/s)), 0, qmax), the addition in float as
 * PyTorch's kernel does (int64 zero point + float). The clamp happens in float
 * so an out-of-range or infinite product never reaches an integer conversion. */
static inline uint8_t quantize_one(float x, float inv, int32_t z, int32_t qmax)
{
    float qf = (float)z + nearbyintf(x * inv);
    if (!(qf >= 0.0f)) return 0; /* also NaN */
    if (qf >= (float)qmax) return (uint8_t)qmax;
    return (uint8_t)(int32_t)qf;
}

void qat_quantize_weight(const float *w, int64_t rows, int64_t cols, const qat_qscheme *s, const float *scale,
                         const int32_t *zero_point, uint8_t *codes)
{
    check_scheme(s);
    QAT_ASSERT(rows >= 0 && cols >= 0);
    QAT_ASSERT((w && scale && zero_point && codes) || rows * cols == 0);
    const int32_t qmax = qat_qmax(s->bits);
    const int64_t gpr = s->gran == QAT_GRAN_GROUP ? groups_per_row(cols, s->group) : 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t c = 0;
        while (c < cols) {
            /* A run of columns sharing one scale element. */
            int64_t k = scale_index(s, r, c, gpr);
            int64_t end = s->gran == QAT_GRAN_GROUP ? c + s->group : cols;
            if (end > cols) end = cols;
            const float inv = 1.0f / scale[k];
            const int32_t z = zero_point[k];
            for (; c < end; c++) codes[r * cols + c] = quantize_one(w[r * cols + c], inv, z, qmax);
        }
    }
}

void qat_dequantize_weight(const uint8_t *codes, int64_t rows, int64_t cols, const qat_qscheme *s,
                           const float *scale, const int32_t *zero_point, float *w)
{
    check_scheme(s);
    QAT_ASSERT(rows >= 0 && cols >= 0);
    QAT_ASSERT((w && scale && zero_point && codes) || rows * cols == 0);
    const int64_t gpr = s->gran == QAT_GRAN_GROUP ? groups_per_row(cols, s->group) : 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t c = 0;
        while (c < cols) {
            int64_t k = scale_index(s, r, c, gpr);
            int64_t end = s->gran == QAT_GRAN_GROUP ? c + s->group : cols;
            if (end > cols) end = cols;
            const float sc = scale[k];
            const int32_t z = zero_point[k];
            for (; c < end; c++) w[r * cols + c] = (float)((int32_t)codes[r * cols + c] - z) * sc;
        }
    }
}

size_t qat_packed_size(int64_t count, int bits)
{
    QAT_ASSERT(count >= 0);
    QAT_ASSERT(bits >= QAT_QBITS_MIN && bits <= QAT_QBITS_MAX);
    return (size_t)((count * bits + 7) / 8);
}

void qat_pack_codes(const uint8_t *codes, int64_t count, int bits, uint8_t *packed)
{
    QAT_ASSERT(count >= 0);
    QAT_ASSERT(bits >= QAT_QBITS_MIN && bits <= QAT_QBITS_MAX);
    QAT_ASSERT((codes && packed) || count == 0);
    const int32_t qmax = qat_qmax(bits);
    /* Codes enter at the bottom of a bit accumulator; whole bytes leave from
     * its top, so the first code lands in the most significant bits. */
    uint32_t acc = 0;
    int have = 0;
    size_t out = 0;
    for (int64_t i = 0; i < count; i++) {
        QAT_ASSERT_MSG(codes[i] <= qmax, "code exceeds 2^bits - 1");
        acc = acc << bits | codes[i];
        have += bits;
        while (have >= 8) {
            have -= 8;
            packed[out++] = (uint8_t)(acc >> have);
        }
        acc &= (1u << have) - 1;
    }
    if (have) packed[out++] = (uint8_t)(acc << (8 - have));
    QAT_ASSERT(out == qat_packed_size(count, bits));
}

qat_status qat_unpack_codes(const uint8_t *packed, size_t packed_bytes, int64_t count, int bits, uint8_t *codes,
                            const char *what)
{
    QAT_ASSERT(count >= 0);
    QAT_ASSERT(bits >= QAT_QBITS_MIN && bits <= QAT_QBITS_MAX);
    QAT_ASSERT((codes && packed) || count == 0);
    if (!what) what = "codes";
    const size_t want = qat_packed_size(count, bits);
    if (packed_bytes != want)
        return qat_error_set(QAT_ERR_FORMAT, "%s: %zu bytes of packed %d-bit codes, expected %zu for %lld codes",
                             what, packed_bytes, bits, want, (long long)count);
    uint32_t acc = 0;
    int have = 0;
    size_t in = 0;
    for (int64_t i = 0; i < count; i++) {
        while (have < bits) {
            acc = acc << 8 | packed[in++];
            have += 8;
        }
        have -= bits;
        codes[i] = (uint8_t)(acc >> have & (uint32_t)qat_qmax(bits));
        acc &= (1u << have) - 1;
    }
    if (acc != 0)
        return qat_error_set(QAT_ERR_FORMAT, "%s: the %d padding bits after the last of %lld %d-bit codes are not 0",
                             what, have, (long long)count, bits);
    return QAT_OK;
}

size_t qat_packed_size_v1(int64_t count, int bits)
{
    QAT_ASSERT(count >= 0);
    QAT_ASSERT(bits >= QAT_QBITS_MIN && bits <= QAT_QBITS_MAX);
    return bits <= 4 ? (size_t)((count + 1) / 2) : (size_t)count;
}

qat_status qat_unpack_codes_v1(const uint8_t *packed, size_t packed_bytes, int64_t count, int bits, uint8_t *codes,
                               const char *what)
{
    QAT_ASSERT(count >= 0);
    QAT_ASSERT(bits >= QAT_QBITS_MIN && bits <= QAT_QBITS_MAX);
    QAT_ASSERT((codes && packed) || count == 0);
    if (!what) what = "codes";
    const size_t want = qat_packed_size_v1(count, bits);
    if (packed_bytes != want)
        return qat_error_set(QAT_ERR_FORMAT, "%s: %zu bytes of packed %d-bit codes, expected %zu for %lld codes",
                             what, packed_bytes, bits, want, (long long)count);
    const int32_t qmax = qat_qmax(bits);
    if (bits > 4) {
        for (int64_t i = 0; i < count; i++) codes[i] = packed[i];
    } else {
        for (int64_t i = 0; i < count; i++) {
            uint8_t byte = packed[i / 2];
            codes[i] = (uint8_t)(i % 2 ? byte & 0x0f : byte >> 4);
        }
        if (count % 2 && (packed[count / 2] & 0x0f) != 0)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: the padding nibble after the last of %lld %d-bit codes is %d, not 0", what,
                                 (long long)count, bits, packed[count / 2] & 0x0f);
    }
    for (int64_t i = 0; i < count; i++)
        if (codes[i] > qmax)
            return qat_error_set(QAT_ERR_FORMAT, "%s: code %d at index %lld exceeds %d, the largest %d-bit code", what,
                                 codes[i], (long long)i, qmax, bits);
    return QAT_OK;
}
