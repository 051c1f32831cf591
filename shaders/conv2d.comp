#version 450
#extension GL_EXT_control_flow_attributes : enable
// 2-d convolution (NCHW input, OIHW weights, zero padding) as GEMMs: im2col
// + GEMM forward, GEMM + col2im gather for dx, per-chunk partial GEMMs for dw
// (summed by reduce.comp). Every output element is written by exactly one
// invocation and every sum runs in a fixed order, so results are
// bit-identical from run to run. ops/conv2d_vk.c chains the modes; the
// reference is ops/conv2d.c.
//
// Layouts. K = C*KH*KW (the reduction of the forward), Kp = K rounded up to 4,
// P = OH*OW output pixels, P4 = ceil(P / 4); "padded" rows hold 4*P4 floats,
// zeros past P.
//   col   (N, Kp, 4*P4)  col[n][(c*KH + kh)*KW + kw][oh*OW + ow] = x[n][c][ih][iw]
//   dcol  (N, Kp, 4*P4)  gradient of col
//   y, dy (N, O, P)      NCHW; GEMM B operands need padded rows, so dy is
//                        copied to (N, O, 4*P4) first when P % 4 != 0 (PAD)
//
// Modes:
//   IM2COL        x -> col
//   GEMM          C[n] (M, 4*P4) = A (M, 4*KR4) @ B[n] (KR, 4*P4)
//                 forward: A = w (O, Kp), B = col, C = y
//                 back-input: A = w^T (Kp, Op), B = dy padded, C = dcol
//   GEMM_SHIFTED  the same for a stride-1 'same' conv with no columns: B rows
//                 are x (forward) or dy (back-input, C = dx) shifted per tap
//   COL2IM        dcol -> dx: dx[n][c][ih][iw] = sum over kh, then kw of taps
//   BACK_WEIGHT   partial[s][l][o][k] = sum over the (image, pixel quad) items
//                 of chunk s that lane l takes of dot(dy[n][o][p4], col[n][k][p4])
//                 (col rows read as shifted x with CONTIG); summing over (s, l)
//                 gives dw
//   PACK          w -> (O, Kp) zero-padded, (Kp, Op) transposed, or (C, Rp)
//   PAD           (R, P) -> (R, 4*P4) zero-padded
//
// The GEMMs are tuned for llvmpipe, which runs 8 invocations as one SIMD
// vector and scalarises storage-buffer loads lane by lane: invocations take
// TN vec4 columns by TM rows (about 128 accumulators, spilled but cheap next
// to the loads), groups of 8 consecutive invocations read consecutive vec4s
// of B (one gather touches two cache lines), and A, the same for all of them,
// is read 4 reduction steps at a time. vec4 reads go through the texel views
// (TEXEL), which llvmpipe gathers much faster. On GPUs: small tiles, storage
// buffers, columns.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
layout(constant_id = 4) const uint TM = 8;        // GEMM rows / BACK_WEIGHT o rows per invocation
layout(constant_id = 5) const uint TN = 1;        // GEMM vec4 columns / BACK_WEIGHT k rows per invocation
layout(constant_id = 6) const bool TEXEL = false; // read bindings 0, 1 through their texel views
layout(constant_id = 7) const bool VEC_OUT = true; // GEMM: C rows are padded (else NCHW with P % 4 != 0)
layout(constant_id = 8) const bool EXACT_DIV = false;
layout(constant_id = 9) const bool CLAMP_B = false; // GEMM: B has fewer rows than the reduction (KB < 4*KR4)
// IM2COL / COL2IM with TEXEL, stride 1 and rows as wide as the output's
// (W == OW, 'same' padding): the 4 elements a quad needs from a row of taps
// are consecutive in memory, so two aligned texels and a shift replace four
// gathers (COL2IM also needs H*W % 4 == 0, so a quad stays in one plane).
layout(constant_id = 10) const bool CONTIG = false;

#define MODE_IM2COL 0
#define MODE_GEMM 1
#define MODE_COL2IM 2
#define MODE_BACK_WEIGHT 3
#define MODE_PACK 4
#define MODE_PAD 5
#define MODE_GEMM_SHIFTED 6

#include "fastdiv.glsl"

layout(std430, set = 0, binding = 0) readonly buffer In0 { float in0[]; };
layout(std430, set = 0, binding = 0) readonly buffer In0v { vec4 in0v[]; };
layout(std430, set = 0, binding = 1) readonly buffer In1 { float in1[]; };
layout(std430, set = 0, binding = 1) readonly buffer In1v { vec4 in1v[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out { float result[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Outv { vec4 resultv[]; };
layout(set = 0, binding = 8) uniform samplerBuffer tex0;
layout(set = 0, binding = 9) uniform samplerBuffer tex1;

layout(push_constant) uniform Push { uint u[32]; } pc;

vec4 load0v(uint i) { return TEXEL ? texelFetch(tex0, int(i)) : in0v[i]; }
vec4 load1v(uint i) { return TEXEL ? texelFetch(tex1, int(i)) : in1v[i]; }
float load0(uint i) { return TEXEL ? texelFetch(tex0, int(i >> 2))[i & 3u] : in0[i]; }

vec4 quad(vec4 a, vec4 b, int r) { return r == 0 ? a : r == 1 ? vec4(a.yzw, b.x) : r == 2 ? vec4(a.zw, b.xy) : vec4(a.w, b.xyz); }

// in0[i .. i + 3] for any i, from two aligned texels. Elements outside the
// tensor (padding taps, which the callers mask) read whatever the clamped
// texel holds: no fetch leaves the view (robustBufferAccess is not enabled),
// and an element inside the tensor is always in an unclamped texel. size: the
// view's texels (textureSize), read once by the caller.
vec4 load0_quad(int i, int size)
{
    int t = i >> 2;
    return quad(texelFetch(tex0, clamp(t, 0, size - 1)), texelFetch(tex0, clamp(t + 1, 0, size - 1)), i & 3);
}

vec4 load1_quad(int i, int size)
{
    int t = i >> 2;
    return quad(texelFetch(tex1, clamp(t, 0, size - 1)), texelFetch(tex1, clamp(t + 1, 0, size - 1)), i & 3);
}

uint global_id() { return gl_GlobalInvocationID.x; }
uint global_stride() { return gl_NumWorkGroups.x * gl_WorkGroupSize.x; }

// ---- IM2COL: u = C, H, W, KH, KW, OW, stride, pad, K, Kp, P, P4, NB ---------
// Invocation per (image, pixel quad): the quad's coordinates once, then down
// its column of Kp rows (c, kh, kw ascending, no divisions inside).
void im2col()
{
    uint C = pc.u[0], H = pc.u[1], W = pc.u[2], KH = pc.u[3], KW = pc.u[4], OW = pc.u[5];
    uint stride = pc.u[6], pad = pc.u[7], K = pc.u[8], Kp = pc.u[9], P = pc.u[10], P4 = pc.u[11];
    uint NB = pc.u[12];
    int size0 = CONTIG ? textureSize(tex0) : 0;
    for (uint t = global_id(); t < NB * P4; t += global_stride()) {
        uint n = fdiv(t, P4), p4 = t - n * P4;
        uint p = 4u * p4;
        uint oh = fdiv(p, OW), ow = p - oh * OW;
        ivec4 ih0, iw0;
        bvec4 live;
        [[unroll]] for (uint e = 0; e < 4; e++) {
            ih0[e] = int(oh * stride) - int(pad);
            iw0[e] = int(ow * stride) - int(pad);
            live[e] = p + e < P;
            ow++;
            if (ow == OW) { ow = 0; oh++; }
        }
        uint at = n * Kp * P4 + p4;
        uint plane = n * C * H;
        for (uint c = 0; c < C; c++, plane += H) {
            for (uint kh = 0; kh < KH; kh++) {
                ivec4 ih = ih0 + int(kh);
                bvec4 hok = bvec4(uvec4(live) & uvec4(greaterThanEqual(ih, ivec4(0))) & uvec4(lessThan(ih, ivec4(H))));
                ivec4 rowat = (ivec4(plane) + ih) * int(W);
                for (uint kw = 0; kw < KW; kw++, at += P4) {
                    ivec4 iw = iw0 + int(kw);
                    bvec4 inside = bvec4(uvec4(hok) & uvec4(greaterThanEqual(iw, ivec4(0))) & uvec4(lessThan(iw, ivec4(W))));
                    vec4 v;
                    if (CONTIG) {
                        // rowat[e] + iw[e] = rowat[0] + iw[0] + e: W == OW.
                        v = load0_quad(rowat[0] + iw[0], size0);
                    } else {
                        [[unroll]] for (uint e = 0; e < 4; e++) v[e] = load0(inside[e] ? uint(rowat[e] + iw[e]) : 0u);
                    }
                    resultv[at] = mix(vec4(0.0), v, inside);
                }
            }
        }
        for (uint k = K; k < Kp; k++, at += P4) resultv[at] = vec4(0.0);
    }
}

// ---- GEMM: u = M, KR4, KB, P4, NB, P, RA4 -----------------------------------
// A (binding 0): rows of RA4 vec4s, reduction along the row. B (binding 1):
// (NB, KB, 4*P4). Columns are the NB*P4 vec4s; column q4 is image q4 / P4.
void gemm()
{
    uint M = pc.u[0], KR4 = pc.u[1], KB = pc.u[2], P4 = pc.u[3], NB = pc.u[4], P = pc.u[5], RA4 = pc.u[6];
    uint Q4 = NB * P4;
    uint lane = gl_LocalInvocationID.x & 7u;
    uint group = global_id() >> 3;
    uint row0 = gl_WorkGroupID.y * TM;
    uint bbase[TN], cbase[TN], cp[TN];
    bool ok[TN];
    [[unroll]] for (uint j = 0; j < TN; j++) {
        uint q4 = (group * TN + j) * 8u + lane;
        ok[j] = q4 < Q4;
        q4 = min(q4, Q4 - 1u);
        uint n = fdiv(q4, P4), p4 = q4 - n * P4;
        bbase[j] = n * KB * P4 + p4;
        cbase[j] = VEC_OUT ? n * M * P4 + p4 : n * M * P + 4u * p4;
        cp[j] = 4u * p4;
    }
    uint arow[TM];
    [[unroll]] for (uint i = 0; i < TM; i++) arow[i] = min(row0 + i, M - 1u) * RA4;
    vec4 acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = vec4(0.0);
    for (uint kr = 0; kr < KR4; kr++) {
        vec4 b[4][TN];
        [[unroll]] for (uint kk = 0; kk < 4; kk++) {
            uint brow = 4u * kr + kk;
            if (CLAMP_B) brow = min(brow, KB - 1u);
            [[unroll]] for (uint j = 0; j < TN; j++) b[kk][j] = load1v(bbase[j] + brow * P4);
        }
        [[unroll]] for (uint i = 0; i < TM; i++) {
            vec4 a = load0v(arow[i] + kr);
            [[unroll]] for (uint j = 0; j < TN; j++) {
                acc[i][j] = fma(vec4(a.x), b[0][j], acc[i][j]);
                acc[i][j] = fma(vec4(a.y), b[1][j], acc[i][j]);
                acc[i][j] = fma(vec4(a.z), b[2][j], acc[i][j]);
                acc[i][j] = fma(vec4(a.w), b[3][j], acc[i][j]);
            }
        }
    }
    [[unroll]] for (uint j = 0; j < TN; j++) {
        if (!ok[j]) continue;
        [[unroll]] for (uint i = 0; i < TM; i++) {
            uint row = row0 + i;
            if (row >= M) continue;
            if (VEC_OUT) {
                resultv[cbase[j] + row * P4] = acc[i][j];
            } else {
                [[unroll]] for (uint e = 0; e < 4; e++)
                    if (cp[j] + e < P) result[cbase[j] + row * P + e] = acc[i][j][e];
            }
        }
    }
}

// ---- GEMM_SHIFTED: u = M, KR4, O, P4, NB, P, RA4, H, W, KH, KW, pad, R, fwd --
// A stride-1 'same' conv (H == OH, W == OW, P % 4 == 0) without columns,
// TEXEL only. Forward (fwd = 1): y[n] (O, P) = w (O, Kp) @ B[n] (Kp, P), B row
// r = (c, kh, kw) = x[n][c] shifted by (kh - pad, kw - pad). Back-input
// (fwd = 0): dx[n] (C, P) = A (C, Rp) @ B[n] (Rp, P), A = PACK mode 2, B row
// r = (o, kh, kw) = dy[n][o] shifted by (pad - kh, pad - kw); the sum over r
// runs over o, then kh, then kw, as the reference's. Shifted rows are zero
// past the edges: a quad of one is 4 consecutive elements (rows are as wide
// as the output's), read as two aligned texels and a shift, then masked.
// Here O is the number of B channels (C for the forward).
void gemm_shifted()
{
    uint M = pc.u[0], KR4 = pc.u[1], O = pc.u[2], P4 = pc.u[3], NB = pc.u[4], P = pc.u[5], RA4 = pc.u[6];
    uint H = pc.u[7], W = pc.u[8], KH = pc.u[9], KW = pc.u[10], pad = pc.u[11], R = pc.u[12];
    int sgn = pc.u[13] != 0u ? 1 : -1;
    int size1 = textureSize(tex1);
    uint Q4 = NB * P4;
    uint lane = gl_LocalInvocationID.x & 7u;
    uint group = global_id() >> 3;
    uint row0 = gl_WorkGroupID.y * TM;
    int base[TN];
    ivec4 th[TN], tw[TN];
    uint cbase[TN];
    bool ok[TN];
    [[unroll]] for (uint j = 0; j < TN; j++) {
        uint q4 = (group * TN + j) * 8u + lane;
        ok[j] = q4 < Q4;
        q4 = min(q4, Q4 - 1u);
        uint n = fdiv(q4, P4), p4 = q4 - n * P4;
        uint p = 4u * p4, ih = fdiv(p, W), iw = p - ih * W;
        [[unroll]] for (uint e = 0; e < 4; e++) {
            th[j][e] = int(ih) - sgn * int(pad);
            tw[j][e] = int(iw) - sgn * int(pad);
            iw++;
            if (iw == W) { iw = 0; ih++; }
        }
        base[j] = int(n * O * P + p) - sgn * int(pad * W + pad);
        cbase[j] = n * M * P4 + p4;
    }
    uint arow[TM];
    [[unroll]] for (uint i = 0; i < TM; i++) arow[i] = min(row0 + i, M - 1u) * RA4;
    vec4 acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = vec4(0.0);
    uint o = 0, kh = 0, kw = 0;
    for (uint kr = 0; kr < KR4; kr++) {
        vec4 b[4][TN];
        [[unroll]] for (uint kk = 0; kk < 4; kk++) {
            bool live = 4u * kr + kk < R;
            int shift = int(o * P) + sgn * int(kh * W + kw);
            [[unroll]] for (uint j = 0; j < TN; j++) {
                ivec4 oh = th[j] + sgn * int(kh), ow = tw[j] + sgn * int(kw);
                bvec4 m = bvec4(uvec4(greaterThanEqual(oh, ivec4(0))) & uvec4(lessThan(oh, ivec4(H))) &
                                uvec4(greaterThanEqual(ow, ivec4(0))) & uvec4(lessThan(ow, ivec4(W))) & uvec4(live));
                b[kk][j] = mix(vec4(0.0), load1_quad(base[j] + shift, size1), m);
            }
            kw++;
            if (kw == KW) { kw = 0; kh++; if (kh == KH) { kh = 0; o++; } }
        }
        [[unroll]] for (uint i = 0; i < TM; i++) {
            vec4 a = load0v(arow[i] + kr);
            [[unroll]] for (uint j = 0; j < TN; j++) {
                acc[i][j] = fma(vec4(a.x), b[0][j], acc[i][j]);
                acc[i][j] = fma(vec4(a.y), b[1][j], acc[i][j]);
                acc[i][j] = fma(vec4(a.z), b[2][j], acc[i][j]);
                acc[i][j] = fma(vec4(a.w), b[3][j], acc[i][j]);
            }
        }
    }
    [[unroll]] for (uint j = 0; j < TN; j++) {
        if (!ok[j]) continue;
        [[unroll]] for (uint i = 0; i < TM; i++)
            if (row0 + i < M) resultv[cbase[j] + (row0 + i) * P4] = acc[i][j];
    }
}

// ---- COL2IM: u = C, H, W, KH, KW, OH, OW, stride, pad, Kp, P4, total --------
// Each invocation writes 4 consecutive elements of dx (a vec4 when they are
// all inside). Taps: kh = (ih + pad) mod stride, then every stride-th (the
// others land between output rows), likewise kw; ascending, as the
// reference sums them.
void col2im()
{
    uint C = pc.u[0], H = pc.u[1], W = pc.u[2], KH = pc.u[3], KW = pc.u[4], OH = pc.u[5], OW = pc.u[6];
    uint stride = pc.u[7], pad = pc.u[8], Kp = pc.u[9], P4 = pc.u[10], total = pc.u[11];
    uint total4 = (total + 3u) / 4u;
    uint rowlen = 4u * P4;
    int size0 = CONTIG ? textureSize(tex0) : 0;
    for (uint t4 = global_id(); t4 < total4; t4 += global_stride()) {
        uint t = 4u * t4;
        uint r = fdiv(t, W), iw = t - r * W;
        uint r2 = fdiv(r, H), ih = r - r2 * H;
        uint n = fdiv(r2, C), c = r2 - n * C;
        vec4 v = vec4(0.0);
        if (CONTIG) {
            // The quad is in one plane; tap (kh, kw) of element e is at
            // dcol row (c, kh, kw), pixel (ih + pad - kh) * OW + iw + pad - kw,
            // consecutive in e because W == OW.
            ivec4 th = ivec4(ih + pad), tw = ivec4(iw + pad);
            [[unroll]] for (uint e = 1; e < 4; e++) {
                uint iwe = iw + e, ihe = ih;
                if (iwe >= W) { iwe -= W; ihe++; }
                th[e] = int(ihe + pad);
                tw[e] = int(iwe + pad);
            }
            int rows = int((n * Kp + c * KH * KW) * rowlen);
            int q = int(ih * W + iw) + int(pad) * int(W) + int(pad);
            for (uint kh = 0; kh < KH; kh++) {
                ivec4 oh = th - int(kh);
                bvec4 hok = bvec4(uvec4(greaterThanEqual(oh, ivec4(0))) & uvec4(lessThan(oh, ivec4(OH))));
                for (uint kw = 0; kw < KW; kw++) {
                    ivec4 ow = tw - int(kw);
                    bvec4 ok = bvec4(uvec4(hok) & uvec4(greaterThanEqual(ow, ivec4(0))) & uvec4(lessThan(ow, ivec4(OW))));
                    vec4 dv = load0_quad(rows + int((kh * KW + kw) * rowlen) + q - int(kh * W + kw), size0);
                    v += mix(vec4(0.0), dv, ok);
                }
            }
        } else [[unroll]] for (uint e = 0; e < 4; e++) {
            float acc = 0.0;
            uint th = ih + pad, tw = iw + pad;
            uint kh0 = stride == 1u ? 0u : th - fdiv(th, stride) * stride;
            uint kw0 = stride == 1u ? 0u : tw - fdiv(tw, stride) * stride;
            uint oh = stride == 1u ? th : fdiv(th, stride), ow0 = stride == 1u ? tw : fdiv(tw, stride);
            uint rows = (n * Kp + c * KH * KW) * rowlen;
            for (uint kh = kh0; kh < KH; kh += stride, oh--) {
                if (kh > th) break;      // oh would be negative, and stays so
                bool hok = oh < OH;
                uint ow = ow0;
                for (uint kw = kw0; kw < KW; kw += stride, ow--) {
                    if (kw > tw) break;
                    bool ok = hok && ow < OW;
                    float dv = load0(ok ? rows + (kh * KW + kw) * rowlen + oh * OW + ow : 0u);
                    if (ok) acc += dv;
                }
            }
            v[e] = acc;
            iw++;
            if (iw == W) {
                iw = 0;
                ih++;
                if (ih == H) { ih = 0; c++; if (c == C) { c = 0; n++; } }
            }
        }
        if (t + 4u <= total) resultv[t4] = v;
        else [[unroll]] for (uint e = 0; e < 4; e++) if (t + e < total) result[t + e] = v[e];
    }
}

// ---- BACK_WEIGHT: u = O, K, Kp, P4, NB, chunk, kblocks, tiles --------------
// Workgroup (s, y) takes images [s*chunk, (s+1)*chunk); its invocations are
// groups of 8 (lanes), one per tile of TM o-rows by TN k-rows (tiles y*T ..);
// lane l takes the items (image, pixel quad) l, l + 8, ... of the chunk.
// Binding 0: dy padded (NB, O, 4*P4); binding 1: col, or with CONTIG (a
// stride-1 'same' conv, as GEMM_SHIFTED) x itself, k-row (c, kh, kw) being
// x[n][c] shifted by (kh - pad, kw - pad): u = .., C, H, W, KH, KW, pad, P.
void back_weight()
{
    uint O = pc.u[0], K = pc.u[1], Kp = pc.u[2], P4 = pc.u[3], NB = pc.u[4], chunk = pc.u[5], kblocks = pc.u[6];
    uint tiles = pc.u[7];
    uint lane = gl_LocalInvocationID.x & 7u;
    uint tile = gl_WorkGroupID.y * (gl_WorkGroupSize.x >> 3) + (gl_LocalInvocationID.x >> 3);
    bool live = tile < tiles;
    tile = min(tile, tiles - 1u);
    uint s = gl_WorkGroupID.x;
    uint ob = tile / kblocks, kb = tile - ob * kblocks;
    uint o0 = ob * TM, k0 = kb * TN;
    uint orow[TM], krow[TN];
    [[unroll]] for (uint i = 0; i < TM; i++) orow[i] = min(o0 + i, O - 1u) * P4;
    [[unroll]] for (uint j = 0; j < TN; j++) krow[j] = min(k0 + j, K - 1u) * P4;
    uint C = pc.u[8], H = pc.u[9], W = pc.u[10], KH = pc.u[11], KW = pc.u[12], pad = pc.u[13], P = pc.u[14];
    int size1 = CONTIG ? textureSize(tex1) : 0;
    int shift[TN], dh[TN], dw[TN];
    if (CONTIG) [[unroll]] for (uint j = 0; j < TN; j++) {
        uint r = min(k0 + j, K - 1u), c = r / (KH * KW), t = r - c * KH * KW, kh = t / KW, kw = t - kh * KW;
        dh[j] = int(kh) - int(pad);
        dw[j] = int(kw) - int(pad);
        shift[j] = int(c * P) + dh[j] * int(W) + dw[j];
    }
    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;
    uint n0 = s * chunk;
    uint items = n0 < NB && live ? min(chunk, NB - n0) * P4 : 0u;
    uint n = n0, p = lane;
    for (uint it = lane; it < items; it += 8u) {
        while (p >= P4) { p -= P4; n++; }
        uint abase = n * O * P4 + p, bbase = n * Kp * P4 + p;
        vec4 b[TN];
        if (CONTIG) {
            uint px = 4u * p, ih = fdiv(px, W), iw = px - ih * W;
            ivec4 ihv, iwv;
            [[unroll]] for (uint e = 0; e < 4; e++) {
                ihv[e] = int(ih);
                iwv[e] = int(iw);
                iw++;
                if (iw == W) { iw = 0; ih++; }
            }
            int xbase = int(n * C * P + px);
            [[unroll]] for (uint j = 0; j < TN; j++) {
                ivec4 sh = ihv + dh[j], sw = iwv + dw[j];
                bvec4 m = bvec4(uvec4(greaterThanEqual(sh, ivec4(0))) & uvec4(lessThan(sh, ivec4(H))) &
                                uvec4(greaterThanEqual(sw, ivec4(0))) & uvec4(lessThan(sw, ivec4(W))));
                b[j] = mix(vec4(0.0), load1_quad(xbase + shift[j], size1), m);
            }
        } else {
            [[unroll]] for (uint j = 0; j < TN; j++) b[j] = load1v(bbase + krow[j]);
        }
        [[unroll]] for (uint i = 0; i < TM; i++) {
            vec4 a = load0v(abase + orow[i]);
            [[unroll]] for (uint j = 0; j < TN; j++) {
                acc[i][j] = fma(a.x, b[j].x, acc[i][j]);
                acc[i][j] = fma(a.y, b[j].y, acc[i][j]);
                acc[i][j] = fma(a.z, b[j].z, acc[i][j]);
                acc[i][j] = fma(a.w, b[j].w, acc[i][j]);
            }
        }
        p += 8u;
    }
    uint base = (s * 8u + lane) * O;
    if (live) [[unroll]] for (uint i = 0; i < TM; i++) {
        if (o0 + i >= O) continue;
        [[unroll]] for (uint j = 0; j < TN; j++)
            if (k0 + j < K) result[(base + o0 + i) * K + k0 + j] = acc[i][j];
    }
}

// ---- PACK: u = O, K, rows, cols, transpose, total, taps ---------------------
// transpose 0: (O, Kp); 1: (Kp, Op); 2: (C, Rp), row c holding w[o][c][tap]
// for (o, tap) ascending, zero-padded (GEMM_SHIFTED's A).
void pack()
{
    uint O = pc.u[0], K = pc.u[1], cols = pc.u[3], transpose = pc.u[4], total = pc.u[5];
    for (uint t = global_id(); t < total; t += global_stride()) {
        uint r = t / cols, c = t - r * cols;
        if (transpose == 2u) {
            // (C, Rp): row c, column (o, tap) -> w[o][c][tap]
            uint taps = pc.u[6], o = c / taps, tap = c - o * taps;
            result[t] = o < O ? in0[o * K + r * taps + tap] : 0.0;
            continue;
        }
        uint o = transpose != 0u ? c : r, k = transpose != 0u ? r : c;
        result[t] = o < O && k < K ? in0[o * K + k] : 0.0;
    }
}

// ---- PAD: u = P, P4, total4 -------------------------------------------------
void pad_rows()
{
    uint P = pc.u[0], P4 = pc.u[1], total4 = pc.u[2];
    for (uint t = global_id(); t < total4; t += global_stride()) {
        uint r = fdiv(t, P4), p = 4u * (t - r * P4);
        vec4 v;
        [[unroll]] for (uint e = 0; e < 4; e++) v[e] = p + e < P ? in0[r * P + p + e] : 0.0;
        resultv[t] = v;
    }
}

void main()
{
    if (MODE == MODE_IM2COL) im2col();
    else if (MODE == MODE_GEMM) gemm();
    else if (MODE == MODE_COL2IM) col2im();
    else if (MODE == MODE_BACK_WEIGHT) back_weight();
    else if (MODE == MODE_PACK) pack();
    else if (MODE == MODE_GEMM_SHIFTED) gemm_shifted();
    else pad_rows();
}
