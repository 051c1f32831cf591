#!/usr/bin/python3
"""Writes tests/golden/ops_ref_fixtures.h: PyTorch results that
tests/test_ops_ref.c compares the C reference ops against.

Run from anywhere with Debian's python3-torch: /usr/bin/python3 gen_ops_ref_fixtures.py
The output is a C header of float32 arrays written as exact hex-float
literals, so the test needs neither Python nor a file reader at run time and
does not depend on its working directory. The data comes from a seeded
torch.Generator, so reruns with the same torch give the same file.
"""
import os
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
gen = torch.Generator().manual_seed(20240611)
out = []


def rand(*shape, scale=1.0):
    return ((torch.rand(*shape, generator=gen, dtype=torch.float32) * 2 - 1) * scale).contiguous()


def emit(name, t, comment=""):
    t = t.detach().contiguous()
    if t.dtype == torch.int32 or t.dtype == torch.int64:
        vals = ", ".join(str(int(v)) for v in t.flatten().tolist())
        ctype = "int32_t"
    else:
        vals = ",\n    ".join(", ".join(_hex(v) for v in row)
                              for row in _chunks(t.to(torch.float32).flatten().tolist(), 4))
        ctype = "float"
    shape = "x".join(str(s) for s in t.shape) or "scalar"
    out.append(f"\n/* {shape}{': ' + comment if comment else ''} */\n"
               f"static const {ctype} {name}[] = {{\n    {vals}\n}};\n")


def _hex(v):
    """Shortest exact C hex-float literal of a float32 value: 0x1.8p+1f."""
    v = float(v)
    assert v == v and abs(v) != float("inf"), "fixtures hold finite values only"
    mant, exp = v.hex().split("p")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}f"


def _chunks(xs, n):
    return [xs[i:i + n] for i in range(0, len(xs), n)] or [[]]


def define(name, value):
    out.append(f"#define {name} {value}\n")


def conv_case(tag, n, c, h, w, o, kh, kw, stride, pad):
    x = rand(n, c, h, w).requires_grad_()
    wt = rand(o, c, kh, kw).requires_grad_()
    y = F.conv2d(x, wt, stride=stride, padding=pad)
    dy = rand(*y.shape)
    y.backward(dy)
    for k, v in dict(N=n, C=c, H=h, W=w, O=o, KH=kh, KW=kw, STRIDE=stride, PAD=pad).items():
        define(f"GOLDEN_{tag}_{k}", v)
    emit(f"golden_{tag.lower()}_x", x)
    emit(f"golden_{tag.lower()}_w", wt)
    emit(f"golden_{tag.lower()}_y", y, "F.conv2d(x, w, stride, padding)")
    emit(f"golden_{tag.lower()}_dy", dy)
    emit(f"golden_{tag.lower()}_dx", x.grad)
    emit(f"golden_{tag.lower()}_dw", wt.grad)


conv_case("CONV_A", 2, 3, 7, 6, 4, 3, 3, 2, 1)
conv_case("CONV_B", 1, 2, 5, 6, 3, 2, 3, 1, 0)

# Max pooling on small integers: most windows have ties, and 5x5 is odd so the
# last row and column are dropped (floor).
x = torch.randint(0, 3, (1, 2, 5, 5), generator=gen).to(torch.float32).requires_grad_()
y = F.max_pool2d(x, 2)
dy = rand(*y.shape)
y.backward(dy)
define("GOLDEN_POOL_N", 1)
define("GOLDEN_POOL_C", 2)
define("GOLDEN_POOL_H", 5)
define("GOLDEN_POOL_W", 5)
emit("golden_pool_x", x, "values in {0, 1, 2}: many ties")
emit("golden_pool_y", y, "F.max_pool2d(x, 2)")
emit("golden_pool_dy", dy)
emit("golden_pool_dx", x.grad, "PyTorch CPU: each window's dy goes to its first maximum")

# Softmax cross-entropy, including a row of huge logits.
logits = rand(4, 5, scale=3.0)
logits[3] = torch.tensor([1000.0, -1000.0, 0.0, 999.0, -5.0])
logits.requires_grad_()
labels = torch.tensor([2, 0, 4, 3], dtype=torch.int64)
rows = F.cross_entropy(logits, labels, reduction="none")
loss = F.cross_entropy(logits, labels)
loss.backward(torch.tensor(0.75))
define("GOLDEN_CE_BATCH", 4)
define("GOLDEN_CE_CLASSES", 5)
define("GOLDEN_CE_DLOSS", "0.75f")
emit("golden_ce_logits", logits)
emit("golden_ce_labels", labels.to(torch.int32))
emit("golden_ce_rows", rows, "F.cross_entropy(reduction='none')")
emit("golden_ce_loss", loss.reshape(1), "F.cross_entropy (mean)")
emit("golden_ce_dlogits", logits.grad, "gradient of the mean loss times 0.75")

# GELU (exact erf form) on a grid plus random points.
x = torch.cat([torch.linspace(-6, 6, 49), rand(15, scale=4.0)]).requires_grad_()
y = F.gelu(x)
dy = rand(*y.shape)
y.backward(dy)
define("GOLDEN_GELU_N", x.numel())
emit("golden_gelu_x", x)
emit("golden_gelu_y", y, "F.gelu(x) (approximate='none')")
emit("golden_gelu_dy", dy)
emit("golden_gelu_dx", x.grad)

# Optimizers: three steps each on the same parameters.
STEPS, N = 3, 16
p0 = rand(N)
grads = torch.stack([rand(N) for _ in range(STEPS)])
define("GOLDEN_OPT_N", N)
define("GOLDEN_OPT_STEPS", STEPS)
emit("golden_opt_p0", p0)
emit("golden_opt_grads", grads, "one row per step")

p = p0.clone().requires_grad_()
opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
ps = []
for s in range(STEPS):
    p.grad = grads[s].clone()
    opt.step()
    ps.append(p.detach().clone())
out.append("/* torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01) */\n")
emit("golden_sgd_p", torch.stack(ps), "parameters after each step")
emit("golden_sgd_buf", opt.state[p]["momentum_buffer"], "momentum buffer after the last step")

p = p0.clone().requires_grad_()
opt = torch.optim.AdamW([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05, foreach=False)
ps = []
for s in range(STEPS):
    p.grad = grads[s].clone()
    opt.step()
    ps.append(p.detach().clone())
out.append("/* torch.optim.AdamW(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05) */\n")
emit("golden_adamw_p", torch.stack(ps), "parameters after each step")
emit("golden_adamw_m", opt.state[p]["exp_avg"], "after the last step")
emit("golden_adamw_v", opt.state[p]["exp_avg_sq"], "after the last step")

# Layer norm (nn.LayerNorm semantics) on an odd C and on a C of whole vec4s;
# rows offset far from zero so a one-pass variance would show.
for tag, rows, c in (("LN_A", 5, 7), ("LN_B", 3, 16)):
    x = (rand(rows, c, scale=2.0) + torch.arange(rows, dtype=torch.float32).reshape(rows, 1) * 3).requires_grad_()
    gamma = rand(c, scale=1.5).requires_grad_()
    beta = rand(c).requires_grad_()
    y = F.layer_norm(x, (c,), gamma, beta, eps=1e-5)
    dy = rand(rows, c)
    y.backward(dy)
    define(f"GOLDEN_{tag}_ROWS", rows)
    define(f"GOLDEN_{tag}_C", c)
    define(f"GOLDEN_{tag}_EPS", "1e-5f")
    t = tag.lower()
    emit(f"golden_{t}_x", x)
    emit(f"golden_{t}_gamma", gamma)
    emit(f"golden_{t}_beta", beta)
    emit(f"golden_{t}_y", y, "F.layer_norm(x, (C,), gamma, beta, eps=1e-5)")
    emit(f"golden_{t}_dy", dy)
    emit(f"golden_{t}_dx", x.grad)
    emit(f"golden_{t}_dgamma", gamma.grad)
    emit(f"golden_{t}_dbeta", beta.grad)

# Causal softmax as attention writes it: scale, mask above the diagonal with
# -inf, softmax over the last axis.
B, T, SCALE = 3, 6, 0.5
x = rand(B, T, T, scale=4.0).requires_grad_()
mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
y = torch.softmax((x * SCALE).masked_fill(mask, float("-inf")), dim=-1)
dy = rand(B, T, T)
y.backward(dy)
define("GOLDEN_CSM_BATCH", B)
define("GOLDEN_CSM_T", T)
define("GOLDEN_CSM_SCALE", "0.5f")
emit("golden_csm_x", x)
emit("golden_csm_y", y, "softmax((x * scale).masked_fill(triu(ones, 1), -inf), -1)")
emit("golden_csm_dy", dy)
emit("golden_csm_dx", x.grad)

# Embedding with repeated ids (and a row no id uses).
VOCAB, DIM = 11, 6
table = rand(VOCAB, DIM).requires_grad_()
ids = torch.randint(0, VOCAB - 1, (2, 9), generator=gen)
y = F.embedding(ids, table)
dy = rand(*y.shape)
y.backward(dy)
define("GOLDEN_EMB_VOCAB", VOCAB)
define("GOLDEN_EMB_DIM", DIM)
define("GOLDEN_EMB_N", ids.numel())
emit("golden_emb_table", table)
emit("golden_emb_ids", ids.to(torch.int32), "ids in [0, vocab - 1): the last row is never used")
emit("golden_emb_y", y, "F.embedding(ids, table)")
emit("golden_emb_dy", dy)
emit("golden_emb_dtable", table.grad)

# transpose(1, 2) of a 4-d tensor and its gradient.
x = rand(2, 3, 4, 5).requires_grad_()
y = x.transpose(1, 2).contiguous()
dy = rand(*y.shape)
y.backward(dy)
emit("golden_tr_x", x, "(A, B, C, D) = (2, 3, 4, 5)")
emit("golden_tr_y", y, "x.transpose(1, 2)")
emit("golden_tr_dy", dy)
emit("golden_tr_dx", x.grad)

header = (
    "/* Generated by tests/golden/gen_ops_ref_fixtures.py with torch "
    f"{torch.__version__}; do not edit.\n"
    " * PyTorch results for tests/test_ops_ref.c, float32 as exact hex floats. */\n"
    "#ifndef QAT_OPS_REF_FIXTURES_H\n#define QAT_OPS_REF_FIXTURES_H\n\n#include <stdint.h>\n\n"
)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops_ref_fixtures.h")
with open(path, "w") as f:
    f.write(header + "".join(out) + "\n#endif\n")
print("wrote", path)
