/* Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 28x28 grey images of ten kinds
 * of clothing, 60000 for training and 10000 for testing, in the four IDX
 * files that Debian's dataset-fashion-mnist package installs. */
#ifndef QAT_DATASETS_FASHION_MNIST_H
#define QAT_DATASETS_FASHION_MNIST_H

#include <stdint.h>

#include "qat/common.h"

#define QAT_FASHION_MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define QAT_FASHION_MNIST_DIR_ENV "QAT_FASHION_MNIST_DIR"
#define QAT_FASHION_MNIST_CLASSES 10

/* Index = label. */
extern const char *const qat_fashion_mnist_classes[QAT_FASHION_MNIST_CLASSES];

typedef struct qat_image_set {
    uint32_t count, rows, cols;
    uint8_t *pixels; /* (count, rows*cols), row-major, 0 = background */
    uint8_t *labels; /* (count) */
} qat_image_set;

typedef struct qat_fashion_mnist {
    qat_image_set train, val, test;
    char dir[4096]; /* the directory the files came from */
} qat_fashion_mnist;

/* Loads the dataset from `dir`; when `dir` is NULL, from $QAT_FASHION_MNIST_DIR
 * if set and non-empty, else from QAT_FASHION_MNIST_DEFAULT_DIR. The last
 * `val_count` training images become the validation set (callers normally
 * pass 5000), the rest the training set; the t10k files are the test set.
 * Checks that image and label counts agree, images are 28x28 and labels are
 * below 10. On failure *out is zeroed and the message names the directory or
 * file; a missing directory or file gets an installation hint. */
qat_status qat_fashion_mnist_load(const char *dir, uint32_t val_count, qat_fashion_mnist *out);
void qat_fashion_mnist_free(qat_fashion_mnist *ds);

/* Gathers the images set->pixels[indices[i]] into pixels_out (n, rows*cols)
 * as ((p / 255) - mean) / std, and their labels into labels_out (n). Pass
 * mean 0, std 1 for plain [0, 1] pixels. Indices must be < set->count. */
void qat_image_set_batch_f32(const qat_image_set *set, const uint32_t *indices, uint32_t n, float mean,
                             float std, float *pixels_out, int32_t *labels_out);
/* Frees and zeroes one set (qat_fashion_mnist_free frees all three). */
void qat_image_set_free(qat_image_set *set);

#endif
