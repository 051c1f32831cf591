/* The [mixed] section of experiment specs: every key, the defaults, bad
 * values named by file and line, and the mixed runs of the grid (order, ids,
 * settings). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/experiment.h"
#include "tests/test_util.h"

TestSuite(experiment_mixed);

/* "[experiment]" (3 lines) and a 1-line [baseline]: `extra` starts on line 6. */
static const char *image_with(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "[experiment]\nname = m\nmodel = mlp\n[baseline]\nepochs = 1\n%s", extra);
    return buf;
}

/* The gpt with [finetune] (line 4..5): `extra` starts on line 6. */
static const char *gpt_with(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "[experiment]\nname = g\nmodel = gpt\n[finetune]\ndata = fortunes:tech\n%s", extra);
    return buf;
}

#define parse_ok(text) test_spec_parse_ok((text), "mix.ini")
#define parse_fails(text, ...) test_spec_parse_fails((text), "mix.ini", __VA_ARGS__)

Test(experiment_mixed, defaults)
{
    qat_experiment e = parse_ok(image_with("[mixed]\nstrategies = uniform\nbudgets = 3\n"));
    cr_assert(e.has_mixed);
    cr_expect_eq(e.n_mixed_strategies, 1);
    cr_expect_str_eq(e.mixed_strategies[0], "uniform");
    cr_expect_eq(e.n_mixed_budgets, 1);
    cr_expect_str_eq(e.mixed_budgets[0], "3");
    cr_expect_eq(e.mixed_sensitivity, QAT_SENSITIVITY_HESSIAN);
    cr_expect_eq(e.n_mixed_candidates, 0, "every width 2..8");
    cr_expect_eq(e.mixed_gran.gran, QAT_GRAN_CHANNEL);
    cr_expect_eq(e.mixed_abits, 0);
    cr_expect_eq(e.n_mixed_methods, 1);
    cr_expect(!e.mixed_gptq[0]);
    cr_expect_eq(e.n_mixed_qat, 0);
    cr_expect_eq(e.mixed_qat_epochs, 3);
    cr_expect_eq(e.mixed_qat_steps, 300);
    cr_expect_eq(e.mixed_qat_eval_every, 50);
    cr_expect_eq(e.mixed_qat_lr, 1e-4);
    cr_expect_eq(e.mixed_calib, 8);
    cr_expect_eq(e.mixed_max_probes, 16);
    cr_expect_eq(e.mixed_of, QAT_PTQ_OF_BASE);

    qat_experiment none = parse_ok(image_with(""));
    cr_expect(!none.has_mixed);
}

Test(experiment_mixed, every_key)
{
    qat_experiment e = parse_ok(image_with("[mixed]\n"
                                           "strategies = uniform, greedy ,hawq\n"
                                           "budgets = 3, 2.5, 120KB\n"
                                           "sensitivity = fisher\n"
                                           "candidates = 2, 3, 4, 8\n"
                                           "granularity = group:32\n"
                                           "abits = 8\n"
                                           "methods = rtn, gptq\n"
                                           "qat_epochs = 2\n"
                                           "qat_lr = 5e-4\n"
                                           "calib = 4\n"
                                           "max_probes = 12\n"
                                           "qat = none\n"
                                           "unit = rows:16\n"));
    cr_expect_eq(e.n_mixed_strategies, 3);
    cr_expect_str_eq(e.mixed_strategies[1], "greedy");
    cr_expect_str_eq(e.mixed_strategies[2], "hawq");
    cr_expect_eq(e.n_mixed_budgets, 3);
    cr_expect_str_eq(e.mixed_budgets[1], "2.5");
    cr_expect_str_eq(e.mixed_budgets[2], "120KB");
    cr_expect_eq(e.mixed_sensitivity, QAT_SENSITIVITY_FISHER);
    cr_expect_eq(e.n_mixed_candidates, 4);
    cr_expect(e.mixed_candidates[0] == 2 && e.mixed_candidates[1] == 3 && e.mixed_candidates[2] == 4 &&
              e.mixed_candidates[3] == 8);
    cr_expect(e.mixed_gran.gran == QAT_GRAN_GROUP && e.mixed_gran.group == 32);
    cr_expect_eq(e.mixed_abits, 8);
    cr_expect(e.n_mixed_methods == 2 && !e.mixed_gptq[0] && e.mixed_gptq[1]);
    cr_expect_eq(e.n_mixed_qat, 0);
    cr_expect_eq(e.mixed_unit_rows, 16);
    cr_expect_eq(e.mixed_qat_epochs, 2);
    cr_expect_eq(e.mixed_qat_lr, 5e-4);
    cr_expect_eq(e.mixed_calib, 4);
    cr_expect_eq(e.mixed_max_probes, 12);

    qat_experiment g = parse_ok(gpt_with("[mixed]\nstrategies = rules\nbudgets = 3\nsensitivity = perturbation\n"
                                         "methods = none\nqat = lsq\nqat_steps = 40\nqat_eval_every = 10\n"
                                         "of = finetune\n"));
    cr_expect_eq(g.mixed_sensitivity, QAT_SENSITIVITY_PERTURBATION);
    cr_expect_eq(g.n_mixed_methods, 0);
    cr_expect_eq(g.n_mixed_qat, 1);
    cr_expect_eq(g.mixed_qat_steps, 40);
    cr_expect_eq(g.mixed_qat_eval_every, 10);
    cr_expect_eq(g.mixed_of, QAT_PTQ_OF_FINETUNE);
    cr_expect_eq(g.mixed_unit_rows, 0, "whole layers by default");
    qat_experiment q = parse_ok(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nqat = ste, lsq\nunit = rows:8\n"));
    cr_expect_eq(q.mixed_unit_rows, 8, "blocks of rows with QAT");
    cr_expect(q.n_mixed_qat == 2 && q.mixed_qat[0] == QAT_QUANTIZER_STE && q.mixed_qat[1] == QAT_QUANTIZER_LSQ);
}

Test(experiment_mixed, bad_values_name_file_and_line)
{
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nunit = rows\n"),
                "mix.ini:9: [mixed] unit: 'rows': expected layer or rows:N", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\ngranularity = tensor\nunit = rows:8\n"),
                "mix.ini:10: [mixed] unit: 'rows:8'", "per-row scales", NULL);
    parse_fails(image_with("[mixed]\nbudgets = 3\n"), "mix.ini:6: [mixed] lacks the required key 'strategies'", NULL);
    parse_fails(image_with("[mixed]\nstrategies = uniform\n"), "mix.ini:6: [mixed] lacks the required key 'budgets'",
                NULL);
    parse_fails(image_with("[mixed]\nstrategies = uniform, clever\nbudgets = 3\n"),
                "mix.ini:7: [mixed] strategies: 'clever': unknown strategy", "uniform", "rules", "greedy", "hawq", NULL);
    parse_fails(image_with("[mixed]\nstrategies = manual\nbudgets = 3\n"),
                "mix.ini:7: [mixed] strategies: 'manual': manual needs a hand-written map", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq, hawq\nbudgets = 3\n"), "mix.ini:7:", "listed twice", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3, 9\n"),
                "mix.ini:8: [mixed] budgets: '9': expected average weight bits", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3, 3.0\n"), "mix.ini:8:",
                "listed twice (also as '3')", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 12345678901234567B\n"), "mix.ini:8:",
                "at most 16 characters", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nsensitivity = magic\n"),
                "mix.ini:9: [mixed] sensitivity: 'magic': unknown sensitivity", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\ncandidates = 4, 3\n"),
                "mix.ini:9: [mixed] candidates: '3': candidates must ascend", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\ncandidates = 2, 9\n"),
                "mix.ini:9: [mixed] candidates: '9': expected a width within 2..8", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\ncandidates = fp32\n"), "mix.ini:9:",
                "expected a width", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\ngranularity = channel, tensor\n"),
                "mix.ini:9: [mixed] granularity:", "one granularity", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\ngranularity = rows\n"),
                "mix.ini:9: [mixed] granularity: 'rows'", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nabits = 1\n"),
                "mix.ini:9: [mixed] abits: '1': expected 2..8 or fp32", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nmethods = awq\n"),
                "mix.ini:9: [mixed] methods: 'awq': unknown method", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nqat = dorefa\n"),
                "mix.ini:9: [mixed] qat: 'dorefa': unknown quantizer", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nmethods = none\n"),
                "mix.ini:9: [mixed] methods: 'none':", "needs a method", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nqat_epochs = 0\n"),
                "mix.ini:9: [mixed] qat_epochs: '0': must be in 1..100000", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nqat_lr = 0\n"),
                "mix.ini:9: [mixed] qat_lr: '0': must be in (0, 100]", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\ncalib = 0\n"),
                "mix.ini:9: [mixed] calib: '0': must be in 1..100000", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nmax_probes = 1\n"),
                "mix.ini:9: [mixed] max_probes: '1': must be in 2..100000", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nof = base\n"),
                "mix.ini:9: [mixed] of: applies to model gpt, not to mlp", NULL);
    parse_fails(image_with("[mixed]\nstrategies = hawq\nbudgets = 3\nqat_steps = 5\n"),
                "mix.ini:9: [mixed] qat_steps: applies to model gpt", NULL);
    parse_fails(gpt_with("[mixed]\nstrategies = hawq\nbudgets = 3\nqat_epochs = 5\n"),
                "mix.ini:9: [mixed] qat_epochs: applies to mlp and cnn", NULL);
    parse_fails(gpt_with("[mixed]\nstrategies = hawq\nbudgets = 3\nof = base, finetune\n"),
                "mix.ini:9: [mixed] of:", "one of them", NULL);
    parse_fails("[experiment]\nname = g\nmodel = gpt\n[mixed]\nstrategies = rules\nbudgets = 3\n",
                "mix.ini:4: [mixed] needs a [finetune] section for model gpt", NULL);
}

/* --- the grid --- */

typedef struct grid {
    qat_run_spec *runs;
    int count;
} grid;

static grid expand(const char *text)
{
    qat_experiment e = parse_ok(text);
    grid g;
    cr_assert_eq(qat_experiment_expand(&e, &g.runs, &g.count), QAT_OK);
    return g;
}

static bool has_line(const qat_run_spec *r, const char *line)
{
    char key[128];
    snprintf(key, sizeof key, "%s\n", line);
    for (const char *p = r->settings; (p = strstr(p, key)); p++)
        if (p == r->settings || p[-1] == '\n') return true;
    return false;
}

static bool has_key(const qat_run_spec *r, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = r->settings; *p; p = strchr(p, '\n') + 1)
        if (strncmp(p, key, n) == 0 && p[n] == '=') return true;
    return false;
}

Test(experiment_mixed, grid_order_ids_and_settings)
{
    grid g = expand("[experiment]\nname = m\nmodel = mlp\nseeds = 1, 2\n"
                    "[ptq]\nbits = 4/8\n"
                    "[mixed]\nstrategies = uniform, hawq\nbudgets = 3, 2.5\nmethods = rtn, gptq\nqat = lsq\n");
    /* 2 baselines, then per seed: 1 PTQ run and 2 x 2 x 3 mixed runs. */
    cr_assert_eq(g.count, 2 + 2 * (1 + 12));
    const char *order[] = { "uniform-rtn-b3", "uniform-gptq-b3", "uniform-lsq-b3", "uniform-rtn-b2p5",
                            "uniform-gptq-b2p5", "uniform-lsq-b2p5", "hawq-rtn-b3", "hawq-gptq-b3", "hawq-lsq-b3",
                            "hawq-rtn-b2p5", "hawq-gptq-b2p5", "hawq-lsq-b2p5" };
    for (int s = 0; s < 2; s++) {
        int first = 2 + s * 13;
        cr_expect_eq(g.runs[first].kind, QAT_RUN_PTQ);
        for (int k = 0; k < 12; k++) {
            const qat_run_spec *r = &g.runs[first + 1 + k];
            char prefix[64];
            snprintf(prefix, sizeof prefix, "mixed-%s-channel-s%d-", order[k], s + 1);
            cr_expect_eq(r->kind, QAT_RUN_MIXED);
            cr_expect(strncmp(r->id, prefix, strlen(prefix)) == 0 && strlen(r->id) == strlen(prefix) + 8,
                      "run %d of seed %d: %s, expected %s<hash>", k, s + 1, r->id, prefix);
            cr_expect_str_eq(r->baseline_id, g.runs[s].id);
            cr_expect_eq(r->wbits, 8, "every layer's bits come from the map");
            cr_expect_eq(r->mixed_qat, k % 3 == 2);
            cr_expect(has_line(r, "kind=mixed"));
            cr_expect(has_line(r, "candidates=2,3,4,5,6,7,8"));
            cr_expect(has_line(r, "granularity=channel"));
            cr_expect(has_line(r, "abits=fp32"));
            cr_expect(has_line(r, "calib=8"));
            cr_expect(has_line(r, "observer=minmax"));
            cr_expect(has_line(r, k < 6 ? "strategy=uniform" : "strategy=hawq"));
            cr_expect(has_line(r, k % 6 < 3 ? "budget=3" : "budget=2.5"));
            cr_expect(has_line(r, k % 3 == 0 ? "method=ptq-rtn" : k % 3 == 1 ? "method=ptq-gptq" : "method=qat-lsq"));
            /* Only strategies that weigh cost depend on how it is measured. */
            cr_expect_eq(has_key(r, "sensitivity"), k >= 6, "%s", r->settings);
            cr_expect_eq(has_key(r, "max_probes"), k >= 6, "%s", r->settings);
            cr_expect_eq(has_key(r, "epochs"), k % 3 == 2);
            cr_expect_eq(has_key(r, "lr"), k % 3 == 2);
        }
    }
    /* The ids of the PTQ runs and baselines are those without [mixed]. */
    grid plain = expand("[experiment]\nname = m\nmodel = mlp\nseeds = 1, 2\n[ptq]\nbits = 4/8\n");
    cr_assert_eq(plain.count, 4);
    cr_expect_str_eq(g.runs[0].id, plain.runs[0].id);
    cr_expect_str_eq(g.runs[2].id, plain.runs[2].id);
    cr_expect_str_eq(g.runs[15].id, plain.runs[3].id);
    free(g.runs), free(plain.runs);
}

Test(experiment_mixed, ids_are_pinned_and_follow_the_settings_that_matter)
{
    const char *base = "[experiment]\nname = m\nmodel = mlp\n[mixed]\nstrategies = uniform, hawq\nbudgets = 2.5\n";
    grid g = expand(base);
    cr_assert_eq(g.count, 3);
    /* Pinned: a changed id would orphan finished runs. */
    cr_expect_str_eq(g.runs[1].id, "mixed-uniform-rtn-b2p5-channel-s1-1ba5c520");
    cr_expect_str_eq(g.runs[2].id, "mixed-hawq-rtn-b2p5-channel-s1-55b42fe0");

    char text[512];
    /* The sensitivity and the probes change hawq's id, never uniform's. */
    snprintf(text, sizeof text, "%ssensitivity = fisher\nmax_probes = 4\n", base);
    grid f = expand(text);
    cr_expect_str_eq(f.runs[1].id, g.runs[1].id);
    cr_expect_str_neq(f.runs[2].id, g.runs[2].id);
    snprintf(text, sizeof text, "%ssensitivity = fisher\nmax_probes = 5\n", base);
    grid f2 = expand(text);
    cr_expect_str_eq(f2.runs[2].id, f.runs[2].id, "fisher takes no probes");
    snprintf(text, sizeof text, "%smax_probes = 5\n", base);
    grid h = expand(text);
    cr_expect_str_eq(h.runs[1].id, g.runs[1].id);
    cr_expect_str_neq(h.runs[2].id, g.runs[2].id, "hessian does");
    /* Every other setting changes both. */
    const char *const changes[] = { "candidates = 2, 4\n", "abits = 8\n", "calib = 9\n", "unit = rows:8\n" };
    for (size_t i = 0; i < QAT_ARRAY_LEN(changes); i++) {
        snprintf(text, sizeof text, "%s%s", base, changes[i]);
        grid c = expand(text);
        cr_expect_str_neq(c.runs[1].id, g.runs[1].id, "%s", changes[i]);
        cr_expect_str_neq(c.runs[2].id, g.runs[2].id, "%s", changes[i]);
        free(c.runs);
    }
    snprintf(text, sizeof text, "%sgranularity = group:64\n", base);
    grid gg = expand(text);
    snprintf(text, sizeof text, "%sunit = layer\n", base);
    grid u = expand(text);
    cr_expect_str_eq(u.runs[2].id, g.runs[2].id, "unit = layer is the default and keeps the ids");
    free(u.runs);
    cr_expect(strncmp(gg.runs[1].id, "mixed-uniform-rtn-b2p5-g64-s1-", 30) == 0, "%s", gg.runs[1].id);
    snprintf(text, sizeof text, "[experiment]\nname = m\nmodel = mlp\n[mixed]\nstrategies = greedy\n"
                                "budgets = 120KB\nmethods = none\nqat = pact\n");
    grid b = expand(text);
    cr_expect(strncmp(b.runs[1].id, "mixed-greedy-pact-b120KB-channel-s1-", 36) == 0, "%s", b.runs[1].id);
    free(g.runs), free(f.runs), free(f2.runs), free(h.runs), free(gg.runs), free(b.runs);
}

Test(experiment_mixed, gpt_runs_after_qlora_from_the_base_or_the_finetune)
{
    const char *ft = "[experiment]\nname = g\nmodel = gpt\n[finetune]\ndata = fortunes:tech\n"
                     "[qlora]\nbases = nf4\n[mixed]\nstrategies = rules, hawq\nbudgets = 3\ngranularity = group:64\n"
                     "qat = ste\nof = finetune\n";
    grid g = expand(ft);
    /* baseline, finetune, qlora, then 2 strategies x (rtn, ste). */
    cr_assert_eq(g.count, 3 + 4);
    cr_expect_eq(g.runs[2].kind, QAT_RUN_QLORA);
    const char *order[] = { "mixed-rules-rtn-ft-b3-g64-s1-", "mixed-rules-ste-ft-b3-g64-s1-",
                            "mixed-hawq-rtn-ft-b3-g64-s1-", "mixed-hawq-ste-ft-b3-g64-s1-" };
    for (int k = 0; k < 4; k++) {
        const qat_run_spec *r = &g.runs[3 + k];
        cr_expect(strncmp(r->id, order[k], strlen(order[k])) == 0, "%s, expected %s<hash>", r->id, order[k]);
        cr_expect_str_eq(r->finetune_id, g.runs[1].id);
        cr_expect(has_line(r, "source=finetune"));
        cr_expect(has_line(r, "data=fortunes:tech"));
        cr_expect(has_key(r, "finetune.steps"));
        cr_expect_eq(has_key(r, "steps"), k % 2 == 1, "QAT runs take steps");
        cr_expect_eq(has_key(r, "epochs"), false);
    }
    grid b = expand("[experiment]\nname = g\nmodel = gpt\n[finetune]\ndata = fortunes:tech\n"
                    "[mixed]\nstrategies = rules\nbudgets = 3\n");
    cr_assert_eq(b.count, 3);
    cr_expect_str_eq(b.runs[2].finetune_id, "");
    cr_expect(has_line(&b.runs[2], "source=base"));
    cr_expect(!has_key(&b.runs[2], "finetune.steps"));
    free(g.runs), free(b.runs);
}
