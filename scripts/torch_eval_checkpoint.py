#!/usr/bin/python3
"""Evaluates a qat checkpoint (FP32 or quantized) in PyTorch, reading it with
nothing but json, struct and torch: a check that docs/checkpoints.md says
enough for another framework to use qat's files.

    /usr/bin/python3 scripts/torch_eval_checkpoint.py runs/mlp-ptq/model.safetensors

Prints the test accuracy on Fashion-MNIST, to compare with `qat eval`.
Needs Debian's python3-torch; nothing in the build or tests depends on it."""
import gzip
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "I32": torch.int32, "U8": torch.uint8}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=DTYPES[info["dtype"]])
        tensors[name] = t.reshape(info["shape"])
    return tensors, meta


def dequantize(tensors, meta):
    """The recipe of docs/checkpoints.md: FP32 weights from codes, scales and
    zero points; input quantizers as (scale, zero point, bits)."""
    weights, inputs = {}, {}
    for name, t in tensors.items():
        if name.endswith(".input_scale"):
            layer = name[: -len(".input_scale")]
            bits = int(meta[layer + ".input_bits"])
            inputs[layer] = (float(t[0]), int(tensors[layer + ".input_zero_point"][0]), bits)
        elif name.endswith(".weight_q"):
            layer = name[: -len(".weight_q")]
            shape = [int(d) for d in meta[layer + ".weight_shape"].split(",")]
            rows, count = shape[0], int(np.prod(shape))
            cols = count // rows
            # "4" or runs of rows at their own widths, "2x16+3x112"
            runs = [(int(b), int(n)) for b, n in (r.split("x") for r in meta[layer + ".weight_bits"].split("+"))] \
                if "x" in meta[layer + ".weight_bits"] else [(int(meta[layer + ".weight_bits"]), rows)]
            q = t.flatten().to(torch.int32)
            if meta.get("format") == "qat-quant-v1":
                bits = runs[0][0]
                if bits <= 4:
                    q = torch.stack([q >> 4, q & 15], 1).flatten()[:count]
            elif len(runs) > 1 or runs[0][0] < 8:
                # qat-quant-v2: one bit stream, most significant bit first,
                # each run of rows at its width
                stream = torch.stack([(q >> (7 - k)) & 1 for k in range(8)], 1).flatten()
                parts, at = [], 0
                for bits, n in runs:
                    weights_of_bits = 1 << torch.arange(bits - 1, -1, -1, dtype=torch.int32)
                    seg = stream[at: at + n * cols * bits].reshape(n * cols, bits)
                    parts.append((seg * weights_of_bits).sum(1))
                    at += n * cols * bits
                q = torch.cat(parts)
            q = q.reshape(rows, cols)
            scale, zp = tensors[layer + ".weight_scale"], tensors[layer + ".weight_zero_point"]
            gran = meta[layer + ".weight_granularity"]
            if gran.startswith("group:"):
                g = int(gran[len("group:"):])
                scale = scale.repeat_interleave(g, 1)[:, : q.shape[1]]
                zp = zp.repeat_interleave(g, 1)[:, : q.shape[1]]
            else:
                scale, zp = scale.reshape(-1, 1), zp.reshape(-1, 1)
            weights[layer + ".weight"] = ((q - zp).float() * scale).reshape(shape)
        elif not name.endswith(("_scale", "_zero_point")):
            weights[name] = t
    return weights, inputs


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    path = sys.argv[1]
    data_dir = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    tensors, meta = load_safetensors(path)
    w, inputs = dequantize(tensors, meta)
    mean, std = float(meta["input_mean"]), float(meta["input_std"])
    images = torch.from_numpy(read_idx(data_dir + "/t10k-images-idx3-ubyte.gz").astype(np.float32))
    labels = torch.from_numpy(read_idx(data_dir + "/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    x = (images / 255.0 - mean) / std

    def quant_input(layer, h):
        if layer not in inputs:
            return h
        scale, zp, bits = inputs[layer]
        return torch.fake_quantize_per_tensor_affine(h, scale, zp, 0, (1 << bits) - 1)

    def linear(layer, h):
        return F.linear(quant_input(layer, h), w[layer + ".weight"], w[layer + ".bias"])

    def conv(layer, h):
        h = F.conv2d(quant_input(layer, h), w[layer + ".weight"], w[layer + ".bias"], padding=1)
        return F.max_pool2d(F.relu(h), 2)

    with torch.no_grad():
        if meta["model"] == "mlp":
            h = x.reshape(-1, 784)
            h = F.relu(linear("fc1", h))
            h = F.relu(linear("fc2", h))
            logits = linear("fc3", h)
        else:
            h = x.reshape(-1, 1, 28, 28)
            h = conv("conv2", conv("conv1", h))
            h = F.relu(linear("fc1", torch.flatten(h, 1)))
            logits = linear("fc2", h)
    acc = (logits.argmax(1) == labels).float().mean().item()
    print(f"test_acc {acc:.4f}  ({meta.get('format')}, {len(labels)} images)")


if __name__ == "__main__":
    main()
