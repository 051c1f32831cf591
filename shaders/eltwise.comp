#version 450
// Elementwise kernels, one shader specialised by MODE so fused and plain
// variants share one source. a, b: inputs; y: output. Grid-stride loop over n.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
#define MODE_ADD 0        // y = a + b
#define MODE_MUL 1        // y = a * b
#define MODE_RELU 2       // y = max(a, 0)
#define MODE_RELU_BACK 3  // y = a * (b > 0), a = dy, b = forward output
#define MODE_GELU 4       // y = gelu(a), exact (erf) form
#define MODE_GELU_BACK 5  // y = a * gelu'(b), a = dy, b = forward input
#define MODE_BIAS_ADD 6   // y = a + b[channel], a viewed as (outer, channels, inner)
#define MODE_BROADCAST 7  // y (outer, channels, inner) = a (outer, inner) * scale

layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push {
    uint n;         // elements of y
    uint channels;  // BIAS_ADD / BROADCAST
    uint inner;     // BIAS_ADD / BROADCAST
    float scale;    // BROADCAST
} pc;

// erf to about 1.2e-7 absolute: Numerical Recipes' erfc Chebyshev fit, the
// same expression as qat_erf_approx() in ops/gelu.c.
float erf_approx(float x)
{
    float z = abs(x);
    float t = 1.0 / (1.0 + 0.5 * z);
    float r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
              t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
              t * (-0.82215223 + t * 0.17087277)))))))));
    return x >= 0.0 ? 1.0 - r : r - 1.0;
}

const float INV_SQRT2 = 0.70710678118654752;
const float INV_SQRT_2PI = 0.39894228040143268;

float compute(uint i)
{
    if (MODE == MODE_ADD) return a[i] + b[i];
    if (MODE == MODE_MUL) return a[i] * b[i];
    if (MODE == MODE_RELU) return max(a[i], 0.0);
    if (MODE == MODE_RELU_BACK) return b[i] > 0.0 ? a[i] : 0.0;
    if (MODE == MODE_GELU) {
        float x = a[i];
        return 0.5 * x * (1.0 + erf_approx(x * INV_SQRT2));
    }
    if (MODE == MODE_GELU_BACK) {
        float x = b[i];
        float cdf = 0.5 * (1.0 + erf_approx(x * INV_SQRT2));
        return a[i] * (cdf + x * exp(-0.5 * x * x) * INV_SQRT_2PI);
    }
    if (MODE == MODE_BIAS_ADD) return a[i] + b[(i / pc.inner) % pc.channels];
    // MODE_BROADCAST
    uint outer = i / (pc.channels * pc.inner);
    return a[outer * pc.inner + i % pc.inner] * pc.scale;
}

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) y[i] = compute(i);
}
