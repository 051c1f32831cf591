#include "qat/summary.h"

#include <stdio.h>

#include "qat/json.h"
#include "qat/version.h"

void qat_summary_key(qat_strbuf *sb, const char *key)
{
    qat_strbuf_printf(sb, ",\n  ");
    qat_json_write_string(sb, key);
    qat_strbuf_printf(sb, ": ");
}

void qat_summary_num(qat_strbuf *sb, const char *key, double v)
{
    qat_summary_key(sb, key);
    qat_json_write_number(sb, v);
}

void qat_summary_str(qat_strbuf *sb, const char *key, const char *v)
{
    qat_summary_key(sb, key);
    if (v) qat_json_write_string(sb, v);
    else qat_json_write_null(sb);
}

void qat_summary_environment(qat_strbuf *sb, const qat_ctx *ctx)
{
    qat_summary_str(sb, "git_commit", qat_git_commit());
    qat_summary_str(sb, "device", ctx->info.name);
    char driver[600];
    snprintf(driver, sizeof driver, "%s %s", ctx->info.driver_name, ctx->info.driver_info);
    qat_summary_str(sb, "driver", driver);
}
