/* How much each layer's loss suffers from quantizing its weight, measured on
 * calibration data: what mixed-precision strategies (qat/bits.h) trade
 * against bytes.
 *
 *   perturbation  the change of the calibration loss when only that layer's
 *                 weight is rounded to b bits (one forward pass over the
 *                 calibration batches per layer and width);
 *   hessian       HAWQ-v2: Tr(H_l) / n_l * ||Q_b(W_l) - W_l||^2, the trace of
 *                 the layer's block of the loss Hessian estimated by
 *                 Hutchinson's method, E[v^T H v] over Rademacher v, with Hv
 *                 a central difference of gradients;
 *   fisher        sum_i F_i (Q_b(W)_i - W_i)^2 with F_i the mean over the
 *                 calibration batches of the squared gradient: one backward
 *                 pass per batch, the cheap alternative.
 *
 * Activations stay FP32 while measuring: the cost is the weight's alone. */
#ifndef QAT_SENSITIVITY_H
#define QAT_SENSITIVITY_H

#include "qat/common.h"

typedef enum qat_sensitivity_kind {
    QAT_SENSITIVITY_PERTURBATION,
    QAT_SENSITIVITY_HESSIAN,
    QAT_SENSITIVITY_FISHER,
    QAT_SENSITIVITY_KIND_COUNT
} qat_sensitivity_kind;

const char *qat_sensitivity_name(qat_sensitivity_kind kind);
bool qat_sensitivity_parse(const char *name, qat_sensitivity_kind *out);

/* The gradient of a loss at w (n floats), written to grad; `loss` may be
 * NULL. */
typedef qat_status (*qat_grad_fn)(void *user, const float *w, float *grad, double *loss);

typedef struct qat_hutchinson_options {
    int min_probes, max_probes;
    /* Stop once every block's standard error is at most rel_tol of its
     * estimate's magnitude (or after max_probes). */
    double rel_tol;
    /* The finite-difference step of a block: eps_rel times the root mean
     * square of its values (eps_rel itself for an all-zero block). */
    double eps_rel;
    uint64_t seed;
    const char *progress_label; /* NULL: no progress */
} qat_hutchinson_options;

typedef struct qat_hutchinson_result {
    int probes;
    bool settled;               /* stopped by rel_tol rather than max_probes */
} qat_hutchinson_result;

/* Hutchinson's estimate of the trace of each diagonal block of the Hessian of
 * the loss behind `grad`: w0 is the concatenation of `nblocks` blocks of
 * block_numel[i] values; probe k draws v in {-1, +1}^n from stream
 * QAT_RNG_STREAM_HUTCHINSON + k of the seed, and each block's sample is
 * v_b . (g(w0 + e v) - g(w0 - e v))_b / (2 e_b), with every block stepped by
 * its own e_b (cross-block terms vanish in expectation). trace[i] and
 * std_err[i] receive the mean and its standard error. */
enum { QAT_RNG_STREAM_HUTCHINSON = 5 << 20 };
qat_status qat_hutchinson_trace(qat_grad_fn grad, void *user, int nblocks, const int64_t *block_numel, const float *w0,
                                const qat_hutchinson_options *o, double *trace, double *std_err,
                                qat_hutchinson_result *r);

#endif
