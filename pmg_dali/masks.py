"""VideoMAE tube masks: one random spatial pattern per clip, repeated at every temporal position."""
from __future__ import annotations

import torch

from ._checks import check_device, check_generator, check_int, check_number
from .config import parse_size

__all__ = ["tube_mask", "tube_mask_shape"]


def check_mask_ratio(mask_ratio) -> float:
    """``mask_ratio`` must be a number in [0, 1)."""
    ratio = check_number("mask_ratio", mask_ratio)
    if not 0 <= ratio < 1:
        raise ValueError(f"`mask_ratio` must be in [0, 1), but got {mask_ratio!r}")
    return ratio


def tube_mask_shape(num_frames: int = 16, size=224, patch_size: int = 16,
                    tubelet_size: int = 2) -> tuple[int, int]:
    """``(T / tubelet_size, (H / patch_size) * (W / patch_size))``: time positions and spatial tokens
    of one clip, after checking that the tubelets and patches tile the clip exactly."""
    num_frames = check_int("num_frames", num_frames, 1)
    patch_size = check_int("patch_size", patch_size, 1)
    tubelet_size = check_int("tubelet_size", tubelet_size, 1)
    h, w = parse_size(size)
    if num_frames % tubelet_size:
        raise ValueError(f"`num_frames` must be divisible by `tubelet_size` ({tubelet_size}), "
                         f"but got {num_frames}")
    if h % patch_size or w % patch_size:
        raise ValueError(f"`size` must be divisible by `patch_size` ({patch_size}), but got {(h, w)}")
    return num_frames // tubelet_size, (h // patch_size) * (w // patch_size)


def tube_mask(batch_size: int, num_frames: int = 16, size=224, patch_size: int = 16,
              tubelet_size: int = 2, mask_ratio: float = 0.75, generator: torch.Generator | None = None,
              device=None) -> torch.Tensor:
    """VideoMAE tube masking: a boolean (B, N) mask, True = masked (hidden from the encoder).

    ``N = (T / tubelet_size) * (H / patch_size) * (W / patch_size)`` tokens in the order of official
    VideoMAE and Hugging Face ``VideoMAEForPreTraining``: time-major, then row, then column, i.e.
    token ``t * Ns + row * (W / patch_size) + col`` with ``Ns`` spatial tokens per time position.
    Each row hides the same ``int(mask_ratio * Ns)`` spatial tokens at every time position (a tube
    through the clip), drawn uniformly without replacement per clip.

    Count: ``(T / tubelet_size) * int(mask_ratio * Ns)`` True per row, exactly the count of the
    official ``TubeMaskingGenerator``. This equals ``int(mask_ratio * N)`` whenever that number is a
    multiple of ``T / tubelet_size`` (0.75 at 16 x 224^2: 1176 of 1568). Otherwise no mask can be both
    a tube and hold ``int(mask_ratio * N)`` tokens; the tube wins (0.9 at 16 x 224^2: 8 * 176 = 1408
    masked, not int(0.9 * 1568) = 1411). Every row holds the same count, as Hugging Face requires.

    Args:
        batch_size: rows B (>= 0).
        num_frames: clip length T, a multiple of ``tubelet_size``.
        size: frame size, ``int`` or ``(H, W)``, each a multiple of ``patch_size``.
        patch_size: spatial side of a token in pixels.
        tubelet_size: frames per token.
        mask_ratio: fraction of the spatial tokens hidden, in [0, 1).
        generator: the random numbers (one integer key per token, ranked per row) are drawn on its device; the
            default generator of ``device`` (CPU when None) when not given.
        device: where the mask is returned (default: the generator's device).
    Returns:
        (B, N) bool on ``device``.
    """
    batch_size = check_int("batch_size", batch_size, 0)
    steps, spatial = tube_mask_shape(num_frames, size, patch_size, tubelet_size)
    mask_ratio = check_mask_ratio(mask_ratio)
    check_generator(generator)
    device = check_device(device) if device is not None else None
    if generator is not None:
        draw_device = generator.device
    else:
        draw_device = device if device is not None else torch.device("cpu")
    masked = int(mask_ratio * spatial)
    # One random key per token, made distinct (key * Ns + token), so the ``masked`` smallest keys of a
    # row are one exact set whatever the device or selection algorithm; kthvalue finds the threshold
    # in O(Ns) (a full sort of the row costs ~10x more on the host).
    keys = torch.randint(0, 2**62 // spatial, (batch_size, spatial), generator=generator, device=draw_device)
    keys = keys * spatial + torch.arange(spatial, device=draw_device)
    if masked == 0 or batch_size == 0:
        frame = torch.zeros(batch_size, spatial, dtype=torch.bool, device=draw_device)
    else:
        frame = keys <= keys.kthvalue(masked, dim=1, keepdim=True).values       # (B, Ns)
    return frame.repeat(1, steps).to(device if device is not None else draw_device)  # (B, steps*Ns)
