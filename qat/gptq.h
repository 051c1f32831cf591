/* GPTQ (Frantar et al. 2022), following the IST-DASLab reference:
 *   H = (2 / N) * sum over the N calibration inputs x of x x^T
 *   dead inputs (H_ii = 0) get H_ii = 1 and their weight columns set to 0
 *   H += damp * mean(diag H) * I     (damp 0.01)
 *   U = upper Cholesky factor of H^-1
 *   columns in blocks of `block` (128): quantize column i, err = (w - q) / U_ii,
 *   w[:, j] -= err * U_ij for the later columns j of the block, then the later
 *   blocks at once from the block's errors
 *   per group (group size g): the group's scale and zero point come from the
 *   already-updated columns i .. i + g - 1 when i % g == 0 (as the reference's
 *   find_params(W[:, i:i + g]): W holds the updates of the earlier blocks,
 *   not yet those of the current block, which live in its working copy)
 * On the host in plain C, in double. */
#ifndef QAT_GPTQ_H
#define QAT_GPTQ_H

#include <stdint.h>

#include "qat/observer.h"
#include "qat/quant.h"

/* The sum of x x^T over calibration rows, n x n, and how many rows. */
typedef struct qat_hessian {
    int64_t n;
    double *h;                  /* n * n, row-major, symmetric */
    int64_t samples;
} qat_hessian;

void qat_hessian_init(qat_hessian *H, int64_t n);
void qat_hessian_free(qat_hessian *H);
/* Adds `count` rows of x (each n floats, row-major), summing in a fixed
 * order: the same calls give the same bits. */
void qat_hessian_add(qat_hessian *H, const float *x, int64_t count);

/* Quantizes w (rows x cols, row-major), overwriting it with the dequantized
 * result, and writes the codes (rows * cols, unpacked) and the scales and zero
 * points (qat_qscheme_scale_count each). Per-tensor and per-channel parameters
 * come from the weight before any update, per-group ones as above; `obs`
 * chooses how (qat_weight_qparams). Fails with QAT_ERR_INVALID, naming
 * `what`, if H stays singular after dampening or holds no samples. */
qat_status qat_gptq_quantize(float *w, int64_t rows, int64_t cols, const qat_hessian *H, const qat_qscheme *s,
                             qat_observer_kind obs, int block, double damp, uint8_t *codes, float *scale,
                             int32_t *zero_point, const char *what);

#endif
