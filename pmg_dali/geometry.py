"""Matrices and the one pixel convention of pmg_dali.

Convention (the whole package):
    Pixel centres sit at integer coordinates ``(x, y)``, ``x`` to the right, ``y`` down, the origin at
    the centre of the top-left pixel; an image of width W spans ``x in [-0.5, W - 0.5]``. A homography
    ``H`` maps **source** pixel coordinates to **frame** pixel coordinates, so a frame is drawn by
    sampling the source at ``H^-1 @ (x, y, 1)`` -- exactly ``cv2.warpPerspective(src, H, (W, H))``.
    Colour maps are 4x4 augmented matrices acting on ``(r, g, b, 1)`` with RGB in [0, 1].

The matrix builders work in NumPy float64 on the host, batch first (any array-like in, NumPy out): a
batch's program is a few hundred tiny matrix operations, where NumPy's per-call cost is well below
torch's (BENCHMARKS.md, host work per batch).

Each backend's convention is reached from this one by exactly one function here, from frame -> source
maps (:func:`inverse_maps`): :func:`normalized_map` (``torch.nn.functional.grid_sample``,
``align_corners=True``; the grid it samples at is :func:`sampling_grid`) and :func:`dali_map` (DALI's
warps: pixel-corner origin). :func:`normalized_inverse` and :func:`dali_inverse_map` do the same from
source -> frame homographies.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["eye", "translation_matrix", "scale_matrix", "affine_step_matrix", "color_jitter_matrix",
           "matrix_powers", "inverse_maps", "normalized_map", "normalized_inverse", "sampling_grid", "warp_frames",
           "dali_map", "dali_inverse_map", "LUMA"]

# ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale.
LUMA = (0.299, 0.587, 0.114)


def _f64(x) -> np.ndarray:
    """Any array-like (NumPy, CPU torch tensor, list, number) as a float64 array."""
    return np.asarray(x, dtype=np.float64)


def eye(batch: int, n: int = 3) -> np.ndarray:
    """(B, n, n) float64 identity matrices."""
    m = np.zeros((batch, n, n))
    m[:, range(n), range(n)] = 1
    return m


def translation_matrix(tx, ty) -> np.ndarray:
    """(B, 3, 3) matrices of ``(x, y) -> (x + tx, y + ty)`` for (B,) shifts."""
    tx, ty = _f64(tx), _f64(ty)
    m = eye(tx.shape[0])
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def scale_matrix(scale, cx, cy) -> np.ndarray:
    """(B, 3, 3) isotropic scaling by (B,) ``scale`` about the (B,) points ``(cx, cy)``."""
    scale, cx, cy = _f64(scale), _f64(cx), _f64(cy)
    m = eye(scale.shape[0])
    m[:, 0, 0] = m[:, 1, 1] = scale
    m[:, 0, 2], m[:, 1, 2] = cx * (1 - scale), cy * (1 - scale)
    return m


def affine_step_matrix(angle, translate, scale, shear, center) -> np.ndarray:
    """(B, 3, 3) affine maps ``T(center + translate) @ R(angle) @ Sh(shear) @ S(scale) @ T(-center)``.

    Args:
        angle: (B,) degrees; positive turns the image counter-clockwise on screen (y down), as
            ``cv2.getRotationMatrix2D`` and torchvision do.
        translate: (B, 2) pixels.
        scale: (B,) isotropic factor.
        shear: (B, 2) degrees along x and along y.
        center: (B, 2) pixel coordinates of the fixed point.
    """
    a = np.deg2rad(_f64(angle))
    cos, sin = np.cos(a), np.sin(a)
    rot = eye(a.shape[0])
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = cos, sin, -sin, cos
    shear = np.deg2rad(_f64(shear))
    sh = eye(a.shape[0])
    sh[:, 0, 1], sh[:, 1, 0] = np.tan(shear[:, 0]), np.tan(shear[:, 1])
    lin = rot @ sh @ scale_matrix(scale, 0.0, 0.0)
    center = _f64(center)
    return translation_matrix(*(center + _f64(translate)).T) @ lin @ translation_matrix(*(-center).T)


def color_jitter_matrix(brightness, contrast, saturation, hue) -> np.ndarray:
    """(B, 4, 4) augmented colour matrices ``Hue @ Sat @ Contrast @ Brightness`` on RGB in [0, 1].

    brightness scales RGB; contrast blends with mid-grey 0.5 (an image-independent pivot, so the map
    is one matrix); saturation blends with the BT.601 luma; hue (fraction of a turn) rotates RGB about
    the grey axis, which keeps greys grey. Factors are (B,) arrays, 1 (hue 0) is the identity.
    """
    brightness, contrast, saturation, hue = (_f64(v)[:, None, None]
                                             for v in (brightness, contrast, saturation, hue))
    b = brightness.shape[0]
    bri, con, sat, hue_m = eye(b, 4), eye(b, 4), eye(b, 4), eye(b, 4)
    bri[:, :3, :3] *= brightness
    con[:, :3, :3] *= contrast
    con[:, :3, 3:] = 0.5 * (1 - contrast)
    sat[:, :3, :3] = saturation * np.eye(3) + (1 - saturation) * np.tile(LUMA, (3, 1))
    # Rodrigues rotation about the unit grey axis k = (1, 1, 1) / sqrt(3).
    theta = 2 * math.pi * hue
    k = np.full(3, 1 / math.sqrt(3))
    kx = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]]) / math.sqrt(3)
    hue_m[:, :3, :3] = np.cos(theta) * np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * np.outer(k, k)
    return hue_m @ sat @ con @ bri


def matrix_powers(step, first, num_frames: int) -> np.ndarray:
    """(B, T, n, n) frames ``step^t @ first`` for t = 0 .. T-1: the recursion in closed form.

    Homographies (n = 3) are rescaled so that their bottom-right entry is 1.
    """
    step, first = _f64(step), _f64(first)
    out = np.empty((first.shape[0], num_frames, *first.shape[1:]))
    out[:, 0] = first
    for t in range(1, num_frames):
        out[:, t] = step @ out[:, t - 1]
    if out.shape[-1] == 3:
        out /= out[..., 2:3, 2:3]
    return out


def _pixel_to_normalized(size: tuple[int, int], dtype, device) -> torch.Tensor:
    """(3, 3) map from pixel coordinates to ``grid_sample``'s ``align_corners=True`` coordinates."""
    h, w = size
    n = torch.eye(3, dtype=dtype, device=device)
    n[0, 0], n[0, 2] = 2 / (w - 1), -1.0
    n[1, 1], n[1, 2] = 2 / (h - 1), -1.0
    return n


def inverse_maps(homography: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) float64 frame -> source pixel maps ``inv(homography)`` (no host sync on CUDA)."""
    return torch.linalg.inv_ex(homography.to(torch.float64))[0]


def normalized_map(inverse: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Frame -> source pixel maps (..., 3, 3) (float64, :func:`inverse_maps`) in ``grid_sample``
    coordinates (``align_corners=True``): float32 ``N @ inverse @ inv(N)``, -1 and +1 being the centres
    of the first and last pixels."""
    n = _pixel_to_normalized(size, torch.float64, inverse.device)
    return (n @ inverse.to(torch.float64) @ torch.linalg.inv(n)).to(torch.float32)


def normalized_inverse(homography: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Frame -> source maps in ``grid_sample`` coordinates (``align_corners=True``).

    Args:
        homography: (..., 3, 3) source -> frame pixel maps (the package convention).
        size: (H, W) of both source and frame.
    Returns:
        (..., 3, 3) float32 ``N @ inv(homography) @ inv(N)``: normalised frame coordinates ->
        normalised source coordinates, -1 and +1 being the centres of the first and last pixels.
    """
    return normalized_map(inverse_maps(homography), size)


def sampling_grid(inverse: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The ``grid_sample`` grid (``align_corners=True``) that draws frames of ``size`` through frame -> source
    pixel maps: the one sampling grid of the torch renderers.

    Convention: frame pixel ``(x, y)`` (pixel centres at integers, origin at the top-left pixel centre)
    reads the source at ``inverse @ (x, y, 1)`` after the projective divide, written in ``grid_sample``'s
    ``align_corners=True`` coordinates (-1 and +1 are the centres of the first and last pixels,
    :func:`normalized_map`). Source and frame share ``size``.

    Args:
        inverse: (..., 3, 3) frame -> source pixel maps (:func:`inverse_maps` of the homographies).
        size: (H, W) of the frames and the source.
    Returns:
        (..., H, W, 2) float32 normalised source coordinates ``(x, y)`` of every frame pixel.
    """
    h, w = size
    m = normalized_map(inverse, size)                                      # (..., 3, 3)
    xs = torch.linspace(-1, 1, w, device=m.device)
    ys = torch.linspace(-1, 1, h, device=m.device)
    m = m[..., None, None, :, :]                                           # (..., 1, 1, 3, 3)
    # source = M[:, 0] x + M[:, 1] y + M[:, 2], then the projective divide
    num = m[..., 0] * xs[:, None] + m[..., 1] * ys[:, None, None] + m[..., 2]    # (..., H, W, 3)
    return num[..., :2] / num[..., 2:3]


def dali_map(inverse: torch.Tensor) -> torch.Tensor:
    """Frame -> source pixel maps (..., 3, 3) (float64, :func:`inverse_maps`) in DALI's convention
    (pixel-corner origin, ``inverse_map=True``): float32 ``inv(C) @ inverse @ C``, ``C`` the shift by
    -0.5 (DALI puts a pixel centre at ``i + 0.5``)."""
    shift = torch.eye(3, dtype=torch.float64, device=inverse.device)
    shift[:2, 2] = -0.5  # corner coordinates -> centre coordinates
    unshift = torch.eye(3, dtype=torch.float64, device=inverse.device)
    unshift[:2, 2] = 0.5
    return (unshift @ inverse.to(torch.float64) @ shift).to(torch.float32)


def dali_inverse_map(homography: torch.Tensor) -> torch.Tensor:
    """Destination -> source maps in DALI's convention (pixel-corner origin, ``inverse_map=True``).

    DALI's warps put the origin at the top-left *corner* of the top-left pixel, so a pixel centre is
    at ``i + 0.5``: ``inv(C) @ inv(homography) @ C`` with ``C`` the shift by -0.5.

    Args:
        homography: (..., 3, 3) source -> frame pixel maps (the package convention).
    Returns:
        (..., 3, 3) float32 frame -> source maps in DALI coordinates.
    """
    return dali_map(inverse_maps(homography))


def warp_frames(images: torch.Tensor, homography: torch.Tensor, padding_mode: str = "zeros",
                mode: str = "bilinear") -> torch.Tensor:
    """Frame t of clip b = ``images[b]`` (a still image) or ``images[b, :, t]`` (a video's frame t)
    warped by ``homography[b, t]`` (bilinear; ``mode="nearest"`` for label masks), sampled at
    :func:`pmg_dali.geometry.sampling_grid`.

    Convention: ``homography`` maps source pixel coordinates to frame pixel coordinates, pixel centres
    at integers, origin at the top-left pixel centre (``cv2.warpPerspective(src, H, (W, H))``).

    Args:
        images: (B, C, H, W) float, one source per clip, or (B, C, T, H, W) float, one per frame.
        homography: (B, T, 3, 3).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"`` (about the edge pixel centres).
        mode: ``grid_sample``'s ``"bilinear"`` or ``"nearest"``.
    Returns:
        (B, C, T, H, W) float.
    """
    b, c, h, w = images.shape[0], images.shape[1], *images.shape[-2:]
    t = homography.shape[1]
    if b == 0:
        return images.new_zeros(0, c, t, h, w)
    # frame t occupies rows t*H .. (t+1)*H - 1 of one tall (B, T*H, W, 2) grid
    grid = sampling_grid(inverse_maps(homography.to(images.device)), (h, w)).to(images.dtype).reshape(b, t * h, w, 2)
    if images.ndim == 5:   # one grid_sample over the B*T frames, each with its own map
        frames = images.transpose(1, 2).reshape(b * t, c, h, w)
        out = F.grid_sample(frames, grid.view(b * t, h, w, 2), mode=mode, padding_mode=padding_mode,
                            align_corners=True)
        return out.view(b, t, c, h, w).transpose(1, 2)
    out = F.grid_sample(images, grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    return out.view(b, c, t, h, w)
