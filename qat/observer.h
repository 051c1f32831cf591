/* Observers: the clipping range a quantizer uses, found from data.
 *   minmax      the extremes seen (PyTorch MinMaxObserver)
 *   ema         moving-average min and max: m += 0.01 * (current - m), the
 *               first batch setting m (MovingAverageMinMaxObserver)
 *   percentile  the `percentile` and 100 - `percentile` quantiles, read off a
 *               histogram of QAT_OBSERVER_BINS bins over the min-max range
 *   mse         the clip range, searched over shrinking candidates of the
 *               min-max range, that minimises the mean squared quantization
 *               error of the grid it produces
 * Every range is widened to include 0 before it becomes a scale and zero
 * point (qat_qparams_from_range); the ranges returned here already are.
 *
 * Details: percentile quantiles interpolate linearly within the histogram bin
 * where the cumulative count crosses them. mse tries the widened min-max
 * range times 1 - k/100, k = 0 .. 99 (both ends shrink, so a symmetric grid
 * shrinks max |x|), each through qat_qparams_from_range and the fake-quant
 * arithmetic of qat_quantize_weight; the streaming observer sums the squared
 * error over the histogram's bin centres weighted by their counts, the weight
 * one over the values themselves; the smallest error wins, ties the widest. */
#ifndef QAT_OBSERVER_H
#define QAT_OBSERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "qat/quant.h"

typedef enum qat_observer_kind {
    QAT_OBS_MINMAX,
    QAT_OBS_EMA,
    QAT_OBS_PERCENTILE,
    QAT_OBS_MSE,
    QAT_OBS_KIND_COUNT
} qat_observer_kind;

#define QAT_OBSERVER_BINS 2048
#define QAT_OBSERVER_DEFAULT_PERCENTILE 99.99

const char *qat_observer_name(qat_observer_kind kind);
bool qat_observer_parse(const char *name, qat_observer_kind *out);

/* A streaming observer of one tensor (activations, per tensor). Percentile
 * and mse need two passes over the same data: the first finds the min-max
 * range, the second fills the histogram over it (values outside it fall in
 * the end bins). Without a second pass they give the min-max range. */
typedef struct qat_observer {
    qat_observer_kind kind;
    double percentile;          /* percentile kind, in (50, 100] */
    bool seen;                  /* a value has been observed */
    float min, max;             /* running extremes (pass 1) */
    float ema_min, ema_max;     /* ema kind */
    int pass;                   /* 1 or 2 */
    uint64_t *hist;             /* QAT_OBSERVER_BINS counts over [min, max] (pass 2) */
    uint64_t hist_total;
} qat_observer;

void qat_observer_init(qat_observer *o, qat_observer_kind kind);
void qat_observer_free(qat_observer *o);
/* True for percentile and mse until qat_observer_start_second_pass. */
bool qat_observer_needs_second_pass(const qat_observer *o);
void qat_observer_start_second_pass(qat_observer *o);
/* One batch of values. Non-finite values are a programmer error. */
void qat_observer_observe(qat_observer *o, const float *x, int64_t n);
/* The clip range for a grid of `bits` (the grid matters only to mse). Before
 * anything was observed: [0, 0]. */
void qat_observer_range(const qat_observer *o, int bits, bool symmetric, float *lo, float *hi);
void qat_observer_qparams(const qat_observer *o, int bits, bool symmetric, float *scale, int32_t *zero_point);

/* Scales and zero points of a weight (rows x cols, see qat_qscheme), one per
 * scale element, each from the values it covers: minmax and ema take their
 * extremes, percentile the quantiles at QAT_OBSERVER_DEFAULT_PERCENTILE and
 * 100 minus it of those values (exact: sorted, linear between order
 * statistics like torch.quantile), mse the best of the shrunken ranges on the values
 * themselves. */
void qat_weight_qparams(const float *w, int64_t rows, int64_t cols, const qat_qscheme *s, qat_observer_kind kind,
                        float *scale, int32_t *zero_point);

#endif
