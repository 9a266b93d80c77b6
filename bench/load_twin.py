#!/usr/bin/env python3
"""The NIfTI loading of `gyrus_runtime_bench load`, written with nibabel + scipy as a
Python pipeline would (Yucca and the FOMO25 baseline preprocess this way): for every
`*/t1.nii.gz` under ROOT, read it (nibabel, float32), resample it to 1 mm isotropic
(scipy.ndimage.zoom, linear, as gyrus's resample(1mm)), crop or pad the centre to
64^3, and z-score the non-zero (brain) voxels. One process, one thread (numpy and
scipy's zoom are single-threaded here).

    load_twin.py ROOT [SIDE=64]

Prints one JSON object: volumes, seconds, volumes_per_second, and the per-volume means
read_ms, resample_ms, crop_zscore_ms.
"""
import glob
import json
import os
import sys
import time

import nibabel as nib
import numpy as np
from scipy import ndimage


def centre_crop_or_pad(x, side):
    out = np.zeros((side, side, side), dtype=x.dtype)
    src, dst = [], []
    for n in x.shape:
        if n >= side:
            a = (n - side) // 2
            src.append(slice(a, a + side))
            dst.append(slice(0, side))
        else:
            a = (side - n) // 2
            src.append(slice(0, n))
            dst.append(slice(a, a + n))
    out[tuple(dst)] = x[tuple(src)]
    return out


def zscore_nonzero(x):
    brain = x != 0
    if brain.any():
        m, s = x[brain].mean(), x[brain].std()
        x = np.where(brain, (x - m) / (s if s > 0 else 1.0), 0.0).astype(np.float32)
    return x


def main():
    root = sys.argv[1]
    side = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    files = sorted(glob.glob(os.path.join(root, "*", "t1.nii.gz")))
    if not files:
        sys.exit(f"load_twin.py: no */t1.nii.gz under {root}")
    read = resample = rest = 0.0
    start = time.perf_counter()
    for f in files:
        t0 = time.perf_counter()
        img = nib.load(f)
        x = np.asarray(img.dataobj, dtype=np.float32)
        t1 = time.perf_counter()
        zooms = img.header.get_zooms()[:3]
        if any(abs(z - 1.0) > 1e-6 for z in zooms):
            x = ndimage.zoom(x, zooms, order=1)
        t2 = time.perf_counter()
        x = zscore_nonzero(centre_crop_or_pad(x, side))
        t3 = time.perf_counter()
        read += t1 - t0
        resample += t2 - t1
        rest += t3 - t2
    seconds = time.perf_counter() - start
    n = len(files)
    print(json.dumps({"volumes": n, "seconds": seconds, "volumes_per_second": n / seconds,
                      "read_ms": 1000 * read / n, "resample_ms": 1000 * resample / n,
                      "crop_zscore_ms": 1000 * rest / n}))


if __name__ == "__main__":
    main()
