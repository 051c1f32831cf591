/* Layer normalization over the last axis: reference forward and backward
 * (see ops_ref.h). */
#include "ops/ops_ref.h"

#include "qat/common.h"

#include <math.h>
#include <stdlib.h>

/* Two passes (the mean, then the squared deviations from it), as the shader
 * does: one pass of sum x^2 - mean^2 would cancel catastrophically for rows
 * far from zero. */
static void row_stats(const float *row, size_t c, float eps, float *mean, float *rstd)
{
    float sum = 0.0f;
    for (size_t j = 0; j < c; j++) sum += row[j];
    float m = sum / (float)c;
    float sq = 0.0f;
    for (size_t j = 0; j < c; j++) {
        float d = row[j] - m;
        sq += d * d;
    }
    *mean = m;
    *rstd = 1.0f / sqrtf(sq / (float)c + eps);
}

void qat_layer_norm_forward_ref(float *y,           /* (rows, C) */
                                float *mean,        /* (rows), or NULL */
                                float *rstd,        /* (rows), or NULL */
                                const float *x,     /* (rows, C) */
                                const float *gamma, /* (C) */
                                const float *beta,  /* (C) */
                                size_t rows, size_t c, float eps)
{
    QAT_ASSERT(c > 0);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float m, s;
        row_stats(xr, c, eps, &m, &s);
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = s;
        for (size_t j = 0; j < c; j++) y[r * c + j] = (xr[j] - m) * s * gamma[j] + beta[j];
    }
}

void qat_layer_norm_backward_ref(float *dx,          /* (rows, C), or NULL */
                                 float *dgamma,      /* (C), or NULL */
                                 float *dbeta,       /* (C), or NULL */
                                 const float *dy,    /* (rows, C) */
                                 const float *x,     /* (rows, C) */
                                 const float *gamma, /* (C) */
                                 size_t rows, size_t c, float eps)
{
    QAT_ASSERT(c > 0);
    if (dx)
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * c, *dyr = dy + r * c;
            float m, s;
            row_stats(xr, c, eps, &m, &s);
            float sum_g = 0.0f, sum_gx = 0.0f;
            for (size_t j = 0; j < c; j++) {
                float g = dyr[j] * gamma[j];
                sum_g += g;
                sum_gx += g * ((xr[j] - m) * s);
            }
            float a = sum_g / (float)c, b = sum_gx / (float)c;
            for (size_t j = 0; j < c; j++) {
                float xhat = (xr[j] - m) * s;
                dx[r * c + j] = ((dyr[j] * gamma[j] - a) - xhat * b) * s;
            }
        }
    if (dgamma || dbeta) {
        /* Row statistics once, then each column's sums over rows ascending. */
        float *mean = qat_xmalloc((rows ? rows : 1) * sizeof *mean);
        float *rstd = qat_xmalloc((rows ? rows : 1) * sizeof *rstd);
        for (size_t r = 0; r < rows; r++) row_stats(x + r * c, c, eps, &mean[r], &rstd[r]);
        for (size_t j = 0; j < c; j++) {
            float acc_g = 0.0f, acc_b = 0.0f;
            for (size_t r = 0; r < rows; r++) {
                float d = dy[r * c + j];
                acc_g += d * ((x[r * c + j] - mean[r]) * rstd[r]);
                acc_b += d;
            }
            if (dgamma) dgamma[j] = acc_g;
            if (dbeta) dbeta[j] = acc_b;
        }
        free(mean);
        free(rstd);
    }
}
