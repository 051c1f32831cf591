#!/usr/bin/python3
"""Writes tests/golden/gptq_fixture.h: GPTQ results of a small PyTorch
reimplementation of the IST-DASLab reference loop (gptq.py, fasterquant) that
tests/test_gptq.c compares qat_gptq_quantize against.

Run from anywhere with Debian's python3-torch: /usr/bin/python3 gen_gptq_fixture.py

The loop is the reference's, step for step, in float64: H = 2/N X^T X, dead
inputs, dampening, cholesky -> cholesky_inverse -> upper cholesky, blocks of
`blocksize` with the lazy update, and per-group parameters from
W[:, i:i + g] (the W that holds the earlier blocks' updates, not the block's
working copy) when i % g == 0. Only the quantizer is qat's, built from
PyTorch's own pieces: (Per)ChannelMinMaxObserver scales (zero point
2^(bits - 1) when symmetric) and torch.fake_quantize_per_channel_affine /
_per_tensor_affine on float32 columns. The C test takes X and W from this
file, so it exercises qat_hessian_add too. Values are written as exact hex
floats; the data comes from a seeded torch.Generator.
"""
import os
import torch
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

torch.set_num_threads(1)
gen = torch.Generator().manual_seed(20240612)
out = []

ROWS, COLS, N, BLOCK, DEAD = 8, 32, 64, 16, 5


def _hex(v):
    v = float(v)
    assert v == v and abs(v) != float("inf")
    mant, exp = v.hex().split("p")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}f"


def emit(name, t, comment=""):
    t = t.detach().contiguous().flatten()
    if t.dtype in (torch.int32, torch.int64, torch.uint8):
        ctype = "uint8_t" if t.dtype == torch.uint8 else "int32_t"
        items = [str(int(v)) for v in t.tolist()]
        per = 16
    else:
        ctype = "float"
        items = [_hex(v) for v in t.to(torch.float32).tolist()]
        per = 4
    rows = [", ".join(items[i:i + per]) for i in range(0, len(items), per)]
    body = ",\n    ".join(rows)
    out.append(f"\n/* {comment} */\n" if comment else "\n")
    out.append(f"static const {ctype} {name}[] = {{\n    {body}\n}};\n")


def qparams(w32, bits, sym, per_tensor):
    """Scale and zero point per row of w32 (float32), PyTorch observer rules."""
    qmax = 2 ** bits - 1
    if per_tensor:
        obs = MinMaxObserver(dtype=torch.quint8, quant_min=0, quant_max=qmax,
                             qscheme=torch.per_tensor_symmetric if sym else torch.per_tensor_affine)
    else:
        obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.quint8, quant_min=0, quant_max=qmax,
                                       qscheme=torch.per_channel_symmetric if sym else torch.per_channel_affine)
    obs(w32)
    scale, zero = obs.calculate_qparams()
    scale = scale.to(torch.float32).reshape(-1)
    zero = zero.to(torch.int32).reshape(-1)
    if sym:
        zero = torch.full_like(zero, 2 ** (bits - 1))
    return scale, zero


def quantize_column(col64, scale, zero, bits):
    """(codes, dequantized float32) of one column with per-row scale / zero."""
    qmax = 2 ** bits - 1
    x = col64.to(torch.float32)
    y = torch.fake_quantize_per_channel_affine(x.unsqueeze(1), scale, zero, 0, 0, qmax).flatten()
    inv = torch.ones_like(scale) / scale
    codes = torch.clamp(zero.to(torch.float32) + torch.round(x * inv), 0, qmax)
    assert torch.equal((codes - zero.to(torch.float32)) * scale, y), "codes disagree with fake_quantize"
    return codes.to(torch.uint8), y


def gptq(W0, X, bits, sym, gran, group, blocksize, percdamp=0.01):
    rows, cols = W0.shape
    W = W0.clone().to(torch.float64)
    H = 2.0 / X.shape[0] * (X.to(torch.float64).t() @ X.to(torch.float64))
    gpr = (cols + group - 1) // group if gran == "group" else 0
    nscale = {"tensor": 1, "channel": rows, "group": rows * gpr}[gran]
    scale = torch.zeros(nscale, dtype=torch.float32)
    zero = torch.zeros(nscale, dtype=torch.int32)
    if gran != "group":
        s, z = qparams(W0, bits, sym, gran == "tensor")
        scale[:], zero[:] = s, z
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    idx = torch.arange(cols)
    H[idx, idx] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    Q = torch.zeros(rows, cols, dtype=torch.float32)
    C = torch.zeros(rows, cols, dtype=torch.uint8)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            c = i1 + i
            if gran == "group" and c % group == 0:
                s, z = qparams(W[:, c:c + group].to(torch.float32), bits, sym, False)
                k = torch.arange(rows) * gpr + c // group
                scale[k], zero[k] = s, z
            if gran == "tensor":
                s, z = scale.expand(rows).contiguous(), zero.expand(rows).contiguous()
            elif gran == "channel":
                s, z = scale, zero
            else:
                k = torch.arange(rows) * gpr + c // group
                s, z = scale[k], zero[k]
            codes, q = quantize_column(w, s, z, bits)
            C[:, c] = codes
            Q[:, c] = q
            err1 = (w - q.to(torch.float64)) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return Q, C, scale, zero


def rand(*shape):
    return torch.rand(*shape, generator=gen, dtype=torch.float32) * 2 - 1


# Correlated inputs: a random mixing of independent features, one input dead.
mix = rand(COLS, COLS) + 0.5 * torch.eye(COLS)
X = (rand(N, COLS) @ mix).to(torch.float32)
X[:, DEAD] = 0
W = rand(ROWS, COLS) * 0.2

out.append(f"#define GPTQ_FX_ROWS {ROWS}\n#define GPTQ_FX_COLS {COLS}\n#define GPTQ_FX_N {N}\n"
           f"#define GPTQ_FX_BLOCK {BLOCK}\n#define GPTQ_FX_DEAD {DEAD}\n")
emit("gptq_fx_x", X, f"{N}x{COLS} calibration inputs, column {DEAD} all zero")
emit("gptq_fx_w", W, f"{ROWS}x{COLS} weights")

CASES = [
    ("ch4", 4, False, "channel", 0),
    ("ch3s", 3, True, "channel", 0),
    ("t3", 3, False, "tensor", 0),
    ("g8s3", 3, True, "group", 8),
    ("g12a4", 4, False, "group", 12),   # groups straddle blocks, the last one short
]
out.append("\n/* Cases: name, bits, symmetric, granularity, group. */\n")
for name, bits, sym, gran, group in CASES:
    Q, C, s, z = gptq(W, X, bits, sym, gran, group, BLOCK)
    assert torch.all(Q[:, DEAD] == 0)
    emit(f"gptq_fx_{name}_q", Q, f"{name}: {bits} bits, {'symmetric' if sym else 'affine'}, {gran}"
         + (f" {group}" if group else "") + ", dequantized weights")
    emit(f"gptq_fx_{name}_codes", C)
    emit(f"gptq_fx_{name}_scale", s)
    emit(f"gptq_fx_{name}_zero", z)

header = (
    "/* Generated by tests/golden/gen_gptq_fixture.py with torch "
    f"{torch.__version__}; do not edit.\n"
    " * The reference GPTQ loop in PyTorch (float64) with qat's quantizer, for\n"
    " * tests/test_gptq.c; float32 as exact hex floats. */\n"
    "#ifndef QAT_GPTQ_FIXTURE_H\n#define QAT_GPTQ_FIXTURE_H\n\n#include <stdint.h>\n\n"
)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gptq_fixture.h")
with open(path, "w") as f:
    f.write(header + "".join(out) + "\n#endif\n")
print("wrote", path)
