"""The DALI engine side by side with the torch reference renderer, on the default program (or ``--transforms``).

    python benchmarks/bench_dali.py                   # GPU: batch 64, 16 x 224^2, + nvJPEG folder
    python benchmarks/bench_dali.py --quick           # CPU (DALI CPU operators): batch 4, 4 x 32^2,
                                                      # one thread for DALI and one for torch
    python benchmarks/bench_dali.py --quick --batch_size 64 --num_frames 16 --size 224 --transforms all \
        --folder yes --steps 2 --repeats 3           # the CPU folder_pipeline with every transform

Paths (the default config: zoom + affine, frame Mixup, ImageNet-normalised, ``--dtype`` bfloat16;
``--transforms all`` draws every transform of ``pmg_dali.TRANSFORMS``):

- "torch": ``sample_program`` (CPU generator) + ``PseudoMotion`` with ``renderer="auto"`` on the device
  (the CPU engine on a CPU, the fused kernel on CUDA).
- "dali program-fed": the same sampling + :class:`pmg_dali.dali.ProgramRenderer` (what
  ``renderer="dali"`` runs); DALI has no bfloat16, so it renders float32 and torch casts.
- "dali pipeline": a pipeline with the graph helper :func:`pmg_dali.dali.pseudo_motion` (each batch's
  program drawn on the host by its ``fn.external_source`` feed, :class:`pmg_dali.dali.ProgramFeed`),
  fed one fixed image batch by another ``fn.external_source``; float16 is DALI's native half type, so
  "(bf16 via torch cast)" adds the cast of a float32 output.
- "dali warp only": sequence_rearrange + one per-frame ``warp_affine``, uint8 (the replicate-and-warp
  core), and "dali T warps + stack", its alternative (one warp per frame, then ``fn.stack``).
- folder (``--folder``; default on a GPU): ``folder_pipeline`` over ``--files`` generated JPEGs, decode +
  crop + resize only (images/s) and the full pseudo-motion pipeline (clips/s; nvJPEG on a GPU, DALI's
  CPU decoder with ``--quick``).

Each run is ``--steps`` batches between two synchronisations (outputs converted to torch tensors);
the paths take turns and the table shows the median of ``--repeats`` runs after ``--warmup``
batches. Prints a markdown table and writes JSON.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile

import numpy as np
import torch

import pmg_dali
from pmg_dali.__main__ import int_arg
from harness import dali_image_pipeline, dali_pipeline_run, sampled, timed, write_jpegs


def _warp_bodies(cfg, batch: int):
    """The replicate-then-warp core and its alternative, uint8, with fixed per-frame zoom matrices."""
    from nvidia.dali import fn
    t, (h, w) = cfg.num_frames, cfg.size
    k = np.float32(0.98) ** np.arange(t, dtype=np.float32)
    mats = np.stack([np.float32([[s, 0, (1 - s) * w / 2], [0, s, (1 - s) * h / 2]]) for s in k])

    def rearrange(images):
        frames = fn.sequence_rearrange(fn.expand_dims(images, axes=[0], new_axis_names="F"), new_order=[0] * t)
        matrices = fn.external_source(source=lambda: [mats] * batch, batch=True)
        return fn.warp_affine(frames, matrix=fn.per_frame(matrices), fill_value=0.0)

    def stacked(images):
        return fn.stack(*[fn.warp_affine(images, matrix=mats[i].reshape(-1).tolist(), fill_value=0.0)
                          for i in range(t)], axis=0, axis_name="F")
    return rearrange, stacked


def _folder_paths(cfg, batch: int, device_id, threads: int, files: int) -> tuple[dict, str]:
    """images/s (decode + random-resized crop + resize) and clips/s (the full folder_pipeline)."""
    from nvidia.dali import fn, pipeline_def
    from pmg_dali import dali
    root = tempfile.mkdtemp(prefix="pmg_dali_bench_")
    write_jpegs(root, files, device=None if device_id is None else f"cuda:{device_id}")
    paths = dali.list_image_files(root, validate="header")   # generated here: trusted

    @pipeline_def(batch_size=batch, num_threads=threads, device_id=device_id, seed=0)
    def decode_only():
        encoded, _ = fn.readers.file(files=paths, random_shuffle=True, name="Reader")
        return dali.decode_crop(encoded, cfg.size, device_id)

    decode = decode_only()
    decode.build()
    full = dali.folder_pipeline(None, cfg, batch, device_id=device_id, files=paths, num_threads=threads)
    full.build()
    return {"dali folder: decode + crop + resize only (images/s)": dali_pipeline_run(decode),
            "dali folder: full folder_pipeline": dali_pipeline_run(full)}, root


def transforms_arg(text: str) -> tuple[str, ...]:
    """An argparse ``type``: ``default``, ``all`` or comma-separated names of ``pmg_dali.TRANSFORMS``."""
    names = {"default": pmg_dali.PMGConfig().transforms, "all": pmg_dali.TRANSFORMS}.get(text, tuple(text.split(",")))
    try:
        pmg_dali.PMGConfig(transforms=names)
    except ValueError as err:                      # an unknown or repeated name
        raise argparse.ArgumentTypeError(str(err)) from None
    return names


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU, DALI CPU operators, tiny clips")
    parser.add_argument("--batch_size", type=int_arg(1), default=None, help="64 (4 with --quick)")
    parser.add_argument("--num_frames", type=int_arg(1), default=None, help="16 (4 with --quick)")
    parser.add_argument("--size", type=int_arg(2), default=None, help="224 (32 with --quick)")
    parser.add_argument("--dtype", default="bfloat16", choices=["uint8", "float32", "float16", "bfloat16"])
    parser.add_argument("--transforms", type=transforms_arg, default="default",
                        help="'default' (zoom + affine), 'all' (pmg_dali.TRANSFORMS) or a comma-separated list")
    parser.add_argument("--threads", type=int_arg(1), default=None,
                        help="DALI CPU threads (4; 1 with --quick, which also sets torch's threads)")
    parser.add_argument("--steps", type=int_arg(1), default=None)
    parser.add_argument("--repeats", type=int_arg(1), default=None)
    parser.add_argument("--warmup", type=int_arg(0), default=3)
    parser.add_argument("--folder", choices=("yes", "no"), default=None,
                        help="time the nvJPEG folder pipeline (default: yes on a GPU, no on the CPU)")
    parser.add_argument("--files", type=int_arg(1), default=512, help="JPEGs generated for --folder")
    parser.add_argument("--json", default=None, help="benchmarks/results/bench_dali[_quick].json")
    args = parser.parse_args(argv)

    import nvidia.dali
    from pmg_dali import dali

    gpu = not args.quick
    if gpu and not torch.cuda.is_available():
        parser.error("the full benchmark needs a CUDA device; use --quick on a CPU")
    device, device_id = (torch.device("cuda", 0), 0) if gpu else (torch.device("cpu"), None)
    batch = args.batch_size or (4 if args.quick else 64)
    frames, size = args.num_frames or (4 if args.quick else 16), args.size or (32 if args.quick else 224)
    threads = args.threads or (1 if args.quick else 4)
    if args.quick:   # one core each: a busy host's OpenMP spin-waits otherwise swamp tiny torch ops
        torch.set_num_threads(threads)
    steps, repeats = args.steps or (3 if args.quick else 20), args.repeats or (3 if args.quick else 5)
    dtype = getattr(torch, args.dtype)
    try:
        cfg = pmg_dali.PMGConfig(num_frames=frames, size=size, dtype=dtype, transforms=args.transforms)
    except ValueError as err:                      # e.g. a scale compounded over --num_frames (it names it)
        parser.error(str(err))
    native = cfg.replace(dtype=torch.float32) if dtype == torch.bfloat16 else cfg
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g).to(device)
    gen, renderer = pmg_dali.PseudoMotion(cfg), dali.ProgramRenderer(cfg, batch, device="gpu" if gpu else "cpu")

    programs = lambda render: sampled(lambda x, p, c: render(x, p), images, cfg)  # noqa: E731

    paths = {"torch (sample + PseudoMotion, renderer='auto')": programs(lambda x, p: gen(x, program=p.to(device))),
             "dali program-fed (ProgramRenderer)": programs(renderer)}
    pipeline = lambda c: dali_image_pipeline(  # noqa: E731
        lambda x: dali.pseudo_motion(x, c), images, device_id, threads)
    if dtype == torch.bfloat16:
        paths["dali pipeline (pseudo_motion), float16 (native half)"] = dali_pipeline_run(
            pipeline(cfg.replace(dtype=torch.float16)))
        paths["dali pipeline (pseudo_motion), bf16 via torch cast"] = dali_pipeline_run(pipeline(native),
                                                                                     cast=torch.bfloat16)
    else:
        paths[f"dali pipeline (pseudo_motion), {args.dtype}"] = dali_pipeline_run(pipeline(cfg))
    rearrange, stacked = _warp_bodies(cfg, batch)
    paths["dali warp only: rearrange + per-frame warp_affine, uint8"] = dali_pipeline_run(
        dali_image_pipeline(rearrange, images, device_id, threads))
    paths["dali warp only: T warp_affine + stack, uint8"] = dali_pipeline_run(
        dali_image_pipeline(stacked, images, device_id, threads))
    root, skipped = None, {}
    if (gpu if args.folder is None else args.folder == "yes"):
        try:
            folder, root = _folder_paths(cfg, batch, device_id, threads, args.files)
            paths.update(folder)
        except RuntimeError as exc:       # e.g. DALI's decoders without nvImageCodec: keep the other rows
            skipped["dali folder"] = str(exc).strip().splitlines()[-1][:300]

    rows = [{"path": name, "seconds_per_batch": s, "per_s": batch / s}
            for name, s in timed(paths, device, steps, repeats, args.warmup).items()]
    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({os.cpu_count()} cores), DALI CPU operators"
    result = {"device": name, "date": datetime.date.today().isoformat(), "torch": torch.__version__,
              "dali": nvidia.dali.__version__, "python": platform.python_version(), "batch_size": batch,
              "num_frames": frames, "size": size, "dtype": args.dtype, "transforms": list(cfg.transforms),
              "mixup": cfg.mixup, "normalize": cfg.normalize, "threads": threads, "steps": steps,
              "repeats": repeats, "rows": rows, "skipped": skipped}
    print(f"{name}, {result['date']}, torch {torch.__version__}, DALI {nvidia.dali.__version__}; batch {batch}, "
          f"{frames} x {size}^2, {args.dtype}, {'+'.join(cfg.transforms)}, mixup={cfg.mixup}, "
          f"median of {repeats} runs of {steps} batches\n")
    print("| path | clips/s (images/s for decode) | ms / batch |\n|---|---|---|")
    for row in rows:
        print(f"| {row['path']} | {row['per_s']:,.1f} | {1000 * row['seconds_per_batch']:.2f} |")
    for name, why in skipped.items():
        print(f"\nskipped: {name}: {why}")
    path = args.json or f"benchmarks/results/bench_dali{'_quick' if args.quick else ''}.json"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nwrote {path}")
    if root is not None:
        import shutil
        shutil.rmtree(root, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
