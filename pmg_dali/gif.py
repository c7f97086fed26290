"""Animated GIF previews of clips, with one palette for all frames so that colours do not flicker.

    frames = clip_sheet([clips_a, clips_b])          # rows of (N, 3, T, H, W) clips -> uint8 (T, 2 H, N W, 3)
    write_gif(frames, "preview.gif", ms_per_frame=120)

``python -m pmg_dali demo`` writes its preview with them (one row per transform), and so does the VideoMAE
example (its first batch of clips).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ._checks import check_int
from .procedural import to_uint8

__all__ = ["write_gif", "clip_sheet"]


def write_gif(frames, path, ms_per_frame: int = 120) -> None:
    """Write uint8 (T, H, W, 3) frames (a NumPy array or a CPU / CUDA tensor) as an animated GIF at ``path``.

    Every frame is mapped without dithering onto one 256-colour palette (a median cut of all frames
    together, every second pixel), written as the GIF's only colour table; frames follow each other every
    ``ms_per_frame`` milliseconds and the animation loops.
    """
    from PIL import Image

    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"`frames` must be a NumPy array or a tensor, but got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise TypeError(f"`frames` must be uint8, but got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
        raise ValueError(f"`frames` must have shape (T, H, W, 3) with T, H, W >= 1, but got {tuple(frames.shape)}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or a path, but got {type(path).__name__}")
    ms_per_frame = check_int("ms_per_frame", ms_per_frame, 1)
    frames = np.ascontiguousarray(frames)
    sample = frames[:, ::2, ::2]
    sample = np.ascontiguousarray(sample.reshape(-1, sample.shape[2], 3))         # every frame, stacked
    palette = Image.fromarray(sample).quantize(256, method=Image.Quantize.MEDIANCUT)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0,
                   optimize=False, palette=bytes(palette.getpalette()))   # `palette`: no per-frame tables


def clip_sheet(rows) -> np.ndarray:
    """Rows of clips -> the frames of one sheet: uint8 (T, R·H, N·W, 3), the R rows stacked top to bottom,
    the N clips of a row side by side, every frame of the clips animated.

    ``rows``: a sequence of R tensors (N, 3, T, H, W) of one shape (a single tensor is one row), uint8 or
    float in [0, 1] (scaled by 255, rounded and clamped).
    """
    if isinstance(rows, torch.Tensor):
        rows = [rows]
    if not isinstance(rows, (list, tuple)) or not rows or not all(isinstance(r, torch.Tensor) for r in rows):
        raise TypeError(f"`rows` must be a tensor or a non-empty list of tensors, but got {type(rows).__name__}")
    shape = tuple(rows[0].shape)
    if len(shape) != 5 or shape[1] != 3 or 0 in shape:
        raise ValueError(f"`rows` must hold tensors of shape (N, 3, T, H, W), but got {shape}")
    if any(tuple(r.shape) != shape for r in rows):
        raise ValueError(f"`rows` must hold tensors of one shape, but got {[tuple(r.shape) for r in rows]}")
    if any(r.dtype != rows[0].dtype for r in rows):   # torch.cat would promote uint8 rows, then scale them
        raise ValueError(f"`rows` must hold tensors of one dtype, but got {[r.dtype for r in rows]}")
    sheet = torch.cat([torch.cat(list(clips), dim=-1) for clips in rows], dim=-2)   # (3, T, R*H, N*W)
    if sheet.dtype != torch.uint8:
        if not sheet.is_floating_point():
            raise TypeError(f"`rows` must be uint8 or float tensors, but got {sheet.dtype}")
        sheet = to_uint8(sheet.float())
    return sheet.permute(1, 2, 3, 0).cpu().numpy()
