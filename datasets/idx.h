/* IDX files (the MNIST container format), plain or gzip-compressed:
 *
 *   bytes 0-1   zero
 *   byte  2     element type; only 0x08 (unsigned byte) is supported
 *   byte  3     number of dimensions n
 *   4n bytes    the dimensions, big-endian uint32
 *   then        prod(dims) elements, C order
 *
 * So MNIST images start 00 00 08 03 and labels 00 00 08 01.
 */
#ifndef QAT_DATASETS_IDX_H
#define QAT_DATASETS_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "qat/common.h"

#define QAT_IDX_MAX_DIMS 8

typedef struct qat_idx {
    uint32_t dims[QAT_IDX_MAX_DIMS]; /* entries past ndim are 0 */
    int ndim;
    uint8_t *data; /* prod(dims) bytes */
    size_t size;   /* = prod(dims) */
} qat_idx;

/* Reads a whole IDX file of unsigned bytes; gzip is detected and
 * decompressed by zlib. Missing file, bad magic, unsupported type, truncated
 * data, bytes beyond what the dimensions describe, and gzip corruption (bad
 * CRC, bad deflate data) each fail with one message naming the file. On
 * failure *out is zeroed. */
qat_status qat_idx_load(const char *path, qat_idx *out);
/* Frees the data and zeroes *idx; a zeroed qat_idx is fine. */
void qat_idx_free(qat_idx *idx);

#endif
