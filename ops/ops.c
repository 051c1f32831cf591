/* The op table: one row per QAT_OP_*. Its size is QAT_OP_COUNT by
 * declaration; tests/test_ops_vk.c checks that no row is missing. */
#include "ops/ops_vk.h"

const qat_op_def *const qat_op_defs[QAT_OP_COUNT] = {
    [QAT_OP_MATMUL] = &qat_op_matmul_def,
    [QAT_OP_BIAS_ADD] = &qat_op_bias_add_def,
    [QAT_OP_ADD] = &qat_op_add_def,
    [QAT_OP_MUL] = &qat_op_mul_def,
    [QAT_OP_RELU] = &qat_op_relu_def,
    [QAT_OP_RELU_BACK] = &qat_op_relu_back_def,
    [QAT_OP_GELU] = &qat_op_gelu_def,
    [QAT_OP_GELU_BACK] = &qat_op_gelu_back_def,
    [QAT_OP_SOFTMAX_CE] = &qat_op_softmax_ce_def,
    [QAT_OP_SOFTMAX_CE_BACK] = &qat_op_softmax_ce_back_def,
    [QAT_OP_SUM] = &qat_op_sum_def,
    [QAT_OP_MEAN] = &qat_op_mean_def,
    [QAT_OP_SUM_KEEP] = &qat_op_sum_keep_def,
    [QAT_OP_BROADCAST] = &qat_op_broadcast_def,
    [QAT_OP_CONV2D] = &qat_op_conv2d_def,
    [QAT_OP_CONV2D_BACK_INPUT] = &qat_op_conv2d_back_input_def,
    [QAT_OP_CONV2D_BACK_WEIGHT] = &qat_op_conv2d_back_weight_def,
    [QAT_OP_MAXPOOL2D] = &qat_op_maxpool2d_def,
    [QAT_OP_MAXPOOL2D_BACK] = &qat_op_maxpool2d_back_def,
    [QAT_OP_RESHAPE] = &qat_op_reshape_def,
    [QAT_OP_SGD] = &qat_op_sgd_def,
    [QAT_OP_ADAMW] = &qat_op_adamw_def,
    [QAT_OP_IM2COL] = &qat_op_im2col_def,
    [QAT_OP_COL2IM] = &qat_op_col2im_def,
    [QAT_OP_CONV2D_PACK] = &qat_op_conv2d_pack_def,
    [QAT_OP_CONV2D_PAD] = &qat_op_conv2d_pad_def,
    [QAT_OP_DROPOUT] = &qat_op_dropout_def,
};
