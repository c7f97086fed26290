"""The benchmark harness: every generation path and the baselines side by side, on whatever device is
present; the scripts in this folder import it (``python benchmarks/bench_generate.py`` prints the table
and writes JSON + a log-scale PNG to ``benchmarks/results/``; ``--quick`` runs in seconds).

The program is the default one: zoom + affine, frame Mixup, ImageNet-normalised ``--dtype`` (bf16)
BCTHW clips, from uint8 images already at the output size (random pixels: bilinear warps cost the
same on any content). Every path pays for its own parameter sampling: the torch, DALI and kornia
paths draw a :class:`~pmg_dali.MotionProgram` per batch from a CPU generator (the DALI pipeline path in
its ``fn.external_source`` program feed, :class:`pmg_dali.dali.ProgramFeed`), and the CPU baseline
draws in its workers.

The CPU baseline is what a user would otherwise run: a ``torch.utils.data.DataLoader`` with one
worker per core (``os.sched_getaffinity``) whose workers make clips with PIL -- per clip, frame t is
frame t-1 warped by the clip's per-step map (``Image.transform``, bilinear, uint8), the literal
recursive PMG -- then frame Mixup and normalisation in NumPy; ``pin_memory`` on CUDA, and the
batches are moved to the device in the main process. It is timed as clips/s reaching the device
over many batches after warm-up. (Each worker item is a whole batch, ``batch_size=None``: the
per-clip work of a per-sample ``Dataset`` without its collate copy, which if anything favours it.)

Timing (this module is the one place for it): each path
``run(n)`` makes n batches; a timed run is ``steps`` batches between two device synchronisations;
paths that do not keep background work take turns within each repeat (a drift in machine load hits
them alike), paths that do (DALI's pipelined executor, DataLoader workers) are timed alone; the
figure is the median of ``repeats`` runs after ``warmup`` batches.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import importlib.util
import os
import platform
import statistics
import sys
import time
from functools import partial
from typing import Callable, NamedTuple

import numpy as np
import torch

from pmg_dali import TRANSFORMS, MotionProgram, PMGConfig, PseudoMotion, PseudoMotionLoader, TensorImages, tube_mask
from pmg_dali.loader import batch_generators
from pmg_dali.sampling import sample_program

__all__ = ["sync", "timed", "working", "each", "copy_bandwidth", "environment", "pil_render", "kornia_render",
           "ClipBatches", "cpu_dataloader", "sampled", "endless", "generation_paths", "run_generate", "table",
           "write_json"]

Render = Callable[[torch.Tensor, MotionProgram, PMGConfig], torch.Tensor]


# ---- timing -----------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(paths: dict, device, steps: int, repeats: int, warmup: int, progress: bool = False) -> dict:
    """Median seconds per batch of each ``paths[name](n)`` (which makes n batches): ``warmup``
    batches each, then ``repeats`` rounds in which the paths take turns running ``steps`` batches
    between two synchronisations of ``device``. ``progress``: a line on stderr per round."""
    for run in paths.values():
        run(warmup)
    sync(device)
    times = {name: [] for name in paths}
    for k in range(repeats):
        for name, run in paths.items():
            start = time.perf_counter()
            run(steps)
            sync(device)
            times[name].append((time.perf_counter() - start) / steps)
        if progress:
            print(f"  round {k + 1}/{repeats} of {len(paths)} path(s) done ({', '.join(paths)[:80]})",
                  file=sys.stderr, flush=True)
    return {name: statistics.median(t) for name, t in times.items()}


def write_jpegs(folder: str, count: int, size=(375, 500), device=None) -> None:
    """``count`` JPEGs (quality 90) of ``size`` (H, W) made from shader images: a folder to decode.
    The images are drawn on ``device`` (a GPU makes them in milliseconds), encoded by PIL."""
    from PIL import Image

    from pmg_dali import SyntheticImages
    source = SyntheticImages("shader", seed=123)
    for start in range(0, count, 32):
        images = source.load(range(start, min(start + 32, count)), size, device).cpu()
        for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
            Image.fromarray(image).save(os.path.join(folder, f"{start + i:06d}.jpg"), quality=90)


def copy_bandwidth(device, nbytes: int | None = None, repeats: int = 10) -> float:
    """Device memory bandwidth in bytes (read + written) per second: the median of ``repeats``
    copies of ``nbytes`` (1 GiB on CUDA, 256 MiB on CPU) from one buffer to another."""
    device = torch.device(device)
    nbytes = nbytes or (1 << 30 if device.type == "cuda" else 1 << 28)
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    steps = 10 if device.type == "cuda" else 1
    seconds = timed({"copy": lambda n: [dst.copy_(src) for _ in range(n)]}, device, steps, repeats, 1)["copy"]
    return 2 * nbytes / seconds


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(device) -> dict:
    """Device, date, library versions and CPU counts, for the record of a run."""
    device = torch.device(device)
    cores = len(os.sched_getaffinity(0))
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU {platform.processor() or platform.machine()} ({cores} cores)")
    dali = next(filter(None, (_version(d) for d in ("nvidia-dali-cuda130", "nvidia-dali-cuda120"))), None)
    return {"device": name, "date": datetime.date.today().isoformat(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "kornia": _version("kornia"),
            "dali": dali, "triton": _version("triton"), "numpy": np.__version__, "pillow": _version("pillow"),
            "torchvision": _version("torchvision"),
            "transformers": _version("transformers"), "pmg_dali": _version("pmg_dali"),
            "cpu_count": os.cpu_count(), "cpu_affinity": cores, "torch_threads": torch.get_num_threads()}


# ---- baselines --------------------------------------------------------------------------------

def _pil_map(frame_to_source: np.ndarray) -> tuple:
    """PIL ``Image.transform`` method and data for a frame -> source map in the package convention
    (PIL puts pixel centres at +0.5)."""
    from PIL import Image

    shift = np.eye(3)
    shift[:2, 2] = 0.5
    m = shift @ frame_to_source @ np.linalg.inv(shift)
    m = m / m[2, 2]
    if np.allclose(m[2, :2], 0, atol=1e-12):
        return Image.Transform.AFFINE, tuple(m[:2].ravel())
    return Image.Transform.PERSPECTIVE, tuple(m.ravel()[:8])


def _pil_clip(image: np.ndarray, homography: np.ndarray, out: np.ndarray) -> None:
    """Frames of one clip into ``out`` (T, H, W, 3) uint8: frame 0 is the image through the first
    view, frame t is frame t-1 warped by the per-step map (the literal recursion)."""
    from PIL import Image

    t, h, w = out.shape[:3]
    step = _pil_map(np.linalg.inv(homography[min(1, t - 1)] @ np.linalg.inv(homography[0])))
    frame = Image.fromarray(image)
    if not np.allclose(homography[0], np.eye(3)):
        frame = frame.transform((w, h), *_pil_map(np.linalg.inv(homography[0])), resample=Image.Resampling.BILINEAR)
    out[0] = np.asarray(frame)
    for k in range(1, t):
        frame = frame.transform((w, h), *step, resample=Image.Resampling.BILINEAR)
        out[k] = np.asarray(frame)


def pil_render(images: torch.Tensor, program: MotionProgram, cfg: PMGConfig) -> torch.Tensor:
    """The classic CPU pipeline: per clip, PIL warps frame t-1 into frame t (uint8, bilinear) with
    the clip's per-step map; then frame Mixup and ImageNet normalisation in NumPy float32.

    Geometric programs only (the colour matrix and cutmix paste are not drawn). images: (B, 3, H, W)
    uint8 on the CPU at ``cfg.size``. Returns (B, 3, T, H, W) (or ``cfg.layout``) in ``cfg.dtype``.
    """
    hwc = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
    hom = program.homography.double().numpy()
    b, t, (h, w) = hwc.shape[0], cfg.num_frames, cfg.size
    clips = np.empty((b, t, h, w, 3), np.uint8)
    for i in range(b):
        _pil_clip(hwc[i], hom[i], clips[i])
    x = clips.astype(np.float32)
    x *= np.float32(1 / 255)
    if program.mix_index is not None:
        lam = program.mix_lambda.numpy().reshape(b, -1, 1, 1, 1).astype(np.float32)
        x = x * lam + x[program.mix_index.numpy()] * (1 - lam)
    if cfg.dtype == torch.uint8:
        x = np.rint(x * 255)
    elif cfg.normalize:
        x -= np.float32(cfg.mean)
        x /= np.float32(cfg.std)
    x = x.transpose(0, 4, 1, 2, 3) if cfg.layout == "BCTHW" else x.transpose(0, 1, 4, 2, 3)
    return torch.from_numpy(np.ascontiguousarray(x)).to(cfg.dtype)


def kornia_render(images: torch.Tensor, program: MotionProgram, cfg: PMGConfig) -> torch.Tensor:
    """What a user writes with kornia: repeat each image T times, ``warp_perspective`` every frame
    with its matrix, frame Mixup, normalise, cast. Geometric programs only; images uint8 at ``cfg.size``."""
    from kornia.geometry.transform import warp_perspective

    b, t, (h, w) = images.shape[0], cfg.num_frames, cfg.size
    x = images.float().div_(255)
    frames = x[:, None].expand(b, t, 3, h, w).reshape(b * t, 3, h, w)
    hom = program.homography.to(images.device).reshape(b * t, 3, 3)
    clips = warp_perspective(frames, hom, (h, w), mode="bilinear", align_corners=True).view(b, t, 3, h, w)
    if program.mix_index is not None:
        lam = program.mix_lambda.to(images.device).view(b, 1, 1, 1, 1)
        clips = lam * clips + (1 - lam) * clips[program.mix_index.to(images.device)]
    mean = torch.tensor(cfg.mean, device=images.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(cfg.std, device=images.device).view(1, 1, 3, 1, 1)
    if cfg.dtype == torch.uint8:
        clips = clips.mul(255).round_()
    elif cfg.normalize:
        clips = (clips - mean) / std
    return (clips.transpose(1, 2) if cfg.layout == "BCTHW" else clips).to(cfg.dtype).contiguous()


class ClipBatches(torch.utils.data.Dataset):
    """Item k is batch k of clips made on the CPU by ``render(images, program, cfg)``, for a
    ``DataLoader(..., batch_size=None)``: ``{"video"}`` (+ ``"mask"``, a tube mask, with
    ``mask_ratio``). Batch k uses images ``(k * B + arange(B)) % N`` and the program and mask of
    :func:`pmg_dali.loader.batch_generators` ``(seed, 0, 0, k)``."""

    def __init__(self, images: torch.Tensor, cfg: PMGConfig, render: Render, batch_size: int, seed: int = 0,
                 mask_ratio: float | None = None, patch_size: int = 16, tubelet_size: int = 2):
        self.images, self.cfg, self.render, self.batch_size, self.seed = images, cfg, render, batch_size, seed
        self.mask = (mask_ratio, patch_size, tubelet_size)

    def __len__(self) -> int:
        return 2**31 - 1

    def __getitem__(self, k: int) -> dict:
        gens = batch_generators(self.seed, 0, 0, k)
        idx = (k * self.batch_size + torch.arange(self.batch_size)) % self.images.shape[0]
        program = sample_program(self.cfg, self.batch_size, generator=gens["program"])
        batch = {"video": self.render(self.images[idx], program, self.cfg)}
        ratio, patch, tubelet = self.mask
        if ratio is not None:
            batch["mask"] = tube_mask(self.batch_size, self.cfg.num_frames, self.cfg.size, patch, tubelet,
                                      ratio, generator=gens["mask"])
        return batch


def cpu_dataloader(images: torch.Tensor, cfg: PMGConfig, render: Render, batch_size: int, device,
                   workers: int | None = None, **dataset_kw):
    """Batches forever from a ``DataLoader`` over :class:`ClipBatches` with ``workers`` processes
    (default: one per core), pinned on CUDA, each moved to ``device``. Returns ``(next_batch, close)``."""
    device = torch.device(device)
    workers = len(os.sched_getaffinity(0)) if workers is None else workers
    loader = torch.utils.data.DataLoader(
        ClipBatches(images.cpu(), cfg, render, batch_size, **dataset_kw), batch_size=None,
        num_workers=workers, pin_memory=device.type == "cuda")
    it = iter(loader)

    def next_batch() -> dict:
        return {k: v.to(device, non_blocking=True) for k, v in next(it).items()}

    def close() -> None:      # the iterator shuts its workers down when it is collected
        nonlocal it
        it = None
        gc.collect()
    return next_batch, close


# ---- DALI pipelines ---------------------------------------------------------------------------

def dali_image_pipeline(body, images: torch.Tensor, device_id: int | None, threads: int):
    """A built DALI pipeline that feeds the same (B, 3, H, W) uint8 image batch (HWC, on the GPU when
    ``device_id`` is set, else the CPU) to ``body(images_node)`` every iteration."""
    from nvidia.dali import fn, pipeline_def

    hwc = images.permute(0, 2, 3, 1).contiguous()
    hwc = hwc.cpu().numpy() if device_id is None else hwc

    @pipeline_def(batch_size=images.shape[0], num_threads=threads, device_id=device_id, seed=0)
    def pipe():
        return body(fn.external_source(source=lambda: hwc, batch=True, layout="HWC",
                                       device="cpu" if device_id is None else "gpu"))

    p = pipe()
    p.build()
    return p


def dali_pipeline_run(pipe, cast: torch.dtype | None = None) -> Callable[[int], None]:
    """``run(n)``: n iterations of a built pipeline, its first output converted to torch (and cast); at
    the end of an epoch (StopIteration) the pipeline is reset and the next epoch goes on."""
    from pmg_dali.dali import to_torch

    def run(n: int) -> None:
        done = 0
        while done < n:
            try:
                out = to_torch(pipe.run()[0])
            except StopIteration:
                pipe.reset()
                continue
            if cast is not None and out.dtype != cast:
                out = out.to(cast)      # the cast a torch user of DALI's output pays
            done += 1
    return run


# ---- generation paths -------------------------------------------------------------------------

class Path(NamedTuple):
    """A timed path: ``build()`` -> ``run(n)`` making n batches (a ``run.close`` is called after)."""
    name: str
    group: str
    what: str
    build: Callable[[], Callable[[int], object]]
    alone: bool = False       # keeps background work (DALI executor, DataLoader workers): timed alone
    min_steps: int = 1


def sampled(render: Render, images: torch.Tensor, cfg: PMGConfig) -> Callable[[int], None]:
    """``run(n)``: n batches, each a program of ``cfg`` sampled from a CPU generator (seeds 0, 1, 2,
    ... across calls) and rendered by ``render(images, program, cfg)``."""
    seeds = iter(range(2**62))

    def run(n: int) -> None:
        for _ in range(n):
            program = sample_program(cfg, images.shape[0], generator=torch.Generator().manual_seed(next(seeds)))
            render(images, program, cfg)
    return run


def each(call: Callable[[], object]) -> Callable[[int], None]:
    """``run(n)``: ``call()`` n times, each result dropped before the next call (as a trainer does:
    a path that kept its n batches alive would be timed under other memory conditions)."""
    def run(n: int) -> None:
        for _ in range(n):
            call()
    return run


def endless(loader: PseudoMotionLoader):
    """The loader's batches forever, epoch after epoch."""
    while True:
        yield from loader
        loader.set_epoch(loader.epoch + 1)


def _loader(images: torch.Tensor, cfg: PMGConfig) -> Callable:
    def build():
        ok = cfg.num_frames % 2 == 0 and all(s % 16 == 0 for s in cfg.size)
        it = endless(PseudoMotionLoader(TensorImages(images.repeat(8, 1, 1, 1)), batch_size=images.shape[0],
                                        config=cfg, device=images.device, mask_ratio=0.75 if ok else None))
        return each(lambda: next(it))
    return build


def _dataloader(images: torch.Tensor, cfg: PMGConfig, render: Render, workers: int) -> Callable:
    def build():
        next_batch, close = cpu_dataloader(images, cfg, render, images.shape[0], images.device, workers)
        for _ in range(2 * workers + 1):      # worker start-up and the first prefetched batches
            next_batch()
        run = each(next_batch)
        run.close = close
        return run
    return build


def _dali_paths(cfg: PMGConfig, images: torch.Tensor, threads: int) -> list[Path]:
    from pmg_dali import dali

    cuda = images.device.type == "cuda"
    device_id = (images.device.index or 0) if cuda else None
    native = cfg.replace(dtype=torch.float32) if cfg.dtype == torch.bfloat16 else cfg
    cast = " (float32, cast to bf16 by torch)" if native is not cfg else ""

    def pipeline():
        return dali_pipeline_run(dali_image_pipeline(lambda x: dali.pseudo_motion(x, native), images,
                                                     device_id, threads), cast=cfg.dtype)

    def program_fed():
        renderer = dali.ProgramRenderer(cfg, images.shape[0], device="gpu" if cuda else "cpu",
                                        device_id=device_id, num_threads=threads)
        return sampled(lambda x, p, c: renderer(x, p), images, cfg)
    return [Path("dali_pipeline", "pmg_dali DALI", "DALI pipeline, graph helper pseudo_motion (programs drawn on "
                 "the host by its fn.external_source feed)" + cast, pipeline, alone=True),
            Path("dali_program_fed", "pmg_dali DALI", "DALI ProgramRenderer (our programs via external_source)",
                 program_fed, alone=True)]


def _torch_paths(cfg: PMGConfig, images: torch.Tensor, per_transform: bool, skipped: dict) -> list[Path]:
    device, group = images.device, "pmg_dali torch"
    render = lambda name, c=cfg: PseudoMotion(c, renderer=name).render_function(device)  # noqa: E731
    fixed, auto = sample_program(cfg, images.shape[0], generator=torch.Generator().manual_seed(0)), render("auto")
    paths = [Path("auto", group, "PseudoMotion, renderer='auto' (sample + render)",
                  partial(sampled, auto, images, cfg)),
             Path("auto_render_only", group, "renderer='auto', one program reused (render only)",
                  lambda: each(lambda: auto(images, fixed, cfg)))]
    usable = {"fused": device.type == "cuda" and importlib.util.find_spec("triton") is not None,
              "cpu": device.type == "cpu", "reference": True}
    for name, ok in usable.items():
        if not ok:
            skipped[name] = f"renderer={name!r} needs {'CUDA and Triton' if name == 'fused' else 'CPU images'}"
            continue
        paths.append(Path(name, group, f"renderer={name!r} (sample + render)",
                          partial(sampled, render(name), images, cfg)))
    paths.append(Path("loader", group, "PseudoMotionLoader (auto renderer, tube mask, over TensorImages)",
                      _loader(images, cfg)))
    for name in TRANSFORMS if per_transform else ():
        one = cfg.replace(transforms=(name,))
        paths.append(Path(f"transform:{name}", "per transform", f"{name} only, renderer='auto'",
                          partial(sampled, render("auto", one), images, one)))
    iterative = cfg.replace(recursion="iterative")
    return paths + [Path("iterative", "reference points", "literal recursion (recursion='iterative', reference)",
                         partial(sampled, render("reference", iterative), images, iterative))]


def generation_paths(cfg: PMGConfig, images: torch.Tensor, per_transform: bool = True,
                     workers: int | None = None, threads: int | None = None) -> tuple[list[Path], dict]:
    """Every path for ``cfg`` (the default program) on the images' device, and the paths skipped
    here with the reason. images: (B, 3, H, W) uint8 at ``cfg.size`` on the device."""
    cuda = images.device.type == "cuda"
    cores = len(os.sched_getaffinity(0))
    workers = cores if workers is None else workers
    skipped = {}
    paths = _torch_paths(cfg, images, per_transform, skipped)
    paths.append(Path("kornia", "reference points", "kornia warp_perspective on T repeated frames + mixup "
                      "(user code)", partial(sampled, kornia_render, images, cfg)))
    try:
        paths += _dali_paths(cfg, images, threads or cores)
    except ImportError as exc:
        skipped["dali"] = f"DALI is not installed ({exc})"
    paths.append(Path("cpu_baseline", "CPU baseline", f"PIL recursive per frame + NumPy mixup, DataLoader "
                      f"{workers} workers{', pinned, to GPU' if cuda else ''}",
                      _dataloader(images, cfg, pil_render, workers), alone=True, min_steps=workers))
    if not cuda:
        from pmg_dali.cpu_render import render_cpu
        paths.append(Path("cpu_renderer_dataloader", "CPU baseline", f"pmg_dali renderer='cpu' in the same "
                          f"DataLoader ({workers} workers)", _dataloader(images, cfg, render_cpu, workers),
                          alone=True, min_steps=workers))
    return paths, skipped


def _failure(exc: Exception) -> str:
    return f"failed: {type(exc).__name__}: {exc}"[:400]


def working(runs: dict, device, failed: dict) -> dict:
    """The entries of ``runs`` (name -> ``run(n)``) that make one batch without raising; the others
    are left out with their error in ``failed``: a path that breaks on a new machine is reported,
    not allowed to lose every other row of the run."""
    kept = {}
    for name, run in runs.items():
        try:
            run(1)
            sync(device)
            kept[name] = run
        except Exception as exc:  # noqa: BLE001 - any failure of one path
            failed[name] = _failure(exc)
            getattr(run, "close", lambda: None)()     # DataLoader workers, DALI threads
    return kept


def _try(path: Path, device, skipped: dict):
    """``path.build()`` after one batch ran through it (:func:`working`), or None."""
    try:
        run = path.build()
    except Exception as exc:  # noqa: BLE001
        skipped[path.name] = _failure(exc)
        return None
    return working({path.name: run}, device, skipped).get(path.name)


def run_generate(args: argparse.Namespace) -> dict:
    """Time every path of :func:`generation_paths` with the settings in ``args`` (see
    :func:`add_arguments`, after :func:`resolve`); returns the result record (rows + settings)."""
    device = torch.device(args.device)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    cfg = PMGConfig(num_frames=args.num_frames, size=args.size, transforms=("zoom", "affine"), mixup="frame",
                    dtype=getattr(torch, args.dtype))
    g = torch.Generator().manual_seed(args.seed)
    images = torch.randint(0, 256, (args.batch_size, 3, args.size, args.size), dtype=torch.uint8, generator=g)
    paths, skipped = generation_paths(cfg, images.to(device), not args.no_transforms, args.workers, args.threads)
    paths = [p for p in paths if not (set(args.skip) & {p.name, p.group, p.name.split(":")[0]})]
    runs = {p.name: run for p in paths if not p.alone and (run := _try(p, device, skipped)) is not None}
    seconds = timed(runs, device, args.steps, args.repeats, args.warmup, progress=True)
    del runs              # free the in-process paths (a loader's live iterator) before the alone ones
    gc.collect()
    for p in paths:
        if p.alone and (run := _try(p, device, skipped)) is not None:
            print(f"  timing {p.name} alone", file=sys.stderr, flush=True)
            try:
                seconds[p.name] = timed({p.name: run}, device, max(args.steps, p.min_steps), args.repeats,
                                        args.warmup)[p.name]
            except Exception as exc:  # noqa: BLE001 - reported in the table, the other rows kept
                skipped[p.name] = _failure(exc)
            getattr(run, "close", lambda: None)()
            del run           # stop DALI's threads before the next path (DataLoader workers fork)
            gc.collect()
    paths = [p for p in paths if p.name in seconds]
    out_bytes = args.batch_size * 3 * args.num_frames * args.size ** 2 * cfg.dtype.itemsize
    bandwidth = copy_bandwidth(device)
    floor = out_bytes / bandwidth
    rows = [{"path": "floor", "group": "floor", "what": f"output bytes / measured copy bandwidth "
             f"({bandwidth / 1e9:,.1f} GB/s read + write)", "seconds_per_batch": floor}]
    rows += [{"path": p.name, "group": p.group, "what": p.what, "seconds_per_batch": seconds[p.name]} for p in paths]
    base = seconds.get("cpu_baseline")
    for row in rows:
        row["clips_per_s"] = args.batch_size / row["seconds_per_batch"]
        row["floor_fraction"] = floor / row["seconds_per_batch"]
        if base is not None:
            row["x_cpu_baseline"] = base / row["seconds_per_batch"]
    program = "zoom+affine, frame mixup, normalised, BCTHW"
    return {"environment": environment(device), "settings": {**vars(args), "program": program},
            "skipped": skipped, "rows": rows}


def table(result: dict) -> str:
    """Markdown: a line with device, date, versions and settings, then one row per path."""
    e, s = result["environment"], result["settings"]
    head = (f"{e['device']}, {e['date']}; torch {e['torch']}, kornia {e['kornia']}, DALI {e['dali']}, "
            f"triton {e['triton']}; {e['cpu_affinity']} CPU cores, {e['torch_threads']} torch thread(s) in "
            f"process, {s['workers']} DataLoader workers. Batch {s['batch_size']}, "
            f"{s['num_frames']} x {s['size']}^2, {s['program']}, {s['dtype']}; median of {s['repeats']} runs "
            f"of {s['steps']} batch(es) after {s['warmup']} warm-up.")
    lines = [head, "", "| path | what | clips/s | ms / batch | x CPU baseline | of floor |", "|---" * 6 + "|"]
    for r in result["rows"]:
        x = f"{r['x_cpu_baseline']:,.2f}" if "x_cpu_baseline" in r else ""
        lines.append(f"| {r['path']} | {r['what']} | {r['clips_per_s']:,.1f} | {1000 * r['seconds_per_batch']:,.2f} "
                     f"| {x} | {r['floor_fraction']:.4f} |")
    lines += [f"\nskipped: {name}: {why}" for name, why in result["skipped"].items()]
    return "\n".join(lines) + "\n"


# ---- command line -----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The settings of :func:`run_generate` (None: a device-dependent default, see :func:`resolve`)."""
    a = parser.add_argument
    a("--device", default=None, help="cuda if available, else cpu (cpu with --quick)")
    a("--quick", action="store_true", help="tiny run for tests: batch 2, 4 x 32^2, 1 step, 2 repeats, "
                                           "one torch thread on CPU")
    a("--batch_size", type=int, default=None)
    a("--num_frames", type=int, default=None)
    a("--size", type=int, default=None)
    a("--dtype", default="bfloat16", choices=["uint8", "float32", "float16", "bfloat16"])
    a("--steps", type=int, default=None, help="batches per timed run (CUDA 10, CPU 1)")
    a("--repeats", type=int, default=None, help="timed runs per path; the median is reported (CUDA 5, CPU 3)")
    a("--warmup", type=int, default=None, help="warm-up batches per path (CUDA 3, CPU 1)")
    a("--workers", type=int, default=None, help="CPU baseline DataLoader workers (default: one per core)")
    a("--threads", type=int, default=None, help="DALI worker threads (default: one per core)")
    a("--torch_threads", type=int, default=None, help="torch threads of the in-process paths (default: torch's)")
    a("--no_transforms", action="store_true", help="skip the per-transform rows")
    a("--skip", default="", type=lambda s: [x for x in s.split(",") if x],
      help="comma-separated path names or groups to leave out, e.g. iterative,transform,dali_pipeline")
    a("--seed", type=int, default=0)
    return parser


def resolve(args: argparse.Namespace, cpu_size: tuple[int, int, int]) -> argparse.Namespace:
    """Fill the None settings: --quick tiny; CUDA batch 64, 16 x 224^2; CPU ``cpu_size`` (B, T, S)."""
    args.device = args.device or ("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    cuda = torch.device(args.device).type == "cuda"
    sizes = (2, 4, 32) if args.quick else (64, 16, 224) if cuda else cpu_size
    args.batch_size, args.num_frames, args.size = (v if v is not None else d for v, d in
                                                   zip((args.batch_size, args.num_frames, args.size), sizes))
    cores = len(os.sched_getaffinity(0))
    args.workers = cores if args.workers is None else args.workers
    args.threads = args.threads or cores
    if args.quick and not cuda and args.torch_threads is None:
        args.torch_threads = 1        # tiny ops on a busy host: OpenMP spin-waits would swamp them
    timing = (1, 2, 1) if args.quick else (10, 5, 3) if cuda else (1, 3, 1)
    args.steps, args.repeats, args.warmup = (v if v is not None else d for v, d in
                                             zip((args.steps, args.repeats, args.warmup), timing))
    return args


def write_json(path: str | None, result: dict) -> None:
    """Write a result record as JSON when ``path`` is given (non-JSON values as text)."""
    if path:
        import json
        with open(path, "w") as f:
            json.dump(result, f, indent=1, default=str)
