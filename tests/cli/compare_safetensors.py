#!/usr/bin/env python3
"""Compares two safetensors files tensor by tensor (standard library only).

    python3 compare_safetensors.py A.safetensors B.safetensors TOLERANCE

Prints the largest absolute difference relative to the largest magnitude of each tensor
(max |a - b| / max(max |a|, 1e-12)) and exits 1 when a tensor is missing, has another
shape, or differs by more than TOLERANCE in that measure.
"""
import array
import json
import struct
import sys


def load(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {t['dtype']}, not F32")
        begin, end = t["data_offsets"]
        values = array.array("f")
        values.frombytes(data[8 + n + begin:8 + n + end])
        if sys.byteorder != "little":
            values.byteswap()
        out[name] = (t["shape"], values)
    return out


a, b, tolerance = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
if sorted(a) != sorted(b):
    sys.exit(f"the tensors differ: {sorted(set(a) ^ set(b))}")
worst = 0.0
for name in sorted(a):
    (sa, va), (sb, vb) = a[name], b[name]
    if sa != sb:
        sys.exit(f"{name}: shape {sa} against {sb}")
    scale = max(max(abs(x) for x in va), 1e-12)
    diff = max(abs(x - y) for x, y in zip(va, vb)) / scale
    worst = max(worst, diff)
print(f"tensors {len(a)} max relative difference {worst:.3g}")
sys.exit(0 if worst <= tolerance else 1)
