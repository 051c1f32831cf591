/* Experiment specs of the gpt: every key of [baseline] (gpt), [finetune],
 * [ptq] of, [qat] steps, [qlora]; their defaults; bad values, keys and
 * sections of the other model named by file and line wherever [experiment]
 * model comes; the grid (finetune, PTQ of the fine-tune or the base, QAT,
 * QLoRA), its ids, settings and dependencies. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/experiment.h"
#include "qat/fileio.h"
#include "tests/test_util.h"

static const char GPT_FULL[] = "[experiment]\n"
                               "name = fortunes-full\n"
                               "model = gpt\n"
                               "dataset = fortunes:linux+perl\n"
                               "seeds = 4, 2\n"
                               "[baseline]\n"
                               "steps = 1500\n"
                               "eval_every = 250\n"
                               "batch = 12\n"
                               "layers = 2\n"
                               "width = 96\n"
                               "heads = 3\n"
                               "context = 64\n"
                               "val_permille = 150\n"
                               "lr = 2e-3\n"
                               "warmup = 50\n"
                               "[finetune]\n"
                               "data = fortunes:tech\n"
                               "forget = fortunes:general\n"
                               "steps = 400\n"
                               "lr = 3e-4\n"
                               "warmup = 20\n"
                               "weight_decay = 0.05\n"
                               "eval_every = 40\n"
                               "[ptq]\n"
                               "methods = rtn, gptq\n"
                               "observers = mse\n"
                               "bits = 4/fp32, 8/8\n"
                               "granularity = group:64, channel\n"
                               "calib = 6\n"
                               "of = base, finetune\n"
                               "[qat]\n"
                               "quantizers = lsq, ste\n"
                               "bits = 4/fp32\n"
                               "granularity = group:32\n"
                               "steps = 350\n"
                               "lr = 2e-4\n"
                               "calib = 5\n"
                               "eval_every = 70\n"
                               "[qlora]\n"
                               "bases = fp4, fp32, nf4\n"
                               "rank = 8\n"
                               "alpha = 16\n"
                               "dropout = 0.1\n"
                               "steps = 250\n"
                               "lr = 5e-4\n"
                               "warmup = 10\n"
                               "eval_every = 25\n";

/* A spec of the gpt's five arms, with ids pinned below. */
static const char GPT_SPEC[] = "[experiment]\nname = fortunes\nmodel = gpt\ndataset = fortunes:general\nseeds = 1\n"
                               "[baseline]\nsteps = 1500\nbatch = 16\nlr = 2e-3\n"
                               "[finetune]\ndata = fortunes:tech\nforget = fortunes:general\nsteps = 300\nlr = 3e-4\n"
                               "[ptq]\nmethods = rtn, gptq\nbits = 4/fp32\ngranularity = group:64\ncalib = 8\n"
                               "of = finetune, base\n"
                               "[qat]\nquantizers = lsq\nbits = 4/fp32\ngranularity = group:64\nsteps = 300\nlr = 3e-4\n"
                               "calib = 8\n"
                               "[qlora]\nbases = nf4, fp32\nrank = 4\nalpha = 8\ndropout = 0\nsteps = 300\nlr = 1e-3\n";

/* experiments/fortunes.ini: the values measured best on lavapipe (docs/gpt.md). */
static const char SHIPPED_SPEC[] = "[experiment]\nname = fortunes\nmodel = gpt\ndataset = fortunes:general\nseeds = 1\n"
                                   "[baseline]\nsteps = 2000\nbatch = 16\nlr = 3e-3\n"
                                   "[finetune]\ndata = fortunes:tech\nforget = fortunes:general\nsteps = 300\nlr = 3e-4\n"
                                   "[ptq]\nmethods = rtn, gptq\nbits = 4/fp32\ngranularity = group:64\ncalib = 8\n"
                                   "of = finetune, base\n"
                                   "[qat]\nquantizers = ste\nbits = 4/fp32\ngranularity = group:64\nsteps = 300\n"
                                   "lr = 3e-4\ncalib = 8\n"
                                   "[qlora]\nbases = nf4, fp32\nrank = 4\nalpha = 8\ndropout = 0\nsteps = 300\n"
                                   "lr = 2e-3\n"
                                   "[mixed]\nstrategies = uniform, greedy, hawq, rules\nbudgets = 3, 2.5\n"
                                   "sensitivity = fisher\ncandidates = 2, 3, 4, 8\ngranularity = group:64\nof = base\n";

#define parse_ok(text) test_spec_parse_ok((text), "gpt.ini")
#define parse_fails(text, ...) test_spec_parse_fails((text), "gpt.ini", __VA_ARGS__)

static const char GPT_MIN[] = "[experiment]\nname = g\nmodel = gpt\n";

/* GPT_MIN (3 lines) with `extra` appended: extra's first line is line 4. */
static const char *gpt_with(const char *extra)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s%s", GPT_MIN, extra);
    return buf;
}

static const char *mlp_with(const char *extra)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "[experiment]\nname = m\nmodel = mlp\n%s", extra);
    return buf;
}

TestSuite(experiment_gpt);

Test(experiment_gpt, full_spec_parses_to_every_field)
{
    qat_experiment e = parse_ok(GPT_FULL);
    cr_assert_eq(e.model, QAT_MODEL_GPT);
    cr_assert_str_eq(e.dataset, "fortunes:linux+perl");
    cr_assert_eq(e.nseeds, 2);
    const qat_train_options *b = &e.baseline;
    cr_assert_eq(b->model.kind, QAT_MODEL_GPT);
    cr_assert_eq(b->model.gpt.layers, 2);
    cr_assert_eq(b->model.gpt.width, 96);
    cr_assert_eq(b->model.gpt.heads, 3);
    cr_assert_eq(b->model.gpt.context, 64);
    cr_assert_eq(b->model.gpt.vocab, 256);
    cr_assert_eq(b->steps, 1500);
    cr_assert_eq(b->eval_every, 250);
    cr_assert_eq(b->batch, 12);
    cr_assert_eq(b->val_permille, 150);
    cr_assert_eq(b->optim.lr, 2e-3);
    cr_assert_eq(b->optim.warmup_steps, 50);
    cr_assert_null(b->data_spec);

    cr_assert(e.has_finetune);
    cr_assert_str_eq(e.finetune_data, "fortunes:tech");
    cr_assert_str_eq(e.forget_data, "fortunes:general");
    cr_assert_eq(e.finetune_steps, 400);
    cr_assert_eq(e.finetune_lr, 3e-4);
    cr_assert_eq(e.finetune_warmup, 20);
    cr_assert_eq(e.finetune_weight_decay, 0.05);
    cr_assert_eq(e.finetune_eval_every, 40);

    cr_assert(e.has_ptq);
    cr_assert_eq(e.n_ptq_methods, 2);
    cr_assert_eq(e.n_ptq_observers, 1);
    cr_assert_eq(e.ptq_observers[0], QAT_OBS_MSE);
    cr_assert_eq(e.n_ptq_bits, 2);
    cr_assert_eq(e.ptq_bits[0].wbits, 4);
    cr_assert_eq(e.ptq_bits[0].abits, 0);
    cr_assert_eq(e.n_ptq_gran, 2);
    cr_assert_eq(e.ptq_calib, 6);
    cr_assert_eq(e.n_ptq_of, 2);
    cr_assert_eq(e.ptq_of[0], QAT_PTQ_OF_BASE);
    cr_assert_eq(e.ptq_of[1], QAT_PTQ_OF_FINETUNE);

    cr_assert(e.has_qat);
    cr_assert_eq(e.n_qat_quantizers, 2);
    cr_assert_eq(e.qat_steps, 350);
    cr_assert_eq(e.qat_lr, 2e-4);
    cr_assert_eq(e.qat_calib, 5);
    cr_assert_eq(e.qat_eval_every, 70);

    cr_assert(e.has_qlora);
    cr_assert_eq(e.n_qlora_bases, 3);
    cr_assert_eq(e.qlora_bases[0], QAT_LORA_BASE_FP4);
    cr_assert_eq(e.qlora_bases[1], QAT_LORA_BASE_FP32);
    cr_assert_eq(e.qlora_bases[2], QAT_LORA_BASE_NF4);
    cr_assert_eq(e.qlora_rank, 8);
    cr_assert_eq(e.qlora_alpha, 16);
    cr_assert_eq(e.qlora_dropout, 0.1);
    cr_assert_eq(e.qlora_steps, 250);
    cr_assert_eq(e.qlora_lr, 5e-4);
    cr_assert_eq(e.qlora_warmup, 10);
    cr_assert_eq(e.qlora_eval_every, 25);
}

Test(experiment_gpt, defaults_are_those_of_the_cli_commands)
{
    qat_experiment e = parse_ok(GPT_MIN);
    cr_assert_str_eq(e.dataset, "fortunes:general");
    const qat_train_options *b = &e.baseline;
    cr_assert_eq(b->steps, 2000);
    cr_assert_eq(b->eval_every, 500);
    cr_assert_eq(b->batch, 16);
    cr_assert_eq(b->val_permille, 100);
    cr_assert_eq(b->model.gpt.layers, 4);
    cr_assert_eq(b->model.gpt.width, 128);
    cr_assert_eq(b->model.gpt.heads, 4);
    cr_assert_eq(b->model.gpt.context, 128);
    cr_assert_eq(b->optim.kind, QAT_OPTIM_ADAMW);
    cr_assert_eq(b->optim.lr, 1e-3);
    cr_assert_eq(b->optim.weight_decay, 0.01);
    cr_assert_eq(b->optim.warmup_steps, 100);
    cr_assert(!e.has_finetune && !e.has_ptq && !e.has_qat && !e.has_qlora);

    e = parse_ok(gpt_with("[finetune]\ndata = fortunes:tech\n[ptq]\nbits = 4/fp32\n[qat]\nbits = 4/fp32\n[qlora]\n"));
    cr_assert_str_eq(e.forget_data, "fortunes:general", "the forget domain defaults to the pretraining corpus");
    cr_assert_eq(e.finetune_steps, 300);
    cr_assert_eq(e.finetune_lr, 1e-3);
    cr_assert_eq(e.finetune_warmup, 100);
    cr_assert_eq(e.finetune_weight_decay, 0.01);
    cr_assert_eq(e.finetune_eval_every, 50);
    cr_assert_eq(e.n_ptq_of, 2);
    cr_assert_eq(e.ptq_of[0], QAT_PTQ_OF_FINETUNE);
    cr_assert_eq(e.ptq_of[1], QAT_PTQ_OF_BASE);
    cr_assert_eq(e.ptq_calib, 8);
    cr_assert_eq(e.n_ptq_methods, 1);
    cr_assert(!e.ptq_gptq[0]);
    cr_assert_eq(e.qat_calib, 8);
    cr_assert_eq(e.qat_steps, 300);
    cr_assert_eq(e.qat_lr, 1e-4);
    cr_assert_eq(e.qat_eval_every, 50);
    cr_assert_eq(e.n_qat_quantizers, 1);
    cr_assert_eq(e.qat_quantizers[0], QAT_QUANTIZER_LSQ);
    cr_assert_eq(e.n_qlora_bases, 1);
    cr_assert_eq(e.qlora_bases[0], QAT_LORA_BASE_NF4);
    cr_assert_eq(e.qlora_rank, 4);
    cr_assert_eq(e.qlora_alpha, 8);
    cr_assert_eq(e.qlora_dropout, 0);
    cr_assert_eq(e.qlora_steps, 300);
    cr_assert_eq(e.qlora_lr, 1e-3);
    cr_assert_eq(e.qlora_warmup, 30);
    cr_assert_eq(e.qlora_eval_every, 50);

    /* The forget domain follows a dataset given after [finetune]. */
    e = parse_ok("[finetune]\ndata = fortunes:tech\n[experiment]\nname = g\nmodel = gpt\ndataset = fortunes:all\n");
    cr_assert_str_eq(e.forget_data, "fortunes:all");
    /* Explicit calibration counts are kept. */
    e = parse_ok(gpt_with("[finetune]\ndata = fortunes:tech\n[ptq]\nbits = 4/fp32\ncalib = 32\n"));
    cr_assert_eq(e.ptq_calib, 32);
}

Test(experiment_gpt, image_experiments_keep_their_defaults)
{
    qat_experiment e = parse_ok(mlp_with("[ptq]\nbits = 4/8\n[qat]\nbits = 4/4\n"));
    cr_assert_str_eq(e.dataset, "fashion-mnist");
    cr_assert_eq(e.baseline.batch, 128);
    cr_assert_eq(e.ptq_calib, 32);
    cr_assert_eq(e.qat_calib, 32);
    cr_assert_eq(e.n_ptq_of, 0);
    cr_assert(!e.has_finetune && !e.has_qlora);
}

Test(experiment_gpt, bad_values_name_file_line_section_and_key)
{
    static const char ft[] = "[finetune]\ndata = fortunes:tech\n";
    struct { const char *extra, *where, *what; } cases[] = {
        { "dataset = fashion-mnist\n", "gpt.ini:4: [experiment] dataset: 'fashion-mnist': ", "fortunes:general" },
        { "dataset = fortunes:\n", "gpt.ini:4: [experiment] dataset: 'fortunes:': ", "fortunes corpus" },
        { "dataset = fortunes:a b\n", "gpt.ini:4: [experiment] dataset: 'fortunes:a b': ", "fortunes corpus" },
        { "[baseline]\nsteps = 0\n", "gpt.ini:5: [baseline] steps: '0': ", "1..100000000" },
        { "[baseline]\neval_every = -1\n", "gpt.ini:5: [baseline] eval_every: '-1': ", "0..100000000" },
        { "[baseline]\nlayers = 16\n", "gpt.ini:5: [baseline] layers: '16': ", "1..15" },
        { "[baseline]\nwidth = 3\n", "gpt.ini:5: [baseline] width: '3': ", "4..4096" },
        { "[baseline]\nheads = 0\n", "gpt.ini:5: [baseline] heads: '0': ", "1..4096" },
        { "[baseline]\ncontext = 4097\n", "gpt.ini:5: [baseline] context: '4097': ", "1..4096" },
        { "[baseline]\nval_permille = 1000\n", "gpt.ini:5: [baseline] val_permille: '1000': ", "1..999" },
        { "[baseline]\nwidth = 32\nheads = 3\n", "gpt.ini:6: [baseline] heads: '3': ", "must divide width 32" },
        { "[baseline]\nheads = 8\nwidth = 36\n", "gpt.ini:6: [baseline] width: '36': ", "multiple of heads 8" },
        { "[baseline]\nwidth = 30\n", "gpt.ini:5: [baseline] width: '30': ", "multiple of heads 4" },
        { "[finetune]\ndata = tech\n", "gpt.ini:5: [finetune] data: 'tech': ", "fortunes:tech" },
        { "[finetune]\ndata = fortunes:tech\nforget = general\n", "gpt.ini:6: [finetune] forget: 'general': ",
          "fortunes corpus" },
        { "[finetune]\ndata = fortunes:tech\nsteps = 0\n", "gpt.ini:6: [finetune] steps: '0': ", "1..100000000" },
        { "[finetune]\ndata = fortunes:tech\nlr = 0\n", "gpt.ini:6: [finetune] lr: '0': ", "(0, 100]" },
        { "[finetune]\ndata = fortunes:tech\nwarmup = x\n", "gpt.ini:6: [finetune] warmup: 'x': ", "integer" },
        { "[finetune]\ndata = fortunes:tech\nweight_decay = 11\n", "gpt.ini:6: [finetune] weight_decay: '11': ",
          "[0, 10]" },
        { "[finetune]\ndata = fortunes:tech\neval_every = 1.5\n", "gpt.ini:6: [finetune] eval_every: '1.5': ",
          "integer" },
        { "[ptq]\nbits = 4/fp32\nof = finetune, quantized\n", "gpt.ini:6: [ptq] of: 'quantized': ",
          "finetune (arm a" },
        { "[ptq]\nbits = 4/fp32\nof = base, base\n", "gpt.ini:6: [ptq] of: 'base': ", "twice" },
        { "[ptq]\nbits = 4/fp32\nof =\n", "gpt.ini:6: [ptq] of: '': ", "list" },
        { "[qat]\nbits = 4/fp32\nsteps = 100000001\n", "gpt.ini:6: [qat] steps: '100000001': ", "1..100000000" },
        { "[qat]\nbits = 4/fp32\neval_every = -5\n", "gpt.ini:6: [qat] eval_every: '-5': ", "0..100000000" },
        { "[qlora]\nbases = nf4, int4\n", "gpt.ini:5: [qlora] bases: 'int4': ", "nf4, fp4 or fp32" },
        { "[qlora]\nbases = fp32, nf4, fp32\n", "gpt.ini:5: [qlora] bases: 'fp32': ", "twice" },
        { "[qlora]\nrank = 0\n", "gpt.ini:5: [qlora] rank: '0': ", "1..4096" },
        { "[qlora]\nalpha = 0\n", "gpt.ini:5: [qlora] alpha: '0': ", "(0, 1e+06]" },
        { "[qlora]\ndropout = 1\n", "gpt.ini:5: [qlora] dropout: '1': ", "[0, 0.99]" },
        { "[qlora]\nsteps = -3\n", "gpt.ini:5: [qlora] steps: '-3': ", "1..100000000" },
        { "[qlora]\nlr = big\n", "gpt.ini:5: [qlora] lr: 'big': ", "number" },
        { "[qlora]\nwarmup = -1\n", "gpt.ini:5: [qlora] warmup: '-1': ", "0..100000000" },
        { "[qlora]\neval_every = e\n", "gpt.ini:5: [qlora] eval_every: 'e': ", "integer" },
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) {
        /* Sections that need [finetune] get it after them, so the lines hold. */
        char text[1024];
        bool arm = strncmp(cases[i].extra, "[ptq]", 5) == 0 || strncmp(cases[i].extra, "[qat]", 5) == 0 ||
                   strncmp(cases[i].extra, "[qlora]", 7) == 0;
        snprintf(text, sizeof text, "%s%s", cases[i].extra, arm ? ft : "");
        parse_fails(gpt_with(text), cases[i].where, cases[i].what, NULL);
    }
}

Test(experiment_gpt, keys_and_sections_of_the_other_model_are_refused_by_line)
{
    /* gpt-only in image experiments. */
    parse_fails(mlp_with("[baseline]\nepochs = 2\nsteps = 100\n"), "gpt.ini:6: [baseline] steps: ",
                "applies to model gpt, not to mlp", "epochs, batch", NULL);
    parse_fails(mlp_with("[baseline]\nlayers = 2\n"), "gpt.ini:5: [baseline] layers: ", "model gpt", NULL);
    parse_fails(mlp_with("[baseline]\nval_permille = 50\n"), "gpt.ini:5: [baseline] val_permille: ", NULL);
    parse_fails(mlp_with("[ptq]\nbits = 4/4\nof = base\n"), "gpt.ini:6: [ptq] of: ", "model gpt", NULL);
    parse_fails(mlp_with("[qat]\nbits = 4/4\nsteps = 30\n"), "gpt.ini:6: [qat] steps: ", "model gpt",
                "epochs", NULL);
    parse_fails(mlp_with("[qat]\nbits = 4/4\neval_every = 30\n"), "gpt.ini:6: [qat] eval_every: ", NULL);
    parse_fails(mlp_with("[finetune]\ndata = fortunes:tech\n"), "gpt.ini:4: unknown section [finetune] for model mlp",
                "known: experiment, baseline, ptq, qat", "model gpt", NULL);
    parse_fails(mlp_with("dataset = fortunes:general\n"), "gpt.ini:4: [experiment] dataset: 'fortunes:general': ",
                "fashion-mnist", NULL);
    /* Image-only in gpt experiments. */
    parse_fails(gpt_with("[baseline]\nepochs = 2\n"), "gpt.ini:5: [baseline] epochs: ",
                "applies to mlp and cnn, not to gpt", "steps", NULL);
    parse_fails(gpt_with("[baseline]\nval = 100\n"), "gpt.ini:5: [baseline] val: ", "mlp and cnn", NULL);
    parse_fails(gpt_with("[baseline]\ntrain_limit = 100\n"), "gpt.ini:5: [baseline] train_limit: ", NULL);
    parse_fails(gpt_with("[finetune]\ndata = fortunes:tech\n[qat]\nbits = 4/4\nepochs = 3\n"),
                "gpt.ini:8: [qat] epochs: ", "mlp and cnn", NULL);
    /* Unknown keys list only the model's. */
    parse_fails(gpt_with("[baseline]\nepoch = 2\n"), "gpt.ini:5: unknown key 'epoch' in [baseline]",
                "known: batch, optimizer, lr, momentum, weight_decay, schedule, warmup, steps, eval_every, layers, "
                "width, heads, context, val_permille)", NULL);
    /* [experiment] after the sections: the first line that does not fit. */
    parse_fails("[qat]\nbits = 4/4\nepochs = 3\n[baseline]\nsteps = 9\n[experiment]\nname = x\nmodel = mlp\n",
                "gpt.ini:5: [baseline] steps: ", NULL);
    parse_fails("[qlora]\nrank = 2\n[baseline]\nsteps = 9\n[experiment]\nname = x\nmodel = cnn\n",
                "gpt.ini:1: unknown section [qlora] for model cnn", NULL);
    parse_fails("[baseline]\nsteps = 9\nepochs = 3\n[experiment]\nmodel = gpt\nname = x\n",
                "gpt.ini:3: [baseline] epochs: ", "not to gpt", NULL);
    /* A dataset checked against a model given after it. */
    parse_fails("[experiment]\ndataset = fashion-mnist\nname = x\nmodel = gpt\n",
                "gpt.ini:2: [experiment] dataset: 'fashion-mnist': ", NULL);
}

Test(experiment_gpt, arms_need_a_finetune_section_with_data)
{
    parse_fails(gpt_with("[qlora]\n[ptq]\nbits = 4/fp32\n"), "gpt.ini:4: [qlora] needs a [finetune] section",
                "target domain", NULL);
    parse_fails(gpt_with("\n[qat]\nbits = 4/fp32\n"), "gpt.ini:5: [qat] needs a [finetune] section", NULL);
    parse_fails(gpt_with("[finetune]\nsteps = 10\n"), "gpt.ini:4: [finetune] lacks the required key 'data'", NULL);
    /* Baseline and fine-tune alone are an experiment too. */
    qat_experiment e = parse_ok(gpt_with("[finetune]\ndata = fortunes:tech\n"));
    cr_assert(e.has_finetune && !e.has_ptq);
}

/* ------------------------------------------------------------------ the grid */

typedef struct grid {
    qat_run_spec *runs;
    int count;
} grid;

static grid expand_text(const char *text)
{
    qat_experiment e = parse_ok(text);
    grid g;
    cr_assert_eq(qat_experiment_expand(&e, &g.runs, &g.count), QAT_OK, "%s", qat_error_message());
    return g;
}

static void id_prefix(const qat_run_spec *r, char *out, size_t size)
{
    snprintf(out, size, "%s", r->id);
    char *dash = strrchr(out, '-');
    cr_assert_not_null(dash);
    cr_assert_eq(strlen(dash + 1), 8, "hash of %s", r->id);
    *dash = '\0';
}

static const qat_run_spec *find(const grid *g, const char *id)
{
    for (int i = 0; i < g->count; i++)
        if (strcmp(g->runs[i].id, id) == 0) return &g->runs[i];
    return NULL;
}

Test(experiment_gpt, grid_order_ids_and_dependencies)
{
    grid g = expand_text(GPT_SPEC);
    const char *expected[] = {
        "baseline-fp32-s1",       "finetune-fp32-s1",       "ptq-rtn-ft-w4a32-g64-s1", "ptq-gptq-ft-w4a32-g64-s1",
        "ptq-rtn-w4a32-g64-s1",   "ptq-gptq-w4a32-g64-s1",  "qat-lsq-w4a32-g64-s1",    "qlora-nf4-r4-s1",
        "qlora-fp32-r4-s1",
    };
    cr_assert_eq(g.count, (int)QAT_ARRAY_LEN(expected));
    for (int i = 0; i < g.count; i++) {
        char prefix[QAT_RUN_ID_MAX];
        id_prefix(&g.runs[i], prefix, sizeof prefix);
        cr_assert_str_eq(prefix, expected[i], "run %d", i);
    }
    const qat_run_spec *base = &g.runs[0], *ft = &g.runs[1];
    cr_assert_eq(base->kind, QAT_RUN_BASELINE);
    cr_assert_str_eq(base->baseline_id, "");
    cr_assert_eq(ft->kind, QAT_RUN_FINETUNE);
    cr_assert_str_eq(qat_run_algorithm(ft), "fp32");
    cr_assert_eq(ft->steps, 300);
    cr_assert_eq(ft->lr, 3e-4);
    cr_assert_eq(ft->warmup, 100);
    cr_assert_eq(ft->weight_decay, 0.01);
    cr_assert_eq(ft->eval_every, 50);
    for (int i = 1; i < g.count; i++) {
        const qat_run_spec *r = &g.runs[i];
        cr_assert_str_eq(r->baseline_id, base->id, "%s", r->id);
        cr_assert_str_eq(r->finetune_id, i == 2 || i == 3 ? ft->id : "", "%s", r->id);
        cr_assert(strstr(r->settings, "\ndata=fortunes:tech\n"), "%s", r->settings);
        cr_assert(strstr(r->settings, "\nforget=fortunes:general\n"), "%s", r->settings);
    }
    cr_assert_eq(g.runs[2].calib, 8);
    cr_assert(g.runs[3].gptq);
    cr_assert_eq(g.runs[6].kind, QAT_RUN_QAT);
    cr_assert_eq(g.runs[6].steps, 300);
    cr_assert_eq(g.runs[6].eval_every, 50);
    cr_assert_eq(g.runs[6].lr, 3e-4);
    cr_assert_eq(g.runs[7].kind, QAT_RUN_QLORA);
    cr_assert_eq(g.runs[7].lora_base, QAT_LORA_BASE_NF4);
    cr_assert_str_eq(qat_run_algorithm(&g.runs[7]), "nf4");
    cr_assert_eq(g.runs[7].rank, 4);
    cr_assert_eq(g.runs[7].alpha, 8);
    cr_assert_eq(g.runs[7].dropout, 0);
    cr_assert_eq(g.runs[7].warmup, 30);
    cr_assert_eq(g.runs[8].lora_base, QAT_LORA_BASE_FP32);
    cr_assert_str_eq(qat_run_kind_name(QAT_RUN_FINETUNE), "finetune");
    cr_assert_str_eq(qat_run_kind_name(QAT_RUN_QLORA), "qlora");
    free(g.runs);

    /* Two seeds: the baselines first, then each seed's runs, each after
     * what it starts from. */
    g = expand_text(GPT_FULL);
    /* per seed: finetune + PTQ 2 methods x 1 observer x 2 bits x 2 gran x 2 sources + QAT 2 + QLoRA 3 */
    cr_assert_eq(g.count, 2 + 2 * (1 + 16 + 2 + 3));
    cr_assert(g.runs[0].kind == QAT_RUN_BASELINE && g.runs[0].seed == 4);
    cr_assert(g.runs[1].kind == QAT_RUN_BASELINE && g.runs[1].seed == 2);
    for (int i = 0; i < g.count; i++) {
        const qat_run_spec *r = &g.runs[i];
        for (const char *dep = r->baseline_id; dep; dep = dep == r->baseline_id ? r->finetune_id : NULL) {
            if (!*dep) continue;
            const qat_run_spec *d = find(&g, dep);
            cr_assert_not_null(d, "%s depends on a run outside the grid", r->id);
            cr_assert_lt(d - g.runs, i, "%s comes before %s", d->id, r->id);
            cr_assert_eq(d->seed, r->seed);
        }
        for (int j = 0; j < i; j++) cr_assert_str_neq(r->id, g.runs[j].id);
    }
    /* `of = base, finetune`: the base's PTQ runs come first. */
    char prefix[QAT_RUN_ID_MAX];
    id_prefix(&g.runs[3], prefix, sizeof prefix);
    cr_assert_str_eq(prefix, "ptq-rtn-w4a32-g64-s4");
    id_prefix(&g.runs[11], prefix, sizeof prefix);
    cr_assert_str_eq(prefix, "ptq-rtn-ft-w4a32-g64-s4");
    id_prefix(&g.runs[21], prefix, sizeof prefix);
    cr_assert_str_eq(prefix, "qlora-fp4-r8-s4");
    free(g.runs);
}

Test(experiment_gpt, settings_cover_what_each_run_depends_on)
{
    grid g = expand_text(GPT_SPEC);
    cr_assert_str_eq(g.runs[0].settings, "baseline.batch=16\n"
                                         "baseline.beta1=0.90000000000000002\n"
                                         "baseline.beta2=0.999\n"
                                         "baseline.context=128\n"
                                         "baseline.eps=1e-08\n"
                                         "baseline.eval_every=500\n"
                                         "baseline.heads=4\n"
                                         "baseline.layers=4\n"
                                         "baseline.lr=0.002\n"
                                         "baseline.momentum=0.90000000000000002\n"
                                         "baseline.optimizer=adamw\n"
                                         "baseline.schedule=cosine\n"
                                         "baseline.steps=1500\n"
                                         "baseline.val_permille=100\n"
                                         "baseline.warmup=100\n"
                                         "baseline.weight_decay=0.01\n"
                                         "baseline.width=128\n"
                                         "dataset=fortunes:general\n"
                                         "kind=baseline\n"
                                         "model=gpt\n"
                                         "seed=1\n");
    const char *tail = strstr(g.runs[1].settings, "dataset=");
    cr_assert_str_eq(tail, "dataset=fortunes:general\n"
                           "finetune.eval_every=50\n"
                           "finetune.lr=0.00029999999999999997\n"
                           "finetune.steps=300\n"
                           "finetune.warmup=100\n"
                           "finetune.weight_decay=0.01\n"
                           "forget=fortunes:general\n"
                           "kind=finetune\n"
                           "model=gpt\n"
                           "seed=1\n");
    cr_assert(strncmp(g.runs[1].settings, "baseline.batch=16\n", 18) == 0);
    tail = strstr(g.runs[3].settings, "calib=");
    cr_assert_str_eq(tail, "calib=8\n"
                           "data=fortunes:tech\n"
                           "dataset=fortunes:general\n"
                           "finetune.eval_every=50\n"
                           "finetune.lr=0.00029999999999999997\n"
                           "finetune.steps=300\n"
                           "finetune.warmup=100\n"
                           "finetune.weight_decay=0.01\n"
                           "forget=fortunes:general\n"
                           "granularity=group:64\n"
                           "kind=ptq\n"
                           "method=gptq\n"
                           "model=gpt\n"
                           "observer=minmax\n"
                           "seed=1\n"
                           "source=finetune\n"
                           "wbits=4\n");
    cr_assert(strncmp(g.runs[3].settings, "abits=fp32\n", 11) == 0);
    cr_assert(!strstr(g.runs[5].settings, "finetune."), "PTQ of the base does not depend on the fine-tune");
    cr_assert(strstr(g.runs[5].settings, "\nsource=base\n"));
    tail = strstr(g.runs[6].settings, "calib=");
    cr_assert_str_eq(tail, "calib=8\n"
                           "data=fortunes:tech\n"
                           "dataset=fortunes:general\n"
                           "eval_every=50\n"
                           "forget=fortunes:general\n"
                           "granularity=group:64\n"
                           "kind=qat\n"
                           "lr=0.00029999999999999997\n"
                           "model=gpt\n"
                           "observer=minmax\n"
                           "quantizer=lsq\n"
                           "seed=1\n"
                           "steps=300\n"
                           "wbits=4\n");
    tail = strstr(g.runs[7].settings, "alpha=");
    cr_assert_str_eq(strstr(tail, "\nbase="), "\nbase=nf4\n"
                                             "baseline.batch=16\n"
                                             "baseline.beta1=0.90000000000000002\n"
                                             "baseline.beta2=0.999\n"
                                             "baseline.context=128\n"
                                             "baseline.eps=1e-08\n"
                                             "baseline.eval_every=500\n"
                                             "baseline.heads=4\n"
                                             "baseline.layers=4\n"
                                             "baseline.lr=0.002\n"
                                             "baseline.momentum=0.90000000000000002\n"
                                             "baseline.optimizer=adamw\n"
                                             "baseline.schedule=cosine\n"
                                             "baseline.steps=1500\n"
                                             "baseline.val_permille=100\n"
                                             "baseline.warmup=100\n"
                                             "baseline.weight_decay=0.01\n"
                                             "baseline.width=128\n"
                                             "data=fortunes:tech\n"
                                             "dataset=fortunes:general\n"
                                             "dropout=0\n"
                                             "eval_every=50\n"
                                             "forget=fortunes:general\n"
                                             "kind=qlora\n"
                                             "lr=0.001\n"
                                             "model=gpt\n"
                                             "rank=4\n"
                                             "seed=1\n"
                                             "steps=300\n"
                                             "warmup=30\n");
    cr_assert(strncmp(g.runs[7].settings, "alpha=8\n", 8) == 0);
    free(g.runs);
}

/* The spec with `line` added at the end of section `section` (or after it
 * when it is last). */
static char *spec_with(const char *section, const char *line)
{
    static char buf[4096];
    const char *at = strstr(GPT_SPEC, section);
    cr_assert_not_null(at);
    const char *next = strchr(at + 1, '[');
    size_t head = next ? (size_t)(next - GPT_SPEC) : strlen(GPT_SPEC);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)head, GPT_SPEC, line, GPT_SPEC + head);
    return buf;
}

/* Which runs (by index in the grid) change id when `line` joins `section`. */
static unsigned changed_ids(const char *section, const char *line)
{
    grid a = expand_text(GPT_SPEC), b = expand_text(spec_with(section, line));
    cr_assert_eq(a.count, b.count);
    unsigned mask = 0;
    for (int i = 0; i < a.count; i++) {
        char pa[QAT_RUN_ID_MAX], pb[QAT_RUN_ID_MAX];
        id_prefix(&a.runs[i], pa, sizeof pa);
        id_prefix(&b.runs[i], pb, sizeof pb);
        cr_assert_str_eq(pa, pb);
        if (strcmp(a.runs[i].id, b.runs[i].id) != 0) mask |= 1u << i;
    }
    free(a.runs), free(b.runs);
    return mask;
}

Test(experiment_gpt, ids_change_exactly_where_a_setting_matters)
{
    /* 0 baseline, 1 finetune, 2-3 PTQ of the fine-tune, 4-5 PTQ of the base,
     * 6 QAT, 7-8 QLoRA */
    const unsigned all = 0x1ff;
    cr_assert_eq(changed_ids("[baseline]", "context = 64\n"), all);
    cr_assert_eq(changed_ids("[baseline]", "eval_every = 100\n"), all);
    cr_assert_eq(changed_ids("[baseline]", "val_permille = 50\n"), all);
    cr_assert_eq(changed_ids("[finetune]", "warmup = 10\n"), 0x00e, "the fine-tune and PTQ of it");
    cr_assert_eq(changed_ids("[finetune]", "eval_every = 10\n"), 0x00e);
    cr_assert_eq(changed_ids("[finetune]", "weight_decay = 0\n"), 0x00e);
    cr_assert_eq(changed_ids("[qat]", "eval_every = 10\n"), 0x040);
    cr_assert_eq(changed_ids("[qlora]", "warmup = 5\n"), 0x180);
    cr_assert_eq(changed_ids("[qlora]", "eval_every = 10\n"), 0x180);
    cr_assert_eq(changed_ids("[ptq]", "observers = mse\n"), 0x03c);
    /* The target domain matters to everything after pretraining. */
    grid a = expand_text(GPT_SPEC);
    char spec[4096];
    snprintf(spec, sizeof spec, "%s", GPT_SPEC);
    memcpy(strstr(spec, "data = fortunes:tech"), "data = fortunes:all ", 20);
    grid b = expand_text(spec);
    cr_assert_str_eq(a.runs[0].id, b.runs[0].id);
    for (int i = 1; i < a.count; i++) cr_assert_str_neq(a.runs[i].id, b.runs[i].id);
    free(a.runs), free(b.runs);
}

/* A contract with results on disk, as for images. */
Test(experiment_gpt, pinned_ids)
{
    grid g = expand_text(GPT_SPEC);
    const char *ids[] = {
        "baseline-fp32-s1-319fefcd",        "finetune-fp32-s1-4a776c5a",     "ptq-rtn-ft-w4a32-g64-s1-51b7ff42",
        "ptq-gptq-ft-w4a32-g64-s1-d72216ca", "ptq-rtn-w4a32-g64-s1-33febff2", "ptq-gptq-w4a32-g64-s1-63f5255b",
        "qat-lsq-w4a32-g64-s1-3ebdd8d1",     "qlora-nf4-r4-s1-e787e744",      "qlora-fp32-r4-s1-031966b3",
    };
    cr_assert_eq(g.count, 9);
    for (int i = 0; i < 9; i++) cr_assert_str_eq(g.runs[i].id, ids[i]);
    free(g.runs);
}

Test(experiment_gpt, the_shipped_spec_parses)
{
    /* tests run from the repository root or bin/ */
    const char *paths[] = { "experiments/fortunes.ini", "../experiments/fortunes.ini", "../../experiments/fortunes.ini" };
    for (size_t i = 0; i < QAT_ARRAY_LEN(paths); i++) {
        qat_experiment e;
        if (qat_experiment_load(paths[i], &e) != QAT_OK) {
            qat_error_clear();
            continue;
        }
        qat_run_spec *runs;
        int count;
        cr_assert_eq(qat_experiment_expand(&e, &runs, &count), QAT_OK);
        grid g = expand_text(SHIPPED_SPEC);
        cr_assert_eq(count, g.count);
        for (int k = 0; k < count; k++)
            cr_assert_str_eq(runs[k].id, g.runs[k].id, "experiments/fortunes.ini holds the measured settings");
        free(runs), free(g.runs);
        return;
    }
    cr_skip_test("experiments/fortunes.ini not found from the working directory");
}
