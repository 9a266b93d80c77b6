#!/usr/bin/env python3
"""Writes unet_w4_s2.safetensors: the parameter tensors of unet(width = 4, stages = 2)
(convs = 2, one input channel), named as `gyrus export` names them, all zeros, for the
golden tests of `init = weights(...)`. Run with any Python 3 (no packages needed):

    python3 tests/golden/data/weights/make_weights.py
"""
import json
import pathlib
import struct

shapes = []
cin = 1
for s in range(2):
    w = 4 << s
    for c in range(2):
        block = f"stage{s}.conv{c}."
        shapes += [(block + "conv.weight", [w, cin, 3, 3, 3]), (block + "norm.weight", [w]), (block + "norm.bias", [w])]
        cin = w
header, at = {}, 0
for name, shape in shapes:
    n = 4
    for d in shape:
        n *= d
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [at, at + n]}
    at += n
header["__metadata__"] = {"format": "gyrus-encoder"}
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
out = pathlib.Path(__file__).with_name("unet_w4_s2.safetensors")
out.write_bytes(struct.pack("<Q", len(text)) + text + bytes(at))
print(f"wrote {out} ({len(shapes)} tensors, {at} bytes of data)")
