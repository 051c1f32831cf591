/* Internal to the model files (qat/nn.c, qat/gpt.c): building descriptions
 * and the layer steps every architecture shares. */
#ifndef QAT_NN_INTERNAL_H
#define QAT_NN_INTERNAL_H

#include "qat/nn.h"

/* Appends a parameter; returns its index. */
int qat_desc_add_param(qat_model_desc *d, const char *name, int ndim, const int64_t *shape, qat_param_init init,
                       float init_arg);
/* Appends a layer (name and shape fields of `shape_only`) with its weight
 * and bias parameters; returns its index. */
int qat_desc_add_layer(qat_model_desc *d, const qat_layer_info *shape_only, qat_param_init weight_init,
                       float weight_arg, qat_param_init bias_init, float bias_arg);

/* Starts layer `index` (the next one) on input x: records its tensors and
 * applies its quantizers (q may be NULL). *x_used is the input as the layer
 * consumes it; returns the weight as the layer uses it. */
int qat_model_layer_begin(qat_graph *g, qat_model *m, const qat_model_quant *q, int index, int x, int *x_used);
/* The next layer as a linear layer: x @ W^T + b with the epilogue. */
int qat_model_linear(qat_graph *g, qat_model *m, const qat_model_quant *q, int x, qat_epilogue epilogue);

qat_status qat_gpt_desc_init(qat_model_desc *d, const qat_gpt_config *c);
/* Creates the gpt's inputs (m->x, m->labels) and graph on the parameters
 * already in m->params; returns the logits (batch * context, vocab). */
int qat_gpt_build(qat_graph *g, qat_model *m, const qat_model_quant *q);

#endif
