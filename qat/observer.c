/* Observers: clip ranges from data; see qat/observer.h. */
#include "qat/observer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* mse: the candidates are the min-max range scaled by 1 - k / MSE_STEPS for
 * k = 0 .. MSE_STEPS - 1 (both ends, so symmetric grids shrink max |x|). */
#define MSE_STEPS 100

static const char *const names[QAT_OBS_KIND_COUNT] = {"minmax", "ema", "percentile", "mse"};

const char *qat_observer_name(qat_observer_kind kind)
{
    QAT_ASSERT(kind >= 0 && kind < QAT_OBS_KIND_COUNT);
    return names[kind];
}

bool qat_observer_parse(const char *name, qat_observer_kind *out)
{
    QAT_ASSERT(name && out);
    for (int k = 0; k < QAT_OBS_KIND_COUNT; k++)
        if (strcmp(name, names[k]) == 0) {
            *out = (qat_observer_kind)k;
            return true;
        }
    return false;
}

void qat_observer_init(qat_observer *o, qat_observer_kind kind)
{
    QAT_ASSERT(o && kind >= 0 && kind < QAT_OBS_KIND_COUNT);
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->percentile = QAT_OBSERVER_DEFAULT_PERCENTILE;
    o->pass = 1;
}

void qat_observer_free(qat_observer *o)
{
    if (!o) return;
    free(o->hist);
    o->hist = NULL;
    o->hist_total = 0;
}

bool qat_observer_needs_second_pass(const qat_observer *o)
{
    QAT_ASSERT(o);
    return o->pass == 1 && (o->kind == QAT_OBS_PERCENTILE || o->kind == QAT_OBS_MSE);
}

void qat_observer_start_second_pass(qat_observer *o)
{
    QAT_ASSERT(o && o->pass == 1);
    o->pass = 2;
    if (!o->hist) o->hist = qat_xcalloc(QAT_OBSERVER_BINS, sizeof *o->hist);
    memset(o->hist, 0, QAT_OBSERVER_BINS * sizeof *o->hist);
    o->hist_total = 0;
}

/* The histogram bin of x over [lo, hi] (hi > lo); values outside land in the
 * end bins. */
static inline int bin_of(float x, float lo, double inv_width)
{
    double b = ((double)x - (double)lo) * inv_width;
    if (!(b >= 0.0)) return 0;
    if (b >= QAT_OBSERVER_BINS) return QAT_OBSERVER_BINS - 1;
    return (int)b;
}

void qat_observer_observe(qat_observer *o, const float *x, int64_t n)
{
    QAT_ASSERT(o && n >= 0 && (x || n == 0));
    if (n == 0) return;
    if (o->pass == 1) {
        float mn = x[0], mx = x[0];
        for (int64_t i = 0; i < n; i++) {
            QAT_ASSERT_MSG(isfinite(x[i]), "observer: non-finite value");
            if (x[i] < mn) mn = x[i];
            if (x[i] > mx) mx = x[i];
        }
        if (!o->seen) {
            o->min = mn, o->max = mx;
            o->ema_min = mn, o->ema_max = mx;
        } else {
            if (mn < o->min) o->min = mn;
            if (mx > o->max) o->max = mx;
            /* PyTorch: min_val + averaging_constant * (min_val_cur - min_val), float32. */
            o->ema_min = o->ema_min + 0.01f * (mn - o->ema_min);
            o->ema_max = o->ema_max + 0.01f * (mx - o->ema_max);
        }
        o->seen = true;
        return;
    }
    QAT_ASSERT(o->pass == 2 && o->hist);
    if (!o->seen) return; /* nothing in pass 1: no range to bin over */
    const float lo = o->min, hi = o->max;
    if (hi > lo) {
        const double inv_width = QAT_OBSERVER_BINS / ((double)hi - (double)lo);
        for (int64_t i = 0; i < n; i++) {
            QAT_ASSERT_MSG(isfinite(x[i]), "observer: non-finite value");
            o->hist[bin_of(x[i], lo, inv_width)]++;
        }
    } else {
        for (int64_t i = 0; i < n; i++) QAT_ASSERT_MSG(isfinite(x[i]), "observer: non-finite value");
        o->hist[0] += (uint64_t)n;
    }
    o->hist_total += (uint64_t)n;
}

static void widen(float *lo, float *hi)
{
    if (*lo > 0.0f) *lo = 0.0f;
    if (*hi < 0.0f) *hi = 0.0f;
}

/* The value below which a fraction f of the histogram's mass lies, linear
 * within a bin. */
static double hist_quantile(const qat_observer *o, double f)
{
    const double lo = o->min, width = ((double)o->max - (double)o->min) / QAT_OBSERVER_BINS;
    const double target = f * (double)o->hist_total;
    double cum = 0.0;
    int last = 0;
    for (int b = 0; b < QAT_OBSERVER_BINS; b++) {
        const uint64_t c = o->hist[b];
        if (c == 0) continue;
        last = b;
        if (cum + (double)c >= target) {
            double frac = (target - cum) / (double)c;
            if (frac < 0.0) frac = 0.0;
            return lo + ((double)b + frac) * width;
        }
        cum += (double)c;
    }
    return lo + (double)(last + 1) * width;
}

/* Fake-quantizes x exactly as qat_quantize_weight + qat_dequantize_weight do. */
static inline float fake_quant(float x, float inv, float scale, int32_t z, int32_t qmax)
{
    float qf = (float)z + nearbyintf(x * inv);
    if (!(qf >= 0.0f)) qf = 0.0f;
    if (qf > (float)qmax) qf = (float)qmax;
    return (qf - (float)z) * scale;
}

/* The mse search shared by the streaming and the weight observers: `err`
 * gives the summed squared error of one candidate grid. Candidates from the
 * widest down; only a strictly smaller error replaces the best, so ties keep
 * the widest. */
typedef double (*grid_error_fn)(const void *data, float scale, int32_t zero_point, int bits);

static void mse_search(float lo, float hi, int bits, bool symmetric, grid_error_fn err, const void *data,
                       float *best_lo, float *best_hi)
{
    widen(&lo, &hi);
    *best_lo = lo, *best_hi = hi;
    if (lo == hi) return;
    double best = INFINITY;
    for (int k = 0; k < MSE_STEPS; k++) {
        const float f = (float)(1.0 - (double)k / MSE_STEPS);
        const float clo = lo * f, chi = hi * f;
        float scale;
        int32_t z;
        qat_qparams_from_range(clo, chi, bits, symmetric, &scale, &z);
        const double e = err(data, scale, z, bits);
        if (e < best) {
            best = e;
            *best_lo = clo, *best_hi = chi;
        }
    }
}

static double hist_grid_error(const void *data, float scale, int32_t z, int bits)
{
    const qat_observer *o = data;
    const double lo = o->min, width = ((double)o->max - (double)o->min) / QAT_OBSERVER_BINS;
    const float inv = 1.0f / scale;
    const int32_t qmax = qat_qmax(bits);
    double sum = 0.0;
    for (int b = 0; b < QAT_OBSERVER_BINS; b++) {
        if (!o->hist[b]) continue;
        const float c = (float)(lo + ((double)b + 0.5) * width);
        const double d = (double)c - (double)fake_quant(c, inv, scale, z, qmax);
        sum += (double)o->hist[b] * d * d;
    }
    return sum;
}

void qat_observer_range(const qat_observer *o, int bits, bool symmetric, float *lo, float *hi)
{
    QAT_ASSERT(o && lo && hi);
    QAT_ASSERT(bits >= QAT_QBITS_MIN && bits <= QAT_QBITS_MAX);
    if (!o->seen) {
        *lo = *hi = 0.0f;
        return;
    }
    float l = o->min, h = o->max;
    const bool have_hist = o->pass == 2 && o->hist && o->hist_total > 0 && o->max > o->min;
    switch (o->kind) {
    case QAT_OBS_MINMAX: break;
    case QAT_OBS_EMA: l = o->ema_min, h = o->ema_max; break;
    case QAT_OBS_PERCENTILE:
        if (have_hist) {
            QAT_ASSERT(o->percentile > 50.0 && o->percentile <= 100.0);
            l = (float)hist_quantile(o, (100.0 - o->percentile) / 100.0);
            h = (float)hist_quantile(o, o->percentile / 100.0);
            if (l < o->min) l = o->min;
            if (h > o->max) h = o->max;
        }
        break;
    case QAT_OBS_MSE:
        if (have_hist) {
            mse_search(l, h, bits, symmetric, hist_grid_error, o, &l, &h);
        }
        break;
    default: QAT_ASSERT_MSG(0, "unknown observer kind");
    }
    widen(&l, &h);
    *lo = l, *hi = h;
}

void qat_observer_qparams(const qat_observer *o, int bits, bool symmetric, float *scale, int32_t *zero_point)
{
    float lo, hi;
    qat_observer_range(o, bits, symmetric, &lo, &hi);
    qat_qparams_from_range(lo, hi, bits, symmetric, scale, zero_point);
}

/* ---- weights --------------------------------------------------------------- */

typedef struct values {
    const float *v;
    int64_t n;
} values;

static double values_grid_error(const void *data, float scale, int32_t z, int bits)
{
    const values *vs = data;
    const float inv = 1.0f / scale;
    const int32_t qmax = qat_qmax(bits);
    double sum = 0.0;
    for (int64_t i = 0; i < vs->n; i++) {
        const double d = (double)vs->v[i] - (double)fake_quant(vs->v[i], inv, scale, z, qmax);
        sum += d * d;
    }
    return sum;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between order statistics (numpy's and torch.quantile's
 * default) of sorted v. */
static float sorted_quantile(const float *v, int64_t n, double f)
{
    const double pos = f * (double)(n - 1);
    int64_t i = (int64_t)floor(pos);
    if (i >= n - 1) return v[n - 1];
    if (i < 0) return v[0];
    const double t = pos - (double)i;
    return (float)((double)v[i] + t * ((double)v[i + 1] - (double)v[i]));
}

/* The range of one scale element's values. */
static void element_range(const float *v, int64_t n, int bits, const qat_qscheme *s, qat_observer_kind kind,
                          float *sorted, float *lo, float *hi)
{
    float mn = v[0], mx = v[0];
    for (int64_t i = 0; i < n; i++) {
        QAT_ASSERT_MSG(isfinite(v[i]), "weight observer: non-finite value");
        if (v[i] < mn) mn = v[i];
        if (v[i] > mx) mx = v[i];
    }
    switch (kind) {
    case QAT_OBS_MINMAX:
    case QAT_OBS_EMA: break;
    case QAT_OBS_PERCENTILE: {
        memcpy(sorted, v, (size_t)n * sizeof *v);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_float);
        const double p = QAT_OBSERVER_DEFAULT_PERCENTILE;
        mn = sorted_quantile(sorted, n, (100.0 - p) / 100.0);
        mx = sorted_quantile(sorted, n, p / 100.0);
        break;
    }
    case QAT_OBS_MSE: {
        const values vs = {v, n};
        mse_search(mn, mx, bits, s->symmetric, values_grid_error, &vs, &mn, &mx);
        break;
    }
    default: QAT_ASSERT_MSG(0, "unknown observer kind");
    }
    widen(&mn, &mx);
    *lo = mn, *hi = mx;
}

void qat_weight_qparams(const float *w, int64_t rows, int64_t cols, const qat_qscheme *s, qat_observer_kind kind,
                        float *scale, int32_t *zero_point)
{
    QAT_ASSERT(s && scale && zero_point && rows >= 0 && cols >= 0);
    QAT_ASSERT(kind >= 0 && kind < QAT_OBS_KIND_COUNT);
    const int64_t count = qat_qscheme_scale_count(s, rows, cols);
    if (rows * cols == 0) {
        /* No weights: every scale element gets the grid of an all-zero range;
         * count is 0 for per-group scales, so k is a row here. */
        for (int64_t k = 0; k < count; k++)
            qat_qparams_from_range(0.0f, 0.0f, s->gran == QAT_GRAN_CHANNEL ? qat_qscheme_row_bits(s, k) : s->bits,
                                   s->symmetric, &scale[k], &zero_point[k]);
        return;
    }
    QAT_ASSERT(w);
    /* Every scale element covers a contiguous run of w. */
    int64_t run;
    switch (s->gran) {
    case QAT_GRAN_TENSOR: run = rows * cols; break;
    case QAT_GRAN_CHANNEL: run = cols; break;
    default: run = s->group < cols ? s->group : cols; break;
    }
    float *sorted = kind == QAT_OBS_PERCENTILE ? qat_xmalloc((size_t)run * sizeof *sorted) : NULL;
    const int64_t gpr = s->gran == QAT_GRAN_GROUP ? (cols + s->group - 1) / s->group : 1;
    for (int64_t k = 0; k < count; k++) {
        const float *v;
        int64_t n;
        const int bits = s->gran == QAT_GRAN_TENSOR ? s->bits : qat_qscheme_row_bits(s, k / gpr);
        if (s->gran == QAT_GRAN_GROUP) {
            const int64_t r = k / gpr, c = (k % gpr) * s->group;
            v = w + r * cols + c;
            n = cols - c < s->group ? cols - c : s->group;
        } else {
            v = w + k * run;
            n = run;
        }
        float lo, hi;
        element_range(v, n, bits, s, kind, sorted, &lo, &hi);
        qat_qparams_from_range(lo, hi, bits, s->symmetric, &scale[k], &zero_point[k]);
    }
    free(sorted);
}
