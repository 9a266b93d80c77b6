#!/usr/bin/python3
"""Acceptance: `gyrus inspect --json` against nibabel on every NIfTI volume under a folder.

    /usr/bin/python3 tests/io/inspect_vs_nibabel.py build/bin/gyrus ../shared/data/real-mri [--markdown]

For each file: shape (compared up to axis order, and exactly against nibabel's
as_closest_canonical), spacing (as a multiset, and in RAS order), orientation code
(aff2axcodes), and min/max/mean/std of the scaled values (relative tolerance 1e-5;
nibabel computes in float64, gyrus stores float32 values and sums in double). Volume 0
of 4-D files. Exits 1 if any file disagrees.
"""
import json
import pathlib
import subprocess
import sys

import nibabel as nib
import numpy as np


def close(a, b, rel=1e-5, abs_=1e-6):
    return abs(a - b) <= max(abs_, rel * abs(b))


def reference(path):
    img = nib.load(str(path))
    vol = img if len(img.shape) == 3 else img.slicer[..., 0]
    ras = nib.as_closest_canonical(vol)
    data = np.asarray(ras.get_fdata(dtype=np.float64))
    ornt = nib.orientations.io_orientation(vol.affine)
    zooms = img.header.get_zooms()[:3]
    spacing = [0.0] * 3
    for axis in range(3):
        spacing[int(ornt[axis, 0])] = float(zooms[axis])
    return {
        'file_shape': list(img.shape[:3]),
        'shape': list(data.shape),
        'spacing': spacing,
        'orientation': ''.join(nib.aff2axcodes(img.affine)),
        'slope': float(img.dataobj.slope),
        'inter': float(img.dataobj.inter),
        'min': float(data.min()), 'max': float(data.max()),
        'mean': float(data.mean()), 'std': float(data.std()),
    }


def main():
    gyrus, root = sys.argv[1], pathlib.Path(sys.argv[2])
    markdown = '--markdown' in sys.argv
    files = sorted(p for p in root.rglob('*') if p.name.endswith(('.nii', '.nii.gz')))
    failures = 0
    if markdown:
        print('| file | shape gyrus (RAS) / nibabel (file) | spacing | orient. | slope, inter | '
              'min | max | mean gyrus / nibabel | std gyrus / nibabel | agree |')
        print('|---|---|---|---|---|---|---|---|---|---|')
    for path in files:
        rel = path.relative_to(root)
        run = subprocess.run([gyrus, 'inspect', str(path), '--json'], capture_output=True, text=True)
        if run.returncode != 0:
            print(f'FAIL {rel}: exit {run.returncode}: {run.stderr.strip()}')
            failures += 1
            continue
        got = json.loads(run.stdout)
        ref = reference(path)
        problems = []
        if sorted(got['shape']) != sorted(ref['file_shape']) or got['shape'] != ref['shape']:
            problems.append(f"shape {got['shape']} vs {ref['shape']} (file {ref['file_shape']})")
        if not all(close(a, b, 1e-6) for a, b in zip(got['spacing'], ref['spacing'])):
            problems.append(f"spacing {got['spacing']} vs {ref['spacing']}")
        if got['orientation'] != ref['orientation']:
            problems.append(f"orientation {got['orientation']} vs {ref['orientation']}")
        if not (close(got['slope'], ref['slope'], 1e-9) and close(got['inter'], ref['inter'], 1e-9)):
            problems.append(f"scaling {got['slope']},{got['inter']} vs {ref['slope']},{ref['inter']}")
        for key in ('min', 'max', 'mean', 'std'):
            if not close(got[key], ref[key]):
                problems.append(f'{key} {got[key]!r} vs {ref[key]!r}')
        failures += bool(problems)
        if markdown:
            sh = 'x'.join(map(str, got['shape'])) + ' / ' + 'x'.join(map(str, ref['file_shape']))
            sp = 'x'.join(f'{v:g}' for v in got['spacing'])
            print(f"| `{rel}` | {sh} | {sp} | {got['orientation']} | {got['slope']:.6g}, {got['inter']:.3g} | "
                  f"{got['min']:.6g} | {got['max']:.6g} | {got['mean']:.7g} / {ref['mean']:.7g} | "
                  f"{got['std']:.7g} / {ref['std']:.7g} | {'yes' if not problems else 'NO: ' + '; '.join(problems)} |")
        else:
            print(('ok   ' if not problems else 'FAIL ') + str(rel) + ('' if not problems else ': ' + '; '.join(problems)))
    print(f'{len(files) - failures} of {len(files)} files agree with nibabel {nib.__version__}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
