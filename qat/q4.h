/* QLoRA's frozen 4-bit base weights on the host: blockwise NF4 / FP4
 * quantization with optional double quantization of the absmax values, as
 * bitsandbytes' CUDA kernels do it (the spec is the comment in
 * ops/q4_format.h), and the graph tensors that carry such a weight to
 * qat_matmul_q4 (ops/ops.h).
 *
 * Typical use, for a trained FP32 linear weight w (out, in):
 *   qat_q4_weight q;
 *   qat_q4_weight_init(&q, QAT_Q4_NF4, out, in, true);
 *   qat_q4_weight_quantize(&q, w);
 *   qat_q4_weight_tensors t = qat_q4_weight_add(g, "blocks.0.attn.q.weight", QAT_Q4_NF4, out, in, true);
 *   int y = qat_matmul_q4(g, x, &t, bias);   // bias may be -1
 *   ... qat_graph_compile(g); qat_q4_weight_upload(g, &t, &q); qat_q4_weight_free(&q);
 */
#ifndef QAT_Q4_H
#define QAT_Q4_H

#include "ops/ops.h"
#include "ops/q4_format.h"
#include "qat/graph.h"

/* Sizes for n weights. */
int64_t qat_q4_packed_bytes(int64_t n); /* ceil(n / 2) */
int64_t qat_q4_block_count(int64_t n);  /* ceil(n / 64) */
int64_t qat_q4_scale_count(int64_t nblocks); /* ceil(nblocks / 256) */

/* Blockwise 4-bit quantization of x (n floats, flattened): packed codes
 * (qat_q4_packed_bytes(n)) and the absmax of every block of 64
 * (qat_q4_block_count(n), the last block possibly short). */
void qat_q4_quantize(qat_q4_type type, const float *x, int64_t n, uint8_t *packed, float *absmax);
/* x[i] = codebook[code i] * absmax[i / 64]. */
void qat_q4_dequantize(qat_q4_type type, const uint8_t *packed, const float *absmax, int64_t n, float *x);

/* Double quantization of nblocks absmax values. The offset is their mean,
 * correctly rounded (see ops/q4_format.h); the centred values absmax - offset
 * get one 8-bit code each in the dynamic map and one F32 scale per 256
 * (qat_q4_scale_count(nblocks)). */
float qat_q4_absmax_mean(const float *absmax, int64_t nblocks);
void qat_q4_double_quantize(const float *absmax, int64_t nblocks, float offset, uint8_t *codes, float *scales);
/* absmax[b] = fl(fl(map[codes[b]] * scales[b / 256]) + offset). */
void qat_q4_double_dequantize(const uint8_t *codes, const float *scales, float offset, int64_t nblocks,
                              float *absmax);

/* A quantized weight (the struct is in ops/q4_format.h). init allocates
 * zeroed arrays for a (rows, cols) = (out, in) weight; quantize fills them
 * from FP32 values (rows, cols); dequantize writes the FP32 values the
 * matmul computes with. */
void qat_q4_weight_init(qat_q4_weight *w, qat_q4_type type, int64_t rows, int64_t cols, bool double_quant);
void qat_q4_weight_free(qat_q4_weight *w);
void qat_q4_weight_quantize(qat_q4_weight *w, const float *weight);
void qat_q4_weight_dequantize(const qat_q4_weight *w, float *weight);
/* The F32 absmax of every block (dequantized when double-quantized). */
void qat_q4_weight_absmax(const qat_q4_weight *w, float *absmax);
/* Device memory the weight's tensors take in a compiled graph: packed codes,
 * absmax (codes), scales and table, each rounded up to QAT_BUFFER_ALIGN as the
 * graph allocates them. */
uint64_t qat_q4_weight_device_bytes(const qat_q4_weight *w);

/* Graph tensors of one 4-bit weight, all non-trainable parameters named after
 * bitsandbytes' state-dict keys: NAME (packed U8), NAME.absmax (U8 codes with
 * double quantization, else F32), NAME.nested_absmax (F32 scales, double
 * quantization only) and NAME.q4_table (F32 codebook, dynamic map, offset). */
qat_q4_weight_tensors qat_q4_weight_add(qat_graph *g, const char *name, qat_q4_type type, int64_t out, int64_t in,
                                        bool double_quant);
/* Writes a host weight into its tensors (compiled graph; shapes must match). */
qat_status qat_q4_weight_upload(qat_graph *g, const qat_q4_weight_tensors *t, const qat_q4_weight *w);

#endif
