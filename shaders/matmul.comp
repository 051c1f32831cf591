#version 450
// Batched C = op(A) op(B) (+ bias, relu), row-major, with register tiles:
// invocation (x, y) of a workgroup computes TM x TN outputs strided by the
// workgroup size, so neighbouring invocations touch neighbouring columns.
// Transposes are specialisation constants, so the backward forms
// (dA = dC B^T, dB = A^T dC) are the same code.
#include "common.glsl"

layout(constant_id = 3) const uint TRANS_A = 0;  // A stored (k, m) instead of (m, k)
layout(constant_id = 4) const uint TRANS_B = 0;  // B stored (n, k) instead of (k, n)
layout(constant_id = 5) const uint EPILOGUE = 0; // 0 none, 1 + bias[col], 2 + bias then relu
layout(constant_id = 6) const uint TM = 4;       // rows per invocation
layout(constant_id = 7) const uint TN = 4;       // columns per invocation

layout(std430, set = 0, binding = 0) readonly buffer A { float a[]; };
layout(std430, set = 0, binding = 1) readonly buffer B { float b[]; };
layout(std430, set = 0, binding = 2) writeonly buffer C { float c[]; };
layout(std430, set = 0, binding = 3) readonly buffer Bias { float bias[]; };

layout(push_constant) uniform Push {
    uint m, n, k;
    uint stride_a, stride_b, stride_c; // per batch entry, in elements (0: shared)
} pc;

float load_a(uint base, uint row, uint kk)
{
    return TRANS_A != 0 ? a[base + kk * pc.m + row] : a[base + row * pc.k + kk];
}

float load_b(uint base, uint kk, uint col)
{
    return TRANS_B != 0 ? b[base + col * pc.k + kk] : b[base + kk * pc.n + col];
}

void main()
{
    uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
    uint wx = gl_WorkGroupSize.x, wy = gl_WorkGroupSize.y;
    uint col0 = gl_WorkGroupID.x * wx * TN + lx;
    uint row0 = gl_WorkGroupID.y * wy * TM + ly;
    uint batch = gl_WorkGroupID.z;
    uint base_a = batch * pc.stride_a, base_b = batch * pc.stride_b, base_c = batch * pc.stride_c;

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;

    // Clamped indices keep loads in bounds; the stores below are guarded.
    uint rows[TM], cols[TN];
    for (uint i = 0; i < TM; i++) rows[i] = min(row0 + i * wy, pc.m - 1);
    for (uint j = 0; j < TN; j++) cols[j] = min(col0 + j * wx, pc.n - 1);

    for (uint kk = 0; kk < pc.k; kk++) {
        float av[TM], bv[TN];
        for (uint i = 0; i < TM; i++) av[i] = load_a(base_a, rows[i], kk);
        for (uint j = 0; j < TN; j++) bv[j] = load_b(base_b, kk, cols[j]);
        for (uint i = 0; i < TM; i++)
            for (uint j = 0; j < TN; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }

    for (uint i = 0; i < TM; i++) {
        uint row = row0 + i * wy;
        if (row >= pc.m) continue;
        for (uint j = 0; j < TN; j++) {
            uint col = col0 + j * wx;
            if (col >= pc.n) continue;
            float v = acc[i][j];
            if (EPILOGUE >= 1) v += bias[col];
            if (EPILOGUE == 2) v = max(v, 0.0);
            c[base_c + row * pc.n + col] = v;
        }
    }
}
