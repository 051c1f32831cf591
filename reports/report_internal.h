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
#include "reports/report.h"

#define REPORT_RESULTS_HEADER QAT_REPORT_RESULTS_HEADER
#define REPORT_RESULTS_FIELDS 17
#define REPORT_RESULTS_FIELDS_V1 14
/* Bits of an unquantized (FP32) tensor in results.csv. */
#define REPORT_FP32_BITS 32

typedef enum report_kind { REPORT_BASELINE, REPORT_PTQ, REPORT_QAT, REPORT_MIXED } report_kind;

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
    /* Mixed runs (w_bits 0): the strategy, the budget's text, the average
     * code bits per weight. */
    char strategy[32], budget[32];
    double avg_bits;
    int line;                  /* in results.csv */
} report_run;

/* Parses results.csv text (either header of reports/report.h); errors are
 * QAT_ERR_FORMAT naming source:line. The caller frees *runs. */
qat_status report_results_parse(const char *text, size_t len, const char *source, report_run **runs, int *count);
qat_status report_results_load(const char *path, report_run **runs, int *count);

/* The CSV readers' common loop (results.csv, bits.csv, metrics.csv): the
 * header (current or v1), one row per non-empty line (a trailing CR dropped)
 * parsed into an array of row_size-byte records, each record's key (a char
 * array at id_offset; REPORT_CSV_NO_KEY: none) unique (its int line at
 * line_offset names the first); errors name source:line and call a row
 * `noun` ("run", "layer", "epoch"). */
#define REPORT_CSV_NO_KEY ((size_t)-1)
#define REPORT_CSV_MAX_FIELDS 32
typedef struct report_csv_format {
    const char *header, *header_v1;
    int nfields, nfields_v1;
    size_t row_size, id_offset, line_offset;
    qat_status (*parse_row)(char **fields, int nfields, const char *source, int line, void *row);
    const char *noun;
} report_csv_format;
qat_status report_csv_read_rows(const char *text, size_t len, const char *source, const report_csv_format *fmt,
                                void **rows, int *count);
/* The same on a file's text (errors name the path). */
qat_status report_csv_load_rows(const char *path, const report_csv_format *fmt, void **rows, int *count);

/* CSV fields for the readers: split a line at its commas in place (returns
 * the count, stores at most max); numbers and text checked with messages
 * naming SOURCE:LINE and the field. */
int report_csv_split(char *line, char **fields, int max);
qat_status report_csv_double(const char *text, const char *what, const char *source, int line, double lo, double hi,
                             double *out);
qat_status report_csv_u64(const char *text, const char *what, const char *source, int line, uint64_t *out);
/* 2..8 or REPORT_FP32_BITS */
qat_status report_csv_bits(const char *text, const char *what, const char *source, int line, int *out);
qat_status report_csv_copy(char *dst, size_t size, const char *text, const char *what, const char *source, int line);
/* w_bits: empty for a mixed run (0), else as report_csv_bits. */
qat_status report_csv_wbits(const char *text, bool mixed, const char *source, int line, int *out);
/* The three fields strategy, budget, avg_bits: set for a mixed run, empty
 * for any other. */
qat_status report_csv_mixed(char **f, bool mixed, const char *source, int line, char *strategy, size_t strategy_size,
                            char *budget, size_t budget_size, double *avg_bits);

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

/* Writes RUN_DIR/report.html and report.md atomically and frees both
 * buffers. */
qat_status report_pages_write(const char *run_dir, qat_strbuf *html, qat_strbuf *md);
/* The notes on stderr, then where the pages are. */
void report_print_done(const report_notes *notes, const char *run_dir, const char *plots_dir);

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
/* report_gnuplot_render into PLOTS/NAME.png, then f records the file and its
 * size and is marked drawn; body is emptied either way. */
qat_status report_figure_render(const char *plots_dir, report_figure *f, const char *name, int width, int height,
                                qat_strbuf *body);
/* The gnuplot plots: quality vs bits, quality vs size, training curves. */
qat_status report_plots_build(const report_data *d, const char *run_dir, const char *plots_dir,
                              report_figure *figures, report_notes *notes);
/* A single-quoted gnuplot string literal of `s`. */
void report_gp_string(qat_strbuf *sb, const char *s);
/* A double-quoted string column of a data block. */
void report_gp_data_string(qat_strbuf *sb, const char *s);
/* Title, axis labels, grid and the dashed FP32 line style (ls 1). */
void report_plot_style(qat_strbuf *sb, const char *title, const char *xlabel, const char *ylabel);
/* The i-th colour of the colour-blind-safe palette ("#0072B2"). */
const char *report_plot_color(int i);

/* --- the gpt on text (report_text_data.c, plot_text.c, report_text.c) --- */

#define REPORT_TEXT_RESULTS_FIELDS 18
#define REPORT_TEXT_RESULTS_FIELDS_V1 15

typedef enum report_text_kind {
    REPORT_TEXT_BASELINE, REPORT_TEXT_FINETUNE, REPORT_TEXT_PTQ, REPORT_TEXT_QAT, REPORT_TEXT_QLORA, REPORT_TEXT_MIXED
} report_text_kind;

/* One row of a gpt experiment's results.csv. */
typedef struct report_text_run {
    char run_id[128];
    report_text_kind kind;
    char algorithm[16];        /* fp32 | rtn | gptq | ste | lsq | pact | nf4 | fp4 (QLoRA's base) */
    bool of_finetune;          /* source finetune (PTQ of the fine-tuned model); else the base */
    int w_bits, a_bits;
    char granularity[64];
    uint64_t seed;
    double val_bpc;            /* the target domain; NAN: not recorded */
    double forget_bpc;         /* the forget domain */
    double start_val_bpc;      /* the checkpoint the run started from, on the target domain */
    uint64_t trainable_params, model_bytes;
    double seconds;
    uint64_t peak_device_bytes;
    char strategy[32], budget[32]; /* mixed runs (w_bits 0) */
    double avg_bits;
    int line;
} report_text_run;

qat_status report_text_results_parse(const char *text, size_t len, const char *source, report_text_run **runs,
                                     int *count);

/* The arms of the comparison, in the report's order. */
typedef enum report_arm {
    REPORT_ARM_BASE,           /* the pretrained model, the reference */
    REPORT_ARM_A_FINETUNE,     /* (a)'s FP32 fine-tune before it is quantized */
    REPORT_ARM_A,              /* (a) fine-tune then quantize: PTQ of the fine-tune */
    REPORT_ARM_B,              /* (b) quantize then fine-tune: QLoRA on a 4-bit base */
    REPORT_ARM_C,              /* (c) both at once: QAT */
    REPORT_ARM_D,              /* (d) LoRA on the FP32 base */
    REPORT_ARM_E,              /* (e) PTQ of the base */
    REPORT_ARM_COUNT
} report_arm;

report_arm report_text_arm(const report_text_run *r);
/* "(c) both at once" */
const char *report_arm_name(report_arm arm);

/* Runs that differ only in their seed. */
typedef struct report_text_config {
    const report_text_run *first;
    int nruns;
    int *runs;                 /* indices into report_text_data.runs */
    report_arm arm;
    char label[320];           /* "(a) fine-tune then quantize: FP32 fine-tune + PTQ-GPTQ W4" */
    char short_label[192];     /* "(a) FT+GPTQ W4", for plots */
    /* Over the seeds with a value (n_*); NAN for none. */
    double target_mean, target_std, forget_mean, forget_std;
    double delta_mean, delta_std; /* target bpc minus the same seed's pretrained base's */
    int n_target, n_forget, n_delta;
    double seconds_mean, seconds_std;
    double trainable, model_bytes, peak_mib; /* means; peak NAN when not recorded */
} report_text_config;

typedef struct report_text_data {
    report_text_run *runs;
    int nruns;
    report_text_config *configs; /* by arm, method, bits (most first), granularity */
    int nconfigs;
    uint64_t *seeds;           /* in order of appearance */
    int nseeds;
    int base;                  /* the pretrained base's config, -1 without one */
} report_text_data;

/* Groups the runs (which it takes over). */
void report_text_data_build(report_text_data *d, report_text_run *runs, int nruns);
void report_text_data_free(report_text_data *d);
/* r's target bpc minus its seed's pretrained base's: the baseline row, else
 * the start of a run from the base; NAN when neither is known. */
double report_text_delta(const report_text_data *d, const report_text_run *r);

/* Validation bpc of a gpt run (its metrics.csv: step,train_loss,val_loss,val_bpc,seconds). */
typedef struct report_bpc_curve {
    int n;
    int *step;
    double *val_bpc;
} report_bpc_curve;

qat_status report_bpc_curve_load(const char *path, report_bpc_curve *out);
void report_bpc_curve_free(report_bpc_curve *c);

enum { REPORT_TEXT_FIG_TARGET, REPORT_TEXT_FIG_TRADEOFF, REPORT_TEXT_FIG_CURVES, REPORT_TEXT_FIG_COUNT };

/* target bpc per arm, target against forget bpc, bpc during training. */
qat_status report_text_plots_build(const report_text_data *d, const char *run_dir, const char *plots_dir,
                                   report_figure *figures, report_notes *notes);
/* qat_report_build for results.csv with the gpt's header. */
qat_status report_text_build(const qat_report_options *o);

/* --- mixed precision (report_mixed.c): the section both pages share --- */

/* A mixed run as the section shows it, from either results.csv. */
typedef struct report_mixed_run {
    char run_id[128], strategy[32], budget[32];
    char algorithm[16];        /* rtn | gptq (PTQ), ste | lsq | pact (QAT) */
    bool of_finetune;          /* gpt: the map of the fine-tune */
    uint64_t seed;
    double avg_bits;
    uint64_t model_bytes;
    double quality;            /* test accuracy (%), or the gpt's target bpc; NAN: not recorded */
    double reference;          /* the same of the FP32 checkpoint it quantized; NAN: unknown */
    double forget;             /* gpt: forget bpc; NAN otherwise */
} report_mixed_run;

#define REPORT_MIXED_MAX_BARS 16

typedef struct report_mixed {
    report_mixed_run *runs;
    int n;
    bool text;                 /* the gpt: bpc, lower is better */
    report_figure pareto;      /* plots/mixed_pareto.png */
    int nbars;                 /* plots/mixed_bits_b<budget>.png, one per budget */
    report_figure bars[REPORT_MIXED_MAX_BARS];
    char bar_budget[REPORT_MIXED_MAX_BARS][32];
} report_mixed;

void report_mixed_add(report_mixed *m, const report_mixed_run *r);
void report_mixed_free(report_mixed *m);
/* "PTQ-RTN", "QAT-LSQ" */
void report_mixed_method(const report_mixed_run *r, char *out, size_t size);
/* RUN/bits.csv's layer names and bits (the caller frees both). */
qat_status report_bits_csv_load(const char *path, int *nlayers, char (**names)[64], int **bits);
/* Draws the section's plots (none without mixed runs); a bits.csv missing
 * or unreadable leaves its budget's bars out with a note. */
qat_status report_mixed_plots(report_mixed *m, const char *run_dir, const char *plots_dir, report_notes *notes);
/* The section, or nothing without mixed runs. */
void report_mixed_html(qat_strbuf *sb, const report_mixed *m);
void report_mixed_md(qat_strbuf *sb, const report_mixed *m);

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
