#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char error_message[1024];

qat_status qat_error_set(qat_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return status;
}

const char *qat_error_message(void) { return error_message; }

void qat_error_clear(void) { error_message[0] = '\0'; }

void qat_assert_fail(const char *expr, const char *file, int line, const char *msg)
{
    fprintf(stderr, "%s:%d: assertion failed: %s%s%s\n", file, line, expr,
            msg ? ": " : "", msg ? msg : "");
    abort();
}

static void *check_alloc(void *p, size_t size)
{
    if (!p && size) {
        fprintf(stderr, "qat: out of host memory (%zu bytes)\n", size);
        abort();
    }
    return p;
}

void *qat_xmalloc(size_t size) { return check_alloc(malloc(size ? size : 1), size); }

void *qat_xcalloc(size_t count, size_t size)
{
    return check_alloc(calloc(count ? count : 1, size ? size : 1), count * size);
}

void *qat_xrealloc(void *ptr, size_t size) { return check_alloc(realloc(ptr, size ? size : 1), size); }

char *qat_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(qat_xmalloc(n), s, n);
}

uint64_t qat_fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}
