"""`PseudoMotion`: the torch module users call -- sample a motion program, render it (from still
images, or on real clips with :meth:`PseudoMotion.augment`)."""
from __future__ import annotations

import torch
from torch import nn

from . import render as reference
from ._checks import check_choice, parse_device
from .config import PMGConfig, check_config
from .engine_check import ensure_engine
from .engines import RENDERERS, auto_engine, engine
from .program import MotionProgram
from .sampling import sample_program

__all__ = ["PseudoMotion", "RENDERERS"]


class PseudoMotion(nn.Module):
    """Pseudo-Motion Generator: still images (B, 3, H, W) -> pseudo-motion clips.

    Example::

        gen = PseudoMotion(PMGConfig(transforms=("zoom", "affine")))
        g = torch.Generator().manual_seed(0)
        clips = gen(images, generator=g)                 # (B, 3, T, H, W) normalised float32

    Args:
        config: a :class:`PMGConfig` (default: ``PMGConfig()``).
        renderer: an engine of :mod:`pmg_dali.engines` -- ``"reference"`` (:func:`pmg_dali.render.render`,
            the specification), ``"fused"`` (:func:`pmg_dali.fused.render_fused`, Triton, CUDA), ``"cpu"``
            (:func:`pmg_dali.cpu_render.render_cpu`), ``"dali"`` (DALI operators, needs the ``dali``
            extra) -- or ``"auto"`` (default): the fused kernel for CUDA images when Triton is installed;
            the CPU renderer for CPU images when frames have at least 48^2 pixels (fastest with one
            torch thread per process, as in DataLoader workers); else the reference. All render the
            same clips (to float rounding, within each engine's tolerance). An engine that draws still
            images only (``"cpu"``, ``"dali"``) leaves :meth:`augment` to the reference.

    Self-check: the first time an engine other than the reference renders on a device in a process,
    it renders a small canary batch that is compared with the reference's
    (:mod:`pmg_dali.engine_check`). If it fails, ``"auto"`` warns once and uses the reference
    renderer from then on; an explicitly requested engine raises ``RuntimeError``. Set
    ``PMG_DALI_SKIP_ENGINE_CHECK=1`` to skip the check.
    """

    def __init__(self, config: PMGConfig | None = None, renderer: str = "auto"):
        super().__init__()
        self.config = PMGConfig() if config is None else check_config(config)
        self.renderer = check_choice("renderer", renderer, RENDERERS)
        if renderer != "auto":
            engine(renderer).check_recursion(self.config)

    def extra_repr(self) -> str:
        c = self.config
        return (f"transforms={c.transforms}, num_frames={c.num_frames}, size={c.size}, mixup={c.mixup}, "
                f"recursion={c.recursion!r}, layout={c.layout!r}, dtype={c.dtype}, renderer={self.renderer!r}")

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
        reference.check_images(images, values=False)      # the renderer checks the pixel values
        program = self._program(images.shape[0], program, generator)
        return self._checked_function(images, "render")(images, program, self.config)

    def augment(self, video: torch.Tensor, program: MotionProgram | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Pseudo-motion on real clips ``video`` (B, 3, T, H, W), uint8 0-255 or float in [0, 1], any
        H, W (resized to ``config.size``), T = ``config.num_frames``.

        Frame t of clip b is ``video[b, :, t]`` warped by ``program.homography[b, t]`` and coloured by
        ``program.color[b, t]`` (the program's motion composed with the video's own); cutmix pastes
        from frame t of the partner clip, Mixup / VideoMix mixes with the partner's augmented clip.
        Frame t equals ``forward`` of the image ``video[:, :, t]`` under the program's frame t. Needs
        ``config.recursion="composed"`` (ValueError otherwise: see :func:`pmg_dali.render.augment`).
        Returns clips on the video's device in ``config.layout`` and ``config.dtype``.
        """
        reference.check_video(video, values=False)        # the renderer checks the pixel values
        program = self._program(video.shape[0], program, generator)
        return self._checked_function(video, "augment")(video, program, self.config)

    def _program(self, batch_size: int, program: MotionProgram | None, generator) -> MotionProgram:
        """``program`` checked against the config, or one sampled from ``generator``."""
        if program is None:
            return self.sample(batch_size, generator=generator)
        reference.check_program(program, cfg=self.config, values=False)   # the engine checks the tables
        return program

    def engine(self, device: torch.device, op: str = "render") -> str:
        """The engine ``forward`` (``op="render"``) or ``augment`` (``op="augment"``) picks for inputs on
        ``device``, before its self-check: ``renderer``, or for ``"auto"`` the table's choice
        (:func:`pmg_dali.engines.auto_engine`); the reference where the engine lacks the operation."""
        device = parse_device(device)      # a named renderer reads no device; auto_engine and has() check `op`
        if self.renderer == "auto":
            return auto_engine(device, self.config.size, op)
        return self.renderer if engine(self.renderer).has(op) else "reference"

    def render_function(self, device: torch.device):
        """The function ``(images, program, config) -> clips`` of the engine ``forward`` picks on
        ``device`` (looked up through its module now), without the self-check ``forward`` adds."""
        return engine(self.engine(device)).function("render")

    def augment_function(self, device: torch.device):
        """The function ``(video, program, config) -> clips`` of the engine ``augment`` picks on
        ``device``, without the self-check ``augment`` adds."""
        return engine(self.engine(device, "augment")).function("augment")

    def _checked_function(self, x: torch.Tensor, op: str):
        """The engine's function for ``x`` after its self-check (:func:`pmg_dali.engine_check.ensure_engine`):
        the reference's when ``renderer="auto"`` picked an engine that failed; RuntimeError when an
        explicitly requested engine failed."""
        name = self.engine(x.device, op)
        if name != "reference" and not ensure_engine(name, x, self.config, op=op, auto=self.renderer == "auto"):
            name = "reference"
        return engine(name).function(op)
