#version 450
// Fake quantization (ops/fake_quant.c is the reference; quantize_with()
// below repeats its fq_point_at operation for operation).
//   FORWARD:    y[i], one element per invocation, grid-stride.
//   BACK_DX:    dx[i] under the estimator, likewise.
//   BACK_SCALE: d scale (LSQ) or d alpha (PACT): one workgroup per scale
//               element; each invocation adds its strided share of the
//               element's members in ascending order, then a shared-memory
//               tree. No atomics: the order depends only on the shapes and
//               the workgroup size, so the result is the same every run.
// Bit-exactness with the reference needs correctly rounded division (Vulkan
// only promises 2.5 ulp; lavapipe divides exactly) and no contraction of
// a * b + c into an fma, hence `precise` on everything that feeds a result.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
layout(constant_id = 4) const uint ESTIMATOR = 0;  // qat_fq_estimator
layout(constant_id = 5) const uint LAYOUT = 0;
layout(constant_id = 6) const bool EXACT_DIV = false;
// FORWARD / BACK_DX: each invocation takes 4 consecutive elements, which
// share one scale element (the host checks the layout allows it), so the
// scale and zero point are read once per 4; lavapipe turns those indexed
// reads into scalar loads.
layout(constant_id = 7) const bool VEC4 = false;
// The top of the code range per scale element (binding 5) instead of
// pc.qmax: a weight whose rows have different widths. Never with PACT.
layout(constant_id = 8) const bool PER_SCALE_QMAX = false;
#define MODE_FORWARD 0
#define MODE_BACK_DX 1
#define MODE_BACK_SCALE 2
#define EST_STE_CLIPPED 0
#define EST_STE 1
#define EST_LSQ 2
#define EST_PACT 3
#define LAYOUT_TENSOR 0   // one scale
#define LAYOUT_CHANNEL 1  // k = (i / inner) % channels
#define LAYOUT_GROUP 2    // k = (i / row) * groups_per_row + (i % row) / group

#include "fastdiv.glsl"

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer Scale { float scale[]; };      // alpha for PACT
layout(std430, set = 0, binding = 2) readonly buffer ZeroPoint { float zero_point[]; }; // unbound for PACT
layout(std430, set = 0, binding = 3) readonly buffer DY { float dy[]; };
layout(std430, set = 0, binding = 4) writeonly buffer Out { float result[]; };
layout(std430, set = 0, binding = 5) readonly buffer QMax { float qmax_of[]; };

layout(push_constant) uniform Push {
    uint n;
    uint inner, channels;          // LAYOUT_CHANNEL
    uint row, group, groups_per_row; // LAYOUT_GROUP
    float qmin, qmax;
    float grad_scale;              // LSQ
    uint scale_count;
} pc;

uint scale_index(uint i)
{
    if (LAYOUT == LAYOUT_TENSOR) return 0u;
    if (LAYOUT == LAYOUT_CHANNEL) {
        uint o = fdiv(i, pc.inner);
        return o - fdiv(o, pc.channels) * pc.channels;
    }
    uint r = fdiv(i, pc.row);
    return r * pc.groups_per_row + fdiv(i - r * pc.row, pc.group);
}

// See fq_point in ops/fake_quant.c.
struct Point {
    float s, z, x, qf, y;
};

// The scale element's parameters: s and z as the reference derives them,
// for PACT the clip alpha, and the top of its code range.
struct Params {
    float s, z, alpha, qmax;
};

Params params_at(uint k)
{
    Params p;
    precise float s = scale[k];
    p.alpha = s;
    p.z = 0.0;
    p.qmax = PER_SCALE_QMAX ? qmax_of[k] : pc.qmax;
    if (ESTIMATOR == EST_PACT) {
        precise float sp = s / pc.qmax;
        p.s = sp;
    } else {
        p.s = s;
        p.z = zero_point[k];
    }
    return p;
}

Point quantize_with(float xv, Params p)
{
    Point t;
    precise float s = p.s;
    precise float z = p.z;
    if (ESTIMATOR == EST_PACT) xv = xv < 0.0 ? 0.0 : xv > p.alpha ? p.alpha : xv;
    precise float inv = 1.0 / s;
    precise float qf = z + roundEven(xv * inv);
    // Comparisons rather than clamp(), whose result the spec leaves open
    // for NaN; the reference is written the same way.
    precise float q = qf < pc.qmin ? pc.qmin : qf > p.qmax ? p.qmax : qf;
    precise float y = (q - z) * s;
    t.s = s;
    t.z = z;
    t.x = xv;
    t.qf = qf;
    t.y = y;
    return t;
}

// FORWARD or BACK_DX of element i under parameters p.
float elementwise(uint i, Params p)
{
    if (MODE == MODE_FORWARD) return quantize_with(x[i], p).y;
    bool pass;
    if (ESTIMATOR == EST_STE) {
        pass = true;
    } else if (ESTIMATOR == EST_PACT) {
        float xv = x[i];
        pass = xv >= 0.0 && xv < p.alpha;
    } else {
        float qf = quantize_with(x[i], p).qf;
        pass = qf >= pc.qmin && qf <= p.qmax;
    }
    // A product, as the reference (and PyTorch's dy * mask).
    precise float d = dy[i] * (pass ? 1.0 : 0.0);
    return d;
}

// d scale of element i under LSQ / d alpha under PACT, before grad_scale.
float scale_grad(uint i, uint k)
{
    float xv = x[i];
    precise float g = dy[i];
    if (ESTIMATOR == EST_PACT) return xv >= scale[k] ? g : 0.0;
    Params p = params_at(k);
    Point t = quantize_with(xv, p);
    precise float c;
    if (t.qf < pc.qmin) c = g * (pc.qmin - t.z);
    else if (t.qf > p.qmax) c = g * (p.qmax - t.z);
    else c = g * (t.y - t.x) / t.s;
    return c;
}

const uint MAX_LOCAL = 256;
shared float partial[MAX_LOCAL];

void main()
{
    if (MODE != MODE_BACK_SCALE) {
        uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
        if (VEC4) {
            for (uint j = gl_GlobalInvocationID.x; j < pc.n / 4u; j += stride) {
                uint i = 4u * j;
                Params p = params_at(scale_index(i));
                for (uint e = 0u; e < 4u; e++) result[i + e] = elementwise(i + e, p);
            }
            return;
        }
        for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride)
            result[i] = elementwise(i, params_at(scale_index(i)));
        return;
    }

    // The members of scale element k, in ascending element order, are
    // first + m * 1 for LAYOUT_TENSOR / LAYOUT_GROUP (m < count) and, for
    // LAYOUT_CHANNEL, (o * channels + k) * inner + j with m = o * inner + j.
    uint k = linear_group();
    if (k >= pc.scale_count) return; // uniform per workgroup
    uint first = 0u, count = pc.n;
    if (LAYOUT == LAYOUT_CHANNEL) {
        count = pc.n / pc.channels;
    } else if (LAYOUT == LAYOUT_GROUP) {
        uint r = k / pc.groups_per_row, gi = k - r * pc.groups_per_row;
        first = r * pc.row + gi * pc.group;
        count = min(pc.group, pc.row - gi * pc.group);
    }
    uint lid = gl_LocalInvocationID.x;
    precise float acc = 0.0;
    for (uint m = lid; m < count; m += gl_WorkGroupSize.x) {
        uint i = first + m;
        if (LAYOUT == LAYOUT_CHANNEL) {
            // With nothing outside the channel axis (a weight's rows), the
            // members are contiguous.
            if (count == pc.inner) {
                i = k * pc.inner + m;
            } else {
                uint o = fdiv(m, pc.inner);
                i = (o * pc.channels + k) * pc.inner + (m - o * pc.inner);
            }
        }
        acc += scale_grad(i, k);
    }
    partial[lid] = acc;
    barrier();
    for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
        if (lid < s) partial[lid] += partial[lid + s];
        barrier();
    }
    if (lid == 0) {
        precise float total = partial[0];
        if (ESTIMATOR == EST_LSQ) total *= pc.grad_scale;
        result[k] = total;
    }
}
