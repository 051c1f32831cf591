/* Fake quantization, CPU reference, and the layout helpers that map an
 * element to its scale (shared with the builder in ops/fake_quant_vk.c).
 * shaders/fake_quant.comp repeats fq_point() operation for operation, so the
 * two agree bit for bit; the arithmetic is PyTorch's (see
 * ../shared/reference/quant-numerics.md). */
#include <math.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/ops_ref.h"
#include "qat/common.h"

qat_fq_layout qat_fq_per_tensor(int64_t numel)
{
    QAT_ASSERT(numel > 0);
    return (qat_fq_layout){ .inner = numel, .channels = 1 };
}

qat_fq_layout qat_fq_per_channel(int64_t channels, int64_t inner)
{
    QAT_ASSERT(channels > 0 && inner > 0);
    return (qat_fq_layout){ .inner = inner, .channels = channels };
}

qat_fq_layout qat_fq_per_group(int64_t row, int64_t group)
{
    QAT_ASSERT(row > 0 && group > 0);
    return (qat_fq_layout){ .row = row, .group = group };
}

static int64_t groups_per_row(const qat_fq_layout *l) { return (l->row + l->group - 1) / l->group; }

int64_t qat_fq_scale_count(const qat_fq_layout *layout, int64_t numel)
{
    if (layout->group == 0) {
        QAT_ASSERT_MSG(layout->inner > 0 && layout->channels > 0 && numel % (layout->inner * layout->channels) == 0,
                       "fake-quant layout: the tensor is not a whole number of (channels, inner) blocks");
        return layout->channels;
    }
    QAT_ASSERT_MSG(layout->group > 0 && layout->row > 0 && numel % layout->row == 0,
                   "fake-quant layout: the tensor is not a whole number of rows");
    return numel / layout->row * groups_per_row(layout);
}

int64_t qat_fq_scale_index(const qat_fq_layout *layout, int64_t i)
{
    if (layout->group == 0) return i / layout->inner % layout->channels;
    return i / layout->row * groups_per_row(layout) + i % layout->row / layout->group;
}

/* One element through the quantizer: its step s and zero point z, the input
 * as quantized (clipped first for PACT), the rounded code before the clamp
 * (which decides the gradient masks) and the output. */
typedef struct fq_point {
    float s, z, x, qf, y;
} fq_point;

static fq_point fq_point_at(const qat_fq_params *p, float x, float scale, float zero_point, float qmax)
{
    fq_point t = { scale, zero_point, x, 0, 0 };
    if (p->estimator == QAT_FQ_PACT) {
        float alpha = scale;
        t.s = alpha / (float)p->qmax;
        t.z = 0.0f;
        t.x = x < 0.0f ? 0.0f : x > alpha ? alpha : x;
    }
    float qmin = (float)p->qmin;
    /* Multiplying by the rounded reciprocal (not dividing by s) and adding the
     * zero point after rounding is what makes this PyTorch's result; nearbyintf
     * rounds half to even under the default rounding mode. */
    float inv = 1.0f / t.s;
    t.qf = t.z + nearbyintf(t.x * inv);
    float q = t.qf < qmin ? qmin : t.qf > qmax ? qmax : t.qf;
    t.y = (q - t.z) * t.s;
    return t;
}

void qat_fake_quant_forward_ref(float *y, const float *x, size_t n, const float *scale, const float *zero_point,
                                const float *qmax, const qat_fq_params *p)
{
    QAT_ASSERT(!qmax || p->estimator != QAT_FQ_PACT);
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)qat_fq_scale_index(&p->layout, (int64_t)i);
        y[i] = fq_point_at(p, x[i], scale[k], p->estimator == QAT_FQ_PACT ? 0.0f : zero_point[k],
                           qmax ? qmax[k] : (float)p->qmax).y;
    }
}

void qat_fake_quant_backward_ref(float *dx, float *dscale, const float *dy, const float *x, size_t n,
                                 const float *scale, const float *zero_point, const float *qmax_of,
                                 const qat_fq_params *p)
{
    QAT_ASSERT(!qmax_of || p->estimator != QAT_FQ_PACT);
    bool learned = p->estimator == QAT_FQ_LSQ || p->estimator == QAT_FQ_PACT;
    if (!learned) dscale = NULL;
    if (dscale) memset(dscale, 0, (size_t)qat_fq_scale_count(&p->layout, (int64_t)n) * sizeof *dscale);
    float qmin = (float)p->qmin;
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)qat_fq_scale_index(&p->layout, (int64_t)i);
        const float qmax = qmax_of ? qmax_of[k] : (float)p->qmax;
        fq_point t = fq_point_at(p, x[i], scale[k], p->estimator == QAT_FQ_PACT ? 0.0f : zero_point[k], qmax);
        bool below = t.qf < qmin, above = t.qf > qmax;
        if (dx) {
            /* The masks multiply, as PyTorch's dy * mask does, so even the
             * sign of a zero gradient matches it. */
            bool pass = p->estimator == QAT_FQ_STE ? true
                        : p->estimator == QAT_FQ_PACT ? x[i] >= 0.0f && x[i] < scale[k]
                                                       : !below && !above;
            dx[i] = dy[i] * (pass ? 1.0f : 0.0f);
        }
        if (!dscale) continue;
        if (p->estimator == QAT_FQ_PACT) {
            if (x[i] >= scale[k]) dscale[k] += dy[i];
        } else {
            dscale[k] += below ? dy[i] * (qmin - t.z) : above ? dy[i] * (qmax - t.z) : dy[i] * (t.y - t.x) / t.s;
        }
    }
    if (dscale && p->estimator == QAT_FQ_LSQ) {
        size_t count = (size_t)qat_fq_scale_count(&p->layout, (int64_t)n);
        for (size_t k = 0; k < count; k++) dscale[k] *= p->grad_scale;
    }
}
