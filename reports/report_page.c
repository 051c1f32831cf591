/* What both kinds of report page share (images on Fashion-MNIST, the gpt on
 * text): escaping, tables written as HTML and as Markdown, the environment
 * read from the runs' summaries, figures, and the end of the page (notes,
 * environment, the spec). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qat/fileio.h"
#include "qat/json.h"
#include "reports/report_internal.h"

void report_html_escape(qat_strbuf *sb, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': qat_strbuf_append_str(sb, "&amp;"); break;
        case '<': qat_strbuf_append_str(sb, "&lt;"); break;
        case '>': qat_strbuf_append_str(sb, "&gt;"); break;
        case '"': qat_strbuf_append_str(sb, "&quot;"); break;
        default: qat_strbuf_putc(sb, *s);
        }
    }
}

/* Markdown table cells: '|' would end the cell, a newline the row. */
void report_md_escape(qat_strbuf *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') qat_strbuf_append_str(sb, "\\|");
        else if (*s == '\n' || *s == '\r') qat_strbuf_putc(sb, ' ');
        else qat_strbuf_putc(sb, *s);
    }
}

bool report_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* "89.53 ± 0.12"; with one seed there is no spread to show. */
void report_format_pm(char *out, size_t size, double mean, double std, int n, int decimals)
{
    if (n > 1) snprintf(out, size, "%.*f ± %.*f", decimals, mean, decimals, std);
    else snprintf(out, size, "%.*f", decimals, mean);
}

/* --- tables: one model, written as HTML and as Markdown --- */

void report_table_init(report_table *t, int ncols, const char *const *header, const bool *numeric)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols, t->header = header, t->numeric = numeric;
}

void report_table_row(report_table *t, bool emphasis, ...)
{
    t->cells = qat_xrealloc(t->cells, (size_t)(t->nrows + 1) * t->ncols * sizeof *t->cells);
    t->emphasis = qat_xrealloc(t->emphasis, (size_t)(t->nrows + 1) * sizeof *t->emphasis);
    va_list ap;
    va_start(ap, emphasis);
    for (int c = 0; c < t->ncols; c++) t->cells[t->nrows * t->ncols + c] = qat_xstrdup(va_arg(ap, const char *));
    va_end(ap);
    t->emphasis[t->nrows++] = emphasis;
}

void report_table_free(report_table *t)
{
    for (int i = 0; i < t->nrows * t->ncols; i++) free(t->cells[i]);
    free(t->cells), free(t->emphasis);
}

void report_table_html(qat_strbuf *sb, const report_table *t)
{
    qat_strbuf_append_str(sb, "<table>\n<thead><tr>");
    for (int c = 0; c < t->ncols; c++) {
        qat_strbuf_append_str(sb, t->numeric[c] ? "<th class=\"num\">" : "<th>");
        report_html_escape(sb, t->header[c]);
        qat_strbuf_append_str(sb, "</th>");
    }
    qat_strbuf_append_str(sb, "</tr></thead>\n<tbody>\n");
    for (int r = 0; r < t->nrows; r++) {
        qat_strbuf_append_str(sb, t->emphasis[r] ? "<tr class=\"best\">" : "<tr>");
        for (int c = 0; c < t->ncols; c++) {
            qat_strbuf_append_str(sb, t->numeric[c] ? "<td class=\"num\">" : "<td>");
            report_html_escape(sb, t->cells[r * t->ncols + c]);
            qat_strbuf_append_str(sb, "</td>");
        }
        qat_strbuf_append_str(sb, "</tr>\n");
    }
    qat_strbuf_append_str(sb, "</tbody>\n</table>\n");
}

void report_table_md(qat_strbuf *sb, const report_table *t)
{
    qat_strbuf_putc(sb, '|');
    for (int c = 0; c < t->ncols; c++) {
        qat_strbuf_putc(sb, ' ');
        report_md_escape(sb, t->header[c]);
        qat_strbuf_append_str(sb, " |");
    }
    qat_strbuf_append_str(sb, "\n|");
    for (int c = 0; c < t->ncols; c++) qat_strbuf_append_str(sb, t->numeric[c] ? "---:|" : "---|");
    qat_strbuf_putc(sb, '\n');
    for (int r = 0; r < t->nrows; r++) {
        qat_strbuf_putc(sb, '|');
        for (int c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            qat_strbuf_putc(sb, ' ');
            if (t->emphasis[r] && *cell) qat_strbuf_append_str(sb, "**");
            report_md_escape(sb, cell);
            if (t->emphasis[r] && *cell) qat_strbuf_append_str(sb, "**");
            qat_strbuf_append_str(sb, " |");
        }
        qat_strbuf_putc(sb, '\n');
    }
}

/* --- the environment --- */

static void add_distinct(report_notes *list, const char *value)
{
    for (int i = 0; i < list->count; i++)
        if (strcmp(list->items[i], value) == 0) return;
    report_note(list, "%s", value);
}

void report_env_read(const char *run_dir, const char *const *run_ids, const bool *baseline, int n, report_env *env,
                     report_notes *notes)
{
    memset(env, 0, sizeof *env);
    /* Baselines first: their values lead the lists. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (baseline[i] != (pass == 0)) continue;
            char path[4400];
            snprintf(path, sizeof path, "%s/%s/summary.json", run_dir, run_ids[i]);
            qat_json_value *json = NULL;
            qat_status st = qat_json_load(path, &json);
            if (st == QAT_ERR_IO) {
                if (!env->missing++) snprintf(env->first_missing, sizeof env->first_missing, "%s", run_ids[i]);
                continue;
            }
            if (st != QAT_OK) {
                report_note(notes, "unreadable summary: %s", qat_error_message());
            } else {
                static const char *const keys[] = { "device", "driver", "git_commit", "model" };
                report_notes *lists[] = { &env->devices, &env->drivers, &env->commits, &env->models };
                for (int k = 0; k < 4; k++) {
                    const qat_json_value *v = qat_json_get(json, keys[k]);
                    if (v && v->type == QAT_JSON_STRING) add_distinct(lists[k], v->string);
                }
            }
            qat_json_free(json);
        }
    if (env->missing)
        report_note(notes, "%d run%s without summary.json (the first: %s): the environment lists only the others",
                    env->missing, env->missing == 1 ? "" : "s", env->first_missing);
}

void report_env_free(report_env *env)
{
    report_notes_free(&env->devices);
    report_notes_free(&env->drivers);
    report_notes_free(&env->commits);
    report_notes_free(&env->models);
}

void report_join(qat_strbuf *sb, const report_notes *list, const char *none)
{
    if (!list->count) qat_strbuf_append_str(sb, none);
    for (int i = 0; i < list->count; i++) {
        if (i) qat_strbuf_append_str(sb, "; ");
        qat_strbuf_append_str(sb, list->items[i]);
    }
}

/* --- figures and the page --- */

const char report_css[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;max-width:1180px;"
    "margin:2em auto;padding:0 1em;color:#222;line-height:1.45}"
    "h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}"
    "table{border-collapse:collapse;margin:.8em 0;font-size:.92em}"
    "th,td{border:1px solid #d8d8d8;padding:.3em .6em;vertical-align:top}"
    "th{background:#f2f2f2;text-align:left}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}"
    "tbody tr:nth-child(even){background:#fafafa}tr.best td{font-weight:600;background:#eef6ee}"
    "figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}"
    "figcaption{font-size:.92em;color:#444;max-width:900px}"
    "pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.9em}"
    ".note{color:#7a4b00}.wrong{color:#c62828;font-weight:600}.grid td{font-size:.85em}"
    ".meta{color:#666}";

void report_html_figure(qat_strbuf *sb, const report_figure *f, const char *alt)
{
    qat_strbuf_append_str(sb, "<figure><img src=\"plots/");
    report_html_escape(sb, f->file);
    qat_strbuf_append_str(sb, "\" alt=\"");
    report_html_escape(sb, alt);
    qat_strbuf_append_str(sb, "\"><figcaption>");
    report_html_escape(sb, f->caption);
    qat_strbuf_append_str(sb, "</figcaption></figure>\n");
}

void report_md_figure(qat_strbuf *sb, const report_figure *f, const char *alt)
{
    qat_strbuf_printf(sb, "![%s](plots/%s)\n\n", alt, f->file);
    report_md_escape(sb, f->caption);
    qat_strbuf_append_str(sb, "\n\n");
}

void report_seeds_text(const uint64_t *seeds, int n, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%llu", i ? ", " : "", (unsigned long long)seeds[i]);
}

void report_experiment_name(const char *run_dir, char *out, size_t size)
{
    const char *path = run_dir;
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/') start--;
    snprintf(out, size, "%.*s", (int)(n - start), path + start);
}

void report_tail_html(qat_strbuf *sb, const report_tail *t)
{
    if (t->notes->count) {
        qat_strbuf_append_str(sb, "\n<h2>Notes</h2>\n<ul>\n");
        for (int i = 0; i < t->notes->count; i++) {
            qat_strbuf_append_str(sb, "<li class=\"note\">");
            report_html_escape(sb, t->notes->items[i]);
            qat_strbuf_append_str(sb, "</li>\n");
        }
        qat_strbuf_append_str(sb, "</ul>\n");
    }

    qat_strbuf buf = { 0 };
    qat_strbuf_append_str(sb, "\n<h2>Environment</h2>\n<table>\n");
    const struct { const char *label; const report_notes *list; } rows[] = {
        { "device", &t->env->devices }, { "driver", &t->env->drivers }, { "git commit", &t->env->commits },
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(rows); i++) {
        qat_strbuf_clear(&buf);
        report_join(&buf, rows[i].list, "unknown (no summary.json)");
        qat_strbuf_printf(sb, "<tr><th>%s</th><td>", rows[i].label);
        report_html_escape(sb, buf.data);
        qat_strbuf_append_str(sb, "</td></tr>\n");
    }
    qat_strbuf_append_str(sb, "<tr><th>seeds</th><td>");
    report_html_escape(sb, t->seeds);
    qat_strbuf_append_str(sb, "</td></tr>\n<tr><th>run directory</th><td>");
    report_html_escape(sb, t->run_dir);
    qat_strbuf_append_str(sb, "</td></tr>\n<tr><th>generated</th><td>");
    report_html_escape(sb, t->generated);
    qat_strbuf_append_str(sb, "</td></tr>\n</table>\n<h3>Experiment spec (experiment.ini)</h3>\n");
    if (t->experiment_ini) {
        qat_strbuf_append_str(sb, "<pre>");
        report_html_escape(sb, t->experiment_ini);
        qat_strbuf_append_str(sb, "</pre>\n");
    } else {
        qat_strbuf_append_str(sb, "<p class=\"note\">experiment.ini not found.</p>\n");
    }
    qat_strbuf_append_str(sb, "</body>\n</html>\n");
    qat_strbuf_free(&buf);
}

void report_tail_md(qat_strbuf *sb, const report_tail *t)
{
    if (t->notes->count) {
        qat_strbuf_append_str(sb, "## Notes\n\n");
        for (int i = 0; i < t->notes->count; i++) qat_strbuf_printf(sb, "- %s\n", t->notes->items[i]);
        qat_strbuf_putc(sb, '\n');
    }
    qat_strbuf buf = { 0 };
    qat_strbuf_append_str(sb, "## Environment\n\n| | |\n|---|---|\n");
    const struct { const char *label; const report_notes *list; } rows[] = {
        { "device", &t->env->devices }, { "driver", &t->env->drivers }, { "git commit", &t->env->commits },
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(rows); i++) {
        qat_strbuf_clear(&buf);
        report_join(&buf, rows[i].list, "unknown (no summary.json)");
        qat_strbuf_printf(sb, "| %s | ", rows[i].label);
        report_md_escape(sb, buf.data);
        qat_strbuf_append_str(sb, " |\n");
    }
    qat_strbuf_printf(sb, "| seeds | %s |\n| run directory | ", t->seeds);
    report_md_escape(sb, t->run_dir);
    qat_strbuf_printf(sb, " |\n| generated | %s |\n\n### Experiment spec (experiment.ini)\n\n", t->generated);
    if (t->experiment_ini) {
        /* A fence longer than any run of backticks in the spec. */
        int longest = 0, run = 0;
        for (const char *p = t->experiment_ini; *p; p++) {
            run = *p == '`' ? run + 1 : 0;
            if (run > longest) longest = run;
        }
        int fence = longest < 3 ? 3 : longest + 1;
        for (int i = 0; i < fence; i++) qat_strbuf_putc(sb, '`');
        qat_strbuf_printf(sb, "ini\n%s", t->experiment_ini);
        if (t->experiment_ini[0] && t->experiment_ini[strlen(t->experiment_ini) - 1] != '\n') qat_strbuf_putc(sb, '\n');
        for (int i = 0; i < fence; i++) qat_strbuf_putc(sb, '`');
        qat_strbuf_putc(sb, '\n');
    } else {
        qat_strbuf_append_str(sb, "experiment.ini not found.\n");
    }
    qat_strbuf_free(&buf);
}

qat_status report_pages_write(const char *run_dir, qat_strbuf *html, qat_strbuf *md)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/report.html", run_dir);
    qat_status st = qat_file_write_atomic(path, html->data, html->len);
    if (st == QAT_OK) {
        snprintf(path, sizeof path, "%s/report.md", run_dir);
        st = qat_file_write_atomic(path, md->data, md->len);
    }
    qat_strbuf_free(html);
    qat_strbuf_free(md);
    return st;
}

void report_print_done(const report_notes *notes, const char *run_dir, const char *plots_dir)
{
    for (int i = 0; i < notes->count; i++) fprintf(stderr, "report: note: %s\n", notes->items[i]);
    printf("report: %s/report.html and report.md (plots in %s)\n", run_dir, plots_dir);
}
