"""Command line: ``python -m pmg_dali demo`` (preview GIF + generation speed) and ``python -m pmg_dali bench``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import TRANSFORMS, PMGConfig, PseudoMotion
from .bench import timed
from .synthetic import SyntheticImages


def save_gif(rows: list[torch.Tensor], path: Path, ms_per_frame: int = 120) -> None:
    """Write an animated GIF: one row per (N, 3, T, H, W) uint8 clip batch, all frames animated."""
    from PIL import Image

    sheet = torch.cat([torch.cat(list(clips), dim=-1) for clips in rows], dim=-2)   # (3, T, rows*H, N*W)
    frames = [Image.fromarray(sheet[:, t].permute(1, 2, 0).cpu().numpy()) for t in range(sheet.shape[1])]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)


def clips_per_second(gen: PseudoMotion, images: torch.Tensor, repeats: int) -> float:
    """Median clips/s of sample + render for one batch of ``images`` (after one warm-up)."""
    g = torch.Generator().manual_seed(0)
    seconds = timed({"gen": lambda n: [gen(images, generator=g) for _ in range(n)]}, images.device,
                    steps=1, repeats=repeats, warmup=1)["gen"]
    return images.shape[0] / seconds


def demo(args) -> None:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
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
    save_gif(rows, gif)
    print(f"preview: {gif} (rows: {', '.join(TRANSFORMS)})")

    cfg = PMGConfig(dtype=torch.bfloat16)      # the default program: zoom + affine, frame Mixup, 16 x 224²
    batch = args.batch_size or (64 if device.type == "cuda" else 8)
    images = source.load(range(batch), cfg.size, device)
    rate = clips_per_second(PseudoMotion(cfg), images, repeats=10 if device.type == "cuda" else 3)
    print(f"generation: {rate:,.0f} clips/s of {cfg.num_frames}x{cfg.size[0]}x{cfg.size[1]} "
          f"(zoom+affine, frame Mixup, normalised bf16, batch {batch}) on {device}")


def bench(args) -> None:
    from .bench import main as bench_main
    bench_main(args.rest)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:     # argparse.REMAINDER drops options (`bench --quick`): hand over as is
        return bench(argparse.Namespace(rest=argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m pmg_dali", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="write a preview GIF of every transform and print clips/s")
    d.add_argument("--out_dir", default="out/demo")
    d.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    d.add_argument("--size", type=int, default=112, help="preview frame size")
    d.add_argument("--num_frames", type=int, default=16)
    d.add_argument("--clips_per_row", type=int, default=6)
    d.add_argument("--batch_size", type=int, default=None, help="speed test batch (default 64 on GPU, 8 on CPU)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=demo)
    b = sub.add_parser("bench", help="quick benchmark of every generation path on this device")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(func=bench)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
