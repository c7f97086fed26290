"""Image sources: SyntheticImages images/s per kind and ImageFolder decode images/s.

    python benchmarks/bench_sources.py                      # CUDA if present: batch 256 (CPU: 64), 224^2
    python benchmarks/bench_sources.py --device cpu --batch_size 64
    python benchmarks/bench_sources.py --scan_files 1000000 # also time listing a million (empty) files
    python benchmarks/bench_sources.py --contact_sheets docs  # also write docs/contact_<kind>.jpg
    python benchmarks/bench_sources.py --quick              # seconds: tiny sizes (used by the tests)

Synthetic: ``load`` of ``--batch`` new indices per call (nothing is cached), ``--repeats`` timed
calls after one warm-up call; CUDA timings synchronise before reading the clock. ImageFolder:
``--files`` JPEGs of 500 x 375 (ImageNet-like, quality 90, written from shader images) decoded,
cropped and resized to ``--size``: centre crop and random-resized crop, on the CPU with PIL (0 and
``os.cpu_count()`` threads) and, on CUDA, with nvJPEG. Prints a markdown table and writes JSON with
the device, date and library versions.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from PIL import Image

from pmg_dali import ImageFolder, SyntheticImages
from harness import environment, sync, write_jpegs
from pmg_dali.synthetic import KINDS


def rate(call, device: torch.device, batch: int, repeats: int) -> float:
    """Images per second of ``call(step)`` (one batch per call) after one warm-up call."""
    call(0)
    sync(device)
    start = time.perf_counter()
    for step in range(1, repeats + 1):
        call(step)
    sync(device)
    return batch * repeats / (time.perf_counter() - start)


def bench_synthetic(args, device) -> list[dict]:
    rows = []
    for kind in args.kinds:
        source = SyntheticImages(kind, num_images=10 ** 9, seed=0)
        ips = rate(lambda s: source.load(range(s * args.batch_size, (s + 1) * args.batch_size), args.size, device),
                   device, args.batch_size, args.repeats)
        rows.append({"what": f"SyntheticImages({kind!r})", "images_per_s": ips})
    return rows


def bench_folder(args, device) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        write_jpegs(folder, args.files, (args.file_size[1], args.file_size[0]), device)
        n = args.files
        settings = [(0, "cuda")] if device.type == "cuda" else []
        settings += [(0, "cpu"), (os.cpu_count() or 1, "cpu")]
        for workers, dev in settings:
            source = ImageFolder(folder, num_workers=workers)
            for crop in ("centre", "random-resized"):
                gen = torch.Generator().manual_seed(0) if crop != "centre" else None
                batch = min(args.batch_size, n)
                ips = rate(lambda s: source.load([(s * batch + i) % n for i in range(batch)], args.size,
                                                 dev, generator=gen), torch.device(dev), batch, args.repeats)
                decoder = "nvJPEG" if dev == "cuda" else f"PIL, {workers} threads"
                rows.append({"what": f"ImageFolder {crop} crop ({decoder}, {dev})", "images_per_s": ips})
    return rows


def bench_scan(count: int) -> dict:
    """Seconds to list ``count`` empty .jpg files in 1000 folders."""
    with tempfile.TemporaryDirectory() as root:
        per = max(1, count // 1000)
        for i in range(0, count, per):
            sub = os.path.join(root, f"{i // per:04d}")
            os.makedirs(sub)
            for j in range(i, min(i + per, count)):
                open(os.path.join(sub, f"{j:07d}.JPG"), "wb").close()
        start = time.perf_counter()
        source = ImageFolder(root)
        seconds = time.perf_counter() - start
    return {"what": f"ImageFolder construction, {len(source):,} files", "seconds": seconds}


def contact_sheets(folder: str, size: int = 224, thumb: int = 88) -> list[str]:
    """docs/contact_<kind>.jpg: images 0-63 of seed 0 rendered at ``size``, 8 x 8 thumbnails."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for kind in KINDS:
        images = SyntheticImages(kind, seed=0).load(range(64), size).float()
        small = F.interpolate(images, size=thumb, mode="bilinear", antialias=True).round().clamp(0, 255)
        sheet = small.to(torch.uint8).view(8, 8, 3, thumb, thumb).permute(0, 3, 1, 4, 2)
        path = os.path.join(folder, f"contact_{kind}.jpg")
        Image.fromarray(sheet.reshape(8 * thumb, 8 * thumb, 3).numpy()).save(path, quality=85)
        paths.append(path)
    return paths


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch_size", type=int, default=None, help="256 on CUDA, 64 on CPU")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--files", type=int, default=256, help="JPEGs in the ImageFolder benchmark")
    parser.add_argument("--file_size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"))
    parser.add_argument("--scan_files", type=int, default=0, help="also time listing this many files")
    parser.add_argument("--contact_sheets", default=None, metavar="DIR", help="write contact sheets here")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (for tests)")
    parser.add_argument("--json", default=None, help="default benchmarks/results/bench_sources_<device>.json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch_size is None:
        args.batch_size = 256 if device.type == "cuda" else 64
    if args.quick:
        args.batch_size, args.size, args.repeats, args.files, args.file_size = 4, 32, 1, 6, (64, 48)
    rows = bench_synthetic(args, device) + bench_folder(args, device)
    if args.scan_files:
        rows.append(bench_scan(args.scan_files))
    result = {"environment": environment(device), "command": " ".join([sys.executable, *sys.argv]),
              "batch": args.batch_size, "size": args.size, "repeats": args.repeats, "results": rows}
    if args.contact_sheets:
        result["contact_sheets"] = contact_sheets(args.contact_sheets)
    path = args.json or f"benchmarks/results/bench_sources_{device.type}{'_quick' if args.quick else ''}.json"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    env = result["environment"]
    print(f"{env['device']}, torch {env['torch']}, {env['date']}; batch {args.batch_size}, {args.size}^2\n")
    print("| source | images/s |\n|---|---|")
    for row in rows:
        value = f"{row['images_per_s']:,.0f}" if "images_per_s" in row else f"{row['seconds']:.2f} s"
        print(f"| {row['what']} | {value} |")
    return result


if __name__ == "__main__":
    main()
