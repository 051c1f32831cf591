/* The op set. Each op lives in two files of ops/: <op>.c holds its CPU
 * reference (plain loops; the spec the shaders are tested against, declared
 * in ops_ref.h) and <op>_vk.c its graph builder, backward rule and dispatch
 * encoding; its kernel is shaders/<kernel>.comp; its tests are the rows of
 * tests/test_ops_vk.c (GPU against reference) and tests/test_ops_ref.c
 * (finite differences). */
#ifndef QAT_OPS_H
#define QAT_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/q4_format.h"

typedef enum qat_op {
    QAT_OP_MATMUL,              /* batched C = op(A) op(B), optional bias/relu epilogue */
    QAT_OP_BIAS_ADD,            /* y = x + b over (outer, channels, inner) */
    QAT_OP_ADD,                 /* y = a + b, same shapes */
    QAT_OP_MUL,                 /* y = a * b, same shapes */
    QAT_OP_RELU,                /* y = max(x, 0) */
    QAT_OP_RELU_BACK,           /* dx = dy * (y > 0) */
    QAT_OP_GELU,                /* exact (erf) GELU */
    QAT_OP_GELU_BACK,           /* dx = dy * gelu'(x) */
    QAT_OP_SOFTMAX_CE,          /* mean cross-entropy of logits against int labels */
    QAT_OP_SOFTMAX_CE_BACK,     /* dlogits */
    QAT_OP_SUM,                 /* (outer, n, inner) -> (outer, inner) */
    QAT_OP_MEAN,                /* same, divided by n */
    QAT_OP_SUM_KEEP,            /* (outer, n, inner) -> (n): bias gradients */
    QAT_OP_BROADCAST,           /* (outer, inner) -> (outer, n, inner), times a scale */
    QAT_OP_CONV2D,              /* NCHW x, OIHW w, stride, zero padding */
    QAT_OP_CONV2D_BACK_INPUT,   /* column gradient from dy and w (then COL2IM gives dx) */
    QAT_OP_CONV2D_BACK_WEIGHT,  /* partial sums of dw from dy and the columns (then SUM) */
    QAT_OP_MAXPOOL2D,           /* 2x2, stride 2 */
    QAT_OP_MAXPOOL2D_BACK,      /* dx: dy to the first maximum of each window */
    QAT_OP_RESHAPE,             /* a view: no dispatch */
    QAT_OP_SGD,                 /* in-place update of the flat parameter buffer */
    QAT_OP_ADAMW,               /* in-place update of the flat parameter buffer */
    QAT_OP_IM2COL,              /* conv2d's x -> columns (N, C*KH*KW rounded to 4, OH*OW rounded to 4) */
    QAT_OP_COL2IM,              /* conv2d's column gradient -> dx, as a gather */
    QAT_OP_CONV2D_PACK,         /* conv2d weights zero-padded to (O, Kp), or transposed to (Kp, Op) */
    QAT_OP_CONV2D_PAD,          /* conv2d dy rows (N*O, OH*OW) zero-padded to a multiple of 4 */
    QAT_OP_DROPOUT,             /* y = x * keep / (1 - p), keep drawn from Philox per step; identity in eval */
    QAT_OP_FAKE_QUANT,          /* y = (clamp(roundEven(x * (1/s)) + z, qmin, qmax) - z) * s */
    QAT_OP_FAKE_QUANT_BACK,     /* dx under the node's gradient estimator */
    QAT_OP_FAKE_QUANT_BACK_SCALE, /* d scale (LSQ) or d alpha (PACT): one fixed-order sum per scale */
    QAT_OP_EMBEDDING,           /* y = table[ids] */
    QAT_OP_EMBEDDING_BACK,      /* d table: per row, the dy of its tokens summed in token order */
    QAT_OP_LAYER_NORM,          /* y = (x - mean) * rstd * gamma + beta over the last axis */
    QAT_OP_LAYER_NORM_BACK,     /* dx, row statistics recomputed from x */
    QAT_OP_LAYER_NORM_BACK_GAMMA, /* partial sums of dy * xhat over chunks of rows (then SUM) */
    QAT_OP_CAUSAL_SOFTMAX,      /* softmax of scale * x over columns s <= t of row t, 0 above */
    QAT_OP_CAUSAL_SOFTMAX_BACK, /* dx = scale * y * (dy - sum y dy) */
    QAT_OP_TRANSPOSE12,         /* (A, B, C, D) -> (A, C, B, D) */
    QAT_OP_MATMUL_Q4,           /* y = x @ W^T (+ bias), W 4-bit (NF4/FP4), dequantized on the fly */
    QAT_OP_MATMUL_Q4_BACK_INPUT, /* dx = dy @ W, W 4-bit, dequantized on the fly */
    QAT_OP_PARAM_FLOOR,         /* in place after the optimizer: p = max(p, lo), NaN kept */
    QAT_OP_COUNT
} qat_op;

struct qat_graph;
struct qat_node;
struct qat_dispatch;

typedef struct qat_op_def {
    const char *name;
    /* Fills the dispatch for a node; NULL for views, which need none. */
    void (*encode)(const struct qat_graph *g, const struct qat_node *node, struct qat_dispatch *d);
    /* Appends the nodes of the gradient: given dy = d(loss)/d(output), sets
     * dx[i] to d(loss)/d(input i) for every input that requires grad (-1 for
     * the others). NULL for ops that are never differentiated. */
    void (*backward)(struct qat_graph *g, int node, int dy, int *dx);
} qat_op_def;

/* Indexed by qat_op; every row is filled (checked by a test). */
extern const qat_op_def *const qat_op_defs[QAT_OP_COUNT];

/* Builders: add a node, return the id of the tensor it produces. */
typedef enum qat_epilogue { QAT_EPILOGUE_NONE, QAT_EPILOGUE_BIAS, QAT_EPILOGUE_BIAS_RELU } qat_epilogue;

/* a: (batch?, m, k) or, transposed, (batch?, k, m); b likewise (k, n) / (n, k).
 * A 2-d operand beside a 3-d one is broadcast over the batch. */
int qat_matmul(struct qat_graph *g, int a, int b, bool trans_a, bool trans_b);
/* y = x @ w^T + bias for x (batch, in), w (out, in), bias (out): a linear layer. */
int qat_linear(struct qat_graph *g, int x, int w, int bias);
int qat_bias_add(struct qat_graph *g, int x, int bias, int axis);
int qat_add(struct qat_graph *g, int a, int b);
int qat_mul(struct qat_graph *g, int a, int b);
int qat_relu(struct qat_graph *g, int x);
/* y = s * x: a constant factor (LoRA's alpha / r). */
int qat_scale(struct qat_graph *g, int x, float s);
int qat_gelu(struct qat_graph *g, int x);
/* logits (batch, classes) F32, labels (batch) I32 -> scalar mean loss. */
int qat_softmax_ce(struct qat_graph *g, int logits, int labels);
/* Reduce over `axis` (-1 = all elements). */
int qat_sum(struct qat_graph *g, int x, int axis);
int qat_mean(struct qat_graph *g, int x, int axis);
int qat_conv2d(struct qat_graph *g, int x, int w, int stride, int padding);
int qat_maxpool2d(struct qat_graph *g, int x);
int qat_reshape(struct qat_graph *g, int x, int ndim, const int64_t *shape);
int qat_flatten(struct qat_graph *g, int x); /* (n, ...) -> (n, rest) */
/* Dropout with probability p in [0, 1). The mask of step t is drawn from
 * stream (salt << 32 | t) of `seed` (see ops/dropout.c), so it is the same on
 * every device; the backward applies the same mask. */
int qat_dropout(struct qat_graph *g, int x, float p, uint64_t seed, uint32_t salt);

/* ---- transformer ops (ops/embedding*.c, layer_norm*.c, causal_softmax*.c,
 * transpose*.c) ----------------------------------------------------------- */

/* Token embedding lookup: table (vocab, dim) F32, ids I32 of any shape (n
 * elements, values in [0, vocab)) -> (ids shape..., dim). Only the table gets
 * a gradient, with no atomics: each table element sums the dy rows of the
 * tokens that use it in ascending token order (each row's invocations scan
 * all n ids: vocab * n compares, cheap for a vocabulary of hundreds, not of
 * tens of thousands). An id outside [0, vocab) gives a zero row on the
 * device (and contributes no gradient). */
int qat_embedding(struct qat_graph *g, int table, int ids);
/* LayerNorm over the last axis with PyTorch's nn.LayerNorm semantics (biased
 * variance, eps inside the square root): x (..., C), gamma (C), beta (C).
 * Gradients: dx (a kernel recomputing each row's mean and rstd from x),
 * d gamma = sum over rows of dy * xhat (partial sums over fixed chunks of
 * rows, then their sum), d beta = sum over rows of dy. */
int qat_layer_norm(struct qat_graph *g, int x, int gamma, int beta, float eps);
/* Causal softmax over the last axis of x (batch, T, T) (batch = B * heads;
 * more leading axes fold into it): y[b,t,s] = exp(scale x[b,t,s] - max) /
 * sum over s' <= t of the same, for s <= t, and exactly 0 for s > t.
 * Backward: dx = scale * y * (dy - sum_s y dy) per row (0 above the diagonal). */
int qat_causal_softmax(struct qat_graph *g, int x, float scale);
/* Swaps axes 1 and 2 of a 4-d tensor: (A, B, C, D) -> (A, C, B, D). Splits
 * attention heads, (batch, T, heads, hd) -> (batch, heads, T, hd), and merges
 * them back; its backward is itself. */
int qat_transpose12(struct qat_graph *g, int x);

/* ---- fake quantization (ops/fake_quant.c, ops/fake_quant_vk.c) -------------
 * Which scale (and zero point) element x[i] uses, for a tensor of n elements:
 *   group == 0: (i / inner) % channels   per tensor: inner = n, channels = 1;
 *                                        per channel along an axis: inner = the
 *                                        product of the dimensions after it
 *   group  > 0: (i / row) * ceil(row / group) + (i % row) / group
 *               groups of `group` consecutive elements within each row of
 *               `row` elements (the last group of a row may be short) */
typedef struct qat_fq_layout {
    int64_t inner, channels, row, group;
} qat_fq_layout;

qat_fq_layout qat_fq_per_tensor(int64_t numel);
/* Axis 0 of a tensor whose dimensions after it hold `inner` elements; any
 * other axis too, since the index wraps modulo `channels`: axis 1 of
 * (N, C, H, W) is qat_fq_per_channel(C, H * W). */
qat_fq_layout qat_fq_per_channel(int64_t channels, int64_t inner);
qat_fq_layout qat_fq_per_group(int64_t row, int64_t group);
int64_t qat_fq_scale_count(const qat_fq_layout *layout, int64_t numel);
int64_t qat_fq_scale_index(const qat_fq_layout *layout, int64_t i);

typedef enum qat_fq_estimator {
    /* dx = dy where qmin <= zero_point + roundEven(x * (1/s)) <= qmax, taken
     * before the clamp, else 0 (PyTorch's fake_quantize backward). */
    QAT_FQ_STE_CLIPPED,
    QAT_FQ_STE,   /* dx = dy everywhere */
    /* Clipped dx, and the learned step size (Esser et al.): per element
     * dy * (y - x) / s inside the range, dy * (qmin - z) below, dy * (qmax - z)
     * above, summed per scale element, times grad_scale. */
    QAT_FQ_LSQ,
    /* PACT: the `scale` input holds alpha (the clip); x is clipped to
     * [0, alpha] and quantized with s = alpha / qmax, z = 0 (zero_point is not
     * read). dx = dy where 0 <= x < alpha; d alpha = dy where x >= alpha,
     * summed per scale element. */
    QAT_FQ_PACT,
    QAT_FQ_ESTIMATOR_COUNT
} qat_fq_estimator;

typedef struct qat_fq_params {
    int32_t qmin, qmax;          /* the code range, e.g. 0 and 2^bits - 1 */
    qat_fq_layout layout;
    qat_fq_estimator estimator;
    float grad_scale;            /* LSQ: usually 1 / sqrt(numel * Qp); ignored otherwise */
} qat_fq_params;

/* scale: F32 tensor of qat_fq_scale_count elements (alpha for PACT);
 * zero_point: F32 tensor of integral values, same count (-1 for PACT). The
 * scale gets a gradient (LSQ, PACT) when it is a trainable parameter; the zero
 * point never does. */
int qat_fake_quant(struct qat_graph *g, int x, int scale, int zero_point, const qat_fq_params *p);
/* The same with a code range's top per scale element: qmax is an F32 tensor
 * of qat_fq_scale_count integral values in (qmin, 2^24] (mixed widths across
 * a weight's rows), read in place of p->qmax everywhere, LSQ's gradient
 * included; -1 is qat_fake_quant. Not with PACT. */
int qat_fake_quant_ranged(struct qat_graph *g, int x, int scale, int zero_point, int qmax, const qat_fq_params *p);

/* A floor on a trainable parameter, applied in place each time the node
 * runs: p = lo where p < lo (NaN stays NaN, as torch.clamp_). Added after
 * the optimizer, it keeps LSQ's learned steps positive as PyTorch's
 * _LearnableFakeQuantize does (scale.clamp_(min=eps) before each forward).
 * Reference: qat_param_floor_ref (ops/optim.c). Returns the node. */
int qat_param_floor(struct qat_graph *g, int param, float lo);

/* ---- 4-bit matmul (ops/matmul_q4.c, ops/matmul_q4_vk.c) ------------------
 * The tensors of one frozen 4-bit weight (out, in), made by
 * qat_q4_weight_add (qat/q4.h), none trainable. */
typedef struct qat_q4_weight_tensors {
    qat_q4_type type;
    int64_t out, in;
    bool double_quant;
    int packed; /* U8 (ceil(out * in / 2)): two codes per byte, high nibble first */
    int absmax; /* U8 (nblocks) codes with double quantization, else F32 (nblocks) */
    int scales; /* F32 (ceil(nblocks / 256)) with double quantization, else -1 */
    int table;  /* F32 (QAT_Q4_TABLE_LEN): codebook, dynamic map, offset */
} qat_q4_weight_tensors;

/* y = x @ W^T + bias with x (rows, in) or (B, T, in), bias (out) or -1: a
 * linear layer whose weight is only ever read as 4-bit codes. The backward
 * gives x (and a trainable bias) their gradients; W has none. */
int qat_matmul_q4(struct qat_graph *g, int x, const qat_q4_weight_tensors *w, int bias);

#endif
