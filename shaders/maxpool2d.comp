#version 450
// 2x2 max pooling, stride 2, floor (PyTorch's default). The backward is a
// gather: each input element takes dy of its window when it is the window's
// first maximum in row-major order (PyTorch CPU's choice on ties).
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
#define MODE_FORWARD 0
#define MODE_BACKWARD 1

layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
layout(std430, set = 0, binding = 1) readonly buffer DY { float dy[]; };   // BACKWARD
layout(std430, set = 0, binding = 2) writeonly buffer Out { float result[]; };

layout(push_constant) uniform Push {
    uint planes, in_h, in_w, out_h, out_w;
    uint total;   // output elements of this mode
} pc;

// Index within the 2x2 window of the first maximum.
uint argmax(uint plane, uint oh, uint ow)
{
    uint base = plane * pc.in_h * pc.in_w + (2 * oh) * pc.in_w + 2 * ow;
    uint offs[4] = uint[4](0u, 1u, pc.in_w, pc.in_w + 1u);
    uint best = 0;
    float m = x[base];
    for (uint t = 1; t < 4; t++) {
        float v = x[base + offs[t]];
        if (v > m) { m = v; best = t; }
    }
    return base + offs[best];
}

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint idx = gl_GlobalInvocationID.x; idx < pc.total; idx += stride) {
        if (MODE == MODE_FORWARD) {
            uint ow = idx % pc.out_w, oh = (idx / pc.out_w) % pc.out_h, plane = idx / (pc.out_w * pc.out_h);
            result[idx] = x[argmax(plane, oh, ow)];
        } else {
            uint iw = idx % pc.in_w, ih = (idx / pc.in_w) % pc.in_h, plane = idx / (pc.in_w * pc.in_h);
            uint oh = ih / 2, ow = iw / 2;
            float g = 0.0;
            if (oh < pc.out_h && ow < pc.out_w && argmax(plane, oh, ow) == idx)
                g = dy[(plane * pc.out_h + oh) * pc.out_w + ow];
            result[idx] = g;
        }
    }
}
