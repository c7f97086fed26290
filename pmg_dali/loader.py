"""`PseudoMotionLoader`: the drop-in data loader -- epochs, ranks, exact resume, tube masks.

A batch is a pure function of ``(seed, epoch, rank, step)``: its source indices come from the
epoch's permutation (``torch.utils.data.DistributedSampler`` itself, so the order is literally
PyTorch's), and its random numbers from CPU generators seeded by
``numpy.random.SeedSequence([seed, epoch, rank, step])``. Nothing depends on what ran before, so
resuming is restoring ``(epoch, step)`` and nothing else.

With ``videos=`` the loader mixes real clips with pseudo-motion clips (:mod:`pmg_dali.real_videos`: the
epoch, the ratio and the order of random draws are documented there).
"""
from __future__ import annotations

import math
import signal
import warnings
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, get_worker_info

from ._checks import check_bool, check_choice, check_device, check_int, check_rank, check_seed
from .config import PMGConfig, check_config
from .masks import check_mask_ratio, tube_mask, tube_mask_shape
from .real_videos import RealVideos, draw_programs, plan_epoch, plan_generator
from .engines import RENDERERS, engine
from .module import PseudoMotion
from .program import MotionProgram
from .sampling import sample_program
from .seeding import batch_generators  # re-exported: pmg_dali.loader.batch_generators
from .targets import TARGET_KEYS, batch_targets, check_targets

__all__ = ["PseudoMotionLoader", "PseudoMotionDataset", "batch_generators", "make_renderer", "RENDERERS"]

BACKENDS = ("torch", "dali")                 # the older spelling: torch = renderer "auto"
BATCH_KEYS = ("video", "mask", "index", "is_real", *(k for keys in TARGET_KEYS.values() for k in keys))
Renderer = Callable[[torch.Tensor, MotionProgram], torch.Tensor]


def to_device(value: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device``; through pinned memory and a non-blocking copy on CUDA, so the
    host never waits for the GPU."""
    if device.type == "cuda" and value.device.type == "cpu":
        return value.pin_memory().to(device, non_blocking=True)
    return value.to(device)


def make_renderer(renderer: str, config: PMGConfig) -> Renderer:
    """The render step of ``renderer`` (``"auto"`` or an engine of :mod:`pmg_dali.engines`): a callable
    ``(images (B, 3, H, W), program) -> clips`` in ``config.layout`` / ``config.dtype`` on the images'
    device -- :class:`PseudoMotion`'s, with its self-check. A named engine's module is imported here, so
    a missing package (DALI without the ``dali`` extra) fails now, with its install command."""
    module = PseudoMotion(config, renderer=renderer)       # checks `renderer` and `config`
    if renderer != "auto":
        engine(renderer).function()
    return lambda images, program: module(images, program=program)   # renderers move the program


def resolve_renderer(renderer: str | None, backend: str | None) -> str:
    """``renderer``, or the renderer the deprecated ``backend`` names (with a DeprecationWarning);
    ``renderer="torch"`` is the older spelling passed by position, taken as ``backend="torch"``."""
    if renderer == "torch":                        # the older spelling, passed by position
        if backend is not None:
            raise ValueError(f"give `renderer` only (`backend` is its older name), but got 'torch' where "
                             f"`renderer` goes and backend={backend!r}")
        renderer, backend = None, "torch"
    if backend is not None:
        if renderer is not None:
            raise ValueError(f"give `renderer` only (`backend` is its older name), but got renderer={renderer!r} "
                             f"and backend={backend!r}")
        check_choice("backend", backend, BACKENDS)
        renderer = "dali" if backend == "dali" else "auto"
        warnings.warn(f"PseudoMotionLoader(backend={backend!r}) is deprecated: use renderer={renderer!r} "
                      f"(the names of PseudoMotion's renderers, or 'dali')", DeprecationWarning, stacklevel=3)
    return check_choice("renderer", "auto" if renderer is None else renderer, RENDERERS)


def resolve_rank(rank, world_size) -> tuple[int, int]:
    """Explicit ``rank`` / ``world_size``, else ``torch.distributed``'s when initialised, else 0 / 1."""
    dist = torch.distributed
    initialised = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    world_size = check_int("world_size", world_size, 1)
    return check_rank("rank", rank, "world_size", world_size), world_size


def _sampler_order(sampler: DistributedSampler, epoch: int) -> torch.Tensor:
    """(S,) long: the sampler's indices of ``epoch``."""
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


class PseudoMotionLoader:
    """Pseudo-motion clips of ``source`` images, batch by batch, like a ``DataLoader`` over a
    ``DistributedSampler``. One iteration is one epoch of this rank's share.

    Example::

        loader = PseudoMotionLoader(source, batch_size=32, config=PMGConfig(), device="cuda")
        for epoch in range(epochs):
            loader.set_epoch(epoch)
            for batch in loader:       # {"video": clips, "mask": (B, N) bool, "index": (B,) long}
                ...

        # mixed pre-training: half the clips real (moved by pseudo-motion), half pseudo-motion clips
        loader = PseudoMotionLoader(images, videos=VideoFolder(root, num_frames=16), pmg_ratio=0.5, ...)
        batch["is_real"]                   # (B,) bool: which entries of batch["index"] index the videos

    Randomness: batch ``step`` of ``epoch`` on ``rank`` draws only from
    :func:`batch_generators` ``(seed, epoch, rank, step)`` -- CPU generators for the program, the
    mask and ``source.load`` -- so its indices, program and mask are the same on every device and
    engine; only the rendered pixels depend on the device's arithmetic. ``batch_size`` is per
    rank: the global batch is ``batch_size * world_size``.

    Args:
        source: anything with ``len(source)`` and ``source.load(indices, size, device, generator)``
            -> uint8 (B, 3, H, W) (:class:`pmg_dali.TensorImages`, ...).
        batch_size: clips per batch on this rank.
        config: a :class:`PMGConfig` (default ``PMGConfig()``); ``video`` follows its layout/dtype.
        device: where every tensor of a batch is made and returned.
        renderer: the engine that renders the programs, :class:`pmg_dali.PseudoMotion`'s vocabulary
            (:data:`pmg_dali.engines.RENDERERS`): ``"auto"``, ``"reference"``, ``"fused"``, ``"cpu"`` or
            ``"dali"`` (DALI operators; needs the ``dali`` extra) -- the same programs. A named engine
            that cannot render on ``device`` (``"fused"`` on the CPU) is a ValueError here.
            ``backend="torch" | "dali"``, the older name (``"torch"`` is ``"auto"``), still works for
            this release with a ``DeprecationWarning``.
        seed: int >= 0; with the epoch it fixes the order, with (epoch, rank, step) each batch.
        mask_ratio: tube-mask ratio in [0, 1) (:func:`pmg_dali.tube_mask`); None: no ``"mask"`` key.
        rank, world_size: this process's share; None: from ``torch.distributed`` when it is
            initialised, else 0 / 1.
        drop_last: drop the tail of the permutation that does not split evenly over the ranks
            and a last partial batch; False: pad by wrapping (``DistributedSampler``) and keep
            the last partial batch.
        shuffle: permute the source every epoch (False: index order, still split over ranks).
        patch_size, tubelet_size: the mask's token grid (VideoMAE: 16 and 2).
        prefetch: make the next batch on a side CUDA stream while the current one is used (CUDA
            only). Memory: one more batch held at all times, ``B * 3 * T * H * W * bytes(dtype)``
            (64 x 16 x 224^2: 617 MB float32, 308 MB bf16), and the renderer's transient working
            set -- for the torch reference renderer a peak of about four float32 clip batches (2.5 GB at
            64 x 16 x 224^2) -- now overlaps the training step's own peak
            instead of coming before it.
        num_workers: processes that draw each batch's host part -- its program(s) and tube mask, the
            CPU work of a batch (BENCHMARKS.md) -- ahead of use, as a ``DataLoader``'s workers would
            (``torch.utils.data.DataLoader`` with this many workers over the steps; each worker runs
            torch on one thread). The batches are exactly those of ``num_workers=0`` (everything in
            this process): the host part is a pure function of ``(seed, epoch, rank, step)``. Sources,
            rendering and the device stay in this process; workers start at each pass, ignore SIGINT /
            SIGTERM (this process stops them) and leave the global torch RNG untouched.
        videos: real videos to mix in (``len(videos)``, ``videos.load(indices, size, device,
            generator)`` -> uint8 (B, 3, T, H, W), e.g. :class:`pmg_dali.VideoFolder`); None: images only.
            Batches then carry ``"is_real"`` (B,) bool. Real clips are always drawn with torch
            (:meth:`pmg_dali.PseudoMotion.augment`), also when ``renderer="dali"`` renders the images.
        pmg_ratio: with ``videos``, the fraction in [0, 1] of clips that are pseudo-motion (default
            0.5; exact over an epoch, see :mod:`pmg_dali.real_videos`); must be None without videos.
        mix_per: ``"sample"`` (each clip drawn real or pseudo on its own) or ``"batch"`` (whole batches).
        augment_videos: apply pseudo-motion to the real clips (PMG as augmentation, needs
            ``config.recursion="composed"``) or pass them through unchanged.
        targets: motion ground truth added to each batch, made on ``device`` from the batch's program
            (:func:`pmg_dali.targets.batch_targets`): ``"flow"`` adds ``"flow"`` (B, T - 1, 2, H, W)
            float32 px and ``"flow_valid"`` (B, T - 1, H, W) bool (:meth:`MotionProgram.flow`);
            ``"tracks"`` adds ``"tracks"`` (B, T, N, 2) float32 and ``"tracks_visible"`` (B, T, N) bool of
            the N = (H // patch_size) * (W // patch_size) patch-token centres of frame 0, row-major
            (:meth:`MotionProgram.track` with the frame size). None / ``()`` (default): no extra keys.
            Not with ``videos`` (the motion of a real clip is not known).
    """

    def __init__(self, source, batch_size: int = 32, config: PMGConfig | None = None, device="cuda",
                 renderer: str | None = None, seed: int = 0, mask_ratio: float | None = 0.75,
                 rank: int | None = None, world_size: int | None = None, drop_last: bool = True, *,
                 shuffle: bool = True, patch_size: int = 16, tubelet_size: int = 2, prefetch: bool = False,
                 num_workers: int = 0, videos=None, pmg_ratio: float | None = None, mix_per: str = "sample",
                 augment_videos: bool = True, targets: tuple[str, ...] | None = None, backend: str | None = None):
        if not (hasattr(source, "__len__") and callable(getattr(source, "load", None))):
            raise TypeError(f"`source` must have len(source) and source.load(indices, size, device, "
                            f"generator), but got {type(source).__name__}")
        if len(source) < 1:
            raise ValueError(f"`source` must hold at least one image, but got {len(source)}")
        self.config = PMGConfig() if config is None else check_config(config)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = check_seed(seed)
        self.mask_ratio = None if mask_ratio is None else check_mask_ratio(mask_ratio)
        self.patch_size = check_int("patch_size", patch_size, 1)
        self.tubelet_size = check_int("tubelet_size", tubelet_size, 1)
        if self.mask_ratio is not None:
            tube_mask_shape(self.config.num_frames, self.config.size, self.patch_size, self.tubelet_size)
        self.rank, self.world_size = resolve_rank(rank, world_size)
        self.drop_last = check_bool("drop_last", drop_last)
        self.shuffle = check_bool("shuffle", shuffle)
        self.prefetch = check_bool("prefetch", prefetch)
        self.device = check_device(device)
        if self.prefetch and self.device.type != "cuda":
            raise ValueError(f"`prefetch` needs a CUDA `device` (it uses a side CUDA stream), "
                             f"but got device {str(self.device)!r}")
        self.renderer = resolve_renderer(renderer, backend)
        self.source = source
        share = dict(num_replicas=self.world_size, rank=self.rank, shuffle=self.shuffle, seed=self.seed,
                     drop_last=self.drop_last)
        self._images = DistributedSampler(source, **share)
        self.real = self._real_videos(videos, pmg_ratio, mix_per, augment_videos, share)
        if len(self) == 0:
            what = "images" if self.real is None else "clips"
            raise ValueError(f"`batch_size` must be at most the {self.num_slots} {what} each "
                             f"rank gets per epoch with drop_last=True, but got {self.batch_size}")
        self.targets = check_targets(targets)
        if self.targets and self.real is not None:
            raise ValueError(f"`targets` needs image-only batches (a real clip's own motion is not known), "
                             f"but got targets={targets!r} with `videos`")
        self.num_workers = check_int("num_workers", num_workers, 0)
        self._host = _HostPart(self.config, self.seed, self.rank, self.batch_size, self.mask_ratio, self.patch_size,
                               self.tubelet_size, None if self.real is None else self.real.augment_videos)
        self._render = make_renderer(self.renderer, self.config)
        why = "" if self.renderer == "auto" else engine(self.renderer).unavailable(self.device)
        if why:                      # its package imported above: what is left is the device
            raise ValueError(f"renderer={self.renderer!r} cannot render on device {str(self.device)!r}: it "
                             f"{why} (renderer='auto' picks one that can)")
        self.epoch = 0
        self._step = 0          # batches yielded by the current (or last) pass
        self._resume = None     # first step of the next pass, set by load_state_dict
        self._order = (None, None)

    def _real_videos(self, videos, pmg_ratio, mix_per, augment_videos, share: dict) -> RealVideos | None:
        if videos is None:
            if pmg_ratio is not None or mix_per != "sample" or augment_videos is not True:
                raise ValueError(f"`pmg_ratio`, `mix_per` and `augment_videos` need `videos` to mix with, but "
                                 f"got pmg_ratio={pmg_ratio!r}, mix_per={mix_per!r}, "
                                 f"augment_videos={augment_videos!r} and videos=None")
            return None
        return RealVideos(videos, self.config, 0.5 if pmg_ratio is None else pmg_ratio, mix_per,
                          augment_videos, **share)

    @property
    def num_slots(self) -> int:
        """Clips per epoch on this rank: the image share, or with ``videos`` the mixed epoch's slots."""
        images = self._images.num_samples
        return images if self.real is None else self.real.num_slots(images)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        slots = self.num_slots
        return slots // self.batch_size if self.drop_last else math.ceil(slots / self.batch_size)

    def __repr__(self) -> str:
        real = "" if self.real is None else f"real={self.real!r}, "
        return (f"PseudoMotionLoader(num_images={len(self.source)}, {real}batch_size={self.batch_size}, "
                f"renderer={self.renderer!r}, device={str(self.device)!r}, num_workers={self.num_workers}, "
                f"seed={self.seed}, "
                f"mask_ratio={self.mask_ratio}, rank={self.rank}, world_size={self.world_size}, "
                f"drop_last={self.drop_last}, epoch={self.epoch})")

    def _next_epoch(self, epoch: int) -> None:
        """Position: the start of ``epoch + 1`` (what a framework's next pass should make)."""
        self.epoch, self._step, self._resume = epoch + 1, 0, None

    @property
    def sampler(self) -> "_EpochSetter":
        """What a framework that sets a loader's epoch through ``loader.sampler.set_epoch(epoch)``
        (Lightning) reaches: :meth:`set_epoch`."""
        return _EpochSetter(self)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order from the next pass on (``DistributedSampler.set_epoch``). A position
        restored by :meth:`load_state_dict` is kept for its own epoch and dropped for another."""
        epoch = check_int("epoch", epoch, 0)
        if epoch != self.epoch:
            self._resume = None
        self.epoch = epoch

    def indices(self, epoch: int | None = None) -> torch.Tensor:
        """(S,) long: this rank's source indices of ``epoch`` (default: the current one), in order;
        with ``videos``, per slot, into the videos where :meth:`is_real` else into the images."""
        return self._plan(epoch)[0]

    def is_real(self, epoch: int | None = None) -> torch.Tensor:
        """(S,) bool: which slots of ``epoch`` (default: the current one) are real clips."""
        return self._plan(epoch)[1]

    def _plan(self, epoch: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        if self._order[0] != epoch:
            images = _sampler_order(self._images, epoch)
            if self.real is None:
                plan = images, torch.zeros(len(images), dtype=torch.bool)
            else:
                real = self.real
                plan = plan_epoch(images, _sampler_order(real.sampler, epoch), self.num_slots, self.batch_size,
                                  real.pmg_ratio, real.mix_per, plan_generator(self.seed, epoch, self.rank))
            self._order = (epoch, plan)
        return self._order[1]

    def batch(self, step: int, epoch: int | None = None) -> dict[str, torch.Tensor]:
        """Batch ``step`` of ``epoch`` (default: the current one) on this rank, made afresh: a pure
        function of (seed, epoch, rank, step). Keys ``"video"``, ``"mask"`` (unless mask_ratio is
        None), ``"index"`` and, with ``videos``, ``"is_real"``, every tensor on ``device``."""
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        step = check_int("step", step, 0)
        if step >= len(self):
            raise ValueError(f"`step` must be < {len(self)} (batches per epoch), but got {step}")
        return self._finish(self._host(self._plan(epoch), epoch, step))

    def _finish(self, host: dict) -> dict[str, torch.Tensor]:
        """A batch from its host part (:class:`_HostPart`): load, render, move."""
        index, is_real = host["index"], host["is_real"]
        cfg = self.config
        if self.real is None:
            images = self.source.load(index, cfg.size, self.device, generator=host["load"])
            batch = {"video": self._render(images, host["program"])}
            batch.update(batch_targets(host["program"], self.targets, cfg.size, self.patch_size, self.device))
        else:
            batch = {"video": self.real.make_clips(self.source, index, is_real, host["programs"], host["load"],
                                                   self._render, self.device)}
        if "mask" in host:
            batch["mask"] = to_device(host["mask"], self.device)
        batch["index"] = to_device(index, self.device)
        if self.real is not None:
            batch["is_real"] = to_device(is_real, self.device)
        return batch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        start = 0 if self._resume is None else self._resume
        self._resume, self._step, epoch = None, start, self.epoch
        steps = range(start, len(self))
        hosts = self._host_parts(steps, epoch)
        batches = (self._prefetched(len(steps), hosts) if self.prefetch else
                   (self._finish(host) for host in hosts))
        for step, batch in zip(steps, batches):
            self._step = step + 1
            yield batch

    def _host_parts(self, steps: range, epoch: int) -> Iterator[dict]:
        """The host parts of ``steps``, in order: made here, or ahead by ``num_workers`` processes."""
        plan = self._plan(epoch)
        if self.num_workers == 0 or len(steps) == 0:
            return (self._host(plan, epoch, step) for step in steps)
        # its own generator: the workers' base seed is not drawn from the trainer's global torch RNG
        parts = DataLoader(_HostParts(self._host, plan, epoch), batch_size=None, sampler=steps,
                           num_workers=min(self.num_workers, len(steps)), collate_fn=_unchanged,
                           worker_init_fn=_ignore_stop_signals, generator=torch.Generator())
        return (_HostParts.unpack(part) for part in parts)

    def _prefetched(self, count: int, hosts: Iterator[dict]) -> Iterator[dict[str, torch.Tensor]]:
        """The ``count`` batches of ``hosts``, batch k+1 made on a side stream while batch k is consumed."""
        side = torch.cuda.Stream(device=self.device)
        main = torch.cuda.current_stream(self.device)

        def launch() -> dict[str, torch.Tensor]:
            side.wait_stream(main)          # whatever the trainer enqueued before (e.g. source copies)
            with torch.cuda.stream(side):
                return self._finish(next(hosts))

        pending = launch() if count else None
        for i in range(count):
            batch = pending
            main.wait_stream(side)          # batch i is complete before the trainer touches it
            for value in batch.values():
                value.record_stream(main)   # its memory is not reused while `main` still reads it
            pending = launch() if i + 1 < count else None
            yield batch

    def state_dict(self) -> dict:
        """``{"epoch", "step", ...}``: ``step`` batches of ``epoch`` have been yielded. The same on
        every rank, so rank 0's state can be loaded everywhere."""
        step = self._step if self._resume is None else self._resume
        real = self.real
        return {"epoch": self.epoch, "step": step, "seed": self.seed, "batch_size": self.batch_size,
                "world_size": self.world_size, "num_images": len(self.source),
                "drop_last": self.drop_last, "shuffle": self.shuffle,
                "num_videos": 0 if real is None else len(real.videos),
                "pmg_ratio": 1.0 if real is None else real.pmg_ratio,
                "mix_per": None if real is None else real.mix_per,
                "augment_videos": None if real is None else real.augment_videos}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`: the next pass starts at batch ``step`` of ``epoch``, so it
        yields exactly what the original loader yielded after that state was taken."""
        if not isinstance(state, dict) or not {"epoch", "step"} <= state.keys():
            raise ValueError(f"`state` must be a dict from state_dict() with 'epoch' and 'step', but got {state!r}")
        for key, value in self.state_dict().items():
            if key not in ("epoch", "step") and key in state and state[key] != value:
                raise ValueError(f"`state` was taken with {key}={state[key]!r}, but this loader has "
                                 f"{key}={value!r}; its batches would differ")
        epoch = check_int("epoch", state["epoch"], 0)
        step = check_int("step", state["step"], 0)
        if step > len(self):
            raise ValueError(f"`step` must be <= {len(self)} (batches per epoch), but got {step}")
        self.epoch, self._step, self._resume = epoch, step, step

    def as_dataset(self, keys: dict[str, str] | tuple[str, ...] | None = None) -> "PseudoMotionDataset":
        """This loader as an ``IterableDataset`` of whole batches (see :class:`PseudoMotionDataset`)."""
        return PseudoMotionDataset(self, keys)


class _EpochSetter:
    """``loader.sampler``: the loader's image ``DistributedSampler`` (its attributes, ``len`` and
    iteration), except that ``set_epoch`` sets the loader's epoch."""

    def __init__(self, loader: PseudoMotionLoader):
        self.loader = loader

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __getattr__(self, name: str):
        return getattr(self.loader._images, name)

    def __iter__(self):
        return iter(self.loader._images)

    def __len__(self) -> int:
        return len(self.loader._images)


class _HostPart:
    """The host part of a batch, a pure function of ``(seed, epoch, rank, step)`` and the epoch's plan:
    its source indices, program(s) and tube mask, on the CPU. Holds no source, renderer or device,
    so it pickles small for worker processes."""

    def __init__(self, config: PMGConfig, seed: int, rank: int, batch_size: int, mask_ratio, patch_size: int,
                 tubelet_size: int, augment_videos: bool | None):
        self.config, self.seed, self.rank, self.batch_size = config, seed, rank, batch_size
        self.mask = None if mask_ratio is None else (mask_ratio, patch_size, tubelet_size)
        self.augment_videos = augment_videos      # None: images only

    def __call__(self, plan: tuple[torch.Tensor, torch.Tensor], epoch: int, step: int) -> dict:
        slots = slice(step * self.batch_size, (step + 1) * self.batch_size)
        index, is_real = (x[slots] for x in plan)
        gens = batch_generators(self.seed, epoch, self.rank, step)
        cfg = self.config
        host = {"index": index, "is_real": is_real, "load": gens["load"]}
        if self.augment_videos is None:
            host["program"] = sample_program(cfg, len(index), generator=gens["program"])
        else:
            host["programs"] = draw_programs(cfg, is_real, self.augment_videos, gens["program"])
        if self.mask is not None:
            ratio, patch, tubelet = self.mask
            host["mask"] = tube_mask(len(index), cfg.num_frames, cfg.size, patch, tubelet, ratio,
                                     generator=gens["mask"])
        return host


def _unchanged(part):
    return part


def _ignore_stop_signals(worker_id: int) -> None:
    """Host workers ignore SIGINT / SIGTERM sent to the whole process group (Ctrl-C, a scheduler's
    stop): the training process decides when to stop (e.g. after writing a checkpoint) and ends them."""
    for name in ("SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)


class _HostParts(Dataset):
    """Step -> host part of one epoch, for ``DataLoader`` workers. A part travels as NumPy arrays
    (pickled by value through the worker queue) rather than as tensors (one shared-memory segment
    each, which costs more than these small arrays)."""

    def __init__(self, host: _HostPart, plan: tuple[torch.Tensor, torch.Tensor], epoch: int):
        self.host, self.plan, self.epoch = host, plan, epoch

    def __len__(self) -> int:
        return math.ceil(len(self.plan[0]) / self.host.batch_size)

    def __getitem__(self, step: int) -> dict:
        return self.pack(self.host(self.plan, self.epoch, step))

    @staticmethod
    def pack(host: dict) -> dict:
        def arrays(program):
            return None if program is None else {k: v.numpy() for k, v in program.tensors().items()}
        out = {k: v.numpy() for k, v in host.items() if isinstance(v, torch.Tensor)}
        out["load"] = host["load"].initial_seed()     # its seed: nothing drew from it (a pickled Generator is 5 KB)
        if "program" in host:
            out["program"] = arrays(host["program"])
        if "programs" in host:
            out["programs"] = tuple(arrays(p) for p in host["programs"])
        return out

    @staticmethod
    def unpack(part: dict) -> dict:
        def program(arrays):
            return None if arrays is None else MotionProgram(**{k: torch.from_numpy(v) for k, v in arrays.items()})
        out = {k: torch.from_numpy(v) for k, v in part.items() if isinstance(v, np.ndarray)}
        out["load"] = torch.Generator().manual_seed(part["load"])
        if "program" in part:
            out["program"] = program(part["program"])
        if "programs" in part:
            out["programs"] = tuple(program(p) for p in part["programs"])
        return out


class PseudoMotionDataset(IterableDataset):
    """An ``IterableDataset`` view of a :class:`PseudoMotionLoader` that yields its whole batches,
    for frameworks that build their own ``DataLoader`` (Lightning, Hugging Face ``Trainer``)::

        DataLoader(loader.as_dataset(), batch_size=None, num_workers=0)

    Batches are made in the main process on the loader's device (GPU ops), so use
    ``num_workers=0``: a worker process would only duplicate them and is refused. Each complete pass
    moves the loader on to the next epoch as it yields the epoch's last batch (frameworks rarely call
    ``set_epoch`` on a dataset, and some stop after ``len(dataset)`` batches without exhausting the
    iterator); an explicit ``set_epoch`` still wins.

    Args:
        loader: the loader to view.
        keys: rename and select batch entries, e.g. ``{"video": "pixel_values", "mask":
            "bool_masked_pos"}`` for ``model(**batch)`` of Hugging Face ``VideoMAEForPreTraining``;
            entries not named are left out. A tuple of names instead yields each batch as a tuple in
            that order, for loops that unpack it, e.g. ``("video", "mask")`` for the official VideoMAE
            loop's ``videos, bool_masked_pos = batch``. None: the loader's keys unchanged.
    """

    def __init__(self, loader: PseudoMotionLoader, keys: dict[str, str] | tuple[str, ...] | None = None):
        if not isinstance(loader, PseudoMotionLoader):
            raise TypeError(f"`loader` must be a PseudoMotionLoader, but got {type(loader).__name__}")
        if keys is not None:
            if (isinstance(keys, (tuple, list)) and all(isinstance(k, str) for k in keys)
                    and len(set(keys)) == len(keys) > 0):
                keys = tuple(keys)
            elif not isinstance(keys, dict):
                raise ValueError(f"`keys` must be a dict (old name -> new name) or a tuple of distinct names "
                                 f"(batches as tuples), but got {keys!r}")
            if not set(keys) <= set(BATCH_KEYS):
                raise ValueError(f"`keys` must name entries among {BATCH_KEYS}, but got {keys!r}")
            if "mask" in keys and loader.mask_ratio is None:
                raise ValueError("`keys` names 'mask', but the loader has mask_ratio=None (no mask)")
            if "is_real" in keys and loader.real is None:
                raise ValueError("`keys` names 'is_real', but the loader has no `videos` (images only)")
            for target, names in TARGET_KEYS.items():
                if set(names) & set(keys) and target not in loader.targets:
                    raise ValueError(f"`keys` names {sorted(set(names) & set(keys))}, but the loader's "
                                     f"`targets` {loader.targets} do not include {target!r}")
        self.loader, self.keys = loader, keys

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if get_worker_info() is not None:
            raise RuntimeError("PseudoMotionDataset makes batches on the loader's device in the main "
                               "process; use DataLoader(..., batch_size=None, num_workers=0)")
        loader, epoch = self.loader, self.loader.epoch
        for batch in loader:
            if loader._step == len(loader) and loader.epoch == epoch:
                # the epoch's last batch: the next pass is the next epoch, also for a framework that stops
                # after len(dataset) batches without exhausting this iterator (accelerate)
                loader._next_epoch(epoch)
            if self.keys is None:
                yield batch
            elif isinstance(self.keys, tuple):
                yield tuple(batch[key] for key in self.keys)
            else:
                yield {new: batch[old] for old, new in self.keys.items()}
        if loader.epoch == epoch:          # a pass resumed at the epoch's end yielded nothing: move on too
            loader._next_epoch(epoch)
