/* Shared basics: status codes, the one-line error message, assertions.
 *
 * Two kinds of failure (see DESIGN.md "Errors"):
 * - programmer errors (a shape mismatch in a graph builder, a NULL where none
 *   is allowed): QAT_ASSERT aborts with file:line, because there is nothing
 *   sensible to recover;
 * - runtime failures (Vulkan, I/O, bad input): the function returns a
 *   qat_status other than QAT_OK after recording one clear message with
 *   qat_error_set(); the CLI prints qat_error_message() and exits non-zero.
 */
#ifndef QAT_COMMON_H
#define QAT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum qat_status {
    QAT_OK = 0,
    QAT_ERR_IO,        /* a file could not be opened, read or written */
    QAT_ERR_FORMAT,    /* a file is truncated, corrupt or of the wrong kind */
    QAT_ERR_INVALID,   /* a bad argument, flag or config value */
    QAT_ERR_VULKAN,    /* a Vulkan call failed or no usable device */
    QAT_ERR_NOMEM,     /* host or device memory exhausted */
} qat_status;

/* Records the message for the current failure (printf-style, one line, no
 * trailing newline) and returns `status` so callers can write
 * `return qat_error_set(QAT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));` */
qat_status qat_error_set(qat_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The last recorded message ("" if none). Thread-local. */
const char *qat_error_message(void);
void qat_error_clear(void);

void qat_assert_fail(const char *expr, const char *file, int line, const char *msg)
    __attribute__((noreturn));

#define QAT_ASSERT(cond)                                                       \
    do {                                                                       \
        if (!(cond)) qat_assert_fail(#cond, __FILE__, __LINE__, NULL);         \
    } while (0)
#define QAT_ASSERT_MSG(cond, msg)                                              \
    do {                                                                       \
        if (!(cond)) qat_assert_fail(#cond, __FILE__, __LINE__, (msg));        \
    } while (0)

/* Propagates a non-OK status from an expression. */
#define QAT_TRY(expr)                                                          \
    do {                                                                       \
        qat_status qat_try_status_ = (expr);                                   \
        if (qat_try_status_ != QAT_OK) return qat_try_status_;                \
    } while (0)

#define QAT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Host allocation that aborts on exhaustion: the host-side data here is small
 * (graphs, datasets) and a failed malloc is not a condition we can report
 * better than by stopping. */
void *qat_xmalloc(size_t size);
void *qat_xcalloc(size_t count, size_t size);
void *qat_xrealloc(void *ptr, size_t size);
char *qat_xstrdup(const char *s);

/* FNV-1a, 64 bits (offset basis 0xcbf29ce484222325, prime 0x100000001b3):
 * the fortunes split, run ids and cache keys (not for security). */
uint64_t qat_fnv1a64(const void *data, size_t len);

#endif
