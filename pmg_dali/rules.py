"""What every engine shares, written once: the per-(clip, frame) tables a :class:`~pmg_dali.MotionProgram`
compiles to (:func:`frame_tables`), which the CPU, fused and DALI engines read instead of the program,
and the rules the reference renderer (:mod:`pmg_dali.render`, the specification) states:

- Pixel boxes (cutmix ``paste_box``, VideoMix ``mix_box``) are half-open: pixel centre ``(x, y)`` is inside
  when ``x0 <= x < x1`` and ``y0 <= y < y1`` (:func:`pmg_dali.render.box_mask`; the fused kernel and
  DALI's :func:`pmg_dali.dali_graph.box_mask` compare the same way).
- The cutmix patch is read with :data:`PASTE_PADDING`: its cut lies inside the partner image, and
  replicating the edge keeps the half pixel beyond the partner's outer pixel centres intact.
- A frame's colour map is skipped when it is the identity (:func:`identity_color`).
- VideoMix boxes round half up (:func:`pmg_dali.sampling.videomix_edges`, shared by the host and DALI's
  in-graph sampler).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import inverse_maps
from .program import MotionProgram

__all__ = ["PASTE_PADDING", "PADDING_CODES", "identity_color", "FrameTables", "frame_tables", "NUM_PARAMS",
           "COLUMNS", "column"]

PASTE_PADDING = "border"
PADDING_CODES = {"zeros": 0, "border": 1, "reflection": 2}   # padding modes as the fused kernel's integers


def identity_color(color: torch.Tensor) -> torch.Tensor:
    """(...) bool: which colour maps (..., 3, 4) are exactly the identity (the colour step is skipped)."""
    eye = torch.eye(3, 4, dtype=color.dtype, device=color.device)
    return (color == eye).flatten(-2).all(-1)


# the columns of FrameTables.packed(): name -> (first column, width), in order; the fused kernel reads these
COLUMNS = {"inverse": (0, 9), "color": (9, 12), "paste_inverse": (21, 9), "paste_box": (30, 4),
           "mix_lambda": (34, 1), "mix_box": (35, 4), "plain_color": (39, 1)}
NUM_PARAMS = sum(width for _, width in COLUMNS.values())      # 40


def column(name: str) -> slice:
    """The slice of ``name``'s columns in a packed row (:data:`COLUMNS`)."""
    start, width = COLUMNS[name]
    return slice(start, start + width)


@dataclass(frozen=True)
class FrameTables:
    """A :class:`~pmg_dali.MotionProgram` compiled for the engines, on the program's device.

    Fields (B clips, T frames; None where the program has no such part):
        inverse: (B, T, 3, 3) float64 frame -> source pixel maps, ``inv(homography)``; each engine
            converts it to its own coordinates in one function of :mod:`pmg_dali.geometry`.
        color: (B, T, 3, 4) float32 colour maps; plain_color: (B, T) bool, the identity ones.
        paste_index (B,) long, paste_inverse (B, T, 3, 3) float64 (frame -> partner), paste_box
            (B, T, 4) float32 half-open pixel boxes.
        mix_index (B,) long; mix_lambda (B, T) float32, the weight of the clip itself per frame
            (frame Mixup; also given for VideoMix, where the box decides); mix_box (B, 4) or None;
            lambda_per_frame: whether the program drew one lambda per frame.
    """

    inverse: torch.Tensor
    color: torch.Tensor
    plain_color: torch.Tensor
    paste_index: torch.Tensor | None = None
    paste_inverse: torch.Tensor | None = None
    paste_box: torch.Tensor | None = None
    mix_index: torch.Tensor | None = None
    mix_lambda: torch.Tensor | None = None
    mix_box: torch.Tensor | None = None
    lambda_per_frame: bool = False

    def packed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The tables as one float32 array and one index array (the fused kernel's inputs):
        params (B, T, NUM_PARAMS) rows ``[inverse (9), color (12), paste inverse (9), paste box (4),
        mix lambda (1), VideoMix box (4), colour is identity (1)]``, absent parts zero; index (B, 2)
        int32 ``[paste_index, mix_index]`` (0 when absent)."""
        b, t = self.inverse.shape[:2]
        device = self.inverse.device
        params = torch.zeros(b, t, NUM_PARAMS, device=device)
        params[..., column("inverse")] = self.inverse.flatten(2)
        params[..., column("color")] = self.color.flatten(2)
        index = torch.zeros(b, 2, dtype=torch.int32, device=device)
        if self.paste_index is not None:
            params[..., column("paste_inverse")] = self.paste_inverse.flatten(2)
            params[..., column("paste_box")] = self.paste_box
            index[:, 0] = self.paste_index
        if self.mix_index is not None:
            params[..., column("mix_lambda")] = self.mix_lambda[..., None]
            index[:, 1] = self.mix_index
        if self.mix_box is not None:
            params[..., column("mix_box")] = self.mix_box[:, None]
        params[..., column("plain_color")] = self.plain_color[..., None].float()
        return params, index


def frame_tables(program: MotionProgram) -> FrameTables:
    """Compile ``program`` to :class:`FrameTables` where it lives (a handful of small batched ops, no
    host synchronisation on CUDA)."""
    b, t = program.batch_size, program.num_frames
    fields = {}
    if program.paste_index is not None:
        fields.update(paste_index=program.paste_index, paste_inverse=inverse_maps(program.paste_homography),
                      paste_box=program.paste_box.float())
    if program.mix_index is not None:
        lam = program.mix_lambda.to(torch.float32)
        fields.update(mix_index=program.mix_index, mix_lambda=lam.view(b, -1).expand(b, t),
                      mix_box=None if program.mix_box is None else program.mix_box.float(),
                      lambda_per_frame=lam.ndim == 2)
    return FrameTables(inverse=inverse_maps(program.homography), color=program.color.float(),
                       plain_color=identity_color(program.color), **fields)
