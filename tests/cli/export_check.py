#!/usr/bin/env python3
"""Loads a `gyrus export` safetensors file in PyTorch and checks that the PyTorch twin of
gyrus's U-Net encoder (bench/train_twin.py) reproduces the sidecar's reference features.

    python export_check.py ENCODER.safetensors [--also PYTORCH_OUT.safetensors]

The safetensors file is read with the format's specification only (8-byte length, JSON
header, raw little-endian data), so no `safetensors` package is needed. With --also, the
twin's state dict is written to that file under an `encoder.` prefix plus a decoder's
tensors (a whole model, as PyTorch users save them), for `init = weights(...)`.
Exit 0 when every pooled feature matches to 1e-4 (relative to its size, at least 1).
"""
import json
import math
import pathlib
import struct
import sys
import types

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
import train_twin  # noqa: E402  (the twin of gyrus's encoder)

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16}


def load(path):
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=DTYPES[info["dtype"]])
        tensors[name] = t.reshape(info["shape"]).to(torch.float32)
    return tensors, header.get("__metadata__", {})


def save(path, tensors):
    header, chunks, at = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        chunks.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def main():
    path = sys.argv[1]
    tensors, meta = load(path)
    sidecar = json.loads(pathlib.Path(path).with_suffix(".json").read_text())
    assert meta.get("format") == "gyrus-encoder", meta
    enc = sidecar["encoder"]
    if enc["kind"] != "unet":
        sys.exit("only the U-Net has a PyTorch twin here")
    u = enc["unet"]
    args = types.SimpleNamespace(in_channels=u["in_channels"], width=u["width"], stages=u["stages"],
                                 convs_per_stage=u["convs_per_stage"], max_width=u["max_width"])
    net = train_twin.UNetEncoder(args)
    missing, unexpected = net.load_state_dict(tensors, strict=True), None
    del missing, unexpected
    e, c = sidecar["reference"]["edge"], sidecar["in_channels"]
    r = torch.arange(e, dtype=torch.float64)
    x = (0.31 * r.view(1, 1, 1, 1, e) + 0.17 * r.view(1, 1, 1, e, 1) + 0.07 * r.view(1, 1, e, 1, 1)
         + 0.5 * torch.arange(c, dtype=torch.float64).view(1, c, 1, 1, 1))
    x = torch.sin(x).to(torch.float32)
    with torch.no_grad():
        deepest = net(x)[-1]
        pooled = torch.cat([deepest.mean(dim=(2, 3, 4)), deepest.amax(dim=(2, 3, 4))], 1)[0].tolist()
    want = sidecar["reference"]["pooled"]
    assert len(pooled) == len(want), (len(pooled), len(want))
    worst = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(pooled, want))
    print(f"{len(tensors)} tensors, {len(want)} pooled features; largest difference {worst:.3g}")
    if not worst <= 1e-4 or any(math.isnan(v) for v in pooled):
        sys.exit("the PyTorch twin does not reproduce gyrus's features")
    if len(sys.argv) == 4 and sys.argv[2] == "--also":
        whole = {"encoder." + k: v for k, v in net.state_dict().items()}
        whole["decoder.head.weight"] = torch.zeros(1, u["width"], 1, 1, 1)
        save(sys.argv[3], whole)
        print(f"wrote {sys.argv[3]}")


main()
