#ifndef QAT_VERSION_H
#define QAT_VERSION_H

/* The git commit the binary was built from ("-dirty" when the tree had
 * uncommitted changes, "unknown" outside a checkout). */
const char *qat_git_commit(void);

#endif
