#version 450
#extension GL_EXT_control_flow_attributes : enable
// Sums with a fixed order, so results are bit-identical from run to run.
//   SUM_MIDDLE, one invocation per output (many outputs): x (outer, n, inner)
//     -> y (outer, inner), each output summed over n in ascending order, as
//     the reference does; vec4s of neighbouring outputs when inner % 4 == 0,
//     V of them per invocation (more loads in flight on llvmpipe).
//   SUM_MIDDLE_TREE (few outputs): one workgroup per output; each invocation
//     adds its strided share in ascending order, then a shared-memory tree.
//   KEEP_MIDDLE: x (outer, n, inner) -> y (n), one workgroup per output; each
//     invocation adds its strided share of the (outer, inner) items (vec4s of
//     inner when inner % 4 == 0), then the tree.
// The order depends only on the shapes and the workgroup size.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
layout(constant_id = 4) const bool TEXEL = false;  // vec4 reads through the texel view
layout(constant_id = 5) const bool VEC = false;    // inner % 4 == 0
layout(constant_id = 6) const bool EXACT_DIV = false;
layout(constant_id = 7) const uint V = 1;          // SUM_MIDDLE with VEC: vec4 outputs per invocation
#define MODE_SUM_MIDDLE 0
#define MODE_KEEP_MIDDLE 1
#define MODE_SUM_MIDDLE_TREE 2

#include "fastdiv.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y4 { vec4 y4[]; };
layout(set = 0, binding = 8) uniform samplerBuffer tx;

layout(push_constant) uniform Push {
    uint outer, n, inner;
    float scale;     // 1 for sums
    float divisor;   // means: n (the sum is divided, as the reference does); 0 for sums
} pc;

const uint MAX_LOCAL = 256;
shared float partial[MAX_LOCAL];

vec4 load4(uint i) { return TEXEL ? texelFetch(tx, int(i)) : x4[i]; }

float finish(float v) { return pc.divisor != 0.0 ? v / pc.divisor : v * pc.scale; }
vec4 finish4(vec4 v) { return pc.divisor != 0.0 ? v / pc.divisor : v * pc.scale; }

// The workgroup's partial sums, in invocation order by a tree, into y[at].
void tree(float acc, uint at)
{
    uint lid = gl_LocalInvocationID.x;
    partial[lid] = acc;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
        if (lid < s) partial[lid] += partial[lid + s];
        barrier();
    }
    if (lid == 0) y[at] = finish(partial[0]);
}

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (MODE == MODE_SUM_MIDDLE) {
        if (VEC) {
            // Lane l of a group of 8 takes vec4 outputs l, l + 8, .. l + 8*(V-1)
            // of the group's 8*V: V gathers per step, each touching two lines,
            // so a step keeps several misses in flight.
            uint inner4 = pc.inner >> 2, outputs4 = pc.outer * inner4;
            uint lane = gl_LocalInvocationID.x & 7u, group = gl_GlobalInvocationID.x >> 3;
            uint groups = (outputs4 + 8u * V - 1u) / (8u * V);
            for (uint gi = group; gi < groups; gi += stride >> 3) {
                uint at[V], t[V];
                [[unroll]] for (uint v = 0; v < V; v++) {
                    t[v] = min((gi * V + v) * 8u + lane, outputs4 - 1u);
                    uint o = fdiv(t[v], inner4), i4 = t[v] - o * inner4;
                    at[v] = o * pc.n * inner4 + i4;
                }
                vec4 acc[V];
                [[unroll]] for (uint v = 0; v < V; v++) acc[v] = vec4(0.0);
                for (uint j = 0; j < pc.n; j++)
                    [[unroll]] for (uint v = 0; v < V; v++) acc[v] += load4(at[v] + j * inner4);
                [[unroll]] for (uint v = 0; v < V; v++)
                    if ((gi * V + v) * 8u + lane < outputs4) y4[t[v]] = finish4(acc[v]);
            }
        } else {
            uint outputs = pc.outer * pc.inner;
            for (uint t = gl_GlobalInvocationID.x; t < outputs; t += stride) {
                uint o = fdiv(t, pc.inner), i = t - o * pc.inner;
                uint at = o * pc.n * pc.inner + i;
                float acc = 0.0;
                for (uint j = 0; j < pc.n; j++, at += pc.inner) acc += x[at];
                y[t] = finish(acc);
            }
        }
        return;
    }

    uint out_index = linear_group();
    uint outputs = MODE == MODE_SUM_MIDDLE_TREE ? pc.outer * pc.inner : pc.n;
    if (out_index >= outputs) return; // uniform per workgroup
    uint lid = gl_LocalInvocationID.x;
    uint local = gl_WorkGroupSize.x;
    float acc = 0.0;
    if (MODE == MODE_SUM_MIDDLE_TREE) {
        uint o = out_index / pc.inner, i = out_index % pc.inner;
        uint base = o * pc.n * pc.inner + i;
        for (uint j = lid; j < pc.n; j += local) acc += x[base + j * pc.inner];
    } else if (VEC) {
        uint inner4 = pc.inner >> 2, count = pc.outer * inner4;
        vec4 acc4 = vec4(0.0);
        for (uint j = lid; j < count; j += local) {
            uint o = fdiv(j, inner4), i4 = j - o * inner4;
            acc4 += load4((o * pc.n + out_index) * inner4 + i4);
        }
        acc = (acc4.x + acc4.y) + (acc4.z + acc4.w);
    } else {
        uint count = pc.outer * pc.inner;
        for (uint j = lid; j < count; j += local) {
            uint o = fdiv(j, pc.inner), i = j - o * pc.inner;
            acc += x[(o * pc.n + out_index) * pc.inner + i];
        }
    }
    tree(acc, out_index);
}
