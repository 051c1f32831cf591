#include "qat/runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qat/fileio.h"
#include "qat/json.h"
#include "qat/progress.h"
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

bool qat_runner_in_shard(const qat_run_spec *runs, int count, int r, int shard_index, int shard_count)
{
    if (shard_count <= 1) return true;
    if (runs[r].kind != QAT_RUN_BASELINE) {
        int k = 0;
        for (int i = 0; i < r; i++) k += runs[i].kind != QAT_RUN_BASELINE;
        return k % shard_count == shard_index - 1;
    }
    for (int i = 0; i < count; i++)
        if (runs[i].kind != QAT_RUN_BASELINE && strcmp(runs[i].baseline_id, runs[r].id) == 0 &&
            qat_runner_in_shard(runs, count, i, shard_index, shard_count))
            return true;
    return false;
}

static void describe(const qat_run_spec *r, char *out, size_t size)
{
    char gran[32];
    qat_granularity_format(r->gran, r->group, gran, sizeof gran);
    if (r->kind == QAT_RUN_BASELINE)
        snprintf(out, size, "FP32 baseline, seed %llu", (unsigned long long)r->seed);
    else
        snprintf(out, size, "%s %s W%dA%d %s%s%s, seed %llu", r->kind == QAT_RUN_PTQ ? "PTQ" : "QAT",
                 qat_run_algorithm(r), r->wbits ? r->wbits : 32, r->abits ? r->abits : 32, gran,
                 r->kind == QAT_RUN_PTQ ? " " : "", r->kind == QAT_RUN_PTQ ? qat_observer_name(r->observer) : "",
                 (unsigned long long)r->seed);
}

static qat_status execute(const qat_experiment *e, const qat_runner_options *o, const char *root,
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
    qat_quantize_options q = {
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
        .val_count = e->baseline.val_count,
        .quiet = true,
        .gptq = r->gptq,
        .quantizer = r->quantizer,
        .epochs = r->epochs,
        .train_limit = e->baseline.train_limit,
    };
    q.optim = qat_optim_defaults(QAT_OPTIM_ADAMW, r->lr);
    q.optim.weight_decay = 0;
    q.optim.schedule = QAT_SCHEDULE_COSINE;
    q.optim.warmup_steps = 0;
    qat_quantize_result res;
    return r->kind == QAT_RUN_PTQ ? qat_ptq_run(&q, &res) : qat_qat_run(&q, &res);
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

static qat_status write_results(const char *root, const qat_run_spec *runs, int count, int *written)
{
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "run_id,kind,algorithm,observer,w_bits,a_bits,granularity,seed,test_acc,val_acc,"
                           "retention_pct,model_bytes,seconds,peak_device_bytes\n");
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
        if (st == QAT_OK) {
            char gran[32] = "";
            if (r->kind != QAT_RUN_BASELINE) qat_granularity_format(r->gran, r->group, gran, sizeof gran);
            double acc = json_number(sum, "test_acc");
            qat_strbuf_printf(&sb, "%s,%s,%s,%s,%d,%d,%s,%llu,%.6f,%.6f,%.4f,%.0f,%.3f,%.0f\n", r->id,
                              r->kind == QAT_RUN_BASELINE ? "baseline" : r->kind == QAT_RUN_PTQ ? "ptq" : "qat",
                              qat_run_algorithm(r), r->kind == QAT_RUN_PTQ ? qat_observer_name(r->observer) : "",
                              r->kind == QAT_RUN_BASELINE || !r->wbits ? 32 : r->wbits,
                              r->kind == QAT_RUN_BASELINE || !r->abits ? 32 : r->abits, gran,
                              (unsigned long long)r->seed, acc, json_number(sum, "val_acc"),
                              fp32_acc > 0 ? 100.0 * acc / fp32_acc : 0.0, json_number(sum, "model_bytes"),
                              json_number(sum, "wall_seconds"), json_number(sum, "peak_device_bytes"));
            ++*written;
        }
        qat_json_free(sum);
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/results.csv", root);
    if (st == QAT_OK) st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
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
            char dir[1200], what[160];
            run_dir(root, &runs[i], dir, sizeof dir);
            describe(&runs[i], what, sizeof what);
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
        char dir[1200], what[160];
        run_dir(root, r, dir, sizeof dir);
        describe(r, what, sizeof what);
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
    if (st == QAT_OK) st = write_results(root, runs, count, &written);
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
    qat_status st = write_results(dir, runs, count, &written);
    free(runs);
    if (st != QAT_OK) return st;
    qat_report_options ro = { dir, device, data_dir, quiet };
    return qat_report_build(&ro);
}
