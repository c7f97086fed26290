"""Real and pseudo-motion clips in one loader: a :class:`~pmg_dali.PseudoMotionLoader` whose clips come
either from real videos or are pseudo-motion clips of images, at a given ratio (``pmg_ratio``: the fraction of clips
-- or, with ``mix_per="batch"``, of whole batches -- that are pseudo-motion).

Epoch. Each rank takes its ``DistributedSampler`` share of the images (S_i indices) and, with the
same seed, epoch and ``shuffle`` / ``drop_last``, of the videos (S_v). An epoch has

    N = min(S_i / pmg_ratio, S_v / (1 - pmg_ratio))        (rounded down; a term with a zero
                                                            denominator is left out)

slots -- one pass over the source that the ratio exhausts first -- cut into batches of ``batch_size``
like the image-only loader (``pmg_ratio=1`` gives exactly the image-only loader's epoch, ``0`` one
pass over the videos). Exactly ``round(pmg_ratio * N)`` slots are pseudo-motion (``mix_per="batch"``:
``round(pmg_ratio * batches)`` whole batches), at positions drawn once per epoch by a permutation
from a generator seeded by ``(seed, epoch, rank)``: the ratio holds exactly over the N slots of an
epoch (``drop_last`` drops fewer than B of them), and the real clips of a batch follow the
hypergeometric law (a binomial one, a little narrower). Pseudo slots take the image order one after
the other, real slots the video order, so no index repeats within an epoch; only with
``mix_per="batch"`` can the rounding of whole batches overrun a source's share by up to about a
batch, which then wraps to its own start (ranks stay disjoint).

Batches. The B slots of a step split into pseudo and real clips. The pseudo clips are drawn as the
image-only loader draws a batch (images, then a program for them, from the batch's ``"load"`` and
``"program"`` generators); the real clips are loaded next from the same ``"load"`` generator and --
with ``augment_videos`` -- moved by a program of their own drawn next from ``"program"``
(:meth:`pmg_dali.PseudoMotion.augment`, PMG as augmentation of real videos), so Mixup / VideoMix /
cutmix partners are clips of the same kind; a part without clips draws nothing. Both parts are
scattered back into slot order: ``batch["is_real"]`` (B,) bool says which entries of
``batch["index"]`` index the videos.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from . import render as reference
from ._checks import check_bool, check_choice, check_number
from .config import PMGConfig
from .module import PseudoMotion
from .program import MotionProgram
from .sampling import sample_program

__all__ = ["MIX_PER", "RealVideos", "plan_epoch", "plan_generator", "slots_per_epoch"]

MIX_PER = ("sample", "batch")
_PLAN_KEY = 0x706D67   # spawn key: the plan's entropy words differ from every batch_generators call


def slots_per_epoch(num_images: int, num_videos: int, pmg_ratio: float) -> int:
    """N = min(S_i / p, S_v / (1 - p)), rounded down: the slots of one epoch on one rank."""
    terms = []
    if pmg_ratio > 0:
        terms.append(num_images / pmg_ratio)
    if pmg_ratio < 1:
        terms.append(num_videos / (1 - pmg_ratio))
    return math.floor(min(terms) + 1e-9)


def plan_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The CPU generator of one epoch's real / pseudo draws on one rank."""
    state = np.random.SeedSequence([seed, epoch, rank], spawn_key=(_PLAN_KEY,)).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


def plan_epoch(image_order: torch.Tensor, video_order: torch.Tensor, num_slots: int, batch_size: int,
               pmg_ratio: float, mix_per: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Which source every slot of an epoch draws from, and which index.

    Args:
        image_order, video_order: (S_i,), (S_v,) long: this rank's sampler orders of the epoch.
        num_slots: N; batch_size: B (``mix_per="batch"`` chooses per B slots).
        pmg_ratio: fraction of pseudo-motion slots (batches); generator: from :func:`plan_generator`.
    Returns:
        index (N,) long -- into the videos where ``is_real`` else into the images -- and is_real (N,) bool.
    """
    units = num_slots if mix_per == "sample" else math.ceil(num_slots / batch_size)
    is_real = torch.zeros(units, dtype=torch.bool)
    is_real[torch.randperm(units, generator=generator)[math.floor(pmg_ratio * units + 0.5):]] = True
    if mix_per == "batch":
        is_real = is_real.repeat_interleave(batch_size)[:num_slots]
    image_pos = (torch.cumsum(~is_real, 0) - 1) % len(image_order)
    video_pos = (torch.cumsum(is_real, 0) - 1) % len(video_order)
    return torch.where(is_real, video_order[video_pos], image_order[image_pos]), is_real


def draw_programs(config: PMGConfig, is_real: torch.Tensor, augment_videos: bool,
                  generator: torch.Generator) -> tuple[MotionProgram | None, MotionProgram | None]:
    """The programs of one mixed batch, from the batch's ``"program"`` generator in this order: the
    pseudo-motion clips' program, then (with ``augment_videos``) the real clips'; None where a batch
    has no such clip."""
    real = int(is_real.sum())
    pseudo = len(is_real) - real
    return (sample_program(config, pseudo, generator=generator) if pseudo else None,
            sample_program(config, real, generator=generator) if real and augment_videos else None)


def _check_videos(videos, config: PMGConfig) -> None:
    if not (hasattr(videos, "__len__") and callable(getattr(videos, "load", None))):
        raise TypeError(f"`videos` must have len(videos) and videos.load(indices, size, device, generator) "
                        f"-> uint8 (B, 3, T, H, W), but got {type(videos).__name__}")
    if len(videos) < 1:
        raise ValueError(f"`videos` must hold at least one video, but got {len(videos)}")
    frames = getattr(videos, "num_frames", config.num_frames)
    if frames != config.num_frames:
        raise ValueError(f"`videos` must decode config.num_frames = {config.num_frames} frames per clip, "
                         f"but has num_frames = {frames}")


class RealVideos:
    """The real-video side of a mixed :class:`~pmg_dali.PseudoMotionLoader` (see the module
    docstring): the videos, their sampler, the ratio and how real clips are drawn.

    Args:
        videos: anything with ``len(videos)`` and ``videos.load(indices, size, device, generator)``
            -> uint8 (B, 3, T, H, W) (:class:`pmg_dali.VideoFolder`).
        config: the loader's :class:`PMGConfig` (T = ``config.num_frames``).
        pmg_ratio: fraction in [0, 1] of pseudo-motion clips (or batches).
        mix_per: ``"sample"`` (each clip drawn on its own) or ``"batch"`` (all clips of a batch).
        augment_videos: move real clips by a pseudo-motion program (True) or pass them through
            (False: only converted to ``config``'s layout / dtype / normalisation).
        sampler_args: the loader's ``DistributedSampler`` keywords (num_replicas, rank, shuffle,
            seed, drop_last).
    """

    def __init__(self, videos, config: PMGConfig, pmg_ratio: float, mix_per: str, augment_videos: bool,
                 **sampler_args):
        _check_videos(videos, config)
        self.pmg_ratio = check_number("pmg_ratio", pmg_ratio, 0, 1)
        self.mix_per = check_choice("mix_per", mix_per, MIX_PER)
        self.augment_videos = check_bool("augment_videos", augment_videos)
        if augment_videos:
            reference.check_augment_config(config)
        self.videos, self.config = videos, config
        self.sampler = DistributedSampler(videos, **sampler_args)
        self.module = PseudoMotion(config)

    def num_slots(self, num_images: int) -> int:
        """Slots per epoch on this rank, given this rank's share of the images."""
        return slots_per_epoch(num_images, self.sampler.num_samples, self.pmg_ratio)

    def make_clips(self, source, index: torch.Tensor, is_real: torch.Tensor, programs: tuple,
                   load: torch.Generator, render, device: torch.device) -> torch.Tensor:
        """The clips of one batch in slot order: pseudo-motion clips of ``source`` images through
        ``render(images, program)``, real clips of the videos; ``programs``: :func:`draw_programs` of
        the batch; ``load``: the batch's ``"load"`` generator (``batch_generators``)."""
        cfg = self.config
        pseudo_program, real_program = programs
        out = reference.output_buffer(None, cfg, len(index), device)
        pseudo, real = (~is_real).nonzero().flatten(), is_real.nonzero().flatten()
        if len(pseudo):
            images = source.load(index[pseudo], cfg.size, device, generator=load)
            out[pseudo.to(device)] = render(images, pseudo_program)
        if len(real):
            clips = self.videos.load(index[real], cfg.size, device, generator=load)
            out[real.to(device)] = (self.module.augment(clips, program=real_program) if self.augment_videos else
                                    reference.format_clips(reference.to_float_video(clips, cfg.size), cfg))
        return out

    def __repr__(self) -> str:
        return (f"RealVideos(num_videos={len(self.videos)}, pmg_ratio={self.pmg_ratio}, mix_per={self.mix_per!r}, "
                f"augment_videos={self.augment_videos})")
