"""Drawing motion programs: the only place in pmg_dali that draws random numbers.

Each ``sample_<transform>`` draws one intensity per clip and returns the clip's first view and its
per-step map -- ``(first, step)`` homographies (B, 3, 3) and colour matrices (B, 4, 4), float64 --
so that frame t is ``step^t @ first`` (:func:`pmg_dali.geometry.matrix_powers`): f applied t times.
The arithmetic runs in NumPy on the host; the random numbers come from the explicit torch generator.
Every sampler runs for the whole batch and the transform drawn for each clip picks its rows, so the
random stream consumed does not depend on which transforms were drawn.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._checks import check_generator, check_int
from .config import PMGConfig
from .geometry import (affine_step_matrix, color_jitter_matrix, eye, matrix_powers, scale_matrix,
                       translation_matrix)
from .program import MotionProgram

__all__ = ["sample_program"]


class _Draw:
    """Uniform draws of shape (B, ...) in float64 from one explicit generator, as NumPy arrays (the
    program's arithmetic runs on the host in NumPy; a CUDA generator's numbers are copied over)."""

    def __init__(self, batch: int, generator: torch.Generator | None, device):
        self.batch, self.generator, self.device = batch, generator, device

    def uniform(self, low: float, high: float, *shape: int) -> np.ndarray:
        u = torch.rand(self.batch, *shape, generator=self.generator, device=self.device, dtype=torch.float64)
        return low + (high - low) * u.cpu().numpy()

    def shift(self) -> np.ndarray:
        """(B,) int64: a random non-zero cyclic shift per batch, i.e. a partner that is another clip."""
        b = self.batch
        k = int(torch.randint(1, max(b, 2), (1,), generator=self.generator, device=self.device)) % max(b, 1)
        return (np.arange(b) + k) % max(b, 1)

    def seed(self) -> int:
        return int(torch.randint(0, 2**62, (1,), generator=self.generator, device=self.device))


def _direction(draw: _Draw, speed: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    """(B, 2) pixel velocity: a uniform direction, a speed in fractions of each side per frame."""
    angle = draw.uniform(0, 2 * math.pi)
    v = draw.uniform(*speed)
    h, w = size
    return np.stack([v * np.cos(angle) * (w - 1), v * np.sin(angle) * (h - 1)], axis=-1)


def _fit_path(draw: _Draw, velocity: np.ndarray, room: np.ndarray, num_frames: int):
    """Shrink ``velocity`` (B, 2) so that a path of T frames fits in ``room`` (B, 2) pixels; draw
    where the path starts, as an offset in [0, room]. Returns (start (B, 2), velocity (B, 2))."""
    travel = np.abs(velocity * (num_frames - 1))
    fit = np.where(travel > room, room / np.maximum(travel, 1e-12), 1.0)
    velocity = velocity * fit.min(axis=-1, keepdims=True)
    travel = velocity * (num_frames - 1)
    low = np.maximum(-travel, 0)
    high = room - np.maximum(travel, 0)
    start = low + np.maximum(high - low, 0) * draw.uniform(0, 1, 2)
    return start, velocity


def _identity(b: int):
    return eye(b), eye(b), eye(b, 4), eye(b, 4)


def sample_identity(cfg: PMGConfig, draw: _Draw):
    return _identity(draw.batch)


def sample_sliding_window(cfg: PMGConfig, draw: _Draw):
    """A window of ``sliding_window_scale`` of the side, shown full-frame, slides in a straight line
    at a constant speed and stays inside the image (the speed is reduced when the path would not fit)."""
    h, w = cfg.size
    _, _, c0, cs = _identity(draw.batch)
    r = draw.uniform(*cfg.sliding_window_scale)
    room = np.stack([(1 - r) * (w - 1), (1 - r) * (h - 1)], axis=-1)
    start, velocity = _fit_path(draw, _direction(draw, cfg.sliding_window_speed, cfg.size), room,
                                cfg.num_frames)
    first = scale_matrix(1 / r, 0.0, 0.0) @ translation_matrix(*(-start).T)
    step = translation_matrix(*(-velocity / r[:, None]).T)
    return first, step, c0, cs


def sample_zoom(cfg: PMGConfig, draw: _Draw):
    """The view scales by ``zoom_scale`` per step about a centre in the middle ``zoom_center`` of the
    image. Zooming in (< 1) starts from the whole image; zooming out (> 1) is its time reversal, ending
    on the whole image, so the view never leaves the image."""
    h, w = cfg.size
    _, _, c0, cs = _identity(draw.batch)
    s = draw.uniform(*cfg.zoom_scale)
    half = cfg.zoom_center / 2
    cx = (w - 1) * draw.uniform(0.5 - half, 0.5 + half)
    cy = (h - 1) * draw.uniform(0.5 - half, 0.5 + half)
    # The view at frame t covers a window of relative size r_t = r_0 * s^t, r_t <= 1.
    r0 = np.where(s > 1, s ** -(cfg.num_frames - 1), 1.0)
    return scale_matrix(1 / r0, cx, cy), scale_matrix(1 / s, cx, cy), c0, cs


def sample_fade(cfg: PMGConfig, draw: _Draw):
    """Brightness times ``fade_gain`` per step (fade out), or its inverse from a first frame
    darkened by gain^(T-1) (fade in)."""
    first, step, c0, cs = _identity(draw.batch)
    g = draw.uniform(*cfg.fade_gain)
    fade_in = draw.uniform(0, 1) < 0.5
    start = np.where(fade_in, g ** (cfg.num_frames - 1), 1.0)
    per_step = np.where(fade_in, 1 / g, g)
    c0[:, :3, :3] *= start[:, None, None]
    cs[:, :3, :3] *= per_step[:, None, None]
    return first, step, c0, cs


def sample_affine(cfg: PMGConfig, draw: _Draw):
    """Per step: rotation, translation, isotropic scale and shear about the image centre."""
    h, w = cfg.size
    first, _, c0, cs = _identity(draw.batch)
    angle = draw.uniform(-cfg.affine_degrees, cfg.affine_degrees)
    side = np.array([w - 1, h - 1], dtype=np.float64)
    translate = draw.uniform(-cfg.affine_translate, cfg.affine_translate, 2) * side
    scale = draw.uniform(*cfg.affine_scale)
    shear = draw.uniform(-cfg.affine_shear, cfg.affine_shear, 2)
    center = np.broadcast_to(side / 2, (draw.batch, 2))
    return first, affine_step_matrix(angle, translate, scale, shear, center), c0, cs


def sample_perspective(cfg: PMGConfig, draw: _Draw):
    """Per step: the homography that moves each image corner by up to ``perspective_distortion``
    of the side (kornia's four-point solver)."""
    from kornia.geometry.transform import get_perspective_transform

    h, w = cfg.size
    first, _, c0, cs = _identity(draw.batch)
    corners = np.tile(np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64),
                      (draw.batch, 1, 1))
    side = np.array([w - 1, h - 1], dtype=np.float64)
    d = cfg.perspective_distortion
    moved = corners + draw.uniform(-d, d, 4, 2) * side
    step = get_perspective_transform(torch.from_numpy(corners), torch.from_numpy(moved))
    return first, step.numpy(), c0, cs


def sample_color_jitter(cfg: PMGConfig, draw: _Draw):
    """Per step: brightness, contrast, saturation and hue changed a little, as one colour matrix."""
    first, step, c0, _ = _identity(draw.batch)
    factors = [draw.uniform(1 - x, 1 + x) for x in
               (cfg.jitter_brightness, cfg.jitter_contrast, cfg.jitter_saturation)]
    hue = draw.uniform(-cfg.jitter_hue, cfg.jitter_hue)
    return first, step, c0, color_jitter_matrix(*factors, hue)


def sample_paste(cfg: PMGConfig, draw: _Draw):
    """Cutmix's moving patch: a box of ``cutmix_scale`` of the side cut from another image of the
    batch, pasted and sliding at constant velocity (kept inside the frame).

    Returns (partner (B,), first, step (B, 3, 3) partner -> frame maps, origin (B, 2), velocity
    (B, 2), patch size (B, 2)); the box at frame t is ``origin + t * velocity + [0, size]``.
    """
    h, w = cfg.size
    partner = draw.shift()
    extent = np.array([w, h], dtype=np.float64)
    patch = draw.uniform(*cfg.cutmix_scale)[:, None] * extent
    cut = -0.5 + draw.uniform(0, 1, 2) * (extent - patch)
    origin, velocity = _fit_path(draw, _direction(draw, cfg.cutmix_speed, cfg.size), extent - patch,
                                 cfg.num_frames)
    origin = origin - 0.5
    return (partner, translation_matrix(*(origin - cut).T), translation_matrix(*velocity.T), origin, velocity,
            patch)


SAMPLERS = {"identity": sample_identity, "sliding_window": sample_sliding_window,
            "zoom": sample_zoom, "fade": sample_fade, "affine": sample_affine,
            "perspective": sample_perspective, "color_jitter": sample_color_jitter,
            "cutmix": sample_identity}
COLOR_TRANSFORMS = {"fade", "color_jitter"}   # the samplers whose colour maps are not the identity


def sample_mix(cfg: PMGConfig, draw: _Draw):
    """Frame Mixup / VideoMix parameters: (partner (B,), lambda (B,) or (B, T), box (B, 4) or None)."""
    partner = draw.shift()
    shape = (draw.batch, cfg.num_frames) if cfg.mixup == "frame" and cfg.mixup_per_frame else (draw.batch,)
    # torch's Beta sampler takes no generator: a NumPy Generator seeded from ours keeps it explicit.
    lam = np.random.default_rng(draw.seed()).beta(cfg.mixup_alpha, cfg.mixup_alpha, size=shape)
    if cfg.mixup == "frame":
        return partner, lam, None
    # VideoMix: a box of area (1 - lambda) H W, clipped to the frame, in whole pixels (as CutMix).
    h, w = cfg.size
    cut = np.sqrt(1 - lam)
    cw, ch = np.round(cut * w), np.round(cut * h)
    cx, cy = np.floor(draw.uniform(0, w)), np.floor(draw.uniform(0, h))
    x0, x1 = np.floor(cx - cw / 2).clip(0, w), np.floor(cx + cw / 2).clip(0, w)
    y0, y1 = np.floor(cy - ch / 2).clip(0, h), np.floor(cy + ch / 2).clip(0, h)
    lam = 1 - (x1 - x0) * (y1 - y0) / (w * h)
    # pixel centres are integers: the box [x0, x1) of whole pixels is [x0 - 0.5, x1 - 0.5) in centres
    box = np.stack([x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5], axis=-1)
    return partner, lam, box


def sample_program(cfg: PMGConfig, batch_size: int, generator: torch.Generator | None = None,
                   device=None) -> MotionProgram:
    """Draw a :class:`MotionProgram` of ``batch_size`` clips for ``cfg``.

    Random numbers are drawn on the generator's device (the default CPU generator when None), the
    program's arithmetic runs on the host in float64 (NumPy), and the program is moved to ``device``
    (default: the generator's device). A CPU generator therefore gives the same program for every
    device and backend; a CUDA generator's numbers are copied to the host draw by draw (each a
    synchronisation: prefer a CPU generator).
    """
    batch_size = check_int("batch_size", batch_size, 0)
    check_generator(generator)
    draw_device = generator.device if generator is not None else torch.device("cpu")
    draw = _Draw(batch_size, generator, draw_device)
    b, t = batch_size, cfg.num_frames

    which = torch.randint(0, len(cfg.transforms), (b,), generator=generator, device=draw_device).cpu()
    parts = [SAMPLERS[name](cfg, draw) for name in cfg.transforms]
    rows, picked = np.arange(b), which.numpy()
    pick = lambda k: np.stack([p[k] for p in parts], 1)[rows, picked]  # noqa: E731
    homography = matrix_powers(pick(1), pick(0), t)
    if COLOR_TRANSFORMS & set(cfg.transforms):
        color = matrix_powers(pick(3), pick(2), t)[..., :3, :]
    else:   # geometric motion only: every colour map is the identity
        color = np.tile(np.eye(3, 4), (b, t, 1, 1))
    fields = {}
    if "cutmix" in cfg.transforms:
        partner, first, step, origin, velocity, patch = sample_paste(cfg, draw)
        on = picked == cfg.transforms.index("cutmix")
        top_left = origin[:, None] + np.arange(t)[None, :, None] * velocity[:, None]
        box = np.concatenate([top_left, top_left + patch[:, None]], axis=-1) * on[:, None, None]
        fields.update(paste_index=partner, paste_homography=matrix_powers(step, first, t), paste_box=box)
    if cfg.mixup is not None:
        partner, lam, box = sample_mix(cfg, draw)
        fields.update(mix_index=partner, mix_lambda=lam, mix_box=box)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in fields.items() if v is not None}
    program = MotionProgram(homography=torch.from_numpy(homography).float(),
                            color=torch.from_numpy(np.ascontiguousarray(color)).float(), transform=which,
                            **{k: v if k.endswith("index") else v.float() for k, v in tensors.items()})
    target = torch.device(device) if device is not None else draw_device
    return program if program.device == target else program.to(target)
