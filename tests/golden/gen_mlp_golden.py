#!/usr/bin/python3
"""Generate (and check) tests/golden/mlp_golden.safetensors.

Reference values for the C test suite, computed with Debian's PyTorch:

  * the initial weights of the "mlp" model (784-256-256-10, nn.Linear layers
    fc1, fc2, fc3, ReLU after fc1 and fc2, CrossEntropyLoss on the logits),
    created by torch.manual_seed(0) and PyTorch's default nn.Linear init;
  * the first 10 batches of 32 Fashion-MNIST training images (raw bytes) and
    labels, in file order;
  * one training step on batch 0: logits, loss and every parameter gradient;
  * 10-step loss curves (loss of each step, before its update) and the final
    fc3 parameters for SGD(momentum, weight decay) and AdamW.

The file is written in the safetensors format with struct + json only (the
safetensors package is not used).  The C tests read this file directly and
never need Python.

Usage:
  /usr/bin/python3 tests/golden/gen_mlp_golden.py            # write the file
  /usr/bin/python3 tests/golden/gen_mlp_golden.py --check    # verify it
Options: --out PATH, --data-dir DIR.
"""

import argparse
import copy
import gzip
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "mlp_golden.safetensors")
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
GENERATOR = "tests/golden/gen_mlp_golden.py"

B = 32          # batch size
S = 10          # optimizer steps
D_IN, D_H, D_OUT = 784, 256, 10
PARAMS = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
          "fc3.weight", "fc3.bias"]

SGD_HP = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)
ADAMW_HP = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


def setup_torch():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)


# --------------------------------------------------------------------------
# Fashion-MNIST (IDX, gzip)
# --------------------------------------------------------------------------

def read_idx_images(path, count):
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 0x00000803:
            raise ValueError("%s: bad IDX image magic 0x%08x" % (path, magic))
        if rows != 28 or cols != 28 or n < count:
            raise ValueError("%s: unexpected dims n=%d %dx%d" % (path, n, rows, cols))
        raw = f.read(count * rows * cols)
    if len(raw) != count * rows * cols:
        raise ValueError("%s: truncated" % path)
    return raw


def read_idx_labels(path, count):
    with gzip.open(path, "rb") as f:
        magic, n = struct.unpack(">II", f.read(8))
        if magic != 0x00000801:
            raise ValueError("%s: bad IDX label magic 0x%08x" % (path, magic))
        if n < count:
            raise ValueError("%s: only %d labels" % (path, n))
        raw = f.read(count)
    if len(raw) != count:
        raise ValueError("%s: truncated" % path)
    return raw


def load_batches(data_dir):
    """x: uint8 (S, B, 784) raw pixels, y: int32 (S, B)."""
    n = S * B
    img = read_idx_images(os.path.join(data_dir, "train-images-idx3-ubyte.gz"), n)
    lab = read_idx_labels(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"), n)
    x = torch.frombuffer(bytearray(img), dtype=torch.uint8).reshape(S, B, D_IN).clone()
    y = torch.frombuffer(bytearray(lab), dtype=torch.uint8).reshape(S, B).to(torch.int32)
    return x, y


def to_input(xb):
    return xb.to(torch.float32) / 255.0


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        # Construction order matters for the RNG stream: fc1, fc2, fc3.
        self.fc1 = nn.Linear(D_IN, D_H)
        self.fc2 = nn.Linear(D_H, D_H)
        self.fc3 = nn.Linear(D_H, D_OUT)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def train_curve(init_model, make_opt, x, y):
    model = copy.deepcopy(init_model)
    opt = make_opt(model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for s in range(S):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(to_input(x[s])), y[s].long())
        losses.append(loss.detach().clone())
        loss.backward()
        opt.step()
    losses = torch.stack(losses).reshape(S).to(torch.float32)
    return losses, model


# --------------------------------------------------------------------------
# safetensors writer (struct + json)
# --------------------------------------------------------------------------

DTYPES = {  # torch dtype -> (safetensors name, element size)
    torch.float32: ("F32", 4),
    torch.int32: ("I32", 4),
    torch.uint8: ("U8", 1),
}


def tensor_bytes(t):
    """Raw little-endian bytes of a contiguous CPU tensor (struct only)."""
    t = t.detach().contiguous().cpu()
    fmt = {torch.float32: "f", torch.int32: "i", torch.uint8: "B"}[t.dtype]
    vals = t.reshape(-1).tolist()
    return struct.pack("<%d%s" % (len(vals), fmt), *vals)


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch.Tensor) in the order to store them."""
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name, t in tensors:
        dt, esz = DTYPES[t.dtype]
        data = tensor_bytes(t)
        assert len(data) == t.numel() * esz, name
        header[name] = {"dtype": dt, "shape": list(t.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-(8 + len(hjson))) % 8)   # 8 + N is a multiple of 8
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------

def generate(out, data_dir):
    setup_torch()
    x, y = load_batches(data_dir)

    torch.manual_seed(0)
    init = MLP()
    init_state = {k: v.detach().clone() for k, v in init.named_parameters()}

    # 1. one forward/backward on batch 0 with the initial weights
    m = copy.deepcopy(init)
    logits = m(to_input(x[0]))
    loss = nn.CrossEntropyLoss()(logits, y[0].long())
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in m.named_parameters()}

    # 2. SGD, 3. AdamW, each from fresh copies of the initial weights
    sgd_losses, sgd_model = train_curve(
        init, lambda p: torch.optim.SGD(p, **SGD_HP), x, y)
    adamw_losses, adamw_model = train_curve(
        init, lambda p: torch.optim.AdamW(p, **ADAMW_HP), x, y)

    tensors = []
    for k in PARAMS:
        tensors.append(("init." + k, init_state[k]))
    tensors.append(("x", x))
    tensors.append(("y", y))
    tensors.append(("step1.logits", logits.detach()))
    tensors.append(("step1.loss", loss.detach().reshape(1)))
    for k in PARAMS:
        tensors.append(("step1.grad." + k, grads[k]))
    tensors.append(("sgd.losses", sgd_losses))
    tensors.append(("sgd.final.fc3.weight", sgd_model.fc3.weight.detach()))
    tensors.append(("sgd.final.fc3.bias", sgd_model.fc3.bias.detach()))
    tensors.append(("adamw.losses", adamw_losses))
    tensors.append(("adamw.final.fc3.weight", adamw_model.fc3.weight.detach()))
    tensors.append(("adamw.final.fc3.bias", adamw_model.fc3.bias.detach()))

    metadata = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "model": "mlp 784-256-256-10 (fc1,relu,fc2,relu,fc3), CrossEntropyLoss mean",
        "init": "torch.manual_seed(0); nn.Linear default init, order fc1,fc2,fc3",
        "data": "fashion-mnist train images/labels [0, steps*batch) in file order; "
                "input = x/255 as float32",
        "batch": str(B),
        "steps": str(S),
        "sgd.lr": repr(SGD_HP["lr"]),
        "sgd.momentum": repr(SGD_HP["momentum"]),
        "sgd.weight_decay": repr(SGD_HP["weight_decay"]),
        "adamw.lr": repr(ADAMW_HP["lr"]),
        "adamw.beta1": repr(ADAMW_HP["betas"][0]),
        "adamw.beta2": repr(ADAMW_HP["betas"][1]),
        "adamw.eps": repr(ADAMW_HP["eps"]),
        "adamw.weight_decay": repr(ADAMW_HP["weight_decay"]),
    }
    write_safetensors(out, tensors, metadata)

    print("wrote %s (%d bytes)" % (out, os.path.getsize(out)))
    print("step1.loss   = %.9g" % loss.item())
    print("sgd.losses   = " + " ".join("%.6f" % v for v in sgd_losses.tolist()))
    print("adamw.losses = " + " ".join("%.6f" % v for v in adamw_losses.tolist()))


# --------------------------------------------------------------------------
# --check: independent reader + recomputation
# --------------------------------------------------------------------------

EXPECTED = {
    "init.fc1.weight": ("F32", [D_H, D_IN]),
    "init.fc1.bias": ("F32", [D_H]),
    "init.fc2.weight": ("F32", [D_H, D_H]),
    "init.fc2.bias": ("F32", [D_H]),
    "init.fc3.weight": ("F32", [D_OUT, D_H]),
    "init.fc3.bias": ("F32", [D_OUT]),
    "x": ("U8", [S, B, D_IN]),
    "y": ("I32", [S, B]),
    "step1.logits": ("F32", [B, D_OUT]),
    "step1.loss": ("F32", [1]),
    "step1.grad.fc1.weight": ("F32", [D_H, D_IN]),
    "step1.grad.fc1.bias": ("F32", [D_H]),
    "step1.grad.fc2.weight": ("F32", [D_H, D_H]),
    "step1.grad.fc2.bias": ("F32", [D_H]),
    "step1.grad.fc3.weight": ("F32", [D_OUT, D_H]),
    "step1.grad.fc3.bias": ("F32", [D_OUT]),
    "sgd.losses": ("F32", [S]),
    "sgd.final.fc3.weight": ("F32", [D_OUT, D_H]),
    "sgd.final.fc3.bias": ("F32", [D_OUT]),
    "adamw.losses": ("F32", [S]),
    "adamw.final.fc3.weight": ("F32", [D_OUT, D_H]),
    "adamw.final.fc3.bias": ("F32", [D_OUT]),
}
ESIZE = {"F32": 4, "I32": 4, "U8": 1}
SFMT = {"F32": "f", "I32": "i", "U8": "B"}


class CheckError(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise CheckError(msg)


def read_safetensors(path):
    """Minimal reader: returns (header dict in file order, metadata, {name: list})."""
    with open(path, "rb") as f:
        blob = f.read()
    need(len(blob) >= 8, "file shorter than 8 bytes")
    (n,) = struct.unpack_from("<Q", blob, 0)
    need(8 + n <= len(blob), "header length %d beyond file" % n)
    need(n % 8 == 0, "header length %d not a multiple of 8" % n)
    raw = blob[8:8 + n]
    text = raw.decode("utf-8")
    need(text.rstrip(" ") == text.strip(), "header has non-space padding")
    need(text.startswith("{"), "header does not start with '{'")
    header = json.loads(text)
    meta = header.pop("__metadata__", None)
    need(isinstance(meta, dict), "missing __metadata__")
    for k, v in meta.items():
        need(isinstance(k, str) and isinstance(v, str), "metadata %r not str->str" % k)
    data = blob[8 + n:]
    values = {}
    expect_off = 0
    for name, e in header.items():
        need(set(e) == {"dtype", "shape", "data_offsets"}, "%s: bad entry keys" % name)
        dt, shape, (b, end) = e["dtype"], e["shape"], e["data_offsets"]
        need(dt in ESIZE, "%s: unknown dtype %s" % (name, dt))
        need(b == expect_off, "%s: begins at %d, expected %d (not contiguous)" % (name, b, expect_off))
        numel = 1
        for d in shape:
            numel *= d
        need(end - b == numel * ESIZE[dt], "%s: %d bytes for shape %s %s" % (name, end - b, shape, dt))
        need(b % ESIZE[dt] == 0, "%s: misaligned offset %d" % (name, b))
        values[name] = list(struct.unpack_from("<%d%s" % (numel, SFMT[dt]), data, b))
        expect_off = end
    need(expect_off == len(data), "data section %d bytes, tensors cover %d" % (len(data), expect_off))
    return header, meta, values


def as_tensor(header, values, name, dtype=torch.float32):
    return torch.tensor(values[name], dtype=dtype).reshape(header[name]["shape"])


def loss_and_grads(P, xb, yb):
    params = {k: P[k].detach().clone().requires_grad_(True) for k in PARAMS}
    h = F.relu(F.linear(xb.to(torch.float32) / 255.0, params["fc1.weight"], params["fc1.bias"]))
    h = F.relu(F.linear(h, params["fc2.weight"], params["fc2.bias"]))
    loss = F.cross_entropy(F.linear(h, params["fc3.weight"], params["fc3.bias"]), yb.long())
    loss.backward()
    return loss.detach(), {k: params[k].grad for k in PARAMS}


def manual_sgd(W, x, y):
    """g += wd*p; buf = g (first step) else momentum*buf + g; p -= lr*buf."""
    lr, mom, wd = SGD_HP["lr"], SGD_HP["momentum"], SGD_HP["weight_decay"]
    P = {k: W[k].clone() for k in PARAMS}
    buf = {}
    losses = []
    for s in range(S):
        loss, G = loss_and_grads(P, x[s], y[s])
        losses.append(loss)
        for k in PARAMS:
            g = G[k] + wd * P[k]
            buf[k] = g.clone() if s == 0 else mom * buf[k] + g
            P[k] = P[k] - lr * buf[k]
    return P["fc3.weight"], P["fc3.bias"], torch.stack(losses)


def manual_adamw(W, x, y):
    """p *= 1-lr*wd; m,v EMA; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)."""
    lr, (b1, b2), eps, wd = (ADAMW_HP["lr"], ADAMW_HP["betas"], ADAMW_HP["eps"],
                             ADAMW_HP["weight_decay"])
    P = {k: W[k].clone() for k in PARAMS}
    m = {k: torch.zeros_like(W[k]) for k in PARAMS}
    v = {k: torch.zeros_like(W[k]) for k in PARAMS}
    losses = []
    for s in range(S):
        t = s + 1
        loss, G = loss_and_grads(P, x[s], y[s])
        losses.append(loss)
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        for k in PARAMS:
            P[k] = P[k] * (1 - lr * wd)
            m[k] = b1 * m[k] + (1 - b1) * G[k]
            v[k] = b2 * v[k] + (1 - b2) * G[k] * G[k]
            P[k] = P[k] - (lr / bc1) * m[k] / (v[k].sqrt() / math.sqrt(bc2) + eps)
    return P["fc3.weight"], P["fc3.bias"], torch.stack(losses)


def check(path, data_dir):
    setup_torch()
    header, meta, v = read_safetensors(path)

    # shapes / dtypes / names / order
    need(list(header) == list(EXPECTED), "tensor names/order differ: %s" % list(header))
    for name, (dt, shape) in EXPECTED.items():
        need(header[name]["dtype"] == dt, "%s: dtype %s != %s" % (name, header[name]["dtype"], dt))
        need(header[name]["shape"] == shape, "%s: shape %s != %s" % (name, header[name]["shape"], shape))
    for k in ["generator", "torch_version", "batch", "steps", "sgd.lr", "sgd.momentum",
              "sgd.weight_decay", "adamw.lr", "adamw.beta1", "adamw.beta2",
              "adamw.eps", "adamw.weight_decay"]:
        need(k in meta, "metadata key %s missing" % k)
    need(meta["batch"] == str(B) and meta["steps"] == str(S), "batch/steps metadata")
    need(meta["generator"] == GENERATOR, "generator metadata")
    print("header ok: %d tensors, data contiguous, %d bytes" % (len(header), os.path.getsize(path)))

    # data matches the dataset files
    x_ref, y_ref = load_batches(data_dir)
    x = as_tensor(header, v, "x", torch.uint8)
    y = as_tensor(header, v, "y", torch.int32)
    need(torch.equal(x, x_ref), "x differs from dataset")
    need(torch.equal(y, y_ref), "y differs from dataset")
    need(int(y.min()) >= 0 and int(y.max()) <= 9, "labels out of range")

    # initial weights match torch.manual_seed(0) + default init
    torch.manual_seed(0)
    fresh = MLP()
    W = {k: as_tensor(header, v, "init." + k) for k in PARAMS}
    for k, p in fresh.named_parameters():
        need(torch.equal(p.detach(), W[k]), "init.%s differs from seed-0 init" % k)

    # recompute step 1 with plain functional ops from the stored weights
    params = {k: W[k].clone().requires_grad_(True) for k in PARAMS}
    xin = x[0].to(torch.float32) / 255.0
    h = F.relu(F.linear(xin, params["fc1.weight"], params["fc1.bias"]))
    h = F.relu(F.linear(h, params["fc2.weight"], params["fc2.bias"]))
    logits = F.linear(h, params["fc3.weight"], params["fc3.bias"])
    loss = F.cross_entropy(logits, y[0].long())
    loss.backward()
    stored_loss = as_tensor(header, v, "step1.loss")
    need(torch.equal(loss.detach().reshape(1), stored_loss),
         "step1.loss %r != recomputed %r" % (stored_loss.item(), loss.item()))
    need(torch.equal(logits.detach(), as_tensor(header, v, "step1.logits")), "step1.logits differ")
    for k in PARAMS:
        need(torch.equal(params[k].grad, as_tensor(header, v, "step1.grad." + k)),
             "step1.grad.%s differs" % k)

    # float64 cross-check of the loss (independent of float32 kernels)
    xd = xin.double()
    hd = torch.relu(xd @ W["fc1.weight"].double().T + W["fc1.bias"].double())
    hd = torch.relu(hd @ W["fc2.weight"].double().T + W["fc2.bias"].double())
    ld = hd @ W["fc3.weight"].double().T + W["fc3.bias"].double()
    lse = torch.logsumexp(ld, dim=1)
    loss64 = (lse - ld.gather(1, y[0].long().reshape(-1, 1)).reshape(-1)).mean().item()
    need(abs(loss64 - stored_loss.item()) < 1e-5, "float64 loss %r vs %r" % (loss64, stored_loss.item()))

    # loss curves start at the step-1 loss and are finite
    sgd_l = as_tensor(header, v, "sgd.losses")
    adamw_l = as_tensor(header, v, "adamw.losses")
    need(sgd_l[0] == stored_loss[0] and adamw_l[0] == stored_loss[0], "curves do not start at step1.loss")
    need(all(math.isfinite(t) for t in sgd_l.tolist() + adamw_l.tolist()), "non-finite loss")

    # replay both optimizers with hand-written update rules (float32) from the
    # stored init weights and data; this documents the exact semantics the C
    # optimizers must match (PyTorch 1.13 SGD / AdamW, no dampening/nesterov,
    # no amsgrad).
    for tag, final_w, final_b, curve in (("sgd",) + manual_sgd(W, x, y),
                                         ("adamw",) + manual_adamw(W, x, y)):
        ref_l = as_tensor(header, v, tag + ".losses")
        dl = (curve - ref_l).abs().max().item()
        dw = (final_w - as_tensor(header, v, tag + ".final.fc3.weight")).abs().max().item()
        db = (final_b - as_tensor(header, v, tag + ".final.fc3.bias")).abs().max().item()
        print("%-5s manual replay: max|dloss|=%.3g max|dW3|=%.3g max|db3|=%.3g" % (tag, dl, dw, db))
        need(dl < 1e-5 and dw < 1e-5 and db < 1e-5, "%s manual replay mismatch" % tag)

    print("step1.loss   = %.9g (recomputed %.9g, float64 %.9g)" % (stored_loss.item(), loss.item(), loss64))
    print("sgd.losses   = " + " ".join("%.6f" % t for t in sgd_l.tolist()))
    print("adamw.losses = " + " ".join("%.6f" % t for t in adamw_l.tolist()))
    print("header keys  = " + json.dumps(["__metadata__"] + list(header)))
    print("metadata     = " + json.dumps(meta, indent=None))
    print("check OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="verify an existing file")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--data-dir", default=DEFAULT_DATA)
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
