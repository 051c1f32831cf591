#version 450
// Optimizer updates over the flat parameter buffer, PyTorch semantics
// (torch.optim.SGD with momentum, dampening 0; torch.optim.AdamW), four
// elements (a vec4) per invocation step, grid-stride. The learning rate and
// Adam's bias corrections come from the scalars buffer so one recording
// serves every step.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
#define MODE_SGD 0
#define MODE_ADAMW 1
#define MODE_FLOOR 2 // p[i] = floor where p[i] < floor, over one parameter (push: n, floor)

layout(constant_id = 4) const bool TEXEL = false; // read the gradient through its texel view

layout(std430, set = 0, binding = 0) buffer P { vec4 p[]; };
layout(std430, set = 0, binding = 0) buffer PF { float pf[]; };
layout(std430, set = 0, binding = 1) readonly buffer G { vec4 g[]; };
layout(std430, set = 0, binding = 2) buffer M { vec4 m[]; };  // momentum buffer / first moment
layout(std430, set = 0, binding = 3) buffer V { vec4 v[]; };  // second moment (AdamW)
layout(set = 0, binding = 9) uniform samplerBuffer tg;

layout(push_constant) uniform Push {
    uint n;             // floats; the flat buffers are padded to a multiple of 64
    float beta1;        // SGD: momentum
    float beta2;
    float eps;
    float weight_decay; // SGD only; AdamW's decay comes as a factor in the scalars
    float one_minus_beta1; // rounded from double on the host, as PyTorch's 1 - beta1
    float one_minus_beta2;
} pc;

// Component-wise vec4 arithmetic is the scalar arithmetic per element, in the
// same order.
void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (MODE == MODE_FLOOR) {
        // A comparison, not max(): NaN stays NaN, as in torch.clamp_.
        float lo = pc.beta1;
        for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride)
            if (pf[i] < lo) pf[i] = lo;
        return;
    }
    float lr = scalars[SCALAR_LR];
    uint n4 = pc.n >> 2;
    for (uint i = gl_GlobalInvocationID.x; i < n4; i += stride) {
        vec4 grad = TEXEL ? texelFetch(tg, int(i)) : g[i];
        if (MODE == MODE_SGD) {
            // A zero-initialised buffer gives buf = g on the first step,
            // which is PyTorch's initialisation when dampening is 0.
            vec4 param = p[i];
            vec4 gw = grad + pc.weight_decay * param;
            vec4 buf = pc.beta1 * m[i] + gw;
            m[i] = buf;
            p[i] = param - lr * buf;
        } else {
            // The order of operations is PyTorch's, so results agree to the ulp.
            vec4 param = p[i] * scalars[SCALAR_DECAY_FACTOR];
            vec4 m1 = m[i] * pc.beta1 + pc.one_minus_beta1 * grad;
            vec4 v1 = v[i] * pc.beta2 + (pc.one_minus_beta2 * grad) * grad;
            m[i] = m1;
            v[i] = v1;
            vec4 denom = sqrt(v1) / scalars[SCALAR_ADAM_BC2_SQRT] + pc.eps;
            // addcdiv(m, denom, value = -step_size) is value * m / denom, left to right.
            p[i] = param + ((-scalars[SCALAR_ADAM_STEP_SIZE]) * m1) / denom;
        }
    }
}
