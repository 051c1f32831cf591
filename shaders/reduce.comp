#version 450
// Sums with a fixed order: one workgroup per output; each invocation adds its
// strided share in ascending order, then a shared-memory tree halves the
// partial sums. The order depends only on the shapes and the workgroup size,
// so results are bit-identical from run to run.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
#define MODE_SUM_MIDDLE 0  // x (outer, n, inner) -> y (outer, inner)
#define MODE_KEEP_MIDDLE 1 // x (outer, n, inner) -> y (n)

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push {
    uint outer, n, inner;
    float scale;     // 1 for sums, 1/n for means
} pc;

const uint MAX_LOCAL = 256;
shared float partial[MAX_LOCAL];

void main()
{
    uint out_index = linear_group();
    uint outputs = MODE == MODE_SUM_MIDDLE ? pc.outer * pc.inner : pc.n;
    if (out_index >= outputs) return; // uniform per workgroup
    uint lid = gl_LocalInvocationID.x;
    uint local = gl_WorkGroupSize.x;
    float acc = 0.0;
    if (MODE == MODE_SUM_MIDDLE) {
        uint o = out_index / pc.inner, i = out_index % pc.inner;
        uint base = o * pc.n * pc.inner + i;
        for (uint j = lid; j < pc.n; j += local) acc += x[base + j * pc.inner];
    } else {
        uint count = pc.outer * pc.inner;
        for (uint j = lid; j < count; j += local) {
            uint o = j / pc.inner, i = j % pc.inner;
            acc += x[(o * pc.n + out_index) * pc.inner + i];
        }
    }
    partial[lid] = acc;
    barrier();
    for (uint s = local / 2; s > 0; s >>= 1) {
        if (lid < s) partial[lid] += partial[lid + s];
        barrier();
    }
    if (lid == 0) y[out_index] = partial[0] * pc.scale;
}
