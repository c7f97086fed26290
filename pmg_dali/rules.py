"""What every engine shares, written once: the per-(clip, frame) tables a :class:`~pmg_dali.MotionProgram`
compiles to (:func:`frame_tables`), which the CPU, fused and DALI engines read instead of the program,
and the compositing rules of the reference renderer (:mod:`pmg_dali.render`, the specification), which
it and the motion targets (:mod:`pmg_dali.targets`) call, and which the kernels restate:

- Pixel boxes (cutmix ``paste_box``, VideoMix ``mix_box``) are half-open: pixel centre ``(x, y)`` is inside
  when ``x0 <= x < x1`` and ``y0 <= y < y1`` (:func:`box_mask` at the pixel centres, :func:`in_box` at any
  points; :func:`box_pixels` gives the pixel ranges; the fused kernel and DALI's
  :func:`pmg_dali.dali_graph.box_mask` compare the same way).
- Layers: inside ``paste_box[b, t]`` an unmixed frame shows the cutmix patch over the clip's own image
  (:func:`paste_layer`); a mixed frame shows the partner's unmixed frame inside ``mix_box[b]`` (VideoMix)
  or ``lerp(partner, clip, lambda)`` everywhere (frame Mixup) (:func:`mix_layers`). Which of those the
  tables ask for is :attr:`FrameTables.mix_mode`.
- The cutmix patch is read with :data:`PASTE_PADDING`: its cut lies inside the partner image, and
  replicating the edge keeps the half pixel beyond the partner's outer pixel centres intact.
- Padding modes are the names of :data:`pmg_dali.config.PADDING_MODES` (``grid_sample``'s); engines that
  need integers use :data:`PADDING_CODES`, their positions in that one list.
- A frame's colour map is skipped when it is the identity (:func:`identity_color`).
- VideoMix boxes round half up (:func:`pmg_dali.sampling.videomix_edges`; the one sampler of every
  engine, DALI's pipelines included, which are fed host-drawn programs).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .config import PADDING_MODES
from .geometry import inverse_maps

if TYPE_CHECKING:
    from .program import MotionProgram

__all__ = ["PASTE_PADDING", "PADDING_CODES", "MIX_MODES", "identity_color", "box_mask", "in_box", "box_pixels",
           "paste_layer", "mix_layers", "FrameTables", "frame_tables", "NUM_PARAMS", "COLUMNS", "INDEX_COLUMNS",
           "column"]

PASTE_PADDING = "border"
# padding modes as the kernels' integers: each mode's position in config.PADDING_MODES
PADDING_CODES = {mode: code for code, mode in enumerate(PADDING_MODES)}
MIX_MODES = (None, "clip", "frame", "box")   # FrameTables.mix_mode: no Mixup, lambda per clip / frame, VideoMix


def identity_color(color: torch.Tensor) -> torch.Tensor:
    """(...) bool: which colour maps (..., 3, 4) are exactly the identity (the colour step is skipped)."""
    eye = torch.eye(3, 4, dtype=color.dtype, device=color.device)
    return (color == eye).flatten(-2).all(-1)


def _within(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The box rule along one axis: ``lo <= v < hi`` (half-open)."""
    return (v >= lo) & (v < hi)


def in_box(x: torch.Tensor, y: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Points ``(x, y)`` inside boxes ``(x0, y0, x1, y1)`` (..., 4): ``x0 <= x < x1`` and ``y0 <= y < y1``,
    broadcast against ``box[..., 0]``."""
    return _within(x, box[..., 0], box[..., 2]) & _within(y, box[..., 1], box[..., 3])


def box_mask(box: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., H, W) bool: the pixel centres (x, y) of an (H, W) frame inside boxes (..., 4) by :func:`in_box`'s
    rule, ``x0 <= x < x1`` and ``y0 <= y < y1``."""
    h, w = size
    xs = torch.arange(w, device=box.device, dtype=box.dtype)
    ys = torch.arange(h, device=box.device, dtype=box.dtype)
    inside_x = _within(xs, box[..., 0:1], box[..., 2:3])                   # (..., W)
    inside_y = _within(ys, box[..., 1:2], box[..., 3:4])                   # (..., H)
    return inside_y[..., :, None] & inside_x[..., None, :]


def box_pixels(box: torch.Tensor) -> torch.Tensor:
    """Boxes (..., 4) as the integer pixel centres inside them, ``(x0, y0, x1, y1)`` -> ``ceil`` of each:
    the centres with ``x0 <= x < x1`` are ``ceil(x0) .. ceil(x1) - 1`` (same for y). Same dtype."""
    return torch.ceil(box)


def paste_layer(frames: torch.Tensor, patches: torch.Tensor, paste_box: torch.Tensor) -> torch.Tensor:
    """Cutmix layering: frame t of clip b shows ``patches[b, :, t]`` inside ``paste_box[b, t]``
    (:func:`box_mask`) and ``frames[b, :, t]`` elsewhere.

    frames: (B, C, T, H, W); patches: broadcastable to it; paste_box: (B, T, 4). Returns a new tensor."""
    inside = box_mask(paste_box.to(frames.device), tuple(frames.shape[-2:]))    # (B, T, H, W)
    return torch.where(inside[:, None], patches, frames)


def mix_layers(clips: torch.Tensor, partner: torch.Tensor, mix_lambda: torch.Tensor | None,
               mix_box: torch.Tensor | None) -> torch.Tensor:
    """Mixup layering of unmixed clips with their partners' unmixed clips: VideoMix (``mix_box`` (B, 4)
    given) shows the partner inside ``mix_box[b]`` on every frame (:func:`box_mask`) and the clip elsewhere;
    frame Mixup blends ``lerp(partner, clip, lambda)`` everywhere, ``mix_lambda`` (B,) or (B, T) being the
    weight of the clip itself.

    clips, partner: (B, C, T, H, W) float (any dtype for VideoMix). Returns a new tensor."""
    if mix_box is not None:
        inside = box_mask(mix_box.to(clips.device), tuple(clips.shape[-2:]))   # (B, H, W)
        return torch.where(inside[:, None, None], partner, clips)
    lam = mix_lambda.to(device=clips.device, dtype=clips.dtype)
    lam = lam.view(lam.shape[0], 1, -1, 1, 1)                           # (B, 1, 1 or T, 1, 1)
    return torch.lerp(partner, clips, lam)


# the columns of FrameTables.packed(): name -> (first column, width), in this order, each after the last;
# the fused kernel reads these
_WIDTHS = {"inverse": 9, "color": 12, "paste_inverse": 9, "paste_box": 4, "mix_lambda": 1, "mix_box": 4,
           "plain_color": 1}
COLUMNS = dict(zip(_WIDTHS, zip(itertools.accumulate(_WIDTHS.values(), initial=0), _WIDTHS.values())))
NUM_PARAMS = sum(_WIDTHS.values())      # 40
# the columns of FrameTables.packed()'s index array, in order
INDEX_COLUMNS = ("paste_index", "mix_index")


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
            (B, T, 4) float32 half-open pixel boxes holding the program's pixels (a float64 box as its
            pixel-centre bounds, :func:`box_pixels`: rounding it to float32 could move an edge across a centre).
        mix_index (B,) long; mix_lambda (B, T) float32, the weight of the clip itself per frame
            (frame Mixup; also given for VideoMix, where the box decides); mix_box (B, 4) or None;
            lambda_per_frame: whether the program drew one lambda per frame.
        mix_mode (derived): which mixing the engines draw, one of :data:`MIX_MODES`.
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

    @property
    def mix_mode(self) -> str | None:
        """How the clip meets its Mixup partner (:data:`MIX_MODES`): None (no mixing), ``"clip"`` (one
        lambda per clip), ``"frame"`` (one lambda per frame) or ``"box"`` (VideoMix: the partner inside
        ``mix_box``). Engines branch on this instead of looking at the program."""
        if self.mix_index is None:
            return None
        if self.mix_box is not None:
            return "box"
        return "frame" if self.lambda_per_frame else "clip"

    def packed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The tables as one float32 array and one index array (the fused kernel's inputs):
        params (B, T, NUM_PARAMS), each row the fields named in :data:`COLUMNS` flattened at their
        columns (:func:`column`; ``plain_color`` as 1.0 / 0.0, ``mix_box`` repeated over the frames),
        absent parts zero; index (B, len(INDEX_COLUMNS)) int32, the :data:`INDEX_COLUMNS` (0 when absent)."""
        b, t = self.inverse.shape[:2]
        device = self.inverse.device
        params = torch.zeros(b, t, NUM_PARAMS, device=device)
        params[..., column("inverse")] = self.inverse.flatten(2)
        params[..., column("color")] = self.color.flatten(2)
        index = torch.zeros(b, len(INDEX_COLUMNS), dtype=torch.int32, device=device)
        if self.paste_index is not None:
            params[..., column("paste_inverse")] = self.paste_inverse.flatten(2)
            params[..., column("paste_box")] = self.paste_box
            index[:, INDEX_COLUMNS.index("paste_index")] = self.paste_index
        if self.mix_index is not None:
            params[..., column("mix_lambda")] = self.mix_lambda[..., None]
            index[:, INDEX_COLUMNS.index("mix_index")] = self.mix_index
        if self.mix_box is not None:
            params[..., column("mix_box")] = self.mix_box[:, None]
        params[..., column("plain_color")] = self.plain_color[..., None].float()
        return params, index


def _table_box(box: torch.Tensor) -> torch.Tensor:
    """Boxes (..., 4) in float32 with the pixels they hold: as they are, or for float64 boxes their
    pixel-centre bounds (:func:`box_pixels`), since rounding a float64 edge to float32 can carry it across
    a pixel centre."""
    return box_pixels(box).float() if box.dtype == torch.float64 else box.float()


def frame_tables(program: MotionProgram) -> FrameTables:
    """Compile ``program`` to :class:`FrameTables` where it lives (a handful of small batched ops, no
    host synchronisation on CUDA)."""
    b, t = program.batch_size, program.num_frames
    fields = {}
    if program.paste_index is not None:
        fields.update(paste_index=program.paste_index, paste_inverse=inverse_maps(program.paste_homography),
                      paste_box=_table_box(program.paste_box))
    if program.mix_index is not None:
        lam = program.mix_lambda.to(torch.float32)
        fields.update(mix_index=program.mix_index, mix_lambda=lam.view(b, -1).expand(b, t),
                      mix_box=None if program.mix_box is None else _table_box(program.mix_box),
                      lambda_per_frame=lam.ndim == 2)
    return FrameTables(inverse=inverse_maps(program.homography), color=program.color.float(),
                       plain_color=identity_color(program.color), **fields)
