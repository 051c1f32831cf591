#version 450
// Optimizer updates over the flat parameter buffer, PyTorch semantics
// (torch.optim.SGD with momentum, dampening 0; torch.optim.AdamW), one
// invocation per element. The learning rate and Adam's bias corrections come
// from the scalars buffer so one recording serves every step.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
#define MODE_SGD 0
#define MODE_ADAMW 1

layout(std430, set = 0, binding = 0) buffer P { float p[]; };
layout(std430, set = 0, binding = 1) readonly buffer G { float g[]; };
layout(std430, set = 0, binding = 2) buffer M { float m[]; };  // momentum buffer / first moment
layout(std430, set = 0, binding = 3) buffer V { float v[]; };  // second moment (AdamW)

layout(push_constant) uniform Push {
    uint n;
    float beta1;        // SGD: momentum
    float beta2;
    float eps;
    float weight_decay; // SGD only; AdamW's decay comes as a factor in the scalars
} pc;

void main()
{
    float lr = scalars[SCALAR_LR];
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) {
        if (MODE == MODE_SGD) {
            // A zero-initialised buffer gives buf = g on the first step,
            // which is PyTorch's initialisation when dampening is 0.
            float grad = g[i] + pc.weight_decay * p[i];
            float buf = pc.beta1 * m[i] + grad;
            m[i] = buf;
            p[i] = p[i] - lr * buf;
        } else {
            // The order of operations is PyTorch's, so results agree to the ulp.
            float param = p[i] * scalars[SCALAR_DECAY_FACTOR];
            float grad = g[i];
            float m1 = pc.beta1 * m[i] + (1.0 - pc.beta1) * grad;
            float v1 = pc.beta2 * v[i] + (1.0 - pc.beta2) * grad * grad;
            m[i] = m1;
            v[i] = v1;
            float denom = sqrt(v1) / scalars[SCALAR_ADAM_BC2_SQRT] + pc.eps;
            p[i] = param + (-scalars[SCALAR_ADAM_STEP_SIZE]) * (m1 / denom);
        }
    }
}
