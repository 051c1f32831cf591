#include "qat/progress.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double qat_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void qat_progress_begin(qat_progress *p, const char *label, uint64_t total)
{
    memset(p, 0, sizeof *p);
    p->out = stderr;
    p->tty = isatty(fileno(stderr)) == 1;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total ? total : 1;
    p->start = qat_now();
}

static void format_duration(double s, char *buf, size_t n)
{
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void qat_progress_update(qat_progress *p, uint64_t done, const char *status)
{
    if (!p->tty) return;
    double now = qat_now();
    /* Redrawing costs a write per call; ten times a second is plenty. */
    if (done < p->total && now - p->last_draw < 0.1) return;
    p->last_draw = now;
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    uint64_t filled = done * WIDTH / p->total;
    for (int i = 0; i < WIDTH; i++) bar[i] = (uint64_t)i < filled ? '#' : '.';
    bar[WIDTH] = '\0';
    double elapsed = now - p->start;
    double eta = done ? elapsed * (double)(p->total - done) / (double)done : -1;
    char eta_s[32];
    format_duration(eta, eta_s, sizeof eta_s);
    fprintf(p->out, "\r\033[K%s [%s] %llu/%llu %s ETA %s", p->label, bar, (unsigned long long)done,
            (unsigned long long)p->total, status ? status : "", eta_s);
    fflush(p->out);
}

void qat_progress_end(qat_progress *p)
{
    if (p->tty) {
        fprintf(p->out, "\r\033[K");
        fflush(p->out);
    }
}

void qat_progress_line(qat_progress *p, const char *fmt, ...)
{
    qat_progress_end(p);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}
