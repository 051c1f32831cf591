#!/usr/bin/python3
"""Generate (and check) tests/golden/gpt_golden.safetensors.

Reference values for tests/test_golden_gpt.c, computed with Debian's PyTorch
and the model of scripts/torch_gpt.py (docs/gpt.md) at a tiny size (2
blocks, width 8, 2 heads, context 7, vocabulary 256, batch 3):

  * initial parameters from torch.manual_seed(0) (`init.*`). They are not
    GPT-2's init: linear weights normal(0, 1/sqrt(fan in)), embeddings
    normal(0, 1), biases and LayerNorm biases normal(0, 0.1), LayerNorm
    weights 1 + normal(0, 0.2), so attention is far from uniform and every
    parameter already matters in the first forward pass;
  * `text` U8 (10, 3, 8): 10 batches of 3 windows of context + 1 bytes from
    the training split of fortunes:tech, at offsets drawn from a
    torch.Generator seeded 1 (x = window[:7], y = window[1:]);
  * one forward/backward on batch 0: `step1.logits` (21, 256),
    `step1.loss`, `step1.grad.*` for every parameter;
  * 10 AdamW steps (lr 1e-2, betas 0.9/0.999, eps 1e-8, weight decay 0.1,
    constant rate) on batches 0..9: `adamw.losses` (each step's loss before
    its update) and the final `blocks.0.attn.q.weight` and `head.bias`.

The file is written with struct + json (the safetensors package is not
used); the C test reads it directly and never needs Python.

Usage:
  /usr/bin/python3 tests/golden/gen_gpt_golden.py            # write the file
  /usr/bin/python3 tests/golden/gen_gpt_golden.py --check    # verify it
Options: --out PATH, --data-dir DIR (the fortunes files).
"""

import argparse
import copy
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import torch_gpt  # noqa: E402  (the model, the corpus, safetensors I/O)

DEFAULT_OUT = os.path.join(HERE, "gpt_golden.safetensors")
GENERATOR = "tests/golden/gen_gpt_golden.py"
DATA_SPEC = "fortunes:tech"

# Odd batch and context on purpose: row counts that are not multiples of the
# kernels' vector width.
LAYERS, WIDTH, HEADS, CONTEXT, VOCAB = 2, 8, 2, 7, 256
B = 3           # windows per batch
S = 10          # optimizer steps
ADAMW_HP = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
FINAL = ["blocks.0.attn.q.weight", "head.bias"]


def setup_torch():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)


def make_model():
    return torch_gpt.GPT(LAYERS, WIDTH, HEADS, CONTEXT, VOCAB)


@torch.no_grad()
def golden_init(model):
    """Parameters at the scale of a trained network rather than GPT-2's
    near-zero start (see the module docstring), in parameter order."""
    for name, p in model.named_parameters():
        if name in ("wte.weight", "wpe.weight"):
            p.normal_(0.0, 1.0)
        elif name.endswith(".weight") and p.dim() == 2:
            p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]))
        elif (".ln" in name or name.startswith("ln_f.")) and name.endswith(".weight"):
            p.normal_(1.0, 0.2)
        else:
            p.normal_(0.0, 0.1)


def load_text(data_dir):
    """U8 (S, B, CONTEXT + 1) windows of the training split."""
    train, _ = torch_gpt.load_fortunes(DATA_SPEC, data_dir)
    gen = torch.Generator().manual_seed(1)
    starts = torch.randint(0, len(train) - CONTEXT, (S, B), generator=gen)
    data = torch.tensor(list(train), dtype=torch.uint8)
    return torch.stack([torch.stack([data[s:s + CONTEXT + 1] for s in row.tolist()]) for row in starts])


def batch(text, s):
    w = text[s].long()
    return w[:, :CONTEXT], w[:, 1:]


def adamw_curve(init_model, text):
    model = copy.deepcopy(init_model)
    opt = torch.optim.AdamW(model.parameters(), **ADAMW_HP)
    losses = []
    for s in range(S):
        opt.zero_grad(set_to_none=True)
        loss = torch_gpt.gpt_loss(model, *batch(text, s))
        losses.append(loss.detach().clone())
        loss.backward()
        opt.step()
    return torch.stack(losses).reshape(S), dict(model.named_parameters())


def generate(out, data_dir):
    setup_torch()
    text = load_text(data_dir)
    torch.manual_seed(0)
    init = make_model()
    golden_init(init)
    names = [k for k, _ in init.named_parameters()]

    m = copy.deepcopy(init)
    x, y = batch(text, 0)
    logits = m(x).reshape(B * CONTEXT, VOCAB)
    loss = F.cross_entropy(logits, y.reshape(-1))
    loss.backward()

    losses, final = adamw_curve(init, text)

    tensors = [("init." + k, p.detach()) for k, p in init.named_parameters()]
    tensors.append(("text", text))
    tensors.append(("step1.logits", logits.detach()))
    tensors.append(("step1.loss", loss.detach().reshape(1)))
    tensors += [("step1.grad." + k, p.grad) for k, p in m.named_parameters()]
    tensors.append(("adamw.losses", losses))
    tensors += [("adamw.final." + k, final[k].detach()) for k in FINAL]
    assert [t[0] for t in tensors] == list(expected_layout(names)), "layout drifted from expected_layout"

    metadata = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "model": "gpt (scripts/torch_gpt.py, docs/gpt.md)",
        "gpt_layers": str(LAYERS), "gpt_width": str(WIDTH), "gpt_heads": str(HEADS),
        "gpt_context": str(CONTEXT), "gpt_vocab": str(VOCAB),
        "init": "torch.manual_seed(0); GPT(); then in parameter order: wte, wpe normal(0,1); linear weights "
                "normal(0,1/sqrt(fan_in)); LayerNorm weights normal(1,0.2); all biases normal(0,0.1)",
        "data": "%s training split, windows of context+1 bytes at torch.randint(0, len-context, (steps, batch), "
                "generator seeded 1)" % DATA_SPEC,
        "batch": str(B),
        "steps": str(S),
        "adamw.lr": repr(ADAMW_HP["lr"]),
        "adamw.beta1": repr(ADAMW_HP["betas"][0]),
        "adamw.beta2": repr(ADAMW_HP["betas"][1]),
        "adamw.eps": repr(ADAMW_HP["eps"]),
        "adamw.weight_decay": repr(ADAMW_HP["weight_decay"]),
    }
    torch_gpt.write_safetensors(out, tensors, metadata)
    print("wrote %s (%d bytes)" % (out, os.path.getsize(out)))
    print("step1.loss   = %.9g" % loss.item())
    print("adamw.losses = " + " ".join("%.6f" % v for v in losses.tolist()))


# --------------------------------------------------------------------------
# --check: the stored values against a recomputation
# --------------------------------------------------------------------------

class CheckError(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise CheckError(msg)


def expected_layout(names):
    shapes = dict(make_model().named_parameters())
    layout = {}
    for k in names:
        layout["init." + k] = list(shapes[k].shape)
    layout["text"] = [S, B, CONTEXT + 1]
    layout["step1.logits"] = [B * CONTEXT, VOCAB]
    layout["step1.loss"] = [1]
    for k in names:
        layout["step1.grad." + k] = list(shapes[k].shape)
    layout["adamw.losses"] = [S]
    for k in FINAL:
        layout["adamw.final." + k] = list(shapes[k].shape)
    return layout


def gpt_float64(P, x):
    """docs/gpt.md written out with plain tensor operations in float64, apart
    from nn.Module: an independent check of torch_gpt.GPT."""
    P = {k: v.double() for k, v in P.items()}
    Bx, T = x.shape
    D = WIDTH // HEADS

    def layer_norm(h, name):
        mu = h.mean(-1, keepdim=True)
        var = ((h - mu) ** 2).mean(-1, keepdim=True)
        return (h - mu) / torch.sqrt(var + 1e-5) * P[name + ".weight"] + P[name + ".bias"]

    def linear(h, name):
        return h @ P[name + ".weight"].T + P[name + ".bias"]

    def heads(t):
        return t.reshape(Bx, T, HEADS, D).permute(0, 2, 1, 3)

    h = P["wte.weight"][x] + P["wpe.weight"][:T]
    for i in range(LAYERS):
        b = "blocks.%d." % i
        a = layer_norm(h, b + "ln1")
        q, k, v = (heads(linear(a, b + "attn." + n)) for n in "qkv")
        scores = q @ k.transpose(-1, -2) / math.sqrt(D)
        mask = torch.arange(T).reshape(T, 1) < torch.arange(T).reshape(1, T)
        scores = scores.masked_fill(mask, -math.inf)
        att = torch.exp(scores - scores.max(-1, keepdim=True).values)
        att = att / att.sum(-1, keepdim=True)
        y = (att @ v).permute(0, 2, 1, 3).reshape(Bx, T, WIDTH)
        h = h + linear(y, b + "attn.proj")
        u = linear(layer_norm(h, b + "ln2"), b + "mlp.fc")
        h = h + linear(0.5 * u * (1 + torch.erf(u / math.sqrt(2))), b + "mlp.proj")
    return linear(layer_norm(h, "ln_f"), "head")


def manual_adamw(P0, text):
    """PyTorch 1.13's AdamW written out: p *= 1 - lr wd; m, v moving
    averages; p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)."""
    lr, (b1, b2), eps, wd = ADAMW_HP["lr"], ADAMW_HP["betas"], ADAMW_HP["eps"], ADAMW_HP["weight_decay"]
    model = make_model()
    P = {k: P0[k].clone() for k in P0}
    m = {k: torch.zeros_like(P0[k]) for k in P0}
    v = {k: torch.zeros_like(P0[k]) for k in P0}
    losses = []
    for s in range(S):
        t = s + 1
        model.load_state_dict(P)
        model.zero_grad(set_to_none=True)
        loss = torch_gpt.gpt_loss(model, *batch(text, s))
        loss.backward()
        losses.append(loss.detach())
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        for k, p in model.named_parameters():
            g = p.grad
            P[k] = P[k] * (1 - lr * wd)
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            P[k] = P[k] - (lr / bc1) * m[k] / (v[k].sqrt() / math.sqrt(bc2) + eps)
    return P, torch.stack(losses)


def check(path, data_dir):
    setup_torch()
    tensors, meta = torch_gpt.read_safetensors(path)
    names = [k for k, _ in make_model().named_parameters()]
    layout = expected_layout(names)
    need(list(tensors) == list(layout), "tensor names/order differ: %s" % list(tensors))
    for name, shape in layout.items():
        need(list(tensors[name].shape) == shape, "%s: shape %s != %s" % (name, list(tensors[name].shape), shape))
        want = torch.uint8 if name == "text" else torch.float32
        need(tensors[name].dtype == want, "%s: dtype %s" % (name, tensors[name].dtype))
    need(meta.get("generator") == GENERATOR and meta.get("batch") == str(B) and meta.get("steps") == str(S),
         "metadata generator/batch/steps")
    print("header ok: %d tensors, %d bytes" % (len(tensors), os.path.getsize(path)))

    text = tensors["text"]
    need(torch.equal(text, load_text(data_dir)), "text differs from the %s windows" % DATA_SPEC)

    torch.manual_seed(0)
    fresh = make_model()
    golden_init(fresh)
    P = {k: tensors["init." + k] for k in names}
    for k, p in fresh.named_parameters():
        need(torch.equal(p.detach(), P[k]), "init.%s differs from the seed-0 init" % k)

    # Step 1 from the stored parameters: bit-identical to the stored values.
    model = make_model()
    model.load_state_dict(P)
    x, y = batch(text, 0)
    logits = model(x).reshape(B * CONTEXT, VOCAB)
    loss = F.cross_entropy(logits, y.reshape(-1))
    loss.backward()
    need(torch.equal(loss.detach().reshape(1), tensors["step1.loss"]), "step1.loss differs")
    need(torch.equal(logits.detach(), tensors["step1.logits"]), "step1.logits differ")
    for k, p in model.named_parameters():
        need(torch.equal(p.grad, tensors["step1.grad." + k]), "step1.grad.%s differs" % k)

    # The module against the spec written out in float64.
    l64 = gpt_float64(P, x).reshape(B * CONTEXT, VOCAB)
    loss64 = F.cross_entropy(l64, y.reshape(-1)).item()
    dl = (l64 - tensors["step1.logits"].double()).abs().max().item()
    print("float64 spec: loss %.9g (stored %.9g), max |dlogit| %.3g" % (loss64, loss.item(), dl))
    need(abs(loss64 - loss.item()) < 1e-5 and dl < 1e-4, "float64 spec disagrees with torch_gpt.GPT")

    curve = tensors["adamw.losses"]
    need(curve[0] == tensors["step1.loss"][0], "the AdamW curve does not start at step1.loss")
    need(all(math.isfinite(v) for v in curve.tolist()), "non-finite loss")
    Pf, manual = manual_adamw(P, text)
    dl = (manual - curve).abs().max().item()
    dw = max((Pf[k] - tensors["adamw.final." + k]).abs().max().item() for k in FINAL)
    print("adamw manual replay: max |dloss| %.3g, max |dparam| %.3g" % (dl, dw))
    need(dl < 1e-5 and dw < 1e-5, "AdamW manual replay mismatch")

    print("step1.loss   = %.9g" % loss.item())
    print("adamw.losses = " + " ".join("%.6f" % v for v in curve.tolist()))
    print("check OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="verify an existing file")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--data-dir", default=None, help="the fortunes files (default as qat: $QAT_FORTUNES_DIR or "
                    "/usr/share/games/fortunes)")
    a = ap.parse_args()
    if a.check:
        try:
            check(a.out, a.data_dir)
        except CheckError as e:
            print("check FAILED: %s" % e, file=sys.stderr)
            return 1
    else:
        generate(a.out, a.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
