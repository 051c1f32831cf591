#include <criterion/criterion.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qat/fileio.h"
#include "qat/safetensors.h"
#include "tests/test_util.h"

TestSuite(safetensors, .init = test_tmpdir_make, .fini = test_tmpdir_remove);

#define assert_error_mentions(text)                                                               \
    cr_assert(strstr(qat_error_message(), (text)), "message \"%s\" does not mention \"%s\"",      \
              qat_error_message(), (text))

Test(safetensors, dtype_names_and_sizes_follow_the_spec)
{
    static const struct {
        qat_st_dtype dtype;
        const char *name;
        size_t size;
    } want[] = {
        {QAT_ST_BOOL, "BOOL", 1},       {QAT_ST_U8, "U8", 1},     {QAT_ST_I8, "I8", 1},
        {QAT_ST_F8_E5M2, "F8_E5M2", 1}, {QAT_ST_F8_E4M3, "F8_E4M3", 1},
        {QAT_ST_I16, "I16", 2},         {QAT_ST_U16, "U16", 2},   {QAT_ST_F16, "F16", 2},
        {QAT_ST_BF16, "BF16", 2},       {QAT_ST_I32, "I32", 4},   {QAT_ST_U32, "U32", 4},
        {QAT_ST_F32, "F32", 4},         {QAT_ST_F64, "F64", 8},   {QAT_ST_I64, "I64", 8},
        {QAT_ST_U64, "U64", 8},
    };
    cr_assert_eq(sizeof want / sizeof want[0], QAT_ST_DTYPE_COUNT);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert_str_eq(qat_st_dtype_name(want[i].dtype), want[i].name);
        cr_assert_eq(qat_st_dtype_size(want[i].dtype), want[i].size);
        qat_st_dtype d;
        cr_assert(qat_st_dtype_from_name(want[i].name, &d));
        cr_assert_eq(d, want[i].dtype);
    }
    qat_st_dtype d;
    cr_assert_not(qat_st_dtype_from_name("f32", &d));
    cr_assert_not(qat_st_dtype_from_name("F4", &d));
}

/* Byte-for-byte outputs of the reference implementation, from the tests in
 * huggingface/safetensors safetensors/src/tensor.rs (test_serialization,
 * test_empty). */
Test(safetensors, writer_output_matches_reference_serializer_bytes)
{
    static const unsigned char attn[] = {
        64,  0,   0,   0,   0,   0,   0,   0,   123, 34,  97,  116, 116, 110, 46,  48,  34,  58,
        123, 34,  100, 116, 121, 112, 101, 34,  58,  34,  70,  51,  50,  34,  44,  34,  115, 104,
        97,  112, 101, 34,  58,  91,  49,  44,  50,  44,  51,  93,  44,  34,  100, 97,  116, 97,
        95,  111, 102, 102, 115, 101, 116, 115, 34,  58,  91,  48,  44,  50,  52,  93,  125, 125,
        0,   0,   0,   0,   0,   0,   128, 63,  0,   0,   0,   64,  0,   0,   64,  64,  0,   0,
        128, 64,  0,   0,   160, 64};
    static const unsigned char empty[] = {8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32};
    static const unsigned char meta[] = {
        40,  0,   0,   0,  0,   0,   0,   0,   123, 34,  95,  95,  109, 101, 116, 97, 100,
        97,  116, 97,  95, 95,  34,  58,  123, 34,  102, 114, 97,  109, 101, 119, 111, 114,
        107, 34,  58,  34, 112, 116, 34,  125, 125, 32,  32,  32,  32,  32};

    qat_st_writer w;
    qat_st_writer_init(&w);
    const float values[] = {0, 1, 2, 3, 4, 5};
    const uint64_t shape[] = {1, 2, 3};
    cr_assert_eq(qat_st_writer_add(&w, "attn.0", QAT_ST_F32, shape, 3, values, sizeof values), QAT_OK);
    void *data;
    size_t size;
    qat_st_writer_serialize(&w, &data, &size);
    cr_assert_eq(size, sizeof attn);
    cr_assert_arr_eq(data, attn, sizeof attn);
    free(data);
    qat_st_writer_free(&w);

    qat_st_writer_init(&w);
    qat_st_writer_serialize(&w, &data, &size);
    cr_assert_eq(size, sizeof empty);
    cr_assert_arr_eq(data, empty, sizeof empty);
    free(data);

    qat_st_writer_set_metadata(&w, "framework", "pt");
    qat_st_writer_serialize(&w, &data, &size);
    cr_assert_eq(size, sizeof meta);
    cr_assert_arr_eq(data, meta, sizeof meta);
    free(data);
    qat_st_writer_free(&w);

    /* And the reader accepts all three. */
    qat_st_file *f;
    cr_assert_eq(qat_st_load_memory(attn, sizeof attn, "attn", &f), QAT_OK, "%s", qat_error_message());
    const qat_st_tensor *t = qat_st_find(f, "attn.0");
    cr_assert_not_null(t);
    cr_assert_arr_eq(t->data, values, sizeof values);
    qat_st_free(f);
    cr_assert_eq(qat_st_load_memory(empty, sizeof empty, "empty", &f), QAT_OK);
    cr_assert_eq(qat_st_count(f), 0);
    cr_assert_null(qat_st_metadata(f, "framework"));
    qat_st_free(f);
    cr_assert_eq(qat_st_load_memory(meta, sizeof meta, "meta", &f), QAT_OK);
    cr_assert_str_eq(qat_st_metadata(f, "framework"), "pt");
    qat_st_free(f);
}

Test(safetensors, save_and_load_round_trips_tensors_metadata_and_order)
{
    qat_st_writer w;
    qat_st_writer_init(&w);
    /* A 3-byte U8 tensor first puts the F32 data at an odd file offset. */
    const uint8_t bytes[3] = {7, 8, 9};
    const float weights[2][2] = {{1.5f, -2.0f}, {0.25f, 1e30f}};
    const int64_t steps[1] = {-5};
    const double scalar = 0.1;
    const uint64_t s3[] = {3}, s22[] = {2, 2}, s1[] = {1}, s0[] = {4, 0};
    cr_assert_eq(qat_st_writer_add(&w, "bytes", QAT_ST_U8, s3, 1, bytes, 3), QAT_OK);
    cr_assert_eq(qat_st_writer_add(&w, "layer.weight", QAT_ST_F32, s22, 2, weights, sizeof weights),
                 QAT_OK);
    cr_assert_eq(qat_st_writer_add(&w, "steps", QAT_ST_I64, s1, 1, steps, sizeof steps), QAT_OK);
    cr_assert_eq(qat_st_writer_add(&w, "scalar", QAT_ST_F64, NULL, 0, &scalar, sizeof scalar), QAT_OK);
    cr_assert_eq(qat_st_writer_add(&w, "nothing", QAT_ST_F32, s0, 2, NULL, 0), QAT_OK);
    qat_st_writer_set_metadata(&w, "epoch", "3");
    qat_st_writer_set_metadata(&w, "note", "quote \" backslash \\ newline \n caf\xc3\xa9");
    qat_st_writer_set_metadata(&w, "epoch", "4"); /* replaces, keeps position */
    const char *path = test_tmp_path("model.safetensors");
    cr_assert_eq(qat_st_writer_save(&w, path), QAT_OK, "%s", qat_error_message());
    qat_st_writer_free(&w);

    /* The header length is a multiple of 8, as the reference writer pads. */
    void *raw;
    size_t raw_size;
    cr_assert_eq(qat_file_read_all(path, &raw, &raw_size), QAT_OK);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)((unsigned char *)raw)[i] << (8 * i);
    cr_assert_eq(n % 8, 0);
    cr_assert_eq(raw_size, 8 + n + 3 + sizeof weights + sizeof steps + sizeof scalar);
    cr_assert_eq(((char *)raw)[8 + n - 1] == ' ' || ((char *)raw)[8 + n - 1] == '}', 1);
    free(raw);

    qat_st_file *f;
    cr_assert_eq(qat_st_load(path, &f), QAT_OK, "%s", qat_error_message());
    cr_assert_eq(qat_st_count(f), 5);
    const char *order[] = {"bytes", "layer.weight", "steps", "scalar", "nothing"};
    for (size_t i = 0; i < 5; i++) cr_assert_str_eq(qat_st_tensor_at(f, i)->name, order[i]);

    const qat_st_tensor *t = qat_st_find(f, "layer.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, QAT_ST_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 2);
    cr_assert_eq(t->nbytes, sizeof weights);
    cr_assert_eq((uintptr_t)t->data % 4, 0, "data must be aligned for its dtype");
    const float *fw = t->data;
    cr_assert_eq(fw[0], 1.5f);
    cr_assert_eq(fw[3], 1e30f);

    t = qat_st_find(f, "bytes");
    cr_assert_arr_eq(t->data, bytes, 3);
    t = qat_st_find(f, "steps");
    cr_assert_eq(*(const int64_t *)t->data, -5);
    t = qat_st_find(f, "scalar");
    cr_assert_eq(t->ndim, 0);
    cr_assert_eq(*(const double *)t->data, 0.1);
    t = qat_st_find(f, "nothing");
    cr_assert_eq(t->nbytes, 0);
    cr_assert_eq(t->shape[1], 0);
    cr_assert_null(qat_st_find(f, "absent"));

    cr_assert_str_eq(qat_st_metadata(f, "epoch"), "4");
    cr_assert_str_eq(qat_st_metadata(f, "note"), "quote \" backslash \\ newline \n caf\xc3\xa9");
    cr_assert_null(qat_st_metadata(f, "missing"));
    cr_assert_eq(qat_st_metadata_count(f), 2);
    const char *k, *v;
    qat_st_metadata_at(f, 0, &k, &v);
    cr_assert_str_eq(k, "epoch");
    qat_st_free(f);
}

Test(safetensors, writer_add_rejects_bad_tensors)
{
    qat_st_writer w;
    qat_st_writer_init(&w);
    const float x[4] = {0};
    const uint64_t s4[] = {4}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    cr_assert_eq(qat_st_writer_add(&w, "x", QAT_ST_F32, s4, 1, x, sizeof x), QAT_OK);
    cr_assert_eq(qat_st_writer_add(&w, "x", QAT_ST_F32, s4, 1, x, sizeof x), QAT_ERR_INVALID);
    assert_error_mentions("\"x\" added twice");
    cr_assert_eq(qat_st_writer_add(&w, "y", QAT_ST_F32, s4, 1, x, 12), QAT_ERR_INVALID);
    assert_error_mentions("\"y\"");
    cr_assert_eq(qat_st_writer_add(&w, "z", QAT_ST_F32, s9, 9, x, sizeof x), QAT_ERR_INVALID);
    assert_error_mentions("9 dimensions");
    cr_assert_eq(qat_st_writer_add(&w, "__metadata__", QAT_ST_F32, s4, 1, x, sizeof x), QAT_ERR_INVALID);
    cr_assert_eq(qat_st_writer_add(&w, "", QAT_ST_F32, s4, 1, x, sizeof x), QAT_ERR_INVALID);
    cr_assert_eq(w.count, 1);
    qat_st_writer_free(&w);
}

Test(safetensors, save_to_unwritable_path_reports_it)
{
    qat_st_writer w;
    qat_st_writer_init(&w);
    const char *path = test_tmp_path("missing-dir/model.safetensors");
    cr_assert_eq(qat_st_writer_save(&w, path), QAT_ERR_IO);
    assert_error_mentions(path);
    qat_st_writer_free(&w);
}

/* ------------------------------------------------------------------ golden fixture */

Test(safetensors, reads_python_generated_fixture)
{
    const char *path = test_data_path("golden/fixture.safetensors");
    cr_assert_not_null(path, "tests/golden/fixture.safetensors not found (set QAT_GOLDEN_DIR to "
                             "the tests/golden directory)");
    qat_st_file *f;
    cr_assert_eq(qat_st_load(path, &f), QAT_OK, "%s", qat_error_message());

    /* Values as in tests/golden/gen_safetensors_fixture.py. */
    cr_assert_eq(qat_st_count(f), 9);
    cr_assert_str_eq(qat_st_metadata(f, "format"), "pt");
    cr_assert_str_eq(qat_st_metadata(f, "producer"), "gen_safetensors_fixture.py");
    cr_assert_str_eq(qat_st_metadata(f, "note"), "caf\xc3\xa9 \xe2\x9c\x93 \"quoted\" back\\slash");

    const qat_st_tensor *t = qat_st_find(f, "layer1.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, QAT_ST_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->shape[1], 3);
    const float w[6] = {1.5f, -2.25f, 0.0f, 3.140625f, -1e-3f, 65504.0f};
    cr_assert_arr_eq(t->data, w, sizeof w);

    t = qat_st_find(f, "layer1.bias");
    const int32_t b[3] = {-1, 0, 2147483647};
    cr_assert_eq(t->dtype, QAT_ST_I32);
    cr_assert_arr_eq(t->data, b, sizeof b);

    t = qat_st_find(f, "step_counts");
    const int64_t s[4] = {-(INT64_C(1) << 40), 1, 2, INT64_C(1) << 62};
    cr_assert_eq(t->dtype, QAT_ST_I64);
    cr_assert_arr_eq(t->data, s, sizeof s);

    t = qat_st_find(f, "mask");
    const uint8_t m[5] = {0, 1, 2, 254, 255};
    cr_assert_eq(t->dtype, QAT_ST_U8);
    cr_assert_arr_eq(t->data, m, sizeof m);

    t = qat_st_find(f, "codes");
    const int8_t c[3] = {-128, 0, 127};
    cr_assert_eq(t->dtype, QAT_ST_I8);
    cr_assert_eq(t->ndim, 3);
    cr_assert_arr_eq(t->data, c, sizeof c);

    t = qat_st_find(f, "half"); /* IEEE half 1.0 = 0x3c00, -2.0 = 0xc000 */
    const uint16_t h[2] = {0x3c00, 0xc000};
    cr_assert_eq(t->dtype, QAT_ST_F16);
    cr_assert_arr_eq(t->data, h, sizeof h);

    t = qat_st_find(f, "brain"); /* bfloat16 1.0 = 0x3f80, -0.5 = 0xbf00 */
    const uint16_t bf[2] = {0x3f80, 0xbf00};
    cr_assert_eq(t->dtype, QAT_ST_BF16);
    cr_assert_arr_eq(t->data, bf, sizeof bf);

    t = qat_st_find(f, "scale");
    cr_assert_eq(t->dtype, QAT_ST_F64);
    cr_assert_eq(t->ndim, 0);
    cr_assert_eq(*(const double *)t->data, 2.5);

    t = qat_st_find(f, "empty");
    cr_assert_eq(t->nbytes, 0);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 0);
    qat_st_free(f);
}

/* ------------------------------------------------------------------ bad files */

/* Writes 8-byte length + header + data and returns the path. */
static const char *write_st(const char *name, const char *header, const void *data, size_t dlen)
{
    const char *path = test_tmp_path(name);
    size_t hlen = strlen(header);
    unsigned char *buf = malloc(8 + hlen + dlen + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (dlen) memcpy(buf + 8 + hlen, data, dlen);
    cr_assert_eq(qat_file_write_atomic(path, buf, 8 + hlen + dlen), QAT_OK);
    free(buf);
    return path;
}

/* Loading must fail with QAT_ERR_FORMAT and a one-line message naming the
 * file and containing `reason`. */
static void load_fails(const char *path, const char *reason)
{
    qat_st_file *f = (qat_st_file *)0x1;
    cr_assert_eq(qat_st_load(path, &f), QAT_ERR_FORMAT, "accepted bad file for \"%s\"", reason);
    cr_assert_null(f);
    assert_error_mentions(path);
    assert_error_mentions(reason);
    cr_assert_null(strchr(qat_error_message(), '\n'));
}

static const unsigned char zeros[64];

Test(safetensors, load_of_missing_file_names_it)
{
    const char *path = test_tmp_path("nope.safetensors");
    qat_st_file *f;
    cr_assert_eq(qat_st_load(path, &f), QAT_ERR_IO);
    assert_error_mentions(path);
    assert_error_mentions("No such file");
}

Test(safetensors, load_rejects_files_too_short_or_with_bad_header_length)
{
    const char *path = test_tmp_path("short");
    cr_assert_eq(qat_file_write_atomic(path, "\x10\0\0", 3), QAT_OK);
    load_fails(path, "too short for the 8-byte header length");

    path = test_tmp_path("past_end");
    const unsigned char past[] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    cr_assert_eq(qat_file_write_atomic(path, past, sizeof past), QAT_OK);
    load_fails(path, "header length 200 runs past the end of the 10-byte file");

    path = test_tmp_path("huge");
    const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    cr_assert_eq(qat_file_write_atomic(path, huge, sizeof huge), QAT_OK);
    load_fails(path, "exceeds the 100000000-byte limit");

    load_fails(write_st("not_object", "[1,2]   ", NULL, 0), "does not start with '{'");
    load_fails(write_st("zero_len", "", NULL, 0), "does not start with '{'");
}

Test(safetensors, load_rejects_bad_json_with_header_offset)
{
    load_fails(write_st("badjson", "{\"a\": {\"dtype\": \"F32\",}}", NULL, 0),
               "header: invalid JSON at byte 22");
    load_fails(write_st("dupkey",
                        "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                        "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                        zeros, 2),
               "duplicate key \"a\"");
}

Test(safetensors, load_rejects_missing_or_mistyped_fields_naming_the_tensor)
{
    load_fails(write_st("nodtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", zeros, 4),
               "tensor \"w\": missing \"dtype\"");
    load_fails(write_st("noshape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", zeros, 4),
               "tensor \"w\": missing \"shape\"");
    load_fails(write_st("nooffs", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", zeros, 4),
               "tensor \"w\": missing \"data_offsets\"");
    load_fails(write_st("entry", "{\"w\":[1]}", NULL, 0), "tensor \"w\": entry is an array");
    load_fails(write_st("dtypenum", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", zeros, 4),
               "tensor \"w\": \"dtype\" is a number, expected a string");
    load_fails(write_st("unknown", "{\"w\":{\"dtype\":\"F4\",\"shape\":[1],\"data_offsets\":[0,4]}}", zeros,
                        4),
               "tensor \"w\": unknown dtype \"F4\"");
    load_fails(write_st("shapestr", "{\"w\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}",
                        zeros, 4),
               "tensor \"w\": \"shape\" is a string, expected an array");
    load_fails(write_st("negdim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}",
                        zeros, 4),
               "tensor \"w\": shape[1] is not a non-negative integer");
    load_fails(write_st("fracdim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
                        zeros, 4),
               "tensor \"w\": shape[0] is not a non-negative integer");
    load_fails(write_st("ninedims",
                        "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
                        zeros, 1),
               "tensor \"w\": 9 dimensions");
    load_fails(write_st("offs3", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}",
                        zeros, 1),
               "tensor \"w\": \"data_offsets\" must be two non-negative integers");
    load_fails(write_st("offsneg", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}",
                        zeros, 1),
               "tensor \"w\": \"data_offsets\" must be two non-negative integers");
}

Test(safetensors, load_rejects_metadata_that_is_not_string_to_string)
{
    load_fails(write_st("meta_num", "{\"__metadata__\":{\"epoch\":3}}", NULL, 0),
               "\"__metadata__\" entry \"epoch\" is a number, expected a string");
    load_fails(write_st("meta_arr", "{\"__metadata__\":[]}", NULL, 0),
               "\"__metadata__\" is an array, expected an object");
    load_fails(write_st("meta_nul", "{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", NULL, 0),
               "\"__metadata__\" entry \"k\" contains a NUL");
}

Test(safetensors, load_rejects_shape_that_disagrees_with_offsets)
{
    load_fails(write_st("mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}",
                        zeros, 20),
               "tensor \"w\": shape and dtype F32 need 24 bytes but data_offsets [0, 20] span 20");
    load_fails(write_st("overflow",
                        "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
                        zeros, 8),
               "tensor \"w\": shape element count overflows");
}

Test(safetensors, load_rejects_offsets_out_of_range_overlapping_or_with_gaps)
{
    load_fails(write_st("past", "{\"w\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", zeros, 4),
               "tensor \"w\": data_offsets [0, 8] run past the end of the 4-byte data section");
    load_fails(write_st("backwards", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[3,1]}}",
                        zeros, 4),
               "tensor \"w\": data_offsets [3, 1] end before they begin");
    load_fails(write_st("overlap",
                        "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                        "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
                        zeros, 6),
               "tensor \"b\": data_offsets [2, 6] overlap tensor \"a\"");
    load_fails(write_st("gap",
                        "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                        "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}",
                        zeros, 6),
               "tensor \"b\": data_offsets [4, 6] leave bytes [2, 4) of the data section unused");
    load_fails(write_st("trailing", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", zeros,
                        5),
               "3 bytes after the last tensor's data are not described by the header");
}

Test(safetensors, load_accepts_tensors_listed_out_of_offset_order)
{
    const int32_t vals[3] = {10, 20, 30};
    const char *path = write_st("shuffled",
                                "{\"second\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                                "\"first\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]},"
                                "\"zero\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[12,12]},"
                                "\"extra\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4],"
                                "\"future_field\":true}}",
                                vals, sizeof vals);
    qat_st_file *f;
    cr_assert_eq(qat_st_load(path, &f), QAT_OK, "%s", qat_error_message());
    cr_assert_str_eq(qat_st_tensor_at(f, 0)->name, "second", "iteration follows the header");
    cr_assert_eq(((const int32_t *)qat_st_find(f, "second")->data)[1], 30);
    cr_assert_eq(*(const int32_t *)qat_st_find(f, "first")->data, 10);
    cr_assert_null(qat_st_find(f, "zero")->data);
    qat_st_free(f);
}
