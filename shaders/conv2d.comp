#version 450
// Direct 2-d convolution, NCHW input, OIHW weights, zero padding, as gathers:
// each invocation computes one output element of its mode, so no two
// invocations write the same place and no atomics are needed.
//   FORWARD       y[n,o,oh,ow]  = sum_{c,kh,kw} x[n,c,oh*s-p+kh,ow*s-p+kw] w[o,c,kh,kw]
//   BACK_INPUT    dx[n,c,ih,iw] = sum_{o,kh,kw} dy[n,o,oh,ow] w[o,c,kh,kw], oh*s-p+kh = ih
//   BACK_WEIGHT   dw[o,c,kh,kw] = sum_{n,oh,ow} dy[n,o,oh,ow] x[n,c,oh*s-p+kh,ow*s-p+kw]
#include "common.glsl"

layout(constant_id = 3) const uint MODE = 0;
#define MODE_FORWARD 0
#define MODE_BACK_INPUT 1
#define MODE_BACK_WEIGHT 2

// FORWARD: x, w -> y.  BACK_INPUT: dy, w -> dx.  BACK_WEIGHT: dy, x -> dw.
layout(std430, set = 0, binding = 0) readonly buffer In0 { float in0[]; };
layout(std430, set = 0, binding = 1) readonly buffer In1 { float in1[]; };
layout(std430, set = 0, binding = 2) writeonly buffer Out { float result[]; };

layout(push_constant) uniform Push {
    uint batch, in_c, in_h, in_w;
    uint out_c, kh, kw, out_h, out_w;
    uint stride, pad;
    uint total;    // output elements of this mode
} pc;

float forward(uint idx)
{
    uint ow = idx % pc.out_w, oh = (idx / pc.out_w) % pc.out_h;
    uint o = (idx / (pc.out_w * pc.out_h)) % pc.out_c, n = idx / (pc.out_w * pc.out_h * pc.out_c);
    float acc = 0.0;
    for (uint c = 0; c < pc.in_c; c++)
        for (uint i = 0; i < pc.kh; i++) {
            int ih = int(oh * pc.stride + i) - int(pc.pad);
            if (ih < 0 || ih >= int(pc.in_h)) continue;
            for (uint j = 0; j < pc.kw; j++) {
                int iw = int(ow * pc.stride + j) - int(pc.pad);
                if (iw < 0 || iw >= int(pc.in_w)) continue;
                acc += in0[((n * pc.in_c + c) * pc.in_h + uint(ih)) * pc.in_w + uint(iw)] *
                       in1[((o * pc.in_c + c) * pc.kh + i) * pc.kw + j];
            }
        }
    return acc;
}

float back_input(uint idx)
{
    uint iw = idx % pc.in_w, ih = (idx / pc.in_w) % pc.in_h;
    uint c = (idx / (pc.in_w * pc.in_h)) % pc.in_c, n = idx / (pc.in_w * pc.in_h * pc.in_c);
    float acc = 0.0;
    for (uint o = 0; o < pc.out_c; o++)
        for (uint i = 0; i < pc.kh; i++) {
            int th = int(ih + pc.pad) - int(i);
            if (th < 0 || th % int(pc.stride) != 0) continue;
            uint oh = uint(th) / pc.stride;
            if (oh >= pc.out_h) continue;
            for (uint j = 0; j < pc.kw; j++) {
                int tw = int(iw + pc.pad) - int(j);
                if (tw < 0 || tw % int(pc.stride) != 0) continue;
                uint ow = uint(tw) / pc.stride;
                if (ow >= pc.out_w) continue;
                acc += in0[((n * pc.out_c + o) * pc.out_h + oh) * pc.out_w + ow] *
                       in1[((o * pc.in_c + c) * pc.kh + i) * pc.kw + j];
            }
        }
    return acc;
}

float back_weight(uint idx)
{
    uint j = idx % pc.kw, i = (idx / pc.kw) % pc.kh;
    uint c = (idx / (pc.kw * pc.kh)) % pc.in_c, o = idx / (pc.kw * pc.kh * pc.in_c);
    float acc = 0.0;
    for (uint n = 0; n < pc.batch; n++)
        for (uint oh = 0; oh < pc.out_h; oh++) {
            int ih = int(oh * pc.stride + i) - int(pc.pad);
            if (ih < 0 || ih >= int(pc.in_h)) continue;
            for (uint ow = 0; ow < pc.out_w; ow++) {
                int iw = int(ow * pc.stride + j) - int(pc.pad);
                if (iw < 0 || iw >= int(pc.in_w)) continue;
                acc += in0[((n * pc.out_c + o) * pc.out_h + oh) * pc.out_w + ow] *
                       in1[((n * pc.in_c + c) * pc.in_h + uint(ih)) * pc.in_w + uint(iw)];
            }
        }
    return acc;
}

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint idx = gl_GlobalInvocationID.x; idx < pc.total; idx += stride) {
        if (MODE == MODE_FORWARD) result[idx] = forward(idx);
        else if (MODE == MODE_BACK_INPUT) result[idx] = back_input(idx);
        else result[idx] = back_weight(idx);
    }
}
