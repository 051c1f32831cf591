/* Experiment specs: parsing (through qat/ini.h) and grid expansion. */
#include "qat/experiment.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/fileio.h"
#include "qat/ini.h"

/* ------------------------------------------------------------------ parsing */

#define MAX_SECTION_KEYS 16

typedef struct parse_state parse_state;
typedef qat_status (*key_fn)(parse_state *ps, const char *value);

typedef struct key_def {
    const char *name;
    key_fn parse;
    bool required;          /* when the section is present (or itself required) */
    const char *example;    /* shown when a required key is missing */
} key_def;

typedef struct section_def {
    const char *name;
    const key_def *keys;    /* NULL-terminated */
    bool required;
    void (*begin)(parse_state *ps); /* at its header: presence flag, defaults */
} section_def;

struct parse_state {
    qat_experiment *e;
    const char *source;
    int cur;                                  /* index into sections, -1 before any */
    const char *section;                      /* its name (for messages) */
    const char *key;                          /* the key being parsed (for messages) */
    int line;
    int section_line[8];                      /* 0: absent */
    int key_line[8][MAX_SECTION_KEYS];
    /* [baseline] optimizer settings, resolved at the end: the defaults of lr
     * and weight_decay depend on the optimizer. */
    qat_optim_kind optim;
    double lr, momentum, weight_decay;
    bool have_lr, have_momentum, have_weight_decay;
    qat_schedule_kind schedule;
    int warmup;
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
    /* Image experiments: the gpt trains on text, through [finetune] specs. */
    if (!qat_model_parse(v, &ps->e->model) || ps->e->model == QAT_MODEL_GPT) {
        char choices[128];
        name_choices(model_name_i, QAT_MODEL_GPT, choices, sizeof choices);
        return bad_value(ps, v, "unknown model (expected %s)", choices);
    }
    return QAT_OK;
}

static qat_status key_dataset(parse_state *ps, const char *v)
{
    if (strcmp(v, "fashion-mnist") != 0) return bad_value(ps, v, "unknown dataset (expected fashion-mnist)");
    snprintf(ps->e->dataset, sizeof ps->e->dataset, "%s", v);
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

/* --- the tables: a new section is a key table and a row */

static const key_def experiment_keys[] = {
    { "name", key_name, true, "name = my-experiment" },
    { "model", key_model, true, "model = mlp" },
    { "dataset", key_dataset, false, NULL },
    { "seeds", key_seeds, false, NULL },
    { NULL, NULL, false, NULL },
};

static const key_def baseline_keys[] = {
    { "epochs", key_b_epochs, false, NULL },
    { "batch", key_b_batch, false, NULL },
    { "optimizer", key_b_optimizer, false, NULL },
    { "lr", key_b_lr, false, NULL },
    { "momentum", key_b_momentum, false, NULL },
    { "weight_decay", key_b_weight_decay, false, NULL },
    { "schedule", key_b_schedule, false, NULL },
    { "warmup", key_b_warmup, false, NULL },
    { "val", key_b_val, false, NULL },
    { "train_limit", key_b_train_limit, false, NULL },
    { NULL, NULL, false, NULL },
};

static const key_def ptq_keys[] = {
    { "methods", key_p_methods, false, NULL },
    { "observers", key_p_observers, false, NULL },
    { "bits", key_p_bits, true, "bits = 8/8, 4/8" },
    { "granularity", key_p_granularity, false, NULL },
    { "calib", key_p_calib, false, NULL },
    { NULL, NULL, false, NULL },
};

static const key_def qat_keys[] = {
    { "quantizers", key_q_quantizers, false, NULL },
    { "bits", key_q_bits, true, "bits = 4/4" },
    { "granularity", key_q_granularity, false, NULL },
    { "epochs", key_q_epochs, false, NULL },
    { "lr", key_q_lr, false, NULL },
    { "calib", key_q_calib, false, NULL },
    { NULL, NULL, false, NULL },
};

static const section_def sections[] = {
    { "experiment", experiment_keys, true, NULL },
    { "baseline", baseline_keys, false, NULL },
    { "ptq", ptq_keys, false, begin_ptq },
    { "qat", qat_keys, false, begin_qat },
};
enum { NSECTIONS = (int)QAT_ARRAY_LEN(sections) };

static void join_names(char *out, size_t size, int nsec, const key_def *keys)
{
    out[0] = '\0';
    for (int i = 0; keys ? keys[i].name != NULL : i < nsec; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? ", " : "", keys ? keys[i].name : sections[i].name);
}

static qat_status on_ini(void *user, const char *section, const char *key, const char *value, int line)
{
    parse_state *ps = user;
    char ex[96], known[256];
    if (!key) {
        int s = 0;
        while (s < NSECTIONS && strcmp(sections[s].name, section) != 0) s++;
        if (s == NSECTIONS) {
            join_names(known, sizeof known, NSECTIONS, NULL);
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: unknown section [%s] (known: %s)", ps->source, line,
                                 excerpt(section, ex, sizeof ex), known);
        }
        if (ps->section_line[s])
            return qat_error_set(QAT_ERR_INVALID, "%s:%d: repeated section [%s] (first on line %d)", ps->source,
                                 line, section, ps->section_line[s]);
        ps->section_line[s] = line;
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
        join_names(known, sizeof known, 0, sec->keys);
        return qat_error_set(QAT_ERR_INVALID, "%s:%d: unknown key '%s' in [%s] (known: %s)", ps->source, line,
                             excerpt(key, ex, sizeof ex), sec->name, known);
    }
    if (ps->key_line[ps->cur][k])
        return qat_error_set(QAT_ERR_INVALID, "%s:%d: repeated key '%s' in [%s] (first on line %d)", ps->source,
                             line, key, sec->name, ps->key_line[ps->cur][k]);
    ps->key_line[ps->cur][k] = line;
    ps->key = key;
    ps->line = line;
    return sec->keys[k].parse(ps, value);
}

qat_status qat_experiment_parse(const char *text, size_t len, const char *source, qat_experiment *out)
{
    QAT_ASSERT(source && out);
    qat_experiment *e = qat_xcalloc(1, sizeof *e);
    snprintf(e->source, sizeof e->source, "%s", source);
    e->model = QAT_MODEL_MLP;
    snprintf(e->dataset, sizeof e->dataset, "fashion-mnist");
    e->nseeds = 1;
    e->seeds[0] = 1;
    e->baseline.epochs = 10;
    e->baseline.batch = 128;
    e->baseline.val_count = 5000;
    e->baseline.train_limit = 0;

    parse_state ps = { .e = e, .source = source, .cur = -1, .optim = QAT_OPTIM_ADAMW,
                       .schedule = QAT_SCHEDULE_COSINE, .warmup = 100 };
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
    if (st == QAT_OK) {
        qat_train_options *b = &e->baseline;
        b->model = (qat_model_config){ .kind = e->model, .gpt = QAT_GPT_DEFAULT_CONFIG };
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
    char line[32][160];
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

/* The lines every run shares: model, dataset, seed, the baseline's settings. */
static void common_settings(settings_lines *s, const qat_experiment *e, uint64_t seed)
{
    const qat_train_options *b = &e->baseline;
    add_setting(s, "model", "%s", qat_model_name(e->model));
    add_setting(s, "dataset", "%s", e->dataset);
    add_setting(s, "seed", "%" PRIu64, seed);
    add_setting(s, "baseline.epochs", "%d", b->epochs);
    add_setting(s, "baseline.batch", "%d", b->batch);
    add_setting(s, "baseline.optimizer", "%s", qat_optim_name(b->optim.kind));
    add_setting(s, "baseline.lr", "%.17g", b->optim.lr);
    add_setting(s, "baseline.momentum", "%.17g", b->optim.momentum);
    add_setting(s, "baseline.beta1", "%.17g", b->optim.beta1);
    add_setting(s, "baseline.beta2", "%.17g", b->optim.beta2);
    add_setting(s, "baseline.eps", "%.17g", b->optim.eps);
    add_setting(s, "baseline.weight_decay", "%.17g", b->optim.weight_decay);
    add_setting(s, "baseline.schedule", "%s", b->optim.schedule == QAT_SCHEDULE_COSINE ? "cosine" : "constant");
    add_setting(s, "baseline.warmup", "%d", b->optim.warmup_steps);
    add_setting(s, "baseline.val", "%" PRIu32, b->val_count);
    add_setting(s, "baseline.train_limit", "%" PRIu32, b->train_limit);
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

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
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
    const char *kind = r->kind == QAT_RUN_BASELINE ? "baseline" : r->kind == QAT_RUN_PTQ ? "ptq" : "qat";
    if (r->kind == QAT_RUN_BASELINE) {
        snprintf(prefix, sizeof prefix, "%s-%s-s%" PRIu64, kind, qat_run_algorithm(r), r->seed);
    } else {
        char g[32];
        if (r->gran == QAT_GRAN_GROUP) snprintf(g, sizeof g, "g%d", r->group);
        else qat_granularity_format(r->gran, r->group, g, sizeof g);
        snprintf(prefix, sizeof prefix, "%s-%s-w%da%d-%s-s%" PRIu64, kind, qat_run_algorithm(r),
                 r->wbits ? r->wbits : 32, r->abits ? r->abits : 32, g, r->seed);
    }
    int n = snprintf(r->id, sizeof r->id, "%s-%08" PRIx32, prefix, (uint32_t)(fnv1a64(r->settings) >> 32));
    QAT_ASSERT(n > 0 && n < (int)sizeof r->id);
}

qat_status qat_experiment_expand(const qat_experiment *e, qat_run_spec **runs, int *count)
{
    QAT_ASSERT(e && runs && count);
    QAT_ASSERT(e->nseeds >= 0 && e->nseeds <= QAT_EXP_MAX_SEEDS);
    int nptq = e->has_ptq ? e->n_ptq_methods * e->n_ptq_observers * e->n_ptq_bits * e->n_ptq_gran : 0;
    int nqat = e->has_qat ? e->n_qat_quantizers * e->n_qat_bits * e->n_qat_gran : 0;
    int total = e->nseeds * (1 + nptq + nqat);
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
        for (int m = 0; nptq > 0 && m < e->n_ptq_methods; m++)
            for (int o = 0; o < e->n_ptq_observers; o++)
                for (int b = 0; b < e->n_ptq_bits; b++)
                    for (int g = 0; g < e->n_ptq_gran; g++) {
                        qat_run_spec *r = &out[n++];
                        r->kind = QAT_RUN_PTQ;
                        r->seed = seed;
                        snprintf(r->baseline_id, sizeof r->baseline_id, "%s", baseline_id);
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
                        finish_run(r, &s);
                    }
        for (int q = 0; nqat > 0 && q < e->n_qat_quantizers; q++)
            for (int b = 0; b < e->n_qat_bits; b++)
                for (int g = 0; g < e->n_qat_gran; g++) {
                    qat_run_spec *r = &out[n++];
                    r->kind = QAT_RUN_QAT;
                    r->seed = seed;
                    snprintf(r->baseline_id, sizeof r->baseline_id, "%s", baseline_id);
                    r->wbits = e->qat_bits[b].wbits;
                    r->abits = e->qat_bits[b].abits;
                    r->gran = e->qat_gran[g].gran;
                    r->group = e->qat_gran[g].group;
                    r->observer = QAT_OBS_MINMAX;
                    r->quantizer = e->qat_quantizers[q];
                    r->epochs = e->qat_epochs;
                    r->lr = e->qat_lr;
                    r->calib = e->qat_calib;
                    s.n = 0;
                    common_settings(&s, e, seed);
                    add_setting(&s, "kind", "qat");
                    add_setting(&s, "quantizer", "%s", qat_quantizer_name(r->quantizer));
                    add_setting(&s, "observer", "%s", qat_observer_name(r->observer));
                    add_setting(&s, "epochs", "%d", r->epochs);
                    add_setting(&s, "lr", "%.17g", r->lr);
                    quant_settings(&s, r);
                    finish_run(r, &s);
                }
    }
    QAT_ASSERT(n == total);
    *runs = out;
    *count = total;
    return QAT_OK;
}

const char *qat_run_algorithm(const qat_run_spec *r)
{
    QAT_ASSERT(r);
    switch (r->kind) {
    case QAT_RUN_BASELINE: return "fp32";
    case QAT_RUN_PTQ: return r->gptq ? "gptq" : "rtn";
    case QAT_RUN_QAT: return qat_quantizer_name(r->quantizer);
    }
    QAT_ASSERT_MSG(0, "unknown run kind");
    return NULL;
}
