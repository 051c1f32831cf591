#include "qat/runner.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qat/fileio.h"
#include "qat/json.h"
#include "qat/progress.h"
#include "qat/qlora.h"
#include "qat/textlm.h"
#include "reports/report.h"

static void run_dir(const char *root, const qat_run_spec *r, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", root, r->id);
}

static bool run_finished(const char *dir, const qat_run_spec *r)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/settings.txt", dir);
    void *data;
    size_t size;
    if (qat_file_read_all(path, &data, &size) != QAT_OK) {
        qat_error_clear();
        return false;
    }
    bool same = size == strlen(r->settings) && memcmp(data, r->settings, size) == 0;
    free(data);
    return same;
}

/* Whether run a starts from run b's checkpoint. */
static bool depends_on(const qat_run_spec *a, const qat_run_spec *b)
{
    return strcmp(a->baseline_id, b->id) == 0 || strcmp(a->finetune_id, b->id) == 0;
}

bool qat_runner_in_shard(const qat_run_spec *runs, int count, int r, int shard_index, int shard_count)
{
    if (shard_count <= 1) return true;
    if (runs[r].kind != QAT_RUN_BASELINE) {
        int k = 0;
        for (int i = 0; i < r; i++) k += runs[i].kind != QAT_RUN_BASELINE;
        if (k % shard_count == shard_index - 1) return true;
    }
    /* A run's prerequisites go to its shard too (they come before it in the
     * grid, so this ends). */
    for (int i = r + 1; i < count; i++)
        if (runs[i].kind != QAT_RUN_BASELINE && depends_on(&runs[i], &runs[r]) &&
            qat_runner_in_shard(runs, count, i, shard_index, shard_count))
            return true;
    return false;
}

static void describe(const qat_experiment *e, const qat_run_spec *r, char *out, size_t size)
{
    char gran[32];
    qat_granularity_format(r->gran, r->group, gran, sizeof gran);
    unsigned long long seed = (unsigned long long)r->seed;
    switch (r->kind) {
    case QAT_RUN_BASELINE:
        if (e->model == QAT_MODEL_GPT) snprintf(out, size, "FP32 pretraining on %s, seed %llu", e->dataset, seed);
        else snprintf(out, size, "FP32 baseline, seed %llu", seed);
        return;
    case QAT_RUN_FINETUNE:
        snprintf(out, size, "FP32 fine-tune on %s, seed %llu", e->finetune_data, seed);
        return;
    case QAT_RUN_QLORA:
        if (r->lora_base == QAT_LORA_BASE_FP32)
            snprintf(out, size, "LoRA r%d on the FP32 base, seed %llu", r->rank, seed);
        else
            snprintf(out, size, "QLoRA r%d on the %s base, seed %llu", r->rank, qat_lora_base_name(r->lora_base), seed);
        return;
    case QAT_RUN_MIXED:
        snprintf(out, size, "mixed %s at %s, %s %s %s%s, seed %llu", r->strategy, r->budget,
                 r->mixed_qat ? "QAT" : "PTQ", qat_run_algorithm(r), gran,
                 e->model != QAT_MODEL_GPT ? ""
                 : r->finetune_id[0]       ? " of the fine-tune"
                                           : " of the base",
                 seed);
        return;
    case QAT_RUN_PTQ:
    case QAT_RUN_QAT:
        snprintf(out, size, "%s %s W%dA%d %s%s%s%s, seed %llu", r->kind == QAT_RUN_PTQ ? "PTQ" : "QAT",
                 qat_run_algorithm(r), r->wbits ? r->wbits : 32, r->abits ? r->abits : 32, gran,
                 r->kind == QAT_RUN_PTQ ? " " : "", r->kind == QAT_RUN_PTQ ? qat_observer_name(r->observer) : "",
                 e->model != QAT_MODEL_GPT ? ""
                 : r->finetune_id[0]       ? " of the fine-tune"
                                           : " of the base",
                 seed);
        return;
    }
}

/* What `qat ptq` / `qat qat` get for a run, whatever the model: the
 * checkpoint, the run's quantization settings and calibration. */
static void quantize_options(const qat_experiment *e, const qat_runner_options *o, const qat_run_spec *r,
                             const char *ckpt, const char *dir, qat_quantize_options *q)
{
    *q = (qat_quantize_options){
        .ckpt = ckpt,
        .out_dir = dir,
        .data_dir = o->data_dir,
        .device = o->device,
        .wbits = r->wbits,
        .abits = r->abits,
        .granularity = r->gran,
        .group = r->group,
        .weight_symmetric = true,
        .observer = r->observer,
        .calib_batches = r->calib,
        .batch = e->baseline.batch,
        .seed = r->seed,
        .gptq = r->gptq,
        .quantizer = r->quantizer,
    };
}

/* ... for a run of an image model: its epochs and training split. */
static void image_quantize_options(const qat_experiment *e, const qat_runner_options *o, const qat_run_spec *r,
                                   const char *ckpt, const char *dir, qat_quantize_options *q)
{
    quantize_options(e, o, r, ckpt, dir, q);
    q->val_count = e->baseline.val_count;
    q->quiet = true;
    q->epochs = r->epochs;
    q->train_limit = e->baseline.train_limit;
    q->optim = qat_optim_defaults(QAT_OPTIM_ADAMW, r->lr);
    q->optim.weight_decay = 0;
    q->optim.schedule = QAT_SCHEDULE_COSINE;
    q->optim.warmup_steps = 0;
}

/* RUN_DIR/bits.csv: the map's layers with what the strategy saw, for the
 * report's bars; RUN_DIR/bits.json: its totals (results.csv's avg_bits). */
static qat_status write_bits_files(const qat_run_spec *r, const qat_bits_result *b, const char *dir)
{
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "layer,weights,bits,bytes,sensitivity,cost\n");
    for (int i = 0; i < b->nlayers; i++) {
        const qat_bits_layer_report *l = &b->layers[i];
        qat_strbuf_printf(&sb, "%s,%lld,%d,%llu", l->name, (long long)l->numel, l->bits, (unsigned long long)l->bytes);
        if (b->measured) {
            int k = 0;
            while (k < b->ncandidates - 1 && b->candidates[k] != l->bits) k++;
            qat_strbuf_printf(&sb, ",%.9g,%.9g\n", l->sensitivity, l->cost[k]);
        } else {
            qat_strbuf_printf(&sb, ",,\n");
        }
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/bits.csv", dir);
    qat_status st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_clear(&sb);
    qat_strbuf_printf(&sb, "{\n  \"strategy\": ");
    qat_json_write_string(&sb, r->strategy);
    qat_strbuf_printf(&sb, ",\n  \"budget\": ");
    qat_json_write_string(&sb, r->budget);
    qat_strbuf_printf(&sb, ",\n  \"sensitivity\": ");
    if (b->measured) qat_json_write_string(&sb, qat_sensitivity_name(b->sensitivity));
    else qat_strbuf_printf(&sb, "null");
    const struct { const char *key; double value; } numbers[] = {
        { "avg_bits", b->avg_bits },
        { "bits_per_weight", b->bits_per_weight },
        { "layer_budget_bytes", (double)b->layer_budget_bytes },
        { "layer_bytes", (double)b->layer_bytes },
        { "model_bytes", (double)b->model_bytes },
        { "fp32_bytes", (double)b->fp32_bytes },
        { "total_cost", b->total_cost },
        { "probes", b->probes },
        { "calib_loss", b->calib_loss },
        { "measure_seconds", b->measure_seconds },
        { "wall_seconds", b->wall_seconds },
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(numbers); i++) {
        qat_strbuf_printf(&sb, ",\n  \"%s\": ", numbers[i].key);
        qat_json_write_number(&sb, numbers[i].value);
    }
    qat_strbuf_printf(&sb, "\n}\n");
    snprintf(path, sizeof path, "%s/bits.json", dir);
    if (st == QAT_OK) st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

/* A mixed run: `qat bits` into RUN_DIR/bits.map on the checkpoint and data q
 * names, then `qat ptq` or `qat qat` with that map over 8-bit weights (the
 * map lists every layer they quantize, so none stays at 8). */
static qat_status execute_mixed(const qat_run_spec *r, const char *dir, const qat_quantize_options *q)
{
    char map[1400], cache[1400];
    snprintf(map, sizeof map, "%s/bits.map", dir);
    /* Beside the run directories, one file per checkpoint and measure:
     * every strategy and budget of that checkpoint reads the first one's
     * measurement (its key covers every setting that changes the costs). */
    const char *slash = strrchr(dir, '/');
    int root_len = slash ? (int)(slash - dir) : 1;
    snprintf(cache, sizeof cache, "%.*s/sensitivity-%s-%s.txt", root_len, slash ? dir : ".",
             r->finetune_id[0] ? r->finetune_id : r->baseline_id, qat_sensitivity_name(r->sensitivity));
    qat_bits_options b = {
        .q = *q,
        .strategy = r->strategy,
        .budget = r->budget,
        .sensitivity_set = r->needs_cost,
        .sensitivity = r->sensitivity,
        .ncandidates = r->ncandidates,
        .max_probes = r->max_probes,
        .unit_rows = r->unit_rows,
        .out_map = map,
        .sensitivity_cache = r->needs_cost ? cache : NULL,
    };
    b.q.quiet = true;
    memcpy(b.candidates, r->candidates, sizeof b.candidates);
    /* As `qat bits --max-probes`: fewer than the default minimum caps it too. */
    if (b.max_probes < 8) b.min_probes = b.max_probes;
    qat_bits_result *res = qat_xcalloc(1, sizeof *res);
    qat_status st = qat_bits_run(&b, res);
    if (st == QAT_OK) st = write_bits_files(r, res, dir);
    free(res);
    QAT_TRY(st);
    qat_quantize_options mq = *q;
    mq.wbits = 8;
    mq.bits_map = map;
    qat_quantize_result qr;
    return r->mixed_qat ? qat_qat_run(&mq, &qr) : qat_ptq_run(&mq, &qr);
}

static qat_status execute_image(const qat_experiment *e, const qat_runner_options *o, const char *root,
                                const qat_run_spec *r, const char *dir)
{
    if (r->kind == QAT_RUN_BASELINE) {
        qat_train_options t = e->baseline;
        t.model.kind = e->model;
        t.seed = r->seed;
        t.out_dir = dir;
        t.data_dir = o->data_dir;
        t.device = o->device;
        t.quiet = o->quiet;
        qat_train_result res;
        return qat_train_run(&t, &res);
    }
    char ckpt[1400];
    snprintf(ckpt, sizeof ckpt, "%s/%s/model.safetensors", root, r->baseline_id);
    qat_quantize_options q;
    image_quantize_options(e, o, r, ckpt, dir, &q);
    if (r->kind == QAT_RUN_MIXED) return execute_mixed(r, dir, &q);
    qat_quantize_result res;
    return r->kind == QAT_RUN_PTQ ? qat_ptq_run(&q, &res) : qat_qat_run(&q, &res);
}

/* AdamW with a cosine schedule: the fine-tuning arms' optimizer. */
static qat_optim_config finetune_optim(double lr, double weight_decay, int warmup)
{
    qat_optim_config c = qat_optim_defaults(QAT_OPTIM_ADAMW, lr);
    c.weight_decay = weight_decay;
    c.schedule = QAT_SCHEDULE_COSINE;
    c.warmup_steps = warmup;
    return c;
}

/* `qat train --init` evaluates no second corpus: the fine-tune's forgetting
 * is measured here, the base and the result on the forget domain, into
 * DIR/forget.json (forget_data, forget_val_bpc, start_forget_val_bpc,
 * seconds). */
static qat_status execute_finetune(const qat_experiment *e, const qat_runner_options *o, const char *base_ckpt,
                                   const qat_run_spec *r, const char *dir)
{
    qat_train_options t = e->baseline;
    t.seed = r->seed;
    t.out_dir = dir;
    t.data_dir = o->data_dir;
    t.device = o->device;
    t.quiet = o->quiet;
    t.data_spec = e->finetune_data;
    t.init_ckpt = base_ckpt;
    t.steps = r->steps;
    t.eval_every = r->eval_every;
    t.optim = finetune_optim(r->lr, r->weight_decay, r->warmup);
    qat_train_result res;
    QAT_TRY(qat_train_run(&t, &res));
    double t0 = qat_now();
    char ckpt[1400];
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", dir);
    qat_text_eval before, after;
    QAT_TRY(qat_eval_text_checkpoint(base_ckpt, e->forget_data, o->data_dir, e->baseline.val_permille, o->device,
                                     e->baseline.batch, &before));
    QAT_TRY(qat_eval_text_checkpoint(ckpt, e->forget_data, o->data_dir, e->baseline.val_permille, o->device,
                                     e->baseline.batch, &after));
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "{\n  \"forget_data\": ");
    qat_json_write_string(&sb, e->forget_data);
    qat_strbuf_printf(&sb, ",\n  \"forget_val_bpc\": ");
    qat_json_write_number(&sb, after.bpc);
    qat_strbuf_printf(&sb, ",\n  \"start_forget_val_bpc\": ");
    qat_json_write_number(&sb, before.bpc);
    qat_strbuf_printf(&sb, ",\n  \"seconds\": ");
    qat_json_write_number(&sb, qat_now() - t0);
    qat_strbuf_printf(&sb, "\n}\n");
    char path[1400];
    snprintf(path, sizeof path, "%s/forget.json", dir);
    qat_status st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

static qat_status execute_text(const qat_experiment *e, const qat_runner_options *o, const char *root,
                               const qat_run_spec *r, const char *dir)
{
    char base_ckpt[1400], ft_ckpt[1400];
    snprintf(base_ckpt, sizeof base_ckpt, "%s/%s/model.safetensors", root, r->baseline_id);
    snprintf(ft_ckpt, sizeof ft_ckpt, "%s/%s/model.safetensors", root, r->finetune_id);
    switch (r->kind) {
    case QAT_RUN_BASELINE: {
        qat_train_options t = e->baseline;
        t.seed = r->seed;
        t.out_dir = dir;
        t.data_dir = o->data_dir;
        t.device = o->device;
        t.quiet = o->quiet;
        t.data_spec = e->dataset;
        qat_train_result res;
        return qat_train_run(&t, &res);
    }
    case QAT_RUN_FINETUNE: return execute_finetune(e, o, base_ckpt, r, dir);
    case QAT_RUN_PTQ:
    case QAT_RUN_QAT:
    case QAT_RUN_MIXED: {
        /* The gpt: its corpora, steps and evaluations. */
        qat_quantize_options q;
        quantize_options(e, o, r, r->finetune_id[0] ? ft_ckpt : base_ckpt, dir, &q);
        q.quiet = r->kind == QAT_RUN_PTQ || (r->kind == QAT_RUN_MIXED && !r->mixed_qat) || o->quiet;
        q.data_spec = e->finetune_data;
        q.forget_spec = e->forget_data;
        q.val_permille = e->baseline.val_permille;
        q.steps = r->steps;
        q.eval_every = r->eval_every;
        q.optim = finetune_optim(r->lr, 0, 0);
        if (r->kind == QAT_RUN_MIXED) return execute_mixed(r, dir, &q);
        qat_quantize_result res;
        return r->kind == QAT_RUN_PTQ ? qat_ptq_run(&q, &res) : qat_qat_run(&q, &res);
    }
    case QAT_RUN_QLORA: {
        qat_qlora_options q = {
            .ckpt = base_ckpt,
            .out_dir = dir,
            .data_spec = e->finetune_data,
            .forget_spec = e->forget_data,
            .data_dir = o->data_dir,
            .device = o->device,
            .val_permille = e->baseline.val_permille,
            .base = r->lora_base,
            .double_quant = true,
            .rank = r->rank,
            .alpha = r->alpha,
            .dropout = r->dropout,
            .steps = r->steps,
            .batch = e->baseline.batch,
            .eval_every = r->eval_every,
            .seed = r->seed,
            .quiet = o->quiet,
        };
        q.optim = finetune_optim(r->lr, 0, r->warmup);
        qat_qlora_result res;
        return qat_qlora_run(&q, &res);
    }
    }
    QAT_ASSERT_MSG(0, "unknown run kind");
    return QAT_ERR_INVALID;
}

static qat_status execute(const qat_experiment *e, const qat_runner_options *o, const char *root,
                          const qat_run_spec *r, const char *dir)
{
    return e->model == QAT_MODEL_GPT ? execute_text(e, o, root, r, dir) : execute_image(e, o, root, r, dir);
}

/* ------------------------------------------------------------ results.csv */

static qat_status read_summary(const char *dir, qat_json_value **out)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    return qat_json_load(path, out);
}

static double json_number(const qat_json_value *obj, const char *key)
{
    const qat_json_value *v = qat_json_get(obj, key);
    return v && v->type == QAT_JSON_NUMBER ? v->number : 0;
}

static qat_status read_json(const char *dir, const char *name, qat_json_value **out)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return qat_json_load(path, out);
}

/* The columns both headers end with: strategy,budget,avg_bits (empty but
 * for mixed runs), and the row's newline. */
static void mixed_columns(qat_strbuf *sb, const qat_run_spec *r, const qat_json_value *bits)
{
    if (r->kind == QAT_RUN_MIXED)
        qat_strbuf_printf(sb, ",%s,%s,%.4f\n", r->strategy, r->budget, json_number(bits, "avg_bits"));
    else
        qat_strbuf_printf(sb, ",,,\n");
}

static qat_status write_results_image(const char *root, const qat_run_spec *runs, int count, int *written)
{
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "%s\n", QAT_REPORT_RESULTS_HEADER);
    qat_status st = QAT_OK;
    *written = 0;
    for (int i = 0; i < count && st == QAT_OK; i++) {
        const qat_run_spec *r = &runs[i];
        char dir[1200];
        run_dir(root, r, dir, sizeof dir);
        if (!run_finished(dir, r)) continue;
        qat_json_value *sum = NULL;
        st = read_summary(dir, &sum);
        double fp32_acc = 0;
        if (st == QAT_OK && r->kind == QAT_RUN_BASELINE) {
            fp32_acc = json_number(sum, "test_acc");
        } else if (st == QAT_OK) {
            /* The baseline's own test accuracy as the quantization run
             * measured it, so retention compares like with like. */
            fp32_acc = json_number(sum, "fp32_test_acc");
        }
        qat_json_value *bits = NULL;
        if (st == QAT_OK && r->kind == QAT_RUN_MIXED) st = read_json(dir, "bits.json", &bits);
        if (st == QAT_OK) {
            char gran[32] = "", wbits[8] = "";
            if (r->kind != QAT_RUN_BASELINE) qat_granularity_format(r->gran, r->group, gran, sizeof gran);
            /* A mixed run's weight bits vary by layer: avg_bits and bits.csv say them. */
            if (r->kind != QAT_RUN_MIXED)
                snprintf(wbits, sizeof wbits, "%d", r->kind == QAT_RUN_BASELINE || !r->wbits ? 32 : r->wbits);
            bool ptq = r->kind == QAT_RUN_PTQ || (r->kind == QAT_RUN_MIXED && !r->mixed_qat);
            double acc = json_number(sum, "test_acc");
            qat_strbuf_printf(&sb, "%s,%s,%s,%s,%s,%d,%s,%llu,%.6f,%.6f,%.4f,%.0f,%.3f,%.0f", r->id,
                              qat_run_kind_name(r->kind), qat_run_algorithm(r),
                              ptq ? qat_observer_name(r->observer) : "", wbits,
                              r->kind == QAT_RUN_BASELINE || !r->abits ? 32 : r->abits, gran,
                              (unsigned long long)r->seed, acc, json_number(sum, "val_acc"),
                              fp32_acc > 0 ? 100.0 * acc / fp32_acc : 0.0, json_number(sum, "model_bytes"),
                              json_number(sum, "wall_seconds") + json_number(bits, "wall_seconds"),
                              json_number(sum, "peak_device_bytes"));
            mixed_columns(&sb, r, bits);
            ++*written;
        }
        qat_json_free(sum);
        qat_json_free(bits);
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/results.csv", root);
    if (st == QAT_OK) st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

/* --- the gpt's results.csv */

/* NAN when the key is absent: results.csv leaves the field empty. */
static double json_or_nan(const qat_json_value *obj, const char *key)
{
    const qat_json_value *v = qat_json_get(obj, key);
    return v && v->type == QAT_JSON_NUMBER ? v->number : NAN;
}

/* A QAT run trains every parameter of the model and, with LSQ, every weight
 * and input step size, with PACT the input clips it learns (layers whose
 * input comes out of a ReLU): counted from its layers.csv. */
static qat_status qat_trainable(const qat_experiment *e, const qat_run_spec *r, const char *dir,
                                const qat_json_value *summary, double *out)
{
    qat_model_desc desc;
    QAT_TRY(qat_model_desc_init(&desc, &e->baseline.model));
    char path[1400];
    snprintf(path, sizeof path, "%s/layers.csv", dir);
    void *data;
    size_t size;
    QAT_TRY(qat_file_read_all(path, &data, &size));
    static const char header[] = "layer,weight_bits,input_bits,granularity,weight_scheme,scales,";
    qat_status st = QAT_OK;
    double count = json_number(summary, "fp32_bytes") / sizeof(float);
    char *text = data;
    if (strncmp(text, header, strlen(header)) != 0)
        st = qat_error_set(QAT_ERR_FORMAT, "%s:1: expected a header starting '%s'", path, header);
    int line = 1;
    char *p = strchr(text, '\n');
    while (st == QAT_OK && p && p[1]) {
        char *row = p + 1;
        p = strchr(row, '\n');
        if (p) *p = '\0';
        line++;
        /* layer, weight_bits, input_bits, granularity, weight_scheme, scales, ... */
        char *field[6];
        int n = 0;
        for (char *f = row; n < 6 && f; n++) {
            field[n] = f;
            f = strchr(f, ',');
            if (f) *f++ = '\0';
        }
        char *end[3];
        long wbits = n == 6 ? strtol(field[1], &end[0], 10) : 0, abits = n == 6 ? strtol(field[2], &end[1], 10) : 0;
        long long scales = n == 6 ? strtoll(field[5], &end[2], 10) : 0;
        if (n < 6 || *end[0] || *end[1] || *end[2]) {
            st = qat_error_set(QAT_ERR_FORMAT, "%s:%d: expected LAYER,WBITS,ABITS,GRANULARITY,SCHEME,SCALES,...",
                               path, line);
            break;
        }
        int layer = qat_model_layer_find(&desc, field[0]);
        if (layer < 0) {
            st = qat_error_set(QAT_ERR_FORMAT, "%s:%d: no layer '%s' in the experiment's %s", path, line, field[0],
                               qat_model_name(desc.config.kind));
            break;
        }
        bool input = abits < 32, weight = wbits < 32;
        if (r->quantizer == QAT_QUANTIZER_LSQ) count += (weight ? (double)scales : 0) + (input ? 1 : 0);
        if (r->quantizer == QAT_QUANTIZER_PACT && input && desc.layers[layer].input_nonnegative) count += 1;
    }
    free(data);
    *out = count;
    return st;
}

static void csv_number(qat_strbuf *sb, const char *fmt, double v)
{
    qat_strbuf_putc(sb, ',');
    if (isfinite(v)) qat_strbuf_printf(sb, fmt, v);
}

/* The pretrained base on the target and forget domains, as the first of the
 * seed's finished runs that started from it measured it (the fine-tune's
 * before-values first, as they come first in the grid). */
static qat_status base_on_domains(const char *root, const qat_run_spec *runs, int count, uint64_t seed,
                                  double *target, double *forget)
{
    *target = *forget = NAN;
    for (int i = 0; i < count && !(isfinite(*target) && isfinite(*forget)); i++) {
        const qat_run_spec *r = &runs[i];
        if (r->seed != seed || r->kind == QAT_RUN_BASELINE || r->finetune_id[0]) continue;
        char dir[1200];
        run_dir(root, r, dir, sizeof dir);
        if (!run_finished(dir, r)) continue;
        qat_json_value *sum = NULL, *fj = NULL;
        qat_status st = read_json(dir, "summary.json", &sum);
        double t = NAN, f = NAN;
        if (st == QAT_OK && r->kind == QAT_RUN_FINETUNE) {
            st = read_json(dir, "forget.json", &fj);
            t = json_or_nan(sum, "init_val_bpc");
            if (st == QAT_OK) f = json_or_nan(fj, "start_forget_val_bpc");
        } else if (st == QAT_OK && r->kind == QAT_RUN_QLORA) {
            t = json_or_nan(sum, "base_val_bpc");
            f = json_or_nan(sum, "base_forget_val_bpc");
        } else if (st == QAT_OK) {
            t = json_or_nan(sum, "fp32_val_bpc");
            f = json_or_nan(sum, "fp32_forget_val_bpc");
        }
        qat_json_free(sum);
        qat_json_free(fj);
        QAT_TRY(st);
        if (!isfinite(*target)) *target = t;
        if (!isfinite(*forget)) *forget = f;
    }
    return QAT_OK;
}

static qat_status text_row(const qat_experiment *e, const char *root, const qat_run_spec *runs, int count,
                           const qat_run_spec *r, const char *dir, qat_strbuf *sb)
{
    qat_json_value *sum = NULL, *fj = NULL, *bits = NULL;
    QAT_TRY(read_json(dir, "summary.json", &sum));
    double val = json_or_nan(sum, "val_bpc"), forget = json_or_nan(sum, "forget_val_bpc"), start = NAN;
    double trainable = json_number(sum, "trainable_params"), bytes = json_number(sum, "model_bytes");
    double seconds = json_number(sum, "wall_seconds");
    int wbits = 32, abits = 32;
    char gran[32] = "";
    qat_status st = QAT_OK;
    switch (r->kind) {
    case QAT_RUN_BASELINE:
        /* Without [finetune] the pretraining corpus is the only domain. */
        if (e->has_finetune) st = base_on_domains(root, runs, count, r->seed, &val, &forget);
        else forget = NAN;
        break;
    case QAT_RUN_FINETUNE:
        st = read_json(dir, "forget.json", &fj);
        forget = json_or_nan(fj, "forget_val_bpc");
        start = json_or_nan(sum, "init_val_bpc");
        seconds += json_number(fj, "seconds");
        break;
    case QAT_RUN_PTQ:
    case QAT_RUN_QAT:
    case QAT_RUN_MIXED:
        start = json_or_nan(sum, "fp32_val_bpc");
        wbits = r->kind == QAT_RUN_MIXED ? 0 : r->wbits ? r->wbits : 32;
        abits = r->abits ? r->abits : 32;
        qat_granularity_format(r->gran, r->group, gran, sizeof gran);
        trainable = 0;
        if (r->kind == QAT_RUN_QAT || (r->kind == QAT_RUN_MIXED && r->mixed_qat))
            st = qat_trainable(e, r, dir, sum, &trainable);
        if (st == QAT_OK && r->kind == QAT_RUN_MIXED) {
            st = read_json(dir, "bits.json", &bits);
            seconds += json_number(bits, "wall_seconds");
        }
        break;
    case QAT_RUN_QLORA:
        start = json_or_nan(sum, "base_val_bpc");
        if (r->lora_base != QAT_LORA_BASE_FP32) {
            wbits = 4;
            snprintf(gran, sizeof gran, "block:%d", QAT_Q4_BLOCK);
        }
        /* The model as it runs: the adapted layers' frozen weights as they
         * sit on the device, every other parameter and the adapters in FP32. */
        bytes = (json_number(sum, "params") - json_number(sum, "base_params")) * sizeof(float) +
                json_number(sum, "base_device_bytes") + trainable * sizeof(float);
        break;
    }
    if (st == QAT_OK) {
        char w[8] = "";
        if (wbits) snprintf(w, sizeof w, "%d", wbits);
        qat_strbuf_printf(sb, "%s,%s,%s,%s,%s,%d,%s,%llu", r->id, qat_run_kind_name(r->kind), qat_run_algorithm(r),
                          r->kind == QAT_RUN_BASELINE ? "" : r->finetune_id[0] ? "finetune" : "base", w, abits,
                          gran, (unsigned long long)r->seed);
        csv_number(sb, "%.6f", val);
        csv_number(sb, "%.6f", forget);
        csv_number(sb, "%.6f", start);
        csv_number(sb, "%.0f", trainable);
        csv_number(sb, "%.0f", bytes);
        csv_number(sb, "%.3f", seconds);
        csv_number(sb, "%.0f", json_number(sum, "peak_device_bytes"));
        mixed_columns(sb, r, bits);
    }
    qat_json_free(sum);
    qat_json_free(fj);
    qat_json_free(bits);
    return st;
}

static qat_status write_results_text(const qat_experiment *e, const char *root, const qat_run_spec *runs, int count,
                                     int *written)
{
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "%s\n", QAT_REPORT_TEXT_RESULTS_HEADER);
    qat_status st = QAT_OK;
    *written = 0;
    for (int i = 0; i < count && st == QAT_OK; i++) {
        char dir[1200];
        run_dir(root, &runs[i], dir, sizeof dir);
        if (!run_finished(dir, &runs[i])) continue;
        st = text_row(e, root, runs, count, &runs[i], dir, &sb);
        *written += st == QAT_OK;
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/results.csv", root);
    if (st == QAT_OK) st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

static qat_status write_results(const qat_experiment *e, const char *root, const qat_run_spec *runs, int count,
                                int *written)
{
    if (e->model == QAT_MODEL_GPT) return write_results_text(e, root, runs, count, written);
    return write_results_image(root, runs, count, written);
}

/* ------------------------------------------------------------ the runner */

qat_status qat_runner_run(const qat_runner_options *o)
{
    qat_experiment e;
    QAT_TRY(qat_experiment_load(o->spec_path, &e));
    qat_run_spec *runs;
    int count;
    QAT_TRY(qat_experiment_expand(&e, &runs, &count));
    char root[1024];
    if (snprintf(root, sizeof root, "%s/%s", o->runs_root ? o->runs_root : "runs", e.name) >= (int)sizeof root)
        return qat_error_set(QAT_ERR_INVALID, "--runs-dir: path too long");
    int selected = 0;
    for (int i = 0; i < count; i++) selected += qat_runner_in_shard(runs, count, i, o->shard_index, o->shard_count);

    qat_status st = QAT_OK;
    if (o->dry_run) {
        printf("%s: %d runs into %s/", o->spec_path, count, root);
        if (o->shard_count > 1) printf(" (shard %d/%d: %d of them)", o->shard_index, o->shard_count, selected);
        printf("\n");
        for (int i = 0; i < count; i++) {
            char dir[1200], what[600];
            run_dir(root, &runs[i], dir, sizeof dir);
            describe(&e, &runs[i], what, sizeof what);
            bool mine = qat_runner_in_shard(runs, count, i, o->shard_index, o->shard_count);
            printf("  %-44s %-9s %s\n", runs[i].id, !mine ? "(other)" : run_finished(dir, &runs[i]) ? "finished" : "to run",
                   what);
        }
        free(runs);
        return QAT_OK;
    }

    st = qat_mkdir_p(root);
    char path[1400];
    if (st == QAT_OK) {
        /* The spec beside its results: `qat report` re-expands it. */
        void *spec;
        size_t size;
        st = qat_file_read_all(o->spec_path, &spec, &size);
        snprintf(path, sizeof path, "%s/experiment.ini", root);
        if (st == QAT_OK) st = qat_file_write_atomic(path, spec, size);
        if (st == QAT_OK) free(spec);
    }
    int done = 0, skipped = 0;
    double t0 = qat_now();
    for (int i = 0; i < count && st == QAT_OK; i++) {
        const qat_run_spec *r = &runs[i];
        if (!qat_runner_in_shard(runs, count, i, o->shard_index, o->shard_count)) continue;
        char dir[1200], what[600];
        run_dir(root, r, dir, sizeof dir);
        describe(&e, r, what, sizeof what);
        done++;
        if (run_finished(dir, r)) {
            skipped++;
            if (!o->quiet) printf("[%d/%d] %s: %s (finished, reused)\n", done, selected, r->id, what);
            continue;
        }
        if (!o->quiet) printf("[%d/%d] %s: %s\n", done, selected, r->id, what);
        fflush(stdout);
        double start = qat_now();
        st = qat_remove_tree(dir);
        if (st == QAT_OK) st = qat_mkdir_p(dir);
        if (st == QAT_OK) st = execute(&e, o, root, r, dir);
        snprintf(path, sizeof path, "%s/settings.txt", dir);
        if (st == QAT_OK) st = qat_file_write_atomic(path, r->settings, strlen(r->settings));
        if (st != QAT_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", qat_error_message());
            st = qat_error_set(st, "run %s: %s", r->id, msg);
        } else if (!o->quiet) {
            printf("[%d/%d] %s: done in %.1f s\n", done, selected, r->id, qat_now() - start);
        }
    }
    int written = 0;
    if (st == QAT_OK) st = write_results(&e, root, runs, count, &written);
    if (st == QAT_OK && !o->quiet)
        printf("%s: %d runs (%d reused) in %.1f s; %d finished runs in %s/results.csv\n", e.name, done, skipped,
               qat_now() - t0, written, root);
    free(runs);
    if (st == QAT_OK && !o->no_report) {
        qat_report_options ro = { root, o->device, o->data_dir, o->quiet };
        st = qat_report_build(&ro);
    }
    return st;
}

qat_status qat_runner_report(const char *dir, const char *device, const char *data_dir, bool quiet)
{
    char spec[1400];
    snprintf(spec, sizeof spec, "%s/experiment.ini", dir);
    qat_experiment e;
    QAT_TRY(qat_experiment_load(spec, &e));
    qat_run_spec *runs;
    int count;
    QAT_TRY(qat_experiment_expand(&e, &runs, &count));
    int written;
    qat_status st = write_results(&e, dir, runs, count, &written);
    free(runs);
    if (st != QAT_OK) return st;
    qat_report_options ro = { dir, device, data_dir, quiet };
    return qat_report_build(&ro);
}
