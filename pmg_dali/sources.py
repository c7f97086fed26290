"""Image sources: anything with ``len(source)`` and
``source.load(indices, size, device, generator=None) -> uint8 (B, 3, H, W)``."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import parse_size

__all__ = ["TensorImages", "check_indices"]


def check_indices(indices, length: int) -> torch.Tensor:
    """``indices`` (sequence or 1-D tensor of ints in [0, length)) -> CPU long tensor."""
    idx = torch.as_tensor(indices)
    if idx.ndim != 1 or (idx.numel() and (idx.is_floating_point() or idx.dtype == torch.bool)):
        raise ValueError(f"`indices` must be a 1-D sequence of ints, but got shape {tuple(idx.shape)} "
                         f"and dtype {idx.dtype}")
    idx = idx.long().cpu()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= length):
        raise ValueError(f"`indices` must lie in [0, {length}), but got values from "
                         f"{int(idx.min())} to {int(idx.max())}")
    return idx


class TensorImages:
    """An in-memory (N, 3, H, W) uint8 tensor as an image source.

    ``load`` gathers the requested images, moves them to ``device`` and resizes them to ``size``
    (antialiased bilinear) when their size differs. The tensor is kept where it is given: put it on
    the GPU once to avoid a host-to-device copy per batch.
    """

    def __init__(self, images: torch.Tensor):
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"`images` must be a torch.Tensor, but got {type(images).__name__}")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"`images` must have shape (N, 3, H, W), but got {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            raise TypeError(f"`images` must be uint8, but got {images.dtype}")
        if images.shape[0] == 0:
            raise ValueError("`images` must hold at least one image, but got N = 0")
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return f"TensorImages(num_images={len(self)}, size={tuple(self.images.shape[-2:])})"

    def load(self, indices, size, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (B, 3, H, W) images ``indices`` at ``size`` on ``device``; ``generator`` is unused
        (the images are deterministic)."""
        idx = check_indices(indices, len(self))
        size = parse_size(size)
        out = self.images[idx.to(self.images.device)].to(device)
        if tuple(out.shape[-2:]) != size and out.shape[0]:
            out = F.interpolate(out.float(), size=size, mode="bilinear", antialias=True,
                                align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
        return out
