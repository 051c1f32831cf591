/* A small INI tokenizer (the experiment specs, experiments/NAME.ini).
 *
 *   [section]            ; a section header; the name is trimmed
 *   key = value          ; the key and value are trimmed; the value may be empty
 *   # comment            ; ';' or '#' at the start of a line (after blanks)
 *   key = v   ; comment  ; or after blanks inside a value line
 *
 * Lines end at '\n' (a '\r' before it is dropped). A ';' or '#' that follows
 * a non-blank character ("a#b") is part of the value. Keys are made of
 * [A-Za-z0-9_.-]; section names may hold anything but ']' and blanks at their
 * ends. A line that is none of these, a '[' line without its ']' (or with
 * text after it other than a comment), an empty section name, an empty or
 * malformed key and a NUL byte in the text are errors
 * ("SOURCE:LINE: ...", QAT_ERR_INVALID).
 *
 * The tokenizer only splits: repeated sections or keys, and what keys and
 * sections exist, are the caller's business. */
#ifndef QAT_INI_H
#define QAT_INI_H

#include <stddef.h>

#include "qat/common.h"

/* Called once per section header (key and value NULL) and once per
 * "key = value" line (section NULL before the first header). Strings are
 * valid only during the call. A status other than QAT_OK stops the parse
 * and is returned (the handler sets the message). */
typedef qat_status (*qat_ini_handler)(void *user, const char *section, const char *key, const char *value,
                                      int line);

/* Tokenizes text[0, len) (need not be NUL-terminated); `source` names it in
 * errors. */
qat_status qat_ini_parse(const char *text, size_t len, const char *source, qat_ini_handler handler, void *user);

#endif
