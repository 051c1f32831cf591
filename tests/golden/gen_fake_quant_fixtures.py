#!/usr/bin/python3
"""Writes tests/golden/fake_quant_fixtures.h: PyTorch's fake quantization
(forward, clipped-STE backward, and the LSQ scale gradient of its learnable
variant) for tests/test_fake_quant.c to compare the C reference against.

Run from anywhere with Debian's python3-torch:
    /usr/bin/python3 tests/golden/gen_fake_quant_fixtures.py
The output is a C header of float32 arrays as exact hex-float literals, so the
tests need neither Python nor a file reader. Inputs come from a seeded
torch.Generator, so a rerun with the same torch writes the same file.

The inputs are built to hit the edges of the arithmetic:
  * exact ties: x for which float32(x * float32(1 / s)) is exactly k + 0.5, so
    only round-half-to-even decides the code; including ties just outside the
    code range, where the clipped-STE mask depends on the rounding;
  * values well outside the range (clamped, masked), zero, and the grid
    points k * s themselves;
  * scales that are powers of two (every grid tie is exact) and ones that
    are not, 2-, 4- and 8-bit ranges, symmetric-like zero points 2^(b-1),
    affine ones, and a signed range.
PyTorch's learnable kernels (the LSQ backward) compute the code as
nearbyint(zero_point + x * (1/s)): the zero point added before rounding, and,
as built (the CPU kernels are compiled with FMA enabled), the product not
rounded on its own, i.e. nearbyint(fma(x, 1/s, z)). Its non-learnable op, and
qat, round float32(x * (1/s)) first and add the zero point after. The two
disagree at every float tie when z is odd, and near ties whenever the
unrounded product is on the other side of k + 0.5. For the learnable cases
such inputs are redrawn (the count is printed), so those fixtures test the
formula qat uses; the forward of the learnable op is the non-learnable one.
"""
from fractions import Fraction
import math
import os

import numpy as np
import torch

torch.set_num_threads(1)
gen = torch.Generator().manual_seed(20240917)
f32 = np.float32
out = []
cases = []


def rand(n):
    return torch.rand(n, generator=gen, dtype=torch.float32).numpy().astype(f32)


def randint(lo, hi):
    """Uniform in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen).item())


def _hex(v):
    v = float(v)
    assert v == v and abs(v) != float("inf"), "fixtures hold finite values only"
    if v == 0.0:
        return "-0x0p+0f" if math.copysign(1.0, v) < 0 else "0x0p+0f"
    mant, exp = v.hex().split("p")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}f"


def emit(name, arr, comment=""):
    vals = [_hex(v) for v in np.asarray(arr, dtype=f32).reshape(-1)]
    rows = ",\n    ".join(", ".join(vals[i:i + 4]) for i in range(0, len(vals), 4))
    c = f"/* {comment} */\n" if comment else ""
    out.append(f"\n{c}static const float {name}[] = {{\n    {rows}\n}};\n")
    return name


def inv_of(s):
    return f32(f32(1.0) / f32(s))


def near(t, s):
    """float32 values within 6 ulp of t * s, nearest first."""
    x = f32(t * float(s))
    cands = [x]
    up = down = x
    for _ in range(6):
        up, down = np.nextafter(up, f32(np.inf)), np.nextafter(down, f32(-np.inf))
        cands += [up, down]
    return cands


def find_tie(t, s):
    """An x near t * s with float32(x * (1/s)) == t exactly, or None."""
    inv = inv_of(s)
    for c in near(t, s):
        if f32(c * inv) == f32(t):
            return c
    return None


def find_division_trap(t, s):
    """An x near t * s whose code differs if x / s replaces x * (1/s), or None."""
    inv = inv_of(s)
    for c in near(t, s):
        if np.rint(f32(c * inv)) != np.rint(f32(c / f32(s))):
            return c
    return None


def round_f32(r):
    """The float32 nearest to the rational r, ties to even (normal range)."""
    if r == 0:
        return f32(0.0)
    sign, a = (-1, -r) if r < 0 else (1, r)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    ulp = Fraction(2) ** (e - 23)
    q, rem = divmod(a, ulp)
    if rem * 2 > ulp or (rem * 2 == ulp and q % 2 == 1):
        q += 1
    return f32(sign * float(q * ulp))


def learnable_code(x, inv, z):
    """PyTorch's learnable backward: nearbyint(fma(x, inv, z))."""
    return np.rint(round_f32(Fraction(float(x)) * Fraction(float(inv)) + z))


def channel_inputs(n, s, z, qmin, qmax, lsq):
    """n inputs for one (s, z): ties, out-of-range values, grid points, random."""
    lo, hi = (qmin - z) * float(s), (qmax - z) * float(s)
    width = hi - lo
    xs = []
    # Ties over the whole code range and one code beyond each end.
    ks = list(range(qmin - z - 2, qmax - z + 2))
    budget = max(16, n // 4)
    if len(ks) > budget:
        ks = ks[:6] + [ks[int(i)] for i in (rand(budget - 12) * len(ks))] + ks[-6:]
    xs += [x for x in (find_tie(k + 0.5, s) for k in ks) if x is not None]
    # Inputs that catch dividing by s instead of multiplying by 1/s.
    xs += [x for x in (find_division_trap(k + 0.5, s) for k in ks[::2]) if x is not None]
    xs += [f32(0.0), f32(lo), f32(hi), f32(lo - 100 * width), f32(hi + 100 * width)]
    xs += [f32(k * float(s)) for k in (qmin - z, qmin - z + 1, qmax - z - 1, qmax - z)]
    while len(xs) < n:
        xs.append(f32(lo - 0.3 * width + 1.6 * width * float(rand(1)[0])))
    xs = np.array(xs[:n], dtype=f32)
    perm = torch.randperm(n, generator=gen).numpy()
    xs = xs[perm]
    redrawn = 0
    if lsq:
        # Keep only inputs whose code PyTorch's learnable kernel computes as qat does.
        inv = inv_of(s)
        for i in range(n):
            while True:
                if learnable_code(xs[i], inv, z) == f32(z) + np.rint(f32(xs[i] * inv)):
                    break
                xs[i] = f32(lo - 0.3 * width + 1.6 * width * float(rand(1)[0]))
                redrawn += 1
    v = xs * inv_of(s)
    ties = int(np.sum(v - np.floor(v) == 0.5))
    traps = int(np.sum(np.rint(v) != np.rint(xs / f32(s))))
    return xs, ties, traps, redrawn


def add_case(name, shape, axis, scales, zps, qmin, qmax, lsq):
    """axis None: per tensor. scales/zps: one per channel of `axis`."""
    scales = np.asarray(scales, dtype=f32)
    zps = np.asarray(zps, dtype=np.int64)
    numel = int(np.prod(shape))
    chans = 1 if axis is None else shape[axis]
    inner = numel if axis is None else int(np.prod(shape[axis + 1:]))
    x = np.zeros(numel, dtype=f32)
    view = x.reshape(shape)
    total_ties = total_traps = total_redrawn = 0
    for c in range(chans):
        sub = view if axis is None else np.take(view, c, axis=axis)
        xs, ties, traps, redrawn = channel_inputs(sub.size, scales[c], int(zps[c]), qmin, qmax, lsq)
        if axis is None:
            view[...] = xs.reshape(shape)
        else:
            idx = [slice(None)] * len(shape)
            idx[axis] = c
            view[tuple(idx)] = xs.reshape(sub.shape)
        total_ties += ties
        total_traps += traps
        total_redrawn += redrawn
    xt = torch.from_numpy(x.reshape(shape).copy()).requires_grad_()
    dy = torch.from_numpy((rand(numel) * 2 - 1).reshape(shape))
    grad_factor = f32(1.0 / math.sqrt(numel * qmax))
    dscale = None
    if lsq:
        st = torch.from_numpy(scales.copy()).requires_grad_()
        zt = torch.from_numpy(zps.astype(np.float32)).requires_grad_()
        if axis is None:
            y = torch._fake_quantize_learnable_per_tensor_affine(xt, st, zt, qmin, qmax, float(grad_factor))
        else:
            y = torch._fake_quantize_learnable_per_channel_affine(xt, st, zt, axis, qmin, qmax,
                                                                  float(grad_factor))
        y.backward(dy)
        dscale = st.grad.numpy()
    elif axis is None:
        y = torch.fake_quantize_per_tensor_affine(xt, float(scales[0]), int(zps[0]), qmin, qmax)
        y.backward(dy)
    else:
        y = torch.fake_quantize_per_channel_affine(xt, torch.from_numpy(scales.copy()),
                                                   torch.from_numpy(zps.astype(np.int32)), axis, qmin, qmax)
        y.backward(dy)
    tag = f"golden_fq_{name}"
    shape_text = "x".join(str(s) for s in shape)
    fn = ("_fake_quantize_learnable_per_" if lsq else "fake_quantize_per_") + \
         ("tensor_affine" if axis is None else "channel_affine")
    print(f"{name}: {fn} {shape_text} axis {axis} q [{qmin}, {qmax}]: {total_ties} ties, "
          f"{total_traps} division traps, {total_redrawn} LSQ inputs redrawn")
    emit(f"{tag}_x", xt.detach().numpy(), f"{shape_text}: {total_ties} exact ties, {total_traps} inputs "
         "where x / s and x * (1/s) round apart")
    emit(f"{tag}_scale", scales)
    emit(f"{tag}_zero_point", zps.astype(np.float32))
    emit(f"{tag}_y", y.detach().numpy(), f"torch.{fn}")
    emit(f"{tag}_dy", dy.numpy())
    emit(f"{tag}_dx", xt.grad.numpy(), "x.grad: the clipped straight-through estimator")
    if lsq:
        emit(f"{tag}_dscale", dscale, f"scale.grad with grad_factor {float(grad_factor)!r}")
    cases.append(dict(name=name, numel=numel, chans=chans, inner=inner, qmin=qmin, qmax=qmax, lsq=lsq,
                      grad_factor=grad_factor, tag=tag, shape=shape_text, axis=axis))


# Per tensor: (name, scale, zero point, qmin, qmax).
per_tensor = [
    ("t8_affine", 0.0173, 37, 0, 255),
    ("t8_symmetric", 0.05, 128, 0, 255),
    ("t8_signed", 0.0234, 0, -128, 127),
    ("t4_symmetric_pow2", 0.25, 8, 0, 15),
    ("t4_affine", 0.11, 3, 0, 15),
    ("t2_symmetric", 0.5, 2, 0, 3),
    ("t2_affine", 0.7, 1, 0, 3),
]
for name, s, z, qmin, qmax in per_tensor:
    add_case(name, (300,), None, [s], [z], qmin, qmax, lsq=False)

# Per channel: axis 0 of a 2-d weight, axis 1 of a 4-d activation.
add_case("c4_axis0", (5, 41), 0, [0.3, 0.125, 0.0871, 1.7, 0.031], [8, 0, 15, 5, 8], 0, 15, lsq=False)
add_case("c8_axis1", (2, 3, 5, 7), 1, [0.021, 0.0625, 0.3131], [128, 3, 250], 0, 255, lsq=False)

# LSQ through PyTorch's learnable fake quantization.
add_case("lsq_t4", (257,), None, [0.13], [8], 0, 15, lsq=True)
add_case("lsq_t8", (300,), None, [0.0191], [100], 0, 255, lsq=True)
add_case("lsq_c3_axis0", (4, 53), 0, [0.3, 0.0625, 0.77, 0.19], [4, 2, 0, 7], 0, 7, lsq=True)
add_case("lsq_c8_axis1", (2, 3, 4, 9), 1, [0.021, 0.0625, 0.3131], [128, 3, 250], 0, 255, lsq=True)

table = []
for c in cases:
    t = c["tag"]
    table.append(
        f"    {{ \"{c['name']}\", \"{c['shape']}\", {c['numel']}, {c['chans']}, {c['inner']}, {c['qmin']}, "
        f"{c['qmax']}, {_hex(c['grad_factor'])},\n      {t}_x, {t}_scale, {t}_zero_point, {t}_y, {t}_dy, "
        f"{t}_dx, {t + '_dscale' if c['lsq'] else 'NULL'} }},")

header = (
    "/* Generated by tests/golden/gen_fake_quant_fixtures.py with torch "
    f"{torch.__version__}; do not edit.\n"
    " * PyTorch's fake quantization for tests/test_fake_quant.c, float32 as exact\n"
    " * hex floats. */\n"
    "#ifndef QAT_FAKE_QUANT_FIXTURES_H\n#define QAT_FAKE_QUANT_FIXTURES_H\n\n"
    "#include <stddef.h>\n#include <stdint.h>\n"
)
footer = (
    "\n/* Per tensor: channels 1, inner numel. Per channel: scale c serves the\n"
    " * elements with (i / inner) % channels == c. dscale is NULL except for the\n"
    " * learnable (LSQ) cases, whose y and dx come from the learnable op too. */\n"
    "typedef struct golden_fq_case {\n"
    "    const char *name, *shape;\n"
    "    int64_t numel, channels, inner;\n"
    "    int32_t qmin, qmax;\n"
    "    float grad_factor;\n"
    "    const float *x, *scale, *zero_point, *y, *dy, *dx, *dscale;\n"
    "} golden_fq_case;\n\n"
    "static const golden_fq_case golden_fq_cases[] = {\n" + "\n".join(table) + "\n};\n"
    "\n#endif\n"
)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_quant_fixtures.h")
with open(path, "w") as f:
    f.write(header + "".join(out) + footer)
print("wrote", path)
