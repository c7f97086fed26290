"""Matrices and the one pixel convention of pmg_dali.

Convention (the whole package):
    Pixel centres sit at integer coordinates ``(x, y)``, ``x`` to the right, ``y`` down, the origin at
    the centre of the top-left pixel; an image of width W spans ``x in [-0.5, W - 0.5]``. A homography
    ``H`` maps **source** pixel coordinates to **frame** pixel coordinates, so a frame is drawn by
    sampling the source at ``H^-1 @ (x, y, 1)`` -- exactly ``cv2.warpPerspective(src, H, (W, H))``.
    Colour maps are 4x4 augmented matrices acting on ``(r, g, b, 1)`` with RGB in [0, 1].

Each backend's convention is reached from this one by exactly one function here:
:func:`normalized_inverse` (``torch.nn.functional.grid_sample``, ``align_corners=True``) and
:func:`dali_inverse_map` (DALI's warps: pixel-corner origin, destination -> source matrix).
"""
from __future__ import annotations

import math

import torch

__all__ = ["eye", "translation_matrix", "scale_matrix", "affine_step_matrix", "color_jitter_matrix",
           "matrix_powers", "normalized_inverse", "dali_inverse_map", "LUMA"]

# ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale.
LUMA = (0.299, 0.587, 0.114)


def eye(batch: int, n: int = 3, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """(B, n, n) identity matrices."""
    return torch.eye(n, dtype=dtype, device=device).expand(batch, n, n).clone()


def translation_matrix(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) matrices of ``(x, y) -> (x + tx, y + ty)`` for (B,) shifts."""
    m = eye(tx.shape[0], dtype=tx.dtype, device=tx.device)
    m[:, 0, 2] = tx
    m[:, 1, 2] = ty
    return m


def scale_matrix(scale: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) isotropic scaling by (B,) ``scale`` about the (B,) points ``(cx, cy)``."""
    m = eye(scale.shape[0], dtype=scale.dtype, device=scale.device)
    m[:, 0, 0] = scale
    m[:, 1, 1] = scale
    m[:, 0, 2] = cx * (1 - scale)
    m[:, 1, 2] = cy * (1 - scale)
    return m


def affine_step_matrix(angle: torch.Tensor, translate: torch.Tensor, scale: torch.Tensor,
                       shear: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) affine maps ``T(center + translate) @ R(angle) @ Sh(shear) @ S(scale) @ T(-center)``.

    Args:
        angle: (B,) degrees; positive turns the image counter-clockwise on screen (y down), as
            ``cv2.getRotationMatrix2D`` and torchvision do.
        translate: (B, 2) pixels.
        scale: (B,) isotropic factor.
        shear: (B, 2) degrees along x and along y.
        center: (B, 2) pixel coordinates of the fixed point.
    """
    a = torch.deg2rad(angle)
    cos, sin = torch.cos(a), torch.sin(a)
    rot = eye(angle.shape[0], dtype=angle.dtype, device=angle.device)
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = cos, sin, -sin, cos
    sh = eye(angle.shape[0], dtype=angle.dtype, device=angle.device)
    sh[:, 0, 1] = torch.tan(torch.deg2rad(shear[:, 0]))
    sh[:, 1, 0] = torch.tan(torch.deg2rad(shear[:, 1]))
    zero = torch.zeros_like(scale)
    lin = rot @ sh @ scale_matrix(scale, zero, zero)
    return translation_matrix(*(center + translate).unbind(-1)) @ lin @ translation_matrix(*(-center).unbind(-1))


def color_jitter_matrix(brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor,
                        hue: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) augmented colour matrices ``Hue @ Sat @ Contrast @ Brightness`` on RGB in [0, 1].

    brightness scales RGB; contrast blends with mid-grey 0.5 (an image-independent pivot, so the map
    is one matrix); saturation blends with the BT.601 luma; hue (fraction of a turn) rotates RGB about
    the grey axis, which keeps greys grey. Factors are (B,) tensors, 1 (hue 0) is the identity.
    """
    b = brightness.shape[0]
    kw = dict(dtype=brightness.dtype, device=brightness.device)
    bri = eye(b, 4, **kw)
    bri[:, :3, :3] *= brightness[:, None, None]
    con = eye(b, 4, **kw)
    con[:, :3, :3] *= contrast[:, None, None]
    con[:, :3, 3] = (0.5 * (1 - contrast))[:, None]
    luma = torch.tensor(LUMA, **kw)
    sat = eye(b, 4, **kw)
    sat[:, :3, :3] = (saturation[:, None, None] * torch.eye(3, **kw)
                      + (1 - saturation)[:, None, None] * luma.expand(3, 3))
    # Rodrigues rotation about the unit grey axis k = (1, 1, 1) / sqrt(3).
    theta = 2 * math.pi * hue
    k = torch.full((3,), 1 / math.sqrt(3), **kw)
    kx = torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], **kw) / math.sqrt(3)
    rot = (torch.cos(theta)[:, None, None] * torch.eye(3, **kw)
           + torch.sin(theta)[:, None, None] * kx
           + (1 - torch.cos(theta))[:, None, None] * torch.outer(k, k))
    hue_m = eye(b, 4, **kw)
    hue_m[:, :3, :3] = rot
    return hue_m @ sat @ con @ bri


def matrix_powers(step: torch.Tensor, first: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B, T, n, n) frames ``step^t @ first`` for t = 0 .. T-1: the recursion in closed form.

    Homographies (n = 3) are rescaled so that their bottom-right entry is 1.
    """
    out = [first]
    for _ in range(num_frames - 1):
        out.append(step @ out[-1])
    out = torch.stack(out, dim=1)
    if out.shape[-1] == 3:
        out = out / out[..., 2:3, 2:3]
    return out


def _pixel_to_normalized(size: tuple[int, int], dtype, device) -> torch.Tensor:
    """(3, 3) map from pixel coordinates to ``grid_sample``'s ``align_corners=True`` coordinates."""
    h, w = size
    n = torch.eye(3, dtype=dtype, device=device)
    n[0, 0], n[0, 2] = 2 / (w - 1), -1.0
    n[1, 1], n[1, 2] = 2 / (h - 1), -1.0
    return n


def normalized_inverse(homography: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Frame -> source maps in ``grid_sample`` coordinates (``align_corners=True``).

    Args:
        homography: (..., 3, 3) source -> frame pixel maps (the package convention).
        size: (H, W) of both source and frame.
    Returns:
        (..., 3, 3) float32 ``N @ inv(homography) @ inv(N)``: normalised frame coordinates ->
        normalised source coordinates, -1 and +1 being the centres of the first and last pixels.
    """
    h64 = homography.to(torch.float64)
    n = _pixel_to_normalized(size, torch.float64, homography.device)
    return (n @ torch.linalg.inv(h64) @ torch.linalg.inv(n)).to(torch.float32)


def dali_inverse_map(homography: torch.Tensor) -> torch.Tensor:
    """Destination -> source maps in DALI's convention (pixel-corner origin, ``inverse_map=True``).

    DALI's warps put the origin at the top-left *corner* of the top-left pixel, so a pixel centre is
    at ``i + 0.5``: ``inv(C) @ inv(homography) @ C`` with ``C`` the shift by -0.5.

    Args:
        homography: (..., 3, 3) source -> frame pixel maps (the package convention).
    Returns:
        (..., 3, 3) float32 frame -> source maps in DALI coordinates.
    """
    h64 = homography.to(torch.float64)
    shift = torch.eye(3, dtype=torch.float64, device=homography.device)
    shift[:2, 2] = -0.5  # corner coordinates -> centre coordinates
    unshift = torch.eye(3, dtype=torch.float64, device=homography.device)
    unshift[:2, 2] = 0.5
    return (unshift @ torch.linalg.inv(h64) @ shift).to(torch.float32)
