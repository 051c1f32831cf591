#version 450
// Dropout: each invocation takes one Philox block, i.e. four consecutive
// elements, and keeps element i when the top 24 bits of its word reach the
// threshold (ops/dropout.c is the reference). The step number from the
// scalars buffer selects the stream, so one recording draws a fresh mask
// every step; while evaluating (SCALAR_TRAINING == 0) it copies x.
#include "common.glsl"
#include "philox.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push {
    uint n;
    uint threshold;  // floor(p * 2^24)
    float scale;     // 1 / (1 - p)
    uint seed_lo, seed_hi;
    uint salt;       // stream = salt << 32 | step
} pc;

void main()
{
    bool training = scalars[SCALAR_TRAINING] != 0.0;
    uint step = floatBitsToUint(scalars[SCALAR_STEP_INDEX]);
    uint blocks = (pc.n + 3u) / 4u;
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint b = gl_GlobalInvocationID.x; b < blocks; b += stride) {
        uvec4 words = training ? philox4x32_10(uvec4(b, 0u, step, pc.salt), uvec2(pc.seed_lo, pc.seed_hi)) : uvec4(0u);
        for (uint lane = 0u; lane < 4u; lane++) {
            uint i = 4u * b + lane;
            if (i >= pc.n) break;
            if (!training) y[i] = x[i];
            else y[i] = (words[lane] >> 8) >= pc.threshold ? x[i] * pc.scale : 0.0;
        }
    }
}
