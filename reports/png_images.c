/* The report's two images drawn pixel by pixel and written with libpng: the
 * quantization-error heatmap of one layer and the grid of test images with
 * the predictions of the FP32 and the lowest-bit model. */
#include <float.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/fashion_mnist.h"
#include "qat/context.h"
#include "qat/nn.h"
#include "qat/observer.h"
#include "qat/qmodel.h"
#include "qat/quant.h"
#include "reports/report_internal.h"

/* --- canvas --- */

void report_image_init(report_rgb_image *im, int width, int height, uint8_t r, uint8_t g, uint8_t b)
{
    im->width = width, im->height = height;
    im->rgb = qat_xmalloc((size_t)width * height * 3);
    for (size_t i = 0; i < (size_t)width * height; i++) im->rgb[3 * i] = r, im->rgb[3 * i + 1] = g, im->rgb[3 * i + 2] = b;
}

void report_image_free(report_rgb_image *im)
{
    free(im->rgb);
    im->rgb = NULL;
}

static void put_pixel(report_rgb_image *im, int x, int y, const uint8_t rgb[3])
{
    if (x < 0 || y < 0 || x >= im->width || y >= im->height) return;
    memcpy(im->rgb + ((size_t)y * im->width + x) * 3, rgb, 3);
}

static void fill_rect(report_rgb_image *im, int x0, int y0, int w, int h, const uint8_t rgb[3])
{
    for (int y = y0; y < y0 + h; y++)
        for (int x = x0; x < x0 + w; x++) put_pixel(im, x, y, rgb);
}

/* A 5x7 bitmap font for the few labels drawn into the images (digits, bit
 * widths, exponents): the images must not depend on a font being
 * installed. Rows top to bottom, bit 4 the leftmost column. */
typedef struct glyph {
    char c;
    uint8_t rows[7];
} glyph;

static const glyph font[] = {
    { '0', { 0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E } }, { '1', { 0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E } },
    { '2', { 0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F } }, { '3', { 0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E } },
    { '4', { 0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02 } }, { '5', { 0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E } },
    { '6', { 0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E } }, { '7', { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08 } },
    { '8', { 0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E } }, { '9', { 0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C } },
    { '.', { 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C } }, { '-', { 0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x00 } },
    { '+', { 0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00 } }, { 'e', { 0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E } },
    { 'b', { 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E } }, { 'i', { 0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E } },
    { 't', { 0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06 } }, { 'W', { 0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A } },
    { 'A', { 0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11 } }, { 'F', { 0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10 } },
    { 'P', { 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10 } }, { ' ', { 0, 0, 0, 0, 0, 0, 0 } },
};

#define GLYPH_W 5
#define GLYPH_H 7

static int text_width(const char *s, int scale) { return (int)strlen(s) * (GLYPH_W + 1) * scale - scale; }

static void draw_text(report_rgb_image *im, int x, int y, const char *s, int scale, const uint8_t rgb[3])
{
    for (; *s; s++, x += (GLYPH_W + 1) * scale) {
        const glyph *g = NULL;
        for (size_t i = 0; i < QAT_ARRAY_LEN(font) && !g; i++)
            if (font[i].c == *s) g = &font[i];
        QAT_ASSERT_MSG(g, "a character the report's bitmap font lacks");
        for (int row = 0; row < GLYPH_H; row++)
            for (int col = 0; col < GLYPH_W; col++)
                if (g->rows[row] & (0x10 >> col)) fill_rect(im, x + col * scale, y + row * scale, scale, scale, rgb);
    }
}

/* --- PNG --- */

static void png_to_strbuf(png_structp png, png_bytep data, png_size_t size)
{
    qat_strbuf_append(png_get_io_ptr(png), (const char *)data, size);
}

static void png_flush_nothing(png_structp png) { (void)png; }

qat_status report_png_write(const char *path, const report_rgb_image *im)
{
    qat_strbuf out = { 0 };
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return qat_error_set(QAT_ERR_NOMEM, "%s: libpng could not start", path);
    }
    png_bytep *rows = qat_xmalloc((size_t)im->height * sizeof *rows);
    for (int y = 0; y < im->height; y++) rows[y] = im->rgb + (size_t)y * im->width * 3;
    /* libpng reports its errors by longjmp; nothing this function changes
     * between here and there lives in a register-allocated local. */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        qat_strbuf_free(&out);
        return qat_error_set(QAT_ERR_IO, "%s: libpng failed to encode the image", path);
    }
    png_set_write_fn(png, &out, png_to_strbuf, png_flush_nothing);
    png_set_IHDR(png, info, (png_uint_32)im->width, (png_uint_32)im->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    qat_status st = qat_file_write_atomic(path, out.data, out.len);
    qat_strbuf_free(&out);
    return st;
}

/* --- heatmap --- */

/* viridis (van der Walt and Smith, matplotlib), ten evenly spaced stops;
 * perceptually uniform and readable in grey and by colour-blind readers. */
static const uint8_t viridis_stops[10][3] = {
    { 0x44, 0x01, 0x54 }, { 0x48, 0x28, 0x78 }, { 0x3E, 0x4A, 0x89 }, { 0x31, 0x68, 0x8E }, { 0x26, 0x82, 0x8E },
    { 0x1F, 0x9E, 0x89 }, { 0x35, 0xB7, 0x79 }, { 0x6D, 0xCD, 0x59 }, { 0xB4, 0xDE, 0x2C }, { 0xFD, 0xE7, 0x25 },
};

static void viridis(double t, uint8_t out[3])
{
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double pos = t * 9;
    int i = (int)pos < 8 ? (int)pos : 8;
    double f = pos - i;
    for (int k = 0; k < 3; k++)
        out[k] = (uint8_t)lrint(viridis_stops[i][k] + f * (viridis_stops[i + 1][k] - viridis_stops[i][k]));
}

#define HEATMAP_MAX_SIDE 256
#define HEATMAP_DECADES 3.0
static const int heatmap_bits[REPORT_HEATMAP_BITS] = { 2, 3, 4, 8 };

/* Colour of an error on the shared logarithmic scale. */
static double heat_position(double err, double lo, double hi)
{
    if (err <= lo) return 0;
    return log10(err / lo) / log10(hi / lo);
}

qat_status report_heatmap_build(const char *checkpoint, const char *png_path, report_heatmap_info *info)
{
    memset(info, 0, sizeof *info);
    qat_qmodel qm;
    QAT_TRY(qat_qmodel_load(checkpoint, &qm));
    /* A hidden layer: the first and last are often kept at 8 bits, and these
     * are the largest matrices the quantizers work on. */
    int layer = qat_model_layer_find(&qm.desc, qm.desc.config.kind == QAT_MODEL_MLP ? "fc2" : "fc1");
    QAT_ASSERT(layer >= 0);
    const qat_layer_info *li = &qm.desc.layers[layer];
    const float *w = qm.values[li->weight];
    int64_t rows = li->rows, cols = li->cols, n = rows * cols;
    int shown_rows = (int)(rows < HEATMAP_MAX_SIDE ? rows : HEATMAP_MAX_SIDE);
    int shown_cols = (int)(cols < HEATMAP_MAX_SIDE ? cols : HEATMAP_MAX_SIDE);
    snprintf(info->layer, sizeof info->layer, "%s", li->name);
    info->rows = rows, info->cols = cols, info->shown_rows = shown_rows, info->shown_cols = shown_cols;

    float *err[REPORT_HEATMAP_BITS];
    float *scale = qat_xmalloc((size_t)rows * sizeof *scale), *deq = qat_xmalloc((size_t)n * sizeof *deq);
    int32_t *zero_point = qat_xmalloc((size_t)rows * sizeof *zero_point);
    uint8_t *codes = qat_xmalloc((size_t)n);
    double w_sq = 0, hi = 0;
    for (int64_t i = 0; i < n; i++) w_sq += (double)w[i] * w[i];
    for (int b = 0; b < REPORT_HEATMAP_BITS; b++) {
        qat_qscheme s = {.bits = heatmap_bits[b], .symmetric = true, .gran = QAT_GRAN_CHANNEL, .group = 0};
        qat_weight_qparams(w, rows, cols, &s, QAT_OBS_MINMAX, scale, zero_point);
        qat_quantize_weight(w, rows, cols, &s, scale, zero_point, codes);
        qat_dequantize_weight(codes, rows, cols, &s, scale, zero_point, deq);
        err[b] = qat_xmalloc((size_t)n * sizeof **err);
        double sum = 0, sq = 0, max = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = fabs((double)w[i] - deq[i]);
            err[b][i] = (float)e;
            sum += e, sq += e * e, max = fmax(max, e);
        }
        info->stats[b] = (report_heatmap_stats){ heatmap_bits[b], sum / (double)n, max,
                                                 w_sq > 0 ? sqrt(sq / w_sq) : 0 };
        hi = fmax(hi, max);
    }
    free(scale), free(deq), free(zero_point), free(codes);
    if (hi <= 0) hi = FLT_MIN;
    double lo = hi * pow(10, -HEATMAP_DECADES);
    info->scale_lo = lo, info->scale_hi = hi;

    /* Panels side by side with their titles above, then the colour bar with
     * a label at each power of ten. */
    const int margin = 16, gap = 14, title_h = 28, bar_w = 16, bar_gap = 14, label_w = 60;
    int width = margin + REPORT_HEATMAP_BITS * shown_cols + (REPORT_HEATMAP_BITS - 1) * gap + bar_gap + bar_w + 6 +
                label_w + margin;
    int height = margin + title_h + shown_rows + margin;
    report_rgb_image im;
    report_image_init(&im, width, height, 255, 255, 255);
    const uint8_t ink[3] = { 40, 40, 40 };
    uint8_t rgb[3];
    int top = margin + title_h;
    for (int b = 0; b < REPORT_HEATMAP_BITS; b++) {
        int x0 = margin + b * (shown_cols + gap);
        char title[16];
        snprintf(title, sizeof title, "%d bit", heatmap_bits[b]);
        draw_text(&im, x0 + (shown_cols - text_width(title, 2)) / 2, margin, title, 2, ink);
        for (int y = 0; y < shown_rows; y++)
            for (int x = 0; x < shown_cols; x++) {
                viridis(heat_position(err[b][(int64_t)y * cols + x], lo, hi), rgb);
                put_pixel(&im, x0 + x, top + y, rgb);
            }
    }
    int bar_x = margin + REPORT_HEATMAP_BITS * shown_cols + (REPORT_HEATMAP_BITS - 1) * gap + bar_gap;
    for (int y = 0; y < shown_rows; y++) {
        viridis(1.0 - (double)y / (shown_rows - 1 > 0 ? shown_rows - 1 : 1), rgb);
        fill_rect(&im, bar_x, top + y, bar_w, 1, rgb);
    }
    for (int e = (int)ceil(log10(lo) - 1e-9); e <= (int)floor(log10(hi) + 1e-9); e++) {
        int y = top + (int)lrint((1.0 - heat_position(pow(10, e), lo, hi)) * (shown_rows - 1));
        char label[16];
        snprintf(label, sizeof label, "1e%d", e);
        fill_rect(&im, bar_x + bar_w, y, 4, 1, ink);
        draw_text(&im, bar_x + bar_w + 7, y - GLYPH_H, label, 2, ink);
    }
    qat_status st = report_png_write(png_path, &im);
    report_image_free(&im);
    for (int b = 0; b < REPORT_HEATMAP_BITS; b++) free(err[b]);
    qat_qmodel_free(&qm);
    return st;
}

/* --- test-image grid --- */

#define GRID_UPSCALE 3
#define GRID_PREDICT_COUNT 1000u
#define GRID_MAX_DISAGREEMENTS (REPORT_GRID_CELLS / 2)

static const uint8_t correct_green[3] = { 0x1A, 0x9E, 0x3A }, wrong_red[3] = { 0xD6, 0x27, 0x28 };

static void draw_grid(const qat_image_set *set, const report_grid_info *info, report_rgb_image *im)
{
    const int side = 28 * GRID_UPSCALE, pad = 10, number_h = 11, bar_h = 6, bar_gap = 2;
    const int cell_w = side + pad, cell_h = number_h + side + bar_gap + 2 * bar_h + bar_gap + pad;
    report_image_init(im, pad + REPORT_GRID_COLS * cell_w, pad + REPORT_GRID_ROWS * cell_h, 255, 255, 255);
    const uint8_t ink[3] = { 60, 60, 60 };
    for (int c = 0; c < info->ncells; c++) {
        const report_grid_cell *cell = &info->cells[c];
        int x0 = pad + (c % REPORT_GRID_COLS) * cell_w, y0 = pad + (c / REPORT_GRID_COLS) * cell_h;
        char number[16];
        snprintf(number, sizeof number, "%d", c + 1);
        draw_text(im, x0, y0, number, 1, ink);
        const uint8_t *pixels = set->pixels + (size_t)cell->index * set->rows * set->cols;
        for (uint32_t y = 0; y < set->rows; y++)
            for (uint32_t x = 0; x < set->cols; x++) {
                /* Dark clothing on a light ground, as a photograph would show it. */
                uint8_t v = (uint8_t)(255 - pixels[y * set->cols + x]);
                uint8_t grey[3] = { v, v, v };
                fill_rect(im, x0 + (int)x * GRID_UPSCALE, y0 + number_h + (int)y * GRID_UPSCALE, GRID_UPSCALE,
                          GRID_UPSCALE, grey);
            }
        int bar_y = y0 + number_h + side + bar_gap;
        fill_rect(im, x0, bar_y, side, bar_h, cell->fp32_pred == cell->label ? correct_green : wrong_red);
        fill_rect(im, x0, bar_y + bar_h + bar_gap, side, bar_h, cell->low_pred == cell->label ? correct_green : wrong_red);
    }
}

/* Up to half the cells show images where the two models disagree (what
 * quantization broke or fixed), the rest the first of the others, all in
 * test-set order. */
static void choose_cells(const qat_image_set *set, const int *fp32, const int *low, uint32_t count,
                         report_grid_info *info)
{
    bool chosen[GRID_PREDICT_COUNT] = { false };
    int disagreements = 0, picked = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (fp32[i] == set->labels[i]) info->fp32_correct++;
        if (low[i] == set->labels[i]) info->low_correct++;
        if (fp32[i] != low[i]) {
            info->disagreements++;
            if (disagreements < GRID_MAX_DISAGREEMENTS) chosen[i] = true, disagreements++, picked++;
        }
    }
    for (uint32_t i = 0; i < count && picked < REPORT_GRID_CELLS; i++)
        if (!chosen[i]) chosen[i] = true, picked++;
    for (uint32_t i = 0; i < count; i++)
        if (chosen[i])
            info->cells[info->ncells++] = (report_grid_cell){ i, set->labels[i], fp32[i], low[i] };
}

qat_status report_grid_build(const char *fp32_checkpoint, const char *low_checkpoint, const char *device,
                             const char *data_dir, const char *png_path, report_grid_info *info)
{
    memset(info, 0, sizeof *info);
    qat_qmodel fp32, low;
    QAT_TRY(qat_qmodel_load(fp32_checkpoint, &fp32));
    qat_status st = qat_qmodel_load(low_checkpoint, &low);
    if (st != QAT_OK) {
        qat_qmodel_free(&fp32);
        return st;
    }
    if (low.desc.config.kind != fp32.desc.config.kind) {
        st = qat_error_set(QAT_ERR_FORMAT, "%s is a %s, %s a %s", low_checkpoint,
                           qat_model_name(low.desc.config.kind), fp32_checkpoint,
                           qat_model_name(fp32.desc.config.kind));
    }
    qat_fashion_mnist data;
    memset(&data, 0, sizeof data);
    if (st == QAT_OK) st = qat_fashion_mnist_load(data_dir, 0, &data);
    qat_ctx *ctx = NULL;
    if (st == QAT_OK) st = qat_ctx_init(device, &ctx);
    int *fp32_pred = NULL, *low_pred = NULL;
    uint32_t count = data.test.count < GRID_PREDICT_COUNT ? data.test.count : GRID_PREDICT_COUNT;
    if (st == QAT_OK) {
        fp32_pred = qat_xmalloc(count * sizeof *fp32_pred);
        low_pred = qat_xmalloc(count * sizeof *low_pred);
        st = qat_qmodel_predict(&fp32, ctx, &data.test, count, 200, fp32_pred);
        if (st == QAT_OK) st = qat_qmodel_predict(&low, ctx, &data.test, count, 200, low_pred);
        if (st == QAT_OK && ctx->validation_messages)
            st = qat_error_set(QAT_ERR_VULKAN, "the Vulkan validation layers reported %u message(s) while "
                               "predicting", ctx->validation_messages);
    }
    if (st == QAT_OK) {
        info->considered = count;
        choose_cells(&data.test, fp32_pred, low_pred, count, info);
        report_rgb_image im;
        draw_grid(&data.test, info, &im);
        st = report_png_write(png_path, &im);
        report_image_free(&im);
    }
    free(fp32_pred), free(low_pred);
    if (ctx) qat_ctx_free(ctx);
    qat_fashion_mnist_free(&data);
    qat_qmodel_free(&fp32);
    qat_qmodel_free(&low);
    return st;
}
