#!/usr/bin/python3
"""Writes tests/golden/q4_fixtures.h: bitsandbytes' 4-bit quantization (NF4,
FP4, double quantization of the absmax values) reimplemented in torch, for
tests/test_q4.c to compare qat/q4.c against.

bitsandbytes is not installed here, so this script restates its semantics from
the sources (bitsandbytes/functional.py, csrc/kernels.cu,
csrc/cuda/blockwise_quantization.cu; see ops/q4_format.h) with torch float32
operations, independently of the C code:
  * create_normal_map(0.9677083) with torch.special.ndtri in place of scipy's
    norm.ppf, to show that the NF4 codebook literals are what it yields;
  * create_dynamic_map(signed=True) exactly as bitsandbytes writes it, run on
    this torch (its float32 linspace decides the last bits);
  * kQuantizeBlockwise for NF4 / FP4: absmax per 64, x * (1 / absmax), the
    threshold trees as counts of thresholds below the value, packing;
  * quantize_4bit(compress_statistics=True): offset = absmax.mean() (torch's
    own float32 mean), then dQuantize<0>'s binary search and tie rule for
    (absmax - offset) * (1 / scale) per block of 256, and the dequantization
    map[code] * scale + offset.

Inputs are made by a hash both sides compute exactly (see q4_input below and
test_q4.c), so the header holds only results. Run:
    /usr/bin/python3 tests/golden/gen_q4_fixtures.py
"""
import math
import os
from fractions import Fraction

import numpy as np
import torch

torch.set_num_threads(1)
f32 = np.float32
M64 = (1 << 64) - 1

def f32_literal(text):
    """The float32 a C or CUDA compiler makes of the literal `text`f: the
    decimal rounded once to float32 (numpy's f32(float(text)) rounds twice,
    through double, and lands an ulp off on four NF4 thresholds)."""
    r = Fraction(text)
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


NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]
# dQuantizeNF4 / dQuantizeFP4's literals, as the compiler reads them.
NF4_THRESHOLDS = [f32_literal(t) for t in (
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011")]
FP4_THRESHOLDS = [f32_literal(t) for t in (
    "0.00260417", "0.0859375", "0.20833333", "0.29166667", "0.4166667", "0.583333", "0.8333333")]
FP4_BY_MAGNITUDE = [0, 1, 6, 7, 4, 5, 2, 3]
# dDequantizeFP4Tree's values for codes 0..7; 8..15 negate them.
FP4_TABLE = [f32_literal(t) for t in ("0.0", "5.208333333e-03", "0.66666667", "1.0", "0.33333333", "0.5",
                                       "0.16666667", "0.25")]
FP4_TABLE += [-v for v in FP4_TABLE]


def create_normal_map(offset=0.9677083, use_extra_value=True):
    """bitsandbytes' create_normal_map with torch.special.ndtri for norm.ppf."""
    assert use_extra_value
    v1 = torch.special.ndtri(torch.linspace(offset, 0.5, 9)[:-1].double()).tolist()
    v2 = [0] * (256 - 15)
    v3 = (-torch.special.ndtri(torch.linspace(offset, 0.5, 8)[:-1].double())).tolist()
    values = torch.Tensor(v1 + v2 + v3)
    values = values.sort().values
    values /= values.max()
    return values


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    """bitsandbytes' create_dynamic_map, line for line."""
    data = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed
                             else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    assert additional_items == 0
    data.append(0)
    data.append(1.0)
    assert len(data) == 2 ** total_bits
    data.sort()
    return torch.Tensor(data)


def encode_nf4(x):
    thr = torch.from_numpy(np.array(NF4_THRESHOLDS, dtype=f32))
    return (x.unsqueeze(-1) > thr).sum(-1).to(torch.uint8)


def encode_fp4(x):
    thr = torch.from_numpy(np.array(FP4_THRESHOLDS, dtype=f32))
    sign = (x < 0).to(torch.uint8) * 8
    rank = (x.abs().unsqueeze(-1) > thr).sum(-1)
    return torch.tensor(FP4_BY_MAGNITUDE, dtype=torch.uint8)[rank] + sign


def quantize_4bit(x, kind):
    """kQuantizeBlockwise<float, 64, 2, 0, NF4/FP4>: packed bytes, absmax."""
    n = x.numel()
    blocks = (n + 63) // 64
    padded = torch.cat([x, torch.zeros(blocks * 64 - n)]).reshape(blocks, 64)
    valid = (torch.arange(blocks * 64) < n).reshape(blocks, 64)
    absmax = torch.where(valid, padded.abs(), torch.tensor(-3.4028234663852886e38)).max(1).values
    inv = 1.0 / absmax
    scaled = (padded * inv.unsqueeze(1)).reshape(-1)  # the kernel's padding is 0.0f too
    codes = (encode_nf4 if kind == "nf4" else encode_fp4)(scaled)[: n + (n & 1)]
    packed = (codes[0::2] << 4) | codes[1::2]
    return packed, absmax


def dequantize_4bit(packed, absmax, n, kind):
    codes = torch.stack([packed >> 4, packed & 15], 1).reshape(-1)[:n].long()
    table = torch.from_numpy(np.array(NF4 if kind == "nf4" else FP4_TABLE, dtype=f32))
    return table[codes] * absmax.repeat_interleave(64)[:n]



def dquantize(code, x):
    """dQuantize<0> of csrc/kernels.cu on every element of x at once."""
    n = x.numel()
    pivot = torch.full((n,), 127, dtype=torch.long)
    upper_pivot = torch.full((n,), 255, dtype=torch.long)
    lower_pivot = torch.zeros(n, dtype=torch.long)
    lower = torch.full((n,), -1.0)
    upper = torch.full((n,), 1.0)
    val = code[pivot]
    i = 64
    while i > 0:
        gt = x > val
        lower_pivot = torch.where(gt, pivot, lower_pivot)
        lower = torch.where(gt, val, lower)
        upper_pivot = torch.where(gt, upper_pivot, pivot)
        upper = torch.where(gt, upper, val)
        pivot = torch.where(gt, pivot + i, pivot - i)
        val = code[pivot]
        i >>= 1
    upper = torch.where(upper_pivot == 255, code[255], upper)
    lower = torch.where(lower_pivot == 0, code[0], lower)
    gt = x > val
    mid_up = (upper + val) * 0.5
    mid_lo = (lower + val) * 0.5
    return torch.where(gt, torch.where(x > mid_up, upper_pivot, pivot),
                       torch.where(x < mid_lo, lower_pivot, pivot)).to(torch.uint8)


def quantize_blockwise(x, code, blocksize=256):
    """kQuantizeBlockwise<float, 256, 2, 0, General8bit>: codes, scales."""
    n = x.numel()
    blocks = (n + blocksize - 1) // blocksize
    codes = torch.empty(n, dtype=torch.uint8)
    scales = torch.empty(blocks)
    for b in range(blocks):
        part = x[b * blocksize:(b + 1) * blocksize]
        s = part.abs().max()
        scales[b] = s
        codes[b * blocksize:(b + 1) * blocksize] = dquantize(code, part * (1.0 / s))
    return codes, scales


# ---- inputs both sides compute ------------------------------------------------

def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def q4_input(n, seed):
    """x[i] = ((u0 + u1) + (u2 + u3) - 2) * s: u 24-bit uniforms, s = (h + 1) / 1024
    per block of 64 (h 10 bits), all float32 operations exact or rounded the same
    way in C. Bell-shaped in (-2, 2) times a block scale in (0, 1]."""
    x = np.empty(n, dtype=f32)
    two24 = f32(2.0 ** -24)
    for i in range(n):
        u = [f32(splitmix64(seed * 1000003 + 4 * i + k) >> 40) * two24 for k in range(4)]
        base = f32(f32(f32(u[0] + u[1]) + f32(u[2] + u[3])) - f32(2.0))
        h = splitmix64(seed * 7919 + i // 64) >> 54
        s = f32(f32(h + 1) * f32(1.0 / 1024))
        x[i] = f32(base * s)
    return torch.from_numpy(x)


# ---- output ------------------------------------------------------------------

out = []


def _hex(v):
    v = float(v)
    assert v == v and abs(v) != float("inf"), "fixtures hold finite values only"
    if v == 0.0:
        return "-0x0p+0f" if math.copysign(1.0, v) < 0 else "0x0p+0f"
    mant, exp = v.hex().split("p")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}f"


def emit_f32(name, arr, comment=""):
    vals = [_hex(v) for v in np.asarray(arr, dtype=f32).reshape(-1)]
    rows = ",\n    ".join(", ".join(vals[i:i + 4]) for i in range(0, len(vals), 4))
    c = f"/* {comment} */\n" if comment else ""
    out.append(f"\n{c}static const float {name}[] = {{\n    {rows}\n}};\n")
    return name


def emit_u8(name, arr, comment=""):
    vals = [str(int(v)) for v in np.asarray(arr).reshape(-1)]
    rows = ",\n    ".join(", ".join(vals[i:i + 24]) for i in range(0, len(vals), 24))
    c = f"/* {comment} */\n" if comment else ""
    out.append(f"\n{c}static const uint8_t {name}[] = {{\n    {rows}\n}};\n")
    return name


def exact_mean(a):
    s = sum(Fraction(float(v)) for v in a.tolist()) / len(a)
    return f32(float(s))  # a double rounding at worst; only printed


normal = create_normal_map()
nf4_from_map = sorted(set(normal.tolist()))
assert len(nf4_from_map) == 16 and all(f32(a) == f32(b) for a, b in zip(nf4_from_map, NF4)), \
    "create_normal_map does not give the NF4 literals"
emit_f32("golden_q4_normal_map_values", nf4_from_map,
         "the 16 distinct values of create_normal_map(0.9677083), scipy's norm.ppf replaced by torch.special.ndtri")

dyn = create_dynamic_map()
emit_f32("golden_q4_dynamic_map", dyn, "create_dynamic_map(signed=True) on this torch")

# The 8-bit encoder on every midpoint between neighbouring map values (the
# ties), the floats next to them, and random values in [-1, 1].
mids = ((dyn[:-1] + dyn[1:]) * 0.5)
above = torch.from_numpy(np.nextafter(mids.numpy(), f32(np.inf)))
below = torch.from_numpy(np.nextafter(mids.numpy(), f32(-np.inf)))
gen = torch.Generator().manual_seed(4242)
rand = torch.rand(256, generator=gen) * 2 - 1
probe = torch.cat([mids, above, below, rand, torch.tensor([-1.0, 1.0, 0.0, -0.0])])
emit_f32("golden_q4_dyn_probe_x", probe, f"{probe.numel()}: the {mids.numel()} midpoints, the floats above and below them, "
         "random values, -1, 1, +-0")
emit_u8("golden_q4_dyn_probe_code", dquantize(dyn, probe), "dQuantize<0>(map, x): ties go to the even index")

cases = []


def add_case(name, kind, rows, cols, seed, double_quant, x=None):
    """x given: stored in the header (seed < 0); else q4_input(rows * cols, seed)."""
    n = rows * cols
    if x is None:
        x = q4_input(n, seed)
    packed, absmax = quantize_4bit(x, kind)
    tag = f"golden_q4_{name}"
    entry = dict(name=name, kind=kind, rows=rows, cols=cols, seed=seed, dq=double_quant, tag=tag)
    if seed < 0:
        emit_f32(f"{tag}_x", x, f"{n} inputs")
    emit_u8(f"{tag}_packed", packed, f"{packed.numel()} bytes")
    emit_f32(f"{tag}_absmax", absmax, f"{absmax.numel()} block absmax")
    if double_quant:
        offset = absmax.mean()
        print(f"{name}: torch mean {float(offset)!r} exact {float(exact_mean(absmax))!r}")
        codes, scales = quantize_blockwise(absmax - offset, dyn)
        absmax2 = dyn[codes.long()] * scales.repeat_interleave(256)[:absmax.numel()] + offset
        emit_f32(f"{tag}_offset", [offset], "torch's float32 absmax.mean()")
        emit_u8(f"{tag}_dq_code", codes)
        emit_f32(f"{tag}_dq_scale", scales)
        emit_f32(f"{tag}_dq_absmax", absmax2, "dequantized absmax: map[code] * scale + offset")
        weight = dequantize_4bit(packed, absmax2, n, kind)
    else:
        weight = dequantize_4bit(packed, absmax, n, kind)
    # A few dequantized weights, spread over the tensor.
    picks = sorted(set([0, 1, n - 1] + [(k * 7919) % n for k in range(61)]))
    out.append(f"\nstatic const int64_t {tag}_pick_index[] = {{ {', '.join(str(p) for p in picks)} }};\n")
    emit_f32(f"{tag}_pick_weight", weight[picks])
    entry["npick"] = len(picks)
    cases.append(entry)


# Ties through the whole pipeline: a block whose absmax is exactly 1 (so the
# scaled value is x itself) holding every threshold and the float above it,
# for both codebooks; then a block of zeros; odd count (the pad nibble).
def tie_block(thresholds):
    vals = [1.0]
    for t in thresholds:
        t = f32(t)
        vals += [t, np.nextafter(t, f32(np.inf))]
        if t > 0:
            vals += [-t, -np.nextafter(t, f32(np.inf))]
    vals = vals[:64]
    vals += [0.5] * (64 - len(vals))
    return vals


ties_nf4 = torch.tensor(tie_block(NF4_THRESHOLDS) + [0.0] * 64 + [0.3, -0.2, 0.7], dtype=torch.float32)
ties_fp4 = torch.tensor(tie_block(FP4_THRESHOLDS) + [0.0] * 64 + [0.3, -0.2, 0.7], dtype=torch.float32)
add_case("nf4_ties", "nf4", 1, ties_nf4.numel(), -1, False, ties_nf4)
add_case("fp4_ties", "fp4", 1, ties_fp4.numel(), -2, False, ties_fp4)
# Odd sizes with short last blocks; the double-quantized ones have more than
# 256 blocks, so two scales, the last block of 256 short too.
add_case("nf4_small", "nf4", 7, 53, 3, False)
add_case("fp4_small", "fp4", 7, 53, 3, False)
add_case("nf4_dq", "nf4", 151, 129, 5, True)
add_case("fp4_dq", "fp4", 151, 129, 5, True)

table = []
for c in cases:
    t = c["tag"]
    dq = c["dq"]
    table.append(
        f"    {{ \"{c['name']}\", {1 if c['kind'] == 'fp4' else 0}, {c['rows']}, {c['cols']}, {c['seed']}, "
        f"{'true' if dq else 'false'},\n      {t + '_x' if c['seed'] < 0 else 'NULL'}, {t}_packed, {t}_absmax, "
        f"{t + '_offset' if dq else 'NULL'}, {t + '_dq_code' if dq else 'NULL'}, "
        f"{t + '_dq_scale' if dq else 'NULL'}, {t + '_dq_absmax' if dq else 'NULL'},\n"
        f"      {c['npick']}, {t}_pick_index, {t}_pick_weight }},")

header = (
    "/* Generated by tests/golden/gen_q4_fixtures.py with torch "
    f"{torch.__version__}; do not edit.\n"
    " * bitsandbytes' 4-bit quantization restated in torch, for tests/test_q4.c;\n"
    " * float32 as exact hex floats. */\n"
    "#ifndef QAT_Q4_FIXTURES_H\n#define QAT_Q4_FIXTURES_H\n\n"
    "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n"
)
footer = (
    "\n/* type: 0 NF4, 1 FP4. x is NULL when the input is q4_input(rows * cols, seed)\n"
    " * (see the script). The dq_* fields are NULL without double quantization.\n"
    " * pick_weight[k] is the dequantized weight at flat index pick_index[k]. */\n"
    "typedef struct golden_q4_case {\n"
    "    const char *name;\n"
    "    int type;\n"
    "    int64_t rows, cols, seed;\n"
    "    bool double_quant;\n"
    "    const float *x;\n"
    "    const uint8_t *packed;\n"
    "    const float *absmax, *offset;\n"
    "    const uint8_t *dq_code;\n"
    "    const float *dq_scale, *dq_absmax;\n"
    "    int npick;\n"
    "    const int64_t *pick_index;\n"
    "    const float *pick_weight;\n"
    "} golden_q4_case;\n\n"
    "static const golden_q4_case golden_q4_cases[] = {\n" + "\n".join(table) + "\n};\n"
    "\n#endif\n"
)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "q4_fixtures.h")
with open(path, "w") as f:
    f.write(header + "".join(out) + footer)
print("wrote", path)
