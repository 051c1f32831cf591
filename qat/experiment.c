/* Experiment specs: parsing (through qat/ini.h) and grid expansion. */
#include "qat/experiment.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/fortunes.h"
#include "qat/fileio.h"
#include "qat/ini.h"

/* ------------------------------------------------------------------ parsing */

static uint64_t fnv1a64_text(const char *s) { return qat_fnv1a64(s, strlen(s)); }

#define MAX_SECTION_KEYS 24

typedef struct parse_state parse_state;
typedef qat_status (*key_fn)(parse_state *ps, const char *value);

/* Which models a section or key is for (0: every model). */
enum { FOR_IMAGE = 1, FOR_GPT = 2 };

typedef struct key_def {
    const char *name;
    key_fn parse;
    bool required;          /* when the section is present (or itself required) */
    const char *example;    /* shown when a required key is missing */
    unsigned models;
} key_def;

typedef struct section_def {
    const char *name;
    const key_def *keys;    /* NULL-terminated */
    bool required;
    void (*begin)(parse_state *ps); /* at its header: presence flag, defaults */
    unsigned models;
} section_def;

struct parse_state {
    qat_experiment *e;
    const char *source;
    int cur;                                  /* index into sections, -1 before any */
    const char *section;                      /* its name (for messages) */
    const char *key;                          /* the key being parsed (for messages) */
    int line;
    int section_line[8];                      /* 0: absent */
    int key_line[8][MAX_SECTION_KEYS];        /* 0: not given */
    bool model_given;                         /* [experiment] model parsed so far */
    /* [baseline] optimizer settings, resolved at the end: the defaults of lr
     * and weight_decay depend on the optimizer. */
    qat_optim_kind optim;
    double lr, momentum, weight_decay;
    bool have_lr, have_momentum, have_weight_decay;
    qat_schedule_kind schedule;
    int warmup;
    /* [baseline] of the gpt, stored in e->baseline only for the gpt. */
    qat_gpt_config gpt;
    int steps, eval_every, val_permille;
};

/* Quoted text in messages: at most 80 characters. */
static const char *excerpt(const char *s, char *buf, size_t size)
{
    size_t n = strlen(s);
    size_t keep = size - 4 < 80 ? size - 4 : 80;
    if (n <= keep) return s;
    memcpy(buf, s, keep);
    memcpy(buf + keep, "...", 4);
    return buf;
}

/* "SOURCE:LINE: [SECTION] KEY: 'ITEM': MESSAGE" */
__attribute__((format(printf, 3, 4))) static qat_status bad_value(parse_state *ps, const char *item, const char *fmt,
                                                                   ...)
{
    char msg[512], ex[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qat_error_set(QAT_ERR_INVALID, "%s:%d: [%s] %s: '%s': %s", ps->source, ps->line,
                         ps->section, ps->key, excerpt(item, ex, sizeof ex), msg);
}

static bool parse_long(const char *s, long *out)
{
    if (!((*s >= '0' && *s <= '9') || ((*s == '-' || *s == '+') && s[1] >= '0' && s[1] <= '9'))) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!(*s >= '0' && *s <= '9')) return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = (uint64_t)v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (!*s || *s == ' ' || *s == '\t') return false;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v)) return false;
    *out = v;
    return true;
}

static qat_status int_value(parse_state *ps, const char *v, long lo, long hi, int *out)
{
    long x;
    if (!parse_long(v, &x)) return bad_value(ps, v, "expected an integer in %ld..%ld", lo, hi);
    if (x < lo || x > hi) return bad_value(ps, v, "must be in %ld..%ld", lo, hi);
    *out = (int)x;
    return QAT_OK;
}

/* A double in (lo, hi] when lo_open, else [lo, hi]. */
static qat_status double_value(parse_state *ps, const char *v, double lo, bool lo_open, double hi, double *out)
{
    double x;
    if (!parse_double(v, &x))
        return bad_value(ps, v, "expected a number in %s%g, %g]", lo_open ? "(" : "[", lo, hi);
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
        return bad_value(ps, v, "must be in %s%g, %g]", lo_open ? "(" : "[", lo, hi);
    *out = x;
    return QAT_OK;
}

/* Lists: comma-separated, blanks around entries ignored, no empty entries,
 * at most `max`, no entry twice. The item parser stores entry `index` and
 * sets *code, equal for equal entries. */
typedef qat_status (*item_fn)(parse_state *ps, const char *item, int index, uint64_t *code);

static qat_status list_value(parse_state *ps, const char *value, int max, item_fn fn, int *count)
{
    char *copy = qat_xstrdup(value);
    char *items[QAT_EXP_MAX_LIST > QAT_EXP_MAX_SEEDS ? QAT_EXP_MAX_LIST : QAT_EXP_MAX_SEEDS];
    uint64_t codes[QAT_ARRAY_LEN(items)];
    QAT_ASSERT(max <= (int)QAT_ARRAY_LEN(items));
    qat_status st = QAT_OK;
    int n = 0;
    for (char *p = copy;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        while (*p == ' ' || *p == '\t') p++;
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) p[--len] = '\0';
        if (!*p) {
            st = bad_value(ps, value, *value ? "empty entry in the list" : "expected a comma-separated list");
            goto done;
        }
        if (n == max) {
            st = bad_value(ps, value, "more than %d entries", max);
            goto done;
        }
        items[n++] = p;
        if (!comma) break;
        p = comma + 1;
    }
    for (int i = 0; i < n; i++) {
        if ((st = fn(ps, items[i], i, &codes[i])) != QAT_OK) goto done;
        for (int j = 0; j < i; j++)
            if (codes[j] == codes[i]) {
                if (strcmp(items[j], items[i]) == 0) st = bad_value(ps, items[i], "listed twice");
                else st = bad_value(ps, items[i], "listed twice (also as '%s')", items[j]);
                goto done;
            }
    }
    *count = n;
done:
    free(copy);
    return st;
}

/* "a, b or c" from a name function over 0..n-1. */
static void name_choices(const char *(*name)(int), int n, char *out, size_t size)
{
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ", name(i));
}

static const char *model_name_i(int i) { return qat_model_name((qat_model_kind)i); }
static const char *observer_name_i(int i) { return qat_observer_name((qat_observer_kind)i); }
static const char *quantizer_name_i(int i) { return qat_quantizer_name((qat_quantizer_kind)i); }

/* --- items */

static qat_status item_seed(parse_state *ps, const char *item, int index, uint64_t *code)
{
    if (!parse_u64(item, &ps->e->seeds[index]))
        return bad_value(ps, item, "expected an unsigned 64-bit integer");
    *code = ps->e->seeds[index];
    return QAT_OK;
}

static qat_status bits_item(parse_state *ps, const char *item, qat_bits_pair *out, uint64_t *code)
{
    const char *slash = strchr(item, '/');
    if (!slash || strchr(slash + 1, '/')) return bad_value(ps, item, "expected W/A bits, e.g. 4/8");
    char w[32], a[32];
    const char *ws = item, *we = slash, *as = slash + 1, *ae = item + strlen(item);
    while (we > ws && (we[-1] == ' ' || we[-1] == '\t')) we--;
    while (*as == ' ' || *as == '\t') as++;
    bool w_ok = (size_t)(we - ws) < sizeof w;
    if (w_ok) {
        memcpy(w, ws, (size_t)(we - ws));
        w[we - ws] = '\0';
        w_ok = qat_bits_parse(w, &out->wbits);
    }
    if (!w_ok) return bad_value(ps, item, "weight bits must be %d..%d or fp32", QAT_QBITS_MIN, QAT_QBITS_MAX);
    if ((size_t)(ae - as) >= sizeof a)
        return bad_value(ps, item, "activation bits must be %d..%d or fp32", QAT_QBITS_MIN, QAT_QBITS_MAX);
    memcpy(a, as, (size_t)(ae - as));
    a[ae - as] = '\0';
    if (!qat_bits_parse(a, &out->abits))
        return bad_value(ps, item, "activation bits must be %d..%d or fp32", QAT_QBITS_MIN, QAT_QBITS_MAX);
    *code = (uint64_t)out->wbits << 8 | (uint64_t)out->abits;
    return QAT_OK;
}

static qat_status gran_item(parse_state *ps, const char *item, qat_gran_choice *out, uint64_t *code)
{
    if (!qat_granularity_parse(item, &out->gran, &out->group))
        return bad_value(ps, item, "expected tensor, channel or group:G (G in 1..65536)");
    *code = (uint64_t)out->gran << 32 | (uint64_t)out->group;
    return QAT_OK;
}

static qat_status item_method(parse_state *ps, const char *item, int index, uint64_t *code)
{
    if (strcmp(item, "rtn") == 0) ps->e->ptq_gptq[index] = false;
    else if (strcmp(item, "gptq") == 0) ps->e->ptq_gptq[index] = true;
    else return bad_value(ps, item, "unknown method (expected rtn or gptq)");
    *code = ps->e->ptq_gptq[index];
    return QAT_OK;
}

static qat_status item_observer(parse_state *ps, const char *item, int index, uint64_t *code)
{
    if (!qat_observer_parse(item, &ps->e->ptq_observers[index])) {
        char choices[128];
        name_choices(observer_name_i, QAT_OBS_KIND_COUNT, choices, sizeof choices);
        return bad_value(ps, item, "unknown observer (expected %s)", choices);
    }
    *code = (uint64_t)ps->e->ptq_observers[index];
    return QAT_OK;
}

static qat_status item_ptq_bits(parse_state *ps, const char *item, int index, uint64_t *code)
{
    return bits_item(ps, item, &ps->e->ptq_bits[index], code);
}

static qat_status item_ptq_gran(parse_state *ps, const char *item, int index, uint64_t *code)
{
    return gran_item(ps, item, &ps->e->ptq_gran[index], code);
}

static qat_status item_quantizer(parse_state *ps, const char *item, int index, uint64_t *code)
{
    if (!qat_quantizer_parse(item, &ps->e->qat_quantizers[index])) {
        char choices[128];
        name_choices(quantizer_name_i, 3, choices, sizeof choices);
        return bad_value(ps, item, "unknown quantizer (expected %s)", choices);
    }
    *code = (uint64_t)ps->e->qat_quantizers[index];
    return QAT_OK;
}

static qat_status item_qat_bits(parse_state *ps, const char *item, int index, uint64_t *code)
{
    return bits_item(ps, item, &ps->e->qat_bits[index], code);
}

static qat_status item_qat_gran(parse_state *ps, const char *item, int index, uint64_t *code)
{
    return gran_item(ps, item, &ps->e->qat_gran[index], code);
}

static qat_status item_ptq_of(parse_state *ps, const char *item, int index, uint64_t *code)
{
    if (strcmp(item, "base") == 0) ps->e->ptq_of[index] = QAT_PTQ_OF_BASE;
    else if (strcmp(item, "finetune") == 0) ps->e->ptq_of[index] = QAT_PTQ_OF_FINETUNE;
    else return bad_value(ps, item, "expected finetune (arm a: the fine-tuned model) or base (arm e: the "
                                    "pretrained model)");
    *code = (uint64_t)ps->e->ptq_of[index];
    return QAT_OK;
}

static qat_status item_qlora_base(parse_state *ps, const char *item, int index, uint64_t *code)
{
    if (!qat_lora_base_parse(item, &ps->e->qlora_bases[index]))
        return bad_value(ps, item, "unknown base (expected nf4, fp4 or fp32)");
    *code = (uint64_t)ps->e->qlora_bases[index];
    return QAT_OK;
}

/* A text corpus: "fortunes:" and the rest datasets/fortunes.h reads (whether
 * those files exist is known only when a run loads them). */
static qat_status text_spec_value(parse_state *ps, const char *v, char *out, size_t size)
{
    bool ok = qat_text_spec_is_fortunes(v) && strlen(v) > strlen(QAT_FORTUNES_SPEC_PREFIX) && strlen(v) < size;
    for (const char *p = v; ok && *p; p++) ok = *p != ' ' && *p != '\t';
    if (!ok)
        return bad_value(ps, v, "expected a fortunes corpus: fortunes:general, fortunes:tech, fortunes:all or "
                                "fortunes:FILE+FILE... (under %zu characters)", size);
    memcpy(out, v, strlen(v) + 1);
    return QAT_OK;
}

/* --- [experiment] */

static qat_status key_name(parse_state *ps, const char *v)
{
    size_t n = strlen(v);
    bool ok = n > 0 && n < sizeof ps->e->name && strcmp(v, ".") != 0 && strcmp(v, "..") != 0;
    for (const char *p = v; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
             *p == '_' || *p == '-';
    if (!ok)
        return bad_value(ps, v, "a name is 1..%zu of A-Z a-z 0-9 . _ - (and not '.' or '..')",
                         sizeof ps->e->name - 1);
    memcpy(ps->e->name, v, n + 1);
    return QAT_OK;
}

static qat_status key_model(parse_state *ps, const char *v)
{
    if (!qat_model_parse(v, &ps->e->model)) {
        char choices[128];
        name_choices(model_name_i, QAT_MODEL_GPT, choices, sizeof choices);
        return bad_value(ps, v, "unknown model (expected %s on Fashion-MNIST, or gpt on text)", choices);
    }
    ps->model_given = true;
    return QAT_OK;
}

/* Checked at the end, when the model is known. */
static qat_status key_dataset(parse_state *ps, const char *v)
{
    if (strlen(v) >= sizeof ps->e->dataset)
        return bad_value(ps, v, "longer than %zu characters", sizeof ps->e->dataset - 1);
    memcpy(ps->e->dataset, v, strlen(v) + 1);
    return QAT_OK;
}

static qat_status key_seeds(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_EXP_MAX_SEEDS, item_seed, &ps->e->nseeds);
}

/* --- [baseline] */

static qat_status key_b_epochs(parse_state *ps, const char *v)
{
    return int_value(ps, v, 1, 100000, &ps->e->baseline.epochs);
}

static qat_status key_b_batch(parse_state *ps, const char *v)
{
    return int_value(ps, v, 1, 65536, &ps->e->baseline.batch);
}

/* The gpt's [baseline] keys, as `qat train --model gpt` takes them. */
static qat_status key_b_steps(parse_state *ps, const char *v) { return int_value(ps, v, 1, 100000000, &ps->steps); }

static qat_status key_b_eval_every(parse_state *ps, const char *v)
{
    return int_value(ps, v, 0, 100000000, &ps->eval_every);
}

static qat_status key_b_layers(parse_state *ps, const char *v)
{
    return int_value(ps, v, 1, QAT_GPT_MAX_LAYERS, &ps->gpt.layers);
}

static qat_status key_b_width(parse_state *ps, const char *v) { return int_value(ps, v, 4, 4096, &ps->gpt.width); }

static qat_status key_b_heads(parse_state *ps, const char *v) { return int_value(ps, v, 1, 4096, &ps->gpt.heads); }

static qat_status key_b_context(parse_state *ps, const char *v) { return int_value(ps, v, 1, 4096, &ps->gpt.context); }

static qat_status key_b_val_permille(parse_state *ps, const char *v)
{
    return int_value(ps, v, 1, 999, &ps->val_permille);
}

static qat_status key_b_optimizer(parse_state *ps, const char *v)
{
    if (strcmp(v, "adamw") == 0) ps->optim = QAT_OPTIM_ADAMW;
    else if (strcmp(v, "sgd") == 0) ps->optim = QAT_OPTIM_SGD;
    else return bad_value(ps, v, "unknown optimizer (expected adamw or sgd)");
    return QAT_OK;
}

static qat_status key_b_lr(parse_state *ps, const char *v)
{
    ps->have_lr = true;
    return double_value(ps, v, 0, true, 100, &ps->lr);
}

static qat_status key_b_momentum(parse_state *ps, const char *v)
{
    ps->have_momentum = true;
    return double_value(ps, v, 0, false, 0.999999, &ps->momentum);
}

static qat_status key_b_weight_decay(parse_state *ps, const char *v)
{
    ps->have_weight_decay = true;
    return double_value(ps, v, 0, false, 10, &ps->weight_decay);
}

static qat_status key_b_schedule(parse_state *ps, const char *v)
{
    if (strcmp(v, "cosine") == 0) ps->schedule = QAT_SCHEDULE_COSINE;
    else if (strcmp(v, "constant") == 0) ps->schedule = QAT_SCHEDULE_CONSTANT;
    else return bad_value(ps, v, "unknown schedule (expected cosine or constant)");
    return QAT_OK;
}

static qat_status key_b_warmup(parse_state *ps, const char *v) { return int_value(ps, v, 0, 100000000, &ps->warmup); }

static qat_status key_b_val(parse_state *ps, const char *v)
{
    int x;
    QAT_TRY(int_value(ps, v, 0, 59000, &x));
    ps->e->baseline.val_count = (uint32_t)x;
    return QAT_OK;
}

static qat_status key_b_train_limit(parse_state *ps, const char *v)
{
    int x;
    QAT_TRY(int_value(ps, v, 0, 60000, &x));
    ps->e->baseline.train_limit = (uint32_t)x;
    return QAT_OK;
}

/* --- [finetune] */

static void begin_finetune(parse_state *ps)
{
    qat_experiment *e = ps->e;
    e->has_finetune = true;
    e->finetune_steps = 300;
    e->finetune_eval_every = 50;
    e->finetune_warmup = 100;
    e->finetune_lr = 1e-3;
    e->finetune_weight_decay = 0.01;
}

static qat_status key_f_data(parse_state *ps, const char *v)
{
    return text_spec_value(ps, v, ps->e->finetune_data, sizeof ps->e->finetune_data);
}

static qat_status key_f_forget(parse_state *ps, const char *v)
{
    return text_spec_value(ps, v, ps->e->forget_data, sizeof ps->e->forget_data);
}

static qat_status key_f_steps(parse_state *ps, const char *v)
{
    return int_value(ps, v, 1, 100000000, &ps->e->finetune_steps);
}

static qat_status key_f_lr(parse_state *ps, const char *v) { return double_value(ps, v, 0, true, 100, &ps->e->finetune_lr); }

static qat_status key_f_warmup(parse_state *ps, const char *v)
{
    return int_value(ps, v, 0, 100000000, &ps->e->finetune_warmup);
}

static qat_status key_f_weight_decay(parse_state *ps, const char *v)
{
    return double_value(ps, v, 0, false, 10, &ps->e->finetune_weight_decay);
}

static qat_status key_f_eval_every(parse_state *ps, const char *v)
{
    return int_value(ps, v, 0, 100000000, &ps->e->finetune_eval_every);
}

/* --- [ptq] */

static void begin_ptq(parse_state *ps)
{
    qat_experiment *e = ps->e;
    e->has_ptq = true;
    e->n_ptq_methods = 1;
    e->ptq_gptq[0] = false;
    e->n_ptq_observers = 1;
    e->ptq_observers[0] = QAT_OBS_MINMAX;
    e->n_ptq_bits = 0;
    e->n_ptq_gran = 1;
    e->ptq_gran[0] = (qat_gran_choice){ QAT_GRAN_CHANNEL, 0 };
    e->ptq_calib = 32;
}

static qat_status key_p_methods(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_EXP_MAX_LIST, item_method, &ps->e->n_ptq_methods);
}

static qat_status key_p_observers(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_EXP_MAX_LIST, item_observer, &ps->e->n_ptq_observers);
}

static qat_status key_p_bits(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_EXP_MAX_LIST, item_ptq_bits, &ps->e->n_ptq_bits);
}

static qat_status key_p_granularity(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_EXP_MAX_LIST, item_ptq_gran, &ps->e->n_ptq_gran);
}

static qat_status key_p_calib(parse_state *ps, const char *v) { return int_value(ps, v, 1, 100000, &ps->e->ptq_calib); }

static qat_status key_p_of(parse_state *ps, const char *v)
{
    return list_value(ps, v, (int)QAT_ARRAY_LEN(ps->e->ptq_of), item_ptq_of, &ps->e->n_ptq_of);
}

/* --- [qat] */

static void begin_qat(parse_state *ps)
{
    qat_experiment *e = ps->e;
    e->has_qat = true;
    e->n_qat_quantizers = 1;
    e->qat_quantizers[0] = QAT_QUANTIZER_LSQ;
    e->n_qat_bits = 0;
    e->n_qat_gran = 1;
    e->qat_gran[0] = (qat_gran_choice){ QAT_GRAN_CHANNEL, 0 };
    e->qat_epochs = 3;
    e->qat_lr = 1e-4;
    e->qat_calib = 32;
    e->qat_steps = 300;
    e->qat_eval_every = 50;
}

static qat_status key_q_quantizers(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_EXP_MAX_LIST, item_quantizer, &ps->e->n_qat_quantizers);
}

static qat_status key_q_bits(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_EXP_MAX_LIST, item_qat_bits, &ps->e->n_qat_bits);
}

static qat_status key_q_granularity(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_EXP_MAX_LIST, item_qat_gran, &ps->e->n_qat_gran);
}

static qat_status key_q_epochs(parse_state *ps, const char *v)
{
    return int_value(ps, v, 1, 100000, &ps->e->qat_epochs);
}

static qat_status key_q_lr(parse_state *ps, const char *v) { return double_value(ps, v, 0, true, 100, &ps->e->qat_lr); }

static qat_status key_q_calib(parse_state *ps, const char *v) { return int_value(ps, v, 1, 100000, &ps->e->qat_calib); }

static qat_status key_q_steps(parse_state *ps, const char *v) { return int_value(ps, v, 1, 100000000, &ps->e->qat_steps); }

static qat_status key_q_eval_every(parse_state *ps, const char *v)
{
    return int_value(ps, v, 0, 100000000, &ps->e->qat_eval_every);
}

/* --- [qlora] */

static void begin_qlora(parse_state *ps)
{
    qat_experiment *e = ps->e;
    e->has_qlora = true;
    e->n_qlora_bases = 1;
    e->qlora_bases[0] = QAT_LORA_BASE_NF4;
    e->qlora_rank = 4;
    e->qlora_alpha = 8;
    e->qlora_dropout = 0;
    e->qlora_lr = 1e-3;
    e->qlora_steps = 300;
    e->qlora_warmup = 30;
    e->qlora_eval_every = 50;
}

static qat_status key_l_bases(parse_state *ps, const char *v)
{
    return list_value(ps, v, (int)QAT_ARRAY_LEN(ps->e->qlora_bases), item_qlora_base, &ps->e->n_qlora_bases);
}

static qat_status key_l_rank(parse_state *ps, const char *v) { return int_value(ps, v, 1, 4096, &ps->e->qlora_rank); }

static qat_status key_l_alpha(parse_state *ps, const char *v)
{
    return double_value(ps, v, 0, true, 1e6, &ps->e->qlora_alpha);
}

static qat_status key_l_dropout(parse_state *ps, const char *v)
{
    return double_value(ps, v, 0, false, 0.99, &ps->e->qlora_dropout);
}

static qat_status key_l_steps(parse_state *ps, const char *v)
{
    return int_value(ps, v, 1, 100000000, &ps->e->qlora_steps);
}

static qat_status key_l_lr(parse_state *ps, const char *v) { return double_value(ps, v, 0, true, 100, &ps->e->qlora_lr); }

static qat_status key_l_warmup(parse_state *ps, const char *v)
{
    return int_value(ps, v, 0, 100000000, &ps->e->qlora_warmup);
}

static qat_status key_l_eval_every(parse_state *ps, const char *v)
{
    return int_value(ps, v, 0, 100000000, &ps->e->qlora_eval_every);
}

/* --- [mixed] */

static void begin_mixed(parse_state *ps)
{
    qat_experiment *e = ps->e;
    e->has_mixed = true;
    e->mixed_sensitivity = QAT_SENSITIVITY_HESSIAN;
    e->n_mixed_candidates = 0;
    e->mixed_gran = (qat_gran_choice){ QAT_GRAN_CHANNEL, 0 };
    e->mixed_abits = 0;
    e->n_mixed_methods = 1;
    e->mixed_gptq[0] = false;
    e->n_mixed_qat = 0;
    e->mixed_qat_epochs = 3;
    e->mixed_qat_steps = 300;
    e->mixed_qat_eval_every = 50;
    e->mixed_qat_lr = 1e-4;
    e->mixed_calib = 8;
    e->mixed_max_probes = 16;
    e->mixed_unit_rows = 0;
    e->mixed_of = QAT_PTQ_OF_BASE;
}

static qat_status item_strategy(parse_state *ps, const char *item, int index, uint64_t *code)
{
    const qat_bits_strategy *s = qat_bits_strategy_find(item);
    if (!s || strcmp(s->name, "manual") == 0) {
        char names[256] = "";
        for (int i = 0; qat_bits_strategies[i]; i++)
            if (strcmp(qat_bits_strategies[i]->name, "manual") != 0)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", *names ? ", " : "",
                         qat_bits_strategies[i]->name);
        if (s)
            return bad_value(ps, item, "manual needs a hand-written map, which a grid has none of (use qat bits "
                                       "--strategy manual; here: %s)", names);
        return bad_value(ps, item, "unknown strategy (known: %s)", names);
    }
    QAT_ASSERT(strlen(s->name) < sizeof ps->e->mixed_strategies[0]);
    snprintf(ps->e->mixed_strategies[index], sizeof ps->e->mixed_strategies[0], "%s", s->name);
    *code = fnv1a64_text(s->name);
    return QAT_OK;
}

static qat_status item_budget(parse_state *ps, const char *item, int index, uint64_t *code)
{
    bool is_bytes;
    double avg;
    uint64_t bytes;
    if (strlen(item) > QAT_EXP_BUDGET_MAX || !qat_bits_budget_parse(item, &is_bytes, &avg, &bytes))
        return bad_value(ps, item, "expected average weight bits (1..8, e.g. 3 or 2.5) or a size (e.g. 120KB, "
                                   "1.5MB), at most %d characters", QAT_EXP_BUDGET_MAX);
    memcpy(ps->e->mixed_budgets[index], item, strlen(item) + 1);
    /* "3" and "3.0" are one budget; so are "1000B" and "1KB". */
    *code = is_bytes ? bytes | (uint64_t)1 << 63 : (uint64_t)llround(avg * 1000);
    return QAT_OK;
}

static qat_status item_candidate(parse_state *ps, const char *item, int index, uint64_t *code)
{
    int bits;
    if (!qat_bits_parse(item, &bits) || bits == 0)
        return bad_value(ps, item, "expected a width within %d..%d", QAT_QBITS_MIN, QAT_QBITS_MAX);
    if (index > 0 && bits <= ps->e->mixed_candidates[index - 1])
        return bad_value(ps, item, "candidates must ascend");
    ps->e->mixed_candidates[index] = bits;
    *code = (uint64_t)bits;
    return QAT_OK;
}

static qat_status item_mixed_method(parse_state *ps, const char *item, int index, uint64_t *code)
{
    if (strcmp(item, "rtn") == 0) ps->e->mixed_gptq[index] = false;
    else if (strcmp(item, "gptq") == 0) ps->e->mixed_gptq[index] = true;
    else return bad_value(ps, item, "unknown method (expected rtn or gptq, or none alone)");
    *code = ps->e->mixed_gptq[index];
    return QAT_OK;
}

static qat_status item_mixed_qat(parse_state *ps, const char *item, int index, uint64_t *code)
{
    if (!qat_quantizer_parse(item, &ps->e->mixed_qat[index])) {
        char choices[128];
        name_choices(quantizer_name_i, 3, choices, sizeof choices);
        return bad_value(ps, item, "unknown quantizer (expected %s, or none alone)", choices);
    }
    *code = (uint64_t)ps->e->mixed_qat[index];
    return QAT_OK;
}

static qat_status key_m_strategies(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_EXP_MAX_LIST, item_strategy, &ps->e->n_mixed_strategies);
}

static qat_status key_m_budgets(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_EXP_MAX_LIST, item_budget, &ps->e->n_mixed_budgets);
}

static qat_status key_m_sensitivity(parse_state *ps, const char *v)
{
    if (!qat_sensitivity_parse(v, &ps->e->mixed_sensitivity))
        return bad_value(ps, v, "unknown sensitivity (expected hessian, fisher or perturbation)");
    return QAT_OK;
}

static qat_status key_m_candidates(parse_state *ps, const char *v)
{
    return list_value(ps, v, QAT_BITS_MAX_CANDIDATES, item_candidate, &ps->e->n_mixed_candidates);
}

static qat_status key_m_granularity(parse_state *ps, const char *v)
{
    uint64_t code;
    if (strchr(v, ',')) return bad_value(ps, v, "one granularity (the budget is for one layout of the scales)");
    return gran_item(ps, v, &ps->e->mixed_gran, &code);
}

static qat_status key_m_abits(parse_state *ps, const char *v)
{
    if (!qat_bits_parse(v, &ps->e->mixed_abits))
        return bad_value(ps, v, "expected %d..%d or fp32", QAT_QBITS_MIN, QAT_QBITS_MAX);
    return QAT_OK;
}

static qat_status key_m_methods(parse_state *ps, const char *v)
{
    if (strcmp(v, "none") == 0) {
        ps->e->n_mixed_methods = 0;
        return QAT_OK;
    }
    return list_value(ps, v, (int)QAT_ARRAY_LEN(ps->e->mixed_gptq), item_mixed_method, &ps->e->n_mixed_methods);
}

static qat_status key_m_qat(parse_state *ps, const char *v)
{
    if (strcmp(v, "none") == 0) {
        ps->e->n_mixed_qat = 0;
        return QAT_OK;
    }
    return list_value(ps, v, (int)QAT_ARRAY_LEN(ps->e->mixed_qat), item_mixed_qat, &ps->e->n_mixed_qat);
}

static qat_status key_m_qat_epochs(parse_state *ps, const char *v)
{
    return int_value(ps, v, 1, 100000, &ps->e->mixed_qat_epochs);
}

static qat_status key_m_qat_steps(parse_state *ps, const char *v)
{
    return int_value(ps, v, 1, 100000000, &ps->e->mixed_qat_steps);
}

static qat_status key_m_qat_eval_every(parse_state *ps, const char *v)
{
    return int_value(ps, v, 0, 100000000, &ps->e->mixed_qat_eval_every);
}

static qat_status key_m_qat_lr(parse_state *ps, const char *v)
{
    return double_value(ps, v, 0, true, 100, &ps->e->mixed_qat_lr);
}

static qat_status key_m_calib(parse_state *ps, const char *v) { return int_value(ps, v, 1, 100000, &ps->e->mixed_calib); }

static qat_status key_m_max_probes(parse_state *ps, const char *v)
{
    return int_value(ps, v, 2, 100000, &ps->e->mixed_max_probes);
}

static qat_status key_m_unit(parse_state *ps, const char *v)
{
    if (!qat_bits_unit_parse(v, &ps->e->mixed_unit_rows))
        return bad_value(ps, v, "expected layer or rows:N (N in 1..65536)");
    return QAT_OK;
}

static qat_status key_m_of(parse_state *ps, const char *v)
{
    if (strcmp(v, "base") == 0) ps->e->mixed_of = QAT_PTQ_OF_BASE;
    else if (strcmp(v, "finetune") == 0) ps->e->mixed_of = QAT_PTQ_OF_FINETUNE;
    else return bad_value(ps, v, "expected base (the pretrained model) or finetune (the FP32 fine-tune), one of "
                                 "them");
    return QAT_OK;
}

/* --- the tables: a new section is a key table and a row */

static const key_def experiment_keys[] = {
    { "name", key_name, true, "name = my-experiment", 0 },
    { "model", key_model, true, "model = mlp", 0 },
    { "dataset", key_dataset, false, NULL, 0 },
    { "seeds", key_seeds, false, NULL, 0 },
    { NULL, NULL, false, NULL, 0 },
};

static const key_def baseline_keys[] = {
    { "epochs", key_b_epochs, false, NULL, FOR_IMAGE },
    { "batch", key_b_batch, false, NULL, 0 },
    { "optimizer", key_b_optimizer, false, NULL, 0 },
    { "lr", key_b_lr, false, NULL, 0 },
    { "momentum", key_b_momentum, false, NULL, 0 },
    { "weight_decay", key_b_weight_decay, false, NULL, 0 },
    { "schedule", key_b_schedule, false, NULL, 0 },
    { "warmup", key_b_warmup, false, NULL, 0 },
    { "val", key_b_val, false, NULL, FOR_IMAGE },
    { "train_limit", key_b_train_limit, false, NULL, FOR_IMAGE },
    { "steps", key_b_steps, false, NULL, FOR_GPT },
    { "eval_every", key_b_eval_every, false, NULL, FOR_GPT },
    { "layers", key_b_layers, false, NULL, FOR_GPT },
    { "width", key_b_width, false, NULL, FOR_GPT },
    { "heads", key_b_heads, false, NULL, FOR_GPT },
    { "context", key_b_context, false, NULL, FOR_GPT },
    { "val_permille", key_b_val_permille, false, NULL, FOR_GPT },
    { NULL, NULL, false, NULL, 0 },
};

static const key_def finetune_keys[] = {
    { "data", key_f_data, true, "data = fortunes:tech", 0 },
    { "forget", key_f_forget, false, NULL, 0 },
    { "steps", key_f_steps, false, NULL, 0 },
    { "lr", key_f_lr, false, NULL, 0 },
    { "warmup", key_f_warmup, false, NULL, 0 },
    { "weight_decay", key_f_weight_decay, false, NULL, 0 },
    { "eval_every", key_f_eval_every, false, NULL, 0 },
    { NULL, NULL, false, NULL, 0 },
};

static const key_def ptq_keys[] = {
    { "methods", key_p_methods, false, NULL, 0 },
    { "observers", key_p_observers, false, NULL, 0 },
    { "bits", key_p_bits, true, "bits = 8/8, 4/8", 0 },
    { "granularity", key_p_granularity, false, NULL, 0 },
    { "calib", key_p_calib, false, NULL, 0 },
    { "of", key_p_of, false, NULL, FOR_GPT },
    { NULL, NULL, false, NULL, 0 },
};

static const key_def qat_keys[] = {
    { "quantizers", key_q_quantizers, false, NULL, 0 },
    { "bits", key_q_bits, true, "bits = 4/4", 0 },
    { "granularity", key_q_granularity, false, NULL, 0 },
    { "epochs", key_q_epochs, false, NULL, FOR_IMAGE },
    { "lr", key_q_lr, false, NULL, 0 },
    { "calib", key_q_calib, false, NULL, 0 },
    { "steps", key_q_steps, false, NULL, FOR_GPT },
    { "eval_every", key_q_eval_every, false, NULL, FOR_GPT },
    { NULL, NULL, false, NULL, 0 },
};

static const key_def qlora_keys[] = {
    { "bases", key_l_bases, false, NULL, 0 },
    { "rank", key_l_rank, false, NULL, 0 },
    { "alpha", key_l_alpha, false, NULL, 0 },
    { "dropout", key_l_dropout, false, NULL, 0 },
    { "steps", key_l_steps, false, NULL, 0 },
    { "lr", key_l_lr, false, NULL, 0 },
    { "warmup", key_l_warmup, false, NULL, 0 },
    { "eval_every", key_l_eval_every, false, NULL, 0 },
    { NULL, NULL, false, NULL, 0 },
};

static const key_def mixed_keys[] = {
    { "strategies", key_m_strategies, true, "strategies = uniform, hawq", 0 },
    { "budgets", key_m_budgets, true, "budgets = 3, 2.5", 0 },
    { "sensitivity", key_m_sensitivity, false, NULL, 0 },
    { "candidates", key_m_candidates, false, NULL, 0 },
    { "granularity", key_m_granularity, false, NULL, 0 },
    { "abits", key_m_abits, false, NULL, 0 },
    { "methods", key_m_methods, false, NULL, 0 },
    { "qat", key_m_qat, false, NULL, 0 },
    { "qat_epochs", key_m_qat_epochs, false, NULL, FOR_IMAGE },
    { "qat_steps", key_m_qat_steps, false, NULL, FOR_GPT },
    { "qat_eval_every", key_m_qat_eval_every, false, NULL, FOR_GPT },
    { "qat_lr", key_m_qat_lr, false, NULL, 0 },
    { "calib", key_m_calib, false, NULL, 0 },
    { "max_probes", key_m_max_probes, false, NULL, 0 },
    { "unit", key_m_unit, false, NULL, 0 },
    { "of", key_m_of, false, NULL, FOR_GPT },
    { NULL, NULL, false, NULL, 0 },
};

static const section_def sections[] = {
    { "experiment", experiment_keys, true, NULL, 0 },
    { "baseline", baseline_keys, false, NULL, 0 },
    { "finetune", finetune_keys, false, begin_finetune, FOR_GPT },
    { "ptq", ptq_keys, false, begin_ptq, 0 },
    { "qat", qat_keys, false, begin_qat, 0 },
    { "qlora", qlora_keys, false, begin_qlora, FOR_GPT },
    { "mixed", mixed_keys, false, begin_mixed, 0 },
};
enum { NSECTIONS = (int)QAT_ARRAY_LEN(sections) };

enum { SEC_EXPERIMENT, SEC_BASELINE, SEC_FINETUNE, SEC_PTQ, SEC_QAT, SEC_QLORA, SEC_MIXED };
_Static_assert(SEC_MIXED + 1 == NSECTIONS, "the SEC_ names follow the table");

static bool fits(unsigned models, qat_model_kind m)
{
    return !models || (models & (m == QAT_MODEL_GPT ? FOR_GPT : FOR_IMAGE));
}

/* The names of a key table (of the sections when keys is NULL), only those
 * for model m when `filter`. */
static void join_names(char *out, size_t size, const key_def *keys, bool filter, qat_model_kind m)
{
    out[0] = '\0';
    int n = 0;
    for (int i = 0; keys ? keys[i].name != NULL : i < NSECTIONS; i++) {
        if (filter && !fits(keys ? keys[i].models : sections[i].models, m)) continue;
        snprintf(out + strlen(out), size - strlen(out), "%s%s", n++ ? ", " : "", keys ? keys[i].name : sections[i].name);
    }
}

/* Section s (k < 0) or its key k, on `line`, is not for the experiment's model. */
static qat_status misfit(const parse_state *ps, int s, int k, int line)
{
    qat_model_kind m = ps->e->model;
    char known[512];
    if (k < 0) {
        join_names(known, sizeof known, NULL, true, m);
        return qat_error_set(QAT_ERR_INVALID, "%s:%d: unknown section [%s] for model %s (known: %s; finetune and "
                             "qlora are for model gpt)", ps->source, line, sections[s].name, qat_model_name(m), known);
    }
    join_names(known, sizeof known, sections[s].keys, true, m);
    return qat_error_set(QAT_ERR_INVALID, "%s:%d: [%s] %s: applies to %s, not to %s (the keys of [%s] for %s: %s)",
                         ps->source, line, sections[s].name, sections[s].keys[k].name,
                         sections[s].keys[k].models == FOR_GPT ? "model gpt" : "mlp and cnn", qat_model_name(m),
                         sections[s].name, qat_model_name(m), known);
}

/* Once the model is known: the first line so far (sections and keys) that is
 * not for it. Later lines are checked as they come. */
static qat_status check_fits(const parse_state *ps)
{
    int best_line = 0, best_s = -1, best_k = -1;
    for (int s = 0; s < NSECTIONS; s++) {
        if (!ps->section_line[s]) continue;
        if (!fits(sections[s].models, ps->e->model)) {
            if (!best_line || ps->section_line[s] < best_line)
                best_line = ps->section_line[s], best_s = s, best_k = -1;
            continue;
        }
        for (int k = 0; sections[s].keys[k].name; k++) {
            int line = ps->key_line[s][k];
            if (line && !fits(sections[s].keys[k].models, ps->e->model) && (!best_line || line < best_line))
                best_line = line, best_s = s, best_k = k;
        }
    }
    return best_line ? misfit(ps, best_s, best_k, best_line) : QAT_OK;
}

static qat_status on_ini(void *user, const char *section, const char *key, const char *value, int line)
{
    parse_state *ps = user;
    char ex[96], known[512];
    qat_model_kind m = ps->e->model;
    if (!key) {
        int s = 0;
        while (s < NSECTIONS && strcmp(sections[s].name, section) != 0) s++;
        if (s == NSECTIONS) {
            join_names(known, sizeof known, NULL, ps->model_given, m);
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: unknown section [%s] (known: %s)", ps->source, line,
                                 excerpt(section, ex, sizeof ex), known);
        }
        if (ps->section_line[s])
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: repeated section [%s] (first on line %d)", ps->source,
                                 line, section, ps->section_line[s]);
        ps->section_line[s] = line;
        if (ps->model_given && !fits(sections[s].models, m)) return misfit(ps, s, -1, line);
        ps->cur = s;
        ps->section = sections[s].name;
        if (sections[s].begin) sections[s].begin(ps);
        return QAT_OK;
    }
    if (ps->cur < 0)
        return qat_error_set(QAT_ERR_INVALID, "%s:%d: key '%s' before any [section]", ps->source, line,
                             excerpt(key, ex, sizeof ex));
    const section_def *sec = &sections[ps->cur];
    int k = 0;
    while (sec->keys[k].name && strcmp(sec->keys[k].name, key) != 0) k++;
    if (!sec->keys[k].name) {
        join_names(known, sizeof known, sec->keys, ps->model_given, m);
        return qat_error_set(QAT_ERR_INVALID, "%s:%d: unknown key '%s' in [%s] (known: %s)", ps->source, line,
                             excerpt(key, ex, sizeof ex), sec->name, known);
    }
    if (ps->key_line[ps->cur][k])
        return qat_error_set(QAT_ERR_INVALID, "%s:%d: repeated key '%s' in [%s] (first on line %d)", ps->source,
                             line, key, sec->name, ps->key_line[ps->cur][k]);
    ps->key_line[ps->cur][k] = line;
    if (ps->model_given && !fits(sec->keys[k].models, m)) return misfit(ps, ps->cur, k, line);
    ps->key = key;
    ps->line = line;
    bool model_known_before = ps->model_given;
    QAT_TRY(sec->keys[k].parse(ps, value));
    return ps->model_given && !model_known_before ? check_fits(ps) : QAT_OK;
}

/* The line of a key of section s (0: not given). */
static int key_line_of(const parse_state *ps, int s, const char *key)
{
    for (int k = 0; sections[s].keys[k].name; k++)
        if (strcmp(sections[s].keys[k].name, key) == 0) return ps->key_line[s][k];
    QAT_ASSERT_MSG(0, "no such key");
    return 0;
}

/* For bad_value after the parse: the key it names. */
static void point_at(parse_state *ps, int s, const char *key)
{
    ps->section = sections[s].name;
    ps->key = key;
    ps->line = key_line_of(ps, s, key);
}

/* What depends on the model, once the whole file is read: the dataset, the
 * gpt's defaults and the checks that span keys. */
static qat_status finish(parse_state *ps)
{
    qat_experiment *e = ps->e;
    bool gpt = e->model == QAT_MODEL_GPT;
    if (key_line_of(ps, SEC_EXPERIMENT, "dataset")) {
        point_at(ps, SEC_EXPERIMENT, "dataset");
        char given[sizeof e->dataset];
        memcpy(given, e->dataset, sizeof given);
        if (gpt) QAT_TRY(text_spec_value(ps, given, e->dataset, sizeof e->dataset));
        else if (strcmp(given, "fashion-mnist") != 0)
            return bad_value(ps, given, "unknown dataset (expected fashion-mnist; fortunes corpora are for model "
                                        "gpt)");
    } else {
        snprintf(e->dataset, sizeof e->dataset, "%s", gpt ? "fortunes:general" : "fashion-mnist");
    }
    if (e->has_mixed && e->n_mixed_methods + e->n_mixed_qat == 0) {
        point_at(ps, SEC_MIXED, key_line_of(ps, SEC_MIXED, "methods") ? "methods" : "qat");
        return bad_value(ps, "none", "[mixed] needs a method: methods (rtn, gptq) or qat (ste, lsq, pact)");
    }
    if (e->has_mixed && e->mixed_unit_rows) {
        char unit[32];
        qat_bits_unit_format(e->mixed_unit_rows, unit, sizeof unit);
        point_at(ps, SEC_MIXED, "unit");
        if (e->mixed_gran.gran == QAT_GRAN_TENSOR)
            return bad_value(ps, unit, "blocks of rows need per-row scales (granularity channel or group:G)");
    }
    if (!gpt) return QAT_OK;

    if (ps->gpt.width % ps->gpt.heads != 0) {
        char text[32];
        if (key_line_of(ps, SEC_BASELINE, "heads") >= key_line_of(ps, SEC_BASELINE, "width")) {
            point_at(ps, SEC_BASELINE, "heads");
            snprintf(text, sizeof text, "%d", ps->gpt.heads);
            return bad_value(ps, text, "must divide width %d", ps->gpt.width);
        }
        point_at(ps, SEC_BASELINE, "width");
        snprintf(text, sizeof text, "%d", ps->gpt.width);
        return bad_value(ps, text, "must be a multiple of heads %d", ps->gpt.heads);
    }
    if (!e->has_finetune) {
        int arm = 0;
        for (int s = SEC_PTQ; s <= SEC_MIXED; s++)
            if (ps->section_line[s] && (!arm || ps->section_line[s] < ps->section_line[arm])) arm = s;
        if (arm)
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: [%s] needs a [finetune] section for model gpt: its data "
                                 "is the target domain every arm trains on and is evaluated on (e.g. 'data = "
                                 "fortunes:tech')", ps->source, ps->section_line[arm], sections[arm].name);
    }
    if (e->has_finetune && !key_line_of(ps, SEC_FINETUNE, "forget"))
        snprintf(e->forget_data, sizeof e->forget_data, "%s", e->dataset);
    if (e->has_ptq && e->n_ptq_of == 0) {
        e->n_ptq_of = 2;
        e->ptq_of[0] = QAT_PTQ_OF_FINETUNE;
        e->ptq_of[1] = QAT_PTQ_OF_BASE;
    }
    /* Calibration draws windows, each far larger than an image. */
    if (e->has_ptq && !key_line_of(ps, SEC_PTQ, "calib")) e->ptq_calib = 8;
    if (e->has_qat && !key_line_of(ps, SEC_QAT, "calib")) e->qat_calib = 8;
    if (!key_line_of(ps, SEC_BASELINE, "batch")) e->baseline.batch = 16;
    e->baseline.steps = ps->steps;
    e->baseline.eval_every = ps->eval_every;
    e->baseline.val_permille = (uint32_t)ps->val_permille;
    return QAT_OK;
}

qat_status qat_experiment_parse(const char *text, size_t len, const char *source, qat_experiment *out)
{
    QAT_ASSERT(source && out);
    qat_experiment *e = qat_xcalloc(1, sizeof *e);
    snprintf(e->source, sizeof e->source, "%s", source);
    e->model = QAT_MODEL_MLP;
    e->nseeds = 1;
    e->seeds[0] = 1;
    e->baseline.epochs = 10;
    e->baseline.batch = 128;
    e->baseline.val_count = 5000;
    e->baseline.train_limit = 0;

    parse_state ps = { .e = e, .source = source, .cur = -1, .optim = QAT_OPTIM_ADAMW,
                       .schedule = QAT_SCHEDULE_COSINE, .warmup = 100, .gpt = QAT_GPT_DEFAULT_CONFIG,
                       .steps = 2000, .eval_every = 500, .val_permille = QAT_FORTUNES_DEFAULT_VAL_PERMILLE };
    _Static_assert(QAT_ARRAY_LEN(sections) <= QAT_ARRAY_LEN(ps.section_line), "too many sections");
    for (int s = 0; s < NSECTIONS; s++) {
        int k = 0;
        while (sections[s].keys[k].name) k++;
        QAT_ASSERT(k <= MAX_SECTION_KEYS);
    }
    qat_status st = qat_ini_parse(text, len, source, on_ini, &ps);
    /* Required keys of the sections present (or required themselves). */
    for (int s = 0; st == QAT_OK && s < NSECTIONS; s++) {
        if (!ps.section_line[s] && !sections[s].required) continue;
        for (int k = 0; st == QAT_OK && sections[s].keys[k].name; k++) {
            const key_def *kd = &sections[s].keys[k];
            if (!kd->required || ps.key_line[s][k]) continue;
            if (ps.section_line[s])
                st = qat_error_set(QAT_ERR_INVALID, "%s:%d: [%s] lacks the required key '%s' (e.g. '%s')", source,
                                   ps.section_line[s], sections[s].name, kd->name, kd->example);
            else
                st = qat_error_set(QAT_ERR_INVALID, "%s: no [%s] section; its key '%s' is required (e.g. '%s')",
                                   source, sections[s].name, kd->name, kd->example);
        }
    }
    if (st == QAT_OK) st = finish(&ps);
    if (st == QAT_OK) {
        qat_train_options *b = &e->baseline;
        b->model = (qat_model_config){ .kind = e->model,
                                       .gpt = e->model == QAT_MODEL_GPT ? ps.gpt : QAT_GPT_DEFAULT_CONFIG };
        b->optim = qat_optim_defaults(ps.optim, ps.have_lr ? ps.lr : ps.optim == QAT_OPTIM_ADAMW ? 1e-3 : 0.05);
        if (ps.have_momentum) b->optim.momentum = ps.momentum;
        if (ps.have_weight_decay) b->optim.weight_decay = ps.weight_decay;
        b->optim.schedule = ps.schedule;
        b->optim.warmup_steps = ps.warmup;
        *out = *e;
    }
    free(e);
    return st;
}

qat_status qat_experiment_load(const char *path, qat_experiment *out)
{
    void *data;
    size_t size;
    QAT_TRY(qat_file_read_all(path, &data, &size));
    qat_status st = qat_experiment_parse(data, size, path, out);
    free(data);
    return st;
}

/* ---------------------------------------------------------------- expansion */

typedef struct settings_lines {
    char line[48][320];
    int n;
} settings_lines;

__attribute__((format(printf, 3, 4))) static void add_setting(settings_lines *s, const char *key, const char *fmt,
                                                               ...)
{
    QAT_ASSERT(s->n < (int)QAT_ARRAY_LEN(s->line));
    char *l = s->line[s->n++];
    int n = snprintf(l, sizeof s->line[0], "%s=", key);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(l + n, sizeof s->line[0] - (size_t)n, fmt, ap);
    va_end(ap);
    QAT_ASSERT(m >= 0 && (size_t)(n + m) < sizeof s->line[0]);
}

static int cmp_lines(const void *a, const void *b) { return strcmp(a, b); }

static const char *bits_text(int bits, char *buf, size_t size)
{
    if (bits == 0) return "fp32";
    snprintf(buf, size, "%d", bits);
    return buf;
}

static void optim_settings(settings_lines *s, const qat_optim_config *o)
{
    add_setting(s, "baseline.optimizer", "%s", qat_optim_name(o->kind));
    add_setting(s, "baseline.lr", "%.17g", o->lr);
    add_setting(s, "baseline.momentum", "%.17g", o->momentum);
    add_setting(s, "baseline.beta1", "%.17g", o->beta1);
    add_setting(s, "baseline.beta2", "%.17g", o->beta2);
    add_setting(s, "baseline.eps", "%.17g", o->eps);
    add_setting(s, "baseline.weight_decay", "%.17g", o->weight_decay);
    add_setting(s, "baseline.schedule", "%s", o->schedule == QAT_SCHEDULE_COSINE ? "cosine" : "constant");
    add_setting(s, "baseline.warmup", "%d", o->warmup_steps);
}

/* The lines every run shares: model, dataset, seed, the baseline's settings. */
static void common_settings(settings_lines *s, const qat_experiment *e, uint64_t seed)
{
    const qat_train_options *b = &e->baseline;
    add_setting(s, "model", "%s", qat_model_name(e->model));
    add_setting(s, "dataset", "%s", e->dataset);
    add_setting(s, "seed", "%" PRIu64, seed);
    add_setting(s, "baseline.batch", "%d", b->batch);
    optim_settings(s, &b->optim);
    if (e->model == QAT_MODEL_GPT) {
        add_setting(s, "baseline.steps", "%d", b->steps);
        add_setting(s, "baseline.eval_every", "%d", b->eval_every);
        add_setting(s, "baseline.layers", "%d", b->model.gpt.layers);
        add_setting(s, "baseline.width", "%d", b->model.gpt.width);
        add_setting(s, "baseline.heads", "%d", b->model.gpt.heads);
        add_setting(s, "baseline.context", "%d", b->model.gpt.context);
        add_setting(s, "baseline.val_permille", "%" PRIu32, b->val_permille);
        return;
    }
    add_setting(s, "baseline.epochs", "%d", b->epochs);
    add_setting(s, "baseline.val", "%" PRIu32, b->val_count);
    add_setting(s, "baseline.train_limit", "%" PRIu32, b->train_limit);
}

/* The gpt's runs after pretraining: the target and forget domains. */
static void domain_settings(settings_lines *s, const qat_experiment *e)
{
    add_setting(s, "data", "%s", e->finetune_data);
    add_setting(s, "forget", "%s", e->forget_data);
}

static void finetune_settings(settings_lines *s, const qat_experiment *e)
{
    add_setting(s, "finetune.steps", "%d", e->finetune_steps);
    add_setting(s, "finetune.lr", "%.17g", e->finetune_lr);
    add_setting(s, "finetune.warmup", "%d", e->finetune_warmup);
    add_setting(s, "finetune.weight_decay", "%.17g", e->finetune_weight_decay);
    add_setting(s, "finetune.eval_every", "%d", e->finetune_eval_every);
}

static void quant_settings(settings_lines *s, const qat_run_spec *r)
{
    char w[8], a[8], g[32];
    qat_granularity_format(r->gran, r->group, g, sizeof g);
    add_setting(s, "wbits", "%s", bits_text(r->wbits, w, sizeof w));
    add_setting(s, "abits", "%s", bits_text(r->abits, a, sizeof a));
    add_setting(s, "granularity", "%s", g);
    add_setting(s, "calib", "%d", r->calib);
}


/* Sorts and joins the lines into r->settings, then writes r->id. */
static void finish_run(qat_run_spec *r, settings_lines *s)
{
    qsort(s->line, (size_t)s->n, sizeof s->line[0], cmp_lines);
    size_t len = 0;
    for (int i = 0; i < s->n; i++) {
        size_t n = strlen(s->line[i]);
        QAT_ASSERT(len + n + 2 <= sizeof r->settings);
        memcpy(r->settings + len, s->line[i], n);
        len += n;
        r->settings[len++] = '\n';
    }
    r->settings[len] = '\0';

    char prefix[QAT_RUN_ID_MAX];
    const char *kind = qat_run_kind_name(r->kind);
    if (r->kind == QAT_RUN_BASELINE || r->kind == QAT_RUN_FINETUNE) {
        snprintf(prefix, sizeof prefix, "%s-%s-s%" PRIu64, kind, qat_run_algorithm(r), r->seed);
    } else if (r->kind == QAT_RUN_QLORA) {
        snprintf(prefix, sizeof prefix, "%s-%s-r%d-s%" PRIu64, kind, qat_run_algorithm(r), r->rank, r->seed);
    } else if (r->kind == QAT_RUN_MIXED) {
        char g[32], budget[QAT_EXP_BUDGET_MAX + 1];
        if (r->gran == QAT_GRAN_GROUP) snprintf(g, sizeof g, "g%d", r->group);
        else qat_granularity_format(r->gran, r->group, g, sizeof g);
        qat_run_budget_id(r->budget, budget, sizeof budget);
        snprintf(prefix, sizeof prefix, "%s-%s-%s%s-b%s-%s-s%" PRIu64, kind, r->strategy, qat_run_algorithm(r),
                 r->finetune_id[0] ? "-ft" : "", budget, g, r->seed);
    } else {
        char g[32];
        if (r->gran == QAT_GRAN_GROUP) snprintf(g, sizeof g, "g%d", r->group);
        else qat_granularity_format(r->gran, r->group, g, sizeof g);
        snprintf(prefix, sizeof prefix, "%s-%s%s-w%da%d-%s-s%" PRIu64, kind, qat_run_algorithm(r),
                 r->finetune_id[0] ? "-ft" : "", r->wbits ? r->wbits : 32, r->abits ? r->abits : 32, g, r->seed);
    }
    int n = snprintf(r->id, sizeof r->id, "%s-%08" PRIx32, prefix, (uint32_t)(fnv1a64_text(r->settings) >> 32));
    QAT_ASSERT(n > 0 && n < (int)sizeof r->id);
}

void qat_run_budget_id(const char *budget, char *out, size_t size)
{
    QAT_ASSERT(size > 0);
    size_t n = 0;
    for (; budget[n] && n + 1 < size; n++) out[n] = budget[n] == '.' ? 'p' : budget[n];
    out[n] = '\0';
}

static int ptq_count(const qat_experiment *e)
{
    return e->has_ptq ? e->n_ptq_methods * e->n_ptq_observers * e->n_ptq_bits * e->n_ptq_gran : 0;
}

static int qat_count(const qat_experiment *e)
{
    return e->has_qat ? e->n_qat_quantizers * e->n_qat_bits * e->n_qat_gran : 0;
}

/* PTQ runs of one seed from one checkpoint: finetune_id "" for the
 * pretrained base (and every image experiment). */
static void expand_ptq(const qat_experiment *e, uint64_t seed, const char *baseline_id, const qat_run_spec *finetune,
                       qat_run_spec *out, int *n)
{
    settings_lines s;
    for (int m = 0; m < e->n_ptq_methods; m++)
        for (int o = 0; o < e->n_ptq_observers; o++)
            for (int b = 0; b < e->n_ptq_bits; b++)
                for (int g = 0; g < e->n_ptq_gran; g++) {
                    qat_run_spec *r = &out[(*n)++];
                    r->kind = QAT_RUN_PTQ;
                    r->seed = seed;
                    snprintf(r->baseline_id, sizeof r->baseline_id, "%s", baseline_id);
                    if (finetune) snprintf(r->finetune_id, sizeof r->finetune_id, "%s", finetune->id);
                    r->wbits = e->ptq_bits[b].wbits;
                    r->abits = e->ptq_bits[b].abits;
                    r->gran = e->ptq_gran[g].gran;
                    r->group = e->ptq_gran[g].group;
                    r->gptq = e->ptq_gptq[m];
                    r->observer = e->ptq_observers[o];
                    r->calib = e->ptq_calib;
                    s.n = 0;
                    common_settings(&s, e, seed);
                    add_setting(&s, "kind", "ptq");
                    add_setting(&s, "method", "%s", qat_run_algorithm(r));
                    add_setting(&s, "observer", "%s", qat_observer_name(r->observer));
                    quant_settings(&s, r);
                    if (e->model == QAT_MODEL_GPT) {
                        domain_settings(&s, e);
                        add_setting(&s, "source", "%s", finetune ? "finetune" : "base");
                        if (finetune) finetune_settings(&s, e);
                    }
                    finish_run(r, &s);
                }
}

static void expand_qat(const qat_experiment *e, uint64_t seed, const char *baseline_id, qat_run_spec *out, int *n)
{
    settings_lines s;
    bool gpt = e->model == QAT_MODEL_GPT;
    for (int q = 0; q < e->n_qat_quantizers; q++)
        for (int b = 0; b < e->n_qat_bits; b++)
            for (int g = 0; g < e->n_qat_gran; g++) {
                qat_run_spec *r = &out[(*n)++];
                r->kind = QAT_RUN_QAT;
                r->seed = seed;
                snprintf(r->baseline_id, sizeof r->baseline_id, "%s", baseline_id);
                r->wbits = e->qat_bits[b].wbits;
                r->abits = e->qat_bits[b].abits;
                r->gran = e->qat_gran[g].gran;
                r->group = e->qat_gran[g].group;
                r->observer = QAT_OBS_MINMAX;
                r->quantizer = e->qat_quantizers[q];
                r->lr = e->qat_lr;
                r->calib = e->qat_calib;
                s.n = 0;
                common_settings(&s, e, seed);
                add_setting(&s, "kind", "qat");
                add_setting(&s, "quantizer", "%s", qat_quantizer_name(r->quantizer));
                add_setting(&s, "observer", "%s", qat_observer_name(r->observer));
                if (gpt) {
                    r->steps = e->qat_steps;
                    r->eval_every = e->qat_eval_every;
                    add_setting(&s, "steps", "%d", r->steps);
                    add_setting(&s, "eval_every", "%d", r->eval_every);
                    domain_settings(&s, e);
                } else {
                    r->epochs = e->qat_epochs;
                    add_setting(&s, "epochs", "%d", r->epochs);
                }
                add_setting(&s, "lr", "%.17g", r->lr);
                quant_settings(&s, r);
                finish_run(r, &s);
            }
}

static int mixed_count(const qat_experiment *e)
{
    return e->has_mixed ? e->n_mixed_strategies * e->n_mixed_budgets * (e->n_mixed_methods + e->n_mixed_qat) : 0;
}

static void expand_mixed(const qat_experiment *e, uint64_t seed, const char *baseline_id, const qat_run_spec *finetune,
                         qat_run_spec *out, int *n)
{
    settings_lines s;
    bool gpt = e->model == QAT_MODEL_GPT;
    for (int si = 0; si < e->n_mixed_strategies; si++)
        for (int b = 0; b < e->n_mixed_budgets; b++)
            for (int m = 0; m < e->n_mixed_methods + e->n_mixed_qat; m++) {
                qat_run_spec *r = &out[(*n)++];
                const qat_bits_strategy *strategy = qat_bits_strategy_find(e->mixed_strategies[si]);
                QAT_ASSERT(strategy);
                r->kind = QAT_RUN_MIXED;
                r->seed = seed;
                snprintf(r->baseline_id, sizeof r->baseline_id, "%s", baseline_id);
                if (finetune) snprintf(r->finetune_id, sizeof r->finetune_id, "%s", finetune->id);
                snprintf(r->strategy, sizeof r->strategy, "%s", strategy->name);
                snprintf(r->budget, sizeof r->budget, "%s", e->mixed_budgets[b]);
                r->needs_cost = strategy->needs_cost;
                r->sensitivity = e->mixed_sensitivity;
                r->ncandidates = e->n_mixed_candidates;
                memcpy(r->candidates, e->mixed_candidates, sizeof r->candidates);
                r->max_probes = e->mixed_max_probes;
                r->unit_rows = e->mixed_unit_rows;
                r->wbits = 8; /* every quantizable layer is in the map, which sets its bits */
                r->abits = e->mixed_abits;
                r->gran = e->mixed_gran.gran;
                r->group = e->mixed_gran.group;
                r->observer = QAT_OBS_MINMAX;
                r->calib = e->mixed_calib;
                r->mixed_qat = m >= e->n_mixed_methods;
                if (r->mixed_qat) r->quantizer = e->mixed_qat[m - e->n_mixed_methods];
                else r->gptq = e->mixed_gptq[m];

                s.n = 0;
                common_settings(&s, e, seed);
                add_setting(&s, "kind", "mixed");
                add_setting(&s, "strategy", "%s", r->strategy);
                add_setting(&s, "budget", "%s", r->budget);
                if (r->needs_cost) {
                    add_setting(&s, "sensitivity", "%s", qat_sensitivity_name(r->sensitivity));
                    if (r->sensitivity == QAT_SENSITIVITY_HESSIAN) add_setting(&s, "max_probes", "%d", r->max_probes);
                }
                char list[64] = "";
                for (int k = 0; k < (r->ncandidates ? r->ncandidates : QAT_QBITS_MAX - QAT_QBITS_MIN + 1); k++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", k ? "," : "",
                             r->ncandidates ? r->candidates[k] : QAT_QBITS_MIN + k);
                add_setting(&s, "candidates", "%s", list);
                /* Only when not the default, so ids from before units stay. */
                if (r->unit_rows) add_setting(&s, "unit", "rows:%d", r->unit_rows);
                char a[8], g[32];
                qat_granularity_format(r->gran, r->group, g, sizeof g);
                add_setting(&s, "granularity", "%s", g);
                add_setting(&s, "abits", "%s", bits_text(r->abits, a, sizeof a));
                add_setting(&s, "calib", "%d", r->calib);
                add_setting(&s, "observer", "%s", qat_observer_name(r->observer));
                add_setting(&s, "method", "%s-%s", r->mixed_qat ? "qat" : "ptq", qat_run_algorithm(r));
                if (r->mixed_qat) {
                    r->lr = e->mixed_qat_lr;
                    add_setting(&s, "lr", "%.17g", r->lr);
                    if (gpt) {
                        r->steps = e->mixed_qat_steps;
                        r->eval_every = e->mixed_qat_eval_every;
                        add_setting(&s, "steps", "%d", r->steps);
                        add_setting(&s, "eval_every", "%d", r->eval_every);
                    } else {
                        r->epochs = e->mixed_qat_epochs;
                        add_setting(&s, "epochs", "%d", r->epochs);
                    }
                }
                if (gpt) {
                    domain_settings(&s, e);
                    add_setting(&s, "source", "%s", finetune ? "finetune" : "base");
                    if (finetune) finetune_settings(&s, e);
                }
                finish_run(r, &s);
            }
}

qat_status qat_experiment_expand(const qat_experiment *e, qat_run_spec **runs, int *count)
{
    QAT_ASSERT(e && runs && count);
    QAT_ASSERT(e->nseeds >= 0 && e->nseeds <= QAT_EXP_MAX_SEEDS);
    bool gpt = e->model == QAT_MODEL_GPT;
    QAT_ASSERT(!gpt || e->has_finetune || (!e->has_ptq && !e->has_qat && !e->has_qlora));
    int nfinetune = gpt && e->has_finetune ? 1 : 0;
    int nptq = ptq_count(e) * (gpt ? e->n_ptq_of : 1);
    int nqlora = gpt && e->has_qlora ? e->n_qlora_bases : 0;
    int total = e->nseeds * (1 + nfinetune + nptq + qat_count(e) + nqlora + mixed_count(e));
    qat_run_spec *out = qat_xcalloc((size_t)total, sizeof *out);
    int n = 0;
    settings_lines s;

    for (int si = 0; si < e->nseeds; si++) {
        qat_run_spec *r = &out[n++];
        r->kind = QAT_RUN_BASELINE;
        r->seed = e->seeds[si];
        r->observer = QAT_OBS_MINMAX;
        s.n = 0;
        common_settings(&s, e, r->seed);
        add_setting(&s, "kind", "baseline");
        finish_run(r, &s);
    }
    for (int si = 0; si < e->nseeds; si++) {
        const char *baseline_id = out[si].id;
        uint64_t seed = e->seeds[si];
        const qat_run_spec *finetune = NULL;
        if (nfinetune) {
            qat_run_spec *r = &out[n++];
            r->kind = QAT_RUN_FINETUNE;
            r->seed = seed;
            snprintf(r->baseline_id, sizeof r->baseline_id, "%s", baseline_id);
            r->steps = e->finetune_steps;
            r->eval_every = e->finetune_eval_every;
            r->warmup = e->finetune_warmup;
            r->lr = e->finetune_lr;
            r->weight_decay = e->finetune_weight_decay;
            s.n = 0;
            common_settings(&s, e, seed);
            add_setting(&s, "kind", "finetune");
            domain_settings(&s, e);
            finetune_settings(&s, e);
            finish_run(r, &s);
            finetune = r;
        }
        if (!gpt && ptq_count(e)) expand_ptq(e, seed, baseline_id, NULL, out, &n);
        for (int i = 0; gpt && ptq_count(e) && i < e->n_ptq_of; i++)
            expand_ptq(e, seed, baseline_id, e->ptq_of[i] == QAT_PTQ_OF_FINETUNE ? finetune : NULL, out, &n);
        if (qat_count(e)) expand_qat(e, seed, baseline_id, out, &n);
        for (int b = 0; b < nqlora; b++) {
            qat_run_spec *r = &out[n++];
            r->kind = QAT_RUN_QLORA;
            r->seed = seed;
            snprintf(r->baseline_id, sizeof r->baseline_id, "%s", baseline_id);
            r->lora_base = e->qlora_bases[b];
            r->rank = e->qlora_rank;
            r->alpha = e->qlora_alpha;
            r->dropout = e->qlora_dropout;
            r->steps = e->qlora_steps;
            r->lr = e->qlora_lr;
            r->warmup = e->qlora_warmup;
            r->eval_every = e->qlora_eval_every;
            s.n = 0;
            common_settings(&s, e, seed);
            add_setting(&s, "kind", "qlora");
            domain_settings(&s, e);
            add_setting(&s, "base", "%s", qat_lora_base_name(r->lora_base));
            add_setting(&s, "rank", "%d", r->rank);
            add_setting(&s, "alpha", "%.17g", r->alpha);
            add_setting(&s, "dropout", "%.17g", r->dropout);
            add_setting(&s, "steps", "%d", r->steps);
            add_setting(&s, "lr", "%.17g", r->lr);
            add_setting(&s, "warmup", "%d", r->warmup);
            add_setting(&s, "eval_every", "%d", r->eval_every);
            finish_run(r, &s);
        }
        if (mixed_count(e))
            expand_mixed(e, seed, baseline_id, gpt && e->mixed_of == QAT_PTQ_OF_FINETUNE ? finetune : NULL, out, &n);
    }
    QAT_ASSERT(n == total);
    *runs = out;
    *count = total;
    return QAT_OK;
}

const char *qat_run_kind_name(qat_run_kind kind)
{
    switch (kind) {
    case QAT_RUN_BASELINE: return "baseline";
    case QAT_RUN_PTQ: return "ptq";
    case QAT_RUN_QAT: return "qat";
    case QAT_RUN_FINETUNE: return "finetune";
    case QAT_RUN_QLORA: return "qlora";
    case QAT_RUN_MIXED: return "mixed";
    }
    QAT_ASSERT_MSG(0, "unknown run kind");
    return NULL;
}

const char *qat_run_algorithm(const qat_run_spec *r)
{
    QAT_ASSERT(r);
    switch (r->kind) {
    case QAT_RUN_BASELINE:
    case QAT_RUN_FINETUNE: return "fp32";
    case QAT_RUN_PTQ: return r->gptq ? "gptq" : "rtn";
    case QAT_RUN_QAT: return qat_quantizer_name(r->quantizer);
    case QAT_RUN_QLORA: return qat_lora_base_name(r->lora_base);
    case QAT_RUN_MIXED: return r->mixed_qat ? qat_quantizer_name(r->quantizer) : r->gptq ? "gptq" : "rtn";
    }
    QAT_ASSERT_MSG(0, "unknown run kind");
    return NULL;
}
