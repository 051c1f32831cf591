/* Building blocks of the CPU reference steps: parameters and AdamW, linear
 * layers on sgemm, ReLU and softmax cross-entropy. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cpu_ref.h"
#include "ops/ops_ref.h"

void cpu_params_init(cpu_params *p, int count, const int64_t *numel, float *const *init)
{
    memset(p, 0, sizeof *p);
    p->count = count;
    for (int i = 0; i < count; i++) p->total += (size_t)numel[i];
    p->flat = qat_xmalloc(p->total * sizeof(float));
    p->flat_grad = qat_xcalloc(p->total, sizeof(float));
    p->m = qat_xcalloc(p->total, sizeof(float));
    p->v = qat_xcalloc(p->total, sizeof(float));
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
        p->value[i] = p->flat + offset;
        p->grad[i] = p->flat_grad + offset;
        memcpy(p->value[i], init[i], (size_t)numel[i] * sizeof(float));
        offset += (size_t)numel[i];
    }
}

void cpu_params_free(cpu_params *p)
{
    free(p->flat);
    free(p->flat_grad);
    free(p->m);
    free(p->v);
}

void cpu_adamw(cpu_params *p, const qat_optim_config *c, int step)
{
    qat_adamw_hparams h = { qat_lr_at(c, step), c->beta1, c->beta2, c->eps, c->weight_decay };
    qat_adamw_update_ref(p->flat, p->flat_grad, p->m, p->v, p->total, &h, (uint64_t)step + 1);
}

void cpu_linear(const float *x, const float *w, const float *b, float *y, int batch, int in, int out, bool relu)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    for (int i = 0; i < batch; i++) {
        float *row = y + (size_t)i * out;
        for (int j = 0; j < out; j++) {
            float v = row[j] + b[j];
            row[j] = relu && v < 0.0f ? 0.0f : v;
        }
    }
}

void cpu_linear_back(const float *dy, const float *x, const float *w, float *dw, float *db, float *dx, int batch,
                     int in, int out)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, batch, 1.0f, dy, out, x, in, 0.0f, dw, in);
    for (int j = 0; j < out; j++) db[j] = 0.0f;
    for (int i = 0; i < batch; i++)
        for (int j = 0; j < out; j++) db[j] += dy[(size_t)i * out + j];
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}

void cpu_relu_back(float *dy, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(y[i] > 0.0f)) dy[i] = 0.0f;
}

float cpu_softmax_ce(const float *logits, const int32_t *labels, float *dlogits, int batch, int classes)
{
    double loss = 0;
    for (int i = 0; i < batch; i++) {
        const float *row = logits + (size_t)i * classes;
        float *drow = dlogits + (size_t)i * classes;
        float mx = row[0];
        for (int j = 1; j < classes; j++) mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < classes; j++) {
            drow[j] = expf(row[j] - mx);
            sum += drow[j];
        }
        loss += log((double)sum) + mx - row[labels[i]];
        for (int j = 0; j < classes; j++) drow[j] = (drow[j] / sum - (j == labels[i] ? 1.0f : 0.0f)) / (float)batch;
    }
    return (float)(loss / batch);
}
