"""The rules every engine shares, written once: the reference renderer (:mod:`pmg_dali.render`) states
them, the CPU, fused and DALI engines import them instead of restating them.

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

import torch

__all__ = ["PASTE_PADDING", "PADDING_CODES", "identity_color"]

PASTE_PADDING = "border"
PADDING_CODES = {"zeros": 0, "border": 1, "reflection": 2}   # padding modes as the fused kernel's integers


def identity_color(color: torch.Tensor) -> torch.Tensor:
    """(...) bool: which colour maps (..., 3, 4) are exactly the identity (the colour step is skipped)."""
    eye = torch.eye(3, 4, dtype=color.dtype, device=color.device)
    return (color == eye).flatten(-2).all(-1)
