/* Graph side of conv2d (NCHW, OIHW, stride, zero padding; bias is a separate
 * bias_add), encoded onto shaders/conv2d.comp. CPU reference: ops/conv2d.c.
 *
 * A conv2d is a GEMM over columns; its backward is a GEMM with w^T and a
 * col2im gather for dx, and per-chunk partial GEMMs summed by a reduction for
 * dw. Every output element is written by one invocation, every sum in a fixed
 * order: results are bit-identical from run to run.
 *
 *   forward      [wa = PACK(w) to (O, Kp) when K % 4 != 0, else w]
 *                col = IM2COL(x)                      (N, Kp, 4*P4)
 *                y = CONV2D(x, w, wa, col)            GEMM wa @ col[n]
 *   backward     [dyp = PAD(dy) to (N, O, 4*P4) when P % 4 != 0, else dy]
 *     dx         wt = PACK(w) transposed to (Kp, Op)
 *                dcol = CONV2D_BACK_INPUT(wt, dyp, x, w)   GEMM wt @ dyp[n]
 *                dx = COL2IM(dcol, x, w)
 *     dw         part = CONV2D_BACK_WEIGHT(dyp, col, x, w)  (S*8, O*K) partial sums
 *                dw = SUM(part, axis 0)
 *
 * with K = C*KH*KW, Kp and Op rounded up to 4, P = OH*OW, P4 = ceil(P / 4).
 * On llvmpipe a stride-1 'same' conv with P % 4 == 0 (the CNN's) uses no
 * columns (iarg 7 set): the GEMMs read x and dy shifted by each tap straight
 * from their texel views, which costs what reading columns costs and saves
 * im2col and col2im:
 *
 *   forward      y = CONV2D(x, w, wa)                        GEMM_SHIFTED
 *     dx         wc = PACK(w) to (C, O*KH*KW rounded to 4)
 *                dx = CONV2D_BACK_INPUT(wc, dy, x, w)         GEMM_SHIFTED
 *     dw         part = CONV2D_BACK_WEIGHT(dy, x, x, w), dw = SUM(part)
 *
 * Nodes that do not read x or w still list them, after what they read, so
 * encode finds the geometry. iarg: 0 stride, 1 padding, 2 KH, 3 KW, 4 PACK's
 * layout or BACK_WEIGHT's chunk of images, 5-6 BACK_WEIGHT's tile, 7 no
 * columns. Tile shapes are tuned for llvmpipe (qat_ctx_is_cpu) or, small and
 * simple, for GPUs. */
#include "ops/op_util.h"
#include "ops/ops_vk.h"

enum { MODE_IM2COL, MODE_GEMM, MODE_COL2IM, MODE_BACK_WEIGHT, MODE_PACK, MODE_PAD, MODE_GEMM_SHIFTED };
/* Specialisation constants after the mode (values[] index = id - 3). */
enum { SPEC_MODE, SPEC_TM, SPEC_TN, SPEC_TEXEL, SPEC_VEC_OUT, SPEC_EXACT_DIV, SPEC_CLAMP_B, SPEC_CONTIG };

/* fdiv in the shader is exact below this; larger indices divide exactly. */
#define FDIV_LIMIT (1u << 22)

static int64_t round4(int64_t v) { return (v + 3) / 4 * 4; }

/* Geometry shared by the nodes of one conv, from x (N, C, H, W) and w (O, C, KH, KW). */
typedef struct conv_geom {
    int64_t n, c, h, w, o, kh, kw, oh, ow;
    int64_t k, kp, op, p, p4;
    int stride, pad;
} conv_geom;

static conv_geom geom(const qat_tensor *x, const qat_tensor *w, int stride, int pad)
{
    conv_geom g;
    g.n = x->shape[0], g.c = x->shape[1], g.h = x->shape[2], g.w = x->shape[3];
    g.o = w->shape[0], g.kh = w->shape[2], g.kw = w->shape[3];
    g.stride = stride, g.pad = pad;
    g.oh = (g.h + 2 * pad - g.kh) / stride + 1;
    g.ow = (g.w + 2 * pad - g.kw) / stride + 1;
    g.k = g.c * g.kh * g.kw;
    g.kp = round4(g.k);
    g.op = round4(g.o);
    g.p = g.oh * g.ow;
    g.p4 = (g.p + 3) / 4;
    return g;
}

/* iarg layout of every node of a conv: 0 stride, 1 padding, 2 KH, 3 KW; the
 * rest from the shapes of x and w, which each node keeps reachable: for the
 * nodes that do not read them, x and w are extra inputs the encoder ignores. */
static void set_geom_args(qat_node *n, const conv_geom *cg)
{
    n->iarg[0] = cg->stride;
    n->iarg[1] = cg->pad;
    n->iarg[2] = (int32_t)cg->kh;
    n->iarg[3] = (int32_t)cg->kw;
}

static int add_node(qat_graph *g, qat_op op, const int *in, int nin, int ndim, const int64_t *shape,
                    const conv_geom *cg)
{
    int out = qat_act_new(g, NULL, QAT_F32, ndim, shape);
    qat_node *n = qat_node_get(g, qat_node_add(g, op, in, nin, out));
    set_geom_args(n, cg);
    return out;
}

enum { PACK_ROWS, PACK_TRANSPOSED, PACK_BY_INPUT };

/* w (O, C, KH, KW) as (O, Kp) zero-padded (PACK_ROWS), transposed to (Kp, Op),
 * or as (C, Rp) with row c holding w[o][c][kh][kw] for (o, kh, kw)
 * ascending, R = O*KH*KW (PACK_BY_INPUT). */
static int pack_weights(qat_graph *g, int w, const conv_geom *cg, int how)
{
    int64_t shape[2] = { cg->o, cg->kp };
    if (how == PACK_TRANSPOSED) shape[0] = cg->kp, shape[1] = cg->op;
    if (how == PACK_BY_INPUT) shape[0] = cg->c, shape[1] = round4(cg->o * cg->kh * cg->kw);
    int out = add_node(g, QAT_OP_CONV2D_PACK, &w, 1, 2, shape, cg);
    qat_node_get(g, qat_tensor_get(g, out)->producer)->iarg[4] = how;
    return out;
}

/* No columns at all: a stride-1 'same' conv on llvmpipe reads x and dy
 * shifted, straight from their texel views (GEMM_SHIFTED and BACK_WEIGHT with
 * CONTIG in the shader); as fast as the GEMMs on columns, without im2col or
 * col2im. Elsewhere, columns. */
static bool implicit_conv(const qat_graph *g, const conv_geom *cg)
{
    return qat_ctx_is_cpu(qat_graph_ctx(g)) && cg->stride == 1 && cg->h == cg->oh && cg->w == cg->ow &&
           cg->p % 4 == 0;
}

int qat_conv2d(qat_graph *g, int x, int w, int stride, int padding)
{
    const qat_tensor *tx = qat_tensor_get(g, x), *tw = qat_tensor_get(g, w);
    QAT_ASSERT_MSG(tx->ndim == 4 && tw->ndim == 4 && tx->shape[1] == tw->shape[1],
                   "conv2d takes x (N, C, H, W) and w (O, C, KH, KW)");
    QAT_ASSERT(stride >= 1 && padding >= 0);
    QAT_ASSERT_MSG(tx->shape[2] + 2 * padding >= tw->shape[2] && tx->shape[3] + 2 * padding >= tw->shape[3],
                   "conv2d kernel larger than the padded input");
    conv_geom cg = geom(tx, tw, stride, padding);
    bool implicit = implicit_conv(g, &cg);
    int wa = cg.k == cg.kp ? w : pack_weights(g, w, &cg, PACK_ROWS);
    int in[4] = { x, w, wa, -1 };
    if (!implicit) {
        int64_t col_shape[3] = { cg.n, cg.kp, 4 * cg.p4 };
        in[3] = add_node(g, QAT_OP_IM2COL, &x, 1, 3, col_shape, &cg);
    }
    int64_t shape[4] = { cg.n, cg.o, cg.oh, cg.ow };
    int y = add_node(g, QAT_OP_CONV2D, in, implicit ? 3 : 4, 4, shape, &cg);
    qat_node_get(g, qat_tensor_get(g, y)->producer)->iarg[7] = implicit;
    return y;
}

static int node_out(qat_graph *g, int t) { return qat_tensor_get(g, t)->producer; }

static void backward_conv2d(qat_graph *g, int node, int dy, int *dx)
{
    qat_node n = *qat_node_get(g, node);
    int x = n.in[0], w = n.in[1], col = n.nin > 3 ? n.in[3] : -1;
    bool implicit = n.iarg[7] != 0;
    conv_geom cg = geom(qat_tensor_get(g, x), qat_tensor_get(g, w), n.iarg[0], n.iarg[1]);
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    int64_t xs[4];
    memcpy(xs, qat_tensor_get(g, x)->shape, sizeof xs);
    int dyp = dy;
    if (cg.p % 4 != 0) {
        int64_t shape[3] = { cg.n, cg.o, 4 * cg.p4 };
        dyp = add_node(g, QAT_OP_CONV2D_PAD, &dy, 1, 3, shape, &cg);
    }
    if (qat_tensor_get(g, x)->requires_grad && implicit) {
        int wc = pack_weights(g, w, &cg, PACK_BY_INPUT);
        int in[4] = { wc, dy, x, w };
        dx[0] = add_node(g, QAT_OP_CONV2D_BACK_INPUT, in, 4, 4, xs, &cg);
        qat_node_get(g, node_out(g, dx[0]))->iarg[7] = 1;
    } else if (qat_tensor_get(g, x)->requires_grad) {
        int wt = pack_weights(g, w, &cg, PACK_TRANSPOSED);
        int64_t dcol_shape[3] = { cg.n, cg.kp, 4 * cg.p4 };
        int in[4] = { wt, dyp, x, w };
        int dcol = add_node(g, QAT_OP_CONV2D_BACK_INPUT, in, 4, 3, dcol_shape, &cg);
        int in2[3] = { dcol, x, w };
        dx[0] = add_node(g, QAT_OP_COL2IM, in2, 3, 4, xs, &cg);
    }
    if (qat_tensor_get(g, w)->requires_grad) {
        /* Partial sums per (chunk of images, lane), then their sum in a fixed
         * order. Tiles of o by k rows; chunks: enough groups of 8 lanes to
         * keep every core busy. */
        int64_t tm = cg.o < 16 ? cg.o : 16, tn = cg.k < 16 ? cg.k : 16;
        if (!cpu) tm = cg.o < 4 ? cg.o : 4, tn = cg.k < 4 ? cg.k : 4;
        int64_t tiles = ((cg.o + tm - 1) / tm) * ((cg.k + tn - 1) / tn);
        int64_t want = cpu ? 128 : 4096;
        int64_t s = (want + tiles - 1) / tiles;
        if (s > cg.n) s = cg.n;
        int64_t chunk = (cg.n + s - 1) / s;
        s = (cg.n + chunk - 1) / chunk;
        int64_t part_shape[2] = { s * 8, cg.o * cg.k };
        int in[4] = { dyp, implicit ? x : col, x, w };
        int part = add_node(g, QAT_OP_CONV2D_BACK_WEIGHT, in, 4, 2, part_shape, &cg);
        qat_node *pn = qat_node_get(g, node_out(g, part));
        pn->iarg[4] = (int32_t)chunk;
        pn->iarg[5] = (int32_t)tm;
        pn->iarg[6] = (int32_t)tn;
        pn->iarg[7] = implicit;
        /* dw = sum over axis 0 of part, shaped like w. */
        int64_t ws[4];
        memcpy(ws, qat_tensor_get(g, w)->shape, sizeof ws);
        int dw = qat_act_new(g, NULL, QAT_F32, 4, ws);
        qat_node *sn = qat_node_get(g, qat_node_add(g, QAT_OP_SUM, &part, 1, dw));
        sn->iarg[0] = 1;
        sn->iarg[1] = (int32_t)(s * 8);
        sn->iarg[2] = (int32_t)(cg.o * cg.k);
        sn->farg[0] = 1.0f;
        dx[1] = dw;
    }
}

/* A grid-stride dispatch over `items`: on llvmpipe a few hundred large
 * groups (each group has a fixed cost), on GPUs one invocation per item. */
static void dispatch_items(const qat_graph *g, qat_dispatch *d, uint32_t mode, uint64_t items)
{
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    uint32_t local = cpu ? 256 : 64;
    qat_dispatch_1d(g, d, QAT_KERNEL_CONV2D, mode, items, local);
    if (cpu && d->groups[0] > 512) d->groups[0] = 512;
}

/* The GEMM dispatch: groups of 8 invocations take 8*tn consecutive vec4
 * columns (of q4 in all), tm rows each (of m). On llvmpipe: all rows up to
 * 32, else a near-even split in blocks of at most 24; 4 vec4 columns, 8 when
 * there are at most 16 rows (measured on the CNN's shapes: an invocation's
 * tile of about 128 accumulators amortises its A reads best). */
static void gemm_dispatch(const qat_graph *g, qat_dispatch *d, uint32_t mode, uint32_t m, uint64_t q4)
{
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    uint32_t blocks = (m + 23) / 24;
    uint32_t tm = cpu ? (m <= 32 ? m : (m + blocks - 1) / blocks) : (m < 4 ? m : 4);
    uint32_t tn = cpu ? (tm <= 16 ? 8 : 4) : 1, local = 64;
    d->kernel = QAT_KERNEL_CONV2D;
    d->spec.local[0] = local;
    d->spec.local[1] = d->spec.local[2] = 1;
    d->spec.values[SPEC_MODE] = mode;
    d->spec.values[SPEC_TM] = tm;
    d->spec.values[SPEC_TN] = tn;
    d->spec.values[SPEC_EXACT_DIV] = q4 * 4 >= FDIV_LIMIT;
    uint64_t lanes = ((q4 + tn - 1) / tn + 7) / 8 * 8;
    uint64_t gx = (lanes + local - 1) / local;
    QAT_ASSERT_MSG(gx <= 65535, "conv2d: too many columns for one dispatch");
    d->groups[0] = (uint32_t)gx;
    d->groups[1] = (m + tm - 1) / tm;
    d->groups[2] = 1;
}

static void encode_conv2d(const qat_graph *g, const qat_node *n, qat_dispatch *d)
{
    bool cpu = qat_ctx_is_cpu(qat_graph_ctx(g));
    const qat_tensor *out = qat_tensor_cget(g, n->out);
    uint32_t *u = d->push;
    d->binding[0] = n->in[0];
    d->binding[2] = n->out;
    d->writes[2] = true;
    d->spec.values[SPEC_TEXEL] = cpu;
    d->texel[0] = cpu;
    /* Array sizes in every mode's code: never 0. */
    d->spec.values[SPEC_TM] = d->spec.values[SPEC_TN] = 1;

    if (n->op == QAT_OP_CONV2D_PACK) {
        const qat_tensor *w = qat_in(g, n, 0);
        dispatch_items(g, d, MODE_PACK, (uint64_t)out->numel);
        d->spec.values[SPEC_TEXEL] = false;
        d->texel[0] = false;
        uint32_t v[7] = { (uint32_t)w->shape[0], (uint32_t)(w->numel / w->shape[0]), (uint32_t)out->shape[0],
                          (uint32_t)out->shape[1], (uint32_t)n->iarg[4], (uint32_t)out->numel,
                          (uint32_t)(w->shape[2] * w->shape[3]) };
        memcpy(u, v, sizeof v);
        return;
    }
    if (n->op == QAT_OP_CONV2D_PAD) {
        const qat_tensor *t = qat_in(g, n, 0);
        uint32_t p = (uint32_t)(t->shape[2] * t->shape[3]), p4 = (p + 3) / 4;
        uint64_t total4 = (uint64_t)(t->numel / p) * p4;
        dispatch_items(g, d, MODE_PAD, total4);
        d->spec.values[SPEC_TEXEL] = false;
        d->texel[0] = false;
        d->spec.values[SPEC_EXACT_DIV] = total4 >= FDIV_LIMIT;
        u[0] = p, u[1] = p4, u[2] = (uint32_t)total4;
        return;
    }

    /* The conv's x and w: inputs at op-specific places. */
    int xi, wi;
    switch (n->op) {
    case QAT_OP_CONV2D: xi = n->in[0], wi = n->in[1]; break;
    case QAT_OP_COL2IM: xi = n->in[1], wi = n->in[2]; break;
    case QAT_OP_IM2COL: xi = n->in[0], wi = -1; break;
    default: xi = n->in[2], wi = n->in[3]; break; /* BACK_INPUT, BACK_WEIGHT */
    }
    const qat_tensor *x = qat_tensor_cget(g, xi);
    qat_tensor wshape = { 0 };
    if (wi >= 0) {
        wshape = *qat_tensor_cget(g, wi);
    } else {
        /* im2col does not know O, and does not need it. */
        wshape.shape[0] = 1, wshape.shape[1] = x->shape[1], wshape.shape[2] = n->iarg[2], wshape.shape[3] = n->iarg[3];
    }
    conv_geom cg = geom(x, &wshape, n->iarg[0], n->iarg[1]);
    bool implicit = n->iarg[7] != 0;

    switch (n->op) {
    case QAT_OP_IM2COL: {
        /* One invocation per (image, pixel quad), down all Kp rows. */
        uint64_t items = (uint64_t)(cg.n * cg.p4);
        dispatch_items(g, d, MODE_IM2COL, items);
        if (cpu) {
            /* Small groups: there are only N*P4 items, each long. */
            d->spec.local[0] = 64;
            d->groups[0] = qat_groups_for(g, items, 64);
        }
        d->spec.values[SPEC_EXACT_DIV] = items * 4 >= FDIV_LIMIT;
        d->spec.values[SPEC_CONTIG] = cpu && cg.stride == 1 && cg.w == cg.ow;
        uint32_t v[13] = { (uint32_t)cg.c, (uint32_t)cg.h, (uint32_t)cg.w, (uint32_t)cg.kh, (uint32_t)cg.kw,
                           (uint32_t)cg.ow, (uint32_t)cg.stride, (uint32_t)cg.pad, (uint32_t)cg.k, (uint32_t)cg.kp,
                           (uint32_t)cg.p, (uint32_t)cg.p4, (uint32_t)cg.n };
        memcpy(u, v, sizeof v);
        return;
    }
    case QAT_OP_COL2IM: {
        uint64_t total = (uint64_t)(cg.n * cg.c * cg.h * cg.w);
        dispatch_items(g, d, MODE_COL2IM, (total + 3) / 4);
        d->spec.values[SPEC_EXACT_DIV] = total >= FDIV_LIMIT;
        d->spec.values[SPEC_CONTIG] = cpu && cg.stride == 1 && cg.w == cg.ow && (cg.h * cg.w) % 4 == 0;
        uint32_t v[12] = { (uint32_t)cg.c, (uint32_t)cg.h, (uint32_t)cg.w, (uint32_t)cg.kh, (uint32_t)cg.kw,
                           (uint32_t)cg.oh, (uint32_t)cg.ow, (uint32_t)cg.stride, (uint32_t)cg.pad, (uint32_t)cg.kp,
                           (uint32_t)cg.p4, (uint32_t)total };
        memcpy(u, v, sizeof v);
        return;
    }
    case QAT_OP_CONV2D_BACK_WEIGHT: {
        uint32_t chunk = (uint32_t)n->iarg[4], tm = (uint32_t)n->iarg[5], tn = (uint32_t)n->iarg[6];
        uint32_t oblocks = (uint32_t)((cg.o + tm - 1) / tm), kblocks = (uint32_t)((cg.k + tn - 1) / tn);
        uint32_t tiles = oblocks * kblocks;
        /* Up to 32 tiles (groups of 8) per workgroup, split evenly, the
         * rest along y. */
        uint32_t ygroups = (tiles + 31) / 32;
        uint32_t per_group = (tiles + ygroups - 1) / ygroups;
        d->kernel = QAT_KERNEL_CONV2D;
        d->spec.local[0] = 8 * per_group;
        d->spec.local[1] = d->spec.local[2] = 1;
        d->spec.values[SPEC_MODE] = MODE_BACK_WEIGHT;
        d->spec.values[SPEC_TM] = tm;
        d->spec.values[SPEC_TN] = tn;
        d->spec.values[SPEC_CONTIG] = implicit;
        d->spec.values[SPEC_EXACT_DIV] = (uint64_t)(cg.n * cg.p) >= FDIV_LIMIT;
        d->groups[0] = (uint32_t)((cg.n + chunk - 1) / chunk);
        d->groups[1] = ygroups;
        d->groups[2] = 1;
        d->binding[1] = n->in[1]; /* col, or x itself */
        d->texel[1] = cpu;
        uint32_t v[15] = { (uint32_t)cg.o, (uint32_t)cg.k, (uint32_t)cg.kp, (uint32_t)cg.p4, (uint32_t)cg.n, chunk,
                           kblocks, tiles, (uint32_t)cg.c, (uint32_t)cg.h, (uint32_t)cg.w, (uint32_t)cg.kh,
                           (uint32_t)cg.kw, (uint32_t)cg.pad, (uint32_t)cg.p };
        memcpy(u, v, sizeof v);
        return;
    }
    default: break;
    }

    if (implicit) {
        /* Forward: A = wa (O, Kp), B = x shifted; back-input: A = w packed by
         * input channel (C, Rp), B = dy shifted. */
        bool fwd = n->op == QAT_OP_CONV2D;
        uint32_t m = (uint32_t)(fwd ? cg.o : cg.c), bch = (uint32_t)(fwd ? cg.c : cg.o);
        uint32_t rp = (uint32_t)round4((int64_t)bch * cg.kh * cg.kw);
        gemm_dispatch(g, d, MODE_GEMM_SHIFTED, m, (uint64_t)(cg.n * cg.p4));
        d->binding[0] = fwd ? n->in[2] : n->in[0];
        d->binding[1] = fwd ? n->in[0] : n->in[1];
        d->texel[1] = true;
        uint32_t v[14] = { m, rp / 4, bch, (uint32_t)cg.p4, (uint32_t)cg.n, (uint32_t)cg.p, rp / 4,
                           (uint32_t)cg.h, (uint32_t)cg.w, (uint32_t)cg.kh, (uint32_t)cg.kw, (uint32_t)cg.pad,
                           bch * (uint32_t)(cg.kh * cg.kw), fwd };
        memcpy(u, v, sizeof v);
        return;
    }

    /* The GEMMs on columns. Forward: A = wa (O, Kp), B = col (N, Kp, 4*P4),
     * C = y. Back-input: A = w^T (Kp, Op), B = dy padded (N, O, 4*P4), C = dcol. */
    bool forward = n->op == QAT_OP_CONV2D;
    uint32_t m = (uint32_t)(forward ? cg.o : cg.kp);
    uint32_t kr4 = (uint32_t)(forward ? cg.kp : cg.op) / 4;
    uint32_t kb = (uint32_t)(forward ? cg.kp : cg.o);
    gemm_dispatch(g, d, MODE_GEMM, m, (uint64_t)(cg.n * cg.p4));
    d->spec.values[SPEC_VEC_OUT] = !forward || cg.p % 4 == 0;
    d->spec.values[SPEC_CLAMP_B] = kb != 4 * kr4;
    d->binding[0] = forward ? n->in[2] : n->in[0]; /* wa, or wt */
    d->binding[1] = forward ? n->in[3] : n->in[1]; /* col, or dy padded */
    d->texel[1] = cpu;
    uint32_t v[7] = { m, kr4, kb, (uint32_t)cg.p4, (uint32_t)cg.n, (uint32_t)cg.p, kr4 };
    memcpy(u, v, sizeof v);
}

const qat_op_def qat_op_conv2d_def = { "conv2d", encode_conv2d, backward_conv2d };
const qat_op_def qat_op_conv2d_back_input_def = { "conv2d_back_input", encode_conv2d, NULL };
const qat_op_def qat_op_conv2d_back_weight_def = { "conv2d_back_weight", encode_conv2d, NULL };
const qat_op_def qat_op_im2col_def = { "im2col", encode_conv2d, NULL };
const qat_op_def qat_op_col2im_def = { "col2im", encode_conv2d, NULL };
const qat_op_def qat_op_conv2d_pack_def = { "conv2d_pack", encode_conv2d, NULL };
const qat_op_def qat_op_conv2d_pad_def = { "conv2d_pad", encode_conv2d, NULL };
