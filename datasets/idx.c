#include "datasets/idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* What went wrong inside zlib for `f`, for the end of a message. zlib
 * prefixes its messages with the path, which ours already name. */
static const char *gz_reason(gzFile f, const char *path, int *errnum)
{
    int e = Z_OK;
    const char *msg = gzerror(f, &e);
    if (errnum) *errnum = e;
    if (!msg || !*msg) return "unknown zlib error";
    size_t n = strlen(path);
    if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    return msg;
}

/* Reads exactly `want` bytes unless the stream ends or breaks first.
 * Returns the count read, or -1 after recording the error in *st for gzread
 * failures (corrupt data, CRC mismatch, I/O error). */
static long long read_some(gzFile f, const char *path, void *buf, size_t want, qat_status *st)
{
    size_t got = 0;
    while (got < want) {
        size_t chunk = want - got;
        if (chunk > (1u << 30)) chunk = 1u << 30; /* gzread takes an unsigned */
        int n = gzread(f, (char *)buf + got, (unsigned)chunk);
        if (n < 0) {
            int e;
            const char *reason = gz_reason(f, path, &e);
            if (e == Z_ERRNO)
                *st = qat_error_set(QAT_ERR_IO, "%s: read error: %s", path, reason);
            else
                *st = qat_error_set(QAT_ERR_FORMAT, "%s: corrupt gzip data: %s", path, reason);
            return -1;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    return (long long)got;
}

/* Describes a short read: if zlib saw the compressed stream end early, say
 * so, since that is the likely cause. */
static qat_status truncated(gzFile f, const char *path, const char *what, size_t want, size_t got)
{
    int e;
    const char *reason = gz_reason(f, path, &e);
    if (e != Z_OK)
        return qat_error_set(QAT_ERR_FORMAT, "%s: truncated: expected %zu bytes of %s, got %zu (%s)",
                             path, want, what, got, reason);
    return qat_error_set(QAT_ERR_FORMAT, "%s: truncated: expected %zu bytes of %s, got %zu", path,
                         want, what, got);
}

static const char *type_name(unsigned t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown";
    }
}

static qat_status load(gzFile f, const char *path, qat_idx *out)
{
    qat_status st = QAT_OK;
    unsigned char head[4];
    long long n = read_some(f, path, head, 4, &st);
    if (n < 0) return st;
    if (n < 4) return truncated(f, path, "header", 4, (size_t)n);
    if (head[0] != 0 || head[1] != 0)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: not an IDX file: bad magic bytes %02x %02x %02x %02x (expected 00 00 "
                             "08 <ndim>)",
                             path, head[0], head[1], head[2], head[3]);
    if (head[2] != 0x08)
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: unsupported IDX element type 0x%02x (%s); only 0x08 (unsigned byte) "
                             "is supported",
                             path, head[2], type_name(head[2]));
    int ndim = head[3];
    if (ndim < 1 || ndim > QAT_IDX_MAX_DIMS)
        return qat_error_set(QAT_ERR_FORMAT, "%s: IDX header declares %d dimensions (expected 1 to %d)",
                             path, ndim, QAT_IDX_MAX_DIMS);
    unsigned char dimbuf[4 * QAT_IDX_MAX_DIMS];
    n = read_some(f, path, dimbuf, 4 * (size_t)ndim, &st);
    if (n < 0) return st;
    if (n < 4 * ndim) return truncated(f, path, "dimensions", 4 * (size_t)ndim, (size_t)n);

    uint64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        const unsigned char *b = dimbuf + 4 * i;
        out->dims[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (out->dims[i] != 0 && total > (uint64_t)SIZE_MAX / out->dims[i])
            return qat_error_set(QAT_ERR_FORMAT, "%s: IDX dimensions describe more bytes than fit in memory",
                                 path);
        total *= out->dims[i];
    }
    out->ndim = ndim;

    /* The buffer grows as data actually arrives, so a header claiming
     * gigabytes in a small file ends as "truncated" rather than as a huge
     * allocation. */
    size_t want = (size_t)total, got = 0, cap = want < (1u << 20) ? want : (1u << 20);
    uint8_t *data = qat_xmalloc(cap ? cap : 1);
    while (got < want) {
        if (got == cap) {
            cap = cap > want / 2 ? want : cap * 2;
            data = qat_xrealloc(data, cap);
        }
        n = read_some(f, path, data + got, cap - got, &st);
        if (n < 0) {
            free(data);
            return st;
        }
        got += (size_t)n;
        if (got < cap) break; /* end of stream */
    }
    if (got < want) {
        free(data);
        return truncated(f, path, "data", want, got);
    }
    /* Reading past the end also makes zlib check the gzip trailer (CRC and
     * length), which it only does once the stream is consumed. */
    unsigned char extra;
    n = read_some(f, path, &extra, 1, &st);
    if (n != 0) {
        free(data);
        if (n < 0) return st;
        return qat_error_set(QAT_ERR_FORMAT,
                             "%s: trailing data after the %zu bytes the IDX dimensions describe", path,
                             want);
    }
    int e;
    const char *reason = gz_reason(f, path, &e);
    if (e != Z_OK) {
        free(data);
        return qat_error_set(QAT_ERR_FORMAT, "%s: corrupt or truncated gzip stream: %s", path, reason);
    }
    out->data = data;
    out->size = want;
    return QAT_OK;
}

qat_status qat_idx_load(const char *path, qat_idx *out)
{
    QAT_ASSERT(path && out);
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        if (errno == 0) return qat_error_set(QAT_ERR_NOMEM, "%s: cannot open: zlib out of memory", path);
        return qat_error_set(QAT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    gzbuffer(f, 1u << 17);
    qat_status st = load(f, path, out);
    gzclose_r(f);
    if (st != QAT_OK) memset(out, 0, sizeof *out);
    return st;
}

void qat_idx_free(qat_idx *idx)
{
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
