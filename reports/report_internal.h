/* What the parts of the report generator share: the runs read from
 * results.csv grouped into configurations and plot series, the statistics
 * over seeds, and the plot and image writers. Not installed; the tests
 * include it to check the helpers directly. */
#ifndef QAT_REPORT_INTERNAL_H
#define QAT_REPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qat/common.h"
#include "qat/fileio.h"

#define REPORT_RESULTS_HEADER                                                                      \
    "run_id,kind,algorithm,observer,w_bits,a_bits,granularity,seed,test_acc,val_acc,retention_pct," \
    "model_bytes,seconds,peak_device_bytes"
#define REPORT_RESULTS_FIELDS 14
/* Bits of an unquantized (FP32) tensor in results.csv. */
#define REPORT_FP32_BITS 32

typedef enum report_kind { REPORT_BASELINE, REPORT_PTQ, REPORT_QAT } report_kind;

/* One row of results.csv. */
typedef struct report_run {
    char run_id[128];
    report_kind kind;
    char algorithm[16];
    char observer[64];
    int w_bits, a_bits;
    char granularity[64];
    uint64_t seed;
    double test_acc, val_acc;  /* in [0, 1] */
    double retention_pct;
    uint64_t model_bytes;
    double seconds;
    uint64_t peak_device_bytes;
    int line;                  /* in results.csv */
} report_run;

/* Parses results.csv text; errors are QAT_ERR_FORMAT naming source:line.
 * The caller frees *runs. */
qat_status report_results_parse(const char *text, size_t len, const char *source, report_run **runs, int *count);
qat_status report_results_load(const char *path, report_run **runs, int *count);

/* Mean and sample standard deviation (n - 1 in the denominator; 0 for one
 * value, both 0 for none). */
void report_mean_std(const double *x, int n, double *mean, double *std);

/* The Pareto front of points where a smaller size and a higher accuracy are
 * better: the indices of the points no other point beats on both (at least as
 * small and at least as accurate, better in one), ordered by size; of exact
 * duplicates only the first. Writes at most n indices; returns how many. */
int report_pareto_front(const double *size, const double *accuracy, int n, int *front);

/* A plot series: one method (kind + algorithm), split by observer and by
 * granularity only where the method was run with more than one. */
typedef struct report_series {
    char label[256];           /* "PTQ-RTN", "PTQ-RTN (mse, group:64)" */
    report_kind kind;
    char algorithm[16];
    char observer[64];         /* "" when not split by it */
    char granularity[64];      /* "" when not split by it */
    int method_rank;           /* RTN, GPTQ, STE, LSQ, PACT */
} report_series;

/* Runs that differ only in their seed. */
typedef struct report_config {
    const report_run *first;   /* the first of its runs in results.csv */
    int nruns;
    int *runs;                 /* indices into report_data.runs */
    int series;                /* -1 for the baseline */
    int bits_index;            /* into report_data.bits */
    double acc_mean, acc_std;  /* test accuracy, % */
    double val_mean, val_std;  /* validation accuracy, % */
    double retention_mean, retention_std;
    double seconds_mean, seconds_std;
    double model_bytes;        /* mean */
    double peak_mib;           /* mean */
} report_config;

typedef struct report_bits {
    int w, a;
    char label[24];            /* "W4A8", "FP32" */
} report_bits;

typedef struct report_data {
    report_run *runs;
    int nruns;
    report_config *configs;    /* sorted: baseline, then by bits, then method */
    int nconfigs;
    report_series *series;
    int nseries;
    report_bits *bits;         /* FP32 first, then by total bits, descending */
    int nbits;
    int baseline;              /* config index, -1 without a baseline */
    uint64_t *seeds;           /* in order of appearance */
    int nseeds;
} report_data;

/* Groups the runs (which it takes over) into configurations and series. */
void report_data_build(report_data *d, report_run *runs, int nruns);
void report_data_free(report_data *d);
/* "PTQ-RTN", "QAT-LSQ", "FP32" */
void report_method_name(const report_run *r, char *out, size_t size);
/* "W4A8"; "FP32" when both are FP32. */
void report_bits_label(int w_bits, int a_bits, char *out, size_t size);

/* Per-epoch validation accuracy of a run (its metrics.csv). */
typedef struct report_curve {
    int n;
    int *epoch;
    double *val_acc_pct;
} report_curve;

/* Reads RUN/metrics.csv; a missing or malformed file is an error whose
 * message the caller turns into a note. */
qat_status report_curve_load(const char *path, report_curve *out);
void report_curve_free(report_curve *c);

/* Notes about parts of the report that were skipped or worth a caveat. */
typedef struct report_notes {
    char **items;
    int count;
} report_notes;

void report_note(report_notes *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_notes_free(report_notes *n);

/* --- plots (plot.c) --- */

typedef struct report_figure {
    char file[64];             /* "quality_vs_bits.png", relative to plots/ */
    char caption[1024];
    bool drawn;
    int width, height;
} report_figure;

enum { REPORT_FIG_BITS, REPORT_FIG_SIZE, REPORT_FIG_CURVES, REPORT_FIG_HEATMAP, REPORT_FIG_GRID, REPORT_FIG_COUNT };

/* Fails when gnuplot is not on PATH, with the message that says how to
 * install it. */
qat_status report_gnuplot_check(void);
/* Writes plots_dir/NAME.gp and renders plots_dir/NAME.png from it through a
 * pipe to gnuplot. `body` is everything after the terminal and output
 * settings. */
qat_status report_gnuplot_render(const char *plots_dir, const char *name, int width, int height, const char *body);
/* The gnuplot plots: quality vs bits, quality vs size, training curves. */
qat_status report_plots_build(const report_data *d, const char *run_dir, const char *plots_dir,
                              report_figure *figures, report_notes *notes);
/* A single-quoted gnuplot string literal of `s`. */
void report_gp_string(qat_strbuf *sb, const char *s);

/* --- libpng images (png_images.c) --- */

typedef struct report_rgb_image {
    int width, height;
    uint8_t *rgb;              /* width * height * 3 */
} report_rgb_image;

void report_image_init(report_rgb_image *im, int width, int height, uint8_t r, uint8_t g, uint8_t b);
void report_image_free(report_rgb_image *im);
/* Encodes RGB8 PNG in memory and writes it atomically. */
qat_status report_png_write(const char *path, const report_rgb_image *im);

/* Statistics of one bit width's weight error, for the caption table. */
typedef struct report_heatmap_stats {
    int bits;
    double mean_abs_err, max_abs_err;
    double rel_rms_err;        /* ||W - Q(W)|| / ||W|| */
} report_heatmap_stats;

#define REPORT_HEATMAP_BITS 4

typedef struct report_heatmap_info {
    char layer[16];
    long long rows, cols, shown_rows, shown_cols;
    double scale_lo, scale_hi; /* the color bar's range (log scale) */
    report_heatmap_stats stats[REPORT_HEATMAP_BITS];
} report_heatmap_info;

/* The quantization-error heatmap of the baseline checkpoint's chosen layer. */
qat_status report_heatmap_build(const char *checkpoint, const char *png_path, report_heatmap_info *info);

/* One cell of the test-image grid. */
typedef struct report_grid_cell {
    uint32_t index;            /* in the test set */
    int label, fp32_pred, low_pred;
} report_grid_cell;

#define REPORT_GRID_COLS 8
#define REPORT_GRID_ROWS 4
#define REPORT_GRID_CELLS (REPORT_GRID_COLS * REPORT_GRID_ROWS)

typedef struct report_grid_info {
    report_grid_cell cells[REPORT_GRID_CELLS];
    int ncells;
    uint32_t considered;       /* test images both models predicted */
    uint32_t disagreements;    /* among them */
    uint32_t fp32_correct, low_correct;
} report_grid_info;

/* Predicts the first test images with both checkpoints and draws the grid.
 * Returns QAT_ERR_VULKAN without a device; any failure is a note for the
 * caller, not an error of the report. */
qat_status report_grid_build(const char *fp32_checkpoint, const char *low_checkpoint, const char *device,
                             const char *data_dir, const char *png_path, report_grid_info *info);

/* --- the page (report_page.c): what image and gpt reports share --- */

void report_html_escape(qat_strbuf *sb, const char *s);
/* Markdown table cells: '|' would end the cell, a newline the row. */
void report_md_escape(qat_strbuf *sb, const char *s);
bool report_file_exists(const char *path);
/* "89.53 ± 0.12"; with one value there is no spread to show. */
void report_format_pm(char *out, size_t size, double mean, double std, int n, int decimals);

/* A table, written as HTML and as Markdown from the same cells. */
typedef struct report_table {
    int ncols, nrows;
    const char *const *header;
    const bool *numeric;       /* per column: right-aligned */
    char **cells;              /* nrows * ncols */
    bool *emphasis;            /* per row */
} report_table;

void report_table_init(report_table *t, int ncols, const char *const *header, const bool *numeric);
/* ncols const char * cells follow. */
void report_table_row(report_table *t, bool emphasis, ...);
void report_table_free(report_table *t);
void report_table_html(qat_strbuf *sb, const report_table *t);
void report_table_md(qat_strbuf *sb, const report_table *t);

/* Distinct values of the runs' summary.json fields. */
typedef struct report_env {
    report_notes devices, drivers, commits, models;
    int missing;                                     /* runs without summary.json */
    char first_missing[160];
} report_env;

/* Reads RUN_DIR/ID/summary.json of each run, those marked baseline first (their
 * values lead the lists); missing and unreadable ones become notes. */
void report_env_read(const char *run_dir, const char *const *run_ids, const bool *baseline, int n, report_env *env,
                     report_notes *notes);
void report_env_free(report_env *env);
/* The items joined by "; ", or `none` for none. */
void report_join(qat_strbuf *sb, const report_notes *list, const char *none);

extern const char report_css[];
void report_html_figure(qat_strbuf *sb, const report_figure *f, const char *alt);
void report_md_figure(qat_strbuf *sb, const report_figure *f, const char *alt);
/* "1, 2, 3" */
void report_seeds_text(const uint64_t *seeds, int n, char *out, size_t size);
/* The last component of the run directory. */
void report_experiment_name(const char *run_dir, char *out, size_t size);

/* The end of a page: notes, environment, the experiment spec (and, in HTML,
 * the closing tags). */
typedef struct report_tail {
    const report_notes *notes;
    const report_env *env;
    const char *seeds, *run_dir, *generated;
    const char *experiment_ini;  /* NULL: not found */
} report_tail;

void report_tail_html(qat_strbuf *sb, const report_tail *t);
void report_tail_md(qat_strbuf *sb, const report_tail *t);

#endif
