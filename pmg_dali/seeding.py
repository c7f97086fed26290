"""Where each batch's random numbers come from: one function of ``(seed, epoch, rank, step)``, shared by
:class:`~pmg_dali.PseudoMotionLoader` and the DALI pipelines (:mod:`pmg_dali.dali`), so that both draw
the same programs. It imports nothing of the package: any module may use it without an import cycle.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["batch_generators"]


def batch_generators(seed: int, epoch: int, rank: int, step: int) -> dict[str, torch.Generator]:
    """The CPU generators of one batch, a pure function of ``(seed, epoch, rank, step)``:
    ``"program"`` (the :class:`~pmg_dali.MotionProgram`), ``"mask"`` (the tube mask) and ``"load"``
    (handed to ``source.load``). CPU generators make programs and masks identical on every device and
    engine; a source that wants on-device randomness can seed a device generator from ``"load"``."""
    states = np.random.SeedSequence([seed, epoch, rank, step]).generate_state(3, dtype=np.uint64)
    return {name: torch.Generator().manual_seed(int(state))
            for name, state in zip(("program", "mask", "load"), states)}
