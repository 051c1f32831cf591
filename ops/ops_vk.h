/* Internal: builders used by backward rules across op files, and each op's
 * definition, collected into qat_op_defs by ops/ops.c. */
#ifndef QAT_OPS_VK_H
#define QAT_OPS_VK_H

#include "ops/ops.h"
#include "qat/graph.h"

int qat_relu_back(qat_graph *g, int dy, int y);
/* (outer, n, inner) -> (n): the sum over outer and inner (bias gradients). */
int qat_sum_keep(qat_graph *g, int x, int64_t outer, int64_t n, int64_t inner);
/* y (outer, n, inner) = x (outer, inner) * scale; `like` gives y's shape. */
int qat_broadcast(qat_graph *g, int x, int like, int64_t outer, int64_t n, int64_t inner, float scale);
/* A matmul node with an epilogue: bias (length n) added, then relu for
 * QAT_EPILOGUE_BIAS_RELU. */
int qat_matmul_ex(qat_graph *g, int a, int b, bool trans_a, bool trans_b, int bias, qat_epilogue epilogue);
/* dx (shaped like `like`, rows x in) = dy (rows x out) @ W for a 4-bit weight. */
int qat_matmul_q4_back_input(qat_graph *g, int dy, const qat_q4_weight_tensors *w, int like);

extern const qat_op_def qat_op_matmul_def, qat_op_bias_add_def, qat_op_add_def, qat_op_mul_def,
    qat_op_relu_def, qat_op_relu_back_def, qat_op_gelu_def, qat_op_gelu_back_def, qat_op_softmax_ce_def,
    qat_op_softmax_ce_back_def, qat_op_sum_def, qat_op_mean_def, qat_op_sum_keep_def, qat_op_broadcast_def,
    qat_op_conv2d_def, qat_op_conv2d_back_input_def, qat_op_conv2d_back_weight_def, qat_op_maxpool2d_def,
    qat_op_maxpool2d_back_def, qat_op_reshape_def, qat_op_sgd_def, qat_op_adamw_def, qat_op_param_floor_def, qat_op_im2col_def,
    qat_op_col2im_def, qat_op_conv2d_pack_def, qat_op_conv2d_pad_def, qat_op_dropout_def, qat_op_fake_quant_def,
    qat_op_fake_quant_back_def, qat_op_fake_quant_back_scale_def, qat_op_embedding_def, qat_op_embedding_back_def,
    qat_op_layer_norm_def, qat_op_layer_norm_back_def, qat_op_layer_norm_back_gamma_def, qat_op_causal_softmax_def,
    qat_op_causal_softmax_back_def, qat_op_transpose12_def, qat_op_matmul_q4_def,
    qat_op_matmul_q4_back_input_def;

#endif
