"""Steady under load: clips/s of the CPU paths on a quiet machine and beside busy processes.

    python benchmarks/bench_load.py                       # default program, batch 8, 16 x 224^2; the demo
    python benchmarks/bench_load.py --busy 1 --no_demo    # renderers only

Each row runs its path quiet, then with ``--busy`` processes spinning (``while True: pass``, one core
each) beside it, then quiet again; the quiet figure is the better of the two quiet runs. "auto" is
``PseudoMotion()`` (the CPU renderer at this size: time steps on a small thread pool, torch on one
thread each); "reference" is the whole-batch renderer, whose large kernels use torch's intra-op
threads. The demo row is ``examples/videomae/pretrain.py --demo=True --device=cpu`` for
``--demo_iters`` iterations (its clips/s over the last logged row). Torch runs with its default
thread count (one per usable core) in every row.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import pmg_dali
from pmg_dali.__main__ import int_arg
from harness import each, environment, timed, write_json   # the benchmarks' one timing loop and JSON writer

ROOT = Path(__file__).resolve().parents[1]


def spinners(count: int) -> list:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def loaded(measure, busy: int) -> dict:
    """``measure()`` quiet, beside ``busy`` spinning processes, quiet again."""
    first = measure()
    procs = spinners(busy)
    try:
        time.sleep(0.5)
        under = measure()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    quiet = max(first, measure())
    return {"quiet": quiet, "busy": under, "kept": under / quiet}


def render_rate(renderer: str, batch: int, repeats: int):
    cfg = pmg_dali.PMGConfig()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, *cfg.size), dtype=torch.uint8, generator=g)
    module = pmg_dali.PseudoMotion(cfg, renderer=renderer)
    program = module.sample(batch, generator=g)
    run = each(lambda: module(images, program=program))

    def measure() -> float:                                           # median of `repeats` batches
        return batch / timed({renderer: run}, torch.device("cpu"), 1, repeats, 1)[renderer]
    return measure


def demo_rate(iters: int):
    def measure() -> float:
        with tempfile.TemporaryDirectory() as out:
            result = subprocess.run([sys.executable, str(ROOT / "examples/videomae/pretrain.py"), "--demo=True",
                                     "--device=cpu", f"--max_iters={iters}", f"--log_interval={max(1, iters // 2)}",
                                     "--max_seconds=0", f"--out_dir={out}"],
                                    capture_output=True, text=True, timeout=1800)
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-2000:])
        return float(re.findall(r"([0-9.]+) clips/s", result.stdout)[-1])
    return measure


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int_arg(0), default=1, help="spinning processes beside the path")
    parser.add_argument("--batch_size", type=int_arg(1), default=8)
    parser.add_argument("--repeats", type=int_arg(1), default=5)
    parser.add_argument("--demo_iters", type=int_arg(1), default=40)
    parser.add_argument("--no_demo", action="store_true")
    parser.add_argument("--json", default="benchmarks/results/load_cpu.json")
    args = parser.parse_args(argv)

    rows = {f"PseudoMotion renderer='{r}'": loaded(render_rate(r, args.batch_size, args.repeats), args.busy)
            for r in ("auto", "reference")}
    if not args.no_demo:
        rows["pretrain.py --demo=True (CPU)"] = loaded(demo_rate(args.demo_iters), args.busy)
    result = {**environment("cpu"), "busy": args.busy, "batch_size": args.batch_size, "rows": rows}
    print(f"{result['device']}, {result['date']}, torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"{args.busy} busy process(es); default program, batch {args.batch_size}, 16 x 224^2\n")
    print("| path | quiet clips/s | beside busy | kept |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['quiet']:.1f} | {row['busy']:.1f} | {row['kept']:.0%} |")
    write_json(args.json, result)
    if args.json:
        print(f"\nwrote {args.json}")
    return result


if __name__ == "__main__":
    main()
