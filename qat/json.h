/* Minimal JSON (RFC 8259) for safetensors headers and summary files: a few
 * writer helpers that append to a qat_strbuf, and a strict parser into a
 * small tree. */
#ifndef QAT_JSON_H
#define QAT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "fileio.h"

/* Nesting deeper than this is rejected, so hostile input cannot exhaust the
 * stack of the recursive parser. */
#define QAT_JSON_MAX_DEPTH 64

/* --- writer --- */

/* A quoted JSON string: '"' and '\\' escaped, control characters as \n, \t
 * etc. or \u00XX; other bytes (UTF-8) are copied as they are. */
void qat_json_write_string(qat_strbuf *sb, const char *s);
/* The shortest of %.15g / %.16g / %.17g that reads back to the same double;
 * integral values below 2^53 in magnitude print as plain integers ("3", not
 * "3e+00"); NaN and infinities, which JSON cannot represent, print as null. */
void qat_json_write_number(qat_strbuf *sb, double v);
void qat_json_write_int(qat_strbuf *sb, int64_t v);
void qat_json_write_uint(qat_strbuf *sb, uint64_t v);
void qat_json_write_bool(qat_strbuf *sb, bool v);
void qat_json_write_null(qat_strbuf *sb);

/* --- parser --- */

typedef enum {
    QAT_JSON_NULL,
    QAT_JSON_BOOL,
    QAT_JSON_NUMBER,
    QAT_JSON_STRING,
    QAT_JSON_ARRAY,
    QAT_JSON_OBJECT
} qat_json_type;

typedef struct qat_json_value {
    qat_json_type type;
    bool boolean;  /* QAT_JSON_BOOL */
    double number; /* QAT_JSON_NUMBER */
    /* QAT_JSON_STRING: decoded UTF-8, NUL-terminated; string_len counts the
     * bytes, which matters only if the text contained \u0000. */
    char *string;
    size_t string_len;
    /* QAT_JSON_ARRAY and QAT_JSON_OBJECT: `count` children in file order;
     * for objects keys[i] (NUL-terminated) names items[i]. */
    size_t count;
    struct qat_json_value *items;
    char **keys;
} qat_json_value;

/* Parses exactly one JSON value from text[0..len) (surrounding whitespace
 * allowed; `text` need not be NUL-terminated). Strict: no comments, no
 * trailing commas, strings must be valid UTF-8, numbers must be finite
 * doubles, object keys must be unique and free of \u0000. On failure *out is NULL and the
 * message names `source_name` and the byte offset of the problem. */
qat_status qat_json_parse(const char *text, size_t len, const char *source_name,
                          qat_json_value **out);

/* Reads and parses a whole file: QAT_ERR_IO when it cannot be read,
 * QAT_ERR_FORMAT when it is not JSON (the message names the path). */
qat_status qat_json_load(const char *path, qat_json_value **out);

/* The value of `key` in an object; NULL if absent or `obj` is not an object
 * (or is NULL), so lookups can be chained. */
const qat_json_value *qat_json_get(const qat_json_value *obj, const char *key);

/* "null", "boolean", "number", "string", "array" or "object". */
const char *qat_json_type_name(qat_json_type type);

/* Frees a tree returned by qat_json_parse (NULL is fine). */
void qat_json_free(qat_json_value *value);

#endif
