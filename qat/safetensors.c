#include "safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "json.h"

static const struct {
    const char *name;
    size_t size;
} dtype_info[QAT_ST_DTYPE_COUNT] = {
    [QAT_ST_BOOL] = {"BOOL", 1},       [QAT_ST_U8] = {"U8", 1},
    [QAT_ST_I8] = {"I8", 1},           [QAT_ST_F8_E5M2] = {"F8_E5M2", 1},
    [QAT_ST_F8_E4M3] = {"F8_E4M3", 1}, [QAT_ST_I16] = {"I16", 2},
    [QAT_ST_U16] = {"U16", 2},         [QAT_ST_F16] = {"F16", 2},
    [QAT_ST_BF16] = {"BF16", 2},       [QAT_ST_I32] = {"I32", 4},
    [QAT_ST_U32] = {"U32", 4},         [QAT_ST_F32] = {"F32", 4},
    [QAT_ST_F64] = {"F64", 8},         [QAT_ST_I64] = {"I64", 8},
    [QAT_ST_U64] = {"U64", 8},
};

const char *qat_st_dtype_name(qat_st_dtype dtype)
{
    QAT_ASSERT((unsigned)dtype < QAT_ST_DTYPE_COUNT);
    return dtype_info[dtype].name;
}

size_t qat_st_dtype_size(qat_st_dtype dtype)
{
    QAT_ASSERT((unsigned)dtype < QAT_ST_DTYPE_COUNT);
    return dtype_info[dtype].size;
}

bool qat_st_dtype_from_name(const char *name, qat_st_dtype *out)
{
    for (int i = 0; i < QAT_ST_DTYPE_COUNT; i++) {
        if (strcmp(dtype_info[i].name, name) == 0) {
            *out = (qat_st_dtype)i;
            return true;
        }
    }
    return false;
}

/* Element count times element size, false on overflow. */
static bool tensor_nbytes(qat_st_dtype dtype, const uint64_t *shape, int ndim, uint64_t *out)
{
    uint64_t n = qat_st_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] != 0 && n > UINT64_MAX / shape[i]) return false;
        n *= shape[i];
    }
    *out = n;
    return true;
}

/* ------------------------------------------------------------------ writer */

struct qat_st_entry {
    char *name;
    qat_st_dtype dtype;
    uint64_t shape[QAT_ST_MAX_DIMS];
    int ndim;
    void *data;
    size_t nbytes;
};

void qat_st_writer_init(qat_st_writer *w) { memset(w, 0, sizeof *w); }

qat_status qat_st_writer_add(qat_st_writer *w, const char *name, qat_st_dtype dtype,
                             const uint64_t *shape, int ndim, const void *data, size_t nbytes)
{
    QAT_ASSERT(w && name && (shape || ndim == 0) && (data || nbytes == 0));
    QAT_ASSERT((unsigned)dtype < QAT_ST_DTYPE_COUNT);
    if (name[0] == '\0') return qat_error_set(QAT_ERR_INVALID, "safetensors: empty tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return qat_error_set(QAT_ERR_INVALID,
                             "safetensors: \"__metadata__\" is reserved and cannot name a tensor");
    if (ndim < 0 || ndim > QAT_ST_MAX_DIMS)
        return qat_error_set(QAT_ERR_INVALID, "safetensors: tensor \"%s\": %d dimensions (at most %d)",
                             name, ndim, QAT_ST_MAX_DIMS);
    uint64_t expect;
    if (!tensor_nbytes(dtype, shape, ndim, &expect) || expect != nbytes)
        return qat_error_set(QAT_ERR_INVALID,
                             "safetensors: tensor \"%s\": %zu bytes of data do not match its %s shape",
                             name, nbytes, qat_st_dtype_name(dtype));
    for (size_t i = 0; i < w->count; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return qat_error_set(QAT_ERR_INVALID, "safetensors: tensor \"%s\" added twice", name);

    if (w->count == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 8;
        w->entries = qat_xrealloc(w->entries, w->cap * sizeof *w->entries);
    }
    struct qat_st_entry *e = &w->entries[w->count++];
    memset(e, 0, sizeof *e);
    e->name = qat_xstrdup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = nbytes;
    e->data = nbytes ? memcpy(qat_xmalloc(nbytes), data, nbytes) : NULL;
    return QAT_OK;
}

void qat_st_writer_set_metadata(qat_st_writer *w, const char *key, const char *value)
{
    QAT_ASSERT(w && key && value);
    for (size_t i = 0; i < w->meta_count; i++) {
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_values[i]);
            w->meta_values[i] = qat_xstrdup(value);
            return;
        }
    }
    if (w->meta_count == w->meta_cap) {
        w->meta_cap = w->meta_cap ? w->meta_cap * 2 : 8;
        w->meta_keys = qat_xrealloc(w->meta_keys, w->meta_cap * sizeof *w->meta_keys);
        w->meta_values = qat_xrealloc(w->meta_values, w->meta_cap * sizeof *w->meta_values);
    }
    w->meta_keys[w->meta_count] = qat_xstrdup(key);
    w->meta_values[w->meta_count] = qat_xstrdup(value);
    w->meta_count++;
}

void qat_st_writer_serialize(const qat_st_writer *w, void **data, size_t *size)
{
    qat_strbuf h = {0};
    qat_strbuf_putc(&h, '{');
    bool first = true;
    if (w->meta_count) {
        qat_json_write_string(&h, "__metadata__");
        qat_strbuf_append_str(&h, ":{");
        for (size_t i = 0; i < w->meta_count; i++) {
            if (i) qat_strbuf_putc(&h, ',');
            qat_json_write_string(&h, w->meta_keys[i]);
            qat_strbuf_putc(&h, ':');
            qat_json_write_string(&h, w->meta_values[i]);
        }
        qat_strbuf_putc(&h, '}');
        first = false;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->count; i++) {
        const struct qat_st_entry *e = &w->entries[i];
        if (!first) qat_strbuf_putc(&h, ',');
        first = false;
        qat_json_write_string(&h, e->name);
        qat_strbuf_append_str(&h, ":{\"dtype\":");
        qat_json_write_string(&h, qat_st_dtype_name(e->dtype));
        qat_strbuf_append_str(&h, ",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (d) qat_strbuf_putc(&h, ',');
            qat_json_write_uint(&h, e->shape[d]);
        }
        qat_strbuf_append_str(&h, "],\"data_offsets\":[");
        qat_json_write_uint(&h, offset);
        qat_strbuf_putc(&h, ',');
        qat_json_write_uint(&h, offset + e->nbytes);
        qat_strbuf_append_str(&h, "]}");
        offset += e->nbytes;
    }
    qat_strbuf_putc(&h, '}');
    /* The reference writer pads with spaces so that the data section, and
     * hence each tensor, starts 8-byte aligned in the file. */
    while (h.len % 8) qat_strbuf_putc(&h, ' ');

    size_t total = 8 + h.len + (size_t)offset;
    unsigned char *buf = qat_xmalloc(total);
    uint64_t n = h.len;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, h.data, h.len);
    size_t pos = 8 + h.len;
    for (size_t i = 0; i < w->count; i++) {
        if (w->entries[i].nbytes) memcpy(buf + pos, w->entries[i].data, w->entries[i].nbytes);
        pos += w->entries[i].nbytes;
    }
    qat_strbuf_free(&h);
    *data = buf;
    *size = total;
}

qat_status qat_st_writer_save(const qat_st_writer *w, const char *path)
{
    void *data;
    size_t size;
    qat_st_writer_serialize(w, &data, &size);
    qat_status st = qat_file_write_atomic(path, data, size);
    free(data);
    return st;
}

void qat_st_writer_free(qat_st_writer *w)
{
    for (size_t i = 0; i < w->count; i++) {
        free(w->entries[i].name);
        free(w->entries[i].data);
    }
    free(w->entries);
    for (size_t i = 0; i < w->meta_count; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->meta_keys);
    free(w->meta_values);
    qat_st_writer_init(w);
}

/* ------------------------------------------------------------------ reader */

struct qat_st_file {
    unsigned char *image; /* the whole file */
    size_t size;
    qat_json_value *header;
    qat_st_tensor *tensors;
    void **owned; /* per tensor: an aligned copy when the file misaligns it */
    uint64_t *begin, *end;
    size_t count;
    const qat_json_value *metadata; /* the "__metadata__" object or NULL */
};

/* "an array", "a string", ... for messages. */
static const char *a_type(qat_json_type type)
{
    switch (type) {
    case QAT_JSON_NULL: return "null";
    case QAT_JSON_BOOL: return "a boolean";
    case QAT_JSON_NUMBER: return "a number";
    case QAT_JSON_STRING: return "a string";
    case QAT_JSON_ARRAY: return "an array";
    case QAT_JSON_OBJECT: return "an object";
    }
    return "an unknown value";
}

/* A JSON number that is an exact non-negative integer. 2^53 bounds what a
 * double holds exactly; no real offset or dimension comes near it. */
static bool json_u64(const qat_json_value *v, uint64_t *out)
{
    if (!v || v->type != QAT_JSON_NUMBER) return false;
    double d = v->number;
    if (!(d >= 0 && d <= 0x1.0p53) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

static qat_status parse_tensor(const char *src, const char *name, const qat_json_value *v,
                               uint64_t data_size, qat_st_tensor *t, uint64_t *begin, uint64_t *end)
{
    if (v->type != QAT_JSON_OBJECT)
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\": entry is %s, expected an object",
                             src, name, a_type(v->type));
    const qat_json_value *dt = qat_json_get(v, "dtype");
    const qat_json_value *shape = qat_json_get(v, "shape");
    const qat_json_value *offs = qat_json_get(v, "data_offsets");
    if (!dt) return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\": missing \"dtype\"", src, name);
    if (!shape) return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\": missing \"shape\"", src, name);
    if (!offs)
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\": missing \"data_offsets\"", src, name);

    if (dt->type != QAT_JSON_STRING)
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\": \"dtype\" is %s, expected a string",
                             src, name, a_type(dt->type));
    if (strlen(dt->string) != dt->string_len || !qat_st_dtype_from_name(dt->string, &t->dtype))
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\": unknown dtype \"%s\"", src, name,
                             dt->string);

    if (shape->type != QAT_JSON_ARRAY)
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\": \"shape\" is %s, expected an array",
                             src, name, a_type(shape->type));
    if (shape->count > QAT_ST_MAX_DIMS)
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\": %zu dimensions, at most %d supported",
                             src, name, shape->count, QAT_ST_MAX_DIMS);
    t->ndim = (int)shape->count;
    for (size_t i = 0; i < shape->count; i++) {
        if (!json_u64(&shape->items[i], &t->shape[i]))
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: tensor \"%s\": shape[%zu] is not a non-negative integer", src,
                                 name, i);
    }

    if (offs->type != QAT_JSON_ARRAY || offs->count != 2 || !json_u64(&offs->items[0], begin) ||
        !json_u64(&offs->items[1], end))
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: tensor \"%s\": \"data_offsets\" must be two non-negative integers "
                             "[begin, end]",
                             src, name);
    if (*end < *begin)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: tensor \"%s\": data_offsets [%llu, %llu] end before they begin", src,
                             name, (unsigned long long)*begin, (unsigned long long)*end);
    if (*end > data_size)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: tensor \"%s\": data_offsets [%llu, %llu] run past the end of the "
                             "%llu-byte data section",
                             src, name, (unsigned long long)*begin, (unsigned long long)*end,
                             (unsigned long long)data_size);
    uint64_t nbytes;
    if (!tensor_nbytes(t->dtype, t->shape, t->ndim, &nbytes))
        return qat_error_set(QAT_ERR_FORMAT, "%s: tensor \"%s\": shape element count overflows", src,
                             name);
    if (nbytes != *end - *begin)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: tensor \"%s\": shape and dtype %s need %llu bytes but data_offsets "
                             "[%llu, %llu] span %llu",
                             src, name, dt->string, (unsigned long long)nbytes,
                             (unsigned long long)*begin, (unsigned long long)*end,
                             (unsigned long long)(*end - *begin));
    t->name = name;
    t->nbytes = (size_t)nbytes;
    return QAT_OK;
}

static qat_status parse_metadata(const char *src, const qat_json_value *m)
{
    if (m->type != QAT_JSON_OBJECT)
        return qat_error_set(QAT_ERR_FORMAT, "%s: \"__metadata__\" is %s, expected an object", src,
                             a_type(m->type));
    for (size_t i = 0; i < m->count; i++) {
        const qat_json_value *v = &m->items[i];
        if (v->type != QAT_JSON_STRING)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: \"__metadata__\" entry \"%s\" is %s, expected a string", src,
                                 m->keys[i], a_type(v->type));
        if (strlen(v->string) != v->string_len)
            return qat_error_set(QAT_ERR_FORMAT,
                                 "%s: \"__metadata__\" entry \"%s\" contains a NUL character", src,
                                 m->keys[i]);
    }
    return QAT_OK;
}

/* qsort has no context argument in C11. */
static _Thread_local const qat_st_file *sort_ctx;

static int compare_by_offset(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const qat_st_file *f = sort_ctx;
    if (f->begin[i] != f->begin[j]) return f->begin[i] < f->begin[j] ? -1 : 1;
    if (f->end[i] != f->end[j]) return f->end[i] < f->end[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* The reference reader's rule: sorted by offset, the tensors tile the data
 * section exactly. Overlaps would let one tensor alias another, gaps hide
 * unaccounted bytes. */
static qat_status check_tiling(const char *src, qat_st_file *f, uint64_t data_size)
{
    size_t *order = qat_xmalloc((f->count ? f->count : 1) * sizeof *order);
    for (size_t i = 0; i < f->count; i++) order[i] = i;
    sort_ctx = f;
    qsort(order, f->count, sizeof *order, compare_by_offset);
    sort_ctx = NULL;

    qat_status st = QAT_OK;
    uint64_t pos = 0;
    size_t prev = SIZE_MAX;
    for (size_t k = 0; k < f->count && st == QAT_OK; k++) {
        size_t i = order[k];
        if (f->begin[i] < pos) {
            st = qat_error_set(QAT_ERR_FORMAT,
                               "%s: tensor \"%s\": data_offsets [%llu, %llu] overlap tensor \"%s\"", src,
                               f->tensors[i].name, (unsigned long long)f->begin[i],
                               (unsigned long long)f->end[i], f->tensors[prev].name);
        } else if (f->begin[i] > pos) {
            st = qat_error_set(QAT_ERR_FORMAT,
                               "%s: tensor \"%s\": data_offsets [%llu, %llu] leave bytes [%llu, %llu) "
                               "of the data section unused",
                               src, f->tensors[i].name, (unsigned long long)f->begin[i],
                               (unsigned long long)f->end[i], (unsigned long long)pos,
                               (unsigned long long)f->begin[i]);
        }
        pos = f->end[i];
        prev = i;
    }
    if (st == QAT_OK && pos != data_size)
        st = qat_error_set(QAT_ERR_FORMAT,
                           "%s: %llu bytes after the last tensor's data are not described by the header",
                           src, (unsigned long long)(data_size - pos));
    free(order);
    return st;
}

/* Takes ownership of `image` (malloc'd), also on failure. */
static qat_status parse_image(unsigned char *image, size_t size, const char *src, qat_st_file **out)
{
    *out = NULL;
    qat_st_file *f = qat_xcalloc(1, sizeof *f);
    f->image = image;
    f->size = size;
    qat_status st = QAT_OK;

    if (size < 8) {
        st = qat_error_set(QAT_ERR_FORMAT,
                           "%s: truncated: %zu bytes, too short for the 8-byte header length", src,
                           size);
        goto fail;
    }
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)image[i] << (8 * i);
    if (n > QAT_ST_MAX_HEADER_SIZE) {
        st = qat_error_set(QAT_ERR_FORMAT,
                           "%s: header length %llu exceeds the %u-byte limit (not a safetensors file?)",
                           src, (unsigned long long)n, QAT_ST_MAX_HEADER_SIZE);
        goto fail;
    }
    if (n > size - 8) {
        st = qat_error_set(QAT_ERR_FORMAT,
                           "%s: truncated: header length %llu runs past the end of the %zu-byte file",
                           src, (unsigned long long)n, size);
        goto fail;
    }
    if (n == 0 || image[8] != '{') {
        st = qat_error_set(QAT_ERR_FORMAT, "%s: header does not start with '{' (not a safetensors file?)",
                           src);
        goto fail;
    }
    qat_strbuf jsrc = {0};
    qat_strbuf_printf(&jsrc, "%s: header", src);
    st = qat_json_parse((const char *)image + 8, (size_t)n, jsrc.data, &f->header);
    qat_strbuf_free(&jsrc);
    if (st != QAT_OK) goto fail;

    const qat_json_value *h = f->header;
    uint64_t data_size = size - 8 - n;
    unsigned char *data = image + 8 + n;
    f->tensors = qat_xcalloc(h->count ? h->count : 1, sizeof *f->tensors);
    f->owned = qat_xcalloc(h->count ? h->count : 1, sizeof *f->owned);
    f->begin = qat_xcalloc(h->count ? h->count : 1, sizeof *f->begin);
    f->end = qat_xcalloc(h->count ? h->count : 1, sizeof *f->end);
    for (size_t i = 0; i < h->count; i++) {
        const char *key = h->keys[i];
        if (strcmp(key, "__metadata__") == 0) {
            st = parse_metadata(src, &h->items[i]);
            if (st != QAT_OK) goto fail;
            f->metadata = &h->items[i];
            continue;
        }
        size_t k = f->count;
        st = parse_tensor(src, key, &h->items[i], data_size, &f->tensors[k], &f->begin[k], &f->end[k]);
        if (st != QAT_OK) goto fail;
        f->count++;
    }
    st = check_tiling(src, f, data_size);
    if (st != QAT_OK) goto fail;

    for (size_t i = 0; i < f->count; i++) {
        qat_st_tensor *t = &f->tensors[i];
        if (t->nbytes == 0) continue;
        unsigned char *p = data + f->begin[i];
        /* Callers cast data to float* and the like, which needs alignment;
         * files from other writers (or ours, with mixed dtypes) may not
         * provide it. */
        if ((uintptr_t)p % qat_st_dtype_size(t->dtype) != 0) {
            f->owned[i] = memcpy(qat_xmalloc(t->nbytes), p, t->nbytes);
            p = f->owned[i];
        }
        t->data = p;
    }
    *out = f;
    return QAT_OK;

fail:
    qat_st_free(f);
    return st;
}

qat_status qat_st_load(const char *path, qat_st_file **out)
{
    QAT_ASSERT(path && out);
    *out = NULL;
    void *data;
    size_t size;
    QAT_TRY(qat_file_read_all(path, &data, &size));
    return parse_image(data, size, path, out);
}

qat_status qat_st_load_memory(const void *data, size_t size, const char *source_name,
                              qat_st_file **out)
{
    QAT_ASSERT(out && (data || size == 0));
    unsigned char *copy = qat_xmalloc(size);
    if (size) memcpy(copy, data, size);
    return parse_image(copy, size, source_name ? source_name : "<memory>", out);
}

const qat_st_tensor *qat_st_find(const qat_st_file *f, const char *name)
{
    for (size_t i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

size_t qat_st_count(const qat_st_file *f) { return f->count; }

const qat_st_tensor *qat_st_tensor_at(const qat_st_file *f, size_t index)
{
    QAT_ASSERT(index < f->count);
    return &f->tensors[index];
}

const char *qat_st_metadata(const qat_st_file *f, const char *key)
{
    const qat_json_value *v = qat_json_get(f->metadata, key);
    return v ? v->string : NULL;
}

size_t qat_st_metadata_count(const qat_st_file *f) { return f->metadata ? f->metadata->count : 0; }

void qat_st_metadata_at(const qat_st_file *f, size_t index, const char **key, const char **value)
{
    QAT_ASSERT(index < qat_st_metadata_count(f));
    *key = f->metadata->keys[index];
    *value = f->metadata->items[index].string;
}

void qat_st_free(qat_st_file *f)
{
    if (!f) return;
    if (f->owned)
        for (size_t i = 0; i < f->count; i++) free(f->owned[i]);
    free(f->owned);
    free(f->tensors);
    free(f->begin);
    free(f->end);
    qat_json_free(f->header);
    free(f->image);
    free(f);
}
