"""Bounded image decoding: peak memory and time of ImageFolder loading one very large image.

    python benchmarks/bench_decode.py                       # 10,000 x 10,000 PNG and JPEG at 32^2
    python benchmarks/bench_decode.py --side 4000 --size 64
    python benchmarks/bench_decode.py --quick               # seconds: a 1,500^2 pair (used by the tests)

Writes one PNG and one JPEG of ``--side`` x ``--side`` pixels (a smooth pattern), then loads each through
``ImageFolder(...).load([0], size)`` in a fresh process, once without a pixel limit (``max_pixels=None``:
every pixel of a PNG is decoded) and once with the default limit, and reports the process's peak
resident memory above its state just before the load (``ru_maxrss``) and the load time. A refused image
is replaced as any undecodable file is (a second, small image in the folder stands in).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from harness import write_json
from PIL import Image

CHILD = r"""
import json, resource, sys, time, warnings
from pmg_dali import ImageFolder
root, size, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
folder = ImageFolder(root) if limit == "default" else ImageFolder(root, max_pixels=None)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    folder.load([0], size)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mb": (peak - before) / 1024, "refused": bool(folder.bad_files),
                  "max_pixels": folder.max_pixels}))
"""


def write_pair(root: str, side: int) -> dict[str, str]:
    """A ``side`` x ``side`` PNG and JPEG of a smooth pattern, each in its own folder beside a small
    image (the stand-in when the large one is refused)."""
    t = np.arange(side, dtype=np.float32) / side
    rgb = np.empty((side, side, 3), dtype=np.uint8)
    rgb[..., 0] = (127.5 + 127.5 * np.sin(9 * t))[None, :]
    rgb[..., 1] = (127.5 + 127.5 * np.cos(7 * t))[:, None]
    rgb[..., 2] = (255 * np.outer(t, t)).astype(np.uint8)
    image = Image.fromarray(rgb)
    del rgb
    folders = {}
    for fmt, options in (("png", {"compress_level": 1}), ("jpg", {"quality": 90})):
        folder = os.path.join(root, fmt)
        os.makedirs(folder)
        image.save(os.path.join(folder, f"a_large.{fmt}"), **options)
        Image.new("RGB", (64, 64), (90, 120, 150)).save(os.path.join(folder, "b_small.png"))
        folders[fmt] = folder
    return folders


def measure(folder: str, size: int, limit: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, folder, str(size), limit], capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=10_000, help="side of the square test images, pixels")
    parser.add_argument("--size", type=int, default=32, help="output size of the load")
    parser.add_argument("--quick", action="store_true", help="a 1,500^2 pair (seconds)")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    side = 1500 if args.quick else args.side
    rows = {}
    with tempfile.TemporaryDirectory() as root:
        folders = write_pair(root, side)
        for fmt, folder in folders.items():
            for limit in ("none", "default"):
                rows[f"{fmt} {side}x{side}, max_pixels={limit}"] = measure(folder, args.size, limit)
    print("| image, limit | load (s) | peak memory added (MB) | refused |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {'yes' if r['refused'] else 'no'} |")
    write_json(args.json, {"side": side, "size": args.size, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
