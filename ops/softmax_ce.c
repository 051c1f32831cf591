/* Softmax cross-entropy with integer labels: reference forward and backward
 * (see ops_ref.h). */
#include "ops/ops_ref.h"

#include "qat/common.h"

#include <math.h>

/* Row max (ascending scan) and sum over j ascending of exp(row[j] - max).
 * Subtracting the max makes every exponent <= 0, so nothing overflows and the
 * sum lies in [1, classes]. */
static float row_max(const float *row, size_t classes)
{
    float mx = row[0];
    for (size_t j = 1; j < classes; j++)
        if (row[j] > mx) mx = row[j];
    return mx;
}

static float row_sumexp(const float *row, size_t classes, float mx)
{
    float sum = 0.0f;
    for (size_t j = 0; j < classes; j++) sum += expf(row[j] - mx);
    return sum;
}

static size_t checked_label(const int32_t *labels, size_t i, size_t classes)
{
    QAT_ASSERT_MSG(labels[i] >= 0 && (size_t)labels[i] < classes, "softmax_ce: label out of range");
    return (size_t)labels[i];
}

float qat_softmax_ce_forward_ref(float *row_loss,       /* (batch), or NULL */
                                 const float *logits,   /* (batch, classes) */
                                 const int32_t *labels, /* (batch) */
                                 size_t batch, size_t classes)
{
    QAT_ASSERT(batch > 0 && classes > 0);
    float total = 0.0f;
    for (size_t i = 0; i < batch; i++) {
        const float *row = logits + i * classes;
        size_t label = checked_label(labels, i, classes);
        float mx = row_max(row, classes);
        /* logsumexp - row[label] = (max - row[label]) + log(sum): the
         * difference is taken first because it is exact when the two are
         * close, where (log(sum) + max) - row[label] would round the large
         * max + log(sum) first and lose the small loss of a confident row. */
        float loss = (mx - row[label]) + logf(row_sumexp(row, classes, mx));
        if (row_loss) row_loss[i] = loss;
        total += loss;
    }
    return total / (float)batch;
}

void qat_softmax_ce_backward_ref(float *dlogits,       /* (batch, classes) */
                                 const float *logits,  /* (batch, classes) */
                                 const int32_t *labels, /* (batch) */
                                 size_t batch, size_t classes, float dloss)
{
    QAT_ASSERT(batch > 0 && classes > 0);
    /* d(mean loss)/d(loss_i) = 1 / batch, folded into one scale per call. */
    float scale = dloss / (float)batch;
    for (size_t i = 0; i < batch; i++) {
        const float *row = logits + i * classes;
        float *drow = dlogits + i * classes;
        size_t label = checked_label(labels, i, classes);
        float mx = row_max(row, classes);
        float sum = row_sumexp(row, classes, mx);
        for (size_t j = 0; j < classes; j++) {
            float p = expf(row[j] - mx) / sum;
            drow[j] = (p - (j == label ? 1.0f : 0.0f)) * scale;
        }
    }
}
