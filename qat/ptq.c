/* Post-training quantization: activation ranges from observers on
 * calibration batches, weights by round-to-nearest or GPTQ (qat/gptq.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/gptq.h"
#include "qat/progress.h"
#include "qat/quantize_common.h"

enum { GPTQ_BLOCK = 128 };
#define GPTQ_DAMP 0.01

/* The rows a 3x3, padding 1, stride 1 convolution multiplies by its weight
 * (flattened as (in, kh, kw)): one per image and output position. */
static void conv_patches(const float *x, int64_t batch, int64_t channels, int64_t height, int64_t width,
                         float *rows)
{
    int64_t cols = channels * 9;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t oy = 0; oy < height; oy++)
            for (int64_t ox = 0; ox < width; ox++) {
                float *row = rows + ((b * height + oy) * width + ox) * cols;
                for (int64_t c = 0; c < channels; c++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int64_t iy = oy + ky - 1, ix = ox + kx - 1;
                            bool inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
                            row[c * 9 + ky * 3 + kx] =
                                inside ? x[((b * channels + c) * height + iy) * width + ix] : 0.0f;
                        }
            }
}

/* Layer by layer, each layer's Hessian comes from its inputs in the model
 * quantized so far (earlier weights quantized, every input quantizer on), as
 * the reference quantizes transformer blocks sequentially. */
static qat_status gptq_weights(quant_run *run)
{
    const qat_quantize_options *o = run->o;
    qat_graph *g = qat_graph_create(run->ctx);
    qat_model_quant q;
    qat_qmodel_eval_quant(&run->qm, &q);
    q.expose_inputs = true;
    qat_model m;
    qat_model_build_quant(g, &run->qm.desc, o->batch, false, &q, &m);
    qat_seq *forward = NULL;
    qat_status st = qat_graph_compile(g);
    if (st == QAT_OK) st = qat_seq_create(g, 0, qat_graph_node_count(g), &forward);
    float *patches = NULL;
    for (int l = 0; l < run->qc.nlayers && st == QAT_OK; l++) {
        if (!run->qc.layers[l].wbits) continue;
        const qat_layer_info *info = &run->qm.desc.layers[l];
        qat_hessian H;
        qat_hessian_init(&H, info->cols);
        st = qat_qmodel_apply(&run->qm, g, &m);
        char label[64];
        snprintf(label, sizeof label, "gptq %s", info->name);
        qat_progress bar;
        qat_progress_begin(&bar, label, (uint64_t)o->calib_batches);
        for (int b = 0; b < o->calib_batches && st == QAT_OK; b++) {
            quant_fill_calib_batch(run, g, &m, b);
            st = qat_seq_run(forward);
            if (st != QAT_OK) break;
            const float *x = qat_graph_output_slot(g, m.layers[l].input);
            if (info->conv) {
                int64_t nrows = (int64_t)o->batch * info->in_height * info->in_width;
                if (!patches) patches = qat_xmalloc((size_t)(nrows * info->cols) * sizeof(float));
                conv_patches(x, o->batch, info->in_channels, info->in_height, info->in_width, patches);
                qat_hessian_add(&H, patches, nrows);
            } else {
                qat_hessian_add(&H, x, (int64_t)o->batch * info->positions);
            }
            qat_progress_update(&bar, (uint64_t)b + 1, "");
        }
        qat_progress_end(&bar);
        free(patches);
        patches = NULL;
        if (st == QAT_OK) {
            /* GPTQ works on the layer's values in place: they start as the
             * FP32 weight and end as exactly the dequantized codes. */
            qat_qscheme s = qat_qconfig_weight_scheme(&run->qc, l);
            qat_qmodel_prepare_weight(&run->qm, l, &s);
            qat_qlayer *ql = &run->qm.layers[l];
            char what[96];
            snprintf(what, sizeof what, "layer %s", info->name);
            st = qat_gptq_quantize(run->qm.values[info->weight], info->rows, info->cols, &H, &s, o->observer, GPTQ_BLOCK,
                                   GPTQ_DAMP, ql->codes, ql->w_scale, ql->w_zero_point, what);
        }
        qat_hessian_free(&H);
    }
    qat_seq_free(forward);
    qat_graph_free(g);
    return st;
}

qat_status qat_ptq_run(const qat_quantize_options *o, qat_quantize_result *r)
{
    quant_run run;
    qat_status st = quant_run_begin(&run, o, r);
    if (st == QAT_OK) st = quant_calibrate_inputs(&run);
    if (st == QAT_OK && o->gptq) st = gptq_weights(&run);
    for (int l = 0; st == QAT_OK && !o->gptq && l < run.qc.nlayers; l++)
        if (run.qc.layers[l].wbits) quant_weight_rtn(&run, l, run.fp32.values[run.fp32.desc.layers[l].weight]);
    if (st == QAT_OK) st = quant_run_finish(&run, "ptq", r);
    quant_run_end(&run);
    return st;
}
