"""Checks shared by the CUDA tests (cuda_test.sh): a `gyrus run --json` output whose
stages ran on the device under test, with finite metrics, and the stages' histories."""
import json
import math
import os
import re
import sys

__all__ = ["json", "math", "os", "re", "sys", "load_run", "history", "rel"]


def load_run(path, store, device, statuses=("ran",)):
    """The run's JSON and its metrics by (stage, name); asserts every stage has one of
    `statuses`, ran on `device` (its kind: cuda or cpu) as its result.json records,
    names its GPU when on one, and that every metric is finite (NaN is stored as null)."""
    d = json.load(open(path))
    assert d["ok"], f"{path}: ok is false: {d}"
    for s in d["stages"]:
        name = s["name"]
        assert s["status"] in statuses, f"stage {name}: status {s['status']}, want one of {statuses}"
        assert s["device"].split(":")[0] == device.split(":")[0], f"stage {name} ran on {s['device']}, not {device}"
        r = json.load(open(os.path.join(store, "stages", s["hash"], "result.json")))
        assert r["device"] == s["device"], (r["device"], s["device"])
        if device.startswith("cuda"):
            assert r.get("device_name"), f"result.json of {name} names no GPU: {r}"
    for m in d["metrics"]:
        v = m["value"]
        assert v is not None and math.isfinite(v), f"{m['stage']}.{m['name']} is {v}"
    return d, {(m["stage"], m["name"]): m["value"] for m in d["metrics"]}


def history(store, d, stage="base"):
    """The stage's history.jsonl lines, parsed."""
    h = next(s["hash"] for s in d["stages"] if s["name"] == stage)
    with open(os.path.join(store, "stages", h, "history.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def rel(a, b):
    """Relative difference of two numbers."""
    return abs(a - b) / max(abs(a), abs(b), 1e-12)
