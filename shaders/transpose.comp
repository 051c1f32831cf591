#version 450
// Swap of axes 1 and 2: x (A, B, C, D) -> y (A, C, B, D), as a gather (each
// output reads its source; ops/transpose.c is the reference). Grid-stride
// over the outputs, a vec4 of the innermost axis at a time when D % 4 == 0
// (VEC), else one float at a time. On llvmpipe (TEXEL) the input is read
// through its vec4 texel view: a storage-buffer load there is a loop over
// the lanes, a texel fetch one gather.
#include "common.glsl"

layout(constant_id = 3) const bool TEXEL = false;
layout(constant_id = 4) const bool VEC = false;
layout(constant_id = 5) const bool EXACT_DIV = false;

#include "fastdiv.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y4 { vec4 y4[]; };
layout(set = 0, binding = 8) uniform samplerBuffer tx;

layout(push_constant) uniform Push {
    uint items;   // outputs: vec4s (VEC) or floats
    uint b, c;    // axes 1 and 2 of x
    uint d;       // innermost axis, in vec4s (VEC) or floats
} pc;

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint o = gl_GlobalInvocationID.x; o < pc.items; o += stride) {
        // o = ((a * C + j) * B + i) * D + k
        uint r = fdiv(o, pc.d), k = o - r * pc.d;
        uint r2 = fdiv(r, pc.b), i = r - r2 * pc.b;
        uint a = fdiv(r2, pc.c), j = r2 - a * pc.c;
        uint src = ((a * pc.b + i) * pc.c + j) * pc.d + k;
        if (VEC) y4[o] = TEXEL ? texelFetch(tx, int(src)) : x4[src];
        else y[o] = TEXEL ? texelFetch(tx, int(src >> 2))[src & 3u] : x[src];
    }
}
