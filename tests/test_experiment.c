#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/experiment.h"
#include "qat/fileio.h"
#include "qat/ini.h"
#include "tests/test_util.h"

#define assert_error_mentions(text)                                                               \
    cr_assert(strstr(qat_error_message(), (text)), "message \"%s\" does not mention \"%s\"",      \
              qat_error_message(), (text))

/* --------------------------------------------------------------------- ini */

typedef struct ini_events {
    char text[2048];
    int calls;
    int stop_at;   /* fail on this call (1-based); 0: never */
} ini_events;

static qat_status record(void *user, const char *section, const char *key, const char *value, int line)
{
    ini_events *ev = user;
    ev->calls++;
    if (ev->stop_at == ev->calls) return qat_error_set(QAT_ERR_INVALID, "stopped at line %d", line);
    size_t n = strlen(ev->text);
    if (key)
        snprintf(ev->text + n, sizeof ev->text - n, "%d:%s:%s=<%s>\n", line, section ? section : "-", key, value);
    else
        snprintf(ev->text + n, sizeof ev->text - n, "%d:[%s]\n", line, section);
    return QAT_OK;
}

static const char *ini_ok(const char *text, ini_events *ev)
{
    memset(ev, 0, sizeof *ev);
    qat_status st = qat_ini_parse(text, strlen(text), "t.ini", record, ev);
    cr_assert_eq(st, QAT_OK, "%s", qat_error_message());
    return ev->text;
}

static void ini_fails(const char *text, const char *where, const char *what)
{
    ini_events ev = { 0 };
    qat_error_clear();
    cr_assert_eq(qat_ini_parse(text, strlen(text), "t.ini", record, &ev), QAT_ERR_INVALID, "accepted: %s", text);
    cr_assert(strncmp(qat_error_message(), where, strlen(where)) == 0, "message \"%s\" does not start with \"%s\"",
              qat_error_message(), where);
    assert_error_mentions(what);
    cr_assert_null(strchr(qat_error_message(), '\n'));
}

TestSuite(ini);

Test(ini, sections_keys_values_comments_and_line_numbers)
{
    ini_events ev;
    const char *got = ini_ok("; leading comment\n"
                             "top = 1\n"
                             "\n"
                             "  [ alpha ]   ; trailing\n"
                             "\tkey_1 =  some value \t\n"
                             "# hash comment\n"
                             "empty =\n"
                             "commented = ; nothing\n"
                             "a.b-c = x = y\n"
                             "[beta]#c\n"
                             "k=v",
                             &ev);
    cr_assert_str_eq(got, "2:-:top=<1>\n"
                          "4:[alpha]\n"
                          "5:alpha:key_1=<some value>\n"
                          "7:alpha:empty=<>\n"
                          "8:alpha:commented=<>\n"
                          "9:alpha:a.b-c=<x = y>\n"
                          "10:[beta]\n"
                          "11:beta:k=<v>\n");
}

Test(ini, comment_characters_inside_a_value_need_a_blank_before_them)
{
    ini_events ev;
    cr_assert_str_eq(ini_ok("[s]\na = x#y;z\nb = x #y\nc = x\t;y\nd = #x\n", &ev),
                     "1:[s]\n2:s:a=<x#y;z>\n3:s:b=<x>\n4:s:c=<x>\n5:s:d=<>\n");
}

Test(ini, crlf_line_ends_and_empty_text)
{
    ini_events ev;
    cr_assert_str_eq(ini_ok("[s]\r\na = 1\r\n\r\nb = 2 \r\n", &ev), "1:[s]\n2:s:a=<1>\n4:s:b=<2>\n");
    cr_assert_str_eq(ini_ok("", &ev), "");
    cr_assert_str_eq(ini_ok("\n\n  \n; only comments\n", &ev), "");
}

Test(ini, text_need_not_be_nul_terminated)
{
    const char text[] = { '[', 's', ']', '\n', 'a', '=', '1', 'X' };
    ini_events ev = { 0 };
    cr_assert_eq(qat_ini_parse(text, sizeof text - 1, "t.ini", record, &ev), QAT_OK);
    cr_assert_str_eq(ev.text, "1:[s]\n2:s:a=<1>\n");
}

Test(ini, malformed_lines_name_source_and_line)
{
    ini_fails("[s]\na = 1\njust words\n", "t.ini:3:", "'just words'");
    ini_fails("[s\n", "t.ini:1:", "'[s'");
    ini_fails("\n[s] junk\n", "t.ini:2:", "'junk'");
    ini_fails("[ ]\n", "t.ini:1:", "empty section name");
    ini_fails("[s]\n = 3\n", "t.ini:2:", "missing key");
    ini_fails("[s]\nmy key = 3\n", "t.ini:2:", "'my key'");
    ini_fails("[s]\nfoo ; a = b\n", "t.ini:2:", "bad key");
}

Test(ini, nul_byte_is_an_error)
{
    const char text[] = "[s]\na = 1\nb = \0x\n";
    ini_events ev = { 0 };
    cr_assert_eq(qat_ini_parse(text, sizeof text - 1, "t.ini", record, &ev), QAT_ERR_INVALID);
    assert_error_mentions("t.ini:3:");
    assert_error_mentions("NUL");
}

Test(ini, handler_status_stops_the_parse)
{
    ini_events ev = { .stop_at = 2 };
    const char *text = "[s]\na = 1\nb = 2\n";
    cr_assert_eq(qat_ini_parse(text, strlen(text), "t.ini", record, &ev), QAT_ERR_INVALID);
    cr_assert_eq(ev.calls, 2);
    cr_assert_str_eq(qat_error_message(), "stopped at line 2");
}

Test(ini, long_bad_line_is_shortened_in_the_message)
{
    char text[400];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    ini_events ev = { 0 };
    cr_assert_eq(qat_ini_parse(text, strlen(text), "t.ini", record, &ev), QAT_ERR_INVALID);
    assert_error_mentions("...");
    cr_assert_lt(strlen(qat_error_message()), 200);
}

/* -------------------------------------------------------------- experiment */

static const char FULL_SPEC[] = "[experiment]\n"
                                "name = fmnist-grid\n"
                                "model = cnn\n"
                                "dataset = fashion-mnist\n"
                                "seeds = 1, 2, 18446744073709551615\n"
                                "\n"
                                "[baseline]\n"
                                "epochs = 12\n"
                                "batch = 256\n"
                                "optimizer = sgd\n"
                                "lr = 0.1\n"
                                "momentum = 0.8\n"
                                "weight_decay = 1e-4\n"
                                "schedule = constant\n"
                                "warmup = 0\n"
                                "val = 1000\n"
                                "train_limit = 20000\n"
                                "\n"
                                "[ptq]\n"
                                "methods = rtn, gptq\n"
                                "observers = minmax, ema, percentile, mse\n"
                                "bits = 8/8, 4/8, fp32/4, 2/fp32\n"
                                "granularity = tensor, channel, group:64\n"
                                "calib = 8\n"
                                "\n"
                                "[qat]\n"
                                "quantizers = ste, lsq, pact\n"
                                "bits = 4/4, 2/4\n"
                                "granularity = group:32\n"
                                "epochs = 5\n"
                                "lr = 2e-4\n"
                                "calib = 4\n";

#define parse_ok(text) test_spec_parse_ok((text), "exp.ini")
#define parse_fails(text, ...) test_spec_parse_fails((text), "exp.ini", __VA_ARGS__)

static const char MINIMAL[] = "[experiment]\nname = m\nmodel = mlp\n";

/* MINIMAL with `extra` appended. */
static const char *with(const char *extra)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s%s", MINIMAL, extra);
    return buf;
}

TestSuite(experiment, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

Test(experiment, full_spec_parses_to_every_field)
{
    qat_experiment e = parse_ok(FULL_SPEC);
    cr_assert_str_eq(e.name, "fmnist-grid");
    cr_assert_str_eq(e.source, "exp.ini");
    cr_assert_eq(e.model, QAT_MODEL_CNN);
    cr_assert_str_eq(e.dataset, "fashion-mnist");
    cr_assert_eq(e.nseeds, 3);
    cr_assert_eq(e.seeds[0], 1);
    cr_assert_eq(e.seeds[1], 2);
    cr_assert_eq(e.seeds[2], UINT64_MAX);

    const qat_train_options *b = &e.baseline;
    cr_assert_eq(b->model.kind, QAT_MODEL_CNN);
    cr_assert_eq(b->epochs, 12);
    cr_assert_eq(b->batch, 256);
    cr_assert_eq(b->optim.kind, QAT_OPTIM_SGD);
    cr_assert_eq(b->optim.lr, 0.1);
    cr_assert_eq(b->optim.momentum, 0.8);
    cr_assert_eq(b->optim.weight_decay, 1e-4);
    cr_assert_eq(b->optim.schedule, QAT_SCHEDULE_CONSTANT);
    cr_assert_eq(b->optim.warmup_steps, 0);
    cr_assert_eq(b->val_count, 1000);
    cr_assert_eq(b->train_limit, 20000);
    cr_assert_null(b->out_dir);
    cr_assert_null(b->data_dir);
    cr_assert_null(b->device);

    cr_assert(e.has_ptq);
    cr_assert_eq(e.n_ptq_methods, 2);
    cr_assert(!e.ptq_gptq[0]);
    cr_assert(e.ptq_gptq[1]);
    cr_assert_eq(e.n_ptq_observers, 4);
    cr_assert_eq(e.ptq_observers[0], QAT_OBS_MINMAX);
    cr_assert_eq(e.ptq_observers[1], QAT_OBS_EMA);
    cr_assert_eq(e.ptq_observers[2], QAT_OBS_PERCENTILE);
    cr_assert_eq(e.ptq_observers[3], QAT_OBS_MSE);
    cr_assert_eq(e.n_ptq_bits, 4);
    const int pw[] = { 8, 4, 0, 2 }, pa[] = { 8, 8, 4, 0 };
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(e.ptq_bits[i].wbits, pw[i], "pair %d", i);
        cr_assert_eq(e.ptq_bits[i].abits, pa[i], "pair %d", i);
    }
    cr_assert_eq(e.n_ptq_gran, 3);
    cr_assert_eq(e.ptq_gran[0].gran, QAT_GRAN_TENSOR);
    cr_assert_eq(e.ptq_gran[1].gran, QAT_GRAN_CHANNEL);
    cr_assert_eq(e.ptq_gran[2].gran, QAT_GRAN_GROUP);
    cr_assert_eq(e.ptq_gran[2].group, 64);
    cr_assert_eq(e.ptq_calib, 8);

    cr_assert(e.has_qat);
    cr_assert_eq(e.n_qat_quantizers, 3);
    cr_assert_eq(e.qat_quantizers[0], QAT_QUANTIZER_STE);
    cr_assert_eq(e.qat_quantizers[1], QAT_QUANTIZER_LSQ);
    cr_assert_eq(e.qat_quantizers[2], QAT_QUANTIZER_PACT);
    cr_assert_eq(e.n_qat_bits, 2);
    cr_assert_eq(e.qat_bits[0].wbits, 4);
    cr_assert_eq(e.qat_bits[0].abits, 4);
    cr_assert_eq(e.qat_bits[1].wbits, 2);
    cr_assert_eq(e.qat_bits[1].abits, 4);
    cr_assert_eq(e.n_qat_gran, 1);
    cr_assert_eq(e.qat_gran[0].gran, QAT_GRAN_GROUP);
    cr_assert_eq(e.qat_gran[0].group, 32);
    cr_assert_eq(e.qat_epochs, 5);
    cr_assert_eq(e.qat_lr, 2e-4);
    cr_assert_eq(e.qat_calib, 4);
}

Test(experiment, defaults_are_those_of_the_cli)
{
    qat_experiment e = parse_ok(MINIMAL);
    cr_assert_str_eq(e.name, "m");
    cr_assert_eq(e.model, QAT_MODEL_MLP);
    cr_assert_str_eq(e.dataset, "fashion-mnist");
    cr_assert_eq(e.nseeds, 1);
    cr_assert_eq(e.seeds[0], 1);
    const qat_train_options *b = &e.baseline;
    cr_assert_eq(b->epochs, 10);
    cr_assert_eq(b->batch, 128);
    cr_assert_eq(b->optim.kind, QAT_OPTIM_ADAMW);
    cr_assert_eq(b->optim.lr, 1e-3);
    cr_assert_eq(b->optim.momentum, 0.9);
    cr_assert_eq(b->optim.weight_decay, 0.01);
    cr_assert_eq(b->optim.beta1, 0.9);
    cr_assert_eq(b->optim.beta2, 0.999);
    cr_assert_eq(b->optim.eps, 1e-8);
    cr_assert_eq(b->optim.schedule, QAT_SCHEDULE_COSINE);
    cr_assert_eq(b->optim.warmup_steps, 100);
    cr_assert_eq(b->val_count, 5000);
    cr_assert_eq(b->train_limit, 0);
    cr_assert(!e.has_ptq);
    cr_assert(!e.has_qat);
    cr_assert_eq(e.n_ptq_bits + e.n_ptq_methods + e.n_ptq_observers + e.n_ptq_gran, 0);
    cr_assert_eq(e.n_qat_bits + e.n_qat_quantizers + e.n_qat_gran, 0);
}

Test(experiment, sgd_takes_its_own_lr_and_weight_decay_defaults_wherever_the_keys_are)
{
    qat_experiment e = parse_ok(with("[baseline]\noptimizer = sgd\n"));
    cr_assert_eq(e.baseline.optim.kind, QAT_OPTIM_SGD);
    cr_assert_eq(e.baseline.optim.lr, 0.05);
    cr_assert_eq(e.baseline.optim.weight_decay, 5e-4);
    cr_assert_eq(e.baseline.optim.momentum, 0.9);
    /* An explicit lr given before the optimizer is kept. */
    e = parse_ok(with("[baseline]\nlr = 0.2\nweight_decay = 0\noptimizer = sgd\n"));
    cr_assert_eq(e.baseline.optim.lr, 0.2);
    cr_assert_eq(e.baseline.optim.weight_decay, 0.0);
}

Test(experiment, ptq_and_qat_sections_with_bits_only_take_defaults)
{
    qat_experiment e = parse_ok(with("[ptq]\nbits = 4/8\n[qat]\nbits = 4/4\n"));
    cr_assert(e.has_ptq);
    cr_assert_eq(e.n_ptq_methods, 1);
    cr_assert(!e.ptq_gptq[0]);
    cr_assert_eq(e.n_ptq_observers, 1);
    cr_assert_eq(e.ptq_observers[0], QAT_OBS_MINMAX);
    cr_assert_eq(e.n_ptq_gran, 1);
    cr_assert_eq(e.ptq_gran[0].gran, QAT_GRAN_CHANNEL);
    cr_assert_eq(e.ptq_calib, 32);
    cr_assert(e.has_qat);
    cr_assert_eq(e.n_qat_quantizers, 1);
    cr_assert_eq(e.qat_quantizers[0], QAT_QUANTIZER_LSQ);
    cr_assert_eq(e.n_qat_gran, 1);
    cr_assert_eq(e.qat_gran[0].gran, QAT_GRAN_CHANNEL);
    cr_assert_eq(e.qat_epochs, 3);
    cr_assert_eq(e.qat_lr, 1e-4);
    cr_assert_eq(e.qat_calib, 32);
}

Test(experiment, lists_take_blanks_and_bit_pairs_take_blanks_around_the_slash)
{
    qat_experiment e = parse_ok(with("[ptq]\nbits =8/8,4 / 8 ,\tfp32/fp32\ngranularity=group:128\n"));
    cr_assert_eq(e.n_ptq_bits, 3);
    cr_assert_eq(e.ptq_bits[1].wbits, 4);
    cr_assert_eq(e.ptq_bits[1].abits, 8);
    cr_assert_eq(e.ptq_bits[2].wbits, 0);
    cr_assert_eq(e.ptq_bits[2].abits, 0);
    cr_assert_eq(e.ptq_gran[0].group, 128);
}

Test(experiment, structural_errors_name_file_line_and_text)
{
    parse_fails(with("[baseline]\nepoch = 3\n"), "exp.ini:5:", "unknown key 'epoch'", "[baseline]",
                "known: epochs, batch, optimizer", NULL);
    parse_fails(with("\n[qlora]\nrank = 4\n"), "exp.ini:5:", "unknown section [qlora]", "known: experiment",
                NULL);
    parse_fails(with("[baseline]\nlr = 1e-3\nbatch = 64\nlr = 1e-2\n"), "exp.ini:7:", "repeated key 'lr'",
                "[baseline]", "line 5", NULL);
    parse_fails(with("[ptq]\nbits = 4/4\n[ptq]\n"), "exp.ini:6:", "repeated section [ptq]", "line 4", NULL);
    parse_fails("name = x\n[experiment]\n", "exp.ini:1:", "'name'", "before any [section]", NULL);
    parse_fails(with("[baseline]\nepochs 10\n"), "exp.ini:5:", "'epochs 10'", NULL);
    parse_fails(with("[baseline\n"), "exp.ini:4:", "'[baseline'", NULL);
}

Test(experiment, bad_values_name_section_key_and_value)
{
    struct { const char *extra, *where, *what; } cases[] = {
        { "[ptq]\nbits = 8/8, 9/8\n", "exp.ini:5: [ptq] bits: '9/8': ", "weight bits must be 2..8 or fp32" },
        { "[ptq]\nbits = 4/1\n", "exp.ini:5: [ptq] bits: '4/1': ", "activation bits must be 2..8 or fp32" },
        { "[qat]\nbits = 4\n", "exp.ini:5: [qat] bits: '4': ", "W/A" },
        { "[qat]\nbits = 4/4/4\n", "exp.ini:5: [qat] bits: '4/4/4': ", "W/A" },
        { "[qat]\nbits = 4/4\ngranularity = group:0\n", "exp.ini:6: [qat] granularity: 'group:0': ",
          "tensor, channel or group:G" },
        { "[ptq]\nbits = 4/4\nobservers = minmax, max\n", "exp.ini:6: [ptq] observers: 'max': ",
          "minmax, ema, percentile or mse" },
        { "[ptq]\nmethods = awq\n", "exp.ini:5: [ptq] methods: 'awq': ", "rtn or gptq" },
        { "[qat]\nquantizers = lsq, dorefa\n", "exp.ini:5: [qat] quantizers: 'dorefa': ", "ste, lsq or pact" },
        { "[baseline]\noptimizer = adam\n", "exp.ini:5: [baseline] optimizer: 'adam': ", "adamw or sgd" },
        { "[baseline]\nschedule = step\n", "exp.ini:5: [baseline] schedule: 'step': ", "cosine or constant" },
        { "[baseline]\nepochs = 0\n", "exp.ini:5: [baseline] epochs: '0': ", "1..100000" },
        { "[baseline]\nepochs = 10x\n", "exp.ini:5: [baseline] epochs: '10x': ", "integer" },
        { "[baseline]\nepochs = 1.5\n", "exp.ini:5: [baseline] epochs: '1.5': ", "integer" },
        { "[baseline]\nepochs =\n", "exp.ini:5: [baseline] epochs: '': ", "integer" },
        { "[baseline]\nbatch = 65537\n", "exp.ini:5: [baseline] batch: '65537': ", "1..65536" },
        { "[baseline]\nbatch = 99999999999999999999\n", "exp.ini:5: [baseline] batch: ", "integer" },
        { "[baseline]\nlr = 0\n", "exp.ini:5: [baseline] lr: '0': ", "(0, 100]" },
        { "[baseline]\nlr = 100.5\n", "exp.ini:5: [baseline] lr: '100.5': ", "(0, 100]" },
        { "[baseline]\nlr = fast\n", "exp.ini:5: [baseline] lr: 'fast': ", "number" },
        { "[baseline]\nlr = nan\n", "exp.ini:5: [baseline] lr: 'nan': ", "number" },
        { "[baseline]\nlr = 1e-3x\n", "exp.ini:5: [baseline] lr: '1e-3x': ", "number" },
        { "[baseline]\nweight_decay = -0.1\n", "exp.ini:5: [baseline] weight_decay: '-0.1': ", "[0, 10]" },
        { "[baseline]\nmomentum = 1\n", "exp.ini:5: [baseline] momentum: '1': ", "[0, 0.999999]" },
        { "[baseline]\nwarmup = -1\n", "exp.ini:5: [baseline] warmup: '-1': ", "0..100000000" },
        { "[baseline]\nval = 59001\n", "exp.ini:5: [baseline] val: '59001': ", "0..59000" },
        { "[baseline]\ntrain_limit = 60001\n", "exp.ini:5: [baseline] train_limit: '60001': ", "0..60000" },
        { "[ptq]\nbits = 4/4\ncalib = 0\n", "exp.ini:6: [ptq] calib: '0': ", "1..100000" },
        { "[qat]\nbits = 4/4\nepochs = 100001\n", "exp.ini:6: [qat] epochs: '100001': ", "1..100000" },
        { "[qat]\nbits = 4/4\nlr = -1e-4\n", "exp.ini:6: [qat] lr: '-1e-4': ", "(0, 100]" },
        { "[qat]\nbits = 4/4\ncalib = 100001\n", "exp.ini:6: [qat] calib: '100001': ", "1..100000" },
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++)
        parse_fails(with(cases[i].extra), cases[i].where, cases[i].what, NULL);
}

Test(experiment, bad_experiment_values)
{
    parse_fails("[experiment]\nname = my exp\nmodel = mlp\n", "exp.ini:2: [experiment] name: 'my exp': ",
                "A-Z a-z 0-9 . _ -", NULL);
    parse_fails("[experiment]\nname = ..\nmodel = mlp\n", "exp.ini:2: [experiment] name: '..': ", NULL);
    parse_fails("[experiment]\nname = a/b\nmodel = mlp\n", "exp.ini:2: [experiment] name: 'a/b': ", NULL);
    parse_fails("[experiment]\nname =\nmodel = mlp\n", "exp.ini:2: [experiment] name: '': ", NULL);
    char long_name[128] = "[experiment]\nmodel = mlp\nname = ";
    memset(long_name + strlen(long_name), 'n', 64);
    parse_fails(long_name, "exp.ini:3: [experiment] name: 'nnnn", "1..63", NULL);
    parse_fails("[experiment]\nname = x\nmodel = resnet\n", "exp.ini:3: [experiment] model: 'resnet': ",
                "mlp or cnn", NULL);
    parse_fails("[experiment]\nname = x\nmodel = mlp\ndataset = mnist\n", "exp.ini:4: [experiment] dataset: 'mnist': ",
                "fashion-mnist", NULL);
    parse_fails(with("seeds = 1,,2\n"), "exp.ini:4: [experiment] seeds: '1,,2': ", "empty entry", NULL);
    parse_fails(with("seeds = 1, 2,\n"), "exp.ini:4: [experiment] seeds: '1, 2,': ", "empty entry", NULL);
    parse_fails(with("seeds =\n"), "exp.ini:4: [experiment] seeds: '': ", "list", NULL);
    parse_fails(with("seeds = -1\n"), "exp.ini:4: [experiment] seeds: '-1': ", "unsigned 64-bit", NULL);
    parse_fails(with("seeds = 18446744073709551616\n"), "exp.ini:4: [experiment] seeds: '18446744073709551616': ",
                "unsigned 64-bit", NULL);
    parse_fails(with("seeds = 0x10\n"), "exp.ini:4: [experiment] seeds: '0x10': ", NULL);
}

Test(experiment, duplicates_and_overlong_lists)
{
    parse_fails(with("seeds = 3, 1, 3\n"), "exp.ini:4: [experiment] seeds: '3': ", "twice", NULL);
    parse_fails(with("[ptq]\nbits = 4/8, 8/8, 4 / 8\n"), "exp.ini:5: [ptq] bits: '4 / 8': ", "twice", NULL);
    parse_fails(with("[ptq]\nbits = 4/4\ngranularity = group:64, channel, group:64\n"),
                "exp.ini:6: [ptq] granularity: 'group:64': ", "twice", NULL);
    parse_fails(with("[ptq]\nbits = 4/4\nmethods = gptq, gptq\n"), "exp.ini:6: [ptq] methods: 'gptq': ", "twice",
                NULL);
    parse_fails(with("[qat]\nbits = 4/4\nquantizers = ste, lsq, ste\n"), "exp.ini:6: [qat] quantizers: 'ste': ",
                "twice", NULL);
    char buf[512] = "seeds = 1";
    for (int i = 2; i <= QAT_EXP_MAX_SEEDS + 1; i++) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ", %d", i);
    strcat(buf, "\n");
    parse_fails(with(buf), "exp.ini:4: [experiment] seeds: ", "more than 16 entries", NULL);
    /* 17 distinct pairs: 2..8 x {2..8} has 49 of them. */
    strcpy(buf, "[ptq]\nbits = ");
    for (int i = 0; i <= QAT_EXP_MAX_LIST; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%d/%d", i ? ", " : "", 2 + i / 7, 2 + i % 7);
    strcat(buf, "\n");
    parse_fails(with(buf), "exp.ini:5: [ptq] bits: ", "more than 16 entries", NULL);
    /* Exactly 16 is fine. */
    strcpy(buf, "seeds = 1");
    for (int i = 2; i <= QAT_EXP_MAX_SEEDS; i++) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ", %d", i);
    strcat(buf, "\n");
    cr_assert_eq(parse_ok(with(buf)).nseeds, QAT_EXP_MAX_SEEDS);
}

Test(experiment, missing_required_keys_name_file_and_section)
{
    parse_fails("[experiment]\nmodel = mlp\n", "exp.ini:1: [experiment]", "'name'", NULL);
    parse_fails("[experiment]\nname = x\n", "exp.ini:1: [experiment]", "'model'", NULL);
    parse_fails("; nothing\n[baseline]\nepochs = 2\n", "exp.ini: no [experiment] section", "'name'", NULL);
    parse_fails("", "exp.ini: no [experiment] section", NULL);
    parse_fails(with("\n[ptq]\nmethods = gptq\n"), "exp.ini:5: [ptq]", "'bits'", NULL);
    parse_fails(with("[qat]\n"), "exp.ini:4: [qat]", "'bits'", NULL);
}

Test(experiment, load_reads_the_file_and_names_it_in_errors)
{
    const char *path = test_tmp_path("grid.ini");
    cr_assert_eq(qat_file_write_atomic(path, FULL_SPEC, strlen(FULL_SPEC)), QAT_OK);
    qat_experiment e;
    cr_assert_eq(qat_experiment_load(path, &e), QAT_OK, "%s", qat_error_message());
    cr_assert_str_eq(e.source, path);
    cr_assert_eq(e.nseeds, 3);

    const char *bad = "[experiment]\nname = x\nmodel = vgg\n";
    cr_assert_eq(qat_file_write_atomic(path, bad, strlen(bad)), QAT_OK);
    cr_assert_eq(qat_experiment_load(path, &e), QAT_ERR_INVALID);
    char where[256];
    snprintf(where, sizeof where, "%s:3: [experiment] model: 'vgg'", path);
    assert_error_mentions(where);

    const char *missing = test_tmp_path("missing.ini");
    cr_assert_neq(qat_experiment_load(missing, &e), QAT_OK);
    assert_error_mentions(missing);
}

/* ------------------------------------------------------------------ the grid */

static const char GRID_SPEC[] = "[experiment]\n"
                                "name = grid\n"
                                "model = mlp\n"
                                "seeds = 7, 3\n"
                                "[ptq]\n"
                                "methods = rtn, gptq\n"
                                "bits = 8/8, 4/8, fp32/4\n"
                                "[qat]\n"
                                "quantizers = ste, pact\n"
                                "bits = 8/8, 4/8, fp32/4\n"
                                "granularity = group:64\n";

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

static bool has_id(const grid *g, const char *id)
{
    for (int i = 0; i < g->count; i++)
        if (strcmp(g->runs[i].id, id) == 0) return true;
    return false;
}

/* The id without its hash. */
static void id_prefix(const qat_run_spec *r, char *out, size_t size)
{
    snprintf(out, size, "%s", r->id);
    char *dash = strrchr(out, '-');
    cr_assert_not_null(dash);
    cr_assert_eq(strlen(dash + 1), 8, "hash of %s", r->id);
    cr_assert_eq(strspn(dash + 1, "0123456789abcdef"), 8, "hash of %s", r->id);
    *dash = '\0';
}

Test(experiment, grid_counts_and_order)
{
    grid g = expand_text(GRID_SPEC);
    /* 2 baselines + per seed (2 methods x 3 pairs PTQ + 2 quantizers x 3 pairs QAT). */
    cr_assert_eq(g.count, 2 + 2 * (6 + 6));
    const char *expected[] = {
        "baseline-fp32-s7",
        "baseline-fp32-s3",
        "ptq-rtn-w8a8-channel-s7",
        "ptq-rtn-w4a8-channel-s7",
        "ptq-rtn-w32a4-channel-s7",
        "ptq-gptq-w8a8-channel-s7",
        "ptq-gptq-w4a8-channel-s7",
        "ptq-gptq-w32a4-channel-s7",
        "qat-ste-w8a8-g64-s7",
        "qat-ste-w4a8-g64-s7",
        "qat-ste-w32a4-g64-s7",
        "qat-pact-w8a8-g64-s7",
        "qat-pact-w4a8-g64-s7",
        "qat-pact-w32a4-g64-s7",
        "ptq-rtn-w8a8-channel-s3",
        "ptq-rtn-w4a8-channel-s3",
        "ptq-rtn-w32a4-channel-s3",
        "ptq-gptq-w8a8-channel-s3",
        "ptq-gptq-w4a8-channel-s3",
        "ptq-gptq-w32a4-channel-s3",
        "qat-ste-w8a8-g64-s3",
        "qat-ste-w4a8-g64-s3",
        "qat-ste-w32a4-g64-s3",
        "qat-pact-w8a8-g64-s3",
        "qat-pact-w4a8-g64-s3",
        "qat-pact-w32a4-g64-s3",
    };
    for (int i = 0; i < g.count; i++) {
        char prefix[QAT_RUN_ID_MAX];
        id_prefix(&g.runs[i], prefix, sizeof prefix);
        cr_assert_str_eq(prefix, expected[i], "run %d", i);
    }
    for (int i = 0; i < g.count; i++) {
        const qat_run_spec *r = &g.runs[i];
        uint64_t seed = r->seed;
        cr_assert(seed == 7 || seed == 3);
        const qat_run_spec *base = &g.runs[seed == 7 ? 0 : 1];
        if (r->kind == QAT_RUN_BASELINE) {
            cr_assert_str_eq(r->baseline_id, "");
            cr_assert_str_eq(qat_run_algorithm(r), "fp32");
            continue;
        }
        cr_assert_str_eq(r->baseline_id, base->id, "run %s", r->id);
        const char *pairs[3][2] = { { "8", "8" }, { "4", "8" }, { "fp32", "4" } };
        int k = (i - 2) % 3;
        cr_assert_eq(r->wbits, k == 0 ? 8 : k == 1 ? 4 : 0);
        cr_assert_eq(r->abits, k == 2 ? 4 : 8);
        char line[64];
        snprintf(line, sizeof line, "\nwbits=%s\n", pairs[k][0]);
        cr_assert(strstr(r->settings, line), "%s", r->settings);
        snprintf(line, sizeof line, "abits=%s\n", pairs[k][1]);
        cr_assert(strncmp(r->settings, line, strlen(line)) == 0, "%s", r->settings); /* sorts first */
        if (r->kind == QAT_RUN_PTQ) {
            cr_assert_eq(r->gran, QAT_GRAN_CHANNEL);
            cr_assert_eq(r->observer, QAT_OBS_MINMAX);
            cr_assert_eq(r->calib, 32);
            cr_assert_str_eq(qat_run_algorithm(r), r->gptq ? "gptq" : "rtn");
        } else {
            cr_assert_eq(r->kind, QAT_RUN_QAT);
            cr_assert_eq(r->gran, QAT_GRAN_GROUP);
            cr_assert_eq(r->group, 64);
            cr_assert_eq(r->observer, QAT_OBS_MINMAX);
            cr_assert_eq(r->epochs, 3);
            cr_assert_eq(r->lr, 1e-4);
            cr_assert_eq(r->calib, 32);
            cr_assert_str_eq(qat_run_algorithm(r), qat_quantizer_name(r->quantizer));
        }
    }
    for (int i = 0; i < g.count; i++)
        for (int j = 0; j < i; j++) cr_assert_str_neq(g.runs[i].id, g.runs[j].id);
    free(g.runs);
}

Test(experiment, grid_without_ptq_or_qat_is_the_baselines)
{
    grid g = expand_text(with("seeds = 5, 6, 9\n"));
    cr_assert_eq(g.count, 3);
    for (int i = 0; i < 3; i++) cr_assert_eq(g.runs[i].kind, QAT_RUN_BASELINE);
    cr_assert_eq(g.runs[2].seed, 9);
    free(g.runs);
}

Test(experiment, settings_are_sorted_canonical_lines)
{
    grid g = expand_text(FULL_SPEC);
    /* 3 seeds x (1 + 2*4*4*3 PTQ + 3*2*1 QAT) */
    cr_assert_eq(g.count, 3 * (1 + 96 + 6));
    for (int i = 0; i < g.count; i++) {
        const char *s = g.runs[i].settings;
        cr_assert_eq(s[strlen(s) - 1], '\n');
        char prev[160] = "";
        for (const char *p = s; *p;) {
            const char *nl = strchr(p, '\n');
            char cur[160];
            snprintf(cur, sizeof cur, "%.*s", (int)(nl - p), p);
            cr_assert_not_null(strchr(cur, '='), "%s", cur);
            cr_assert_lt(strcmp(prev, cur), 0, "unsorted: %s before %s", prev, cur);
            snprintf(prev, sizeof prev, "%s", cur);
            p = nl + 1;
        }
    }
    cr_assert_str_eq(g.runs[0].settings, "baseline.batch=256\n"
                                         "baseline.beta1=0.90000000000000002\n"
                                         "baseline.beta2=0.999\n"
                                         "baseline.epochs=12\n"
                                         "baseline.eps=1e-08\n"
                                         "baseline.lr=0.10000000000000001\n"
                                         "baseline.momentum=0.80000000000000004\n"
                                         "baseline.optimizer=sgd\n"
                                         "baseline.schedule=constant\n"
                                         "baseline.train_limit=20000\n"
                                         "baseline.val=1000\n"
                                         "baseline.warmup=0\n"
                                         "baseline.weight_decay=0.0001\n"
                                         "dataset=fashion-mnist\n"
                                         "kind=baseline\n"
                                         "model=cnn\n"
                                         "seed=1\n");
    const qat_run_spec *gptq_g64 = NULL, *pact = NULL;
    for (int i = 0; i < g.count; i++) {
        const qat_run_spec *r = &g.runs[i];
        if (r->seed == UINT64_MAX && r->kind == QAT_RUN_PTQ && r->gptq && r->observer == QAT_OBS_MSE &&
            r->wbits == 0 && r->gran == QAT_GRAN_GROUP)
            gptq_g64 = r;
        if (r->seed == 2 && r->kind == QAT_RUN_QAT && r->quantizer == QAT_QUANTIZER_PACT && r->wbits == 2)
            pact = r;
    }
    cr_assert_not_null(gptq_g64);
    cr_assert_not_null(pact);
    const char *tail = strstr(gptq_g64->settings, "calib=");
    cr_assert_not_null(tail);
    cr_assert_str_eq(tail, "calib=8\n"
                           "dataset=fashion-mnist\n"
                           "granularity=group:64\n"
                           "kind=ptq\n"
                           "method=gptq\n"
                           "model=cnn\n"
                           "observer=mse\n"
                           "seed=18446744073709551615\n"
                           "wbits=fp32\n");
    cr_assert(strncmp(gptq_g64->id, "ptq-gptq-w32a4-g64-s18446744073709551615-", 41) == 0, "%s", gptq_g64->id);
    tail = strstr(pact->settings, "calib=");
    cr_assert_not_null(tail);
    cr_assert_str_eq(tail, "calib=4\n"
                           "dataset=fashion-mnist\n"
                           "epochs=5\n"
                           "granularity=group:32\n"
                           "kind=qat\n"
                           "lr=0.00020000000000000001\n"
                           "model=cnn\n"
                           "observer=minmax\n"
                           "quantizer=pact\n"
                           "seed=2\n"
                           "wbits=2\n");
    cr_assert(strncmp(pact->settings, "abits=4\nbaseline.batch=256\n", 27) == 0, "%s", pact->settings);
    free(g.runs);
}

/* Every id of a grid, in order, joined by newlines. */
static char *ids_of(const char *text)
{
    grid g = expand_text(text);
    qat_strbuf sb = { 0 };
    for (int i = 0; i < g.count; i++) qat_strbuf_printf(&sb, "%s\n", g.runs[i].id);
    free(g.runs);
    return sb.data;
}

Test(experiment, ids_are_stable_across_parses_layout_order_and_comments)
{
    char *a = ids_of(GRID_SPEC);
    char *b = ids_of(GRID_SPEC);
    cr_assert_str_eq(a, b);
    const char *shuffled = "# the same grid, written differently\n"
                           "[qat]\n"
                           "granularity=group:64   ; one\n"
                           "bits =8/8 ,4/8,   fp32/4\n"
                           "quantizers = ste,pact\n"
                           "\n"
                           "[baseline]\n"
                           "lr = 0.001\n"
                           "epochs = 10\n"
                           "\n"
                           "  [ptq]  \n"
                           "\tbits = 8/8, 4/8, fp32/4 # three pairs\n"
                           "methods=rtn,gptq\n"
                           "observers = minmax\n"
                           "calib = 32\n"
                           "[experiment]\n"
                           "seeds = 7 , 3\n"
                           "dataset = fashion-mnist\n"
                           "model = mlp\n"
                           "name = grid\n";
    char *c = ids_of(shuffled);
    cr_assert_str_eq(a, c);
    /* The name is not a setting of any run: the same runs under another name. */
    char renamed[sizeof GRID_SPEC + 16];
    snprintf(renamed, sizeof renamed, "%s", GRID_SPEC);
    memcpy(strstr(renamed, "name = grid"), "name = gri2", 11);
    char *d = ids_of(renamed);
    cr_assert_str_eq(a, d);
    free(a);
    free(b);
    free(c);
    free(d);
}

static void assert_every_id_changes(const char *extra_baseline)
{
    char text[4096];
    snprintf(text, sizeof text, "%s[baseline]\n%s", GRID_SPEC, extra_baseline);
    grid a = expand_text(GRID_SPEC), b = expand_text(text);
    cr_assert_eq(a.count, b.count);
    for (int i = 0; i < a.count; i++) {
        char pa[QAT_RUN_ID_MAX], pb[QAT_RUN_ID_MAX];
        id_prefix(&a.runs[i], pa, sizeof pa);
        id_prefix(&b.runs[i], pb, sizeof pb);
        cr_assert_str_eq(pa, pb);
        cr_assert_str_neq(a.runs[i].id, b.runs[i].id, "%s unchanged by %s", a.runs[i].id, extra_baseline);
        cr_assert(!has_id(&a, b.runs[i].id));
    }
    free(a.runs);
    free(b.runs);
}

Test(experiment, changing_the_baseline_changes_every_id)
{
    assert_every_id_changes("lr = 0.002\n");
    assert_every_id_changes("epochs = 11\n");
    assert_every_id_changes("val = 4000\n");
    /* Explicit defaults change nothing. */
    char text[4096];
    snprintf(text, sizeof text, "%s[baseline]\nlr = 1e-3\nepochs = 10\nweight_decay = 0.01\nwarmup = 100\n",
             GRID_SPEC);
    char *a = ids_of(GRID_SPEC), *b = ids_of(text);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
}

Test(experiment, adding_a_ptq_observer_only_adds_ids)
{
    grid a = expand_text(GRID_SPEC);
    char text[4096];
    snprintf(text, sizeof text, "%s", GRID_SPEC);
    char *at = strstr(text, "[qat]");
    memmove(at + strlen("observers = minmax, percentile\n"), at, strlen(at) + 1);
    memcpy(at, "observers = minmax, percentile\n", strlen("observers = minmax, percentile\n"));
    grid b = expand_text(text);
    cr_assert_eq(b.count, a.count + 2 * 6);
    for (int i = 0; i < a.count; i++) cr_assert(has_id(&b, a.runs[i].id), "%s is gone", a.runs[i].id);
    int fresh = 0;
    for (int i = 0; i < b.count; i++) fresh += !has_id(&a, b.runs[i].id);
    cr_assert_eq(fresh, 12);
    free(a.runs);
    free(b.runs);
}

Test(experiment, qat_settings_change_only_qat_ids)
{
    char text[4096];
    snprintf(text, sizeof text, "%s", GRID_SPEC);
    strcat(text, "epochs = 4\n"); /* the [qat] section is last */
    grid a = expand_text(GRID_SPEC), b = expand_text(text);
    cr_assert_eq(a.count, b.count);
    for (int i = 0; i < a.count; i++) {
        if (a.runs[i].kind == QAT_RUN_QAT) cr_assert_str_neq(a.runs[i].id, b.runs[i].id);
        else cr_assert_str_eq(a.runs[i].id, b.runs[i].id);
    }
    free(a.runs);
    free(b.runs);
}

Test(experiment, ids_are_unique_in_a_large_grid)
{
    grid g = expand_text(FULL_SPEC);
    for (int i = 0; i < g.count; i++) {
        cr_assert_lt(strlen(g.runs[i].id), QAT_RUN_ID_MAX);
        for (int j = 0; j < i; j++) cr_assert_str_neq(g.runs[i].id, g.runs[j].id);
    }
    free(g.runs);
}

/* The id scheme is a contract with results already on disk: this fails when
 * anything in it changes by accident (settings text, hash, prefix). */
Test(experiment, pinned_ids)
{
    grid g = expand_text("[experiment]\nname = pin\nmodel = mlp\n[ptq]\nmethods = gptq\nbits = 4/8\n"
                         "[qat]\nquantizers = lsq\nbits = 4/4\ngranularity = tensor\n");
    cr_assert_eq(g.count, 3);
    cr_assert_str_eq(g.runs[0].id, "baseline-fp32-s1-8a38c0ba");
    cr_assert_str_eq(g.runs[1].id, "ptq-gptq-w4a8-channel-s1-24b89c13");
    cr_assert_str_eq(g.runs[2].id, "qat-lsq-w4a4-tensor-s1-880c186d");
    free(g.runs);
}

/* The hash is the top 32 bits of FNV-1a 64 of the settings text. */
Test(experiment, id_hash_is_fnv1a64_of_the_settings)
{
    grid g = expand_text(FULL_SPEC);
    for (int i = 0; i < g.count; i++) {
        uint64_t h = 14695981039346656037ull;
        for (const char *p = g.runs[i].settings; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
        char hex[16];
        snprintf(hex, sizeof hex, "%08" PRIx32, (uint32_t)(h >> 32));
        const char *id = g.runs[i].id;
        cr_assert_str_eq(id + strlen(id) - 8, hex, "%s", id);
    }
    free(g.runs);
}
