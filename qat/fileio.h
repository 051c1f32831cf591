/* File helpers: atomic whole-file writes, whole-file reads, mkdir -p, and a
 * growable string buffer for building text (JSON, reports) in memory. */
#ifndef QAT_FILEIO_H
#define QAT_FILEIO_H

#include <stddef.h>

#include "common.h"

/* Replaces `path` with `data` so that a crash or kill at any moment leaves
 * either the old file or the complete new one, never a mix: the bytes go to
 * "<path>.tmp.<pid>", which is fsynced, renamed over `path`, and then the
 * directory is fsynced so the rename itself is durable. On failure the
 * temporary file is removed and the message names the path and the reason. */
qat_status qat_file_write_atomic(const char *path, const void *data, size_t size);

/* Reads the whole file into a fresh buffer that the caller frees with free().
 * One extra NUL byte follows the data (not counted in *size) so text can be
 * used as a C string. *data and *size are untouched on failure. */
qat_status qat_file_read_all(const char *path, void **data, size_t *size);

/* Creates `path` and any missing parents (mode 0777 less the umask). An
 * existing directory is fine; an existing non-directory is an error. */
qat_status qat_mkdir_p(const char *path);
/* Removes a file or a directory tree (nothing there is fine). */
qat_status qat_remove_tree(const char *path);

/* Zero-initialise (`qat_strbuf sb = {0};` or qat_strbuf_init) before use.
 * After any append, data is NUL-terminated; len excludes the NUL. */
typedef struct qat_strbuf {
    char *data;
    size_t len, cap;
} qat_strbuf;

void qat_strbuf_init(qat_strbuf *sb);
void qat_strbuf_append(qat_strbuf *sb, const char *s, size_t n);
void qat_strbuf_append_str(qat_strbuf *sb, const char *s);
void qat_strbuf_putc(qat_strbuf *sb, char c);
void qat_strbuf_printf(qat_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties the buffer, keeping its memory. */
void qat_strbuf_clear(qat_strbuf *sb);
/* Releases the memory and leaves an empty, reusable buffer. */
void qat_strbuf_free(qat_strbuf *sb);

#endif
