/* The safetensors format (Hugging Face), read and written exactly as the
 * reference implementation does:
 *
 *   8 bytes      N, unsigned little-endian
 *   N bytes      UTF-8 JSON object, padded with spaces to a multiple of 8:
 *                { "__metadata__": {"key": "value", ...},     (optional)
 *                  "name": {"dtype": "F32", "shape": [2, 3],
 *                           "data_offsets": [begin, end]}, ... }
 *   the rest     tensor bytes, little-endian, C order; offsets count from
 *                the first byte after the header, and the tensors cover the
 *                data section exactly, without gaps or overlaps.
 *
 * The writer emits compact JSON with "__metadata__" first, then the tensors
 * in the order they were added, each with keys in the order dtype, shape,
 * data_offsets (the order serde gives the reference TensorInfo), and lays
 * the data out contiguously in that same order. It adds no alignment
 * padding between tensors; add the widest dtypes first if the data of a file
 * should be naturally aligned for memory mapping.
 */
#ifndef QAT_SAFETENSORS_H
#define QAT_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Every dtype of the reference implementation with whole-byte elements. */
typedef enum qat_st_dtype {
    QAT_ST_BOOL,
    QAT_ST_U8,
    QAT_ST_I8,
    QAT_ST_F8_E5M2,
    QAT_ST_F8_E4M3,
    QAT_ST_I16,
    QAT_ST_U16,
    QAT_ST_F16,
    QAT_ST_BF16,
    QAT_ST_I32,
    QAT_ST_U32,
    QAT_ST_F32,
    QAT_ST_F64,
    QAT_ST_I64,
    QAT_ST_U64,
    QAT_ST_DTYPE_COUNT
} qat_st_dtype;

/* The header spelling ("F32", "BF16", ...). */
const char *qat_st_dtype_name(qat_st_dtype dtype);
/* Bytes per element. */
size_t qat_st_dtype_size(qat_st_dtype dtype);
/* false if `name` is not a dtype this reader knows. */
bool qat_st_dtype_from_name(const char *name, qat_st_dtype *out);

#define QAT_ST_MAX_DIMS 8
/* The reference reader's limit; larger headers are refused before parsing. */
#define QAT_ST_MAX_HEADER_SIZE 100000000u

typedef struct qat_st_tensor {
    const char *name;
    qat_st_dtype dtype;
    uint64_t shape[QAT_ST_MAX_DIMS]; /* entries past ndim are 0 */
    int ndim;                        /* 0 for a scalar (one element) */
    /* Aligned to the dtype size; valid until qat_st_free. NULL when nbytes
     * is 0. */
    const void *data;
    size_t nbytes;
} qat_st_tensor;

/* ------------------------------------------------------------------ writer */

struct qat_st_entry;

/* Collects tensors and metadata, then writes them in one go. Tensor data is
 * copied by qat_st_writer_add, so the caller's buffer may be reused or freed
 * straight away. */
typedef struct qat_st_writer {
    struct qat_st_entry *entries;
    size_t count, cap;
    char **meta_keys, **meta_values;
    size_t meta_count, meta_cap;
} qat_st_writer;

void qat_st_writer_init(qat_st_writer *w);
/* QAT_ERR_INVALID (nothing added) when the name is empty, repeated or
 * "__metadata__", ndim is outside 0..QAT_ST_MAX_DIMS, or nbytes is not the
 * element count of `shape` times the dtype size. */
qat_status qat_st_writer_add(qat_st_writer *w, const char *name, qat_st_dtype dtype,
                             const uint64_t *shape, int ndim, const void *data, size_t nbytes);
/* Adds or replaces a "__metadata__" entry; the first setting of a key fixes
 * its position in the header. */
void qat_st_writer_set_metadata(qat_st_writer *w, const char *key, const char *value);
/* The complete file image in a fresh buffer (caller frees). */
void qat_st_writer_serialize(const qat_st_writer *w, void **data, size_t *size);
/* Writes the file through qat_file_write_atomic. */
qat_status qat_st_writer_save(const qat_st_writer *w, const char *path);
void qat_st_writer_free(qat_st_writer *w);

/* ------------------------------------------------------------------ reader */

typedef struct qat_st_file qat_st_file;

/* Reads and validates a whole file. Every problem -- header length past the
 * end of the file, bad JSON, unknown dtype, a shape that disagrees with its
 * data_offsets, offsets out of range, overlapping or leaving gaps, missing
 * or mistyped fields -- is QAT_ERR_FORMAT with one message naming the file
 * and the tensor or field. Unknown extra fields of a tensor entry are
 * ignored, as the reference reader does. */
qat_status qat_st_load(const char *path, qat_st_file **out);
/* The same from a file image in memory (copied); `source_name` is used in
 * messages. */
qat_status qat_st_load_memory(const void *data, size_t size, const char *source_name,
                              qat_st_file **out);

/* NULL if there is no tensor of that name. */
const qat_st_tensor *qat_st_find(const qat_st_file *f, const char *name);
/* Tensors in the order the header lists them; index < qat_st_count(f). */
size_t qat_st_count(const qat_st_file *f);
const qat_st_tensor *qat_st_tensor_at(const qat_st_file *f, size_t index);
/* The "__metadata__" value of `key`, NULL if absent. */
const char *qat_st_metadata(const qat_st_file *f, const char *key);
size_t qat_st_metadata_count(const qat_st_file *f);
/* index < qat_st_metadata_count(f); entries in header order. */
void qat_st_metadata_at(const qat_st_file *f, size_t index, const char **key, const char **value);
/* NULL is fine. */
void qat_st_free(qat_st_file *f);

#endif
