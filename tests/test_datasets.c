#include <criterion/criterion.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "datasets/fashion_mnist.h"
#include "datasets/idx.h"
#include "qat/fileio.h"
#include "tests/test_util.h"

#define assert_error_mentions(text)                                                               \
    cr_assert(strstr(qat_error_message(), (text)), "message \"%s\" does not mention \"%s\"",      \
              qat_error_message(), (text))

/* An IDX image in memory: magic, big-endian dims, then `count` payload bytes
 * from a fixed pseudo-random sequence (which also keeps gzip from
 * compressing it to nothing). */
typedef struct {
    unsigned char *bytes;
    size_t len;
} blob;

static uint8_t payload_byte(size_t i) { return (uint8_t)((i * 2654435761u) >> 13); }

static blob make_idx(unsigned type, int ndim, const uint32_t *dims, size_t payload)
{
    blob b;
    b.len = 4 + 4 * (size_t)ndim + payload;
    b.bytes = malloc(b.len);
    b.bytes[0] = 0;
    b.bytes[1] = 0;
    b.bytes[2] = (unsigned char)type;
    b.bytes[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++)
        for (int k = 0; k < 4; k++) b.bytes[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
    for (size_t i = 0; i < payload; i++) b.bytes[4 + 4 * (size_t)ndim + i] = payload_byte(i);
    return b;
}

static void write_plain(const char *path, blob b)
{
    cr_assert_eq(qat_file_write_atomic(path, b.bytes, b.len), QAT_OK, "%s", qat_error_message());
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile f = gzopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(f), Z_OK);
}

static blob read_file(const char *path)
{
    blob b;
    void *data;
    cr_assert_eq(qat_file_read_all(path, &data, &b.len), QAT_OK);
    b.bytes = data;
    return b;
}

/* Loading must fail with `status` and a one-line message naming `path` and
 * containing `reason`. */
static void idx_fails(const char *path, qat_status status, const char *reason)
{
    qat_idx idx;
    memset(&idx, 0xAB, sizeof idx);
    cr_assert_eq(qat_idx_load(path, &idx), status, "wrong status for \"%s\": %s", reason,
                 qat_error_message());
    cr_assert_null(idx.data);
    cr_assert_eq(idx.ndim, 0);
    assert_error_mentions(path);
    assert_error_mentions(reason);
    cr_assert_null(strchr(qat_error_message(), '\n'));
}

/* ------------------------------------------------------------------ idx */

TestSuite(idx, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

Test(idx, loads_plain_and_gzip_files_with_the_same_content)
{
    const uint32_t dims[3] = {5, 28, 28};
    blob b = make_idx(0x08, 3, dims, 5 * 28 * 28);
    write_plain(test_tmp_path("plain-idx3"), b);
    write_gz(test_tmp_path("packed-idx3.gz"), b.bytes, b.len);
    const char *paths[2] = {test_tmp_path("plain-idx3"), test_tmp_path("packed-idx3.gz")};
    for (int p = 0; p < 2; p++) {
        qat_idx idx;
        cr_assert_eq(qat_idx_load(paths[p], &idx), QAT_OK, "%s", qat_error_message());
        cr_assert_eq(idx.ndim, 3);
        cr_assert_eq(idx.dims[0], 5);
        cr_assert_eq(idx.dims[1], 28);
        cr_assert_eq(idx.dims[2], 28);
        cr_assert_eq(idx.dims[3], 0);
        cr_assert_eq(idx.size, 5 * 28 * 28);
        cr_assert_arr_eq(idx.data, b.bytes + 16, idx.size);
        qat_idx_free(&idx);
        cr_assert_null(idx.data);
    }
    free(b.bytes);
}

Test(idx, loads_one_dimensional_label_file_and_empty_dimension)
{
    const uint32_t dims[1] = {7};
    blob b = make_idx(0x08, 1, dims, 7);
    write_gz(test_tmp_path("labels.gz"), b.bytes, b.len);
    qat_idx idx;
    cr_assert_eq(qat_idx_load(test_tmp_path("labels.gz"), &idx), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(idx.ndim, 1);
    cr_assert_eq(idx.dims[0], 7);
    cr_assert_arr_eq(idx.data, b.bytes + 8, 7);
    qat_idx_free(&idx);
    free(b.bytes);

    const uint32_t none[2] = {0, 28};
    b = make_idx(0x08, 2, none, 0);
    write_plain(test_tmp_path("none"), b);
    cr_assert_eq(qat_idx_load(test_tmp_path("none"), &idx), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(idx.size, 0);
    qat_idx_free(&idx);
    free(b.bytes);
}

Test(idx, missing_file_is_an_io_error_naming_it)
{
    idx_fails(test_tmp_path("absent.gz"), QAT_ERR_IO, "No such file or directory");
}

Test(idx, directory_instead_of_file_is_an_io_error)
{
    idx_fails(test_tmpdir, QAT_ERR_IO, "read error");
}

Test(idx, file_that_is_not_idx_reports_bad_magic)
{
    const char *path = test_tmp_path("text.gz");
    const char text[] = "hello, this is not an IDX file\n";
    write_gz(path, text, sizeof text - 1);
    idx_fails(path, QAT_ERR_FORMAT, "not an IDX file: bad magic bytes 68 65 6c 6c");
    path = test_tmp_path("text");
    cr_assert_eq(qat_file_write_atomic(path, text, sizeof text - 1), QAT_OK);
    idx_fails(path, QAT_ERR_FORMAT, "bad magic");
}

Test(idx, empty_or_short_header_is_truncated)
{
    const char *path = test_tmp_path("empty");
    cr_assert_eq(qat_file_write_atomic(path, "", 0), QAT_OK);
    idx_fails(path, QAT_ERR_FORMAT, "truncated: expected 4 bytes of header, got 0");
    const unsigned char head[] = {0, 0, 8, 3, 0, 0};
    path = test_tmp_path("shortdims");
    cr_assert_eq(qat_file_write_atomic(path, head, sizeof head), QAT_OK);
    idx_fails(path, QAT_ERR_FORMAT, "truncated: expected 12 bytes of dimensions, got 2");
}

Test(idx, wrong_type_byte_and_dimension_count_are_rejected)
{
    const uint32_t dims[1] = {4};
    blob b = make_idx(0x0D, 1, dims, 16);
    write_gz(test_tmp_path("floats.gz"), b.bytes, b.len);
    idx_fails(test_tmp_path("floats.gz"), QAT_ERR_FORMAT,
              "unsupported IDX element type 0x0d (float32); only 0x08 (unsigned byte)");
    free(b.bytes);
    b = make_idx(0x08, 0, NULL, 0);
    write_plain(test_tmp_path("nodims"), b);
    idx_fails(test_tmp_path("nodims"), QAT_ERR_FORMAT, "declares 0 dimensions");
    free(b.bytes);
}

Test(idx, truncated_pixel_data_reports_expected_and_actual_sizes)
{
    const uint32_t dims[3] = {3, 28, 28};
    blob b = make_idx(0x08, 3, dims, 1200);
    write_gz(test_tmp_path("short.gz"), b.bytes, b.len);
    idx_fails(test_tmp_path("short.gz"), QAT_ERR_FORMAT, "truncated: expected 2352 bytes of data, got 1200");
    free(b.bytes);
}

Test(idx, header_claiming_huge_data_fails_as_truncated_without_huge_allocation)
{
    const uint32_t dims[3] = {0xffffffffu, 0xffffu, 0xffu};
    blob b = make_idx(0x08, 3, dims, 10);
    write_plain(test_tmp_path("huge"), b);
    idx_fails(test_tmp_path("huge"), QAT_ERR_FORMAT, "truncated");
    free(b.bytes);

    const uint32_t overflow[3] = {0xffffffffu, 0xffffffffu, 0xffu};
    b = make_idx(0x08, 3, overflow, 10);
    write_plain(test_tmp_path("overflow"), b);
    idx_fails(test_tmp_path("overflow"), QAT_ERR_FORMAT, "more bytes than fit in memory");
    free(b.bytes);
}

Test(idx, truncated_gzip_stream_is_reported)
{
    const uint32_t dims[3] = {4, 28, 28};
    blob b = make_idx(0x08, 3, dims, 4 * 28 * 28);
    const char *path = test_tmp_path("cut.gz");
    write_gz(path, b.bytes, b.len);
    blob gz = read_file(path);
    cr_assert_eq(qat_file_write_atomic(path, gz.bytes, gz.len / 2), QAT_OK);
    idx_fails(path, QAT_ERR_FORMAT, "truncated");
    /* Everything but the 8-byte trailer: the data is complete, the check is
     * not. */
    cr_assert_eq(qat_file_write_atomic(path, gz.bytes, gz.len - 8), QAT_OK);
    idx_fails(path, QAT_ERR_FORMAT, "gzip");
    free(gz.bytes);
    free(b.bytes);
}

Test(idx, gzip_crc_and_length_mismatch_are_reported_with_zlib_message)
{
    const uint32_t dims[3] = {2, 28, 28};
    blob b = make_idx(0x08, 3, dims, 2 * 28 * 28);
    const char *path = test_tmp_path("crc.gz");
    write_gz(path, b.bytes, b.len);
    blob gz = read_file(path);
    gz.bytes[gz.len - 8] ^= 0x55; /* first byte of the CRC-32 trailer */
    cr_assert_eq(qat_file_write_atomic(path, gz.bytes, gz.len), QAT_OK);
    idx_fails(path, QAT_ERR_FORMAT, "corrupt gzip data: incorrect data check");
    gz.bytes[gz.len - 8] ^= 0x55;
    gz.bytes[gz.len - 1] ^= 0x01; /* the length trailer */
    cr_assert_eq(qat_file_write_atomic(path, gz.bytes, gz.len), QAT_OK);
    idx_fails(path, QAT_ERR_FORMAT, "incorrect length check");
    free(gz.bytes);
    free(b.bytes);
}

Test(idx, corrupt_deflate_bytes_are_reported)
{
    const uint32_t dims[3] = {2, 28, 28};
    blob b = make_idx(0x08, 3, dims, 2 * 28 * 28);
    const char *path = test_tmp_path("corrupt.gz");
    write_gz(path, b.bytes, b.len);
    blob gz = read_file(path);
    /* Past the 10-byte gzip header, in the compressed data. */
    for (size_t i = 12; i < 40 && i < gz.len - 8; i++) gz.bytes[i] ^= 0xA5;
    cr_assert_eq(qat_file_write_atomic(path, gz.bytes, gz.len), QAT_OK);
    idx_fails(path, QAT_ERR_FORMAT, "gzip");
    free(gz.bytes);
    free(b.bytes);
}

Test(idx, trailing_bytes_after_the_described_data_are_rejected)
{
    const uint32_t dims[1] = {10};
    blob b = make_idx(0x08, 1, dims, 15);
    write_gz(test_tmp_path("long.gz"), b.bytes, b.len);
    idx_fails(test_tmp_path("long.gz"), QAT_ERR_FORMAT, "trailing data after the 10 bytes");
    write_plain(test_tmp_path("long"), b);
    idx_fails(test_tmp_path("long"), QAT_ERR_FORMAT, "trailing data");
    free(b.bytes);
}

/* ------------------------------------------------------------------ fashion_mnist */

TestSuite(fashion_mnist, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

#define TRAIN_N 10
#define TEST_N 4

/* Image i of a fake set has every pixel equal to (base + i) and label
 * (base + i) % 10. */
static void write_fake_pair(const char *images, const char *labels, uint32_t n, uint32_t rows,
                            uint32_t cols, uint32_t nlabels, unsigned base)
{
    const uint32_t idims[3] = {n, rows, cols}, ldims[1] = {nlabels};
    blob im = make_idx(0x08, 3, idims, (size_t)n * rows * cols);
    for (uint32_t i = 0; i < n; i++)
        memset(im.bytes + 16 + (size_t)i * rows * cols, (int)(base + i), (size_t)rows * cols);
    blob lb = make_idx(0x08, 1, ldims, nlabels);
    for (uint32_t i = 0; i < nlabels; i++) lb.bytes[8 + i] = (unsigned char)((base + i) % 10);
    write_gz(test_tmp_path(images), im.bytes, im.len);
    write_gz(test_tmp_path(labels), lb.bytes, lb.len);
    free(im.bytes);
    free(lb.bytes);
}

static void write_fake_dataset(void)
{
    write_fake_pair("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", TRAIN_N, 28, 28, TRAIN_N,
                    0);
    write_fake_pair("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", TEST_N, 28, 28, TEST_N, 100);
}

static void fashion_fails(const char *dir, uint32_t val, qat_status status, const char *mention1,
                          const char *mention2)
{
    qat_fashion_mnist ds;
    memset(&ds, 0xAB, sizeof ds);
    cr_assert_eq(qat_fashion_mnist_load(dir, val, &ds), status, "wrong status: %s", qat_error_message());
    cr_assert_null(ds.train.pixels);
    cr_assert_null(ds.test.labels);
    assert_error_mentions(mention1);
    if (mention2) assert_error_mentions(mention2);
    cr_assert_null(strchr(qat_error_message(), '\n'));
}

static const char *hint =
    "install Debian's dataset-fashion-mnist or set QAT_FASHION_MNIST_DIR / --data-dir";

Test(fashion_mnist, splits_last_val_count_training_images_into_validation)
{
    write_fake_dataset();
    qat_fashion_mnist ds;
    cr_assert_eq(qat_fashion_mnist_load(test_tmpdir, 3, &ds), QAT_OK, "%s", qat_error_message());
    cr_assert_str_eq(ds.dir, test_tmpdir);
    cr_assert_eq(ds.train.count, TRAIN_N - 3);
    cr_assert_eq(ds.val.count, 3);
    cr_assert_eq(ds.test.count, TEST_N);
    cr_assert_eq(ds.train.rows, 28);
    cr_assert_eq(ds.val.cols, 28);
    for (uint32_t i = 0; i < ds.train.count; i++) {
        cr_assert_eq(ds.train.labels[i], i % 10);
        cr_assert_eq(ds.train.pixels[(size_t)i * 784 + 783], i);
    }
    for (uint32_t i = 0; i < ds.val.count; i++) {
        cr_assert_eq(ds.val.labels[i], (TRAIN_N - 3 + i) % 10);
        cr_assert_eq(ds.val.pixels[(size_t)i * 784], TRAIN_N - 3 + i);
    }
    cr_assert_eq(ds.test.labels[0], 0); /* (100 + 0) % 10 */
    cr_assert_eq(ds.test.pixels[784], 101);
    qat_fashion_mnist_free(&ds);
    cr_assert_null(ds.train.pixels);

    cr_assert_eq(qat_fashion_mnist_load(test_tmpdir, 0, &ds), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(ds.train.count, TRAIN_N);
    cr_assert_eq(ds.val.count, 0);
    qat_fashion_mnist_free(&ds);
}

Test(fashion_mnist, null_dir_uses_environment_variable)
{
    write_fake_dataset();
    cr_assert_eq(setenv("QAT_FASHION_MNIST_DIR", test_tmpdir, 1), 0);
    qat_fashion_mnist ds;
    cr_assert_eq(qat_fashion_mnist_load(NULL, 2, &ds), QAT_OK, "%s", qat_error_message());
    cr_assert_str_eq(ds.dir, test_tmpdir);
    cr_assert_eq(ds.val.count, 2);
    qat_fashion_mnist_free(&ds);
}

Test(fashion_mnist, missing_directory_names_it_with_install_hint)
{
    const char *dir = test_tmp_path("no-such-dataset");
    fashion_fails(dir, 5, QAT_ERR_IO, dir, hint);
    cr_assert_eq(setenv("QAT_FASHION_MNIST_DIR", dir, 1), 0);
    fashion_fails(NULL, 5, QAT_ERR_IO, dir, hint);
}

Test(fashion_mnist, missing_file_names_it_with_install_hint)
{
    write_fake_dataset();
    cr_assert_eq(unlink(test_tmp_path("t10k-labels-idx1-ubyte.gz")), 0);
    fashion_fails(test_tmpdir, 3, QAT_ERR_IO, test_tmp_path("t10k-labels-idx1-ubyte.gz"), hint);
}

Test(fashion_mnist, label_count_mismatch_names_both_files)
{
    write_fake_pair("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", TRAIN_N, 28, 28,
                    TRAIN_N - 1, 0);
    write_fake_pair("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", TEST_N, 28, 28, TEST_N, 0);
    fashion_fails(test_tmpdir, 3, QAT_ERR_FORMAT, "train-labels-idx1-ubyte.gz: 9 labels, but",
                  "train-images-idx3-ubyte.gz has 10 images");
}

Test(fashion_mnist, images_that_are_not_28x28_are_rejected)
{
    write_fake_pair("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", TRAIN_N, 28, 28, TRAIN_N,
                    0);
    write_fake_pair("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", TEST_N, 27, 28, TEST_N, 0);
    fashion_fails(test_tmpdir, 3, QAT_ERR_FORMAT, "t10k-images-idx3-ubyte.gz: images have shape 4x27x28",
                  "expected Nx28x28");
}

Test(fashion_mnist, labels_out_of_range_are_rejected)
{
    write_fake_dataset();
    const uint32_t ldims[1] = {TEST_N};
    blob lb = make_idx(0x08, 1, ldims, TEST_N);
    memset(lb.bytes + 8, 1, TEST_N);
    lb.bytes[8 + 2] = 10;
    write_gz(test_tmp_path("t10k-labels-idx1-ubyte.gz"), lb.bytes, lb.len);
    free(lb.bytes);
    fashion_fails(test_tmpdir, 3, QAT_ERR_FORMAT, "t10k-labels-idx1-ubyte.gz: label 10 at index 2 is out of range",
                  NULL);
}

Test(fashion_mnist, corrupt_file_in_dataset_is_named)
{
    write_fake_dataset();
    cr_assert_eq(qat_file_write_atomic(test_tmp_path("train-images-idx3-ubyte.gz"), "\x1f\x8b\x08\0garbage", 11),
                 QAT_OK);
    fashion_fails(test_tmpdir, 3, QAT_ERR_FORMAT, test_tmp_path("train-images-idx3-ubyte.gz"), NULL);
}

Test(fashion_mnist, validation_set_as_large_as_training_file_is_invalid)
{
    write_fake_dataset();
    fashion_fails(test_tmpdir, TRAIN_N, QAT_ERR_INVALID, "validation set of 10 images leaves none", NULL);
}

Test(fashion_mnist, batch_f32_gathers_scales_and_normalises)
{
    uint8_t pixels[3 * 4] = {0, 255, 51, 102, 1, 2, 3, 4, 255, 255, 0, 0};
    uint8_t labels[3] = {7, 8, 9};
    qat_image_set set = {.count = 3, .rows = 2, .cols = 2, .pixels = pixels, .labels = labels};
    const uint32_t idx[2] = {2, 0};
    float out[2 * 4];
    int32_t lab[2];
    qat_image_set_batch_f32(&set, idx, 2, 0.0f, 1.0f, out, lab);
    cr_assert_eq(lab[0], 9);
    cr_assert_eq(lab[1], 7);
    cr_assert_eq(out[0], 1.0f);
    cr_assert_eq(out[2], 0.0f);
    cr_assert_eq(out[4], 0.0f);
    cr_assert_eq(out[6], 51.0f / 255.0f);
    qat_image_set_batch_f32(&set, idx, 2, 0.5f, 0.25f, out, lab);
    cr_assert_eq(out[0], 2.0f);  /* (1 - 0.5) / 0.25 */
    cr_assert_eq(out[2], -2.0f); /* (0 - 0.5) / 0.25 */
    cr_assert_float_eq(out[7], (102.0f / 255.0f - 0.5f) / 0.25f, 1e-6);
}

Test(fashion_mnist, class_names_are_the_ten_fashion_mnist_labels)
{
    cr_assert_str_eq(qat_fashion_mnist_classes[0], "T-shirt/top");
    cr_assert_str_eq(qat_fashion_mnist_classes[1], "Trouser");
    cr_assert_str_eq(qat_fashion_mnist_classes[5], "Sandal");
    cr_assert_str_eq(qat_fashion_mnist_classes[9], "Ankle boot");
}

/* The real files from Debian's dataset-fashion-mnist, when installed. */
Test(fashion_mnist, real_dataset_has_expected_counts_and_first_labels)
{
    const char *env = getenv("QAT_FASHION_MNIST_DIR");
    const char *dir = env && *env ? env : QAT_FASHION_MNIST_DEFAULT_DIR;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        cr_skip_test("Fashion-MNIST not installed at %s (install Debian's dataset-fashion-mnist or set "
                     "QAT_FASHION_MNIST_DIR)",
                     dir);
    qat_fashion_mnist ds;
    cr_assert_eq(qat_fashion_mnist_load(dir, 5000, &ds), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(ds.train.count, 55000);
    cr_assert_eq(ds.val.count, 5000);
    cr_assert_eq(ds.test.count, 10000);
    cr_assert_eq(ds.test.rows, 28);
    cr_assert_eq(ds.test.cols, 28);
    /* First labels, and pixel sums of first images, as read by Python's
     * gzip module: test[0] is an ankle boot, val[0] is training image 55000. */
    cr_assert_eq(ds.test.labels[0], 9);
    cr_assert_eq(ds.train.labels[0], 9);
    cr_assert_eq(ds.val.labels[0], 0);
    cr_assert_eq(ds.val.labels[4999], 5);
    unsigned long sums[3] = {0, 0, 0};
    for (int k = 0; k < 784; k++) {
        sums[0] += ds.train.pixels[k];
        sums[1] += ds.val.pixels[k];
        sums[2] += ds.test.pixels[k];
    }
    cr_assert_eq(sums[0], 76247);
    cr_assert_eq(sums[1], 89180);
    cr_assert_eq(sums[2], 33456);
    qat_fashion_mnist_free(&ds);
}
