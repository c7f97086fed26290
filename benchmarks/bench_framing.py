"""Framing: how much padding the clips show and how much of the picture their first view keeps.

    python benchmarks/bench_framing.py                    # 10,000 programs per transform, 16 x 224^2
    python benchmarks/bench_framing.py --num_programs 500 --stride 8
    python benchmarks/bench_framing.py --quick            # seconds (used by the tests)

For each geometric transform alone (sliding_window, zoom, affine, perspective, cutmix), under both
``PMGConfig.framing`` values: the padded-pixel fraction -- output pixels whose bilinear sample lies
outside the source's pixel centres by more than 1e-3 px, so that a tap reads padding (for cutmix, pixels
of the pasted patch outside the partner) -- on a grid of every ``--stride``-th pixel of every frame, and the mean
area of the first view as a fraction of the image (``1 / det`` of frame 0's linear part). Also the host
time per batch of 64, one thread, of ``sample_program`` of the default program (zoom + affine, frame
Mixup), both framings, and of what a DALI pipeline's program feed runs per batch
(:class:`pmg_dali.dali.ProgramFeed`: draw + compile + pack the arrays) for the default program, both
framings, and for all eight transforms.
"""
from __future__ import annotations

import argparse

import torch
from harness import environment, timed, write_json

from pmg_dali import TRANSFORMS as ALL_TRANSFORMS
from pmg_dali import PMGConfig
from pmg_dali.sampling import sample_program

TRANSFORMS = ("sliding_window", "zoom", "affine", "perspective", "cutmix")


def outside(homography: torch.Tensor, size: tuple[int, int], stride: int, box: torch.Tensor | None = None):
    """(padded, counted) pixel counts of frames drawn through ``homography`` (N, T, 3, 3), on the grid of
    every ``stride``-th pixel; with ``box`` (N, T, 4) only pixels inside the box count."""
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(0, h, stride, dtype=torch.float64),
                            torch.arange(0, w, stride, dtype=torch.float64), indexing="ij")
    grid = torch.stack([xs.flatten(), ys.flatten(), torch.ones(xs.numel(), dtype=torch.float64)])   # (3, P)
    src = torch.linalg.inv(homography.double()) @ grid                                              # (N, T, 3, P)
    x, y = src[..., 0, :] / src[..., 2, :], src[..., 1, :] / src[..., 2, :]
    tol = 1e-3                          # float32 programs: an edge view lands within ~1e-5 px of the edge
    padded = (x < -tol) | (x > w - 1 + tol) | (y < -tol) | (y > h - 1 + tol) | (src[..., 2, :] <= 0)
    counted = torch.ones_like(padded)
    if box is not None:
        b = box.double()[..., None]
        counted = ((grid[0] >= b[..., 0, :]) & (grid[0] < b[..., 2, :])
                   & (grid[1] >= b[..., 1, :]) & (grid[1] < b[..., 3, :]))
    return int((padded & counted).sum()), int(counted.sum())


def measure(name: str, framing: str, args) -> dict:
    cfg = PMGConfig(num_frames=args.num_frames, size=args.size, transforms=(name,), mixup=None, framing=framing)
    g = torch.Generator().manual_seed(0)
    padded = counted = 0
    areas = []
    for start in range(0, args.num_programs, args.chunk):
        p = sample_program(cfg, min(args.chunk, args.num_programs - start), generator=g)
        homography, box = (p.paste_homography, p.paste_box) if name == "cutmix" else (p.homography, None)
        a, b = outside(homography, cfg.size, args.stride, box)
        padded, counted = padded + a, counted + b
        areas.append(1 / torch.linalg.det(p.homography[:, 0, :2, :2].double()))
    area = torch.cat(areas)
    return {"padded_fraction": padded / max(counted, 1), "first_view_area_mean": float(area.mean()),
            "first_view_area_min": float(area.min())}


def sampling_ms(repeats: int) -> dict:
    """Median host milliseconds of sample_program for the default program, batch 64, per framing (the
    two take turns)."""
    g = torch.Generator().manual_seed(0)

    def path(framing):
        cfg = PMGConfig(framing=framing)
        return lambda n: [sample_program(cfg, 64, generator=g) for _ in range(n)]

    seconds = timed({f: path(f) for f in ("inside", "whole")}, "cpu", steps=1, repeats=repeats, warmup=2)
    return {f: 1e3 * s for f, s in seconds.items()}


def program_feed_ms(repeats: int) -> dict | None:
    """Median host milliseconds per batch of 64 of a DALI pipeline's program feed
    (:class:`pmg_dali.dali.ProgramFeed`: ``sample_program`` + frame tables + the arrays fed to DALI) for
    the default program per framing and for all eight transforms (the three take turns); None without DALI."""
    try:
        from nvidia.dali.types import BatchInfo

        from pmg_dali.dali import ProgramFeed
    except ImportError:
        return None

    def path(cfg):
        feed, step = ProgramFeed(cfg, 64), iter(range(2 ** 62))
        return lambda n: [feed(BatchInfo(next(step), 0)) for _ in range(n)]

    configs = {"default, inside": PMGConfig(), "default, whole": PMGConfig(framing="whole"),
               "all eight, inside": PMGConfig(transforms=ALL_TRANSFORMS)}
    seconds = timed({k: path(c) for k, c in configs.items()}, "cpu", steps=1, repeats=repeats, warmup=2)
    return {k: 1e3 * s for k, s in seconds.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_programs", type=int, default=10_000, help="clips sampled per transform")
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--stride", type=int, default=4, help="count every stride-th pixel of each frame")
    parser.add_argument("--chunk", type=int, default=250, help="programs per evaluation")
    parser.add_argument("--repeats", type=int, default=200, help="timed sample_program calls")
    parser.add_argument("--quick", action="store_true", help="tiny run: 40 programs, 8 x 32^2")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_programs, args.num_frames, args.size, args.stride, args.chunk, args.repeats = 40, 8, 32, 2, 20, 30
    torch.set_num_threads(1)
    rows = {f"{name}, {framing}": measure(name, framing, args)
            for name in TRANSFORMS for framing in ("inside", "whole")}
    timing = sampling_ms(args.repeats)
    feed = program_feed_ms(args.repeats)
    print(f"{args.num_programs} programs per transform, {args.num_frames} x {args.size}^2, every "
          f"{args.stride}th pixel\n\n| transform, framing | padded pixels | first view area (mean) | (min) |"
          "\n|---|---|---|---|")
    for key, r in rows.items():
        print(f"| {key} | {100 * r['padded_fraction']:.3f} % | {r['first_view_area_mean']:.3f} | "
              f"{r['first_view_area_min']:.3f} |")
    print("\nsample_program, default program, batch 64, one thread: "
          + ", ".join(f"{k} {v:.3f} ms" for k, v in timing.items()))
    if feed is not None:
        print("DALI program feed (ProgramFeed: draw + pack), batch 64, one thread: "
              + ", ".join(f"{k} {v:.3f} ms ({1e3 * v / 64:.1f} us a clip)" for k, v in feed.items()))
    result = {"args": vars(args), "rows": rows, "sample_program_ms": timing, "program_feed_ms": feed,
              "environment": environment("cpu")}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
