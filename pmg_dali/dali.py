"""The DALI engine: pseudo-motion clips rendered by NVIDIA DALI operators (needs the ``dali`` extra).

Motion programs are drawn on the host by the package's one sampler (:func:`pmg_dali.sampling.sample_program`,
every transform of :data:`pmg_dali.TRANSFORMS`) and enter the graph through ``fn.external_source``:

- **per call** (:class:`ProgramRenderer`, :func:`render`): you hand over images and a
  :class:`~pmg_dali.MotionProgram`, DALI renders exactly that program (the loader's ``renderer="dali"``);
- **per batch, inside a pipeline** (:func:`pseudo_motion`, :func:`folder_pipeline`,
  :func:`source_pipeline`): a :class:`ProgramFeed` callback draws batch ``iteration`` of ``epoch``'s
  program from :func:`pmg_dali.seeding.batch_generators` ``(seed, epoch, shard, iteration)`` -- the
  loader's seeding -- and one static graph per pipeline renders it.

Either way the clips follow the reference renderer's contract: ``config.layout``, ``config.dtype`` and
ImageNet normalisation (DALI has no bfloat16: it renders float32 and torch casts). Both paths pack a
program with the same function (:func:`pmg_dali.dali_graph.program_arrays`).

Epochs and checkpoints (the pipelines): each epoch is a fixed number of whole batches, ended by the
program feed's StopIteration (``pipe.reset()`` or a DALI iterator's ``reset()`` starts the next, and
DALI passes the new epoch to the callbacks). Every callback is a pure function of DALI's ``BatchInfo``,
so DALI's checkpointing restores a pipeline: build it with ``enable_checkpointing=True``, save
``pipe.checkpoint()`` (or ``DALIGenericIterator(...).checkpoints()[0]``), and rebuild the same pipeline
with ``checkpoint=`` (a pipeline keyword): DALI restores the reader and the random state of its own
operators (the crop) and asks the callbacks again for the epoch and iteration it stopped at -- mid-epoch
or at an epoch's end (tested on CPU operators). What a checkpoint cannot carry: the callbacks' inputs
themselves -- restore with the same files, source, config, seed, shard and batch size (DALI's own rule:
another pipeline gives undefined results), and a ``source.load`` that is a function of its indices and
generator (every pmg_dali source is).

Corrupt files (:func:`folder_pipeline`): DALI's decoder cannot skip a sample -- a file it cannot
decode stops the pipeline, and its message does not always name the file. Files are therefore checked
once, up front, by :func:`list_image_files` and failing ones are left out with one warning naming each:
``validate="decode"`` (default) runs DALI's own CPU decoder over every file once and catches empty,
non-image, truncated and garbled files; ``validate="header"`` (PIL parses each header, ~0.1 ms a file)
is the cheap option for trusted data -- it misses corrupt data behind a valid header. Keep the checked
list and pass it as ``files=`` to skip the check on later runs.
"""
from __future__ import annotations

import math
import os
import threading
import warnings

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from .dali_graph import (GraphMotion, ProgramFeed, Variant, apply_color, box_mask, dali_config,  # noqa: F401
                         config_variant, dali_dtype, feed_motion, format_clips, graph_motion, mix_clips, paste_patches,
                         program_arrays, pseudo_motion, render_motion, tables_variant, warp_frames)
from ._checks import check_choice, check_int, check_rank, check_seed
from .config import PMGConfig, parse_size
from .rules import frame_tables
from .program import MotionProgram
from .render import check_images, check_program
from .seeding import batch_generators
from .sources import CROP_RATIO, CROP_SCALE, check_crop_ranges
from .sources import IMG_EXTENSIONS as IMAGE_EXTENSIONS

from nvidia.dali import fn, pipeline_def, types  # noqa: E402 (after the ImportError guard in dali_graph)

__all__ = ["ProgramRenderer", "render", "render_images", "to_torch", "list_image_files", "folder_pipeline",
           "decode_crop", "source_pipeline", "IMAGE_EXTENSIONS",
           # graph helpers (pmg_dali.dali_graph), for your own @pipeline_def
           "pseudo_motion", "ProgramFeed", "feed_motion", "program_arrays", "Variant", "config_variant",
           "tables_variant", "graph_motion", "render_motion", "GraphMotion", "warp_frames", "box_mask", "paste_patches",
           "apply_color", "mix_clips", "format_clips", "dali_dtype"]

_TORCH = {types.UINT8: torch.uint8, types.FLOAT: torch.float32, types.FLOAT16: torch.float16,
          types.INT32: torch.int32, types.INT64: torch.int64, types.BOOL: torch.bool}


def _check_device_id(device_id) -> int | None:
    """A CUDA device index (int >= 0) or None (DALI's CPU-only pipeline)."""
    return None if device_id is None else check_int("device_id", device_id, 0)


def _check_device(device: str, device_id) -> int | None:
    """The CUDA device index of ``device`` ``"gpu"`` (``device_id``, checked, or the current one), None for
    ``"cpu"`` (``device_id`` ignored)."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"`device` must be 'cpu' or 'gpu', but got {device!r}")
    if device == "cpu":
        return None
    device_id = _check_device_id(device_id)
    if not torch.cuda.is_available():
        raise RuntimeError("`device='gpu'` needs a CUDA device, but torch.cuda.is_available() is False")
    return torch.cuda.current_device() if device_id is None else device_id


def to_torch(output) -> torch.Tensor:
    """A dense DALI ``TensorListCPU`` / ``TensorListGPU`` -> a new torch tensor on the same device."""
    if hasattr(output, "as_array"):                       # TensorListCPU: as_array copies
        return torch.from_numpy(output.as_array())
    from nvidia.dali.plugin.pytorch import feed_ndarray
    tensor = output.as_tensor()
    out = torch.empty(tensor.shape(), dtype=_TORCH[output.dtype], device=torch.device("cuda", output.device_id()))
    feed_ndarray(tensor, out, cuda_stream=torch.cuda.current_stream(out.device))
    return out


class ProgramRenderer:
    """Renders :class:`~pmg_dali.MotionProgram` s with DALI operators, to the reference renderer's contract.

    Each pipeline variant (uint8 or float images, resize or not, and the program's
    :func:`~pmg_dali.dali_graph.tables_variant`: affine or perspective warp, colour, cutmix paste, mix
    mode) is built on first use and reused; batches of up to ``batch_size`` clips are fed through
    ``fn.external_source`` (arrays of :func:`~pmg_dali.dali_graph.program_arrays`).

    Example::

        renderer = ProgramRenderer(cfg, batch_size=64, device="gpu")
        program = sample_program(cfg, 64, generator=g)        # the same program every engine gets
        clips = renderer(images, program)                     # torch tensor, cfg.layout / cfg.dtype

    Args:
        config: the :class:`~pmg_dali.PMGConfig` (``recursion="composed"``).
        batch_size: the largest batch a call renders.
        device: ``"gpu"`` (clips come back on ``cuda:device_id``) or ``"cpu"`` (DALI CPU operators).
        device_id: CUDA device (default: the current one); ignored on ``"cpu"``.
        num_threads: DALI CPU worker threads.
    """

    def __init__(self, config: PMGConfig, batch_size: int, device: str = "gpu", device_id: int | None = None,
                 num_threads: int = 2):
        self.config, self.batch_size, self.device = dali_config(config), check_int("batch_size", batch_size, 1), device
        self.device_id = _check_device(device, device_id)
        self.num_threads = check_int("num_threads", num_threads, 1)
        self._pipelines: dict[tuple, object] = {}

    def __repr__(self) -> str:
        return f"ProgramRenderer(batch_size={self.batch_size}, device={self.device!r}, device_id={self.device_id})"

    def __call__(self, images: torch.Tensor, program: MotionProgram) -> torch.Tensor:
        """Render ``program`` from ``images`` (B, 3, H, W), uint8 0-255 or float in [0, 1], any H, W.

        Returns clips on ``cuda:device_id`` (gpu) or the CPU in ``config.layout`` / ``config.dtype``.
        """
        check_images(images)
        check_program(program, images, self.config)
        b, cfg = program.batch_size, self.config
        if b > self.batch_size:
            raise ValueError(f"`program` must have at most batch_size={self.batch_size} clips, but got {b}")
        if b == 0:
            return self._empty()
        key, inputs = self._inputs(images, program)
        pipe = self._pipelines.get(key)
        if pipe is None:
            pipe = self._pipelines[key] = self._build(*key)
        stream = {}
        if self.device == "gpu":
            stream = {"cuda_stream": torch.cuda.current_stream(self.device_id).cuda_stream}
        for name, value in inputs.items():
            pipe.feed_input(name, value, **(stream if name == "images" else {}))
        (clips,) = pipe.run()
        clips = to_torch(clips)
        return clips.to(cfg.dtype) if clips.dtype != cfg.dtype else clips

    def _empty(self) -> torch.Tensor:
        t, (h, w) = self.config.num_frames, self.config.size
        shape = (0, 3, t, h, w) if self.config.layout == "BCTHW" else (0, t, 3, h, w)
        device = "cpu" if self.device == "cpu" else torch.device("cuda", self.device_id)
        return torch.zeros(shape, dtype=self.config.dtype, device=device)

    def _inputs(self, images: torch.Tensor, program: MotionProgram) -> tuple[tuple, dict]:
        """The pipeline variant for this call -- (unit, resize, :class:`Variant`) -- and the arrays to feed it."""
        unit = 255.0 if images.dtype == torch.uint8 else 1.0
        hwc = images.permute(0, 2, 3, 1)
        hwc = (hwc if images.dtype == torch.uint8 else hwc.float()).contiguous()
        if self.device == "gpu":
            hwc = hwc.to(torch.device("cuda", self.device_id), non_blocking=True)
        tables = frame_tables(program.to("cpu"))
        variant = tables_variant(tables, self.config.padding_mode)
        inputs = {"images": hwc if self.device == "gpu" else hwc.cpu().numpy(), **program_arrays(tables, variant)}
        resize = tuple(images.shape[-2:]) != tuple(self.config.size)
        return (unit, resize, variant), inputs

    def _build(self, unit: float, resize: bool, variant: Variant):
        cfg, dev = self.config, self.device

        @pipeline_def(batch_size=self.batch_size, num_threads=self.num_threads, device_id=self.device_id,
                      prefetch_queue_depth=1)
        def graph():
            images = fn.external_source(name="images", device=dev, layout="HWC",
                                        dtype=types.UINT8 if unit == 255 else types.FLOAT)
            if resize:
                images = fn.resize(images, resize_x=cfg.size[1], resize_y=cfg.size[0], antialias=True,
                                   dtype=types.FLOAT)
            # the motion arrays stay on the CPU: per-frame arguments of the warps and colour map
            nodes = {name: fn.external_source(name=name) for name in variant.names()}
            return render_motion(images, graph_motion(cfg.num_frames, variant, nodes), cfg, unit)

        pipe = graph()
        pipe.build()
        return pipe


_PIPELINE_CACHE: dict[tuple, ProgramRenderer] = {}   # (config, device, device_id) -> renderer, last used last
_CACHE_LOCK = threading.Lock()       # a renderer runs one batch at a time: threads take turns


def _render_cached(images: torch.Tensor, program: MotionProgram, cfg: PMGConfig, device: str, device_id):
    """``program`` rendered by the cached renderer of ``(cfg, device, device_id)`` (:func:`_renderer`),
    one thread at a time."""
    with _CACHE_LOCK:
        return _renderer(cfg, program.batch_size, device, device_id)(images, program)


def _renderer(config: PMGConfig, batch_size: int, device: str, device_id) -> ProgramRenderer:
    """The cached renderer for ``(config, device, device_id)``, rebuilt at the next power of two
    >= ``batch_size`` when it is too small; the 4 last used are kept."""
    key = (config, device, device_id)
    renderer = _PIPELINE_CACHE.pop(key, None)
    if renderer is None or renderer.batch_size < batch_size:
        size = 1 << (max(batch_size, 1) - 1).bit_length()
        renderer = ProgramRenderer(config, size, device=device, device_id=device_id)
    _PIPELINE_CACHE[key] = renderer
    if len(_PIPELINE_CACHE) > 4:
        del _PIPELINE_CACHE[next(iter(_PIPELINE_CACHE))]
    return renderer


def render(images: torch.Tensor, program: MotionProgram, cfg: PMGConfig, device: str = "cpu",
           device_id: int | None = None) -> torch.Tensor:
    """Render ``program`` from ``images`` (B, 3, H, W) with DALI operators on ``device`` ("cpu" or
    "gpu"): the same tensor contract (layout, dtype, normalisation) as :func:`pmg_dali.render.render`.

    Keeps the last few :class:`ProgramRenderer` s (pipelines) in a small cache, one per config and
    device, sized to a power of two and rebuilt only for a larger batch: a renderer takes any smaller
    batch, so a trailing partial batch reuses the pipelines of the full ones. Hold your own renderer
    to control its lifetime. Threads that render through the cache take turns.
    """
    check_program(program, values=False)                 # the renderer checks the tables
    dali_config(cfg, "cfg")                              # before the self-check runs on it
    device_id = _check_device(device, device_id)
    check_images(images, values=False)                   # the renderer checks the pixel values
    from .engine_check import ensure_engine               # first use on this device: the canary
    ensure_engine("dali", images, cfg, auto=False,
                  device="cpu" if device == "cpu" else torch.device("cuda", device_id or 0))
    return _render_cached(images, program, cfg, device, device_id)


def render_images(images: torch.Tensor, program: MotionProgram, cfg: PMGConfig) -> torch.Tensor:
    """The DALI engine's function (:mod:`pmg_dali.engines`): :func:`render` on the images' device -- CPU
    operators for CPU images, GPU operators on the images' CUDA device -- without the self-check
    (:class:`pmg_dali.PseudoMotion` runs it, ``renderer="dali"``)."""
    check_program(program, values=False)                 # the renderer checks the tables
    dali_config(cfg, "cfg")
    check_images(images, values=False)                   # the renderer checks the pixel values
    if images.device.type == "cuda":
        return _render_cached(images, program, cfg, "gpu", _check_device("gpu", images.device.index))
    return _render_cached(images, program, cfg, "cpu", None)


# ---- image files ------------------------------------------------------------------------------------

def _header_error(path: str) -> str | None:
    """Why ``path`` does not open as an image (PIL reads the header only), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as im:
            if min(im.size) < 1:
                return f"size {im.size}"
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


NO_DECODER = ("DALI could not load nvImageCodec (libnvimgcodec), which its image decoders need: install "
              "`nvidia-nvimgcodec-cu13` (a dependency of nvidia-dali-cuda130 that an install with --no-deps or "
              "an offline copy of DALI leaves out)")


class _DecodeProbe:
    """Decodes batches of files with DALI's CPU decoder (the pipelines' decoder); a failure makes
    DALI drop the pipeline, so a fresh one is built for the next batch."""

    def __init__(self, batch_size: int, num_threads: int):
        self.batch_size, self.num_threads, self.pipe = batch_size, num_threads, None

    def ok(self, paths: list[str]) -> bool:
        if self.pipe is None:
            @pipeline_def(batch_size=self.batch_size, num_threads=self.num_threads, device_id=None,
                          prefetch_queue_depth=1)
            def probe():
                return fn.decoders.image(fn.external_source(name="encoded"), device="cpu").shape()
            self.pipe = probe()
            try:
                self.pipe.build()
            except RuntimeError as exc:     # DALI >= 2 decodes through nvImageCodec, a separate wheel
                if "nvimgcodec" not in str(exc).lower():
                    raise
                self.pipe = None
                raise RuntimeError(NO_DECODER) from None
        self.pipe.feed_input("encoded", [np.fromfile(p, dtype=np.uint8) for p in paths])
        try:
            self.pipe.run()
            return True
        except RuntimeError:
            self.pipe = None
            return False

    def failures(self, paths: list[str]) -> list[str]:
        """The files of ``paths`` that do not decode: batches that fail are bisected."""
        if self.ok(paths):
            return []
        if len(paths) == 1:
            return list(paths)
        mid = len(paths) // 2
        return self.failures(paths[:mid]) + self.failures(paths[mid:])


def list_image_files(root: str, validate: str = "decode", num_threads: int = 2) -> list[str]:
    """Every image file under ``root`` (recursively, sorted; extensions :data:`IMAGE_EXTENSIONS`,
    any case), checked once so that a corrupt file cannot stop a DALI pipeline mid-epoch.

    Args:
        root: a folder.
        validate: ``"decode"`` (default: PIL parses each header, then DALI's own CPU decoder decodes
            every file once, in batches -- catches truncated and garbled data too, at the cost of one
            CPU decode of the data set; keep the list and pass it as ``files=``), ``"header"`` (the
            header check only: empty files, non-images, unknown formats; ~0.1 ms a file) or ``"none"``.
        num_threads: DALI threads for ``"decode"``.
    Returns:
        The paths that passed; each left-out file is named, with the reason, in one warning.
    """
    check_choice("validate", validate, ("header", "decode", "none"))
    if not isinstance(root, (str, os.PathLike)) or not os.path.isdir(root):
        raise ValueError(f"`root` must be an existing folder, but got {root!r}")
    files = sorted(os.path.join(folder, name) for folder, _, names in os.walk(root, followlinks=True)
                   for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
    bad: dict[str, str] = {}
    if validate != "none":
        bad = {path: why for path in files if (why := _header_error(path)) is not None}
    if validate == "decode":
        probe, good = _DecodeProbe(64, num_threads), [p for p in files if p not in bad]
        for start in range(0, len(good), 64):
            for path in probe.failures(good[start:start + 64]):
                bad[path] = "DALI's decoder failed"
    if bad:
        warnings.warn(f"pmg_dali.dali: leaving out {len(bad)} unreadable image file(s) under {root!r}: "
                      + "; ".join(f"{p} ({why})" for p, why in bad.items()), RuntimeWarning, stacklevel=2)
    files = [p for p in files if p not in bad]
    if not files:
        raise ValueError(f"`root` must contain readable image files {IMAGE_EXTENSIONS}, but {root!r} has none")
    return files


# ---- pipelines --------------------------------------------------------------------------------------

def _check_shards(batch_size, shard_id, num_shards, seed) -> tuple[int, int, int, int]:
    """``batch_size`` >= 1, shard ``shard_id`` of ``num_shards`` and the ``seed``, as ints."""
    check_seed(seed)
    num_shards = check_int("num_shards", num_shards, 1)
    shard_id = check_rank("shard_id", shard_id, "num_shards", num_shards)
    return check_int("batch_size", batch_size, 1), shard_id, num_shards, int(seed)


def _paths(files) -> list[str]:
    """:func:`folder_pipeline`'s ``files``: a non-empty list or tuple of str / os.PathLike paths, as str."""
    if isinstance(files, (str, bytes, os.PathLike)):
        raise TypeError(f"`files` must be a list of paths, but got one path {files!r}")
    if not isinstance(files, (list, tuple)):
        raise TypeError(f"`files` must be a list of paths, but got {type(files).__name__}")
    for i, f in enumerate(files):
        if not isinstance(f, (str, os.PathLike)):
            raise TypeError(f"`files` must be a list of paths (str or os.PathLike), but files[{i}] is "
                            f"{type(f).__name__} {f!r}")
    if not files:
        raise ValueError(f"`files` must list at least one image file, but got {files!r}")
    return [os.fspath(f) for f in files]


_CROP_NAMES = ("random_area", "random_aspect_ratio")    # the crop ranges in DALI's words (sources' scale, ratio)


def _check_decode(size, device_id, random_area, random_aspect_ratio) -> tuple[int, int]:
    """:func:`decode_crop`'s arguments checked (``size`` as (H, W))."""
    _check_device_id(device_id)
    check_crop_ranges(random_area, random_aspect_ratio, _CROP_NAMES)
    return parse_size(size)


def decode_crop(encoded, size: tuple[int, int], device_id: int | None, random_area: tuple[float, float] = CROP_SCALE,
                random_aspect_ratio: tuple[float, float] = CROP_RATIO):
    """:func:`folder_pipeline`'s image stage, inside a ``@pipeline_def``: encoded files -> decoded (nvJPEG
    on the GPU when ``device_id`` is given, else on the CPU) with a random-resized crop, resized to
    ``size`` (H, W) with antialiasing."""
    size = _check_decode(size, device_id, random_area, random_aspect_ratio)
    images = fn.decoders.image_random_crop(encoded, device="cpu" if device_id is None else "mixed",
                                           output_type=types.RGB, random_area=list(random_area),
                                           random_aspect_ratio=list(random_aspect_ratio))
    return fn.resize(images, resize_x=size[1], resize_y=size[0], antialias=True)


def folder_pipeline(root: str | None, config: PMGConfig, batch_size: int, device_id: int | None = 0,
                    seed: int = 0, shard_id: int = 0, num_shards: int = 1, *, files: list[str] | None = None,
                    validate: str = "decode", random_area: tuple[float, float] = CROP_SCALE,
                    random_aspect_ratio: tuple[float, float] = CROP_RATIO, shuffle: bool = True,
                    num_threads: int = 4, reader_name: str = "Reader", **pipeline_kwargs):
    """A DALI pipeline: image files -> decode + random-resized crop -> clips of host-drawn programs.

    ``fn.readers.file`` (sharded and shuffled as every DALI reader: ``shard_id`` of ``num_shards``;
    ``pad_last_batch=True``, so an epoch is ``ceil(ceil(len(files) / num_shards) / batch_size)`` whole
    batches, its last one filled by repeating the shard's last file) -> ``fn.decoders.image_random_crop``
    (nvJPEG, ``device="mixed"``, when ``device_id`` is a GPU; the CPU decoder when None) -> ``fn.resize``
    to ``config.size`` -> the program of each batch, drawn on the host (:class:`ProgramFeed`: every
    transform of ``config``; batch ``iteration`` of ``epoch`` gets the program ``PseudoMotionLoader``
    draws for step ``iteration`` of ``epoch`` on rank ``shard_id`` with this ``seed``) -> rendered by
    :func:`render_motion`. Outputs ``(video, index)``: clips as ``config`` describes (bfloat16 comes out
    as float32) and each clip's index (int32, shape (1,)) into the file list.

    Epochs: the program feed ends each epoch with StopIteration after the reader's batches of one epoch,
    so reader and programs stay in step. Iterate with
    ``nvidia.dali.plugin.pytorch.DALIGenericIterator(pipe, ["video", "index"], reader_name="Reader")``
    (``last_batch_policy=LastBatchPolicy.PARTIAL`` drops the repeated files of the last batch, ``DROP``
    the whole last batch when it is not full), or call ``pipe.run()`` until StopIteration and then
    ``pipe.reset()``. Checkpoints: pass ``enable_checkpointing=True`` and, to resume, ``checkpoint=``
    (``pipeline_kwargs``); the reader's position, the crop's random state and the (epoch, iteration) of
    the program feed are restored.

    Args:
        root: folder of images (listed recursively by :func:`list_image_files` with ``validate``);
            ignored when ``files`` is given.
        files: an already checked list of paths (e.g. from ``list_image_files(root, "decode")``).
        random_area, random_aspect_ratio: the random-resized crop (fraction of the area, w / h).
        pipeline_kwargs: more ``Pipeline`` arguments (``prefetch_queue_depth``, ``enable_checkpointing``,
            ``checkpoint``, ...).
    Returns:
        The (unbuilt) ``nvidia.dali.Pipeline``.
    """
    batch_size, shard_id, num_shards, seed = _check_shards(batch_size, shard_id, num_shards, seed)
    dali_config(config)                                   # before the files are listed
    _check_decode(config.size, device_id, random_area, random_aspect_ratio)
    files = list_image_files(root, validate=validate, num_threads=num_threads) if files is None else _paths(files)
    batches = math.ceil(math.ceil(len(files) / num_shards) / batch_size)   # the reader's, pad_last_batch=True

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed,
                  **pipeline_kwargs)
    def pipe():
        encoded, index = fn.readers.file(files=files, labels=list(range(len(files))), shard_id=shard_id,
                                         num_shards=num_shards, random_shuffle=shuffle, pad_last_batch=True,
                                         name=reader_name)
        images = decode_crop(encoded, config.size, device_id, random_area, random_aspect_ratio)
        return pseudo_motion(images, config, seed=seed, shard_id=shard_id, batches_per_epoch=batches), index

    return pipe()


class _SourceFeed:
    """``fn.external_source`` callback: batch ``info.iteration`` of epoch ``info.epoch_idx`` of an
    image source in ``torch.utils.data.DistributedSampler``'s order for (seed, epoch, shard) -- the
    order ``PseudoMotionLoader`` uses -- the uneven tail and the incomplete last batch dropped; the
    images loaded with the batch's ``"load"`` generator of :func:`pmg_dali.seeding.batch_generators`,
    as the loader loads them."""

    def __init__(self, source, size, batch_size: int, seed: int, shard_id: int, num_shards: int, device):
        self.source, self.size, self.batch_size = source, size, batch_size
        self.seed, self.shard_id, self.num_shards, self.device = seed, shard_id, num_shards, device
        self.batches = len(source) // num_shards // batch_size
        self._alive: list = []   # GPU batches handed to DALI stay referenced while it copies them
        self._sampler = DistributedSampler(source, num_replicas=num_shards, rank=shard_id, seed=seed,
                                           drop_last=True)
        self._order = (None, None)   # (epoch, this shard's indices), made once per epoch
        if self.batches == 0:
            raise ValueError(f"`source` must hold at least batch_size * num_shards = "
                             f"{batch_size * num_shards} images, but has {len(source)}")

    def __call__(self, info):
        if info.iteration >= self.batches:
            raise StopIteration
        if self._order[0] != info.epoch_idx:
            self._sampler.set_epoch(info.epoch_idx)
            self._order = (info.epoch_idx, torch.tensor(list(self._sampler), dtype=torch.long))
        index = self._order[1][info.iteration * self.batch_size:(info.iteration + 1) * self.batch_size]
        generator = batch_generators(self.seed, info.epoch_idx, self.shard_id, info.iteration)["load"]
        images = self.source.load(index, self.size, self.device, generator=generator)
        images = images.permute(0, 2, 3, 1).contiguous()
        index = index.to(torch.int32).reshape(-1, 1)
        if self.device == "cpu":
            return images.cpu().numpy(), index.numpy()
        torch.cuda.current_stream(self.device).synchronize()
        batch = (images, index.to(self.device))
        self._alive = (self._alive + [batch])[-4:]
        return batch


def source_pipeline(source, config: PMGConfig, batch_size: int, device_id: int | None = 0, seed: int = 0,
                    shard_id: int = 0, num_shards: int = 1, *, num_threads: int = 2, **pipeline_kwargs):
    """A DALI pipeline over a pmg_dali image source (``SyntheticImages``, ``TensorImages``, ...):
    ``source.load`` through ``fn.external_source`` -> clips of host-drawn programs, rendered by DALI.

    The same batches as ``PseudoMotionLoader(source, batch_size, config, seed=seed, rank=shard_id,
    world_size=num_shards, mask_ratio=None)`` (``drop_last=True``, ``shuffle=True``; the loader's
    ``set_epoch(e)`` is this pipeline's epoch ``e``, counted by its resets): batch ``iteration`` of
    epoch ``e`` has the loader's indices (``torch.utils.data.DistributedSampler`` with this seed and
    epoch), its images (``source.load`` with the loader's ``"load"`` generator of
    :func:`pmg_dali.seeding.batch_generators`) and its program (:class:`ProgramFeed`: the same sampler
    and ``"program"`` generator; every transform of ``config``), so its clips equal the loader's within
    2/255 (uint8 output within 2 levels: the two engines' tolerances against the reference together) --
    only DALI's arithmetic differs. ``len(source) // num_shards // batch_size`` batches per epoch.

    Outputs ``(video, index)`` as :func:`folder_pipeline`; iterate with
    ``DALIGenericIterator(pipe, ["video", "index"])`` (no reader: the epoch ends by StopIteration and
    the iterator's reset starts the next), or ``pipe.run()`` until StopIteration, then ``pipe.reset()``.
    Checkpoints: ``enable_checkpointing=True`` and ``checkpoint=`` (``pipeline_kwargs``) resume at the
    saved (epoch, iteration): both callbacks are pure functions of DALI's ``BatchInfo``.
    """
    batch_size, shard_id, num_shards, seed = _check_shards(batch_size, shard_id, num_shards, seed)
    dali_config(config)
    device = "cpu" if _check_device_id(device_id) is None else torch.device("cuda", device_id)
    feed = _SourceFeed(source, config.size, batch_size, seed, shard_id, num_shards, device)

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed,
                  **pipeline_kwargs)
    def pipe():
        images, index = fn.external_source(source=feed, num_outputs=2, batch=True, batch_info=True,
                                           layout=["HWC", ""], device="cpu" if device_id is None else "gpu")
        return pseudo_motion(images, config, seed=seed, shard_id=shard_id, batches_per_epoch=feed.batches), index

    return pipe()
