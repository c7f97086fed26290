"""`PseudoMotion`: the torch module users call -- sample a motion program, render it."""
from __future__ import annotations

import torch
from torch import nn

from . import render as reference
from .config import PMGConfig
from .program import MotionProgram
from .sampling import sample_program

__all__ = ["PseudoMotion"]


class PseudoMotion(nn.Module):
    """Pseudo-Motion Generator: still images (B, 3, H, W) -> pseudo-motion clips.

    Example::

        gen = PseudoMotion(PMGConfig(transforms=("zoom", "affine")))
        g = torch.Generator().manual_seed(0)
        clips = gen(images, generator=g)                 # (B, 3, T, H, W) normalised float32

    Args:
        config: a :class:`PMGConfig` (default: ``PMGConfig()``).
    """

    def __init__(self, config: PMGConfig | None = None):
        super().__init__()
        if config is None:
            config = PMGConfig()
        if not isinstance(config, PMGConfig):
            raise TypeError(f"`config` must be a PMGConfig, but got {type(config).__name__}")
        self.config = config

    def extra_repr(self) -> str:
        c = self.config
        return (f"transforms={c.transforms}, num_frames={c.num_frames}, size={c.size}, mixup={c.mixup}, "
                f"recursion={c.recursion!r}, layout={c.layout!r}, dtype={c.dtype}")

    def sample(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> MotionProgram:
        """Draw a :class:`MotionProgram` for ``batch_size`` clips (no images needed).

        Random numbers come from ``generator`` (on its device; the default CPU generator if None);
        the program is moved to ``device``. Use a CPU generator to get the same program everywhere.
        """
        return sample_program(self.config, batch_size, generator=generator, device=device)

    def forward(self, images: torch.Tensor, program: MotionProgram | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Render clips of ``images`` (B, 3, H, W), uint8 0-255 or float in [0, 1], any H, W.

        With ``program`` the render is deterministic; without, one is sampled from ``generator``.
        Returns clips on the images' device in ``config.layout`` and ``config.dtype``.
        """
        reference.check_images(images)
        if program is None:
            program = self.sample(images.shape[0], generator=generator)
        elif not isinstance(program, MotionProgram):
            raise TypeError(f"`program` must be a MotionProgram, but got {type(program).__name__}")
        if program.num_frames != self.config.num_frames:
            raise ValueError(f"`program` must have {self.config.num_frames} frames (config.num_frames), "
                             f"but got {program.num_frames}")
        return reference.render(images, program.to(images.device), self.config)
