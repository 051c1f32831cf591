/* CPU reference implementations of every op, forward and backward.
 *
 * These plain loops are the specification the GPU shaders are tested against
 * (in the spirit of llm.c), so they favour being obviously correct over being
 * fast. Conventions shared by all of them:
 *
 * - Layouts are PyTorch's: row-major, images NCHW, linear weight (out, in),
 *   conv weight (out, in, kh, kw). Shape comments list dimensions outermost
 *   first; every array is dense unless a stride says otherwise.
 * - Every reduction accumulates in float (never double) in ascending index
 *   order into one accumulator that starts at +0.0f, so a shader doing the
 *   same loop in the same order reproduces the result bit for bit, as long
 *   as neither side fuses a * b + c into an fma (this C is built with
 *   -std=c11, which turns GCC's contraction off; in GLSL that takes
 *   `precise`). The order is documented at each function.
 * - Each output element is written by exactly one loop (a gather, never a
 *   scatter-add), which is how the shaders are written too.
 * - Backward functions overwrite their gradient outputs unless they take an
 *   `accumulate` flag. A gradient output passed as NULL is not computed.
 * - Bad shapes and out-of-range labels are programmer errors: QAT_ASSERT.
 */
#ifndef QAT_OPS_REF_H
#define QAT_OPS_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- matmul (ops/matmul.c) -------------------------------------------------
 * For b in [0, batch): C_b (m, n) = opA_b (m, k) x opB_b (k, n), where
 * opA_b = A_b stored (m, k), or A_b^T with A_b stored (k, m) when trans_a;
 * opB_b = B_b stored (k, n), or B_b^T with B_b stored (n, k) when trans_b.
 * A_b starts at a + b * stride_a (elements); stride 0 broadcasts one matrix to
 * every batch entry. A non-zero stride must be at least the matrix size (the
 * batch entries do not overlap; elements in gaps between them are neither
 * read nor written, gradients included). C is dense: C_b starts at
 * c + b * m * n.
 * Linear layer y = x W^T: batch 1, A = x (batch_rows, in), B = W (out, in)
 * with trans_b, m = batch_rows, k = in, n = out. */
typedef struct qat_matmul_dims {
    size_t batch, m, n, k;
    bool trans_a, trans_b;
    size_t stride_a, stride_b; /* elements between batch entries; 0 = broadcast */
} qat_matmul_dims;

/* Elements of a (resp. b) that the op reads: the size to allocate. */
size_t qat_matmul_a_span(const qat_matmul_dims *d);
size_t qat_matmul_b_span(const qat_matmul_dims *d);

/* c[b][i][j] = sum over p ascending of opA[b][i][p] * opB[b][p][j]. */
void qat_matmul_forward_ref(float *c,       /* (batch, m, n) */
                            const float *a, /* qat_matmul_a_span(d) */
                            const float *b, /* qat_matmul_b_span(d) */
                            const qat_matmul_dims *d);

/* dA = dC opB^T and dB = opA^T dC, each stored in its operand's layout
 * (transposed when the operand is). A broadcast operand (stride 0) gets the
 * sum over the batch. Per gradient element: one accumulator summing over the
 * batch entries ascending, within each over j (for dA) or i (for dB)
 * ascending; then written, or added to the old value if accumulate. */
void qat_matmul_backward_ref(float *da,       /* like a, or NULL */
                             float *db,       /* like b, or NULL */
                             const float *dc, /* (batch, m, n) */
                             const float *a,  /* qat_matmul_a_span(d) */
                             const float *b,  /* qat_matmul_b_span(d) */
                             const qat_matmul_dims *d, bool accumulate);

/* ---- bias_add (ops/bias_add.c) ---------------------------------------------
 * x viewed as (outer, channels, inner); y = x + bias[c]. Linear bias: outer =
 * rows, channels = out, inner = 1. Conv bias: outer = N, channels = C, inner =
 * H * W. y may alias x. */
void qat_bias_add_forward_ref(float *y,          /* (outer, channels, inner) */
                              const float *x,    /* (outer, channels, inner) */
                              const float *bias, /* (channels) */
                              size_t outer, size_t channels, size_t inner);
/* dx = dy (skipped when dx is NULL or dx == dy); dbias[c] = sum over o
 * ascending, then i ascending, of dy[o][c][i] (qat_reduce_sum_keepmid). */
void qat_bias_add_backward_ref(float *dx,       /* (outer, channels, inner), or NULL */
                               float *dbias,    /* (channels), or NULL */
                               const float *dy, /* (outer, channels, inner) */
                               size_t outer, size_t channels, size_t inner);

/* ---- mul (ops/mul.c) -------------------------------------------------------
 * Elementwise y = a * b. Any output may alias any input. */
void qat_mul_forward_ref(float *y, const float *a, const float *b, /* each (n) */
                         size_t n);
/* da = dy * b, db = dy * a. */
void qat_mul_backward_ref(float *da, float *db, /* each (n), or NULL */
                          const float *dy, const float *a, const float *b, /* each (n) */
                          size_t n);

/* ---- relu (ops/relu.c) -----------------------------------------------------
 * y = x > 0 ? x : 0, except that NaN propagates (PyTorch's threshold rule
 * `x <= 0 ? 0 : x`). dx = dy where x > 0, else 0 (gradient 0 at the kink x ==
 * 0, as PyTorch). The _from_y variant masks on y > 0 instead, which is the same
 * set; it lets the forward output replace the input in memory. Outputs may
 * alias inputs. */
void qat_relu_forward_ref(float *y, const float *x, /* each (n) */
                          size_t n);
void qat_relu_backward_ref(float *dx, const float *dy, const float *x, /* each (n) */
                           size_t n);
void qat_relu_backward_from_y_ref(float *dx, const float *dy, const float *y, /* each (n) */
                                  size_t n);

/* ---- gelu (ops/gelu.c) -----------------------------------------------------
 * Exact GELU: y = 0.5 x (1 + erf(x / sqrt 2)), with erff from libm.
 * dx = dy (0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)).
 * Outputs may alias inputs. */
void qat_gelu_forward_ref(float *y, const float *x, /* each (n) */
                          size_t n);
void qat_gelu_backward_ref(float *dx, const float *dy, const float *x, /* each (n) */
                           size_t n);
/* erf in float arithmetic from exp, mul, add and div only, for shaders (GLSL
 * has no erf) to copy line for line. Max absolute error 1.41e-7 against the
 * exact erf on all of R (measured with glibc's expf; the test asserts
 * <= 2e-7). Source and error analysis in gelu.c. */
float qat_erf_approx(float x);

/* ---- softmax_ce (ops/softmax_ce.c) -----------------------------------------
 * Softmax cross-entropy with integer labels. Per row i:
 * loss_i = logsumexp(logits[i]) - logits[i][labels[i]], computed with the row
 * max subtracted, so huge logits stay finite. Returns the batch mean of the
 * loss_i (summed in ascending i, then divided by batch); row_loss receives
 * the loss_i unless NULL. Labels must lie in [0, classes). */
float qat_softmax_ce_forward_ref(float *row_loss,       /* (batch), or NULL */
                                 const float *logits,   /* (batch, classes) */
                                 const int32_t *labels, /* (batch) */
                                 size_t batch, size_t classes);
/* dlogits[i][j] = (softmax(logits[i])[j] - (j == labels[i])) * (dloss / batch),
 * the gradient of the mean loss scaled by dloss. */
void qat_softmax_ce_backward_ref(float *dlogits,       /* (batch, classes) */
                                 const float *logits,  /* (batch, classes) */
                                 const int32_t *labels, /* (batch) */
                                 size_t batch, size_t classes, float dloss);

/* ---- reduce (ops/reduce.c) -------------------------------------------------
 * Input viewed as (outer, n, inner). sum / mean: output (outer, inner), the
 * sum over the middle axis in ascending order (mean then divides by n; n must
 * be > 0). A full reduction is outer = 1, inner = 1. keepmid: output (n), the
 * sum over outer ascending, then inner ascending (a bias gradient).
 * Backward broadcasts dy back (divided by n for mean). */
void qat_reduce_sum_forward_ref(float *y,       /* (outer, inner) */
                                const float *x, /* (outer, n, inner) */
                                size_t outer, size_t n, size_t inner);
void qat_reduce_sum_backward_ref(float *dx,       /* (outer, n, inner) */
                                 const float *dy, /* (outer, inner) */
                                 size_t outer, size_t n, size_t inner);
void qat_reduce_mean_forward_ref(float *y,       /* (outer, inner) */
                                 const float *x, /* (outer, n, inner) */
                                 size_t outer, size_t n, size_t inner);
void qat_reduce_mean_backward_ref(float *dx,       /* (outer, n, inner) */
                                  const float *dy, /* (outer, inner) */
                                  size_t outer, size_t n, size_t inner);
void qat_reduce_sum_keepmid_forward_ref(float *y,       /* (n) */
                                        const float *x, /* (outer, n, inner) */
                                        size_t outer, size_t n, size_t inner);
void qat_reduce_sum_keepmid_backward_ref(float *dx,       /* (outer, n, inner) */
                                         const float *dy, /* (n) */
                                         size_t outer, size_t n, size_t inner);

/* ---- conv2d (ops/conv2d.c) -------------------------------------------------
 * x (N, C, H, W) * w (O, C, KH, KW) -> y (N, O, OH, OW), no bias (bias is
 * bias_add with inner = OH * OW). One stride and one zero padding, the same
 * for both spatial axes; no dilation, no groups. OH = (H + 2 pad - KH) / stride
 * + 1 (floor), likewise OW; H + 2 pad >= KH and W + 2 pad >= KW required. */
typedef struct qat_conv2d_dims {
    size_t n, c, h, w; /* input */
    size_t o, kh, kw;  /* weight (o, c, kh, kw) */
    size_t stride;     /* >= 1 */
    size_t pad;
} qat_conv2d_dims;

size_t qat_conv2d_out_h(const qat_conv2d_dims *d);
size_t qat_conv2d_out_w(const qat_conv2d_dims *d);

/* y[n][o][oh][ow] = sum over c, then kh, then kw (each ascending) of
 * x[n][c][oh*stride + kh - pad][ow*stride + kw - pad] * w[o][c][kh][kw],
 * padding taps skipped. */
void qat_conv2d_forward_ref(float *y,       /* (N, O, OH, OW) */
                            const float *x, /* (N, C, H, W) */
                            const float *w, /* (O, C, KH, KW) */
                            const qat_conv2d_dims *d);
/* dx[n][c][ih][iw] = sum over o, then kh, then kw (ascending) of
 * dy[n][o][oh][ow] * w[o][c][kh][kw] over the taps with ih = oh*stride + kh -
 * pad and iw = ow*stride + kw - pad; rows/columns no window covers get 0.
 * dw[o][c][kh][kw] = sum over n, then oh, then ow (ascending) of
 * dy[n][o][oh][ow] * x[n][c][oh*stride + kh - pad][ow*stride + kw - pad],
 * padding taps skipped. */
void qat_conv2d_backward_ref(float *dx,       /* (N, C, H, W), or NULL */
                             float *dw,       /* (O, C, KH, KW), or NULL */
                             const float *dy, /* (N, O, OH, OW) */
                             const float *x,  /* (N, C, H, W) */
                             const float *w,  /* (O, C, KH, KW) */
                             const qat_conv2d_dims *d);
/* im2col: col[n][(c*KH + kh)*KW + kw][oh*OW + ow] = x[n][c][ih][iw] with ih, iw
 * as above, 0 in the padding; then y_n = w (O, C*KH*KW) x col_n is the conv.
 * col2im is its adjoint written as a gather: x[n][c][ih][iw] = sum over kh,
 * then kw (ascending) of the col entries that im2col copied from (ih, iw). */
void qat_im2col_ref(float *col,     /* (N, C*KH*KW, OH*OW) */
                    const float *x, /* (N, C, H, W) */
                    const qat_conv2d_dims *d);
void qat_col2im_ref(float *x,         /* (N, C, H, W) */
                    const float *col, /* (N, C*KH*KW, OH*OW) */
                    const qat_conv2d_dims *d);

/* ---- maxpool2d (ops/maxpool2d.c) -------------------------------------------
 * 2x2 window, stride 2, no padding: (N, C, H, W) -> (N, C, H/2, W/2), floor,
 * so an odd last row/column is never read (PyTorch's default). H, W >= 2.
 * Window scan in row-major order keeps the first maximum; a NaN wins (PyTorch
 * CPU's rule `v > best || isnan(v)`). Backward: each input element gets the
 * whole dy of its window if it is that window's chosen element, else 0
 * (a gather over input elements; the odd last row/column gets 0). */
void qat_maxpool2d_forward_ref(float *y,       /* (N, C, H/2, W/2) */
                               const float *x, /* (N, C, H, W) */
                               size_t n, size_t c, size_t h, size_t w);
void qat_maxpool2d_backward_ref(float *dx,       /* (N, C, H, W) */
                                const float *dy, /* (N, C, H/2, W/2) */
                                const float *x,  /* (N, C, H, W) */
                                size_t n, size_t c, size_t h, size_t w);

/* ---- optimizers (ops/optim.c) ----------------------------------------------
 * In-place updates of flat arrays with PyTorch's semantics and operation
 * order. Hyperparameters are double, like PyTorch's Python floats: scalar
 * expressions of them are evaluated in double and rounded to float once, then
 * all per-element arithmetic is float. PyTorch's vectorised CPU kernels fuse
 * `add_(t, alpha=a)` and `addcmul_` into fmas; these references round each
 * product instead (with fmaf in those places they reproduce torch 1.13's
 * results bit for bit, checked), so they differ from PyTorch by about one
 * rounding of the product term per such operation. */

/* torch.optim.SGD with dampening 0, no nesterov:
 *   g = grad + wd * p;  buf = momentum * buf + g;  p = p - lr * buf.
 * buf must be all zeros before the first step: 0 * momentum + g == g exactly,
 * which is PyTorch's "buf = clone(g)" on step 1 (true only because dampening
 * is 0). With momentum 0, buf may be NULL (then buf == g, as PyTorch). */
typedef struct qat_sgd_hparams {
    double lr, momentum, weight_decay;
} qat_sgd_hparams;
/* The floor of QAT_OP_PARAM_FLOOR: p[i] = lo where p[i] < lo. */
void qat_param_floor_ref(float *p, size_t n, float lo);

void qat_sgd_update_ref(float *param,      /* (n) */
                        const float *grad, /* (n) */
                        float *buf,        /* (n) momentum buffer, or NULL if momentum == 0 */
                        size_t n, const qat_sgd_hparams *h);

/* torch.optim.AdamW, amsgrad off:
 *   p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * for step t = 1, 2, ... (m and v start at zero). */
typedef struct qat_adamw_hparams {
    double lr, beta1, beta2, eps, weight_decay;
} qat_adamw_hparams;
/* The float scalars of step t, exactly as PyTorch rounds them; a shader gets
 * these as uniforms so that it can reproduce qat_adamw_update_ref. */
typedef struct qat_adamw_step_scalars {
    float decay;           /* 1 - lr * wd */
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float bias_c2_sqrt;    /* sqrt(1 - beta2^t) */
    float eps;
    float neg_step_size;   /* -lr / (1 - beta1^t) */
} qat_adamw_step_scalars;
qat_adamw_step_scalars qat_adamw_scalars(const qat_adamw_hparams *h, uint64_t step);
/* Per element, in PyTorch's order:
 *   p = p * decay
 *   m = m * beta1 + one_minus_beta1 * g
 *   v = v * beta2 + (one_minus_beta2 * g) * g
 *   p = p + (neg_step_size * m) / (sqrtf(v) / bias_c2_sqrt + eps) */
void qat_adamw_update_ref(float *param,      /* (n) */
                          const float *grad, /* (n) */
                          float *m,          /* (n) first moment, zero before step 1 */
                          float *v,          /* (n) second moment, zero before step 1 */
                          size_t n, const qat_adamw_hparams *h,
                          uint64_t step /* t, starting at 1 */);

/* ---- dropout (ops/dropout.c) -----------------------------------------------
 * Element i keeps its value, scaled by 1 / (1 - p), when the 24 high bits of
 * word i of the Philox stream (seed, stream) (qat_rng_u32_at) are at least
 * floor(p * 2^24); otherwise it becomes 0. The backward applies the same mask
 * and scale to dy, so it is this function applied to dy. */
uint32_t qat_dropout_threshold(float p);
void qat_dropout_forward_ref(float *y, const float *x, /* each (n) */
                             size_t n, float p, uint64_t seed, uint64_t stream);

/* ---- fake quantization (ops/fake_quant.c) ---------------------------------
 * Forward, for element i with s = scale[k], z = zero_point[k] and
 * k = qat_fq_scale_index(layout, i):
 *   inv = 1.0f / s;  qf = z + roundEven(x * inv);  q = clamp(qf, qmin, qmax);
 *   y = (q - z) * s
 * (the float32 reciprocal, the zero point added after rounding: PyTorch's
 * fake_quantize_per_tensor_affine / _per_channel_affine bit for bit). For
 * QAT_FQ_PACT, s = alpha / qmax, z = 0, and x is first clamped to [0, alpha].
 * Backward: see qat_fq_estimator in ops/ops.h. dscale (scale count elements)
 * is overwritten with, for each k, the sum over the elements i of group k in
 * ascending i of their contributions, times grad_scale for LSQ; dscale NULL
 * skips it (it is also left alone for the STE estimators). zero_point is not
 * read for PACT and may be NULL there. */
struct qat_fq_params;
/* qmax: (scale count) per-element tops of the code range
 * (qat_fake_quant_ranged), or NULL for p->qmax. */
void qat_fake_quant_forward_ref(float *y, const float *x, /* each (n) */
                                size_t n, const float *scale, const float *zero_point, const float *qmax,
                                const struct qat_fq_params *p);
void qat_fake_quant_backward_ref(float *dx,       /* (n) or NULL */
                                 float *dscale,   /* (scale count) or NULL */
                                 const float *dy, const float *x, /* each (n) */
                                 size_t n, const float *scale, const float *zero_point, const float *qmax,
                                 const struct qat_fq_params *p);

/* ---- embedding (ops/embedding.c) -------------------------------------------
 * A lookup: y[t][c] = table[ids[t]][c] for the n tokens t; every id must lie
 * in [0, vocab). The backward is its adjoint written as a gather over table
 * rows: dtable[v][c] = sum over the tokens t with ids[t] == v, t ascending,
 * of dy[t][c] (rows no token uses get 0). The ids get no gradient. */
void qat_embedding_forward_ref(float *y,             /* (n, dim) */
                               const float *table,   /* (vocab, dim) */
                               const int32_t *ids,   /* (n) */
                               size_t n, size_t vocab, size_t dim);
void qat_embedding_backward_ref(float *dtable,       /* (vocab, dim) */
                                const float *dy,     /* (n, dim) */
                                const int32_t *ids,  /* (n) */
                                size_t n, size_t vocab, size_t dim);

/* ---- layer_norm (ops/layer_norm.c) -----------------------------------------
 * PyTorch's nn.LayerNorm over the last axis of x viewed as (rows, C). Per row,
 * with every sum over c ascending:
 *   mean = (sum x[c]) / C;  var = (sum (x[c] - mean)^2) / C (biased);
 *   rstd = 1 / sqrtf(var + eps);  xhat[c] = (x[c] - mean) * rstd;
 *   y[c] = xhat[c] * gamma[c] + beta[c].
 * mean and rstd receive the row statistics unless NULL. */
void qat_layer_norm_forward_ref(float *y,           /* (rows, C) */
                                float *mean,        /* (rows), or NULL */
                                float *rstd,        /* (rows), or NULL */
                                const float *x,     /* (rows, C) */
                                const float *gamma, /* (C) */
                                const float *beta,  /* (C) */
                                size_t rows, size_t c, float eps);
/* With mean, rstd and xhat recomputed from x as above, g[c] = dy[c] * gamma[c]
 * and, over c ascending, a = (sum g[c]) / C, b = (sum g[c] * xhat[c]) / C:
 *   dx[c] = ((g[c] - a) - xhat[c] * b) * rstd;
 *   dgamma[c] = sum over rows ascending of dy[c] * xhat[c];
 *   dbeta[c] = sum over rows ascending of dy[c]. */
void qat_layer_norm_backward_ref(float *dx,          /* (rows, C), or NULL */
                                 float *dgamma,      /* (C), or NULL */
                                 float *dbeta,       /* (C), or NULL */
                                 const float *dy,    /* (rows, C) */
                                 const float *x,     /* (rows, C) */
                                 const float *gamma, /* (C) */
                                 size_t rows, size_t c, float eps);

/* ---- causal_softmax (ops/causal_softmax.c) ---------------------------------
 * Attention weights: x (batch, T, T), row (b, t) attends to the columns
 * s <= t. Per row, over s ascending from 0 to t:
 *   m = max scale * x[s];  e[s] = expf(scale * x[s] - m);  sum = sum e[s];
 *   y[s] = e[s] / sum for s <= t, and exactly 0 for s > t.
 * The backward, per row with d = sum over s <= t ascending of y[s] * dy[s]:
 *   dx[s] = scale * (y[s] * (dy[s] - d)) for s <= t, 0 for s > t.
 * dx may alias dy. */
void qat_causal_softmax_forward_ref(float *y,       /* (batch, T, T) */
                                    const float *x, /* (batch, T, T) */
                                    size_t batch, size_t t, float scale);
void qat_causal_softmax_backward_ref(float *dx,       /* (batch, T, T) */
                                     const float *dy, /* (batch, T, T) */
                                     const float *y,  /* (batch, T, T), the forward's output */
                                     size_t batch, size_t t, float scale);

/* ---- transpose12 (ops/transpose.c) -----------------------------------------
 * Swaps axes 1 and 2: y[a][j][i][k] = x[a][i][j][k] for x (A, B, C, D) and
 * y (A, C, B, D). Its own adjoint: the backward is the same function applied
 * to dy with B and C exchanged. */
void qat_transpose12_ref(float *y,       /* (A, C, B, D) */
                         const float *x, /* (A, B, C, D) */
                         size_t a, size_t b, size_t c, size_t d);

/* ---- matmul_q4 (ops/matmul_q4.c) ------------------------------------------
 * A linear layer whose weight W (out, in) = (w->rows, w->cols) is a 4-bit
 * qat_q4_weight (ops/q4_format.h), dequantized element by element, never
 * stored: W[o][i] = qat_q4_dequant(type, code e, A(e / 64)) for e = o * in + i,
 * where A(b) = qat_q4_weight_block_absmax(w, map, b).
 * Forward: y[r][o] = (sum over i ascending of x[r][i] * W[o][i]) + bias[o]
 * (no bias when NULL). Backward, input only (W is frozen):
 * dx[r][i] = sum over o ascending of dy[r][o] * W[o][i]. */
struct qat_q4_weight;
void qat_matmul_q4_forward_ref(float *y,       /* (rows, out) */
                               const float *x, /* (rows, in) */
                               size_t rows, const struct qat_q4_weight *w,
                               const float *bias /* (out), or NULL */);
void qat_matmul_q4_backward_input_ref(float *dx,       /* (rows, in) */
                                      const float *dy, /* (rows, out) */
                                      size_t rows, const struct qat_q4_weight *w);

#endif
