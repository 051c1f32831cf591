#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"

/* ------------------------------------------------------------------ writer */

void qat_json_write_string(qat_strbuf *sb, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    qat_strbuf_putc(sb, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        switch (c) {
        case '"': qat_strbuf_append(sb, "\\\"", 2); break;
        case '\\': qat_strbuf_append(sb, "\\\\", 2); break;
        case '\b': qat_strbuf_append(sb, "\\b", 2); break;
        case '\f': qat_strbuf_append(sb, "\\f", 2); break;
        case '\n': qat_strbuf_append(sb, "\\n", 2); break;
        case '\r': qat_strbuf_append(sb, "\\r", 2); break;
        case '\t': qat_strbuf_append(sb, "\\t", 2); break;
        default:
            if (c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                qat_strbuf_append(sb, esc, sizeof esc);
            } else {
                qat_strbuf_putc(sb, (char)c);
            }
        }
    }
    qat_strbuf_putc(sb, '"');
}

void qat_json_write_number(qat_strbuf *sb, double v)
{
    if (!isfinite(v)) {
        qat_json_write_null(sb);
        return;
    }
    if (v == trunc(v) && fabs(v) < 0x1.0p53) {
        /* %.0f of an integral double below 2^53 is exact and exponent-free;
         * -0.0 prints as "-0", which JSON allows and which reads back as
         * -0.0. */
        qat_strbuf_printf(sb, "%.0f", v);
        return;
    }
    /* Shorter forms are easier to read ("0.1" rather than
     * "0.10000000000000001"); %.17g always round-trips. The C locale is
     * assumed: nothing in qat calls setlocale(). */
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v) break;
    }
    qat_strbuf_append_str(sb, buf);
}

void qat_json_write_int(qat_strbuf *sb, int64_t v) { qat_strbuf_printf(sb, "%" PRId64, v); }

void qat_json_write_uint(qat_strbuf *sb, uint64_t v) { qat_strbuf_printf(sb, "%" PRIu64, v); }

void qat_json_write_bool(qat_strbuf *sb, bool v) { qat_strbuf_append_str(sb, v ? "true" : "false"); }

void qat_json_write_null(qat_strbuf *sb) { qat_strbuf_append(sb, "null", 4); }

/* ------------------------------------------------------------------ parser */

typedef struct parser {
    const char *text;
    size_t len, pos;
    const char *source;
    qat_status status; /* first error; parsing stops once set */
} parser;

static bool fail(parser *p, size_t at, const char *what)
{
    if (p->status == QAT_OK)
        p->status = qat_error_set(QAT_ERR_FORMAT, "%s: invalid JSON at byte %zu: %s", p->source,
                                  at, what);
    return false;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static bool literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0)
        return fail(p, p->pos, "unexpected character, expected a value");
    p->pos += n;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool parse_number(parser *p, qat_json_value *v)
{
    size_t start = p->pos, i = p->pos;
    const char *t = p->text;
    if (i < p->len && t[i] == '-') i++;
    if (i >= p->len || !is_digit(t[i])) return fail(p, i, "malformed number");
    if (t[i] == '0') {
        i++;
    } else {
        while (i < p->len && is_digit(t[i])) i++;
    }
    if (i < p->len && t[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(t[i])) return fail(p, i, "malformed number: digit expected after '.'");
        while (i < p->len && is_digit(t[i])) i++;
    }
    if (i < p->len && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < p->len && (t[i] == '+' || t[i] == '-')) i++;
        if (i >= p->len || !is_digit(t[i])) return fail(p, i, "malformed number: digit expected in exponent");
        while (i < p->len && is_digit(t[i])) i++;
    }
    /* strtod needs a terminated copy: `text` may end right after the
     * number. */
    size_t n = i - start;
    char small[64];
    char *buf = n < sizeof small ? small : qat_xmalloc(n + 1);
    memcpy(buf, t + start, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (buf != small) free(buf);
    if (!isfinite(d)) return fail(p, start, "number out of range");
    v->type = QAT_JSON_NUMBER;
    v->number = d;
    p->pos = i;
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(parser *p, size_t at, uint32_t *out)
{
    if (p->len - at < 4) return fail(p, at, "truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_value(p->text[at + k]);
        if (h < 0) return fail(p, at + k, "bad hex digit in \\u escape");
        v = v * 16 + (uint32_t)h;
    }
    *out = v;
    return true;
}

static void put_utf8(qat_strbuf *sb, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    qat_strbuf_append(sb, b, n);
}

/* Length of the well-formed UTF-8 sequence at s[0..avail), or 0 if it is
 * malformed (overlong forms, surrogates and values above U+10FFFF are). */
static size_t utf8_sequence_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n) return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* Parses a string starting at the opening quote into `sb` (cleared first). */
static bool parse_string_raw(parser *p, qat_strbuf *sb)
{
    qat_strbuf_clear(sb);
    qat_strbuf_append(sb, "", 0); /* data non-NULL even for "" */
    size_t start = p->pos;
    p->pos++; /* opening quote */
    for (;;) {
        if (p->pos >= p->len) return fail(p, start, "unterminated string");
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c == '"') {
            p->pos++;
            return true;
        }
        if (c < 0x20) return fail(p, p->pos, "control character in string (must be escaped)");
        if (c != '\\') {
            size_t n = utf8_sequence_len((const unsigned char *)p->text + p->pos, p->len - p->pos);
            if (n == 0) return fail(p, p->pos, "invalid UTF-8 in string");
            qat_strbuf_append(sb, p->text + p->pos, n);
            p->pos += n;
            continue;
        }
        size_t esc = p->pos;
        if (p->pos + 1 >= p->len) return fail(p, start, "unterminated string");
        char e = p->text[p->pos + 1];
        p->pos += 2;
        switch (e) {
        case '"': qat_strbuf_putc(sb, '"'); break;
        case '\\': qat_strbuf_putc(sb, '\\'); break;
        case '/': qat_strbuf_putc(sb, '/'); break;
        case 'b': qat_strbuf_putc(sb, '\b'); break;
        case 'f': qat_strbuf_putc(sb, '\f'); break;
        case 'n': qat_strbuf_putc(sb, '\n'); break;
        case 'r': qat_strbuf_putc(sb, '\r'); break;
        case 't': qat_strbuf_putc(sb, '\t'); break;
        case 'u': {
            uint32_t cp;
            if (!read_hex4(p, p->pos, &cp)) return false;
            p->pos += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(p, esc, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->len - p->pos < 2 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u')
                    return fail(p, esc, "high surrogate not followed by a low surrogate");
                if (!read_hex4(p, p->pos + 2, &lo)) return false;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, esc, "high surrogate not followed by a low surrogate");
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(sb, cp);
            break;
        }
        default: return fail(p, esc, "invalid escape sequence in string");
        }
    }
}

static bool parse_value(parser *p, qat_json_value *v, int depth, qat_strbuf *scratch);

static void push_item(qat_json_value *v, size_t *cap, const qat_json_value *item, char *key)
{
    if (v->count == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        v->items = qat_xrealloc(v->items, *cap * sizeof *v->items);
        if (v->type == QAT_JSON_OBJECT) v->keys = qat_xrealloc(v->keys, *cap * sizeof *v->keys);
    }
    v->items[v->count] = *item;
    if (v->type == QAT_JSON_OBJECT) v->keys[v->count] = key;
    v->count++;
}

static bool parse_array(parser *p, qat_json_value *v, int depth, qat_strbuf *scratch)
{
    size_t cap = 0;
    v->type = QAT_JSON_ARRAY;
    p->pos++; /* '[' */
    skip_ws(p);
    if (p->pos < p->len && p->text[p->pos] == ']') {
        p->pos++;
        return true;
    }
    for (;;) {
        qat_json_value item = {0};
        bool ok = parse_value(p, &item, depth + 1, scratch);
        /* Pushed even on failure so qat_json_free reclaims what the child
         * allocated before failing. */
        push_item(v, &cap, &item, NULL);
        if (!ok) return false;
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unterminated array");
        char c = p->text[p->pos++];
        if (c == ']') return true;
        if (c != ',') return fail(p, p->pos - 1, "expected ',' or ']' in array");
    }
}

static int compare_key_ptrs(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool check_unique_keys(parser *p, const qat_json_value *v, size_t obj_start)
{
    if (v->count < 2) return true;
    char **sorted = qat_xmalloc(v->count * sizeof *sorted);
    memcpy(sorted, v->keys, v->count * sizeof *sorted);
    qsort(sorted, v->count, sizeof *sorted, compare_key_ptrs);
    bool ok = true;
    for (size_t i = 1; i < v->count && ok; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            qat_strbuf msg = {0};
            qat_strbuf_append_str(&msg, "duplicate key ");
            qat_json_write_string(&msg, sorted[i]);
            qat_strbuf_append_str(&msg, " in object");
            ok = fail(p, obj_start, msg.data);
            qat_strbuf_free(&msg);
        }
    }
    free(sorted);
    return ok;
}

static bool parse_object(parser *p, qat_json_value *v, int depth, qat_strbuf *scratch)
{
    size_t cap = 0, start = p->pos;
    v->type = QAT_JSON_OBJECT;
    p->pos++; /* '{' */
    skip_ws(p);
    if (p->pos < p->len && p->text[p->pos] == '}') {
        p->pos++;
        return true;
    }
    for (;;) {
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unterminated object");
        if (p->text[p->pos] != '"') return fail(p, p->pos, "expected a string key in object");
        size_t key_start = p->pos;
        if (!parse_string_raw(p, scratch)) return false;
        if (strlen(scratch->data) != scratch->len)
            return fail(p, key_start, "object key contains \\u0000");
        char *key = qat_xmalloc(scratch->len + 1);
        memcpy(key, scratch->data, scratch->len + 1);
        skip_ws(p);
        if (p->pos >= p->len || p->text[p->pos] != ':') {
            free(key);
            return fail(p, p->pos, "expected ':' after object key");
        }
        p->pos++;
        qat_json_value item = {0};
        bool ok = parse_value(p, &item, depth + 1, scratch);
        push_item(v, &cap, &item, key);
        if (!ok) return false;
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, p->pos, "unterminated object");
        char c = p->text[p->pos++];
        if (c == '}') return check_unique_keys(p, v, start);
        if (c != ',') return fail(p, p->pos - 1, "expected ',' or '}' in object");
    }
}

static bool parse_value(parser *p, qat_json_value *v, int depth, qat_strbuf *scratch)
{
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of input, expected a value");
    char c = p->text[p->pos];
    if ((c == '{' || c == '[') && depth > QAT_JSON_MAX_DEPTH)
        return fail(p, p->pos, "arrays and objects nested more than 64 deep");
    switch (c) {
    case '{': return parse_object(p, v, depth, scratch);
    case '[': return parse_array(p, v, depth, scratch);
    case '"':
        if (!parse_string_raw(p, scratch)) return false;
        v->type = QAT_JSON_STRING;
        v->string = qat_xmalloc(scratch->len + 1);
        memcpy(v->string, scratch->data, scratch->len + 1);
        v->string_len = scratch->len;
        return true;
    case 't':
        v->type = QAT_JSON_BOOL;
        v->boolean = true;
        return literal(p, "true");
    case 'f':
        v->type = QAT_JSON_BOOL;
        v->boolean = false;
        return literal(p, "false");
    case 'n':
        v->type = QAT_JSON_NULL;
        return literal(p, "null");
    default:
        if (p->text[p->pos] == '-' || is_digit(p->text[p->pos])) return parse_number(p, v);
        return fail(p, p->pos, "unexpected character, expected a value");
    }
}

/* Frees what a value owns, not the value itself (children live in their
 * parent's items array). */
static void free_contents(qat_json_value *v)
{
    switch (v->type) {
    case QAT_JSON_STRING: free(v->string); break;
    case QAT_JSON_ARRAY:
    case QAT_JSON_OBJECT:
        for (size_t i = 0; i < v->count; i++) {
            free_contents(&v->items[i]);
            if (v->keys) free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
        break;
    default: break;
    }
}

qat_status qat_json_parse(const char *text, size_t len, const char *source_name,
                          qat_json_value **out)
{
    QAT_ASSERT(out && (text || len == 0));
    *out = NULL;
    parser p = {.text = text, .len = len, .pos = 0, .source = source_name ? source_name : "<json>",
                .status = QAT_OK};
    qat_strbuf scratch = {0};
    qat_json_value *root = qat_xcalloc(1, sizeof *root);
    bool ok = parse_value(&p, root, 1, &scratch);
    qat_strbuf_free(&scratch);
    if (ok) {
        skip_ws(&p);
        if (p.pos < p.len) ok = fail(&p, p.pos, "unexpected data after the JSON value");
    }
    if (!ok) {
        qat_json_free(root);
        return p.status;
    }
    *out = root;
    return QAT_OK;
}

const qat_json_value *qat_json_get(const qat_json_value *obj, const char *key)
{
    if (!obj || obj->type != QAT_JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->count; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

const char *qat_json_type_name(qat_json_type type)
{
    switch (type) {
    case QAT_JSON_NULL: return "null";
    case QAT_JSON_BOOL: return "boolean";
    case QAT_JSON_NUMBER: return "number";
    case QAT_JSON_STRING: return "string";
    case QAT_JSON_ARRAY: return "array";
    case QAT_JSON_OBJECT: return "object";
    }
    return "unknown";
}

void qat_json_free(qat_json_value *value)
{
    if (!value) return;
    free_contents(value);
    free(value);
}

qat_status qat_json_load(const char *path, qat_json_value **out)
{
    *out = NULL;
    void *text;
    size_t size;
    QAT_TRY(qat_file_read_all(path, &text, &size));
    qat_status st = qat_json_parse(text, size, path, out);
    free(text);
    return st;
}
