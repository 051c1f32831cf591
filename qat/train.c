#include "qat/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qat/checkpoint.h"
#include "qat/fileio.h"
#include "qat/json.h"
#include "qat/progress.h"
#include "qat/qmodel.h"
#include "qat/rng.h"
#include "qat/version.h"

/* Stream numbers of the run's seed, so each use of randomness is independent
 * of the others and of how many numbers the others drew. */
enum { RNG_STREAM_SHUFFLE = 1 << 20 }; /* below it: parameter init, one stream per tensor */

void qat_image_set_stats(const qat_image_set *set, float *mean, float *std)
{
    size_t n = (size_t)set->count * set->rows * set->cols;
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < n; i++) {
        double v = set->pixels[i] / 255.0;
        sum += v;
        sum2 += v * v;
    }
    double mu = n ? sum / (double)n : 0;
    double var = n ? sum2 / (double)n - mu * mu : 1;
    *mean = (float)mu;
    *std = (float)sqrt(var > 0 ? var : 1);
}

static void fill_batch(qat_graph *g, const qat_model *m, const qat_image_set *set, const uint32_t *indices,
                       float mean, float std)
{
    qat_image_set_batch_f32(set, indices, (uint32_t)m->batch, mean, std, qat_graph_input_slot(g, m->x),
                            qat_graph_input_slot(g, m->labels));
}

qat_status qat_evaluate(qat_graph *g, const qat_model *m, qat_seq *forward, const qat_image_set *set, float mean,
                        float std, qat_eval_result *out)
{
    uint32_t batch = (uint32_t)m->batch;
    qat_graph_set_phase(g, false, 0);
    uint32_t *indices = qat_xmalloc(batch * sizeof *indices);
    double loss_sum = 0;
    uint32_t correct = 0;
    qat_status st = QAT_OK;
    for (uint32_t start = 0; start < set->count && st == QAT_OK; start += batch) {
        uint32_t valid = set->count - start < batch ? set->count - start : batch;
        for (uint32_t i = 0; i < batch; i++) indices[i] = start + (i < valid ? i : 0);
        fill_batch(g, m, set, indices, mean, std);
        st = qat_seq_run(forward);
        if (st != QAT_OK) break;
        const float *logits = qat_graph_output_slot(g, m->logits);
        int classes = (int)qat_tensor_get(g, m->logits)->shape[1];
        for (uint32_t i = 0; i < valid; i++) {
            const float *row = logits + (size_t)i * classes;
            int label = set->labels[start + i];
            int best = 0;
            for (int j = 1; j < classes; j++)
                if (row[j] > row[best]) best = j;
            double mx = row[best], s = 0;
            for (int j = 0; j < classes; j++) s += exp((double)row[j] - mx);
            loss_sum += log(s) + mx - row[label];
            correct += best == label;
        }
    }
    free(indices);
    out->count = set->count;
    out->loss = set->count ? loss_sum / set->count : 0;
    out->accuracy = set->count ? (double)correct / set->count : 0;
    return st;
}

typedef struct run_state {
    qat_ctx *ctx;
    qat_graph *g;
    qat_seq *train, *forward;
    qat_fashion_mnist data;
    bool data_loaded;
} run_state;

static void run_state_free(run_state *s)
{
    qat_seq_free(s->train);
    qat_seq_free(s->forward);
    qat_graph_free(s->g);
    qat_ctx_free(s->ctx);
    if (s->data_loaded) qat_fashion_mnist_free(&s->data);
}

static void write_config_json(qat_strbuf *sb, const qat_train_options *o)
{
    qat_strbuf_printf(sb, "{\"model\": ");
    qat_json_write_string(sb, qat_model_name(o->model.kind));
    qat_strbuf_printf(sb, ", \"epochs\": %d, \"batch\": %d, \"seed\": %llu, \"optimizer\": ", o->epochs, o->batch,
                      (unsigned long long)o->seed);
    qat_json_write_string(sb, qat_optim_name(o->optim.kind));
    qat_strbuf_printf(sb, ", \"lr\": ");
    qat_json_write_number(sb, o->optim.lr);
    qat_strbuf_printf(sb, ", \"momentum\": ");
    qat_json_write_number(sb, o->optim.momentum);
    qat_strbuf_printf(sb, ", \"weight_decay\": ");
    qat_json_write_number(sb, o->optim.weight_decay);
    qat_strbuf_printf(sb, ", \"schedule\": \"%s\", \"warmup_steps\": %d, \"val_count\": %u, \"train_limit\": %u}",
                      o->optim.schedule == QAT_SCHEDULE_COSINE ? "cosine" : "constant", o->optim.warmup_steps,
                      o->val_count, o->train_limit);
}

static qat_status write_summary(const qat_train_options *o, const qat_train_result *r, const qat_ctx *ctx,
                                float mean, float std, const char *path)
{
    qat_strbuf sb;
    qat_strbuf_init(&sb);
    qat_strbuf_printf(&sb, "{\n  \"kind\": \"train\",\n  \"model\": ");
    qat_json_write_string(&sb, qat_model_name(o->model.kind));
    qat_strbuf_printf(&sb, ",\n  \"test_acc\": ");
    qat_json_write_number(&sb, r->test.accuracy);
    qat_strbuf_printf(&sb, ",\n  \"test_loss\": ");
    qat_json_write_number(&sb, r->test.loss);
    qat_strbuf_printf(&sb, ",\n  \"val_acc\": ");
    qat_json_write_number(&sb, r->val.accuracy);
    qat_strbuf_printf(&sb, ",\n  \"val_loss\": ");
    qat_json_write_number(&sb, r->val.loss);
    qat_strbuf_printf(&sb, ",\n  \"train_loss\": ");
    qat_json_write_number(&sb, r->final_train_loss);
    qat_strbuf_printf(&sb, ",\n  \"params\": %lld,\n  \"model_bytes\": %llu,\n  \"seed\": %llu,\n  \"config\": ",
                      (long long)r->params, (unsigned long long)r->model_bytes, (unsigned long long)o->seed);
    write_config_json(&sb, o);
    qat_strbuf_printf(&sb, ",\n  \"input_mean\": ");
    qat_json_write_number(&sb, mean);
    qat_strbuf_printf(&sb, ",\n  \"input_std\": ");
    qat_json_write_number(&sb, std);
    qat_strbuf_printf(&sb, ",\n  \"git_commit\": ");
    qat_json_write_string(&sb, qat_git_commit());
    qat_strbuf_printf(&sb, ",\n  \"device\": ");
    qat_json_write_string(&sb, ctx->info.name);
    char driver[600];
    snprintf(driver, sizeof driver, "%s %s", ctx->info.driver_name, ctx->info.driver_info);
    qat_strbuf_printf(&sb, ",\n  \"driver\": ");
    qat_json_write_string(&sb, driver);
    qat_strbuf_printf(&sb, ",\n  \"wall_seconds\": ");
    qat_json_write_number(&sb, r->wall_seconds);
    qat_strbuf_printf(&sb, ",\n  \"train_seconds\": ");
    qat_json_write_number(&sb, r->train_seconds);
    qat_strbuf_printf(&sb, ",\n  \"images_per_second\": ");
    qat_json_write_number(&sb, r->images_per_second);
    qat_strbuf_printf(&sb, ",\n  \"peak_device_bytes\": %llu\n}\n", (unsigned long long)ctx->peak_device_bytes);
    qat_status st = qat_file_write_atomic(path, sb.data, sb.len);
    qat_strbuf_free(&sb);
    return st;
}

qat_status qat_train_epochs(const qat_epoch_loop *l, qat_epoch_result *r)
{
    memset(r, 0, sizeof *r);
    uint32_t steps_per_epoch = l->train_set->count / (uint32_t)l->m->batch;
    qat_strbuf csv;
    qat_strbuf_init(&csv);
    qat_strbuf_printf(&csv, "epoch,step,train_loss,val_loss,val_acc,seconds\n");
    uint32_t *order = qat_xmalloc(l->train_set->count * sizeof *order);
    qat_status st = QAT_OK;
    int step = 0;
    for (int epoch = 1; epoch <= l->epochs && st == QAT_OK; epoch++) {
        double epoch_start = qat_now();
        for (uint32_t i = 0; i < l->train_set->count; i++) order[i] = i;
        qat_rng rng = qat_rng_init(l->seed, RNG_STREAM_SHUFFLE + (uint64_t)epoch);
        qat_rng_shuffle_u32(&rng, order, l->train_set->count);
        qat_progress bar;
        char label[32];
        snprintf(label, sizeof label, "%s %d/%d", l->label, epoch, l->epochs);
        qat_progress_begin(&bar, label, steps_per_epoch);
        double loss_sum = 0;
        for (uint32_t k = 0; k < steps_per_epoch && st == QAT_OK; k++, step++) {
            fill_batch(l->g, l->m, l->train_set, order + (size_t)k * l->m->batch, l->mean, l->std);
            qat_optim_set_step(l->g, l->optim, step);
            qat_graph_set_phase(l->g, true, (uint32_t)step);
            st = qat_seq_run(l->train);
            if (st != QAT_OK) break;
            float loss = *(const float *)qat_graph_output_slot(l->g, l->m->loss);
            if (!isfinite(loss)) {
                st = qat_error_set(QAT_ERR_INVALID, "training diverged: loss is %g at epoch %d step %d "
                                   "(try a smaller --lr)", (double)loss, epoch, step);
                break;
            }
            loss_sum += loss;
            char status[64];
            snprintf(status, sizeof status, "loss %.4f", loss_sum / (k + 1));
            qat_progress_update(&bar, k + 1, status);
        }
        qat_progress_end(&bar);
        if (st != QAT_OK) break;
        r->train_seconds += qat_now() - epoch_start;
        r->final_train_loss = loss_sum / steps_per_epoch;
        if (l->val_set->count)
            st = qat_evaluate(l->g, l->m, l->forward, l->val_set, l->mean, l->std, &r->val);
        if (st != QAT_OK) break;
        double seconds = qat_now() - epoch_start;
        qat_strbuf_printf(&csv, "%d,%d,%.6f,%.6f,%.6f,%.3f\n", epoch, step, r->final_train_loss, r->val.loss,
                          r->val.accuracy, seconds);
        st = qat_file_write_atomic(l->metrics_path, csv.data, csv.len);
        if (!l->quiet)
            qat_progress_line(&bar, "%s %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.4f  %.1f s", l->label,
                              epoch, l->epochs, r->final_train_loss, r->val.loss, r->val.accuracy, seconds);
    }
    free(order);
    qat_strbuf_free(&csv);
    qat_seq_profile_print(l->train, stderr);
    r->steps = step;
    return st;
}

static qat_status train_loop(const qat_train_options *o, qat_train_result *r, run_state *s, const char *dir)
{
    double t0 = qat_now();
    memset(r, 0, sizeof *r);
    QAT_TRY(qat_fashion_mnist_load(o->data_dir, o->val_count, &s->data));
    s->data_loaded = true;
    if (o->train_limit && o->train_limit < s->data.train.count) s->data.train.count = o->train_limit;
    if (s->data.train.count < (uint32_t)o->batch)
        return qat_error_set(QAT_ERR_INVALID, "--batch %d is larger than the training split (%u images)", o->batch,
                             s->data.train.count);
    QAT_TRY(qat_mkdir_p(dir));
    QAT_TRY(qat_ctx_init(o->device, &s->ctx));

    float mean, std;
    qat_image_set_stats(&s->data.train, &mean, &std);
    s->g = qat_graph_create(s->ctx);
    qat_model_desc desc;
    QAT_TRY(qat_model_desc_init(&desc, &o->model));
    qat_model m;
    qat_model_build(s->g, &desc, o->batch, true, &m);
    int backward_start = qat_graph_backward(s->g, m.loss);
    uint32_t steps_per_epoch = s->data.train.count / (uint32_t)o->batch;
    qat_optim_config optim = o->optim;
    optim.total_steps = (int)steps_per_epoch * o->epochs;
    qat_graph_add_optimizer(s->g, &optim);
    QAT_TRY(qat_graph_compile(s->g));
    QAT_TRY(qat_model_init_params(s->g, &m, o->seed));
    QAT_TRY(qat_seq_create(s->g, 0, qat_graph_node_count(s->g), &s->train));
    QAT_TRY(qat_seq_create(s->g, 0, backward_start, &s->forward));

    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    qat_epoch_loop loop = { s->g, &m, s->train, s->forward, &s->data.train, &s->data.val, mean, std, &optim,
                            o->epochs, o->seed, o->quiet, path, "epoch" };
    qat_epoch_result er;
    QAT_TRY(qat_train_epochs(&loop, &er));
    r->val = er.val;
    r->final_train_loss = er.final_train_loss;
    double train_seconds = er.train_seconds;
    int step = er.steps;
    QAT_TRY(qat_evaluate(s->g, &m, s->forward, &s->data.test, mean, std, &r->test));
    r->params = m.param_count;
    r->model_bytes = (uint64_t)m.param_count * sizeof(float);
    r->train_seconds = train_seconds;
    r->images_per_second = train_seconds > 0 ? (double)step * o->batch / train_seconds : 0;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    const char *extra[] = { "seed", seed, "git_commit", qat_git_commit(), "device", s->ctx->info.name, NULL };
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    QAT_TRY(qat_checkpoint_save(s->g, &m, path, mean, std, extra));
    r->wall_seconds = qat_now() - t0;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    return write_summary(o, r, s->ctx, mean, std, path);
}

qat_status qat_train_run(const qat_train_options *o, qat_train_result *r)
{
    if (o->model.kind == QAT_MODEL_GPT) return qat_train_text_run(o, r);
    run_state s = { 0 };
    qat_status st = train_loop(o, r, &s, o->out_dir);
    run_state_free(&s);
    return st;
}

qat_status qat_eval_checkpoint(const char *path, const char *data_dir, const char *device, qat_eval_result *out)
{
    qat_qmodel qm;
    QAT_TRY(qat_qmodel_load(path, &qm));
    if (qm.desc.config.kind == QAT_MODEL_GPT) {
        qat_qmodel_free(&qm);
        return qat_error_set(QAT_ERR_INVALID, "%s is a gpt checkpoint: pass the text to evaluate on with --data "
                             "(e.g. fortunes:general)", path);
    }
    run_state s = { 0 };
    qat_status st = qat_fashion_mnist_load(data_dir, 0, &s.data);
    s.data_loaded = st == QAT_OK;
    if (st == QAT_OK) st = qat_ctx_init(device, &s.ctx);
    /* 500 divides the 10,000 test images, so no batch is padded. */
    if (st == QAT_OK) st = qat_qmodel_evaluate(&qm, s.ctx, &s.data.test, 500, out);
    run_state_free(&s);
    qat_qmodel_free(&qm);
    return st;
}
