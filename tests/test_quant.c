#include <criterion/criterion.h>

#include <float.h>
#include <string.h>

#include "qat/observer.h"
#include "qat/quant.h"
#include "tests/test_util.h"

#define assert_error_mentions(text)                                                               \
    cr_assert(strstr(qat_error_message(), (text)), "message \"%s\" does not mention \"%s\"",      \
              qat_error_message(), (text))

/* Scales and zero points from torch 1.13's MinMaxObserver(dtype=quint8,
 * quant_min=0, quant_max=2^bits - 1) on the tensor [lo, hi]. */
Test(quant, qparams_affine_match_pytorch)
{
    static const struct {
        float lo, hi;
        int bits;
        float scale;
        int32_t zero;
    } cases[] = {
        {-1.0f, 3.0f, 8, 0x1.010102p-6f, 64},
        {-0.3f, 0.7f, 4, 0x1.111112p-4f, 4},
        {0.5f, 2.0f, 8, 0x1.010102p-7f, 0},    /* range widened down to 0 */
        {-3.0f, -1.0f, 4, 0x1.99999ap-3f, 15}, /* widened up to 0 */
        {2.5f, 2.5f, 8, 0x1.414142p-7f, 0},    /* all values equal */
        {0.0f, 0.0f, 8, 0x1p-23f, 0},          /* FLT_EPSILON floor */
        {-0.1f, 0.2f, 2, 0x1.99999ap-4f, 1},
        {-2.0f, 1e-9f, 8, 0x1.010102p-7f, 255},
        {-0.123f, 0.456f, 3, 0x1.52cc36p-4f, 1},
        {-2.5f, 12.5f, 4, 1.0f, 2}, /* lo / scale = -2.5: half to even */
        {-3.5f, 11.5f, 4, 1.0f, 4}, /* -3.5 -> -4 */
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) {
        float s;
        int32_t z;
        qat_qparams_from_range(cases[i].lo, cases[i].hi, cases[i].bits, false, &s, &z);
        cr_assert(s == cases[i].scale, "case %zu: scale %a, PyTorch %a", i, s, cases[i].scale);
        cr_assert_eq(z, cases[i].zero, "case %zu: zero point %d, PyTorch %d", i, z, cases[i].zero);
    }
}

/* Symmetric: PyTorch's scale (per_tensor_symmetric); the zero point is
 * 2^(bits - 1) as quant.h specifies. */
Test(quant, qparams_symmetric_match_pytorch)
{
    static const struct {
        float lo, hi;
        int bits;
        float scale;
    } cases[] = {
        {-1.0f, 3.0f, 8, 0x1.818182p-6f},
        {-0.3f, 0.7f, 4, 0x1.7e4b18p-4f},
        {-3.0f, -1.0f, 3, 0x1.b6db6ep-1f},
        {0.0f, 0.0f, 4, FLT_EPSILON},
    };
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) {
        float s;
        int32_t z;
        qat_qparams_from_range(cases[i].lo, cases[i].hi, cases[i].bits, true, &s, &z);
        cr_assert(s == cases[i].scale, "case %zu: scale %a, PyTorch %a", i, s, cases[i].scale);
        cr_assert_eq(z, 1 << (cases[i].bits - 1));
    }
}

/* torch.fake_quantize_per_tensor_affine(x, 0.5, 3, 0, 7): codes and values. */
Test(quant, quantize_rounds_half_to_even_and_clamps)
{
    const float x[] = {0.25f, 0.75f, -0.25f, -0.75f, 10.0f, -10.0f, 1.25f, 0.0f};
    const uint8_t want[] = {3, 5, 3, 1, 7, 0, 5, 3};
    const float back[] = {0.0f, 1.0f, 0.0f, -1.0f, 2.0f, -1.5f, 1.0f, 0.0f};
    const qat_qscheme s = {.bits = 3, .symmetric = false, .gran = QAT_GRAN_TENSOR, .group = 0};
    const float scale = 0.5f;
    const int32_t zero = 3;
    uint8_t codes[8];
    float y[8];
    qat_quantize_weight(x, 1, 8, &s, &scale, &zero, codes);
    qat_dequantize_weight(codes, 1, 8, &s, &scale, &zero, y);
    cr_assert_arr_eq(codes, want, sizeof want);
    cr_assert_arr_eq(y, back, sizeof back);
}

/* x * (1 / s), not x / s: for s = 0.1f and x = 1.55f the product rounds to
 * 16 and the quotient to 15; PyTorch gives 16 (1.6000000238). */
Test(quant, quantize_multiplies_by_the_float_reciprocal)
{
    const float x = 0x1.8cccccp+0f, scale = 0.1f; /* 1.55f */
    const int32_t zero = 0;
    const qat_qscheme s = {.bits = 8, .symmetric = false, .gran = QAT_GRAN_TENSOR, .group = 0};
    uint8_t code;
    qat_quantize_weight(&x, 1, 1, &s, &scale, &zero, &code);
    cr_assert_eq(code, 16);
    float y;
    qat_dequantize_weight(&code, 1, 1, &s, &scale, &zero, &y);
    cr_assert(y == 16.0f * 0.1f);
}

Test(quant, scale_count_layout_and_indexing_per_granularity)
{
    const qat_qscheme t = {.bits = 4, .symmetric = false, .gran = QAT_GRAN_TENSOR, .group = 0}, c = {.bits = 4, .symmetric = false, .gran = QAT_GRAN_CHANNEL, .group = 0},
                      g = {.bits = 4, .symmetric = false, .gran = QAT_GRAN_GROUP, .group = 2};
    cr_assert_eq(qat_qscheme_scale_count(&t, 2, 5), 1);
    cr_assert_eq(qat_qscheme_scale_count(&c, 2, 5), 2);
    cr_assert_eq(qat_qscheme_scale_count(&g, 2, 5), 6); /* ceil(5 / 2) = 3 per row */
    qat_fq_layout l = qat_qscheme_layout(&t, 2, 5);
    cr_assert(l.inner == 10 && l.channels == 1 && l.group == 0);
    l = qat_qscheme_layout(&c, 2, 5);
    cr_assert(l.inner == 5 && l.channels == 2 && l.group == 0);
    l = qat_qscheme_layout(&g, 2, 5);
    cr_assert(l.row == 5 && l.group == 2);

    /* Element value = index of its scale element + 1; with scale k + 1 and
     * zero point 8 every code is 9. */
    const float w_t[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const float w_c[10] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 2};
    const float w_g[10] = {1, 1, 2, 2, 3, 4, 4, 5, 5, 6};
    const float scale[6] = {1, 2, 3, 4, 5, 6};
    const int32_t zero[6] = {8, 8, 8, 8, 8, 8};
    const struct {
        const qat_qscheme *s;
        const float *w;
    } cases[] = {{&t, w_t}, {&c, w_c}, {&g, w_g}};
    for (size_t i = 0; i < QAT_ARRAY_LEN(cases); i++) {
        uint8_t codes[10];
        float back[10];
        qat_quantize_weight(cases[i].w, 2, 5, cases[i].s, scale, zero, codes);
        for (int k = 0; k < 10; k++) cr_assert_eq(codes[k], 9, "case %zu element %d: code %d", i, k, codes[k]);
        qat_dequantize_weight(codes, 2, 5, cases[i].s, scale, zero, back);
        cr_assert_arr_eq(back, cases[i].w, sizeof back);
    }
}

Test(quant, pack_layout_is_one_bit_stream_most_significant_bit_first)
{
    const uint8_t codes[5] = {1, 2, 3, 15, 7};
    uint8_t packed[5];
    cr_assert_eq(qat_packed_size(5, 4), 3);
    cr_assert_eq(qat_packed_size(5, 5), 4, "25 bits");
    cr_assert_eq(qat_packed_size(5, 3), 2, "15 bits");
    cr_assert_eq(qat_packed_size(5, 8), 5);
    cr_assert_eq(qat_packed_size(0, 2), 0);
    qat_pack_codes(codes, 5, 4, packed);
    cr_assert_eq(packed[0], 0x12, "element 0 in the high nibble");
    cr_assert_eq(packed[1], 0x3f);
    cr_assert_eq(packed[2], 0x70);
    /* 3 bits: 001 010 011 111 111(7) + one padding bit */
    const uint8_t codes3[5] = {1, 2, 3, 7, 7};
    qat_pack_codes(codes3, 5, 3, packed);
    cr_assert_eq(packed[0], 0x29, "001 010 01");  /* 0010 1001 */
    cr_assert_eq(packed[1], 0xfe, "1 111 111 0"); /* 1111 1110 */
    /* 2 bits: four per byte */
    const uint8_t codes2[5] = {3, 0, 1, 2, 1};
    qat_pack_codes(codes2, 5, 2, packed);
    cr_assert_eq(packed[0], 0xc6); /* 11 00 01 10 */
    cr_assert_eq(packed[1], 0x40); /* 01 000000 */
}

Test(quant, pack_unpack_round_trips_every_width)
{
    test_rng rng = {3};
    const int64_t counts[] = {1, 2, 7, 13, 100, 257};
    for (int bits = QAT_QBITS_MIN; bits <= QAT_QBITS_MAX; bits++)
        for (size_t c = 0; c < QAT_ARRAY_LEN(counts); c++) {
            const int64_t n = counts[c];
            uint8_t codes[257], back[257], packed[258];
            for (int64_t i = 0; i < n; i++) codes[i] = (uint8_t)(test_rng_next(&rng) % (uint64_t)(qat_qmax(bits) + 1));
            codes[0] = (uint8_t)qat_qmax(bits);
            const size_t size = qat_packed_size(n, bits);
            cr_assert_eq(size, (size_t)(n * bits + 7) / 8);
            memset(packed, 0xaa, sizeof packed);
            qat_pack_codes(codes, n, bits, packed);
            cr_assert_eq(packed[size], 0xaa, "nothing written past the packed size");
            cr_assert_eq(qat_unpack_codes(packed, size, n, bits, back, "w"), QAT_OK, "%d bits, %lld codes: %s", bits,
                         (long long)n, qat_error_message());
            cr_assert_arr_eq(back, codes, (size_t)n);
        }
}

Test(quant, unpack_rejects_wrong_sizes_and_nonzero_padding)
{
    uint8_t codes[8];
    const uint8_t p3[2] = {0x12, 0x30};
    cr_assert_eq(qat_unpack_codes(p3, 2, 3, 4, codes, "fc1.weight"), QAT_OK);
    cr_assert_eq(codes[2], 3);
    cr_assert_eq(qat_unpack_codes(p3, 1, 3, 4, codes, "fc1.weight"), QAT_ERR_FORMAT);
    assert_error_mentions("fc1.weight");
    cr_assert_eq(qat_unpack_codes(p3, 2, 3, 6, codes, "fc2.weight"), QAT_ERR_FORMAT, "18 bits take 3 bytes");
    assert_error_mentions("fc2.weight");
    const uint8_t pad[1] = {0x21}; /* one 4-bit code: the low nibble is padding */
    cr_assert_eq(qat_unpack_codes(pad, 1, 1, 4, codes, "z"), QAT_ERR_FORMAT);
    assert_error_mentions("z");
    const uint8_t pad3[2] = {0x29, 0xff}; /* five 3-bit codes: the last bit is padding */
    cr_assert_eq(qat_unpack_codes(pad3, 2, 5, 3, codes, "conv1.weight"), QAT_ERR_FORMAT);
    assert_error_mentions("conv1.weight");
    assert_error_mentions("padding");
    cr_assert_eq(strchr(qat_error_message(), '\n'), NULL);
}

/* qat-quant-v1 checkpoints are still read: nibbles up to 4 bits, bytes above. */
Test(quant, v1_unpack_reads_nibbles_and_bytes_and_rejects_codes_out_of_range)
{
    uint8_t codes[8];
    cr_assert_eq(qat_packed_size_v1(5, 3), 3);
    cr_assert_eq(qat_packed_size_v1(5, 5), 5);
    const uint8_t n3[2] = {0x12, 0x30};
    cr_assert_eq(qat_unpack_codes_v1(n3, 2, 3, 3, codes, "fc1.weight"), QAT_OK);
    cr_assert(codes[0] == 1 && codes[1] == 2 && codes[2] == 3);
    const uint8_t big3[2] = {0x17, 0x80}; /* 8 > 7 at 3 bits */
    cr_assert_eq(qat_unpack_codes_v1(big3, 2, 3, 3, codes, "conv1.weight"), QAT_ERR_FORMAT);
    assert_error_mentions("conv1.weight");
    assert_error_mentions("8");
    const uint8_t big5[2] = {31, 32};
    cr_assert_eq(qat_unpack_codes_v1(big5, 2, 2, 5, codes, "y"), QAT_ERR_FORMAT);
    cr_assert_eq(qat_unpack_codes_v1(big5, 1, 1, 5, codes, "y"), QAT_OK);
    const uint8_t pad[1] = {0x21};
    cr_assert_eq(qat_unpack_codes_v1(pad, 1, 1, 4, codes, "z"), QAT_ERR_FORMAT);
    cr_assert_eq(qat_unpack_codes_v1(n3, 1, 3, 4, codes, "w"), QAT_ERR_FORMAT, "wrong size");
}

Test(quant, granularity_parse_and_format)
{
    qat_granularity g;
    int group = -1;
    cr_assert(qat_granularity_parse("tensor", &g, &group));
    cr_assert_eq(g, QAT_GRAN_TENSOR);
    cr_assert(qat_granularity_parse("channel", &g, &group));
    cr_assert_eq(g, QAT_GRAN_CHANNEL);
    cr_assert(qat_granularity_parse("group:64", &g, &group));
    cr_assert(g == QAT_GRAN_GROUP && group == 64);
    cr_assert(qat_granularity_parse("group:1", &g, &group) && group == 1);
    cr_assert(qat_granularity_parse("group:65536", &g, &group) && group == 65536);
    const char *bad[] = {"",         "group:",     "group:0",     "group:abc", "group:64x", "group:-4",
                         "group:+4", "group: 4",   "group:65537", "group",     "Tensor",    "channel ",
                         "tensors",  "group:1e3",  "group:99999999999999999999"};
    for (size_t i = 0; i < QAT_ARRAY_LEN(bad); i++)
        cr_assert_not(qat_granularity_parse(bad[i], &g, &group), "accepted \"%s\"", bad[i]);

    char buf[32];
    qat_granularity_format(QAT_GRAN_TENSOR, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "tensor");
    qat_granularity_format(QAT_GRAN_CHANNEL, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "channel");
    qat_granularity_format(QAT_GRAN_GROUP, 128, buf, sizeof buf);
    cr_assert_str_eq(buf, "group:128");
    cr_assert(qat_granularity_parse(buf, &g, &group) && g == QAT_GRAN_GROUP && group == 128);
}

/* Per-row widths: runs of output channels, "BxN+BxN". */
Test(quant, bit_runs_parse_merge_and_format)
{
    qat_bit_runs r;
    cr_assert(qat_bit_runs_parse("2x16+3x100+3x12+8x1", &r));
    cr_assert_eq(r.count, 3, "neighbouring runs of one width merge");
    cr_expect_eq(r.bits[1], 3);
    cr_expect_eq(r.rows[1], 112);
    cr_expect_eq(qat_bit_runs_rows(&r), 129);
    cr_expect_eq(qat_bit_runs_max_bits(&r), 8);
    cr_expect_float_eq(qat_bit_runs_mean_bits(&r), (2.0 * 16 + 3.0 * 112 + 8.0) / 129.0, 1e-12);
    char text[QAT_BIT_RUNS_TEXT_MAX];
    qat_bit_runs_format(&r, text, sizeof text);
    cr_expect_str_eq(text, "2x16+3x112+8x1");
    const char *bad[] = {"", "3", "3x", "x3", "9x4", "1x4", "3x0", "3x04", "3x4+", "3x4,2x4", "3x4+2x-1", "3x4 ",
                         "3x99999999999"};
    for (size_t i = 0; i < QAT_ARRAY_LEN(bad); i++) cr_expect(!qat_bit_runs_parse(bad[i], &r), "accepted '%s'", bad[i]);
    /* At most QAT_MAX_BIT_RUNS runs. */
    char many[4 * (QAT_MAX_BIT_RUNS + 1) + 1] = "";
    for (int i = 0; i <= QAT_MAX_BIT_RUNS; i++) strcat(many, i % 2 ? "+3x1" : (i ? "+2x1" : "2x1"));
    cr_expect(!qat_bit_runs_parse(many, &r), "%d runs", QAT_MAX_BIT_RUNS + 1);
    many[strlen(many) - 4] = '\0';
    cr_expect(qat_bit_runs_parse(many, &r));
    cr_expect_eq(r.count, QAT_MAX_BIT_RUNS);
}

/* A scheme with runs quantizes each run of rows exactly as a weight of just
 * those rows at the run's width, and packs one stream: each row's codes at
 * its width, with no padding between runs. */
Test(quant, per_row_widths_match_each_run_quantized_alone)
{
    enum { ROWS = 11, COLS = 7 };
    test_rng rng = {12};
    float w[ROWS * COLS];
    test_fill(&rng, w, ROWS * COLS, -1.3f, 0.9f);
    const qat_granularity grans[] = {QAT_GRAN_CHANNEL, QAT_GRAN_GROUP};
    for (size_t gi = 0; gi < QAT_ARRAY_LEN(grans); gi++) {
        qat_qscheme s = {.bits = 8, .symmetric = gi == 1, .gran = grans[gi], .group = 3};
        cr_assert(qat_bit_runs_parse("3x4+8x2+2x5", &s.runs));
        const int64_t ns = qat_qscheme_scale_count(&s, ROWS, COLS);
        float scale[ROWS * 3], part_scale[ROWS * 3];
        int32_t zero[ROWS * 3], part_zero[ROWS * 3];
        uint8_t codes[ROWS * COLS], part[ROWS * COLS], back[ROWS * COLS];
        qat_weight_qparams(w, ROWS, COLS, &s, QAT_OBS_MSE, scale, zero);
        qat_quantize_weight(w, ROWS, COLS, &s, scale, zero, codes);
        int64_t row = 0, bit_total = 0;
        for (int i = 0; i < s.runs.count; i++) {
            const qat_qscheme one = {.bits = s.runs.bits[i], .symmetric = s.symmetric, .gran = s.gran, .group = 3};
            const int64_t n = s.runs.rows[i], per_row = ns / ROWS;
            qat_weight_qparams(w + row * COLS, n, COLS, &one, QAT_OBS_MSE, part_scale, part_zero);
            qat_quantize_weight(w + row * COLS, n, COLS, &one, part_scale, part_zero, part);
            cr_assert_arr_eq(scale + row * per_row, part_scale, (size_t)(n * per_row) * sizeof(float), "run %d", i);
            cr_assert_arr_eq(zero + row * per_row, part_zero, (size_t)(n * per_row) * sizeof(int32_t), "run %d", i);
            cr_assert_arr_eq(codes + row * COLS, part, (size_t)(n * COLS), "run %d", i);
            for (int64_t j = 0; j < n * COLS; j++) cr_assert_leq(part[j], qat_qmax(s.runs.bits[i]));
            row += n;
            bit_total += n * COLS * s.runs.bits[i];
        }
        const size_t size = qat_qscheme_packed_size(&s, ROWS, COLS);
        cr_assert_eq(size, (size_t)(bit_total + 7) / 8);
        uint8_t packed[ROWS * COLS + 1];
        memset(packed, 0xaa, sizeof packed);
        qat_pack_weight_codes(codes, ROWS, COLS, &s, packed);
        cr_assert_eq(packed[size], 0xaa, "nothing written past the packed size");
        /* The stream's first bits: row 0's first code at 3 bits. */
        cr_assert_eq(packed[0] >> 5, codes[0]);
        cr_assert_eq(qat_unpack_weight_codes(packed, size, ROWS, COLS, &s, back, "w"), QAT_OK, "%s",
                     qat_error_message());
        cr_assert_arr_eq(back, codes, sizeof codes);
        cr_assert_eq(qat_unpack_weight_codes(packed, size - 1, ROWS, COLS, &s, back, "fc1.weight_q"), QAT_ERR_FORMAT);
        assert_error_mentions("fc1.weight_q");
        assert_error_mentions("3x4+8x2+2x5");
        /* Without runs the same functions are the plain stream. */
        qat_qscheme plain = s;
        memset(&plain.runs, 0, sizeof plain.runs);
        plain.bits = 5;
        cr_assert_eq(qat_qscheme_packed_size(&plain, ROWS, COLS), qat_packed_size(ROWS * COLS, 5));
        cr_assert_eq(qat_qscheme_row_bits(&plain, 10), 5);
        cr_assert_eq(qat_qscheme_row_bits(&s, 3), 3);
        cr_assert_eq(qat_qscheme_row_bits(&s, 4), 8);
        cr_assert_eq(qat_qscheme_row_bits(&s, 10), 2);
    }
}
