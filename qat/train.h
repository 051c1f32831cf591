/* Training and evaluation of the image models on Fashion-MNIST: the loop
 * behind `qat train` and `qat eval`, usable by the experiment runner. */
#ifndef QAT_TRAIN_H
#define QAT_TRAIN_H

#include "datasets/fashion_mnist.h"
#include "qat/nn.h"
#include "qat/optimizer.h"

typedef struct qat_train_options {
    qat_model_kind model;
    int epochs;
    uint64_t seed;
    int batch;
    qat_optim_config optim;    /* total_steps is filled in from epochs */
    const char *out_dir;
    const char *data_dir;      /* NULL: QAT_FASHION_MNIST_DIR or the Debian path */
    const char *device;        /* NULL: QAT_DEVICE or the preferred device */
    uint32_t val_count;        /* images held out of the training file */
    uint32_t train_limit;      /* use only the first N training images (0: all) */
    bool quiet;                /* no per-epoch lines */
} qat_train_options;

typedef struct qat_eval_result {
    double loss;               /* mean cross-entropy */
    double accuracy;           /* fraction */
    uint32_t count;
} qat_eval_result;

typedef struct qat_train_result {
    qat_eval_result val, test;
    double final_train_loss;
    double wall_seconds;
    double train_seconds;      /* the training steps alone */
    double images_per_second;
    int64_t params;
    uint64_t model_bytes;
} qat_train_result;

/* Trains, evaluates, and writes DIR/metrics.csv, DIR/summary.json and
 * DIR/model.safetensors. */
qat_status qat_train_run(const qat_train_options *o, qat_train_result *r);

/* Evaluates a forward graph (batch m->batch) over a whole image set; the last
 * partial batch is padded and the padding ignored. */
qat_status qat_evaluate(qat_graph *g, const qat_model *m, qat_seq *forward, const qat_image_set *set, float mean,
                        float std, qat_eval_result *out);

/* Mean and standard deviation of the pixels (scaled to [0, 1]) of a set, in
 * double, rounded to float: the normalisation recorded in checkpoints. */
void qat_image_set_stats(const qat_image_set *set, float *mean, float *std);

/* Opens a checkpoint, evaluates it on the test split. */
qat_status qat_eval_checkpoint(const char *path, const char *data_dir, const char *device, qat_eval_result *out);

#endif
