"""Renderer speed: the reference torch renderer, the fused Triton kernel and the fast CPU path, with
the classic PIL per-frame loop as the CPU baseline.

    python benchmarks/bench_render.py                          # CUDA when present (else CPU)
    python benchmarks/bench_render.py --device cpu --batch_size 8 --repeats 7
    python benchmarks/bench_render.py --tune                   # CUDA: also sweep block / num_warps
    python benchmarks/bench_render.py --quick                  # tiny CPU run, for tests

The program is the default one: zoom + affine, frame Mixup, ImageNet-normalised, BCTHW,
16 x 224^2 (batch 64 on CUDA, 8 on CPU), the same MotionProgram and uint8 images for every path.

CPU (``--threads``, default 1): "pil_recursive" is the classic loader -- per clip, PIL warps frame
t-1 into frame t (``Image.transform`` AFFINE/PERSPECTIVE, bilinear, uint8) with the clip's per-step
map, then frame Mixup and normalisation in NumPy, float32 (B, C, T, H, W) -- against "reference"
(:func:`pmg_dali.render.render`) and "cpu" (:func:`pmg_dali.cpu_render.render_cpu`), float32 (NumPy
has no bfloat16) and bfloat16, and "cpu_out" writing into a reused output buffer (no first-touch
page faults of a fresh output; every other path allocates its output per batch). The PIL loop
(:func:`pmg_dali.bench.pil_render`), the timing and the bandwidth helpers live in :mod:`pmg_dali.bench`.

CUDA (output ``--dtype``, default bfloat16): "reference", "fused" (:func:`render_fused` end to end:
program on the host, tables built and copied, source packed, kernel) and "fused kernel" (the launch
alone, inputs prepared). "write floor" is the output size over the measured device-to-device copy
bandwidth (bytes read + written per second); ``floor`` = floor time / measured time. "ViT-S share"
= render time / the time of a ViT-S VideoMAE step on the same batch at ``--vit_s`` clips/s (577 on
an H100, from the project's design notes; not measured here).

Each timed run is ``--steps`` batches between two synchronisations; the paths take turns and the
table shows the median of ``--repeats`` runs after ``--warmup`` batches. Prints a markdown table,
writes JSON (``--json``) and the table (``--markdown``).
"""
from __future__ import annotations

import argparse
import json
import os

import torch

import pmg_dali
from harness import copy_bandwidth, each, environment, pil_render, timed, working
from pmg_dali.cpu_render import render_cpu
from pmg_dali.render import render
from pmg_dali.rules import frame_tables


def repeat(fn, *args, **kw):
    """A path: ``n -> n`` calls of ``fn(*args, **kw)``."""
    return each(lambda: fn(*args, **kw))


def cpu_paths(images, program, cfg) -> dict:
    f32, bf16 = cfg.replace(dtype=torch.float32), cfg.replace(dtype=torch.bfloat16)
    out = render_cpu(images, program, f32)
    return {"pil_recursive": ("PIL recursive per frame + NumPy mixup (float32)",
                              repeat(pil_render, images, program, f32)),
            "reference": ("reference renderer (float32)", repeat(render, images, program, f32)),
            "cpu": ("fast CPU renderer (float32)", repeat(render_cpu, images, program, f32)),
            "cpu_bf16": ("fast CPU renderer (bfloat16)", repeat(render_cpu, images, program, bf16)),
            "cpu_out": ("fast CPU renderer (float32), output buffer reused",
                        repeat(render_cpu, images, program, f32, out=out))}


def cuda_paths(images, program, cfg, tune: bool) -> dict:
    from pmg_dali import fused

    shape = (images.shape[0], 3, cfg.num_frames, *cfg.size)
    out = torch.empty(shape if cfg.layout == "BCTHW" else (shape[0], shape[2], 3, *cfg.size),
                      dtype=cfg.dtype, device=images.device)
    tables = frame_tables(program)                      # what fused.parameter_tables packs, and the mix mode
    params, index = (x.to(images.device) for x in tables.packed())

    def kernel(block=fused.BLOCK, warps=fused.NUM_WARPS, pack=True):
        src, kind, scale = fused.prepare_source(images, cfg.size, pack)

        def run(n):
            for _ in range(n):
                fused.launch(out, src, kind, scale, params, index, cfg, tables.paste_index is not None,
                             tables.mix_mode, block, warps)
        return run

    paths = {"reference": ("reference renderer (program moved per batch)",
                           each(lambda: render(images, program.to(images.device), cfg))),
             "fused": ("fused kernel, end to end (host program)", repeat(fused.render_fused, images, program, cfg)),
             "fused_kernel": (f"fused kernel launch alone (default {fused.BLOCK[0]} x {fused.BLOCK[1]} tile, "
                              f"{fused.NUM_WARPS} warps)", kernel()),
             "fused_kernel_planes": ("fused kernel launch alone, uint8 planes", kernel(pack=False))}
    if tune:
        for block in ((8, 32), (16, 32), (32, 32), (8, 64), (16, 64), (4, 128), (2, 256)):
            for warps in (2, 4, 8):
                paths[f"fused_kernel_{block[0]}x{block[1]}_w{warps}"] = (
                    f"fused kernel, {block[0]} x {block[1]} tile, {warps} warps", kernel(block, warps))
    return paths


def table(result: dict) -> str:
    """The markdown table of ``result`` (x PIL on CPU; floor fraction and ViT-S share on CUDA)."""
    cuda = result["device_type"] == "cuda"
    cols = ["x_reference", "floor_fraction", "vit_s_share"] if cuda else ["x_pil", "x_reference"]
    names = {"x_pil": "x PIL", "x_reference": "x reference", "floor_fraction": "floor", "vit_s_share": "ViT-S share"}
    lines = ["| path | what | clips/s | ms / batch | " + " | ".join(names[c] for c in cols) + " |",
             "|---" * (4 + len(cols)) + "|"]
    for row in result["rows"]:
        formats = {"vit_s_share": "{:.2%}", "floor_fraction": "{:.3f}"}
        cells = [formats.get(c, "{:.2f}").format(row[c]) if c in row else "" for c in cols]
        lines.append(f"| {row['path']} | {row['what']} | {row['clips_per_s']:,.1f} | "
                     f"{1000 * row['seconds_per_batch']:.2f} | " + " | ".join(cells) + " |")
    e = result["environment"]
    return (f"{e['device']}, {e['date']}, torch {e['torch']}" + (f", triton {e['triton']}" if cuda else "")
            + f"; batch {result['batch_size']}, {result['num_frames']} x {result['size']}^2, "
            f"median of {result['repeats']} runs of {result['steps']} batches\n\n" + "\n".join(lines) + "\n"
            + "".join(f"\nfailed (left out): {name}: {why}" for name, why in result.get("failed", {}).items()))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda when present, else cpu (cpu with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny run: batch 2, 4 x 32^2, 1 step, 2 repeats")
    parser.add_argument("--batch_size", type=int, default=None, help="64 on CUDA, 8 on CPU")
    parser.add_argument("--num_frames", type=int, default=None, help="16")
    parser.add_argument("--size", type=int, default=None, help="224")
    parser.add_argument("--dtype", default="bfloat16", choices=["uint8", "float32", "float16", "bfloat16"],
                        help="CUDA output dtype (CPU rows state theirs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--steps", type=int, default=None, help="batches per timed run (CUDA 10, CPU 1)")
    parser.add_argument("--repeats", type=int, default=None, help="7 (2 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="3 on CUDA, 1 on CPU")
    parser.add_argument("--tune", action="store_true", help="CUDA: sweep the kernel's block and num_warps")
    parser.add_argument("--vit_s", type=float, default=577.0, help="ViT-S step clips/s for the share column")
    parser.add_argument("--json", default="benchmarks/results/bench_render.json")
    parser.add_argument("--markdown", default="benchmarks/results/bench_render.md")
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cpu" if args.quick or not torch.cuda.is_available() else "cuda"))
    cuda = device.type == "cuda"
    if not cuda:
        torch.set_num_threads(args.threads)
    batch = args.batch_size or (2 if args.quick else 64 if cuda else 8)
    frames, size = args.num_frames or (4 if args.quick else 16), args.size or (32 if args.quick else 224)
    steps = args.steps or (10 if cuda and not args.quick else 1)
    repeats, warmup = args.repeats or (2 if args.quick else 7), args.warmup or (3 if cuda else 1)
    cfg = pmg_dali.PMGConfig(num_frames=frames, size=size, transforms=("zoom", "affine"), mixup="frame",
                             dtype=getattr(torch, args.dtype))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)
    program = pmg_dali.PseudoMotion(cfg).sample(batch, generator=g)
    paths = cuda_paths(images.to(device), program, cfg, args.tune) if cuda else cpu_paths(images, program, cfg)
    failed = {}
    runs = working({name: run for name, (_, run) in paths.items()}, device, failed)
    seconds = timed(runs, device, steps, repeats, warmup)
    rows = [{"path": name, "what": paths[name][0], "seconds_per_batch": s, "clips_per_s": batch / s}
            for name, s in seconds.items()]
    by_name = {row["path"]: row for row in rows}
    for row in rows:
        if "pil_recursive" in by_name:
            row["x_pil"] = row["clips_per_s"] / by_name["pil_recursive"]["clips_per_s"]
        if "reference" in by_name:
            row["x_reference"] = row["clips_per_s"] / by_name["reference"]["clips_per_s"]
    if cuda:
        bandwidth = copy_bandwidth(device)
        floor = batch * 3 * frames * size * size * cfg.dtype.itemsize / bandwidth
        for row in rows:
            row["floor_fraction"] = floor / row["seconds_per_batch"]
            row["vit_s_share"] = row["seconds_per_batch"] / (batch / args.vit_s)
        rows.insert(0, {"path": "write_floor", "what": f"output bytes / copy bandwidth ({bandwidth / 1e12:.2f} TB/s)",
                        "seconds_per_batch": floor, "clips_per_s": batch / floor, "floor_fraction": 1.0})
    result = {"environment": environment(device), "device_type": device.type, "batch_size": batch,
              "num_frames": frames, "size": size, "dtype": args.dtype if cuda else "float32 / bfloat16 (per row)",
              "program": "zoom+affine, frame mixup, normalised, BCTHW", "steps": steps, "repeats": repeats,
              "warmup": warmup, "rows": rows, "failed": failed}
    text = table(result)
    print(text)
    for path, content in ((args.json, json.dumps(result, indent=2)), (args.markdown, text)):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w") as f:
                f.write(content)
    return result


if __name__ == "__main__":
    main()
