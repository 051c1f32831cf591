/* Model-level quantization: bit maps, quantized checkpoints (layout, size,
 * round trip, validation). The numerics under them are tested in
 * test_quant.c, test_observer.c and test_gptq.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qat/fileio.h"
#include "qat/observer.h"
#include "qat/qmodel.h"
#include "qat/safetensors.h"
#include "tests/test_util.h"

TestSuite(qmodel, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

static qat_status parse_map(qat_qconfig *c, const char *text)
{
    static qat_model_desc mlp;
    qat_model_desc_default(&mlp, QAT_MODEL_MLP);
    qat_qconfig_uniform(c, &mlp, 4, 8, QAT_GRAN_CHANNEL, 0);
    return qat_qconfig_parse_bits_map(c, text, strlen(text), "map.txt");
}

Test(qmodel, bit_map_overrides_the_listed_layers)
{
    qat_qconfig c;
    cr_assert_eq(parse_map(&c, "# layer w a\n\nfc1  2 fp32  group:64   # first\n\tfc3 fp32 6 tensor\n"), QAT_OK,
                 "%s", qat_error_message());
    cr_expect_eq(c.layers[0].wbits, 2);
    cr_expect_eq(c.layers[0].abits, 0);
    cr_expect_eq(c.layers[0].gran, QAT_GRAN_GROUP);
    cr_expect_eq(c.layers[0].group, 64);
    cr_expect_eq(c.layers[1].wbits, 4, "unlisted layers keep the uniform settings");
    cr_expect_eq(c.layers[1].abits, 8);
    cr_expect_eq(c.layers[1].gran, QAT_GRAN_CHANNEL);
    cr_expect_eq(c.layers[2].wbits, 0);
    cr_expect_eq(c.layers[2].abits, 6);
    cr_expect_eq(c.layers[2].gran, QAT_GRAN_TENSOR);
    qat_qconfig_set_ends_8bit(&c);
    cr_expect(c.ends_8bit);
    cr_expect_eq(c.layers[0].wbits, 8);
    cr_expect_eq(c.layers[0].abits, 0, "an FP32 input stays FP32");
    cr_expect_eq(c.layers[2].wbits, 0, "an FP32 weight stays FP32");
    cr_expect_eq(c.layers[2].abits, 8);
    cr_expect_eq(c.layers[1].wbits, 4);
}

static void expect_map_error(const char *text, const char *needle1, const char *needle2)
{
    qat_qconfig c;
    cr_expect_eq(parse_map(&c, text), QAT_ERR_INVALID, "accepted: %s", text);
    const char *msg = qat_error_message();
    cr_expect(strstr(msg, needle1) && (!needle2 || strstr(msg, needle2)), "message for \"%s\": %s", text, msg);
    cr_expect(!strchr(msg, '\n'), "one line: %s", msg);
}

Test(qmodel, bad_bit_maps_name_the_line)
{
    expect_map_error("fc1 4 8\nfc9 4 8\n", "map.txt:2:", "unknown layer 'fc9' (mlp has fc1, fc2, fc3)");
    expect_map_error("\n\nfc1 9 8\n", "map.txt:3:", "weight bits '9'");
    expect_map_error("fc1 4 1\n", "map.txt:1:", "activation bits '1'");
    expect_map_error("fc1 4 eight\n", "map.txt:1:", "'eight'");
    expect_map_error("fc1 4\n", "map.txt:1:", "expected 'LAYER WEIGHT_BITS ACT_BITS [GRANULARITY]'");
    expect_map_error("fc1 4 8 channel extra\n", "map.txt:1:", "got 5 fields");
    expect_map_error("fc1 4 8 group:0\n", "map.txt:1:", "granularity 'group:0'");
    expect_map_error("fc2 4 8\nfc2 3 8\n", "map.txt:2:", "listed twice");
    expect_map_error("conv1 4 8\n", "map.txt:1:", "unknown layer 'conv1'");
}

Test(qmodel, bit_map_runs_give_rows_their_own_widths)
{
    qat_qconfig c;
    cr_assert_eq(parse_map(&c, "fc1 2x200+3x56 fp32 group:16\nfc2 5x256 8\n"), QAT_OK, "%s", qat_error_message());
    cr_expect_eq(c.layers[0].wbits, 3, "wbits is the widest run");
    cr_expect_eq(c.layers[0].wruns.count, 2);
    qat_qscheme s = qat_qconfig_weight_scheme(&c, 0);
    cr_expect_eq(s.runs.count, 2);
    cr_expect_eq(qat_qscheme_row_bits(&s, 199), 2);
    cr_expect_eq(qat_qscheme_row_bits(&s, 200), 3);
    cr_expect_eq(c.layers[1].wbits, 5);
    cr_expect_eq(c.layers[1].wruns.count, 0, "one run is a plain width");
    qat_qconfig_set_ends_8bit(&c);
    cr_expect_eq(c.layers[0].wbits, 8);
    cr_expect_eq(c.layers[0].wruns.count, 0, "--ends-8bit replaces the runs");
    expect_map_error("fc1 2x200+3x55 8\n", "map.txt:1:", "cover 255 rows, layer 'fc1' has 256");
    expect_map_error("fc1 2x255+3x1 8 tensor\n", "map.txt:1:", "not tensor");
    expect_map_error("fc1 2x200,3x56 8\n", "map.txt:1:", "runs of rows BITSxROWS");
    expect_map_error("fc3 9x10 8\n", "map.txt:1:", "'9x10'");
}

Test(qmodel, missing_bit_map_names_the_file)
{
    qat_qconfig c;
    qat_model_desc cnn;
    qat_model_desc_default(&cnn, QAT_MODEL_CNN);
    qat_qconfig_uniform(&c, &cnn, 4, 8, QAT_GRAN_CHANNEL, 0);
    cr_expect_neq(qat_qconfig_load_bits_map(&c, "/nonexistent/bits.map"), QAT_OK);
    cr_expect(strstr(qat_error_message(), "/nonexistent/bits.map"), "%s", qat_error_message());
}

/* An mlp with random parameters; layer 0 at 4 bits per group of 64 (affine),
 * layer 1 at 8 bits per channel, layer 2 FP32 with 3-bit inputs. */
static void make_model(qat_qmodel *qm, uint64_t seed)
{
    test_random_mlp(qm, seed, 0.2f);
    const qat_qscheme schemes[2] = { {.bits = 4, .symmetric = false, .gran = QAT_GRAN_GROUP, .group = 64}, {.bits = 8, .symmetric = true, .gran = QAT_GRAN_CHANNEL, .group = 0} };
    for (int i = 0; i < 2; i++) {
        const qat_layer_info *info = &qm->desc.layers[i];
        int64_t n = qat_qscheme_scale_count(&schemes[i], info->rows, info->cols);
        float *scale = malloc((size_t)n * sizeof *scale);
        int32_t *zp = malloc((size_t)n * sizeof *zp);
        uint8_t *codes = malloc((size_t)qm->numel[2 * i]);
        qat_weight_qparams(qm->values[2 * i], info->rows, info->cols, &schemes[i], QAT_OBS_MINMAX, scale, zp);
        qat_quantize_weight(qm->values[2 * i], info->rows, info->cols, &schemes[i], scale, zp, codes);
        qat_qmodel_set_weight(qm, i, &schemes[i], codes, scale, zp);
        free(scale), free(zp), free(codes);
    }
    qat_qmodel_set_input(qm, 1, 8, false, 0.0123f, 0);
    qat_qmodel_set_input(qm, 2, 3, false, 0.5f, 2);
}

Test(qmodel, quantized_checkpoint_round_trips_and_its_size_is_model_bytes)
{
    qat_qmodel qm, back;
    make_model(&qm, 42);
    const char *path = test_tmp_path("q.safetensors");
    const char *extra[] = { "seed", "9", NULL };
    cr_assert_eq(qat_qmodel_save(&qm, path, extra), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(qat_qmodel_load(path, &back), QAT_OK, "%s", qat_error_message());
    cr_expect(back.quantized);
    for (int i = 0; i < qm.nparams; i++)
        cr_expect_arr_eq(back.values[i], qm.values[i], (size_t)qm.numel[i] * sizeof(float), "param %d", i);
    for (int i = 0; i < 3; i++) {
        const qat_qlayer *a = &qm.layers[i], *b = &back.layers[i];
        cr_expect_eq(a->wbits, b->wbits);
        cr_expect_eq(a->abits, b->abits);
        if (a->wbits) {
            cr_expect_eq(a->nscales, b->nscales);
            cr_expect_arr_eq(a->codes, b->codes, (size_t)qm.numel[2 * i]);
            cr_expect_arr_eq(a->w_scale, b->w_scale, (size_t)a->nscales * sizeof(float));
            cr_expect_arr_eq(a->w_zero_point, b->w_zero_point, (size_t)a->nscales * sizeof(int32_t));
            cr_expect_eq(a->wscheme.gran, b->wscheme.gran);
            cr_expect_eq(a->wscheme.group, b->wscheme.group);
            cr_expect_eq(a->wscheme.symmetric, b->wscheme.symmetric);
        }
        if (a->abits) {
            cr_expect_eq(a->a_scale, b->a_scale);
            cr_expect_eq(a->a_zero_point, b->a_zero_point);
        }
    }

    /* The layout docs/checkpoints.md promises, read with the plain reader. */
    qat_st_file *f;
    cr_assert_eq(qat_st_load(path, &f), QAT_OK);
    const qat_st_tensor *q = qat_st_find(f, "fc1.weight_q");
    cr_assert_not_null(q);
    cr_expect_eq(q->dtype, QAT_ST_U8);
    cr_expect_eq(q->ndim, 1);
    cr_expect_eq(q->shape[0], 256u * 784u / 2u);
    const uint8_t *bytes = q->data;
    for (int j = 0; j < 1000; j++) {
        cr_expect_eq(bytes[j] >> 4, qm.layers[0].codes[2 * j], "element %d in the high nibble", 2 * j);
        cr_expect_eq(bytes[j] & 15, qm.layers[0].codes[2 * j + 1]);
    }
    const qat_st_tensor *s = qat_st_find(f, "fc1.weight_scale");
    cr_expect(s && s->dtype == QAT_ST_F32 && s->ndim == 2 && s->shape[0] == 256 && s->shape[1] == 13,
              "per group of 64 over 784 inputs: (256, 13) scales");
    const qat_st_tensor *z = qat_st_find(f, "fc2.weight_zero_point");
    cr_expect(z && z->dtype == QAT_ST_I32 && z->ndim == 1 && z->shape[0] == 256);
    cr_expect_eq(((const int32_t *)z->data)[0], 128, "a symmetric 8-bit grid has zero point 128");
    const qat_st_tensor *q2 = qat_st_find(f, "fc2.weight_q");
    cr_expect(q2 && q2->ndim == 2 && q2->shape[0] == 256 && q2->shape[1] == 256, "8-bit codes keep the shape");
    cr_expect(qat_st_find(f, "fc3.weight") && !qat_st_find(f, "fc3.weight_q"), "fc3 stays FP32");
    cr_expect_str_eq(qat_st_metadata(f, "fc1.weight_bits"), "4");
    cr_expect_str_eq(qat_st_metadata(f, "fc1.weight_granularity"), "group:64");
    cr_expect_str_eq(qat_st_metadata(f, "fc3.input_bits"), "3");
    cr_expect_str_eq(qat_st_metadata(f, "format"), "qat-quant-v2");
    cr_expect_str_eq(qat_st_metadata(f, "seed"), "9");
    uint64_t data_bytes = 0;
    for (size_t i = 0; i < qat_st_count(f); i++) data_bytes += qat_st_tensor_at(f, i)->nbytes;
    qat_st_free(f);

    uint64_t expected = 256 * 784 / 2 + 256 * 13 * 8            /* fc1: codes, scales, zero points */
                        + 256 * 256 + 256 * 8                    /* fc2 */
                        + 10 * 256 * 4                           /* fc3 FP32 */
                        + (256 + 256 + 10) * 4 + 2 * 8;          /* biases, input scales and zero points */
    cr_expect_eq(qat_qmodel_bytes(&qm), expected);
    cr_expect_eq(data_bytes, expected);
    void *file;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &file, &size), QAT_OK);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--) header = header << 8 | ((uint8_t *)file)[i];
    cr_expect_eq(size, 8 + header + expected, "the file is its header plus model_bytes");
    free(file);
    qat_qmodel_free(&qm);
    qat_qmodel_free(&back);
}

/* A layer whose rows mix widths: metadata "BxN+...", codes as one 1-D
 * stream, each row at its width; loads back the same, and its bytes are
 * what model_bytes counts. */
Test(qmodel, per_row_widths_round_trip)
{
    qat_qmodel qm, back;
    test_random_mlp(&qm, 7, 0.2f);
    qat_qscheme s = {.bits = 8, .symmetric = false, .gran = QAT_GRAN_CHANNEL};
    cr_assert(qat_bit_runs_parse("8x3+2x100+5x153", &s.runs));
    const qat_layer_info *info = &qm.desc.layers[0];
    float scale[256];
    int32_t zp[256];
    uint8_t *codes = malloc((size_t)qm.numel[0]);
    qat_weight_qparams(qm.values[0], info->rows, info->cols, &s, QAT_OBS_MINMAX, scale, zp);
    qat_quantize_weight(qm.values[0], info->rows, info->cols, &s, scale, zp, codes);
    qat_qmodel_set_weight(&qm, 0, &s, codes, scale, zp);
    const char *path = test_tmp_path("runs.safetensors");
    cr_assert_eq(qat_qmodel_save(&qm, path, NULL), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(qat_qmodel_load(path, &back), QAT_OK, "%s", qat_error_message());
    cr_expect_arr_eq(back.layers[0].codes, codes, (size_t)qm.numel[0]);
    cr_expect_arr_eq(back.values[0], qm.values[0], (size_t)qm.numel[0] * sizeof(float));
    cr_expect_eq(back.layers[0].wscheme.runs.count, 3);
    cr_expect_eq(back.layers[0].wbits, 8);
    qat_st_file *f;
    cr_assert_eq(qat_st_load(path, &f), QAT_OK);
    cr_expect_str_eq(qat_st_metadata(f, "fc1.weight_bits"), "8x3+2x100+5x153");
    const qat_st_tensor *q = qat_st_find(f, "fc1.weight_q");
    const uint64_t stream = (784ull * (3 * 8 + 100 * 2 + 153 * 5) + 7) / 8;
    cr_assert(q && q->ndim == 1 && q->shape[0] == stream, "one stream of %llu bytes", (unsigned long long)stream);
    cr_expect_eq(((const uint8_t *)q->data)[0], codes[0], "row 0 is 8-bit: its first code is the first byte");
    qat_st_free(f);
    uint64_t fp32_bytes = 0;
    for (int i = 1; i < qm.nparams; i++) fp32_bytes += (uint64_t)qm.numel[i] * 4;
    cr_expect_eq(qat_qmodel_bytes(&qm), stream + 256 * 8 + fp32_bytes);
    free(codes);
    qat_qmodel_free(&back);

    /* Runs that do not cover the rows, or come with per-tensor scales, are refused. */
    const char *bad[][2] = {{"8x3+2x100", "covers 103 rows"}, {"2x256x", "runs BITSxROWS"}};
    for (size_t i = 0; i < QAT_ARRAY_LEN(bad); i++) {
        const char *extra[] = {"fc1.weight_bits", bad[i][0], NULL};
        /* extra metadata is written after the layer's own, so it replaces it */
        cr_assert_eq(qat_qmodel_save(&qm, path, extra), QAT_OK);
        cr_expect_neq(qat_qmodel_load(path, &back), QAT_OK, "loaded weight_bits %s", bad[i][0]);
        cr_expect(strstr(qat_error_message(), bad[i][1]) && strstr(qat_error_message(), "fc1.weight_bits"), "%s",
                  qat_error_message());
    }
    qat_qmodel_free(&qm);
}

/* Rewrites one tensor's bytes in place in a saved file. */
static void poke(const char *path, const char *tensor, size_t offset, const void *value, size_t n)
{
    void *file;
    size_t size;
    cr_assert_eq(qat_file_read_all(path, &file, &size), QAT_OK);
    qat_st_file *f;
    cr_assert_eq(qat_st_load(path, &f), QAT_OK);
    const qat_st_tensor *t = qat_st_find(f, tensor);
    cr_assert_not_null(t);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--) header = header << 8 | ((uint8_t *)file)[i];
    /* qat's writer lays the data out in header order without gaps. */
    uint8_t *data = (uint8_t *)file + 8 + header;
    size_t pos = 0;
    for (size_t i = 0; qat_st_tensor_at(f, i) != t; i++) pos += qat_st_tensor_at(f, i)->nbytes;
    memcpy(data + pos + offset, value, n);
    qat_st_free(f);
    cr_assert_eq(qat_file_write_atomic(path, file, size), QAT_OK);
    free(file);
}

Test(qmodel, corrupt_quantized_checkpoints_name_the_tensor)
{
    qat_qmodel qm, back;
    make_model(&qm, 7);
    const char *path = test_tmp_path("bad.safetensors");
    cr_assert_eq(qat_qmodel_save(&qm, path, NULL), QAT_OK);
    int32_t bad_zp = 300;
    poke(path, "fc2.weight_zero_point", 4, &bad_zp, 4);
    cr_expect_eq(qat_qmodel_load(path, &back), QAT_ERR_FORMAT);
    cr_expect(strstr(qat_error_message(), "fc2.weight_zero_point") && strstr(qat_error_message(), "300"), "%s",
              qat_error_message());

    cr_assert_eq(qat_qmodel_save(&qm, path, NULL), QAT_OK);
    float bad_scale = -1.0f;
    poke(path, "fc3.input_scale", 0, &bad_scale, 4);
    cr_expect_eq(qat_qmodel_load(path, &back), QAT_ERR_FORMAT);
    cr_expect(strstr(qat_error_message(), "fc3.input_scale"), "%s", qat_error_message());
    qat_qmodel_free(&qm);
}
