#version 450
// The 4-bit linear layer (ops/matmul_q4.c is the reference): C = A op(W)
// with W (out, in) read only as packed 4-bit codes and dequantized in
// registers, so the weight never exists in FP32 in memory.
//   MODE 0 (forward):     C (rows, out) = x (rows, in) W^T (+ bias[col])
//   MODE 1 (input grad):  C (rows, in)  = dy (rows, out) W
// W[o][i] = codebook[code e] * absmax(e / 64), e = o * in + i, where absmax
// is the F32 value, or with double quantization
// fl(fl(map[code8] * scale[e / 64 / 256]) + offset): ops/q4_format.h. Both
// products are `precise`, so they round exactly as the reference's; the sums
// use fma, in ascending k, one accumulator per output (no split-k).
//
// Every invocation owns a TM x TN block of adjacent outputs, as the CPU path
// of shaders/matmul.comp (whose notes explain why: on llvmpipe a texel fetch
// gathers a vec4 for 8 lanes in one call while a storage-buffer load is a
// lane loop, so every read here, the scales included, goes through a texel
// view). Reading W as codes moves the cost from fetches to decoding: a
// decoded weight is used by the TM rows of its lane, and decoding one code
// (a 16-way select on the codebook held in registers, then the absmax
// multiply) costs about 20 vector instructions, so TM is large (64). On
// lavapipe this executes about as many instructions as the FP32 matmul on
// GPT's layer shapes (callgrind) and takes 1.3-1.5x its CPU time on one
// thread; qat bench --only q4 saw 1.1-1.8x its wall time on a shared 2-core
// machine.
//
// FAST (in % 8 == 0; the input gradient also needs out % 4 == 0): W's rows
// start whole words, and a word (8 codes) never straddles two blocks of 64.
// The forward walks k 8 at a time: per column one word and one absmax (only
// every 64 k when in % 64 == 0, BLOCK_ROWS, as in GPT's layers). The input
// gradient needs TN = 8 adjacent columns of one W row per k: again one word
// and one absmax. Otherwise a general path fetches every element on its own
// (slow; for odd shapes only).
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
layout(constant_id = 4) const bool DOUBLE_QUANT = false;
layout(constant_id = 5) const bool HAS_BIAS = false;  // forward only
layout(constant_id = 6) const uint TM = 4;            // rows per invocation
layout(constant_id = 7) const uint TN = 4;            // columns per invocation (8 for FAST input gradients)
layout(constant_id = 8) const bool FAST = false;
layout(constant_id = 9) const bool VEC_C = false;     // n % 4 == 0 and TN % 4 == 0: store by vec4
layout(constant_id = 10) const bool BLOCK_ROWS = false; // in % 64 == 0: every W row starts a block

layout(set = 0, binding = 8) uniform samplerBuffer a4;        // x or dy, (rows, k)
layout(set = 0, binding = 9) uniform usamplerBuffer packed4;  // 32 codes per texel
layout(set = 0, binding = 10) uniform usamplerBuffer absmax4; // U8 codes, or F32 bits without double quant
layout(set = 0, binding = 11) uniform samplerBuffer table4;   // codebook 16, map 256, offset (QAT_Q4_TABLE_*)
layout(set = 0, binding = 12) uniform samplerBuffer scales4;  // F32 per 256 blocks (double quant)
layout(std430, set = 0, binding = 5) readonly buffer Bias { float bias[]; };
layout(std430, set = 0, binding = 6) writeonly buffer C { float c[]; };
layout(std430, set = 0, binding = 6) writeonly buffer C4 { vec4 c4[]; };

layout(push_constant) uniform Push {
    uint m, n, k;  // C (m, n), reduction k
    uint in_;      // W's row length
    uint table_dynamic, table_offset; // QAT_Q4_TABLE_DYNAMIC, _OFFSET (the codebook is at 0)
} pc;

float pick(vec4 v, uint i) { return i == 0u ? v.x : i == 1u ? v.y : i == 2u ? v.z : v.w; }
uint upick(uvec4 v, uint i) { return i == 0u ? v.x : i == 1u ? v.y : i == 2u ? v.z : v.w; }

// The codebook, held in registers; a code becomes its value by selects on its
// bits (an array indexed per lane would go through memory on llvmpipe).
vec4 cb0, cb1, cb2, cb3;

float code_value(uint q)
{
    vec4 v = (q & 8u) != 0u ? ((q & 4u) != 0u ? cb3 : cb2) : ((q & 4u) != 0u ? cb1 : cb0);
    vec2 h = (q & 2u) != 0u ? v.zw : v.xy;
    return (q & 1u) != 0u ? h.y : h.x;
}

float absmax_offset;

// Absmax of block b.
float block_absmax(uint b)
{
    if (!DOUBLE_QUANT) return uintBitsToFloat(upick(texelFetch(absmax4, int(b >> 2)), b & 3u));
    uint code = (upick(texelFetch(absmax4, int(b >> 4)), (b >> 2) & 3u) >> ((b & 3u) * 8u)) & 255u;
    float mapped = pick(texelFetch(table4, int((pc.table_dynamic + code) >> 2)), (pc.table_dynamic + code) & 3u);
    precise float scaled = mapped * pick(texelFetch(scales4, int(b >> 10)), (b >> 8) & 3u);
    precise float a = scaled + absmax_offset;
    return a;
}

// Word holding codes e .. e + 7 (e a multiple of 8).
uint word_at(uint e) { return upick(texelFetch(packed4, int(e >> 5)), (e >> 3) & 3u); }

// Code t (0..7) of a word: element 2j in the high nibble of byte j.
uint nibble(uint w, uint t) { return (w >> (8u * (t >> 1) + 4u * (1u - (t & 1u)))) & 15u; }

float dequant(uint q, float a)
{
    precise float w = code_value(q) * a;
    return w;
}

// W element e on its own (the general path).
float weight_at(uint e) { return dequant(nibble(word_at(e & ~7u), e & 7u), block_absmax(e >> 6)); }

float fetch1_a(uint idx) { return pick(texelFetch(a4, int(idx >> 2)), idx & 3u); }

void main()
{
    cb0 = texelFetch(table4, 0);
    cb1 = texelFetch(table4, 1);
    cb2 = texelFetch(table4, 2);
    cb3 = texelFetch(table4, 3);
    absmax_offset = DOUBLE_QUANT ? pick(texelFetch(table4, int(pc.table_offset >> 2)), pc.table_offset & 3u) : 0.0;

    uint row0 = (gl_WorkGroupID.y * gl_WorkGroupSize.y + gl_LocalInvocationID.y) * TM;
    uint col0 = (gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * TN;
    bool store = row0 < pc.m && col0 < pc.n;
    // Spare lanes recompute the last block and store nothing; with FAST the
    // last column block stays whole (n % TN == 0 for the input gradient).
    row0 = min(row0, (pc.m - 1) / TM * TM);
    col0 = min(col0, (pc.n - 1) / TN * TN);
    uint rows[TM], cols[TN];
    [[unroll]] for (uint i = 0; i < TM; i++) rows[i] = min(row0 + i, pc.m - 1);
    [[unroll]] for (uint j = 0; j < TN; j++) cols[j] = min(col0 + j, pc.n - 1);

    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;

    if (FAST && MODE == 0) {
        float am[TN];
        for (uint k0 = 0; k0 < pc.k; k0 += 8) {
            if (!BLOCK_ROWS || (k0 & 63u) == 0u)
                [[unroll]] for (uint j = 0; j < TN; j++) am[j] = block_absmax((cols[j] * pc.in_ + k0) >> 6);
            uint words[TN];
            [[unroll]] for (uint j = 0; j < TN; j++) words[j] = word_at(cols[j] * pc.in_ + k0);
            [[unroll]] for (uint h = 0; h < 2; h++) {
                vec4 av[TM], bv[TN];
                [[unroll]] for (uint i = 0; i < TM; i++) av[i] = texelFetch(a4, int((rows[i] * pc.k + k0) / 4u + h));
                [[unroll]] for (uint j = 0; j < TN; j++)
                    bv[j] = vec4(dequant(nibble(words[j], 4u * h), am[j]), dequant(nibble(words[j], 4u * h + 1u), am[j]),
                                 dequant(nibble(words[j], 4u * h + 2u), am[j]), dequant(nibble(words[j], 4u * h + 3u), am[j]));
                [[unroll]] for (uint i = 0; i < TM; i++)
                    [[unroll]] for (uint j = 0; j < TN; j++) {
                        float s = acc[i][j];
                        s = fma(av[i].x, bv[j].x, s);
                        s = fma(av[i].y, bv[j].y, s);
                        s = fma(av[i].z, bv[j].z, s);
                        s = fma(av[i].w, bv[j].w, s);
                        acc[i][j] = s;
                    }
            }
        }
    } else if (FAST) {
        // TN == 8: columns col0 .. col0 + 7 of W row k are one word.
        for (uint k0 = 0; k0 < pc.k; k0 += 4) {
            vec4 av[TM];
            [[unroll]] for (uint i = 0; i < TM; i++) av[i] = texelFetch(a4, int((rows[i] * pc.k + k0) >> 2));
            // bv[j] = W[k0 .. k0 + 3][col0 + j]; then, as in matmul.comp, each
            // accumulator takes its 4 products at once (it lives on the stack).
            vec4 bv[TN];
            [[unroll]] for (uint q = 0; q < 4; q++) {
                uint e = (k0 + q) * pc.in_ + col0;
                uint w = word_at(e);
                float a = block_absmax(e >> 6);
                [[unroll]] for (uint j = 0; j < TN; j++) bv[j][q] = dequant(nibble(w, j), a);
            }
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++) {
                    float s = acc[i][j];
                    s = fma(av[i].x, bv[j].x, s);
                    s = fma(av[i].y, bv[j].y, s);
                    s = fma(av[i].z, bv[j].z, s);
                    s = fma(av[i].w, bv[j].w, s);
                    acc[i][j] = s;
                }
        }
    } else {
        for (uint kk = 0; kk < pc.k; kk++) {
            float av[TM], bv[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) av[i] = fetch1_a(rows[i] * pc.k + kk);
            [[unroll]] for (uint j = 0; j < TN; j++)
                bv[j] = weight_at(MODE == 0 ? cols[j] * pc.in_ + kk : kk * pc.in_ + cols[j]);
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }
    }

    if (!store) return;
    float bias_col[TN];
    [[unroll]] for (uint j = 0; j < TN; j++) bias_col[j] = HAS_BIAS ? bias[cols[j]] : 0.0;
    [[unroll]] for (uint i = 0; i < TM; i++) {
        uint row = row0 + i;
        if (row >= pc.m) continue;
        float v[TN];
        [[unroll]] for (uint j = 0; j < TN; j++) v[j] = HAS_BIAS ? acc[i][j] + bias_col[j] : acc[i][j];
        if (VEC_C) {
            [[unroll]] for (uint j = 0; j < TN; j += 4)
                if (col0 + j < pc.n) c4[(row * pc.n + col0 + j) >> 2] = vec4(v[j], v[j + 1], v[j + 2], v[j + 3]);
        } else {
            [[unroll]] for (uint j = 0; j < TN; j++)
                if (col0 + j < pc.n) c[row * pc.n + col0 + j] = v[j];
        }
    }
}
