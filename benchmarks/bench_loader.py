"""The loader's own overhead: PseudoMotionLoader clips/s against the bare renderer it wraps.

    python benchmarks/bench_loader.py                 # CUDA when present: batch 64, 16 x 224^2
    python benchmarks/bench_loader.py --quick         # a short run (CPU default: batch 8, 16 x 112^2)
    python benchmarks/bench_loader.py --device cpu --batch_size 8 --size 224

"bare" samples a MotionProgram from a CPU generator and renders it from a batch of images already
on the device: the generation work itself. "loader" iterates a PseudoMotionLoader over a
TensorImages source on the same device (same config, images already at the output size), so the
difference is what the loader adds: per-batch seeding, index gather, the tube mask, the copies to
the device and the Python around them. overhead = 1 - loader / bare (clips/s). Each run is
``--steps`` batches between two device synchronisations; the paths take turns, and the table
shows the median of ``--repeats`` runs each after ``--warmup`` batches. Prints a markdown table and writes JSON.

"num_workers=N" (``--workers``, default 2) is the loader with the host part of each batch (program,
tube mask) drawn ahead in N worker processes; it keeps background work, so it is timed alone, over a
source long enough that one pass (worker start-up included) spans every timed run.

"host work" times, on the host thread alone, what every batch costs there before any pixel is made:
the batch's generators, ``sample_program``, the fused kernel's parameter tables and the tube mask
(median of 200 calls each). On a GPU this work is not overlapped by the device, so 64 clips / its
sum caps what sample + render can reach (and it competes with the trainer's own Python).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform

import torch

import pmg_dali
from harness import each, endless, sampled, timed   # the paths take turns; median seconds per batch


def host_work(cfg: pmg_dali.PMGConfig, batch: int, calls: int = 200) -> dict:
    """Median milliseconds per call of each piece of a batch's host work (CPU generators)."""
    from pmg_dali.fused import parameter_tables
    from pmg_dali.loader import batch_generators
    from pmg_dali.sampling import sample_program

    g = torch.Generator().manual_seed(0)
    program = sample_program(cfg, batch, g)
    pieces = {"batch generators": lambda: batch_generators(0, 0, 0, 1),
              "sample_program": lambda: sample_program(cfg, batch, g),
              "parameter tables (fused)": lambda: parameter_tables(program),
              "tube mask": lambda: pmg_dali.tube_mask(batch, cfg.num_frames, cfg.size, 16, 2, 0.9, generator=g)}
    if cfg.num_frames % 2 or any(side % 16 for side in cfg.size):
        del pieces["tube mask"]           # VideoMAE's 2 x 16 x 16 tokens do not tile these clips
    seconds = timed({name: each(call) for name, call in pieces.items()}, torch.device("cpu"), 1, calls, 1)
    ms = {name: 1000 * s for name, s in seconds.items()}
    ms["total"] = sum(ms.values())
    return ms


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="short run; on CPU also smaller clips")
    parser.add_argument("--batch_size", type=int, default=None, help="64 on CUDA, 8 on CPU")
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=None, help="224 (112 with --quick on CPU)")
    parser.add_argument("--dtype", default="float32", choices=["uint8", "float32", "float16", "bfloat16"])
    parser.add_argument("--steps", type=int, default=None, help="batches per timed run")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--prefetch", action="store_true", help="also time prefetch=True (CUDA)")
    parser.add_argument("--workers", type=int, default=2, help="also time num_workers=N; 0: do not")
    parser.add_argument("--json", default="benchmarks/results/bench_loader.json")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    cpu = device.type == "cpu"
    batch = args.batch_size or (8 if cpu else 64)
    size = args.size or (112 if cpu and args.quick else 224)
    steps = args.steps or (3 if args.quick else 10)
    repeats = args.repeats or (3 if args.quick else 10)
    cfg = pmg_dali.PMGConfig(num_frames=args.num_frames, size=size, dtype=getattr(torch, args.dtype))
    g = torch.Generator().manual_seed(0)
    count = batch * (steps + args.warmup)
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=g).to(device)
    gen = pmg_dali.PseudoMotion(cfg)

    bare = sampled(lambda x, p, c: gen(x, program=p), images[:batch], cfg)

    class Repeated(pmg_dali.TensorImages):     # one pass spans every timed run (workers start once)
        def __len__(self):
            return len(images) * (repeats + 2)

        def load(self, indices, *args, **kwargs):
            return super().load(indices % len(images), *args, **kwargs)

    def loader_run(**extra):
        loader = pmg_dali.PseudoMotionLoader(Repeated(images), batch_size=batch, config=cfg,
                                             device=device, seed=0, **extra)

        # one iterator across timed runs: with prefetch, the batch launched ahead is used by the next
        # run, not thrown away (a fresh iterator per run would make n + 1 batches in the timing)
        it = endless(loader)
        return each(lambda: next(it))

    paths = {"bare renderer (sample + render)": bare, "PseudoMotionLoader": loader_run()}
    if args.prefetch and device.type == "cuda":
        paths["PseudoMotionLoader, prefetch=True"] = loader_run(prefetch=True)
    alone = {}
    if args.workers:
        alone[f"PseudoMotionLoader, num_workers={args.workers}"] = lambda: loader_run(num_workers=args.workers)
        if args.prefetch and device.type == "cuda":
            alone[f"PseudoMotionLoader, num_workers={args.workers}, prefetch=True"] = \
                lambda: loader_run(num_workers=args.workers, prefetch=True)
    seconds = timed(paths, device, steps, repeats, args.warmup)
    for name, make in alone.items():
        seconds.update(timed({name: make()}, device, steps, repeats, args.warmup))
    rows = [{"path": name, "seconds_per_batch": s, "clips_per_s": batch / s} for name, s in seconds.items()]
    bare_rate = rows[0]["clips_per_s"]
    for row in rows:
        row["overhead_pct"] = 100 * (1 - row["clips_per_s"] / bare_rate)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    result = {"device": name, "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "python": platform.python_version(), "batch_size": batch, "num_frames": args.num_frames,
              "size": size, "dtype": args.dtype, "steps": steps, "repeats": repeats, "rows": rows,
              "host_ms": host_work(cfg, batch, 20 if args.quick else 200)}
    print(f"{name}, batch {batch}, {args.num_frames} x {size}^2, {args.dtype}, "
          f"median of {repeats} runs of {steps} batches\n")
    print("| path | clips/s | ms / batch | overhead vs bare |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['path']} | {row['clips_per_s']:,.1f} | {1000 * row['seconds_per_batch']:.1f} "
              f"| {row['overhead_pct']:+.1f}% |")
    print(f"\nhost work per batch of {batch} ({torch.get_num_threads()} torch thread(s)):\n\n"
          "| piece | ms | clips/s cap |\n|---|---|---|")
    for piece, ms in result["host_ms"].items():
        print(f"| {piece} | {ms:.3f} | {batch / ms * 1000:,.0f} |")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"\nwrote {args.json}")
    return result


if __name__ == "__main__":
    main()
