/* `qat bench` runs bin/qat-bench (built from bench/), which links OpenBLAS
 * as the reference; keeping it a separate program keeps OpenBLAS out of qat. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qat/cli/cli.h"

int cmd_bench(int argc, char **argv)
{
    (void)argc;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "qat bench: cannot locate the qat binary: %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    char bench[PATH_MAX + 16];
    snprintf(bench, sizeof bench, "%.*s/qat-bench", (int)(slash - self), self);
    argv[0] = bench;
    execv(bench, argv);
    fprintf(stderr, "qat bench: cannot run %s: %s (build it with 'make')\n", bench, strerror(errno));
    return 1;
}
