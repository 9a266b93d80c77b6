#!/usr/bin/env python3
"""The FOMO25 baseline's augmentation of one pretraining patch, with Yucca 2.2.6's own
transforms (the version the baseline pins), timed per patch on one core.

What one patch costs in the baseline's DataLoader worker (../shared/design/fomo25.md):
a random 135^3 pre-crop of the preprocessed 1 mm volume in float64, one cubic
`map_coordinates` to the 96^3 patch (always, even when no spatial transform fires) with
elastic deformation, rotation and scaling at the "all" preset's probabilities, a copy of
the spatially augmented patch as the reconstruction target, then the intensity
transforms on the input: additive noise, blur, multiplicative noise, motion ghosting,
Gibbs ringing, low resolution, bias field, gamma.

Yucca's package __init__ pulls in its whole training stack (wandb, lightning, ...); only
its transforms are imported here (numpy, scipy, scikit-image, batchgenerators).

Prints one JSON object: {"baseline_patches_per_s": ..., "patches": ..., "seconds": ...,
"yucca": "2.2.6"}. Exit 2 when Yucca is missing (scripts/install-deps.sh installs it).
"""
import argparse
import json
import os
import sys
import time
import types

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as one of the baseline's workers
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np


def import_transforms():
    try:
        import yucca
    except ImportError:
        print("bench/augment_twin.py: Yucca is not installed in this Python; run scripts/install-deps.sh",
              file=sys.stderr)
        sys.exit(2)
    root = os.path.dirname(yucca.__file__)
    for pkg in ["yucca.functional", "yucca.functional.array_operations", "yucca.modules", "yucca.modules.data",
                "yucca.modules.data.augmentation"]:
        m = types.ModuleType(pkg)
        m.__path__ = [os.path.join(root, *pkg.split(".")[1:])]
        sys.modules.setdefault(pkg, m)
    import importlib
    base = "yucca.modules.data.augmentation.transforms."
    get = lambda mod, cls: getattr(importlib.import_module(base + mod), cls)
    T = types.SimpleNamespace()
    T.Spatial = get("Spatial", "Spatial")
    T.AdditiveNoise = get("Noise", "AdditiveNoise")
    T.MultiplicativeNoise = get("Noise", "MultiplicativeNoise")
    T.Blur = get("Blur", "Blur")
    T.MotionGhosting = get("Ghosting", "MotionGhosting")
    T.GibbsRinging = get("Ringing", "GibbsRinging")
    T.SimulateLowres = get("SimulateLowres", "SimulateLowres")
    T.BiasField = get("BiasField", "BiasField")
    T.Gamma = get("Gamma", "Gamma")
    return T, getattr(yucca, "__version__", "2.2.6")


def phantom(n, rng):
    """A smooth 1 mm 'brain': an ellipsoid of tissue-like intensities on a zero background,
    z-scored over the head and rescaled to [0, 1] as the baseline's preprocessing does."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n)] * 3, indexing="ij")
    r = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 0.85) ** 2
    v = np.where(r < 1, 1.0 + 0.3 * np.sin(7 * x) * np.cos(5 * y) + 0.2 * z, 0.0)
    v += 0.03 * rng.standard_normal(v.shape) * (r < 1)
    v = (v - v.min()) / (v.max() - v.min())
    return v.astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--source", type=int, default=160, help="edge of the 1 mm source volume")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    T, version = import_transforms()
    np.random.seed(a.seed)
    rng = np.random.default_rng(a.seed)
    volume = phantom(a.source, rng)
    p = a.patch
    pre = int(round(p * 1.4))  # the baseline's pre-crop: 135 for 96
    spatial = T.Spatial(patch_size=(p, p, p), crop=True, random_crop=True, order=3, cval="min",
                        p_deform_per_sample=0.33, deform_sigma=(20, 30), deform_alpha=(200, 600),
                        p_rot_per_sample=0.2, p_rot_per_axis=0.66,
                        x_rot_in_degrees=(-30.0, 30.0), y_rot_in_degrees=(-30.0, 30.0), z_rot_in_degrees=(-30.0, 30.0),
                        p_scale_per_sample=0.2, scale_factor=(0.9, 1.1), clip_to_input_range=True, skip_label=True)
    intensity = [
        T.AdditiveNoise(p_per_sample=0.2, mean=(0.0, 0.0), sigma=(1e-4, 1e-3)),
        T.Blur(p_per_sample=0.2, p_per_channel=0.5, sigma=(0.0, 1.0)),
        T.MultiplicativeNoise(p_per_sample=0.2, mean=(0.0, 0.0), sigma=(1e-4, 1e-3)),
        T.MotionGhosting(p_per_sample=0.2, alpha=(0.85, 0.95), num_reps=(2, 11), axes=(0, 3)),
        T.GibbsRinging(p_per_sample=0.2, cut_freq=(96, 129), axes=(0, 3)),
        T.SimulateLowres(p_per_sample=0.2, p_per_channel=0.5, p_per_axis=0.33, zoom_range=(0.5, 1.0)),
        T.BiasField(p_per_sample=0.33),
        T.Gamma(p_per_sample=0.2, p_invert_image=0.05, gamma_range=(0.5, 2.0)),
    ]

    def one_patch():
        # The pre-crop, in float64 as the baseline's CropPad leaves it.
        starts = [rng.integers(0, max(1, a.source - pre) + 1) for _ in range(3)]
        crop = volume[starts[0]:starts[0] + pre, starts[1]:starts[1] + pre, starts[2]:starts[2] + pre]
        crop = np.pad(crop, [(0, max(0, pre - s)) for s in crop.shape]).astype(np.float64)
        d = {"image": crop[None, None]}
        d = spatial(**d)
        d["label"] = d["image"].copy()  # the reconstruction target
        for t in intensity:
            d = t(**d)
        return d

    one_patch()  # warm-up (imports, FFT plans)
    start = time.perf_counter()
    n = 0
    while True:
        one_patch()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= a.seconds:
            break
    print(json.dumps({"baseline_patches_per_s": n / elapsed, "patches": n, "seconds": elapsed, "yucca": version}))


if __name__ == "__main__":
    main()
