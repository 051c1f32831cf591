/* Shared pieces of the `qat` subcommands: flag value parsing with one-line
 * errors that name the flag, and the subcommand entry points. */
#ifndef QAT_CLI_H
#define QAT_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "qat/optimizer.h"

/* Each returns false after printing "qat CMD: --flag: what is wrong". */
bool cli_parse_int(const char *cmd, const char *flag, const char *value, long min, long max, long *out);
bool cli_parse_u64(const char *cmd, const char *flag, const char *value, uint64_t *out);
bool cli_parse_float(const char *cmd, const char *flag, const char *value, double min, double max, double *out);
/* --optimizer adamw|sgd and --schedule cosine|constant. */
bool cli_parse_optimizer(const char *cmd, const char *value, qat_optim_kind *out);
bool cli_parse_schedule(const char *cmd, const char *value, qat_schedule_kind *out);
/* Reports what getopt_long returned (':' missing argument, '?' unknown
 * option) for the command-line word arg; returns the exit code 2. */
int cli_bad_option(const char *cmd, int getopt_result, const char *arg);
/* Prints the current qat error message as "qat CMD: message" and returns 1. */
int cli_fail(const char *cmd);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_ptq(int argc, char **argv);
int cmd_qat(int argc, char **argv);
int cmd_qlora(int argc, char **argv);
int cmd_bits(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
