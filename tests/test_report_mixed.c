/* Mixed-precision runs in reports: results.csv rows of kind mixed (both
 * headers), their errors, and the section of a gpt report built from a
 * hand-made run directory (table, size plot, per-layer bit bars). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qat/fileio.h"
#include "reports/report.h"
#include "reports/report_internal.h"
#include "tests/test_util.h"

TestSuite(report_mixed, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

#define IMAGE_BASE "b1,baseline,fp32,,32,32,,1,0.895,0.9,100,1077288,30.5,41943040,,,\n"

static void expect_image_error(const char *text, const char *needle)
{
    report_run *runs = NULL;
    int n = -1;
    cr_expect_eq(report_results_parse(text, strlen(text), "r.csv", &runs, &n), QAT_ERR_FORMAT, "accepted:\n%s", text);
    cr_expect(strstr(qat_error_message(), needle), "message for \"%s\": %s", text, qat_error_message());
    cr_expect(runs == NULL && n == 0);
}

Test(report_mixed, image_rows)
{
    const char text[] = QAT_REPORT_RESULTS_HEADER "\n" IMAGE_BASE
                        "m1,mixed,rtn,minmax,,32,channel,1,0.85,0.86,95,90168,2.5,6311936,hawq,2.5,2.4971\n"
                        "m2,mixed,lsq,,,8,channel,1,0.87,0.86,97,90168,2.5,6311936,greedy,120KB,2.9\n";
    report_run *runs;
    int n;
    cr_assert_eq(report_results_parse(text, sizeof text - 1, "r.csv", &runs, &n), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(n, 3);
    cr_expect_eq(runs[1].kind, REPORT_MIXED);
    cr_expect_eq(runs[1].w_bits, 0);
    cr_expect_str_eq(runs[1].strategy, "hawq");
    cr_expect_str_eq(runs[1].budget, "2.5");
    cr_expect_eq(runs[1].avg_bits, 2.4971);
    cr_expect_str_eq(runs[2].algorithm, "lsq");
    cr_expect_str_eq(runs[2].budget, "120KB");
    cr_expect_str_eq(runs[0].strategy, "");
    free(runs);

    expect_image_error(QAT_REPORT_RESULTS_HEADER "\n" IMAGE_BASE
                       "m1,mixed,rtn,minmax,4,32,channel,1,0.85,0.86,95,90168,2.5,1,hawq,2.5,2.4\n",
                       "r.csv:3: w_bits '4' of a mixed run");
    expect_image_error(QAT_REPORT_RESULTS_HEADER "\n" IMAGE_BASE
                       "m1,mixed,rtn,minmax,,32,channel,1,0.85,0.86,95,90168,2.5,1,,2.5,2.4\n",
                       "r.csv:3: a mixed run needs its strategy and budget");
    expect_image_error(QAT_REPORT_RESULTS_HEADER "\n" IMAGE_BASE
                       "m1,mixed,rtn,minmax,,32,channel,1,0.85,0.86,95,90168,2.5,1,hawq,2.5,many\n",
                       "r.csv:3: avg_bits 'many' is not a number");
    expect_image_error(QAT_REPORT_RESULTS_HEADER "\n" IMAGE_BASE
                       "m1,mixed,fp32,minmax,,32,channel,1,0.85,0.86,95,90168,2.5,1,hawq,2.5,2.4\n",
                       "r.csv:3: algorithm 'fp32' does not fit kind mixed");
    expect_image_error(QAT_REPORT_RESULTS_HEADER "\n" IMAGE_BASE
                       "p1,ptq,rtn,minmax,4,8,channel,1,0.8,0.9,100,140688,3,1,hawq,,\n",
                       "r.csv:3: strategy, budget and avg_bits are for mixed runs only");
    expect_image_error(QAT_REPORT_RESULTS_HEADER "\n" IMAGE_BASE "p1,ptq,rtn,minmax,4,8,channel,1,0.8,0.9,100,1,3,1\n",
                       "r.csv:3: 14 fields, expected 17");
    expect_image_error(QAT_REPORT_RESULTS_HEADER_V1 "\n"
                       "m1,mixed,rtn,minmax,,32,channel,1,0.85,0.86,95,90168,2.5,1\n",
                       "r.csv:2: a mixed run in a results.csv without the columns strategy,budget,avg_bits");
}

#define TEXT_BASE "b1,baseline,fp32,,32,32,,1,2.4,2.1,,830000,3320000,600,1,,,\n"

Test(report_mixed, gpt_rows)
{
    const char text[] = QAT_REPORT_TEXT_RESULTS_HEADER "\n" TEXT_BASE
                        "m1,mixed,gptq,finetune,,32,group:64,1,2.5,2.3,2.2,0,400000,5,1,rules,3,3.0000\n";
    report_text_run *runs;
    int n;
    cr_assert_eq(report_text_results_parse(text, sizeof text - 1, "r.csv", &runs, &n), QAT_OK, "%s",
                 qat_error_message());
    cr_assert_eq(n, 2);
    cr_expect_eq(runs[1].kind, REPORT_TEXT_MIXED);
    cr_expect(runs[1].of_finetune);
    cr_expect_eq(runs[1].w_bits, 0);
    cr_expect_str_eq(runs[1].strategy, "rules");
    cr_expect_eq(runs[1].avg_bits, 3);
    free(runs);
    const char bad[] = QAT_REPORT_TEXT_RESULTS_HEADER "\n" TEXT_BASE
                       "m1,mixed,nf4,base,,32,group:64,1,2.5,2.3,2.2,0,400000,5,1,rules,3,3\n";
    runs = NULL;
    cr_expect_eq(report_text_results_parse(bad, sizeof bad - 1, "r.csv", &runs, &n), QAT_ERR_FORMAT);
    cr_expect(strstr(qat_error_message(), "r.csv:3: algorithm 'nf4' does not fit kind mixed"), "%s",
              qat_error_message());
}

static void write_text(const char *path, const char *text)
{
    cr_assert_eq(qat_file_write_atomic(path, text, strlen(text)), QAT_OK, "%s", qat_error_message());
}

static char *read_text(const char *path)
{
    void *data;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &data, &size), QAT_OK, "%s", qat_error_message());
    return data;
}

/* A gpt run directory: the base and four mixed runs (uniform and hawq at
 * 3 and 2.5 bits), each with bits.csv but hawq's at 2.5. */
static const char *make_gpt_dir(bool with_rules)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path(with_rules ? "runs/gmix-rules" : "runs/gmix"));
    cr_assert_eq(qat_mkdir_p(dir), QAT_OK);
    static const struct {
        const char *id, *strategy, *budget;
        double bpc, avg;
        long bytes;
        int bits[3];
    } runs[] = {
        { "mixed-uniform-rtn-b3-g64-s1-aaaa0001", "uniform", "3", 2.60, 3.0, 40000, { 3, 3, 3 } },
        { "mixed-uniform-rtn-b2p5-g64-s1-aaaa0002", "uniform", "2.5", 2.90, 2.0, 30000, { 2, 2, 2 } },
        { "mixed-hawq-rtn-b3-g64-s1-aaaa0003", "hawq", "3", 2.55, 3.0, 40000, { 4, 2, 3 } },
        { "mixed-hawq-rtn-b2p5-g64-s1-aaaa0004", "hawq", "2.5", 2.70, 2.5, 35000, { 3, 2, 2 } },
    };
    qat_strbuf csv = { 0 };
    qat_strbuf_printf(&csv, "%s\nbase-s1,baseline,fp32,,32,32,,1,2.400000,2.100000,,830000,3320000,600,1,,,\n",
                      QAT_REPORT_TEXT_RESULTS_HEADER);
    char path[1024];
    for (size_t i = 0; i < QAT_ARRAY_LEN(runs); i++) {
        qat_strbuf_printf(&csv, "%s,mixed,rtn,base,,32,group:64,1,%.6f,2.300000,2.400000,0,%ld,5.000,1,%s,%s,%.4f\n",
                          runs[i].id, runs[i].bpc, runs[i].bytes, runs[i].strategy, runs[i].budget, runs[i].avg);
        snprintf(path, sizeof path, "%s/%s", dir, runs[i].id);
        cr_assert_eq(qat_mkdir_p(path), QAT_OK);
        if (i == 3) continue;
        char bits[512];
        snprintf(bits, sizeof bits, "layer,weights,bits,bytes,sensitivity,cost\nblocks.0.attn.q,4096,%d,1,,\n"
                                    "blocks.0.mlp.fc,16384,%d,1,,\nhead,8192,%d,1,,\n",
                 runs[i].bits[0], runs[i].bits[1], runs[i].bits[2]);
        snprintf(path, sizeof path, "%s/%s/bits.csv", dir, runs[i].id);
        write_text(path, bits);
    }
    /* rules gives the same model at both budgets (no bits.csv). */
    for (int i = 0; with_rules && i < 2; i++) {
        const char *id = i ? "mixed-rules-rtn-b2p5-g64-s1-aaaa0006" : "mixed-rules-rtn-b3-g64-s1-aaaa0005";
        qat_strbuf_printf(&csv, "%s,mixed,rtn,base,,32,group:64,1,2.650000,2.300000,2.400000,0,38000,5.000,1,rules,%s,"
                                "2.7500\n", id, i ? "2.5" : "3");
        snprintf(path, sizeof path, "%s/%s", dir, id);
        cr_assert_eq(qat_mkdir_p(path), QAT_OK);
    }
    snprintf(path, sizeof path, "%s/results.csv", dir);
    write_text(path, csv.data);
    qat_strbuf_free(&csv);
    return dir;
}

Test(report_mixed, gpt_report_section, .timeout = 240)
{
    if (report_gnuplot_check() != QAT_OK) cr_skip_test("gnuplot is not installed");
    const char *dir = make_gpt_dir(false);
    qat_report_options o = { .run_dir = dir, .quiet = true };
    cr_assert_eq(qat_report_build(&o), QAT_OK, "%s", qat_error_message());
    char path[1024];
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = read_text(path);
    cr_expect(strstr(html, "<h2>Mixed precision</h2>"), "no section");
    /* hawq at 3: target 2.55 against its source's 2.40. */
    cr_expect(strstr(html, "<td>mixed-hawq-rtn-b3-g64-s1-aaaa0003</td><td>hawq</td><td>PTQ-RTN</td><td>base</td>"
                           "<td class=\"num\">3</td><td class=\"num\">1</td><td class=\"num\">3.000</td>"
                           "<td class=\"num\">39.1</td><td class=\"num\">2.550</td><td class=\"num\">2.300</td>"
                           "<td class=\"num\">+0.150</td>"),
              "the hawq row is missing or wrong");
    cr_expect(strstr(html, "per-layer bits at budget 2.5 left out"), "no note for the missing bits.csv");
    cr_expect(strstr(html, "plots/mixed_pareto.png"));
    cr_expect(strstr(html, "plots/mixed_bits_b3.png"));
    cr_expect(!strstr(html, "plots/mixed_bits_b2p5.png"), "bars without hawq's bits.csv");
    /* The arms' table has no mixed run in it. */
    const char *arms = strstr(html, "<h2>The arms</h2>"), *section = strstr(html, "<h2>Mixed precision</h2>");
    cr_assert(arms && section && arms < section);
    cr_expect(!strstr(arms, "aaaa0001") || strstr(arms, "aaaa0001") > section, "a mixed run among the arms");
    free(html);

    snprintf(path, sizeof path, "%s/plots/mixed_pareto.gp", dir);
    char *gp = read_text(path);
    /* uniform's points in byte order, then hawq's; the FP32 source as the reference. */
    cr_expect(strstr(gp, "$s0 << EOD\n# KiB  quality  budget\n29.297 2.9000 \"2.5\"\n39.062 2.6000 \"3\"\nEOD\n"), "%s",
              gp);
    cr_expect(strstr(gp, "$s1 << EOD\n# KiB  quality  budget\n34.180 2.7000 \"2.5\"\n39.062 2.5500 \"3\"\nEOD\n"), "%s",
              gp);
    cr_expect(strstr(gp, "fp32 = 2.4000"), "%s", gp);
    cr_expect(strstr(gp, "title 'uniform'") && strstr(gp, "title 'hawq'"), "%s", gp);
    free(gp);
    snprintf(path, sizeof path, "%s/plots/mixed_bits_b3.gp", dir);
    gp = read_text(path);
    cr_expect(strstr(gp, "$bits << EOD\n# layer uniform hawq\n\"blocks.0.attn.q\" 3 4\n\"blocks.0.mlp.fc\" 3 2\n"
                         "\"head\" 3 3\nEOD\n"), "%s", gp);
    free(gp);
    snprintf(path, sizeof path, "%s/plots/mixed_bits_b3.png", dir);
    cr_expect(access(path, R_OK) == 0);
}

/* Budgets that gave one model are one point of the Pareto plot with both
 * labels, not two labels printed over each other. */
Test(report_mixed, pareto_merges_budgets_that_gave_one_model)
{
    if (report_gnuplot_check() != QAT_OK) cr_skip_test("gnuplot is not installed");
    const char *dir = make_gpt_dir(true);
    qat_report_options o = { .run_dir = dir, .quiet = true };
    cr_assert_eq(qat_report_build(&o), QAT_OK, "%s", qat_error_message());
    char path[1024];
    snprintf(path, sizeof path, "%s/plots/mixed_pareto.gp", dir);
    char *gp = read_text(path);
    cr_expect(strstr(gp, "$s2 << EOD\n# KiB  quality  budget\n37.109 2.6500 \"2.5, 3\"\nEOD\n"), "%s", gp);
    cr_expect(strstr(gp, "$s0 << EOD\n# KiB  quality  budget\n29.297 2.9000 \"2.5\"\n39.062 2.6000 \"3\"\nEOD\n"),
              "%s", gp);
    free(gp);
}

/* bits.csv, per layer or block of rows: CRLF line ends read as LF; a bad
 * header, width, repeated layer or empty table is an error naming the line. */
Test(report_mixed, bits_csv_rows_and_errors)
{
    const char *path = test_tmp_path("bits.csv");
    write_text(path, "layer,weights,bits,bytes,sensitivity,cost\r\nfc1[0:16],25088,2,6400,0.1,0.2\r\n"
                     "fc1[16:32],25088,8,25216,,\r\n\r\nfc2,1280,3,560,0.5,0.01\r\n");
    int n;
    char(*names)[64];
    int *bits;
    cr_assert_eq(report_bits_csv_load(path, &n, &names, &bits), QAT_OK, "%s", qat_error_message());
    cr_expect_eq(n, 3);
    cr_expect_str_eq(names[1], "fc1[16:32]");
    cr_expect_str_eq(names[2], "fc2");
    cr_expect(bits[0] == 2 && bits[1] == 8 && bits[2] == 3);
    free(names), free(bits);
    const char *bad[][2] = {
        {"layer,bits\nfc1,3\n", "bits.csv:1: header"},
        {"layer,weights,bits,bytes,sensitivity,cost\nfc1,10,9,4,,\n", "bits.csv:2:"},
        {"layer,weights,bits,bytes,sensitivity,cost\nfc1,10,3,4,,\nfc1,10,2,4,,\n", "layer fc1 is listed twice"},
        {"layer,weights,bits,bytes,sensitivity,cost\n", "no layers"},
        {"layer,weights,bits,bytes,sensitivity,cost\nfc1,10,3\n", "bits.csv:2: 3 fields, expected 6"},
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(bad); i++) {
        write_text(path, bad[i][0]);
        cr_expect_eq(report_bits_csv_load(path, &n, &names, &bits), QAT_ERR_FORMAT, "accepted %s", bad[i][0]);
        cr_expect(strstr(qat_error_message(), bad[i][1]), "%s: %s", bad[i][0], qat_error_message());
        cr_expect(n == 0 && names == NULL && bits == NULL);
    }
}

/* More than 48 blocks of rows: the bars show each layer at the row-weighted
 * mean width of its blocks. */
Test(report_mixed, many_blocks_are_drawn_per_layer, .timeout = 240)
{
    if (report_gnuplot_check() != QAT_OK) cr_skip_test("gnuplot is not installed");
    const char *dir = make_gpt_dir(false);
    const char *ids[2] = { "mixed-uniform-rtn-b3-g64-s1-aaaa0001", "mixed-hawq-rtn-b3-g64-s1-aaaa0003" };
    char path[1024];
    for (int i = 0; i < 2; i++) {
        qat_strbuf csv = { 0 };
        qat_strbuf_printf(&csv, "layer,weights,bits,bytes,sensitivity,cost\n");
        /* a: 40 blocks of one row (hawq: 2 and 4 in turn, mean 3); b: 10 of
         * two rows and one of 12 (hawq: 2, 2, then 3: mean 2.875). */
        for (int k = 0; k < 40; k++) qat_strbuf_printf(&csv, "a[%d:%d],8,%d,1,,\n", k, k + 1, i ? 2 + 2 * (k % 2) : 3);
        for (int k = 0; k < 10; k++) qat_strbuf_printf(&csv, "b[%d:%d],16,%d,1,,\n", 2 * k, 2 * k + 2, i && k < 2 ? 2 : 3);
        qat_strbuf_printf(&csv, "b[20:32],96,3,1,,\n");
        snprintf(path, sizeof path, "%s/%s/bits.csv", dir, ids[i]);
        write_text(path, csv.data);
        qat_strbuf_free(&csv);
    }
    qat_report_options o = { .run_dir = dir, .quiet = true };
    cr_assert_eq(qat_report_build(&o), QAT_OK, "%s", qat_error_message());
    snprintf(path, sizeof path, "%s/plots/mixed_bits_b3.gp", dir);
    char *gp = read_text(path);
    cr_expect(strstr(gp, "mean over its rows"), "%s", gp);
    cr_expect(strstr(gp, "$bits << EOD\n# layer uniform hawq\n\"a\" 3 3\n\"b\" 3 2.875\nEOD\n"), "%s", gp);
    free(gp);
}
