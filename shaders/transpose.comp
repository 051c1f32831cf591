#version 450
// Swap of axes 1 and 2: x (A, B, C, D) -> y (A, C, B, D), as a gather (each
// output reads its source; ops/transpose.c is the reference). An invocation
// copies one row of D (grid-stride over the A C B rows), a vec4 at a time
// when D % 4 == 0 (VEC), else one float at a time: the index arithmetic is
// paid once per row (measured on lavapipe: 20% faster than once per vec4).
// On llvmpipe (TEXEL) the input is read through its vec4 texel view: a
// storage-buffer load there is a loop over the lanes, a texel fetch one
// gather.
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
    uint rows;    // A * C * B
    uint b, c;    // axes 1 and 2 of x
    uint d;       // innermost axis, in vec4s (VEC) or floats
} pc;

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint r = gl_GlobalInvocationID.x; r < pc.rows; r += stride) {
        // Output row r = (a * C + j) * B + i holds input row (a * B + i) * C + j.
        uint r2 = fdiv(r, pc.b), i = r - r2 * pc.b;
        uint a = fdiv(r2, pc.c), j = r2 - a * pc.c;
        uint src = ((a * pc.b + i) * pc.c + j) * pc.d, dst = r * pc.d;
        for (uint k = 0; k < pc.d; k++) {
            if (VEC) y4[dst + k] = TEXEL ? texelFetch(tx, int(src + k)) : x4[src + k];
            else y[dst + k] = TEXEL ? texelFetch(tx, int((src + k) >> 2))[(src + k) & 3u] : x[src + k];
        }
    }
}
