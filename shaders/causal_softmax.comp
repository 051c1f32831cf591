#version 450
#extension GL_EXT_control_flow_attributes : enable
// Causal softmax of attention scores x (batch, T, T) (ops/causal_softmax.c
// is the reference), an invocation per row (b, t), grid-stride. Row t sees
// the columns s <= t:
//   FORWARD:  y[s] = exp(scale x[s] - m) / sum, m the row's max of scale x,
//             the sum over s ascending; y[s] = 0 for s > t.
//   BACKWARD: dx[s] = scale (y[s] (dy[s] - d)), d = sum over s <= t ascending
//             of y[s] dy[s]; dx[s] = 0 for s > t.
// The masked columns are never read, and their zeros are written without
// computing anything. A "unit" is a vec4 of a row when T % 4 == 0 (VEC),
// else one float; on llvmpipe (TEXEL) inputs are read through their vec4
// texel views (a storage-buffer load there is a loop over the lanes).
// `precise` keeps scale x - m from becoming an fma, so the exponent is the
// reference's; exp() itself is the device's.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
layout(constant_id = 4) const bool TEXEL = false;
layout(constant_id = 5) const bool VEC = false;
layout(constant_id = 6) const bool EXACT_DIV = false;
#define MODE_FORWARD 0
#define MODE_BACKWARD 1

#include "fastdiv.glsl"

// FORWARD: 0 = x; BACKWARD: 0 = y, 1 = dy.
layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 0) readonly buffer A4 { vec4 a4[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 1) readonly buffer B4 { vec4 b4[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out { float result[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out4 { vec4 result4[]; };
layout(set = 0, binding = 8) uniform samplerBuffer ta;
layout(set = 0, binding = 9) uniform samplerBuffer tb;

layout(push_constant) uniform Push {
    uint rows;   // batch * T
    uint t;      // T
    uint tv;     // units per row
    float scale;
} pc;

vec4 a_4(uint u) { return TEXEL ? texelFetch(ta, int(u)) : a4[u]; }
float a_1(uint i) { return TEXEL ? texelFetch(ta, int(i >> 2))[i & 3u] : a[i]; }
vec4 b_4(uint u) { return TEXEL ? texelFetch(tb, int(u)) : b4[u]; }
float b_1(uint i) { return TEXEL ? texelFetch(tb, int(i >> 2))[i & 3u] : b[i]; }

// The exponent of column 4u + e's weight (VEC); the caller masks s > t.
vec4 shifted4(uint at, float m)
{
    precise vec4 z = pc.scale * a_4(at) - m;
    return z;
}

float shifted1(uint at, float m)
{
    precise float z = pc.scale * a_1(at) - m;
    return z;
}

void forward(uint row, uint q)
{
    uint base = row * pc.tv;
    uint last = VEC ? q >> 2 : q; // the last unit holding a visible column
    float m = -1.0 / 0.0;
    for (uint u = 0; u <= last; u++) {
        if (VEC) {
            vec4 z = pc.scale * a_4(base + u);
            [[unroll]] for (uint e = 0; e < 4; e++)
                if (4u * u + e <= q) m = max(m, z[e]);
        } else {
            m = max(m, pc.scale * a_1(base + u));
        }
    }
    precise float sum = 0.0;
    for (uint u = 0; u <= last; u++) {
        if (VEC) {
            vec4 e4 = exp(shifted4(base + u, m));
            [[unroll]] for (uint e = 0; e < 4; e++)
                if (4u * u + e <= q) sum += e4[e];
        } else {
            sum += exp(shifted1(base + u, m));
        }
    }
    for (uint u = 0; u <= last; u++) {
        if (VEC) {
            vec4 y = exp(shifted4(base + u, m)) / sum;
            [[unroll]] for (uint e = 0; e < 4; e++)
                if (4u * u + e > q) y[e] = 0.0;
            result4[base + u] = y;
        } else {
            result[base + u] = exp(shifted1(base + u, m)) / sum;
        }
    }
    for (uint u = last + 1u; u < pc.tv; u++) {
        if (VEC) result4[base + u] = vec4(0.0);
        else result[base + u] = 0.0;
    }
}

void backward(uint row, uint q)
{
    uint base = row * pc.tv;
    uint last = VEC ? q >> 2 : q;
    precise float d = 0.0;
    for (uint u = 0; u <= last; u++) {
        if (VEC) {
            vec4 y = a_4(base + u), g = b_4(base + u);
            [[unroll]] for (uint e = 0; e < 4; e++)
                if (4u * u + e <= q) d += y[e] * g[e];
        } else {
            d += a_1(base + u) * b_1(base + u);
        }
    }
    for (uint u = 0; u <= last; u++) {
        if (VEC) {
            precise vec4 dx = pc.scale * (a_4(base + u) * (b_4(base + u) - d));
            [[unroll]] for (uint e = 0; e < 4; e++)
                if (4u * u + e > q) dx[e] = 0.0;
            result4[base + u] = dx;
        } else {
            precise float dx = pc.scale * (a_1(base + u) * (b_1(base + u) - d));
            result[base + u] = dx;
        }
    }
    for (uint u = last + 1u; u < pc.tv; u++) {
        if (VEC) result4[base + u] = vec4(0.0);
        else result[base + u] = 0.0;
    }
}

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint row = gl_GlobalInvocationID.x; row < pc.rows; row += stride) {
        uint q = row - fdiv(row, pc.t) * pc.t; // the query position t
        if (MODE == MODE_FORWARD) forward(row, q);
        else backward(row, q);
    }
}
