/* The report's plots, drawn by gnuplot through a pipe. Every script carries
 * its data inline ($name << EOD blocks) and is saved beside its PNG, so
 * `cd plots && gnuplot NAME.gp` redraws a plot without qat or the runs.
 *
 * New plots (the per-layer bit bars of mixed precision, for one) are one
 * more function that builds a script body and calls report_gnuplot_render,
 * and one more report_figure slot. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reports/report_internal.h"

#define GNUPLOT_MISSING "gnuplot not found: install Debian's gnuplot-nox (apt-get install gnuplot-nox)"
#define PLOT_FONT "DejaVu Sans,11"

/* Okabe-Ito's colour-blind-safe colours (less its yellow, too pale on
 * white) and four of Tol's to go on with. */
static const char *const palette[] = { "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                                       "#882255", "#117733", "#999933", "#332288" };
#define FP32_COLOR "#444444"

const char *report_plot_color(int i) { return palette[i % (int)QAT_ARRAY_LEN(palette)]; }

/* A point shape per method, so the methods differ in more than colour:
 * filled circle, square, triangle, diamond, inverted triangle. */
static int method_point_type(int method_rank)
{
    static const int types[] = { 7, 7, 5, 9, 13, 11 };
    return method_rank >= 0 && method_rank < (int)QAT_ARRAY_LEN(types) ? types[method_rank] : 7;
}

void report_gp_string(qat_strbuf *sb, const char *s)
{
    qat_strbuf_putc(sb, '\'');
    for (; *s; s++) {
        if (*s == '\'') qat_strbuf_putc(sb, '\'');
        /* A newline would end the command in the middle of the string. */
        qat_strbuf_putc(sb, *s == '\n' || *s == '\r' ? ' ' : *s);
    }
    qat_strbuf_putc(sb, '\'');
}

/* A double-quoted string column of a data block; gnuplot has no escape for
 * '"' there, so it becomes '. */
void report_gp_data_string(qat_strbuf *sb, const char *s)
{
    qat_strbuf_putc(sb, '"');
    for (; *s; s++) qat_strbuf_putc(sb, *s == '"' ? '\'' : *s == '\n' || *s == '\r' ? ' ' : *s);
    qat_strbuf_putc(sb, '"');
}

/* The same quoting for sh: everything between single quotes is literal. */
static void shell_string(qat_strbuf *sb, const char *s)
{
    qat_strbuf_putc(sb, '\'');
    for (; *s; s++) {
        if (*s == '\'') qat_strbuf_append_str(sb, "'\\''");
        else qat_strbuf_putc(sb, *s);
    }
    qat_strbuf_putc(sb, '\'');
}

qat_status report_gnuplot_check(void)
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        char candidate[4096];
        if (n == 0) snprintf(candidate, sizeof candidate, "./gnuplot");
        else snprintf(candidate, sizeof candidate, "%.*s/gnuplot", (int)n, path);
        struct stat st;
        if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode) && access(candidate, X_OK) == 0) return QAT_OK;
        path += n + (colon ? 1 : 0);
    }
    return qat_error_set(QAT_ERR_IO, GNUPLOT_MISSING);
}

/* The last line of gnuplot's stderr that says something, for the error. */
static void last_message(const char *log, char *out, size_t size)
{
    out[0] = '\0';
    const char *end = log + strlen(log);
    while (end > log && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\r')) end--;
    const char *start = end;
    while (start > log && start[-1] != '\n') start--;
    /* gnuplot points at the culprit with a caret line, then names the error
     * on the next: "line 12: undefined variable: x". */
    snprintf(out, size, "%.*s", (int)(end - start), start);
}

static void script_head(qat_strbuf *sb, const char *name, int width, int height, const char *output)
{
    qat_strbuf_printf(sb, "# Drawn by qat's report generator; the data is inline, so\n"
                          "#   cd plots && gnuplot %s.gp\n# redraws %s.png.\n", name, name);
    qat_strbuf_printf(sb, "set terminal pngcairo size %d,%d font '%s' noenhanced\nset output ", width, height,
                      PLOT_FONT);
    report_gp_string(sb, output);
    qat_strbuf_append_str(sb, "\nset encoding utf8\n");
}

qat_status report_gnuplot_render(const char *plots_dir, const char *name, int width, int height, const char *body)
{
    QAT_TRY(report_gnuplot_check());
    char gp_path[4200], png_path[4200], tmp_name[256], tmp_path[4400], log_path[4400];
    snprintf(gp_path, sizeof gp_path, "%s/%s.gp", plots_dir, name);
    snprintf(png_path, sizeof png_path, "%s/%s.png", plots_dir, name);
    snprintf(tmp_name, sizeof tmp_name, "%s.png.tmp.%ld", name, (long)getpid());
    snprintf(tmp_path, sizeof tmp_path, "%s/%s", plots_dir, tmp_name);
    snprintf(log_path, sizeof log_path, "%s/%s.log.tmp.%ld", plots_dir, name, (long)getpid());

    qat_strbuf saved = { 0 }, piped = { 0 }, cmd = { 0 };
    char output[300];
    snprintf(output, sizeof output, "%s.png", name);
    script_head(&saved, name, width, height, output);
    qat_strbuf_append_str(&saved, body);
    /* gnuplot writes to a temporary name in the plots directory, and the PNG
     * takes its place only once gnuplot succeeded, as every file here does. */
    qat_strbuf_append_str(&piped, "cd ");
    report_gp_string(&piped, plots_dir);
    qat_strbuf_putc(&piped, '\n');
    script_head(&piped, name, width, height, tmp_name);
    qat_strbuf_append_str(&piped, body);
    qat_strbuf_append_str(&piped, "\nunset output\nexit\n");

    qat_status st = qat_file_write_atomic(gp_path, saved.data, saved.len);
    if (st == QAT_OK) {
        qat_strbuf_append_str(&cmd, "gnuplot 2>");
        shell_string(&cmd, log_path);
        /* A gnuplot that exits early would kill us with SIGPIPE on the next
         * write; ignoring it turns that into EPIPE and the exit status. */
        struct sigaction ignore = { .sa_handler = SIG_IGN }, previous;
        sigemptyset(&ignore.sa_mask);
        sigaction(SIGPIPE, &ignore, &previous);
        FILE *pipe = popen(cmd.data, "w");
        if (!pipe) {
            st = qat_error_set(QAT_ERR_IO, GNUPLOT_MISSING " (popen: %s)", strerror(errno));
        } else {
            fwrite(piped.data, 1, piped.len, pipe);
            int status = pclose(pipe);
            void *log = NULL;
            size_t log_size = 0;
            char message[512] = "";
            if (qat_file_read_all(log_path, &log, &log_size) == QAT_OK) last_message(log, message, sizeof message);
            free(log);
            if (status == -1)
                st = qat_error_set(QAT_ERR_IO, "gnuplot for %s: %s", gp_path, strerror(errno));
            else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                st = qat_error_set(QAT_ERR_IO, GNUPLOT_MISSING);
            else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                st = qat_error_set(QAT_ERR_IO, "gnuplot failed on %s: %s", gp_path,
                                   message[0] ? message : "no message");
        }
        sigaction(SIGPIPE, &previous, NULL);
        unlink(log_path);
    }
    if (st == QAT_OK) {
        void *png;
        size_t size;
        st = qat_file_read_all(tmp_path, &png, &size);
        if (st == QAT_OK) {
            if (size < 8 || memcmp(png, "\x89PNG\r\n\x1a\n", 8) != 0)
                st = qat_error_set(QAT_ERR_FORMAT, "gnuplot wrote no PNG for %s", gp_path);
            else
                st = qat_file_write_atomic(png_path, png, size);
            free(png);
        }
    }
    unlink(tmp_path);
    qat_strbuf_free(&saved);
    qat_strbuf_free(&piped);
    qat_strbuf_free(&cmd);
    return st;
}

/* --- quality vs bits --- */

#define PLOT_WIDTH 900
#define PLOT_HEIGHT 560
#define CURVES_WIDTH 1300

void report_plot_style(qat_strbuf *sb, const char *title, const char *xlabel, const char *ylabel)
{
    qat_strbuf_append_str(sb, "set title ");
    report_gp_string(sb, title);
    qat_strbuf_append_str(sb, " font ',14'\nset xlabel ");
    report_gp_string(sb, xlabel);
    qat_strbuf_append_str(sb, "\nset ylabel ");
    report_gp_string(sb, ylabel);
    qat_strbuf_append_str(sb, "\nset grid xtics ytics lc rgb '#dddddd' lt 1\nset border 3 lc rgb '#555555'\n"
                              "set tics nomirror\nset style line 1 lc rgb '" FP32_COLOR "' lw 1.5 dt 2\n");
}

static void plot_quality_vs_bits(const report_data *d, qat_strbuf *sb)
{
    report_plot_style(sb, "Test accuracy by bit width and method",
                 "bit width (W = weight bits, A = activation bits), by total bits",
                 "test accuracy (%, mean ± std over seeds)");
    /* Series share each x position; spreading them sideways keeps their
     * error bars from hiding each other. */
    double spread = d->nseries > 1 ? fmin(0.09, 0.5 / d->nseries) : 0;
    for (int s = 0; s < d->nseries; s++) {
        qat_strbuf_printf(sb, "$series%d << EOD\n# x  test_acc_pct  std_pct  bits  seeds\n", s);
        double x_offset = (s - (d->nseries - 1) / 2.0) * spread;
        for (int c = 0; c < d->nconfigs; c++) {
            const report_config *cf = &d->configs[c];
            if (cf->series != s) continue;
            qat_strbuf_printf(sb, "%.3f %.4f %.4f %s %d\n", cf->bits_index + x_offset, cf->acc_mean, cf->acc_std,
                              d->bits[cf->bits_index].label, cf->nruns);
        }
        qat_strbuf_append_str(sb, "EOD\n");
    }
    const report_config *base = d->baseline >= 0 ? &d->configs[d->baseline] : NULL;
    if (base)
        qat_strbuf_printf(sb, "$fp32 << EOD\n# x  test_acc_pct  std_pct\n%d %.4f %.4f\nEOD\nfp32_acc = %.4f\n",
                          base->bits_index, base->acc_mean, base->acc_std, base->acc_mean);
    qat_strbuf_printf(sb, "set xrange [-0.5:%.1f]\nset xtics (", d->nbits - 0.5);
    for (int b = 0; b < d->nbits; b++) {
        if (b) qat_strbuf_append_str(sb, ", ");
        report_gp_string(sb, d->bits[b].label);
        qat_strbuf_printf(sb, " %d", b);
    }
    qat_strbuf_append_str(sb, ")\nset offsets 0, 0, 1, 1\n"
                              "set key outside right top vertical Left reverse samplen 2 spacing 1.3 title 'method'\n"
                              "set bars 0.6\nplot ");
    bool first = true;
    if (base) {
        qat_strbuf_printf(sb, "fp32_acc with lines ls 1 title 'FP32 (%.2f%%)', \\\n     "
                              "$fp32 using 1:2:3 with yerrorbars pt 7 ps 1.3 lc rgb '" FP32_COLOR "' notitle",
                          base->acc_mean);
        first = false;
    }
    for (int s = 0; s < d->nseries; s++) {
        qat_strbuf_printf(sb, "%s$series%d using 1:2:3 with yerrorlines lw 2 pt %d ps 1.2 lc rgb '%s' title ",
                          first ? "" : ", \\\n     ", s, method_point_type(d->series[s].method_rank),
                          report_plot_color(s));
        report_gp_string(sb, d->series[s].label);
        first = false;
    }
    qat_strbuf_putc(sb, '\n');
}

/* --- quality vs size --- */

static void config_label(const report_data *d, const report_config *cf, char *out, size_t size)
{
    if (cf->series < 0) snprintf(out, size, "FP32");
    else snprintf(out, size, "%s %s", d->series[cf->series].label, d->bits[cf->bits_index].label);
}

static void plot_quality_vs_size(const report_data *d, qat_strbuf *sb)
{
    report_plot_style(sb, "Test accuracy vs model size", "model size (KiB, log scale)",
                 "test accuracy (%, mean ± std over seeds)");
    double *kib = qat_xmalloc((size_t)d->nconfigs * sizeof *kib), *acc = qat_xmalloc((size_t)d->nconfigs * sizeof *acc);
    int *front = qat_xmalloc((size_t)d->nconfigs * sizeof *front);
    double lo = INFINITY, hi = 0;
    for (int c = 0; c < d->nconfigs; c++) {
        kib[c] = fmax(d->configs[c].model_bytes / 1024.0, 1e-3);
        acc[c] = d->configs[c].acc_mean;
        lo = fmin(lo, kib[c]), hi = fmax(hi, kib[c]);
    }
    int nfront = report_pareto_front(kib, acc, d->nconfigs, front);
    qat_strbuf_append_str(sb, "$front << EOD\n# KiB  test_acc_pct  label\n");
    for (int i = 0; i < nfront; i++) {
        char label[320];
        config_label(d, &d->configs[front[i]], label, sizeof label);
        qat_strbuf_printf(sb, "%.3f %.4f ", kib[front[i]], acc[front[i]]);
        report_gp_data_string(sb, label);
        qat_strbuf_putc(sb, '\n');
    }
    qat_strbuf_append_str(sb, "EOD\n");
    /* Configurations of one size (every weight width of 4 bits or less packs
     * into nibbles) would sit on one vertical line; each series is nudged by
     * a few percent of size so they stay apart. */
    double spread = d->nseries > 1 ? 0.05 : 0;
    for (int s = 0; s < d->nseries; s++) {
        double factor = exp2((s - (d->nseries - 1) / 2.0) * spread);
        qat_strbuf_printf(sb, "$series%d << EOD\n# KiB (nudged x%.3f)  test_acc_pct  std_pct  bits\n", s, factor);
        for (int c = 0; c < d->nconfigs; c++)
            if (d->configs[c].series == s)
                qat_strbuf_printf(sb, "%.3f %.4f %.4f %s\n", kib[c] * factor, acc[c], d->configs[c].acc_std,
                                  d->bits[d->configs[c].bits_index].label);
        qat_strbuf_append_str(sb, "EOD\n");
    }
    const report_config *base = d->baseline >= 0 ? &d->configs[d->baseline] : NULL;
    if (base)
        qat_strbuf_printf(sb, "$fp32 << EOD\n%.3f %.4f %.4f\nEOD\n", kib[d->baseline], base->acc_mean, base->acc_std);
    qat_strbuf_printf(sb, "set logscale x 2\nset format x '%%g'\nset xrange [%g:%g]\nset offsets 0, 0, 1, 1\n"
                          "set key outside right top vertical Left reverse samplen 2 spacing 1.3\nset bars 0.6\n",
                      lo / 1.6, hi * 1.6);
    qat_strbuf_append_str(sb, "plot $front using 1:2 with steps lw 2 dt 3 lc rgb '#888888' title 'Pareto front', \\\n"
                              "     $front using 1:2:3 with labels left offset char 0.8,0.9 font ',9' "
                              "tc rgb '#333333' notitle");
    if (base)
        qat_strbuf_append_str(sb, ", \\\n     $fp32 using 1:2:3 with yerrorbars pt 7 ps 1.5 lc rgb '" FP32_COLOR
                                  "' title 'FP32'");
    for (int s = 0; s < d->nseries; s++) {
        qat_strbuf_printf(sb, ", \\\n     $series%d using 1:2:3 with yerrorbars pt %d ps 1.3 lc rgb '%s' title ", s,
                          method_point_type(d->series[s].method_rank), report_plot_color(s));
        report_gp_string(sb, d->series[s].label);
    }
    qat_strbuf_putc(sb, '\n');
    free(kib), free(acc), free(front);
}

/* --- training curves --- */

typedef struct curve_set {
    int n;
    int *config;               /* the config of each curve */
    int *run;
    report_curve *curves;
} curve_set;

static void curves_load(const report_data *d, const char *run_dir, report_kind kind, curve_set *out,
                        report_notes *notes)
{
    memset(out, 0, sizeof *out);
    out->config = qat_xmalloc((size_t)d->nruns * sizeof(int));
    out->run = qat_xmalloc((size_t)d->nruns * sizeof(int));
    out->curves = qat_xcalloc((size_t)d->nruns, sizeof(report_curve));
    for (int c = 0; c < d->nconfigs; c++) {
        const report_config *cf = &d->configs[c];
        if (cf->first->kind != kind) continue;
        for (int i = 0; i < cf->nruns; i++) {
            const report_run *r = &d->runs[cf->runs[i]];
            char path[4400];
            snprintf(path, sizeof path, "%s/%s/metrics.csv", run_dir, r->run_id);
            if (report_curve_load(path, &out->curves[out->n]) != QAT_OK) {
                report_note(notes, "no training curve for run %s: %s", r->run_id, qat_error_message());
                continue;
            }
            out->config[out->n] = c;
            out->run[out->n] = cf->runs[i];
            out->n++;
        }
    }
}

static void curves_free(curve_set *s)
{
    for (int i = 0; i < s->n; i++) report_curve_free(&s->curves[i]);
    free(s->config), free(s->run), free(s->curves);
}

static void curve_blocks(qat_strbuf *sb, const char *prefix, const curve_set *s)
{
    for (int i = 0; i < s->n; i++) {
        qat_strbuf_printf(sb, "$%s%d << EOD\n# epoch  val_acc_pct\n", prefix, i);
        for (int k = 0; k < s->curves[i].n; k++)
            qat_strbuf_printf(sb, "%d %.4f\n", s->curves[i].epoch[k], s->curves[i].val_acc_pct[k]);
        qat_strbuf_append_str(sb, "EOD\n");
    }
}

static int curves_max_epoch(const curve_set *s)
{
    int m = 1;
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < s->curves[i].n; k++)
            if (s->curves[i].epoch[k] > m) m = s->curves[i].epoch[k];
    return m;
}

static void curve_axes(qat_strbuf *sb, const curve_set *s, const char *title, const char *xlabel)
{
    int max_epoch = curves_max_epoch(s);
    qat_strbuf_append_str(sb, "set title ");
    report_gp_string(sb, title);
    qat_strbuf_append_str(sb, "\nset xlabel ");
    report_gp_string(sb, xlabel);
    /* Whole epochs only: a tic at 2.5 would suggest a measurement there. */
    qat_strbuf_printf(sb, "\nset xrange [%g:%g]\nset xtics %d\n", max_epoch > 1 ? 0.8 : 0.5, max_epoch + 0.2,
                      max_epoch <= 12 ? 1 : (max_epoch + 9) / 10);
}

static void plot_training_curves(const report_data *d, const curve_set *base, const curve_set *qat, qat_strbuf *sb)
{
    report_plot_style(sb, "", "", "validation accuracy (%)");
    curve_blocks(sb, "baseline", base);
    curve_blocks(sb, "qat", qat);
    qat_strbuf_printf(sb, "set multiplot layout 1,%d title 'Validation accuracy during training' font ',14'\n",
                      base->n && qat->n ? 2 : 1);
    qat_strbuf_append_str(sb, "set key bottom right Left reverse samplen 2 spacing 1.2 opaque box lc rgb '#cccccc'\n"
                              "set offsets 0, 0, 0.5, 0.5\n");
    if (base->n) {
        curve_axes(sb, base, "FP32 baseline", "epoch");
        qat_strbuf_append_str(sb, "plot ");
        for (int i = 0; i < base->n; i++)
            qat_strbuf_printf(sb, "%s$baseline%d using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '%s' "
                                  "title 'seed %llu'", i ? ", \\\n     " : "", i, report_plot_color(i),
                              (unsigned long long)d->runs[base->run[i]].seed);
        qat_strbuf_putc(sb, '\n');
    }
    if (qat->n) {
        curve_axes(sb, qat, "QAT fine-tuning, starting from the baseline", "fine-tuning epoch");
        /* Beside the panel: inside, a dozen entries would cover the curves. */
        qat_strbuf_append_str(sb, "set key outside right top vertical Left reverse samplen 4 spacing 1.2 noopaque nobox\n");
        if (d->baseline >= 0) qat_strbuf_printf(sb, "fp32_val = %.4f\n", d->configs[d->baseline].val_mean);
        qat_strbuf_append_str(sb, "plot ");
        if (d->baseline >= 0)
            qat_strbuf_printf(sb, "fp32_val with lines ls 1 title 'FP32 final (%.2f%%)', \\\n     ",
                              d->configs[d->baseline].val_mean);
        /* A legend entry per configuration, its seeds sharing it: the
         * method's colour and point shape from the other plots, and a dash
         * pattern per bit width (configurations come sorted by bits). */
        int dash = 0, last_config = -1, last_bits = qat->n ? d->configs[qat->config[0]].bits_index : -1;
        for (int i = 0; i < qat->n; i++) {
            const report_config *cf = &d->configs[qat->config[i]];
            bool first_of_config = qat->config[i] != last_config;
            last_config = qat->config[i];
            if (cf->bits_index != last_bits) dash++, last_bits = cf->bits_index;
            qat_strbuf_printf(sb, "%s$qat%d using 1:2 with linespoints lw 2 dt %d pt %d ps 0.9 lc rgb '%s' ",
                              i ? ", \\\n     " : "", i, 1 + dash % 5,
                              method_point_type(d->series[cf->series].method_rank), report_plot_color(cf->series));
            if (first_of_config) {
                char label[320];
                config_label(d, cf, label, sizeof label);
                qat_strbuf_append_str(sb, "title ");
                report_gp_string(sb, label);
            } else {
                qat_strbuf_append_str(sb, "notitle");
            }
        }
        qat_strbuf_putc(sb, '\n');
    }
    qat_strbuf_append_str(sb, "unset multiplot\n");
}

/* --- all of them --- */

qat_status report_figure_render(const char *plots_dir, report_figure *f, const char *name, int width, int height,
                                qat_strbuf *body)
{
    qat_status st = report_gnuplot_render(plots_dir, name, width, height, body->data);
    qat_strbuf_clear(body);
    if (st != QAT_OK) return st;
    snprintf(f->file, sizeof f->file, "%s.png", name);
    f->width = width, f->height = height;
    f->drawn = true;
    return QAT_OK;
}

qat_status report_plots_build(const report_data *d, const char *run_dir, const char *plots_dir,
                              report_figure *figures, report_notes *notes)
{
    QAT_TRY(report_gnuplot_check());
    qat_strbuf body = { 0 };
    qat_status st = QAT_OK;
    if (d->nseries == 0) {
        report_note(notes, "no PTQ or QAT runs yet: the plots of quality by bit width and size are left out");
    } else {
        plot_quality_vs_bits(d, &body);
        st = report_figure_render(plots_dir, &figures[REPORT_FIG_BITS],
                                  "quality_vs_bits", PLOT_WIDTH, PLOT_HEIGHT, &body);
        snprintf(figures[REPORT_FIG_BITS].caption, sizeof figures[REPORT_FIG_BITS].caption,
                 "Test accuracy of each method at each bit width (mean over %d seed%s, error bars one sample "
                 "standard deviation; points of one bit width are spread sideways so that they do not cover "
                 "each other). The dashed line is the FP32 baseline.", d->nseeds, d->nseeds == 1 ? "" : "s");
        if (st == QAT_OK) {
            plot_quality_vs_size(d, &body);
            st = report_figure_render(plots_dir, &figures[REPORT_FIG_SIZE],
                                      "quality_vs_size", PLOT_WIDTH, PLOT_HEIGHT, &body);
            snprintf(figures[REPORT_FIG_SIZE].caption, sizeof figures[REPORT_FIG_SIZE].caption,
                     "Test accuracy against the bytes of the checkpoint's tensors (model_bytes; log scale). The "
                     "dotted step line is the Pareto front: the most accurate configuration at each size or "
                     "smaller, labelled. Activation bits do not change the size, and weights of 4 bits or less all "
                     "pack into nibbles, so many configurations share a size: each method's points are nudged "
                     "by a few percent sideways; the tables give the exact sizes.");
        }
    }
    if (st == QAT_OK) {
        curve_set base, qat;
        curves_load(d, run_dir, REPORT_BASELINE, &base, notes);
        curves_load(d, run_dir, REPORT_QAT, &qat, notes);
        if (base.n + qat.n == 0) {
            report_note(notes, "no metrics.csv of a baseline or QAT run: the training curves are left out");
        } else {
            plot_training_curves(d, &base, &qat, &body);
            st = report_figure_render(plots_dir, &figures[REPORT_FIG_CURVES], "training_curves",
                        base.n && qat.n ? CURVES_WIDTH : PLOT_WIDTH, PLOT_HEIGHT, &body);
            snprintf(figures[REPORT_FIG_CURVES].caption, sizeof figures[REPORT_FIG_CURVES].caption,
                     "Validation accuracy after each epoch (metrics.csv): the FP32 baseline's training%s, and the "
                     "QAT runs' fine-tuning epochs, which start from the trained baseline%s. Seeds of one "
                     "configuration share a colour.", base.n ? "" : " (no curves found)",
                     qat.n ? "" : " (no QAT curves found)");
        }
        curves_free(&base);
        curves_free(&qat);
    }
    qat_strbuf_free(&body);
    return st;
}
