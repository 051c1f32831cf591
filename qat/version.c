#include "qat/version.h"

#include "build_info.h" /* build/gen/build_info.h, written by the Makefile */

const char *qat_git_commit(void) { return QAT_GIT_COMMIT; }
