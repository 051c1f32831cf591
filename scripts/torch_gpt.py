#!/usr/bin/python3
"""qat's gpt in PyTorch (docs/gpt.md): the model, its corpus and its metric.

    /usr/bin/python3 scripts/torch_gpt.py --ckpt runs/gpt/model.safetensors --data fortunes:general

loads an FP32 qat gpt checkpoint into `GPT` (whose state-dict names are the
checkpoint's tensor names) and prints the validation bits per character,
computed as `qat eval --ckpt FILE --data fortunes:DOMAIN` computes it: the
same corpus files, entries, split and evaluation windows, the cross-entropy
summed in float64. The two agree to float32 rounding of the logits.

Reads safetensors with struct + json (the safetensors package is not used).
Needs Debian's python3-torch; nothing in the build or tests depends on it.
tests/golden/gen_gpt_golden.py imports this file for the model."""
import argparse
import json
import math
import os
import stat
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------

LN_EPS = 1e-5
INIT_STD = 0.02


class CausalSelfAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        assert width % heads == 0, "width must be a multiple of heads"
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.heads, C // self.heads

        def split_heads(t):  # (B, T, C) -> (B, H, T, D)
            return t.view(B, T, H, D).transpose(1, 2)

        q, k, v = split_heads(self.q(x)), split_heads(self.k(x)), split_heads(self.v(x))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        # Position t attends to positions s <= t only.
        future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        att = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)  # merge the heads back
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, 4 * width)
        self.proj = nn.Linear(4 * width, width)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))  # exact (erf) GELU, PyTorch's default


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, eps=LN_EPS)
        self.attn = CausalSelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width, eps=LN_EPS)
        self.mlp = MLP(width)

    def forward(self, h):
        h = h + self.attn(self.ln1(h))
        return h + self.mlp(self.ln2(h))


class GPT(nn.Module):
    """Byte-level decoder: token + position embeddings, `layers` pre-LayerNorm
    blocks, a final LayerNorm and an untied output head. No dropout.
    Parameters are registered in the checkpoint's tensor order."""

    def __init__(self, layers=4, width=128, heads=4, context=128, vocab=256):
        super().__init__()
        self.layers, self.width, self.heads, self.context, self.vocab = layers, width, heads, context, vocab
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width, eps=LN_EPS)
        self.head = nn.Linear(width, vocab)
        self.init_gpt2()

    @torch.no_grad()
    def init_gpt2(self):
        """GPT-2's initialisation, drawn from torch's RNG in parameter order.
        (qat draws the same distributions from its own Philox streams, so the
        values differ; only the distributions are shared.)"""
        proj_std = INIT_STD / math.sqrt(2 * self.layers)
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
                p.normal_(0.0, proj_std)  # residual-stream writers
            elif name.endswith(".weight") and p.dim() == 2:
                p.normal_(0.0, INIT_STD)  # embeddings and the other linears
            elif ".ln" in name or name.startswith("ln_f."):
                p.fill_(1.0 if name.endswith(".weight") else 0.0)
            else:
                p.zero_()  # linear biases

    def forward(self, x):
        """x: (B, T) byte ids, T <= context. Returns logits (B, T, vocab)."""
        T = x.shape[1]
        h = self.wte(x) + self.wpe.weight[:T]
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))


def gpt_loss(model, x, y):
    """qat's training loss: mean cross-entropy over every position."""
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1).long())


# --------------------------------------------------------------------------
# safetensors (struct + json) and qat checkpoints
# --------------------------------------------------------------------------

ST_DTYPES = {"F32": (torch.float32, 4), "I32": (torch.int32, 4), "U8": (torch.uint8, 1)}


def read_safetensors(path):
    """{name: tensor} in header order, and the metadata."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: not a safetensors file (shorter than 8 bytes)" % path)
    (n,) = struct.unpack_from("<Q", blob, 0)
    if 8 + n > len(blob):
        raise ValueError("%s: not a safetensors file (header length %d beyond the file)" % (path, n))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    body = blob[8 + n:]
    tensors = {}
    for name, e in header.items():
        if e["dtype"] not in ST_DTYPES:
            raise ValueError("%s: tensor %s has dtype %s (this reader knows %s)"
                             % (path, name, e["dtype"], ", ".join(ST_DTYPES)))
        dtype, size = ST_DTYPES[e["dtype"]]
        begin, end = e["data_offsets"]
        numel = math.prod(e["shape"])
        if end - begin != numel * size or end > len(body):
            raise ValueError("%s: tensor %s: data_offsets do not fit shape %s" % (path, name, e["shape"]))
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype) if numel else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(e["shape"])
    return tensors, meta


def write_safetensors(path, tensors, metadata):
    """tensors: (name, tensor) pairs in file order; little-endian, header
    padded with spaces so the data starts 8-byte aligned."""
    names = {torch.float32: "F32", torch.int32: "I32", torch.uint8: "U8"}
    fmts = {torch.float32: "f", torch.int32: "i", torch.uint8: "B"}
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        vals = t.reshape(-1).tolist()
        data = struct.pack("<%d%s" % (len(vals), fmts[t.dtype]), *vals)
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-(8 + len(hjson))) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


GPT_KEYS = ("gpt_layers", "gpt_width", "gpt_heads", "gpt_context", "gpt_vocab")


def load_checkpoint(path):
    """A GPT holding an FP32 qat gpt checkpoint (format qat-fp32-v1)."""
    tensors, meta = read_safetensors(path)
    fmt, kind = meta.get("format"), meta.get("model")
    if fmt != "qat-fp32-v1":
        raise ValueError("%s: format %r: only FP32 checkpoints (qat-fp32-v1) are read here; a quantized one "
                         "(qat-quant-v1) needs its weights dequantized first" % (path, fmt))
    if kind != "gpt":
        raise ValueError("%s: model %r: not a gpt checkpoint" % (path, kind))
    missing = [k for k in GPT_KEYS if k not in meta]
    if missing:
        raise ValueError("%s: metadata field %s is missing" % (path, missing[0]))
    layers, width, heads, context, vocab = (int(meta[k]) for k in GPT_KEYS)
    model = GPT(layers, width, heads, context, vocab)
    want = model.state_dict()
    absent = [k for k in want if k not in tensors]
    if absent:
        raise ValueError("%s: tensor %s is missing (%d of the gpt's %d tensors are)" % (path, absent[0], len(absent),
                                                                                        len(want)))
    extra = [k for k in tensors if k not in want]
    if extra:
        raise ValueError("%s: tensor %s is not a gpt parameter" % (path, extra[0]))
    for name, t in tensors.items():
        if t.dtype != torch.float32 or t.shape != want[name].shape:
            raise ValueError("%s: tensor %s is %s %s, expected F32 %s"
                             % (path, name, t.dtype, list(t.shape), list(want[name].shape)))
    model.load_state_dict(tensors)
    return model.eval(), meta


# --------------------------------------------------------------------------
# The fortunes corpus (datasets/fortunes.c)
# --------------------------------------------------------------------------

FORTUNES_DIR = "/usr/share/games/fortunes"
TECH_FILES = ("computers", "debian", "linux", "linuxcookie", "perl")
VAL_PERMILLE = 100


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def corpus_files(directory):
    """Regular files (links not followed), not hidden, not strfile's .dat
    indexes or Debian's .u8 links, sorted bytewise like strcmp."""
    names = []
    for name in os.listdir(os.fsencode(directory)):
        if name.startswith(b".") or name.endswith((b".dat", b".u8")):
            continue
        if stat.S_ISREG(os.lstat(os.path.join(os.fsencode(directory), name)).st_mode):
            names.append(name)
    return sorted(names)


def select_files(spec, directory):
    if not spec.startswith("fortunes:"):
        raise ValueError("dataset %r: not a fortunes spec (fortunes:tech, :general, :all or :NAME+NAME...)" % spec)
    rest = spec[len("fortunes:"):]
    available = corpus_files(directory)
    tech = [n.encode() for n in TECH_FILES]
    if rest == "tech":
        chosen = tech
    elif rest in ("general", "all"):
        chosen = [n for n in available if rest == "all" or n not in tech]
    else:
        chosen = [n.encode() for n in rest.split("+")]
    for n in chosen:
        if n not in available:
            raise ValueError("%s/%s: not a fortune file of dataset %r" % (directory, n.decode(errors="replace"), spec))
    return sorted(chosen)


def entries(text):
    """A file's entries: the text between lines that hold only "%" (or "%\\r",
    or "%" at the end of the file). Entries that are only whitespace are
    dropped; one without a final newline gets one."""
    out, start, line = [], 0, 0
    while line < len(text):
        nl = text.find(b"\n", line)
        nxt = len(text) if nl < 0 else nl + 1
        body = text[line:nxt if nl < 0 else nl]
        if body in (b"%", b"%\r"):
            out.append(text[start:line])
            start = nxt
        line = nxt
    out.append(text[start:])
    kept = []
    for e in out:
        if not e.strip(b" \t\n\r\v\f"):
            continue
        kept.append(e if e.endswith(b"\n") else e + b"\n")
    return kept


def load_fortunes(spec, directory=None, val_permille=VAL_PERMILLE):
    """(train, val) byte streams: each entry goes to validation when its
    FNV-1a 64 hash mod 1000 < val_permille, and is followed by "%\\n"."""
    if directory is None:
        directory = os.environ.get("QAT_FORTUNES_DIR") or FORTUNES_DIR
    train, val = bytearray(), bytearray()
    for name in select_files(spec, directory):
        with open(os.path.join(os.fsencode(directory), name), "rb") as f:
            for e in entries(f.read()):
                dst = val if fnv1a64(e) % 1000 < val_permille else train
                dst += e + b"%\n"
    return bytes(train), bytes(val)


# --------------------------------------------------------------------------
# Evaluation (qat_text_evaluate)
# --------------------------------------------------------------------------

@torch.no_grad()
def evaluate_bpc(model, text, batch=64):
    """Mean next-byte cross-entropy over `text` in nats and bits, and the
    count of predicted bytes. Window w feeds bytes [w T, w T + T) and
    predicts [w T + 1, w T + T + 1); the last window is padded with zeros,
    which causal attention keeps from the positions that count."""
    T = model.context
    data = torch.tensor(list(text), dtype=torch.long)
    windows = (len(text) - 1 + T - 1) // T if len(text) >= 2 else 0
    total, count = 0.0, 0
    for w0 in range(0, windows, batch):
        ws = range(w0, min(w0 + batch, windows))
        x = torch.zeros(len(ws), T, dtype=torch.long)
        y = torch.zeros(len(ws), T, dtype=torch.long)
        valid = []
        for i, w in enumerate(ws):
            n = min(T, len(text) - 1 - w * T)
            x[i, :n] = data[w * T:w * T + n]
            y[i, :n] = data[w * T + 1:w * T + n + 1]
            valid.append(n)
        # float32 logits as qat computes them; the log-softmax in float64.
        logp = torch.log_softmax(model(x).double(), dim=-1)
        nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        for i, n in enumerate(valid):
            total += nll[i, :n].sum().item()
            count += n
    loss = total / count if count else 0.0
    return loss, loss / math.log(2.0), count


def main():
    ap = argparse.ArgumentParser(description="Evaluate a qat gpt checkpoint in PyTorch (val_bpc as qat eval).")
    ap.add_argument("--ckpt", required=True, help="an FP32 qat gpt checkpoint (model.safetensors)")
    ap.add_argument("--data", required=True, help="fortunes:tech, fortunes:general, fortunes:all, fortunes:A+B")
    ap.add_argument("--data-dir", default=None, help="the fortunes files (default $QAT_FORTUNES_DIR or %s)"
                    % FORTUNES_DIR)
    ap.add_argument("--val-permille", type=int, default=VAL_PERMILLE)
    ap.add_argument("--batch", type=int, default=64, help="windows per forward pass (does not change the result)")
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    try:
        model, meta = load_checkpoint(a.ckpt)
        _, val = load_fortunes(a.data, a.data_dir, a.val_permille)
    except (OSError, ValueError) as e:
        print("torch_gpt: %s" % e, file=sys.stderr)
        return 1
    loss, bpc, count = evaluate_bpc(model, val, a.batch)
    print("val_bpc %.6f  val_loss %.6f  (%d bytes predicted, %s, gpt %s)"
          % (bpc, loss, count, a.data, "/".join(meta[k] for k in GPT_KEYS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
