#include "qat/cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "qat/common.h"

bool cli_parse_int(const char *cmd, const char *flag, const char *value, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "qat %s: %s: expected an integer in [%ld, %ld], got '%s'\n", cmd, flag, min, max, value);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_u64(const char *cmd, const char *flag, const char *value, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value || *end != '\0' || value[0] == '-') {
        fprintf(stderr, "qat %s: %s: expected a non-negative integer, got '%s'\n", cmd, flag, value);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_float(const char *cmd, const char *flag, const char *value, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end != '\0' || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "qat %s: %s: expected a number in [%g, %g], got '%s'\n", cmd, flag, min, max, value);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_optimizer(const char *cmd, const char *value, qat_optim_kind *out)
{
    if (strcmp(value, "adamw") == 0) *out = QAT_OPTIM_ADAMW;
    else if (strcmp(value, "sgd") == 0) *out = QAT_OPTIM_SGD;
    else {
        fprintf(stderr, "qat %s: --optimizer: expected adamw or sgd, got '%s'\n", cmd, value);
        return false;
    }
    return true;
}

bool cli_parse_schedule(const char *cmd, const char *value, qat_schedule_kind *out)
{
    if (strcmp(value, "cosine") == 0) *out = QAT_SCHEDULE_COSINE;
    else if (strcmp(value, "constant") == 0) *out = QAT_SCHEDULE_CONSTANT;
    else {
        fprintf(stderr, "qat %s: --schedule: expected cosine or constant, got '%s'\n", cmd, value);
        return false;
    }
    return true;
}

int cli_bad_option(const char *cmd, int getopt_result, const char *arg)
{
    /* getopt_long returns ':' for a missing argument (with a leading ':' in
     * the option string) and '?' for an unknown option; arg is the word that
     * caused it, which names the option the way the user wrote it. */
    if (getopt_result == ':')
        fprintf(stderr, "qat %s: option '%s' needs an argument (see 'qat %s --help')\n", cmd, arg ? arg : "?", cmd);
    else
        fprintf(stderr, "qat %s: unrecognized option '%s' (see 'qat %s --help')\n", cmd, arg ? arg : "?", cmd);
    return 2;
}

int cli_fail(const char *cmd)
{
    fprintf(stderr, "qat %s: %s\n", cmd, qat_error_message());
    return 1;
}
