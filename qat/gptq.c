/* GPTQ on the host; see qat/gptq.h and ../shared/reference/quant-numerics.md. */
#include "qat/gptq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Hessian accumulation ----------------------------------------------------
 * H += X^T X for a chunk of rows at a time, only the upper triangle, then
 * mirrored. A chunk is converted to double (the products of two floats are
 * then exact) with its columns padded with zeros to a multiple of TJ; the
 * upper triangle is covered by TI x TJ tiles, each summed over the chunk's
 * rows in order in registers and then added to H. The order of every sum is a
 * function of the call's count only. */

#define CHUNK 128
#define TI 4
#define TJ 8

void qat_hessian_init(qat_hessian *H, int64_t n)
{
    QAT_ASSERT(H && n > 0);
    H->n = n;
    H->h = qat_xcalloc((size_t)(n * n), sizeof *H->h);
    H->samples = 0;
}

void qat_hessian_free(qat_hessian *H)
{
    if (!H) return;
    free(H->h);
    H->h = NULL;
    H->n = 0;
    H->samples = 0;
}

/* acc (TI x TJ) = sum over r < rows, in order, of xd[r][i0 + a] * xd[r][j0 + b].
 * Every element is the same sequence of double multiplies and adds whichever
 * kernel computes it (no contraction under -std=c11), so the kernels agree
 * bit for bit. The portable one works on 4 x 4 halves with 2-wide vectors (8
 * accumulators fit SSE2's 16 registers); on x86-64 with AVX2 a 4 x 8 kernel
 * with 4-wide vectors runs instead, chosen at run time (about 2x faster;
 * QAT_NO_AVX2 in the environment forces the portable one, which the tests
 * use to check that both agree). */
typedef double v2d __attribute__((vector_size(16)));

static void tile_4x4(const double *xd, int64_t ld, int64_t rows, int64_t i0, int64_t j0, double acc[TI][TJ],
                     int off)
{
    v2d c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    for (int64_t r = 0; r < rows; r++) {
        const double *x = xd + r * ld;
        v2d b0, b1;
        memcpy(&b0, x + j0, sizeof b0), memcpy(&b1, x + j0 + 2, sizeof b1);
        const double a0 = x[i0], a1 = x[i0 + 1], a2 = x[i0 + 2], a3 = x[i0 + 3];
        c00 += a0 * b0, c01 += a0 * b1;
        c10 += a1 * b0, c11 += a1 * b1;
        c20 += a2 * b0, c21 += a2 * b1;
        c30 += a3 * b0, c31 += a3 * b1;
    }
    memcpy(&acc[0][off], &c00, sizeof c00), memcpy(&acc[0][off + 2], &c01, sizeof c01);
    memcpy(&acc[1][off], &c10, sizeof c10), memcpy(&acc[1][off + 2], &c11, sizeof c11);
    memcpy(&acc[2][off], &c20, sizeof c20), memcpy(&acc[2][off + 2], &c21, sizeof c21);
    memcpy(&acc[3][off], &c30, sizeof c30), memcpy(&acc[3][off + 2], &c31, sizeof c31);
}

static void tile_portable(const double *xd, int64_t ld, int64_t rows, int64_t i0, int64_t j0, double acc[TI][TJ])
{
    tile_4x4(xd, ld, rows, i0, j0, acc, 0);
    tile_4x4(xd, ld, rows, i0, j0 + 4, acc, 4);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_AVX2_TILE 1
typedef double v4d __attribute__((vector_size(32)));

__attribute__((target("avx2"))) static void tile_avx2(const double *xd, int64_t ld, int64_t rows, int64_t i0,
                                                      int64_t j0, double acc[TI][TJ])
{
    v4d c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    for (int64_t r = 0; r < rows; r++) {
        const double *x = xd + r * ld;
        v4d b0, b1;
        memcpy(&b0, x + j0, sizeof b0), memcpy(&b1, x + j0 + 4, sizeof b1);
        const double a0 = x[i0], a1 = x[i0 + 1], a2 = x[i0 + 2], a3 = x[i0 + 3];
        c00 += a0 * b0, c01 += a0 * b1;
        c10 += a1 * b0, c11 += a1 * b1;
        c20 += a2 * b0, c21 += a2 * b1;
        c30 += a3 * b0, c31 += a3 * b1;
    }
    memcpy(&acc[0][0], &c00, sizeof c00), memcpy(&acc[0][4], &c01, sizeof c01);
    memcpy(&acc[1][0], &c10, sizeof c10), memcpy(&acc[1][4], &c11, sizeof c11);
    memcpy(&acc[2][0], &c20, sizeof c20), memcpy(&acc[2][4], &c21, sizeof c21);
    memcpy(&acc[3][0], &c30, sizeof c30), memcpy(&acc[3][4], &c31, sizeof c31);
}
#endif

typedef void (*tile_fn)(const double *, int64_t, int64_t, int64_t, int64_t, double[TI][TJ]);

static tile_fn pick_tile(void)
{
#ifdef HAVE_AVX2_TILE
    if (!getenv("QAT_NO_AVX2") && __builtin_cpu_supports("avx2")) return tile_avx2;
#endif
    return tile_portable;
}

void qat_hessian_add(qat_hessian *H, const float *x, int64_t count)
{
    QAT_ASSERT(H && H->h && count >= 0 && (x || count == 0));
    if (count == 0) return;
    const int64_t n = H->n;
    const int64_t ld = (n + TJ - 1) / TJ * TJ;
    const int64_t chunk = count < CHUNK ? count : CHUNK;
    double *xd = qat_xcalloc((size_t)(chunk * ld), sizeof *xd);
    double *h = H->h;
    const tile_fn tile = pick_tile();
    for (int64_t r0 = 0; r0 < count; r0 += CHUNK) {
        const int64_t rows = count - r0 < CHUNK ? count - r0 : CHUNK;
        for (int64_t r = 0; r < rows; r++) {
            const float *src = x + (r0 + r) * n;
            double *dst = xd + r * ld;
            for (int64_t j = 0; j < n; j++) dst[j] = src[j];
        }
        for (int64_t i0 = 0; i0 < n; i0 += TI) {
            for (int64_t j0 = i0 / TJ * TJ; j0 < n; j0 += TJ) {
                double acc[TI][TJ];
                tile(xd, ld, rows, i0, j0, acc);
                for (int a = 0; a < TI && i0 + a < n; a++) {
                    double *hrow = h + (i0 + a) * n;
                    for (int b = 0; b < TJ && j0 + b < n; b++)
                        if (j0 + b >= i0 + a) hrow[j0 + b] += acc[a][b];
                }
            }
        }
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) h[j * n + i] = h[i * n + j];
    H->samples += count;
    free(xd);
}

/* ---- H^-1 and its upper Cholesky factor ------------------------------------
 * With H = V V^T, V upper triangular (a Cholesky factorization that starts
 * from the last row), H^-1 = V^-T V^-1, so U = V^-1 is the upper Cholesky
 * factor of H^-1 (upper, positive diagonal, U^T U = H^-1): one factorization
 * and one triangular inverse instead of the reference's three steps. */

/* y[k] -= a * x[k] for k < n, two at a time (each element the same multiply
 * and subtract as the scalar loop). */
static void axpy_sub(double *y, const double *x, double a, int64_t n)
{
    int64_t k = 0;
    const v2d av = {a, a};
    for (; k + 2 <= n; k += 2) {
        v2d xv, yv;
        memcpy(&xv, x + k, sizeof xv), memcpy(&yv, y + k, sizeof yv);
        yv -= av * xv;
        memcpy(y + k, &yv, sizeof yv);
    }
    for (; k < n; k++) y[k] -= a * x[k];
}

/* a: n x n, upper triangle read and overwritten with V (a = V V^T). False if
 * a pivot is not positive. */
static bool ul_cholesky(double *a, int64_t n, double *col)
{
    for (int64_t j = n - 1; j >= 0; j--) {
        const double d = a[j * n + j];
        if (!(d > 0.0) || !isfinite(d)) return false;
        const double v = sqrt(d);
        a[j * n + j] = v;
        for (int64_t i = 0; i < j; i++) {
            a[i * n + j] /= v;
            col[i] = a[i * n + j];
        }
        /* The leading j x j block (upper triangle) -= col col^T. */
        for (int64_t i = 0; i < j; i++) axpy_sub(a + i * n + i, col + i, col[i], j - i);
    }
    return true;
}

/* u = v^-1 for v upper triangular (only its upper triangle read); u upper
 * (its lower triangle set to 0). Row i from the rows below it:
 * u[i][j] = (delta_ij - sum_{k > i} v[i][k] u[k][j]) / v[i][i]. */
static void upper_inverse(const double *v, double *u, int64_t n)
{
    for (int64_t i = n - 1; i >= 0; i--) {
        double *ui = u + i * n;
        memset(ui, 0, (size_t)n * sizeof *ui);
        for (int64_t k = i + 1; k < n; k++) axpy_sub(ui + k, u + k * n + k, v[i * n + k], n - k);
        ui[i] += 1.0;
        const double inv = 1.0 / v[i * n + i];
        for (int64_t j = i; j < n; j++) ui[j] *= inv;
    }
}

/* ---- the GPTQ loop ------------------------------------------------------------ */

static inline void quant_one(double wv, float inv, float scale, int32_t z, int32_t qmax, uint8_t *code, float *q)
{
    float x = (float)wv;
    float qf = (float)z + nearbyintf(x * inv);
    if (!(qf >= 0.0f)) qf = 0.0f;
    if (qf > (float)qmax) qf = (float)qmax;
    *code = (uint8_t)(int32_t)qf;
    *q = (float)((int32_t)*code - z) * scale;
}

qat_status qat_gptq_quantize(float *w, int64_t rows, int64_t cols, const qat_hessian *H, const qat_qscheme *s,
                             qat_observer_kind obs, int block, double damp, uint8_t *codes, float *scale,
                             int32_t *zero_point, const char *what)
{
    QAT_ASSERT(w && H && H->h && s && codes && scale && zero_point);
    QAT_ASSERT(rows > 0 && cols > 0 && H->n == cols);
    QAT_ASSERT(block > 0 && damp >= 0.0);
    if (!what) what = "gptq";
    const int64_t n = cols;
    if (H->samples <= 0)
        return qat_error_set(QAT_ERR_INVALID, "%s: GPTQ needs calibration inputs, the Hessian has none", what);

    /* Per-tensor and per-channel parameters from the weight as given. */
    const bool grouped = s->gran == QAT_GRAN_GROUP;
    if (!grouped) qat_weight_qparams(w, rows, cols, s, obs, scale, zero_point);

    /* H = (2 / N) sum x x^T; dead inputs; dampening. */
    double *a = qat_xmalloc((size_t)(n * n) * sizeof *a);
    const double norm = 2.0 / (double)H->samples;
    for (int64_t i = 0; i < n * n; i++) a[i] = H->h[i] * norm;
    bool *dead = qat_xcalloc((size_t)n, sizeof *dead);
    double mean = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (a[i * n + i] == 0.0) {
            dead[i] = true;
            a[i * n + i] = 1.0;
        }
        mean += a[i * n + i];
    }
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) a[i * n + i] += damp * mean;

    double *col = qat_xmalloc((size_t)n * sizeof *col);
    if (!ul_cholesky(a, n, col)) {
        free(col), free(dead), free(a);
        return qat_error_set(QAT_ERR_INVALID, "%s: the GPTQ Hessian (%lld x %lld) is not positive definite after "
                             "dampening (damp %g)", what, (long long)n, (long long)n, damp);
    }
    double *u = qat_xmalloc((size_t)(n * n) * sizeof *u);
    upper_inverse(a, u, n);
    free(a), free(col);

    /* W in double, dead columns zeroed. */
    double *W = qat_xmalloc((size_t)(rows * n) * sizeof *W);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < n; c++) W[r * n + c] = dead[c] ? 0.0 : (double)w[r * n + c];
    free(dead);

    const int64_t B = block < n ? block : n;
    double *W1 = qat_xmalloc((size_t)(rows * B) * sizeof *W1);
    double *E1 = qat_xmalloc((size_t)(rows * B) * sizeof *E1);
    /* Rows are independent given H, so per-row widths only change each
     * row's grid. */
    int32_t *qmax = qat_xmalloc((size_t)(rows ? rows : 1) * sizeof *qmax);
    for (int64_t r = 0; r < rows; r++) qmax[r] = qat_qmax(qat_qscheme_row_bits(s, r));
    const int64_t gpr = grouped ? (cols + s->group - 1) / s->group : 0;
    float *gtmp = grouped ? qat_xmalloc((size_t)(rows * (s->group < n ? s->group : n)) * sizeof *gtmp) : NULL;
    float *gscale = grouped ? qat_xmalloc((size_t)rows * sizeof *gscale) : NULL;
    int32_t *gzero = grouped ? qat_xmalloc((size_t)rows * sizeof *gzero) : NULL;
    qat_qscheme per_row = *s;
    per_row.gran = QAT_GRAN_CHANNEL;
    per_row.group = 0;

    for (int64_t i1 = 0; i1 < n; i1 += B) {
        const int64_t i2 = i1 + B < n ? i1 + B : n, count = i2 - i1;
        for (int64_t r = 0; r < rows; r++) memcpy(W1 + r * count, W + r * n + i1, (size_t)count * sizeof *W1);
        for (int64_t i = 0; i < count; i++) {
            const int64_t c = i1 + i;
            if (grouped && c % s->group == 0) {
                /* As the reference's find_params(W[:, c:c + g]): W holds the
                 * updates of the earlier blocks, not this block's ones. */
                const int64_t g = n - c < s->group ? n - c : s->group;
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t k = 0; k < g; k++) gtmp[r * g + k] = (float)W[r * n + c + k];
                qat_weight_qparams(gtmp, rows, g, &per_row, obs, gscale, gzero);
                for (int64_t r = 0; r < rows; r++) {
                    scale[r * gpr + c / s->group] = gscale[r];
                    zero_point[r * gpr + c / s->group] = gzero[r];
                }
            }
            const double d = u[c * n + c];
            const double *urow = u + c * n + i1;
            for (int64_t r = 0; r < rows; r++) {
                int64_t k;
                switch (s->gran) {
                case QAT_GRAN_TENSOR: k = 0; break;
                case QAT_GRAN_CHANNEL: k = r; break;
                default: k = r * gpr + c / s->group; break;
                }
                double *w1 = W1 + r * count;
                float q;
                quant_one(w1[i], 1.0f / scale[k], scale[k], zero_point[k], qmax[r], &codes[r * n + c], &q);
                w[r * n + c] = q;
                const double err = (w1[i] - (double)q) / d;
                E1[r * count + i] = err;
                axpy_sub(w1 + i + 1, urow + i + 1, err, count - i - 1);
            }
        }
        /* The later columns at once: W[:, i2:] -= E1 U[i1:i2, i2:]. */
        if (i2 < n) {
            for (int64_t r = 0; r < rows; r++) {
                double *wr = W + r * n;
                for (int64_t k = 0; k < count; k++)
                    axpy_sub(wr + i2, u + (i1 + k) * n + i2, E1[r * count + k], n - i2);
            }
        }
    }
    free(gtmp), free(gscale), free(gzero), free(qmax);
    free(W1), free(E1), free(W), free(u);
    return QAT_OK;
}
