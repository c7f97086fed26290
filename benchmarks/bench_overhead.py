"""The loader's share of a real pre-training step: VideoMAE steps/s fed four ways.

    python benchmarks/bench_overhead.py                     # CUDA: ViT-S and ViT-B, batch 32, 16 x 224^2
    python benchmarks/bench_overhead.py --models hf --sizes vit_base --masks 0.9
    python benchmarks/bench_overhead.py --quick             # CPU, tiny models (4 x 32^2, depth 1): seconds

Models: the example's ``VideoMAE`` (``examples/videomae/model.py``, imported by path; BCTHW clips)
and Hugging Face ``transformers.VideoMAEForPreTraining`` (built from a ``VideoMAEConfig`` of the same
widths and depths -- no download; BTCHW clips), ``vit_small`` and ``vit_base`` (decoder: 4 blocks at
half width, as official VideoMAE), tube masks of ratio 0.75 and 0.9. A step is forward + backward +
fused AdamW under bf16 autocast on CUDA (float32 on CPU unless ``--dtype bfloat16``).

Each step takes its batch from:

- (a) ``static``: one pre-made batch on the device, reused -- the step with free data;
- (b) ``loader``: ``PseudoMotionLoader`` inline (default program: zoom + affine, frame Mixup,
  normalised clips, tube mask) over a ``TensorImages`` pool on the device;
- (c) ``prefetch``: the same with ``prefetch=True`` (next batch on a side CUDA stream; CUDA only);
- (d) ``cpu_dataloader``: the CPU baseline of :mod:`pmg_dali.bench` -- PIL per-frame recursive
  PMG + frame Mixup + the tube mask in a ``DataLoader`` with one worker per core, pinned, moved.

**Loader share** of a mode = ``1 - t_static / t_mode``: the fraction of the step's wall time that
getting the data adds over a free pre-made batch (0 when the data is hidden entirely; noise can
make it slightly negative). **Speed-up over (d)** = ``t_cpu_dataloader / t_mode``. Timing: each mode
alone, median of ``--repeats`` runs of ``--steps`` steps after ``--warmup`` steps (pmg_dali.bench.timed).
Writes ``<out_dir>/<name>.json`` and ``.md`` (``<name>``: ``overhead_<cuda|cpu>``).
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import sys
from contextlib import nullcontext

import torch

import pmg_dali
from harness import cpu_dataloader, endless, environment, pil_render, timed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(embed_dim=32, depth=1, num_heads=2, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
MODES = ("static", "loader", "prefetch", "cpu_dataloader")


@functools.cache
def example_module():
    """``examples/videomae/model.py`` as a module (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location("videomae_example_model",
                                                  os.path.join(ROOT, "examples", "videomae", "model.py"))
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)   # dataclasses look it up
    spec.loader.exec_module(module)
    return module


def build_model(kind: str, size: str, args) -> tuple[torch.nn.Module, str]:
    """(model, clip layout) of ``kind`` "example" or "hf" at preset ``size`` (tiny with --quick)."""
    example = example_module()
    dims = TINY if args.quick else {}
    cfg = example.VideoMAEConfig.from_name(size, img_size=args.size, num_frames=args.num_frames, **dims)
    if kind == "example":
        return example.VideoMAE(cfg), "BCTHW"
    from transformers import VideoMAEConfig, VideoMAEForPreTraining
    hf = VideoMAEConfig(image_size=cfg.img_size, patch_size=cfg.patch_size, num_frames=cfg.num_frames,
                        tubelet_size=cfg.tubelet_size, hidden_size=cfg.embed_dim, num_hidden_layers=cfg.depth,
                        num_attention_heads=cfg.num_heads, intermediate_size=int(cfg.mlp_ratio * cfg.embed_dim),
                        decoder_hidden_size=cfg.decoder_embed_dim, decoder_num_hidden_layers=cfg.decoder_depth,
                        decoder_num_attention_heads=cfg.decoder_num_heads,
                        decoder_intermediate_size=int(cfg.mlp_ratio * cfg.decoder_embed_dim),
                        use_mean_pooling=False, norm_pix_loss=True)
    return VideoMAEForPreTraining(hf), "BTCHW"


def data_sources(cfg: pmg_dali.PMGConfig, mask_ratio: float, args, pool: torch.Tensor) -> dict:
    """``mode -> build()``; ``build()`` returns ``next_batch()`` (with a ``close`` attribute if it must
    be shut down). ``pool``: uint8 (N, 3, H, W) images on the device."""
    device = pool.device

    def loader(prefetch: bool):
        it = endless(pmg_dali.PseudoMotionLoader(pmg_dali.TensorImages(pool), batch_size=args.batch_size,
                                                 config=cfg, device=device, seed=0, mask_ratio=mask_ratio,
                                                 prefetch=prefetch))
        return lambda: next(it)

    def dataloader():
        next_batch, close = cpu_dataloader(pool, cfg, pil_render, args.batch_size, device, args.workers,
                                           mask_ratio=mask_ratio)
        for _ in range(2 * (args.workers or len(os.sched_getaffinity(0))) + 1):    # start-up
            next_batch()
        next_batch.close = close
        return next_batch

    static = loader(False)()
    sources = {"static": lambda: lambda: static, "loader": lambda: loader(False),
               "prefetch": lambda: loader(True), "cpu_dataloader": dataloader}
    return {mode: sources[mode] for mode in args.modes if mode != "prefetch" or device.type == "cuda"}


def time_modes(kind: str, size: str, mask_ratio: float, args, pool: torch.Tensor) -> dict:
    """Median seconds per step of each mode for one model and mask ratio."""
    device = pool.device
    net, layout = build_model(kind, size, args)
    net = net.to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05,
                            fused=device.type == "cuda")
    dtype = getattr(torch, args.dtype)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
    cfg = pmg_dali.PMGConfig(num_frames=args.num_frames, size=args.size, layout=layout, dtype=dtype)

    def step(batch: dict) -> None:
        with autocast:
            if kind == "example":
                loss = net(batch["video"], batch["mask"])[0]
            else:
                loss = net(pixel_values=batch["video"], bool_masked_pos=batch["mask"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    seconds = {}
    for mode, build in data_sources(cfg, mask_ratio, args, pool).items():
        next_batch = build()
        seconds[mode] = timed({mode: lambda n: [step(next_batch()) for _ in range(n)]}, device,
                              args.steps, args.repeats, args.warmup)[mode]
        getattr(next_batch, "close", lambda: None)()
    net = opt = None   # free the model before the next one (the step closure holds these cells)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return seconds


def row(kind: str, size: str, mask_ratio: float, seconds: dict, batch: int) -> dict:
    r = {"model": kind, "size": size, "mask_ratio": mask_ratio,
         **{f"{m}_clips_per_s": batch / s for m, s in seconds.items()},
         **{f"{m}_seconds_per_step": s for m, s in seconds.items()}}
    for mode in ("loader", "prefetch", "cpu_dataloader"):
        if mode in seconds and "static" in seconds:
            r[f"{mode}_share"] = 1 - seconds["static"] / seconds[mode]
        if mode in seconds and "cpu_dataloader" in seconds and mode != "cpu_dataloader":
            r[f"{mode}_speedup_vs_cpu"] = seconds["cpu_dataloader"] / seconds[mode]
    return r


def table(result: dict) -> str:
    e, s = result["environment"], result["settings"]
    head = (f"{e['device']}, {e['date']}; torch {e['torch']}, transformers {e['transformers']}; "
            f"{e['cpu_affinity']} CPU cores ({s['workers']} DataLoader workers). Batch {s['batch_size']}, "
            f"{s['num_frames']} x {s['size']}^2, {s['dtype']}{' (tiny models: --quick)' if s['quick'] else ''}; "
            f"median of {s['repeats']} runs of {s['steps']} steps. share = 1 - t_static / t_mode; "
            f"x CPU = t_cpu_dataloader / t_mode.")
    cols = [("static", "static clips/s"), ("loader", "loader clips/s"), ("loader_share", "loader share"),
            ("prefetch", "prefetch clips/s"), ("prefetch_share", "prefetch share"),
            ("cpu_dataloader", "CPU DataLoader clips/s"), ("cpu_dataloader_share", "CPU share"),
            ("loader_speedup_vs_cpu", "loader x CPU"), ("prefetch_speedup_vs_cpu", "prefetch x CPU")]
    lines = [head, "", "| model | size | mask | " + " | ".join(c[1] for c in cols) + " |",
             "|---" * (3 + len(cols)) + "|"]
    for r in result["rows"]:
        cells = []
        for key, _ in cols:
            value = r.get(key if key.endswith(("share", "cpu")) else f"{key}_clips_per_s")
            cells.append("" if value is None else f"{value:.1%}" if key.endswith("share") else
                         f"{value:.2f}" if key.endswith("cpu") else f"{value:,.1f}")
        lines.append(f"| {r['model']} | {r['size']} | {r['mask_ratio']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a = parser.add_argument
    a("--device", default=None, help="cuda if available, else cpu (cpu with --quick)")
    a("--quick", action="store_true", help="CPU, one torch thread, tiny models, 4 x 32^2, batch 2, 1 step, 2 repeats")
    a("--models", default="example,hf", type=lambda s: s.split(","), help="example,hf")
    a("--sizes", default="vit_small,vit_base", type=lambda s: s.split(","), help="vit_small,vit_base")
    a("--masks", default="0.75,0.9", type=lambda s: [float(x) for x in s.split(",")])
    a("--modes", default=",".join(MODES), type=lambda s: s.split(","), help=",".join(MODES))
    a("--batch_size", type=int, default=None, help="32 (2 with --quick)")
    a("--num_frames", type=int, default=None, help="16 (4 with --quick)")
    a("--size", type=int, default=None, help="224 (32 with --quick)")
    a("--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="autocast dtype (CUDA bf16, CPU fp32)")
    a("--steps", type=int, default=None, help="steps per timed run (CUDA 10, else 1)")
    a("--repeats", type=int, default=None, help="CUDA 5, else 2")
    a("--warmup", type=int, default=None, help="CUDA 5, else 1")
    a("--workers", type=int, default=None, help="CPU DataLoader workers (default: one per core)")
    a("--num_images", type=int, default=None,
      help="image pool (default 32 batches: a prefetching loader restarts its overlap each epoch)")
    a("--out_dir", default="benchmarks/results")
    a("--name", default=None, help="file stem (default overhead_<device type>)")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    cuda = torch.device(args.device).type == "cuda"
    small = args.quick or not cuda
    args.batch_size = args.batch_size or (2 if args.quick else 32)
    args.num_frames, args.size = args.num_frames or (4 if args.quick else 16), args.size or (32 if args.quick else 224)
    args.dtype = args.dtype or ("bfloat16" if cuda else "float32")
    args.steps, args.repeats = args.steps or (1 if small else 10), args.repeats or (2 if small else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if small else 5)
    args.workers = args.workers or len(os.sched_getaffinity(0))
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    elif args.quick:
        torch.set_num_threads(1)      # tiny ops on a busy host: OpenMP spin-waits would swamp them

    g = torch.Generator().manual_seed(0)
    pool = torch.randint(0, 256, (args.num_images or 32 * args.batch_size, 3, args.size, args.size),
                         dtype=torch.uint8, generator=g).to(args.device)
    rows = []
    for kind in args.models:
        for size in args.sizes:
            for mask_ratio in args.masks:
                seconds = time_modes(kind, size, mask_ratio, args, pool)
                rows.append(row(kind, size, mask_ratio, seconds, args.batch_size))
                print(f"{kind} {size} mask {mask_ratio}: " + ", ".join(
                    f"{m} {v:,.1f}" for m, v in rows[-1].items() if m.endswith("clips_per_s")), flush=True)
    name, out_dir = args.__dict__.pop("name"), args.__dict__.pop("out_dir")
    skipped = {"prefetch": "prefetch=True needs a CUDA device"} if "prefetch" in args.modes and not cuda else {}
    result = {"environment": environment(args.device), "settings": vars(args), "skipped": skipped, "rows": rows}
    text = table(result)
    print("\n" + text)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, name or f"overhead_{args.device.split(':')[0]}")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2, default=str)
    with open(stem + ".md", "w") as f:
        f.write(text)
    print(f"wrote {stem}.json, {stem}.md")
    return result


if __name__ == "__main__":
    main()
