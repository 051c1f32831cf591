#version 450
// Batched C = op(A) op(B) (+ bias, relu), row-major. Transposes are
// specialisation constants, so the backward forms (dA = dC B^T,
// dB = A^T dC) are the same code.
//
// Every output is one accumulator that starts at 0 and takes the products
// over k in ascending order, on both paths and for every tile shape, so the
// result does not depend on the tiling (no split-k, no atomics).
//
// Two paths, picked by the encoder (ops/matmul_vk.c) per device:
//  CPU_PATH 0 (GPUs): invocation (x, y) of a 2-d workgroup computes TM x TN
//     outputs strided by the workgroup size, so neighbouring invocations
//     touch neighbouring columns (coalesced scalar loads).
//  CPU_PATH 1 (CPU implementations, lavapipe): llvmpipe runs 8 invocations
//     as the lanes of one SIMD vector, and a scalar storage-buffer load is a
//     loop over the lanes, while a texel fetch is one call that gathers a
//     vec4 per lane. So each invocation owns a TM x TN block of adjacent
//     outputs and reads A and B as vec4 texels, four k (or four rows /
//     columns) per fetch: per four k a lane makes TM + TN fetches for
//     4 TM TN multiply-adds. The large block (the encoder picks about 256
//     outputs) spills to the stack, which costs less than fetches do.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(constant_id = 3) const uint TRANS_A = 0;  // A stored (k, m) instead of (m, k)
layout(constant_id = 4) const uint TRANS_B = 0;  // B stored (n, k) instead of (k, n)
layout(constant_id = 5) const uint EPILOGUE = 0; // 0 none, 1 + bias[col], 2 + bias then relu
layout(constant_id = 6) const uint TM = 4;       // rows per invocation
layout(constant_id = 7) const uint TN = 4;       // columns per invocation
layout(constant_id = 8) const uint CPU_PATH = 0;
// CPU path only:
//  bit 0: read A as vec4 texels along its contiguous dimension: k for plain
//         A (needs k % 4 == 0), m for transposed A (m % 4 == 0, TM % 4 == 0).
//         Otherwise one float per fetch.
//  bit 1: likewise for B: k for transposed B, n for plain B (TN % 4 == 0).
//  bit 2: the operands come swapped and C is stored transposed: the kernel
//         computes C^T = op(B)^T op(A)^T (m and n in the push constants are
//         C^T's) and adds the bias by row. Puts a short n on the rows.
//  bit 3: store C by vec4 (needs n % 4 == 0, TN % 4 == 0, bit 2 clear).
//  bit 4: k % 4 != 0: compile the loop over the last k one at a time.
layout(constant_id = 9) const uint FLAGS = 0;

layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer C { float c[]; };
layout(std430, set = 0, binding = 2) writeonly buffer C4 { vec4 c4[]; }; // C again, by vec4
layout(std430, set = 0, binding = 3) readonly buffer Bias { float bias[]; };
layout(set = 0, binding = 8) uniform samplerBuffer a4; // RGBA32F texel views of A and B
layout(set = 0, binding = 9) uniform samplerBuffer b4;
layout(set = 0, binding = 11) uniform samplerBuffer bias4; // CPU path: texel view of the bias

layout(push_constant) uniform Push {
    uint m, n, k;
    uint stride_a, stride_b, stride_c; // per batch entry, in elements (0: shared)
    uint last_a, last_b;               // CPU path: last texel of the views of A and B
} pc;

float load_a(uint base, uint row, uint kk)
{
    return TRANS_A != 0 ? a[base + kk * pc.m + row] : a[base + row * pc.k + kk];
}

float load_b(uint base, uint kk, uint col)
{
    return TRANS_B != 0 ? b[base + col * pc.k + kk] : b[base + kk * pc.n + col];
}

// The epilogue for an output whose bias element is bias[i].
float epilogue(float v, uint i)
{
    if (EPILOGUE >= 1) v += bias[i];
    if (EPILOGUE == 2) v = max(v, 0.0);
    return v;
}

void main_gpu()
{
    uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
    uint wx = gl_WorkGroupSize.x, wy = gl_WorkGroupSize.y;
    uint col0 = gl_WorkGroupID.x * wx * TN + lx;
    uint row0 = gl_WorkGroupID.y * wy * TM + ly;
    uint batch = gl_WorkGroupID.z;
    uint base_a = batch * pc.stride_a, base_b = batch * pc.stride_b, base_c = batch * pc.stride_c;

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;

    // Clamped indices keep loads in bounds; the stores below are guarded.
    uint rows[TM], cols[TN];
    for (uint i = 0; i < TM; i++) rows[i] = min(row0 + i * wy, pc.m - 1);
    for (uint j = 0; j < TN; j++) cols[j] = min(col0 + j * wx, pc.n - 1);

    for (uint kk = 0; kk < pc.k; kk++) {
        float av[TM], bv[TN];
        for (uint i = 0; i < TM; i++) av[i] = load_a(base_a, rows[i], kk);
        for (uint j = 0; j < TN; j++) bv[j] = load_b(base_b, kk, cols[j]);
        for (uint i = 0; i < TM; i++)
            for (uint j = 0; j < TN; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }

    for (uint i = 0; i < TM; i++) {
        uint row = row0 + i * wy;
        if (row >= pc.m) continue;
        for (uint j = 0; j < TN; j++) {
            uint col = col0 + j * wx;
            if (col >= pc.n) continue;
            c[base_c + row * pc.n + col] = epilogue(acc[i][j], col);
        }
    }
}

// ---- CPU path ---------------------------------------------------------------
// Every loop over the block is [[unroll]]: llvmpipe keeps an array indexed by
// a loop counter it did not unroll in scratch memory, one lane at a time.

const bool VEC_A = (FLAGS & 1u) != 0;
const bool VEC_B = (FLAGS & 2u) != 0;
const bool TRANS_C = (FLAGS & 4u) != 0;
const bool VEC_C = (FLAGS & 8u) != 0;
const bool K_TAIL = (FLAGS & 16u) != 0;
// Floats in the texels that cover a run of TM (TN) floats starting anywhere.
const uint RUN_A = (TM + 3 + 3) / 4 * 4;
const uint RUN_B = (TN + 3 + 3) / 4 * 4;
const uint IB = 2; // rows updated together: their vec4s of A stay in registers across the columns

uint a_index(uint base, uint row, uint kk)
{
    return TRANS_A != 0 ? base + kk * pc.m + row : base + row * pc.k + kk;
}

uint b_index(uint base, uint kk, uint col)
{
    return TRANS_B != 0 ? base + col * pc.k + kk : base + kk * pc.n + col;
}

// Element o (0 .. 3, the same in every lane in practice) of a run of floats
// w[r .. r + 3]: realigns a run read from whole texels.
#define PICK(w, r, o) ((o) == 0u ? w[r] : (o) == 1u ? w[(r) + 1] : (o) == 2u ? w[(r) + 2] : w[(r) + 3])

// One float through the texel view (a storage-buffer load is a slow lane loop).
float fetch1_a(uint idx)
{
    vec4 v = texelFetch(a4, int(idx >> 2));
    uint c = idx & 3u;
    return c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w;
}

float fetch1_b(uint idx)
{
    vec4 v = texelFetch(b4, int(idx >> 2));
    uint c = idx & 3u;
    return c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w;
}

float fetch1_bias(uint idx)
{
    vec4 v = texelFetch(bias4, int(idx >> 2));
    uint c = idx & 3u;
    return c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w;
}

// Four consecutive floats from any element: two texels, realigned. The second
// texel is clamped to the view; past the tensor's end it is never picked.
vec4 fetch4_a(uint idx)
{
    vec4 v0 = texelFetch(a4, int(idx >> 2)), v1 = texelFetch(a4, int(min((idx >> 2) + 1, pc.last_a)));
    float w[8] = float[8](v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w);
    uint o = idx & 3u;
    return vec4(PICK(w, 0, o), PICK(w, 1, o), PICK(w, 2, o), PICK(w, 3, o));
}

vec4 fetch4_b(uint idx)
{
    vec4 v0 = texelFetch(b4, int(idx >> 2)), v1 = texelFetch(b4, int(min((idx >> 2) + 1, pc.last_b)));
    float w[8] = float[8](v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w);
    uint o = idx & 3u;
    return vec4(PICK(w, 0, o), PICK(w, 1, o), PICK(w, 2, o), PICK(w, 3, o));
}

void main_cpu()
{
    // Local size (8, s): the 8 lanes of a subgroup take neighbouring column
    // blocks of the same rows.
    uint row0 = (gl_WorkGroupID.y * gl_WorkGroupSize.y + gl_LocalInvocationID.y) * TM;
    uint col0 = (gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * TN;
    bool store = row0 < pc.m && col0 < pc.n;
    // Spare lanes recompute the last block and store nothing.
    row0 = min(row0, (pc.m - 1) / TM * TM);
    col0 = min(col0, (pc.n - 1) / TN * TN);
    uint batch = gl_WorkGroupID.z;
    uint base_a = batch * pc.stride_a, base_b = batch * pc.stride_b, base_c = batch * pc.stride_c;

    // Clamped rows and columns keep the loads in bounds. A vec4 run of rows
    // (transposed A) or columns (plain B) starts at a multiple of 4 and m
    // (n) is then a multiple of 4, so min(start, m - 4) keeps it whole.
    uint rows[TM], cols[TN];
    [[unroll]] for (uint i = 0; i < TM; i++) rows[i] = min(row0 + i, pc.m - 1);
    [[unroll]] for (uint j = 0; j < TN; j++) cols[j] = min(col0 + j, pc.n - 1);

    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;

    uint k4 = pc.k & ~3u;
    for (uint k0 = 0; k0 < k4; k0 += 4) {
        // av[i] = opA(rows[i], k0 .. k0 + 3), bv[j] = opB(k0 .. k0 + 3, cols[j]).
        vec4 av[TM], bv[TN];
        if (VEC_A && TRANS_A == 0) {
            [[unroll]] for (uint i = 0; i < TM; i++) av[i] = texelFetch(a4, int(a_index(base_a, rows[i], k0) >> 2));
        } else if (VEC_A) {
            [[unroll]] for (uint q = 0; q < 4; q++)
                [[unroll]] for (uint i = 0; i < TM; i += 4) {
                    vec4 v = texelFetch(a4, int(a_index(base_a, min(row0 + i, pc.m - 4), k0 + q) >> 2));
                    av[i][q] = v.x, av[i + 1][q] = v.y, av[i + 2][q] = v.z, av[i + 3][q] = v.w;
                }
        } else if (TRANS_A == 0) {
            [[unroll]] for (uint i = 0; i < TM; i++) av[i] = fetch4_a(a_index(base_a, rows[i], k0));
        } else {
            // Per k a run of TM floats from row0, read as whole texels and
            // realigned. Rows past m read the next k's (or clamped) values
            // and are never stored.
            [[unroll]] for (uint q = 0; q < 4; q++) {
                uint idx = a_index(base_a, row0, k0 + q), o = idx & 3u;
                float w[RUN_A];
                [[unroll]] for (uint t = 0; t < RUN_A / 4; t++) {
                    vec4 v = texelFetch(a4, int(min((idx >> 2) + t, pc.last_a)));
                    w[4 * t] = v.x, w[4 * t + 1] = v.y, w[4 * t + 2] = v.z, w[4 * t + 3] = v.w;
                }
                [[unroll]] for (uint i = 0; i < TM; i++) av[i][q] = PICK(w, i, o);
            }
        }
        if (VEC_B && TRANS_B != 0) {
            [[unroll]] for (uint j = 0; j < TN; j++) bv[j] = texelFetch(b4, int(b_index(base_b, k0, cols[j]) >> 2));
        } else if (VEC_B) {
            [[unroll]] for (uint q = 0; q < 4; q++)
                [[unroll]] for (uint j = 0; j < TN; j += 4) {
                    vec4 v = texelFetch(b4, int(b_index(base_b, k0 + q, min(col0 + j, pc.n - 4)) >> 2));
                    bv[j][q] = v.x, bv[j + 1][q] = v.y, bv[j + 2][q] = v.z, bv[j + 3][q] = v.w;
                }
        } else if (TRANS_B != 0) {
            [[unroll]] for (uint j = 0; j < TN; j++) bv[j] = fetch4_b(b_index(base_b, k0, cols[j]));
        } else {
            [[unroll]] for (uint q = 0; q < 4; q++) {
                uint idx = b_index(base_b, k0 + q, col0), o = idx & 3u;
                float w[RUN_B];
                [[unroll]] for (uint t = 0; t < RUN_B / 4; t++) {
                    vec4 v = texelFetch(b4, int(min((idx >> 2) + t, pc.last_b)));
                    w[4 * t] = v.x, w[4 * t + 1] = v.y, w[4 * t + 2] = v.z, w[4 * t + 3] = v.w;
                }
                [[unroll]] for (uint j = 0; j < TN; j++) bv[j][q] = PICK(w, j, o);
            }
        }
        [[unroll]] for (uint ib = 0; ib < (TM + IB - 1) / IB; ib++)
            [[unroll]] for (uint j = 0; j < TN; j++)
                [[unroll]] for (uint ii = 0; ii < IB; ii++) {
                    uint i = ib * IB + ii;
                    if (i < TM) {
                        float s = acc[i][j];
                        s = fma(av[i].x, bv[j].x, s);
                        s = fma(av[i].y, bv[j].y, s);
                        s = fma(av[i].z, bv[j].z, s);
                        s = fma(av[i].w, bv[j].w, s);
                        acc[i][j] = s;
                    }
                }
    }
    for (uint kk = k4; K_TAIL && kk < pc.k; kk++) {
        float av[TM], bv[TN];
        [[unroll]] for (uint i = 0; i < TM; i++) av[i] = fetch1_a(a_index(base_a, rows[i], kk));
        [[unroll]] for (uint j = 0; j < TN; j++) bv[j] = fetch1_b(b_index(base_b, kk, cols[j]));
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }

    if (!store) return;
    // The bias once per column (per row when C is stored transposed): each
    // read is a fetch, and a storage-buffer read per output would be a lane
    // loop per output, slow to run and to compile.
    float bias_col[TN], bias_row[TM];
    [[unroll]] for (uint j = 0; j < TN; j++) bias_col[j] = EPILOGUE >= 1 && !TRANS_C ? fetch1_bias(cols[j]) : 0.0;
    [[unroll]] for (uint i = 0; i < TM; i++) bias_row[i] = EPILOGUE >= 1 && TRANS_C ? fetch1_bias(rows[i]) : 0.0;
    [[unroll]] for (uint i = 0; i < TM; i++) {
        uint row = row0 + i;
        if (row >= pc.m) continue;
        float v[TN];
        [[unroll]] for (uint j = 0; j < TN; j++) {
            v[j] = acc[i][j];
            if (EPILOGUE >= 1) v[j] += TRANS_C ? bias_row[i] : bias_col[j];
            if (EPILOGUE == 2) v[j] = max(v[j], 0.0);
        }
        if (VEC_C) {
            // A whole vec4 is in range or none of it.
            [[unroll]] for (uint j = 0; j < TN; j += 4)
                if (col0 + j < pc.n) c4[(base_c + row * pc.n + col0 + j) >> 2] = vec4(v[j], v[j + 1], v[j + 2], v[j + 3]);
        } else {
            [[unroll]] for (uint j = 0; j < TN; j++) {
                uint col = col0 + j;
                if (col >= pc.n) continue;
                if (TRANS_C) c[base_c + col * pc.m + row] = v[j];
                else c[base_c + row * pc.n + col] = v[j];
            }
        }
    }
}

void main()
{
    if (CPU_PATH != 0) main_cpu();
    else main_gpu();
}
