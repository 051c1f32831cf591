#version 450
#extension GL_EXT_control_flow_attributes : enable
// 2x2 max pooling, stride 2, floor (PyTorch's default). The window's choice
// is PyTorch CPU's: scan in row-major order, take a later element only when
// strictly greater or NaN, so a tie keeps the first maximum.
//   FORWARD: each invocation takes 4 consecutive outputs (a vec4).
//   BACKWARD: each invocation takes one window and writes its 4 elements of
//   dx (dy to the chosen one, 0 to the others), then the rows and columns
//   that floor dropped get 0; every element of dx is written exactly once.
// EVEN_W (W even): a window's two elements in a row are one aligned pair, read
// from one texel (TEXEL, llvmpipe) and written as a vec2.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
layout(constant_id = 4) const bool TEXEL = false;
layout(constant_id = 5) const bool EVEN_W = false;
layout(constant_id = 6) const bool EXACT_DIV = false;
// PAIRS (TEXEL, W % 4 == 0): invocations take two neighbouring windows, whose
// rows are one aligned texel each.
layout(constant_id = 7) const bool PAIRS = false;
#define MODE_FORWARD 0
#define MODE_BACKWARD 1

#include "fastdiv.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; };   // BACKWARD
layout(std430, set = 0, binding = 2) writeonly buffer Out { float result[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out2 { vec2 result2[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out4 { vec4 result4[]; };
layout(set = 0, binding = 8) uniform samplerBuffer tx;
layout(set = 0, binding = 9) uniform samplerBuffer tdy;

layout(push_constant) uniform Push {
    uint planes, in_h, in_w, out_h, out_w;
    uint windows;   // planes * out_h * out_w
} pc;

// x[at], x[at + 1] with at even (EVEN_W).
vec2 pair(uint at)
{
    if (TEXEL) {
        vec4 t = texelFetch(tx, int(at >> 2));
        return (at & 2u) != 0u ? t.zw : t.xy;
    }
    return vec2(x[at], x[at + 1u]);
}

// The window at row-major input offset `at`: its 4 values in scan order.
vec4 window(uint at)
{
    if (EVEN_W) return vec4(pair(at), pair(at + pc.in_w));
    return vec4(x[at], x[at + 1u], x[at + pc.in_w], x[at + pc.in_w + 1u]);
}

uint argmax(vec4 v)
{
    uint best = 0;
    float m = v.x;
    [[unroll]] for (uint t = 1; t < 4; t++)
        if (v[t] > m || isnan(v[t])) { m = v[t]; best = t; }
    return best;
}

float load_dy(uint i) { return TEXEL ? texelFetch(tdy, int(i >> 2))[i & 3u] : dy[i]; }

// Windows t and t + 1 (t even, same row since out_w is even): the row
// texels at input offset `at` (aligned) and at + in_w.
void pairs_main(uint gid, uint stride, uint plane_in, uint plane_out)
{
    uint npairs = pc.windows >> 1;
    for (uint t2 = gid; t2 < npairs; t2 += stride) {
        uint t = 2u * t2;
        uint plane = fdiv(t, plane_out), r = t - plane * plane_out;
        uint oh = fdiv(r, pc.out_w), ow = r - oh * pc.out_w;
        uint at = plane * plane_in + 2u * oh * pc.in_w + 2u * ow;
        vec4 top = texelFetch(tx, int(at >> 2)), bottom = texelFetch(tx, int((at + pc.in_w) >> 2));
        vec4 w0 = vec4(top.xy, bottom.xy), w1 = vec4(top.zw, bottom.zw);
        uint b0 = argmax(w0), b1 = argmax(w1);
        if (MODE == MODE_FORWARD) {
            result2[t2] = vec2(w0[b0], w1[b1]);
        } else {
            vec4 d = texelFetch(tdy, int(t >> 2));
            vec2 g = (t & 2u) != 0u ? d.zw : d.xy;
            result4[at >> 2] = vec4(b0 == 0u ? g.x : 0.0, b0 == 1u ? g.x : 0.0, b1 == 0u ? g.y : 0.0, b1 == 1u ? g.y : 0.0);
            result4[(at + pc.in_w) >> 2] = vec4(b0 == 2u ? g.x : 0.0, b0 == 3u ? g.x : 0.0, b1 == 2u ? g.y : 0.0, b1 == 3u ? g.y : 0.0);
        }
    }
}

void main()
{
    uint gid = gl_GlobalInvocationID.x, stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint plane_in = pc.in_h * pc.in_w, plane_out = pc.out_h * pc.out_w;
    if (PAIRS) {
        // W % 4 == 0: no dropped column, and H is even or its last row is
        // zeroed below.
        pairs_main(gid, stride, plane_in, plane_out);
        if (MODE == MODE_FORWARD || (pc.in_h & 1u) == 0u) return;
        for (uint t = gid; t < pc.planes * pc.in_w; t += stride) {
            uint plane = t / pc.in_w, j = t - plane * pc.in_w;
            result[plane * plane_in + (pc.in_h - 1u) * pc.in_w + j] = 0.0;
        }
        return;
    }
    if (MODE == MODE_FORWARD) {
        uint n4 = (pc.windows + 3u) / 4u;
        for (uint t4 = gid; t4 < n4; t4 += stride) {
            uint t = 4u * t4;
            uint plane = fdiv(t, plane_out), r = t - plane * plane_out;
            uint oh = fdiv(r, pc.out_w), ow = r - oh * pc.out_w;
            vec4 v;
            [[unroll]] for (uint e = 0; e < 4; e++) {
                uint at = plane * plane_in + 2u * oh * pc.in_w + 2u * ow;
                bool live = t + e < pc.windows;
                vec4 w = window(live ? at : 0u);
                v[e] = w[argmax(w)];
                ow++;
                if (ow == pc.out_w) { ow = 0; oh++; if (oh == pc.out_h) { oh = 0; plane++; } }
            }
            if (t + 4u <= pc.windows) result4[t4] = v;
            else [[unroll]] for (uint e = 0; e < 4; e++) if (t + e < pc.windows) result[t + e] = v[e];
        }
        return;
    }
    for (uint t = gid; t < pc.windows; t += stride) {
        uint plane = fdiv(t, plane_out), r = t - plane * plane_out;
        uint oh = fdiv(r, pc.out_w), ow = r - oh * pc.out_w;
        uint at = plane * plane_in + 2u * oh * pc.in_w + 2u * ow;
        uint best = argmax(window(at));
        float g = load_dy(t);
        vec4 v = vec4(best == 0u ? g : 0.0, best == 1u ? g : 0.0, best == 2u ? g : 0.0, best == 3u ? g : 0.0);
        if (EVEN_W) {
            result2[at >> 1] = v.xy;
            result2[(at + pc.in_w) >> 1] = v.zw;
        } else {
            result[at] = v.x;
            result[at + 1u] = v.y;
            result[at + pc.in_w] = v.z;
            result[at + pc.in_w + 1u] = v.w;
        }
    }
    // What floor dropped: the last column when W is odd (rows 0 .. 2*out_h - 1),
    // the last row when H is odd (every column). Rare: plain division.
    uint col_items = (pc.in_w & 1u) != 0u ? 2u * pc.out_h : 0u;
    uint row_items = (pc.in_h & 1u) != 0u ? pc.in_w : 0u;
    uint per_plane = col_items + row_items, extra = pc.planes * per_plane;
    for (uint t = gid; t < extra; t += stride) {
        uint plane = t / per_plane, j = t - plane * per_plane;
        uint at = j < col_items ? j * pc.in_w + pc.in_w - 1u : (pc.in_h - 1u) * pc.in_w + (j - col_items);
        result[plane * plane_in + at] = 0.0;
    }
}
