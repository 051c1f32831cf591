#version 450
#extension GL_EXT_control_flow_attributes : enable
// Token embedding (ops/embedding.c is the reference). A "unit" is a vec4 of
// the embedding dimension when dim % 4 == 0 (VEC), else one float.
//   FORWARD:  y (n, dim) = table[ids]: grid-stride over the output units;
//             an id outside [0, vocab) gives zeros.
//   BACKWARD: d table (vocab, dim) as a gather: invocation (v, chunk) owns V
//             units of table row v and scans every token in ascending order,
//             adding the dy rows of the tokens whose id is v. No atomics, and
//             each sum has the reference's order. The scan reads the ids
//             four at a time (on llvmpipe through their integer texel view)
//             and costs vocab * chunks * n / 4 fetches; only the matches
//             read dy.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
layout(constant_id = 4) const bool TEXEL = false;
layout(constant_id = 5) const bool VEC = false;
layout(constant_id = 6) const bool EXACT_DIV = false;
layout(constant_id = 7) const uint V = 1; // BACKWARD: units per invocation
#define MODE_FORWARD 0
#define MODE_BACKWARD 1

#include "fastdiv.glsl"

// FORWARD: 0 = table; BACKWARD: 0 = dy.
layout(std430, set = 0, binding = 0) readonly buffer Src { float src[]; };
layout(std430, set = 0, binding = 0) readonly buffer Src4 { vec4 src4[]; };
layout(std430, set = 0, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, set = 0, binding = 1) readonly buffer Ids4 { ivec4 ids4[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out { float result[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out4 { vec4 result4[]; };
layout(set = 0, binding = 8) uniform samplerBuffer tsrc;
// Bound on every device (the ids are small); read only when TEXEL.
layout(set = 0, binding = 9) uniform isamplerBuffer tids;

layout(push_constant) uniform Push {
    uint n;      // tokens
    uint vocab;
    uint dimv;   // units per row
    uint items;  // FORWARD: n * dimv; BACKWARD: vocab * chunks
    uint chunks; // BACKWARD: invocations per table row
} pc;

vec4 load4(uint i) { return TEXEL ? texelFetch(tsrc, int(i)) : src4[i]; }
float load1(uint i) { return TEXEL ? texelFetch(tsrc, int(i >> 2))[i & 3u] : src[i]; }
int id1(uint t) { return TEXEL ? texelFetch(tids, int(t >> 2))[t & 3u] : ids[t]; }
ivec4 id4(uint t4) { return TEXEL ? texelFetch(tids, int(t4)) : ids4[t4]; }

void forward()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint o = gl_GlobalInvocationID.x; o < pc.items; o += stride) {
        uint t = fdiv(o, pc.dimv), u = o - t * pc.dimv;
        int id = id1(t);
        bool ok = id >= 0 && uint(id) < pc.vocab;
        uint at = uint(ok ? id : 0) * pc.dimv + u;
        if (VEC) result4[o] = ok ? load4(at) : vec4(0.0);
        else result[o] = ok ? load1(at) : 0.0;
    }
}

// Adds token t's units [u0, u0 + V) of dy into acc.
void add_token(uint t, uint u0, inout vec4 acc[V])
{
    [[unroll]] for (uint e = 0; e < V; e++) {
        uint u = min(u0 + e, pc.dimv - 1u); // spare units past the row are never stored
        if (VEC) acc[e] += load4(t * pc.dimv + u);
        else acc[e].x += load1(t * pc.dimv + u);
    }
}

void backward()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint o = gl_GlobalInvocationID.x; o < pc.items; o += stride) {
        uint v = fdiv(o, pc.chunks), u0 = (o - v * pc.chunks) * V;
        int iv = int(v);
        vec4 acc[V];
        [[unroll]] for (uint e = 0; e < V; e++) acc[e] = vec4(0.0);
        // llvmpipe runs both sides of every branch under a lane mask, but
        // leaves a loop once no lane continues: so quads of tokens with no
        // match are skipped by an inner loop rather than an if, and the
        // matches of a quad are visited one by one.
        uint n4 = pc.n >> 2;
        for (uint t4 = 0; t4 < n4; t4++) {
            bvec4 hit = equal(id4(t4), ivec4(iv));
            while (!any(hit) && ++t4 < n4) hit = equal(id4(t4), ivec4(iv));
            if (t4 >= n4) break;
            uint mask = (hit.x ? 1u : 0u) | (hit.y ? 2u : 0u) | (hit.z ? 4u : 0u) | (hit.w ? 8u : 0u);
            while (mask != 0u) {
                add_token(4u * t4 + uint(findLSB(mask)), u0, acc);
                mask &= mask - 1u;
            }
        }
        for (uint t = 4u * n4; t < pc.n; t++)
            if (id1(t) == iv) add_token(t, u0, acc);
        [[unroll]] for (uint e = 0; e < V; e++) {
            uint u = u0 + e;
            if (u >= pc.dimv) break;
            if (VEC) result4[v * pc.dimv + u] = acc[e];
            else result[v * pc.dimv + u] = acc[e].x;
        }
    }
}

void main()
{
    if (MODE == MODE_FORWARD) forward();
    else backward();
}
