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
    QAT_ASSERT(s->runs.count >= 0 && s->runs.count <= QAT_MAX_BIT_RUNS);
    QAT_ASSERT_MSG(!s->runs.count || s->gran != QAT_GRAN_TENSOR, "per-row widths need per-row scales");
}

/* A scheme with runs must describe exactly the weight's rows. */
static void check_rows(const qat_qscheme *s, int64_t rows)
{
    QAT_ASSERT_MSG(!s->runs.count || qat_bit_runs_rows(&s->runs) == rows, "bit runs do not cover the rows");
}

int qat_qscheme_row_bits(const qat_qscheme *s, int64_t row)
{
    QAT_ASSERT(s && row >= 0);
    int64_t end = 0;
    for (int i = 0; i < s->runs.count; i++) {
        end += s->runs.rows[i];
        if (row < end) return s->runs.bits[i];
    }
    QAT_ASSERT_MSG(!s->runs.count, "row beyond the bit runs");
    return s->bits;
}

int64_t qat_bit_runs_rows(const qat_bit_runs *runs)
{
    int64_t n = 0;
    for (int i = 0; i < runs->count; i++) n += runs->rows[i];
    return n;
}

int qat_bit_runs_max_bits(const qat_bit_runs *runs)
{
    int b = 0;
    for (int i = 0; i < runs->count; i++)
        if (runs->bits[i] > b) b = runs->bits[i];
    return b;
}

double qat_bit_runs_mean_bits(const qat_bit_runs *runs)
{
    double sum = 0.0;
    for (int i = 0; i < runs->count; i++) sum += (double)runs->bits[i] * runs->rows[i];
    const int64_t rows = qat_bit_runs_rows(runs);
    return rows ? sum / (double)rows : 0.0;
}

bool qat_bit_runs_append(qat_bit_runs *runs, int bits, int64_t rows)
{
    QAT_ASSERT(bits >= QAT_QBITS_MIN && bits <= QAT_QBITS_MAX && rows >= 1 && rows <= INT32_MAX);
    if (runs->count && runs->bits[runs->count - 1] == bits && runs->rows[runs->count - 1] + rows <= INT32_MAX) {
        runs->rows[runs->count - 1] += (int32_t)rows;
        return true;
    }
    if (runs->count == QAT_MAX_BIT_RUNS) return false;
    runs->bits[runs->count] = (uint8_t)bits;
    runs->rows[runs->count] = (int32_t)rows;
    runs->count++;
    return true;
}

bool qat_bit_runs_parse(const char *text, qat_bit_runs *runs)
{
    QAT_ASSERT(text && runs);
    memset(runs, 0, sizeof *runs);
    const char *p = text;
    for (;;) {
        if (*p < '0' + QAT_QBITS_MIN || *p > '0' + QAT_QBITS_MAX || p[1] != 'x') return false;
        const int bits = *p - '0';
        p += 2;
        if (*p < '1' || *p > '9') return false; /* no sign, no leading zero */
        int64_t rows = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            rows = rows * 10 + (*p - '0');
            if (rows > INT32_MAX) return false;
        }
        if (!qat_bit_runs_append(runs, bits, rows)) return false;
        if (*p == '\0') return true;
        if (*p++ != '+') return false;
    }
}

void qat_bit_runs_format(const qat_bit_runs *runs, char *out, size_t size)
{
    QAT_ASSERT(runs && out && size > 0);
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < runs->count; i++) {
        int n = snprintf(out + used, size - used, "%s%dx%d", i ? "+" : "", runs->bits[i], (int)runs->rows[i]);
        QAT_ASSERT_MSG(n > 0 && (size_t)n < size - used, "bit runs text truncated");
        used += (size_t)n;
    }
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
    check_rows(s, rows);
    const int64_t gpr = s->gran == QAT_GRAN_GROUP ? groups_per_row(cols, s->group) : 0;
    for (int64_t r = 0; r < rows; r++) {
        const int32_t qmax = qat_qmax(qat_qscheme_row_bits(s, r));
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

/* The stream as segments of codes at one width each: the whole weight, or
 * one segment per run of rows. */
static int weight_segments(const qat_qscheme *s, int64_t rows, int64_t cols, int64_t *count, int *bits)
{
    check_scheme(s);
    check_rows(s, rows);
    if (!s->runs.count) {
        count[0] = rows * cols;
        bits[0] = s->bits;
        return 1;
    }
    for (int i = 0; i < s->runs.count; i++) {
        count[i] = (int64_t)s->runs.rows[i] * cols;
        bits[i] = s->runs.bits[i];
    }
    return s->runs.count;
}

size_t qat_qscheme_packed_size(const qat_qscheme *s, int64_t rows, int64_t cols)
{
    int64_t count[QAT_MAX_BIT_RUNS];
    int bits[QAT_MAX_BIT_RUNS];
    const int n = weight_segments(s, rows, cols, count, bits);
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += count[i] * bits[i];
    return (size_t)((total + 7) / 8);
}

void qat_pack_weight_codes(const uint8_t *codes, int64_t rows, int64_t cols, const qat_qscheme *s, uint8_t *packed)
{
    int64_t count[QAT_MAX_BIT_RUNS];
    int bits[QAT_MAX_BIT_RUNS];
    const int n = weight_segments(s, rows, cols, count, bits);
    if (n == 1) {
        qat_pack_codes(codes, count[0], bits[0], packed);
        return;
    }
    uint32_t acc = 0;
    int have = 0;
    size_t out = 0;
    for (int seg = 0; seg < n; seg++) {
        const int32_t qmax = qat_qmax(bits[seg]);
        for (int64_t i = 0; i < count[seg]; i++, codes++) {
            QAT_ASSERT_MSG(*codes <= qmax, "code exceeds 2^bits - 1");
            acc = acc << bits[seg] | *codes;
            have += bits[seg];
            while (have >= 8) {
                have -= 8;
                packed[out++] = (uint8_t)(acc >> have);
            }
            acc &= (1u << have) - 1;
        }
    }
    if (have) packed[out++] = (uint8_t)(acc << (8 - have));
    QAT_ASSERT(out == qat_qscheme_packed_size(s, rows, cols));
}

qat_status qat_unpack_weight_codes(const uint8_t *packed, size_t packed_bytes, int64_t rows, int64_t cols,
                                   const qat_qscheme *s, uint8_t *codes, const char *what)
{
    int64_t count[QAT_MAX_BIT_RUNS];
    int bits[QAT_MAX_BIT_RUNS];
    const int n = weight_segments(s, rows, cols, count, bits);
    if (n == 1) return qat_unpack_codes(packed, packed_bytes, count[0], bits[0], codes, what);
    if (!what) what = "codes";
    char runs[QAT_BIT_RUNS_TEXT_MAX];
    const size_t want = qat_qscheme_packed_size(s, rows, cols);
    if (packed_bytes != want) {
        qat_bit_runs_format(&s->runs, runs, sizeof runs);
        return qat_error_set(QAT_ERR_FORMAT, "%s: %zu bytes of packed codes, expected %zu for %lld rows of %lld at %s bits",
                             what, packed_bytes, want, (long long)rows, (long long)cols, runs);
    }
    uint32_t acc = 0;
    int have = 0;
    size_t in = 0;
    for (int seg = 0; seg < n; seg++)
        for (int64_t i = 0; i < count[seg]; i++) {
            while (have < bits[seg]) {
                acc = acc << 8 | packed[in++];
                have += 8;
            }
            have -= bits[seg];
            *codes++ = (uint8_t)(acc >> have & (uint32_t)qat_qmax(bits[seg]));
            acc &= (1u << have) - 1;
        }
    if (acc != 0)
        return qat_error_set(QAT_ERR_FORMAT, "%s: the %d padding bits after the last code are not 0", what, have);
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
