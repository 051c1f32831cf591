/* Progress for long work: on a terminal, a bar redrawn in place with a
 * status text and the ETA; otherwise nothing until the caller prints its own
 * plain line (one per epoch), so logs stay readable. */
#ifndef QAT_PROGRESS_H
#define QAT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct qat_progress {
    FILE *out;
    bool tty;
    char label[64];
    uint64_t total;
    double start;
    double last_draw;
} qat_progress;

/* Seconds on a monotonic clock. */
double qat_now(void);

void qat_progress_begin(qat_progress *p, const char *label, uint64_t total);
/* status: short text shown after the bar (e.g. "loss 0.4321"). */
void qat_progress_update(qat_progress *p, uint64_t done, const char *status);
/* Clears the bar so a plain line can follow. */
void qat_progress_end(qat_progress *p);
/* Prints a plain line, clearing the bar first when there is one. */
void qat_progress_line(qat_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
