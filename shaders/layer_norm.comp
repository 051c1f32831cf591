#version 450
// Layer normalization over the last axis of x (rows, C) (ops/layer_norm.c is
// the reference; every sum here has its order, and `precise` keeps the
// compiler from fusing a * b + c, so on a device that rounds division and
// sqrt correctly, as lavapipe does, the results are the reference's bits).
//   FORWARD:    y = ((x - mean) * rstd) * gamma + beta, an invocation per row.
//   BACK_DX:    dx = ((g - a) - xhat * b) * rstd with g = dy * gamma,
//               a = mean(g), b = mean(g * xhat), an invocation per row; the
//               row statistics are recomputed from x.
//   BACK_GAMMA: partial d gamma over chunks of ROWS rows, a workgroup per
//               chunk: the invocations first compute the chunk's row
//               statistics into shared memory, then each sums
//               dy * xhat over the chunk's rows in ascending order for its
//               columns. The graph sums the chunks' partials in order.
// A "unit" is a vec4 of a row when C % 4 == 0 (VEC), else one float. On
// llvmpipe (TEXEL) inputs are read through their vec4 texel views: a
// storage-buffer load there is a loop over the lanes, a texel fetch one
// gather.
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
layout(constant_id = 4) const bool TEXEL = false;
layout(constant_id = 5) const bool VEC = false;
layout(constant_id = 6) const uint ROWS = 64; // BACK_GAMMA: rows per workgroup
#define MODE_FORWARD 0
#define MODE_BACK_DX 1
#define MODE_BACK_GAMMA 2

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, set = 0, binding = 1) readonly buffer Gamma { float gamma[]; };
layout(std430, set = 0, binding = 1) readonly buffer Gamma4 { vec4 gamma4[]; };
// FORWARD: beta; BACK_DX, BACK_GAMMA: dy.
layout(std430, set = 0, binding = 2) readonly buffer Third { float third[]; };
layout(std430, set = 0, binding = 2) readonly buffer Third4 { vec4 third4[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Out { float result[]; };
layout(std430, set = 0, binding = 3) writeonly buffer Out4 { vec4 result4[]; };
layout(set = 0, binding = 8) uniform samplerBuffer tx;
layout(set = 0, binding = 9) uniform samplerBuffer tgamma;
layout(set = 0, binding = 10) uniform samplerBuffer tthird;

layout(push_constant) uniform Push {
    uint rows;
    uint c;      // floats per row
    uint cv;     // units per row
    float eps;
} pc;

vec4 x_4(uint u) { return TEXEL ? texelFetch(tx, int(u)) : x4[u]; }
float x_1(uint i) { return TEXEL ? texelFetch(tx, int(i >> 2))[i & 3u] : x[i]; }
vec4 gamma_4(uint u) { return TEXEL ? texelFetch(tgamma, int(u)) : gamma4[u]; }
float gamma_1(uint i) { return TEXEL ? texelFetch(tgamma, int(i >> 2))[i & 3u] : gamma[i]; }
vec4 third_4(uint u) { return TEXEL ? texelFetch(tthird, int(u)) : third4[u]; }
float third_1(uint i) { return TEXEL ? texelFetch(tthird, int(i >> 2))[i & 3u] : third[i]; }

// A row's mean and rstd, in the reference's order: the sum, then the sum of
// squared deviations from the mean, each over the row ascending.
void row_stats(uint row, out float mean, out float rstd)
{
    uint base = row * pc.cv;
    precise float s = 0.0;
    for (uint u = 0; u < pc.cv; u++) {
        if (VEC) {
            vec4 v = x_4(base + u);
            s += v.x;
            s += v.y;
            s += v.z;
            s += v.w;
        } else {
            s += x_1(base + u);
        }
    }
    precise float m = s / float(pc.c);
    precise float sq = 0.0;
    for (uint u = 0; u < pc.cv; u++) {
        if (VEC) {
            vec4 d = x_4(base + u) - m;
            sq += d.x * d.x;
            sq += d.y * d.y;
            sq += d.z * d.z;
            sq += d.w * d.w;
        } else {
            float d = x_1(base + u) - m;
            sq += d * d;
        }
    }
    precise float r = 1.0 / sqrt(sq / float(pc.c) + pc.eps);
    mean = m;
    rstd = r;
}

void forward(uint row)
{
    float m, r;
    row_stats(row, m, r);
    uint base = row * pc.cv;
    for (uint u = 0; u < pc.cv; u++) {
        if (VEC) {
            precise vec4 y = (x_4(base + u) - m) * r * gamma_4(u) + third_4(u);
            result4[base + u] = y;
        } else {
            precise float y = (x_1(base + u) - m) * r * gamma_1(u) + third_1(u);
            result[base + u] = y;
        }
    }
}

void back_dx(uint row)
{
    float m, r;
    row_stats(row, m, r);
    uint base = row * pc.cv;
    precise float sg = 0.0, sgx = 0.0;
    for (uint u = 0; u < pc.cv; u++) {
        if (VEC) {
            precise vec4 g = third_4(base + u) * gamma_4(u);
            precise vec4 xhat = (x_4(base + u) - m) * r;
            sg += g.x;
            sgx += g.x * xhat.x;
            sg += g.y;
            sgx += g.y * xhat.y;
            sg += g.z;
            sgx += g.z * xhat.z;
            sg += g.w;
            sgx += g.w * xhat.w;
        } else {
            precise float g = third_1(base + u) * gamma_1(u);
            precise float xhat = (x_1(base + u) - m) * r;
            sg += g;
            sgx += g * xhat;
        }
    }
    precise float a = sg / float(pc.c), b = sgx / float(pc.c);
    for (uint u = 0; u < pc.cv; u++) {
        if (VEC) {
            precise vec4 xhat = (x_4(base + u) - m) * r;
            precise vec4 dx = ((third_4(base + u) * gamma_4(u) - a) - xhat * b) * r;
            result4[base + u] = dx;
        } else {
            precise float xhat = (x_1(base + u) - m) * r;
            precise float dx = ((third_1(base + u) * gamma_1(u) - a) - xhat * b) * r;
            result[base + u] = dx;
        }
    }
}

shared float chunk_mean[ROWS];
shared float chunk_rstd[ROWS];

void back_gamma()
{
    uint chunk = linear_group();
    uint first = chunk * ROWS;
    if (first >= pc.rows) return; // uniform per workgroup
    uint count = min(ROWS, pc.rows - first);
    uint lid = gl_LocalInvocationID.x, local = gl_WorkGroupSize.x;
    for (uint i = lid; i < count; i += local) row_stats(first + i, chunk_mean[i], chunk_rstd[i]);
    barrier();
    for (uint u = lid; u < pc.cv; u += local) {
        if (VEC) {
            precise vec4 acc = vec4(0.0);
            for (uint i = 0; i < count; i++) {
                uint at = (first + i) * pc.cv + u;
                acc += third_4(at) * ((x_4(at) - chunk_mean[i]) * chunk_rstd[i]);
            }
            result4[chunk * pc.cv + u] = acc;
        } else {
            precise float acc = 0.0;
            for (uint i = 0; i < count; i++) {
                uint at = (first + i) * pc.cv + u;
                acc += third_1(at) * ((x_1(at) - chunk_mean[i]) * chunk_rstd[i]);
            }
            result[chunk * pc.cv + u] = acc;
        }
    }
}

void main()
{
    if (MODE == MODE_BACK_GAMMA) {
        back_gamma();
        return;
    }
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint row = gl_GlobalInvocationID.x; row < pc.rows; row += stride) {
        if (MODE == MODE_FORWARD) forward(row);
        else back_dx(row);
    }
}
