"""What motion targets cost per loader batch: PseudoMotionLoader with targets=() / ("tracks",) / ("flow",) /
("flow", "tracks").

    python benchmarks/bench_targets.py                    # CUDA when present: batch 64, 16 x 224^2
    python benchmarks/bench_targets.py --device cpu       # batch 8, 16 x 224^2
    python benchmarks/bench_targets.py --quick            # a short run

Each loader iterates a TensorImages source already on the device (images at the output size), with the
default program (zoom + affine, frame Mixup, bf16 on CUDA / float32 on CPU) and then with cutmix added
(the patch is a second layer the flow follows). The loaders take turns, ``--steps`` batches each between
two device synchronisations, median of ``--repeats`` rounds after a warm-up batch; the targets' cost is
the difference to ``targets=()``. Prints a markdown table and writes JSON to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform

import torch

import pmg_dali
from harness import endless, timed

TARGET_SETS = {"none": (), "tracks": ("tracks",), "flow": ("flow",), "flow + tracks": ("flow", "tracks")}


def run(device: str, batch: int, frames: int, size: int, steps: int, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (max(2 * batch, 16), 3, size, size), dtype=torch.uint8, generator=g)
    source = pmg_dali.TensorImages(images.to(device))
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    rows = {}
    for transforms in (("zoom", "affine"), ("zoom", "affine", "cutmix")):
        cfg = pmg_dali.PMGConfig(num_frames=frames, size=size, transforms=transforms, dtype=dtype)
        paths = {}
        for name, targets in TARGET_SETS.items():
            loader = pmg_dali.PseudoMotionLoader(source, batch_size=batch, config=cfg, device=device,
                                                 seed=0, targets=targets)
            batches = endless(loader)
            paths[name] = lambda n, it=batches: [next(it) for _ in range(n)] and None
        seconds = timed(paths, device, steps, repeats, warmup=1)
        rows[" + ".join(transforms)] = {k: v * 1e3 for k, v in seconds.items()}
    return rows


def table(result: dict) -> str:
    lines = ["| program | " + " | ".join(f"targets={k} (ms)" for k in TARGET_SETS) + " | flow cost | tracks cost |",
             "|---" * (len(TARGET_SETS) + 3) + "|"]
    for program, ms in result["ms_per_batch"].items():
        lines.append(f"| {program} | " + " | ".join(f"{ms[k]:.1f}" for k in TARGET_SETS)
                     + f" | {ms['flow'] - ms['none']:+.1f} ms ({ms['flow'] / ms['none'] - 1:+.0%})"
                     + f" | {ms['tracks'] - ms['none']:+.1f} ms |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--num_frames", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out_dir", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)
    cuda = torch.device(args.device).type == "cuda"
    batch = args.batch_size or (64 if cuda else 8)
    steps = args.steps or (10 if cuda else 1)
    if args.quick:
        batch, args.size, args.num_frames, steps, args.repeats = 2, 32, 4, 1, 1
    result = {"device": torch.cuda.get_device_name() if cuda else f"{platform.machine()} CPU, {os.cpu_count()} cores",
              "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "batch": batch, "num_frames": args.num_frames, "size": args.size,
              "steps": steps, "repeats": args.repeats,
              "ms_per_batch": run(args.device, batch, args.num_frames, args.size, steps, args.repeats)}
    print(table(result))
    if not args.quick:
        os.makedirs(args.out_dir, exist_ok=True)
        name = f"targets_{'cuda' if cuda else 'cpu'}"
        with open(os.path.join(args.out_dir, name + ".json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(args.out_dir, name + ".md"), "w") as f:
            f.write(table(result) + "\n")
    return result


if __name__ == "__main__":
    main()
