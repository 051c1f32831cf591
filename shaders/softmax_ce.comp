#version 450
// Softmax cross-entropy, numerically stable: loss_r = log(sum exp(x - max)) + max - x[label].
// FORWARD: one workgroup; invocation i takes rows i, i + local, ... in order,
//          then a tree sums the partials; loss = sum / batch.
// BACKWARD: one invocation per row: dx = (softmax - onehot) * dloss / batch.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
#define MODE_FORWARD 0
#define MODE_BACKWARD 1

layout(std430, set = 0, binding = 0) readonly buffer Logits { float logits[]; };
layout(std430, set = 0, binding = 1) readonly buffer Labels { int labels[]; };
layout(std430, set = 0, binding = 2) readonly buffer DLoss { float dloss[]; };  // BACKWARD
layout(std430, set = 0, binding = 3) writeonly buffer Out { float result[]; }; // loss (1) or dlogits

layout(push_constant) uniform Push {
    uint batch, classes;
} pc;

const uint MAX_LOCAL = 256;
shared float partial[MAX_LOCAL];

float row_max(uint base)
{
    float m = logits[base];
    for (uint j = 1; j < pc.classes; j++) m = max(m, logits[base + j]);
    return m;
}

float row_sum_exp(uint base, float m)
{
    float s = 0.0;
    for (uint j = 0; j < pc.classes; j++) s += exp(logits[base + j] - m);
    return s;
}

void main()
{
    if (MODE == MODE_FORWARD) {
        uint lid = gl_LocalInvocationID.x;
        float acc = 0.0;
        for (uint r = lid; r < pc.batch; r += gl_WorkGroupSize.x) {
            uint base = r * pc.classes;
            float m = row_max(base);
            acc += log(row_sum_exp(base, m)) + m - logits[base + uint(labels[r])];
        }
        partial[lid] = acc;
        barrier();
        for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
            if (lid < s) partial[lid] += partial[lid + s];
            barrier();
        }
        if (lid == 0) result[0] = partial[0] / float(pc.batch);
    } else {
        uint r = gl_GlobalInvocationID.x;
        if (r >= pc.batch) return;
        uint base = r * pc.classes;
        float m = row_max(base);
        float inv_sum = 1.0 / row_sum_exp(base, m);
        float g = dloss[0] / float(pc.batch);
        uint label = uint(labels[r]);
        for (uint j = 0; j < pc.classes; j++) {
            float p = exp(logits[base + j] - m) * inv_sum;
            result[base + j] = (p - (j == label ? 1.0 : 0.0)) * g;
        }
    }
}
