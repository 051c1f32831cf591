/* Writing summary.json files: fields appended to a JSON object held in a
 * qat_strbuf, one per line, and the environment every run records. The
 * caller opens the object with its first field ("{\n  \"kind\": ...") and
 * closes it with "\n}\n". */
#ifndef QAT_SUMMARY_H
#define QAT_SUMMARY_H

#include "qat/context.h"
#include "qat/fileio.h"

/* ",\n  \"key\": " */
void qat_summary_key(qat_strbuf *sb, const char *key);
void qat_summary_num(qat_strbuf *sb, const char *key, double v);
/* NULL writes null. */
void qat_summary_str(qat_strbuf *sb, const char *key, const char *v);
/* git_commit, device, driver. */
void qat_summary_environment(qat_strbuf *sb, const qat_ctx *ctx);

#endif
