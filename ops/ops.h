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

#endif
