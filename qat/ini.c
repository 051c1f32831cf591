#include "qat/ini.h"

#include <stdlib.h>
#include <string.h>

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
}

/* Trims blanks at both ends in place. */
static char *trim(char *s)
{
    while (is_blank(*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1])) s[--n] = '\0';
    return s;
}

/* Cuts a trailing comment: ';' or '#' at the start or after a blank. */
static void cut_comment(char *s)
{
    for (char *p = s; *p; p++)
        if ((*p == ';' || *p == '#') && (p == s || is_blank(p[-1]))) {
            *p = '\0';
            return;
        }
}

/* The line as quoted in errors: at most 60 characters. */
static const char *excerpt(const char *s, char *buf, size_t size)
{
    size_t n = strlen(s);
    if (n + 1 <= size && n <= 60) return s;
    size_t keep = size - 4 < 60 ? size - 4 : 60;
    memcpy(buf, s, keep);
    memcpy(buf + keep, "...", 4);
    return buf;
}

qat_status qat_ini_parse(const char *text, size_t len, const char *source, qat_ini_handler handler, void *user)
{
    QAT_ASSERT(handler && source && (text || len == 0));
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul) {
        int line = 1;
        for (const char *p = text; p < nul; p++) line += *p == '\n';
        return qat_error_set(QAT_ERR_INVALID, "%s:%d: NUL byte in the text", source, line);
    }
    char *buf = qat_xmalloc(len + 1);
    if (len) memcpy(buf, text, len);
    buf[len] = '\0';

    qat_status st = QAT_OK;
    char *section = NULL;
    char ex[64];
    int line = 0;
    for (char *p = buf; st == QAT_OK && *p;) {
        line++;
        char *end = strchr(p, '\n');
        char *next = end ? end + 1 : p + strlen(p);
        if (end) *end = '\0';
        char *s = trim(p);
        p = next;
        if (*s == '\0' || *s == ';' || *s == '#') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close) {
                st = qat_error_set(QAT_ERR_INVALID, "%s:%d: section header '%s' lacks its ']'", source, line,
                                   excerpt(s, ex, sizeof ex));
                break;
            }
            char *rest = close + 1;
            while (is_blank(*rest)) rest++;
            if (*rest && *rest != ';' && *rest != '#') {
                st = qat_error_set(QAT_ERR_INVALID, "%s:%d: unexpected text '%s' after section header", source,
                                   line, excerpt(rest, ex, sizeof ex));
                break;
            }
            *close = '\0';
            char *name = trim(s + 1);
            if (*name == '\0') {
                st = qat_error_set(QAT_ERR_INVALID, "%s:%d: empty section name", source, line);
                break;
            }
            section = name;
            st = handler(user, section, NULL, NULL, line);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            st = qat_error_set(QAT_ERR_INVALID, "%s:%d: expected '[section]' or 'key = value', got '%s'", source,
                               line, excerpt(s, ex, sizeof ex));
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = eq + 1;
        cut_comment(value);
        value = trim(value);
        if (*key == '\0') {
            st = qat_error_set(QAT_ERR_INVALID, "%s:%d: missing key before '='", source, line);
            break;
        }
        for (const char *k = key; *k; k++)
            if (!is_key_char(*k)) {
                st = qat_error_set(QAT_ERR_INVALID, "%s:%d: bad key '%s' (keys are made of A-Z a-z 0-9 _ . -)",
                                   source, line, excerpt(key, ex, sizeof ex));
                break;
            }
        if (st != QAT_OK) break;
        st = handler(user, section, key, value, line);
    }
    free(buf);
    return st;
}
