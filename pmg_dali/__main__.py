"""Command line: ``python -m pmg_dali demo`` (preview GIF + generation speed), ``python -m pmg_dali bench``
(a short speed check: clips/s of every engine on this device) and ``python -m pmg_dali check`` (every
rendering engine against the reference renderer; exit status 1 when one fails). A bad option value is a
usage error (exit status 2) naming the option. The full benchmarks are the scripts in ``benchmarks/``."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from . import TRANSFORMS, PMGConfig, PseudoMotion
from .engines import ENGINES
from .gif import clip_sheet, write_gif
from .synthetic import SyntheticImages


def clips_per_second(gen: PseudoMotion, images: torch.Tensor, repeats: int) -> float:
    """Median clips/s of sample + render for one batch of ``images``, over ``repeats`` timed batches after
    one warm-up (CUDA is synchronised before each clock reading)."""
    g = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if images.device.type == "cuda" else (lambda: None)
    gen(images, generator=g)
    seconds = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        gen(images, generator=g)
        sync()
        seconds.append(time.perf_counter() - start)
    return images.shape[0] / statistics.median(seconds)


def demo(args) -> None:
    device = default_device(args.device)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = SyntheticImages("mixed", num_images=10_000, seed=args.seed)
    g = torch.Generator().manual_seed(args.seed)
    images = source.load(range(args.clips_per_row), args.size, device)
    rows = []
    for name in TRANSFORMS:
        cfg = PMGConfig(num_frames=args.num_frames, size=args.size, transforms=(name,), mixup=None,
                        dtype=torch.uint8)
        rows.append(PseudoMotion(cfg)(images, generator=g))
    gif = out_dir / "pmg_preview.gif"
    write_gif(clip_sheet(rows), gif)       # one row per transform, one palette for all frames
    print(f"preview: {gif} (rows: {', '.join(TRANSFORMS)})")

    cfg = PMGConfig(dtype=torch.bfloat16)      # the default program: zoom + affine, frame Mixup, 16 x 224²
    batch = args.batch_size or (64 if device.type == "cuda" else 8)
    images = source.load(range(batch), cfg.size, device)
    rate = clips_per_second(PseudoMotion(cfg), images, repeats=10 if device.type == "cuda" else 3)
    print(f"generation: {rate:,.0f} clips/s of {cfg.num_frames}x{cfg.size[0]}x{cfg.size[1]} "
          f"(zoom+affine, frame Mixup, normalised bf16, batch {batch}) on {device}")


def bench(args) -> None:
    """A short speed check: clips/s of sample + render of the default program (zoom + affine, frame Mixup,
    normalised bf16) with each engine that runs on the device, from uint8 images at the output size."""
    device = default_device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch_size or (2 if args.quick else 64 if cuda else 8)
    cfg = PMGConfig(num_frames=4 if args.quick else args.num_frames, size=48 if args.quick else args.size,
                    dtype=torch.bfloat16)
    repeats = args.repeats or (2 if args.quick else 10 if cuda else 3)
    images = SyntheticImages("mixed", seed=0).load(range(batch), cfg.size, device)
    rows = {}
    for name in ("auto", *(e.name for e in ENGINES if not e.unavailable(device, cfg))):
        gen = PseudoMotion(cfg, renderer=name)
        try:
            rows[name] = {"engine": gen.engine(device, "render"), "clips_per_s": clips_per_second(gen, images, repeats)}
        except (RuntimeError, ImportError) as exc:      # an engine this machine cannot run
            rows[name] = {"engine": name, "clips_per_s": None, "error": f"{type(exc).__name__}: {exc}"}
    ref = rows["reference"]["clips_per_s"]
    print(f"{cfg.num_frames} x {cfg.size[0]} x {cfg.size[1]} clips, default program, bf16, batch {batch}, on {device}"
          f"\n\n| renderer | engine | clips/s | x reference |\n|---|---|---|---|")
    for name, row in rows.items():
        rate = row["clips_per_s"]
        print(f"| {name} | {row['engine']} | {'--' if rate is None else f'{rate:,.0f}'} | "
              f"{'--' if rate is None else f'{rate / ref:.2f}'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "batch_size": batch, "num_frames": cfg.num_frames, "size": cfg.size,
                       "rows": rows}, f, indent=1)


def check(args) -> None:
    """Print :func:`pmg_dali.check_engines` of the device; exit status 1 when an engine failed."""
    from .engine_check import check_engines
    report = check_engines(default_device(args.device))
    print(report)
    if not report.ok:
        raise SystemExit(1)


def default_device(device: str | None) -> torch.device:
    """``--device``, else cuda when available, else cpu."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def int_arg(low: int):
    """An argparse ``type``: an int >= ``low``, else a usage error naming the option."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {low}, but got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an int >= {low}, but got {value}")
        return value
    return parse


def device_arg(text: str) -> str:
    """An argparse ``type``: ``cpu``, ``cuda`` or ``cuda:N`` of a device present on this machine."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"must be cpu, cuda or cuda:N, but got {text!r}")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text!r} needs a CUDA device, but none is available")
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f"must name one of the {count} CUDA devices, but got {text!r}")
    return text


def out_dir_arg(text: str) -> str:
    """An argparse ``type``: a folder path (it may not exist yet), not an existing file."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"must be a folder, but {text!r} is a file")
    return text


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m pmg_dali", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="write a preview GIF of every transform and print clips/s")
    d.add_argument("--out_dir", type=out_dir_arg, default="out/demo")
    d.add_argument("--device", type=device_arg, default=None, help="default: cuda if available, else cpu")
    d.add_argument("--size", type=int_arg(2), default=112, help="preview frame size")
    d.add_argument("--num_frames", type=int_arg(1), default=16)
    d.add_argument("--clips_per_row", type=int_arg(1), default=6)
    d.add_argument("--batch_size", type=int_arg(1), default=None,
                   help="speed test batch (default 64 on GPU, 8 on CPU)")
    d.add_argument("--seed", type=int_arg(0), default=0)
    d.set_defaults(func=demo)
    b = sub.add_parser("bench", help="a short speed check: clips/s of every engine on this device")
    b.add_argument("--device", type=device_arg, default=None, help="default: cuda if available, else cpu")
    b.add_argument("--batch_size", type=int_arg(1), default=None, help="default 64 on GPU, 8 on CPU")
    b.add_argument("--num_frames", type=int_arg(1), default=16)
    b.add_argument("--size", type=int_arg(2), default=224)
    b.add_argument("--repeats", type=int_arg(1), default=None, help="timed batches (default 10 on GPU, 3 on CPU)")
    b.add_argument("--quick", action="store_true", help="seconds: batch 2, 4 x 48^2")
    b.add_argument("--json", default=None, help="also write the result here")
    b.set_defaults(func=bench)
    c = sub.add_parser("check", help="check every rendering engine against the reference renderer (a small "
                                     "canary batch); exit status 1 when one fails")
    c.add_argument("--device", type=device_arg, default=None, help="default: cuda if available, else cpu")
    c.set_defaults(func=check)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
