#include "datasets/fashion_mnist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/idx.h"
#include "qat/fileio.h"

#define INSTALL_HINT \
    "install Debian's dataset-fashion-mnist or set " QAT_FASHION_MNIST_DIR_ENV " / --data-dir"

const char *const qat_fashion_mnist_classes[QAT_FASHION_MNIST_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

/* Loads one images/labels pair into `set`, checking them against each
 * other. */
static qat_status load_pair(const char *dir, const char *images_name, const char *labels_name,
                            qat_image_set *set)
{
    qat_strbuf ipath = {0}, lpath = {0};
    qat_strbuf_printf(&ipath, "%s/%s", dir, images_name);
    qat_strbuf_printf(&lpath, "%s/%s", dir, labels_name);
    qat_idx images = {0}, labels = {0};
    qat_status st = QAT_OK;
    struct stat sb;

    /* A missing file most likely means a partial install or the wrong
     * directory, so it gets the same hint as a missing directory. */
    if (stat(ipath.data, &sb) != 0 && errno == ENOENT) {
        st = qat_error_set(QAT_ERR_IO, "%s: not found; %s", ipath.data, INSTALL_HINT);
        goto out;
    }
    if (stat(lpath.data, &sb) != 0 && errno == ENOENT) {
        st = qat_error_set(QAT_ERR_IO, "%s: not found; %s", lpath.data, INSTALL_HINT);
        goto out;
    }
    st = qat_idx_load(ipath.data, &images);
    if (st != QAT_OK) goto out;
    if (images.ndim != 3 || images.dims[1] != 28 || images.dims[2] != 28) {
        char shape[64] = "";
        size_t used = 0;
        for (int i = 0; i < images.ndim && used < sizeof shape; i++)
            used += (size_t)snprintf(shape + used, sizeof shape - used, "%s%u", i ? "x" : "",
                                     images.dims[i]);
        st = qat_error_set(QAT_ERR_FORMAT, "%s: images have shape %s, expected Nx28x28", ipath.data,
                           shape);
        goto out;
    }
    st = qat_idx_load(lpath.data, &labels);
    if (st != QAT_OK) goto out;
    if (labels.ndim != 1) {
        st = qat_error_set(QAT_ERR_FORMAT, "%s: labels have %d dimensions, expected 1", lpath.data,
                           labels.ndim);
        goto out;
    }
    if (labels.dims[0] != images.dims[0]) {
        st = qat_error_set(QAT_ERR_FORMAT, "%s: %u labels, but %s has %u images", lpath.data,
                           labels.dims[0], ipath.data, images.dims[0]);
        goto out;
    }
    for (uint32_t i = 0; i < labels.dims[0]; i++) {
        if (labels.data[i] >= QAT_FASHION_MNIST_CLASSES) {
            st = qat_error_set(QAT_ERR_FORMAT, "%s: label %u at index %u is out of range (expected 0-%d)",
                               lpath.data, labels.data[i], i, QAT_FASHION_MNIST_CLASSES - 1);
            goto out;
        }
    }
    set->count = images.dims[0];
    set->rows = images.dims[1];
    set->cols = images.dims[2];
    set->pixels = images.data;
    set->labels = labels.data;
    images.data = labels.data = NULL; /* now owned by set */

out:
    qat_idx_free(&images);
    qat_idx_free(&labels);
    qat_strbuf_free(&ipath);
    qat_strbuf_free(&lpath);
    return st;
}

/* Moves the last `n` images of `from` into `to`. */
static void split_tail(qat_image_set *from, uint32_t n, qat_image_set *to)
{
    size_t px = (size_t)from->rows * from->cols;
    uint32_t keep = from->count - n;
    to->count = n;
    to->rows = from->rows;
    to->cols = from->cols;
    to->pixels = qat_xmalloc(n * px);
    to->labels = qat_xmalloc(n);
    memcpy(to->pixels, from->pixels + keep * px, n * px);
    memcpy(to->labels, from->labels + keep, n);
    from->count = keep;
    from->pixels = qat_xrealloc(from->pixels, keep * px);
    from->labels = qat_xrealloc(from->labels, keep);
}

qat_status qat_fashion_mnist_load(const char *dir, uint32_t val_count, qat_fashion_mnist *out)
{
    QAT_ASSERT(out);
    memset(out, 0, sizeof *out);
    if (!dir) {
        const char *env = getenv(QAT_FASHION_MNIST_DIR_ENV);
        dir = env && *env ? env : QAT_FASHION_MNIST_DEFAULT_DIR;
    }
    if (strlen(dir) >= sizeof out->dir)
        return qat_error_set(QAT_ERR_INVALID, "Fashion-MNIST directory path is too long (%zu bytes)",
                             strlen(dir));
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return qat_error_set(QAT_ERR_IO, "%s: Fashion-MNIST directory not found (%s); %s", dir,
                             strerror(errno), INSTALL_HINT);
    if (!S_ISDIR(sb.st_mode))
        return qat_error_set(QAT_ERR_IO, "%s: not a directory; %s", dir, INSTALL_HINT);

    qat_status st = load_pair(dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                              &out->train);
    if (st == QAT_OK && val_count >= out->train.count)
        st = qat_error_set(QAT_ERR_INVALID,
                           "%s/train-images-idx3-ubyte.gz: a validation set of %u images leaves none "
                           "of its %u for training",
                           dir, val_count, out->train.count);
    if (st == QAT_OK)
        st = load_pair(dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", &out->test);
    if (st != QAT_OK) {
        qat_fashion_mnist_free(out);
        return st;
    }
    split_tail(&out->train, val_count, &out->val);
    memcpy(out->dir, dir, strlen(dir) + 1);
    return QAT_OK;
}

void qat_image_set_free(qat_image_set *set)
{
    free(set->pixels);
    free(set->labels);
    memset(set, 0, sizeof *set);
}

void qat_fashion_mnist_free(qat_fashion_mnist *ds)
{
    qat_image_set_free(&ds->train);
    qat_image_set_free(&ds->val);
    qat_image_set_free(&ds->test);
    memset(ds, 0, sizeof *ds);
}

void qat_image_set_batch_f32(const qat_image_set *set, const uint32_t *indices, uint32_t n, float mean,
                             float std, float *pixels_out, int32_t *labels_out)
{
    QAT_ASSERT(set && (indices || n == 0) && pixels_out && labels_out);
    QAT_ASSERT(std > 0.0f);
    size_t px = (size_t)set->rows * set->cols;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = indices[i];
        QAT_ASSERT_MSG(idx < set->count, "image index out of range");
        const uint8_t *src = set->pixels + (size_t)idx * px;
        float *dst = pixels_out + (size_t)i * px;
        for (size_t k = 0; k < px; k++) dst[k] = ((float)src[k] / 255.0f - mean) / std;
        labels_out[i] = set->labels[idx];
    }
}
