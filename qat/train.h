/* Training and evaluation of the image models on Fashion-MNIST: the loop
 * behind `qat train` and `qat eval`, usable by the experiment runner. */
#ifndef QAT_TRAIN_H
#define QAT_TRAIN_H

#include "datasets/fashion_mnist.h"
#include "qat/nn.h"
#include "qat/optimizer.h"

typedef struct qat_train_options {
    qat_model_config model;
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
    /* The gpt on text (epochs, val_count and train_limit do not apply). */
    const char *data_spec;     /* "fortunes:general" (datasets/fortunes.h) */
    uint32_t val_permille;     /* entries held out for validation, per mille */
    int steps;                 /* optimizer steps on random windows */
    int eval_every;            /* validation every N steps (0: at the end only) */
    const char *init_ckpt;     /* start from this FP32 checkpoint (fine-tuning); its configuration is used */
} qat_train_options;

typedef struct qat_eval_result {
    double loss;               /* mean cross-entropy */
    double accuracy;           /* fraction */
    uint32_t count;
} qat_eval_result;

typedef struct qat_train_result {
    qat_eval_result val, test;
    double val_bpc;            /* gpt: validation bits per character */
    double init_val_bpc;       /* gpt from --init: the starting checkpoint's, same data */
    double final_train_loss;
    double wall_seconds;
    double train_seconds;      /* the training steps alone */
    double images_per_second;  /* gpt: bytes (tokens) per second */
    int64_t params;
    uint64_t model_bytes;
} qat_train_result;

/* Trains, evaluates, and writes DIR/metrics.csv, DIR/summary.json and
 * DIR/model.safetensors. */
qat_status qat_train_run(const qat_train_options *o, qat_train_result *r);
/* The same for the gpt on a text corpus (qat_train_run calls it). */
qat_status qat_train_text_run(const qat_train_options *o, qat_train_result *r);

/* The epoch loop shared by training and QAT: each epoch shuffles the
 * training set with stream (1 << 20) + epoch of `seed`, runs one step per
 * full batch, evaluates on the validation set and rewrites metrics_path
 * (epoch, step, train_loss, val_loss, val_acc, seconds). */
typedef struct qat_epoch_loop {
    qat_graph *g;
    const qat_model *m;
    qat_seq *train, *forward;
    const qat_image_set *train_set, *val_set;
    float mean, std;
    const qat_optim_config *optim;  /* with total_steps set */
    int epochs;
    uint64_t seed;
    bool quiet;
    const char *metrics_path;
    const char *label;              /* "epoch", "qat": progress and per-epoch lines */
} qat_epoch_loop;

typedef struct qat_epoch_result {
    qat_eval_result val;            /* after the last epoch */
    double final_train_loss;        /* mean over the last epoch */
    double train_seconds;
    int steps;
} qat_epoch_result;

qat_status qat_train_epochs(const qat_epoch_loop *loop, qat_epoch_result *r);

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
