#version 450
#extension GL_EXT_control_flow_attributes : enable
// Elementwise kernels, one shader specialised by MODE so fused and plain
// variants share one source. a, b: inputs; y: output. Invocations take vec4s
// (grid-stride over n / 4), then the last n % 4 elements one by one. On
// llvmpipe (TEXEL) the inputs are read through their vec4 texel views, which
// it gathers much faster than storage-buffer loads; indices are split into
// channel and position with fdiv, as it scalarises integer division.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
layout(constant_id = 4) const bool TEXEL = false;
layout(constant_id = 5) const bool EXACT_DIV = false;
layout(constant_id = 6) const bool VEC_INNER = false; // BIAS_ADD / BROADCAST: inner % 4 == 0
#define MODE_ADD 0        // y = a + b
#define MODE_MUL 1        // y = a * b
#define MODE_RELU 2       // y = a <= 0 ? 0 : a (NaN propagates)
#define MODE_RELU_BACK 3  // y = b > 0 ? a : 0, a = dy, b = forward output
#define MODE_GELU 4       // y = gelu(a), exact (erf) form
#define MODE_GELU_BACK 5  // y = a * gelu'(b), a = dy, b = forward input
#define MODE_BIAS_ADD 6   // y = a + b[channel], a viewed as (outer, channels, inner)
#define MODE_BROADCAST 7  // y (outer, channels, inner) = a (outer, inner) * scale, or / divisor

#include "fastdiv.glsl"

layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 0) readonly buffer A4 { vec4 a4[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 1) readonly buffer B4 { vec4 b4[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Y4 { vec4 y4[]; };
layout(set = 0, binding = 8) uniform samplerBuffer ta;
layout(set = 0, binding = 9) uniform samplerBuffer tb;

layout(push_constant) uniform Push {
    uint n;         // elements of y
    uint channels;  // BIAS_ADD / BROADCAST
    uint inner;     // BIAS_ADD / BROADCAST
    float scale;    // BROADCAST
    float divisor;  // BROADCAST: when not 0, y = a / divisor (a mean's backward)
} pc;

vec4 load_a4(uint i) { return TEXEL ? texelFetch(ta, int(i)) : a4[i]; }
vec4 load_b4(uint i) { return TEXEL ? texelFetch(tb, int(i)) : b4[i]; }
float load_b(uint i) { return TEXEL ? texelFetch(tb, int(i >> 2))[i & 3u] : b[i]; }

// erf in float, W. J. Cody's rational approximations: the same expression as
// qat_erf_approx() in ops/gelu.c (see there for the intervals and accuracy).
float erf_approx(float x)
{
    float y = abs(x);
    float r;
    if (y < 0.75) {
        float z = y * y;
        float num = (((0.185777706184603153 * z + 3.16112374387056560) * z
                      + 113.864154151050156) * z + 377.485237685302021) * z
                    + 3209.37758913846947;
        float den = ((((z + 23.6012909523441209) * z + 244.024637934444173) * z
                      + 1282.61652607737228) * z) + 2844.23683343917062;
        r = y * num / den;
    } else if (y >= 4.0) {
        r = 1.0;
    } else {
        float num = (((((((2.15311535474403846e-8 * y + 0.564188496988670089) * y
                          + 8.88314979438837594) * y + 66.1191906371416295) * y
                        + 298.635138197400131) * y + 881.952221241769090) * y
                      + 1712.04761263407058) * y + 2051.07837782607147) * y
                    + 1230.33935479799725;
        float den = (((((((y + 15.7449261107098347) * y + 117.693950891312499) * y
                          + 537.181101862009858) * y + 1621.38957456669019) * y
                        + 3290.79923573345963) * y + 4362.61909014324716) * y
                      + 3439.36767414372164) * y + 1230.33935480374942;
        float erfc = exp(-y * y) * (num / den);
        r = 1.0 - erfc;
    }
    return x < 0.0 ? -r : r;
}

const float SQRT1_2 = 0.70710678118654752;
const float INV_SQRT_2PI = 0.39894228040143268;

float gelu(float x) { return 0.5 * x * (1.0 + erf_approx(x * SQRT1_2)); }

float gelu_back(float dy, float x)
{
    float cdf = 0.5 * (1.0 + erf_approx(x * SQRT1_2));
    float pdf = exp(-0.5 * x * x) * INV_SQRT_2PI;
    return dy * (cdf + x * pdf);
}

float channel_of(uint i) { uint q = fdiv(i, pc.inner); return load_b(q - fdiv(q, pc.channels) * pc.channels); }

// Element i of BROADCAST: a[outer * inner + i % inner].
float broadcast_src(uint i)
{
    uint span = pc.channels * pc.inner;
    uint o = fdiv(i, span), r = i - o * span;
    uint k = r - fdiv(r, pc.inner) * pc.inner;
    return a[o * pc.inner + k];
}

float finish_broadcast(float v) { return pc.divisor != 0.0 ? v / pc.divisor : v * pc.scale; }

// One element by plain loads (the tail, and vec4s that do not fit a mode's fast path).
float compute1(uint i)
{
    if (MODE == MODE_ADD) return a[i] + b[i];
    if (MODE == MODE_MUL) return a[i] * b[i];
    if (MODE == MODE_RELU) return a[i] <= 0.0 ? 0.0 : a[i];
    if (MODE == MODE_RELU_BACK) return b[i] > 0.0 ? a[i] : 0.0;
    if (MODE == MODE_GELU) return gelu(a[i]);
    if (MODE == MODE_GELU_BACK) return gelu_back(a[i], b[i]);
    if (MODE == MODE_BIAS_ADD) return a[i] + channel_of(i);
    return finish_broadcast(broadcast_src(i));
}

vec4 compute4(uint i4)
{
    if (MODE == MODE_BROADCAST) {
        vec4 v;
        if (VEC_INNER) {
            // The 4 elements share (outer, channel) and take a's vec4 at (outer, i4 % inner4).
            uint inner4 = pc.inner >> 2, span4 = pc.channels * inner4;
            uint o = fdiv(i4, span4), r = i4 - o * span4;
            v = load_a4(o * inner4 + r - fdiv(r, inner4) * inner4);
        } else {
            [[unroll]] for (uint e = 0; e < 4; e++) v[e] = broadcast_src(4u * i4 + e);
        }
        return pc.divisor != 0.0 ? v / pc.divisor : v * pc.scale;
    }
    vec4 x = load_a4(i4);
    if (MODE == MODE_RELU) return mix(x, vec4(0.0), lessThanEqual(x, vec4(0.0)));
    if (MODE == MODE_GELU) return vec4(gelu(x.x), gelu(x.y), gelu(x.z), gelu(x.w));
    if (MODE == MODE_BIAS_ADD) {
        if (VEC_INNER) return x + vec4(channel_of(4u * i4));
        return x + vec4(channel_of(4u * i4), channel_of(4u * i4 + 1u), channel_of(4u * i4 + 2u), channel_of(4u * i4 + 3u));
    }
    vec4 z = load_b4(i4);
    if (MODE == MODE_ADD) return x + z;
    if (MODE == MODE_MUL) return x * z;
    if (MODE == MODE_RELU_BACK) return mix(vec4(0.0), x, greaterThan(z, vec4(0.0)));
    // MODE_GELU_BACK
    return vec4(gelu_back(x.x, z.x), gelu_back(x.y, z.y), gelu_back(x.z, z.z), gelu_back(x.w, z.w));
}

void main()
{
    if (MODE == MODE_BIAS_ADD && VEC_INNER) {
        // Workgroup row y = one channel: its bias read once, then the vec4s
        // (outer, i4) of that channel.
        uint c = gl_WorkGroupID.y, inner4 = pc.inner >> 2, items = (pc.n / pc.channels) >> 2;
        float bias = load_b(c);
        for (uint j = gl_GlobalInvocationID.x; j < items; j += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
            uint o = fdiv(j, inner4), i4 = (o * pc.channels + c) * inner4 + (j - o * inner4);
            y4[i4] = load_a4(i4) + bias;
        }
        return;
    }
    uint gid = gl_GlobalInvocationID.x;
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint n4 = pc.n >> 2;
    for (uint i4 = gid; i4 < n4; i4 += stride) y4[i4] = compute4(i4);
    uint i = 4u * n4 + gid;
    if (i < pc.n) y[i] = compute1(i);
}
