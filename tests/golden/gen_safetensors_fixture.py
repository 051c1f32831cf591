#!/usr/bin/env python3
"""Writes tests/golden/fixture.safetensors with nothing but the standard library.

The file is laid out the way Hugging Face's reference writer lays it out
(safetensors/src/tensor.rs, `prepare`): compact JSON header with
"__metadata__" first, tensors sorted by descending dtype (in the reference
Dtype enum order) and then by name, header padded with spaces to a multiple
of 8 bytes, data contiguous. qat's own writer keeps insertion order instead,
so reading this file checks that qat's reader does not depend on its
writer's habits.

    gen_safetensors_fixture.py [OUT]         write the fixture (default: next
                                             to this script)
    gen_safetensors_fixture.py --check FILE  parse FILE with the independent
                                             reader below and print its
                                             contents (e.g. a file qat wrote)

The expected values are repeated in tests/test_safetensors.c; change both
together.
"""

import json
import os
import struct
import sys

# Reference Dtype enum order (serialisation sorts by it, descending), with
# element sizes and struct codes (None: no struct code, bytes given as-is).
DTYPES = [
    ("BOOL", 1, "?"), ("U8", 1, "B"), ("I8", 1, "b"), ("F8_E5M2", 1, None),
    ("F8_E4M3", 1, None), ("I16", 2, "h"), ("U16", 2, "H"), ("F16", 2, "e"),
    ("BF16", 2, None), ("I32", 4, "i"), ("U32", 4, "I"), ("F32", 4, "f"),
    ("F64", 8, "d"), ("I64", 8, "q"), ("U64", 8, "Q"),
]
ORDER = {name: i for i, (name, _, _) in enumerate(DTYPES)}
SIZE = {name: size for name, size, _ in DTYPES}
CODE = {name: code for name, _, code in DTYPES}


def bf16_bytes(values):
    # bfloat16 is the top half of a float32; these values are exact in it.
    out = b""
    for v in values:
        bits = struct.unpack("<I", struct.pack("<f", v))[0]
        assert bits & 0xFFFF == 0, v
        out += struct.pack("<H", bits >> 16)
    return out


def pack(dtype, values):
    if dtype == "BF16":
        return bf16_bytes(values)
    return struct.pack("<%d%s" % (len(values), CODE[dtype]), *values)


# name -> (dtype, shape, raw bytes)
TENSORS = {
    "layer1.weight": ("F32", [2, 3], pack("F32", [1.5, -2.25, 0.0, 3.140625, -1e-3, 65504.0])),
    "layer1.bias": ("I32", [3], pack("I32", [-1, 0, 2147483647])),
    "step_counts": ("I64", [2, 2], pack("I64", [-(1 << 40), 1, 2, 1 << 62])),
    "mask": ("U8", [5], pack("U8", [0, 1, 2, 254, 255])),
    "codes": ("I8", [1, 1, 3], pack("I8", [-128, 0, 127])),
    "half": ("F16", [2], pack("F16", [1.0, -2.0])),
    "brain": ("BF16", [2], pack("BF16", [1.0, -0.5])),
    "scale": ("F64", [], pack("F64", [2.5])),
    "empty": ("F32", [0, 3], b""),
}
METADATA = {
    "format": "pt",
    "producer": "gen_safetensors_fixture.py",
    "note": "caf\u00e9 \u2713 \"quoted\" back\\slash",
}


def serialize(tensors, metadata):
    names = sorted(tensors, key=lambda n: (-ORDER[tensors[n][0]], n))
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    data = b""
    for name in names:
        dtype, shape, raw = tensors[name]
        count = 1
        for d in shape:
            count *= d
        assert len(raw) == count * SIZE[dtype], name
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def parse(blob):
    """An independent reader: returns (metadata, {name: (dtype, shape, raw)})."""
    (n,) = struct.unpack_from("<Q", blob, 0)
    if 8 + n > len(blob):
        raise ValueError("header length %d runs past the end of the file" % n)
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None)
    data = blob[8 + n:]
    tensors, spans = {}, []
    for name, info in header.items():
        begin, end = info["data_offsets"]
        count = 1
        for d in info["shape"]:
            count *= d
        if end - begin != count * SIZE[info["dtype"]]:
            raise ValueError("%s: shape does not match data_offsets" % name)
        spans.append((begin, end, name))
        tensors[name] = (info["dtype"], info["shape"], data[begin:end])
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            raise ValueError("%s: data_offsets leave a gap or overlap" % name)
        pos = end
    if pos != len(data):
        raise ValueError("data section has %d unaccounted bytes" % (len(data) - pos))
    return metadata, tensors


def show(path):
    with open(path, "rb") as f:
        metadata, tensors = parse(f.read())
    print("metadata:", metadata)
    for name, (dtype, shape, raw) in tensors.items():
        code = CODE[dtype]
        if code and dtype != "BF16":
            values = list(struct.unpack("<%d%s" % (len(raw) // SIZE[dtype], code), raw))
        else:
            values = raw.hex()
        print("%s %s %s %s" % (name, dtype, shape, values))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        show(sys.argv[2])
        return
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fixture.safetensors")
    blob = serialize(TENSORS, METADATA)
    metadata, tensors = parse(blob)
    assert metadata == METADATA and tensors == TENSORS
    with open(out, "wb") as f:
        f.write(blob)
    print("wrote %s (%d bytes)" % (out, len(blob)))


if __name__ == "__main__":
    main()
