"""Drawing motion programs: every random number of a clip's motion is drawn here (the image sources
draw their own crops, the masks their own patterns, each from an explicit generator too).

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

from ._checks import check_device, check_generator, check_int
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


def view_extent(step: np.ndarray, size: tuple[int, int], num_frames: int):
    """Where frames 0 .. T-1 of a motion ``step`` (B, 3, 3) look, in frame-0 pixel coordinates.

    Frame t shows the frame-0 points ``step^-t @ p`` at its pixel centres p; the image of the frame's
    rectangle is the quadrilateral of its corners' images, so the corners of every frame bound what the
    clip sees. Returns (ratio (B,), low (B, 2), high (B, 2)): the bounding box ``[low, high]`` of those
    corners and the largest ``ratio <= 1`` for which a view of ``ratio`` times the image side holds the
    box inside the image (0 where a corner crosses the line at infinity).
    """
    h, w = size
    corners = np.array([[0, w - 1, w - 1, 0], [0, 0, h - 1, h - 1], [1, 1, 1, 1]], dtype=np.float64)
    power = np.linalg.inv(step)[:, None]                                   # step^-k, k = 1, 2, 4, ...
    points = np.broadcast_to(corners, (step.shape[0], 1, 3, 4))
    while points.shape[1] < num_frames:                                    # frames [k, 2k) from [0, k)
        points = np.concatenate([points, power @ points], axis=1)
        power = power @ power
    points = points[:, :num_frames].transpose(0, 2, 1, 3).reshape(step.shape[0], 3, 4 * num_frames)  # (B, 3, 4T)
    xy, ahead = points[:, :2], True
    if (step[:, 2, :2] != 0).any():                  # projective steps: divide, and see what crosses infinity
        z = points[:, 2:]
        ahead = (z > 1e-9).all(axis=(1, 2))
        xy = xy / np.where(z > 1e-9, z, 1.0)
    low, high = xy.min(axis=-1), xy.max(axis=-1)
    span = np.maximum(high - low, 1e-12)
    ratio = np.minimum(1.0, np.minimum((w - 1) / span[:, 0], (h - 1) / span[:, 1]))
    return np.where(ahead, ratio, 0.0), low, high


FIT_STEPS = 3        # bracketing steps of the weakening search (host and DALI's graph alike)


def _fit_motion(cfg: PMGConfig, make_step):
    """A batch's per-step maps and, with ``cfg.framing == "inside"``, their :func:`view_extent` (None
    for ``"whole"``); the motion of a clip that would need a first view smaller than
    ``cfg.min_view_area`` of the image is weakened.

    ``make_step(alpha, rows)`` builds the steps of clips ``rows`` at intensity ``alpha`` (1: as drawn,
    0: no motion; None: 1 for every clip). The intensity of such a clip is searched in ``FIT_STEPS``
    steps of :func:`fit_step` between 0 (fits) and 1 (does not), and the largest intensity seen to fit
    is kept: its view is never below the floor. The view is then framed on the kept motion's own
    extent, so no frame leaves the image whatever the fit.
    """
    step = make_step(None, slice(None))
    if cfg.framing != "inside":
        return step, None
    target = math.sqrt(cfg.min_view_area)
    with np.errstate(over="ignore", invalid="ignore"):
        ratio, low, high = view_extent(step, cfg.size, cfg.num_frames)
        rows = np.flatnonzero(ratio < target)
        if len(rows):
            h, w = cfg.size
            n = len(rows)
            bracket = [np.zeros(n), np.zeros(n), np.ones(n), excess(ratio[rows])]     # lo, g(lo), hi, g(hi)
            kept = (np.ones(n), np.zeros((n, 2)), np.tile([w - 1.0, h - 1.0], (n, 1)))  # the extent at lo
            for _ in range(FIT_STEPS):
                alpha = fit_step(bracket, cfg.min_view_area, np.minimum, np.maximum)
                trial = view_extent(make_step(alpha, rows), cfg.size, cfg.num_frames)
                fits = trial[0] >= target
                bracket = narrow(bracket, alpha, excess(trial[0]), fits)
                kept = tuple(np.where(fits.reshape(-1, *[1] * (k.ndim - 1)), t, k) for t, k in zip(trial, kept))
            step[rows] = make_step(bracket[0], rows)
            ratio[rows], low[rows], high[rows] = kept
    return step, (ratio, low, high)


def excess(ratio, maximum=np.maximum):
    """``g = 1 / ratio - 1``: how much larger than the view a clip's extent is (finite: a clip whose
    motion crosses the line at infinity, ratio 0, counts as far too large)."""
    return 1.0 / maximum(ratio, 1e-6) - 1.0


def fit_step(bracket, min_view_area: float, minimum, maximum):
    """The next intensity to try in ``bracket = [lo, g(lo), hi, g(hi)]`` (``lo`` fits, ``hi`` does
    not): regula falsi in ``g`` (which grows about linearly with the intensity) aimed a little inside
    the goal, kept off the ends of the bracket. Plain arithmetic with the library's ``minimum`` /
    ``maximum``, so the host (NumPy) and DALI's graph (``nvidia.dali.math``) share it."""
    lo, g_lo, hi, g_hi = bracket
    aim = 0.95 * (1 / math.sqrt(min_view_area) - 1)
    t = (aim - g_lo) / maximum(g_hi - g_lo, 1e-12)
    return lo + (hi - lo) * minimum(maximum(t, 0.02), 0.98)


def narrow(bracket, alpha, g, fits):
    """The bracket after trying ``alpha`` (excess ``g``): ``lo`` moves up to it when it fits, ``hi``
    down to it when not (``fits`` a bool array or node)."""
    lo, g_lo, hi, g_hi = bracket
    return [lo + fits * (alpha - lo), g_lo + fits * (g - g_lo), alpha + fits * (hi - alpha), g + fits * (g_hi - g)]


def _first_view(cfg: PMGConfig, extent, placement: np.ndarray | None, batch: int) -> np.ndarray:
    """(B, 3, 3) source -> frame-0 maps. ``"inside"`` framing: a view of ``ratio`` times the image,
    placed at ``placement`` (B, 2) in [0, 1) along the positions that keep every frame of the clip
    inside the image (frame-0 pixel p shows source pixel ``corner + ratio * p``); ``"whole"`` (no
    extent): the whole image (identity)."""
    if extent is None:
        return eye(batch)
    ratio, low, high = extent
    h, w = cfg.size
    lowest = -ratio[:, None] * low                                   # corner keeping ``low`` at pixel 0
    slack = np.maximum(np.array([w - 1, h - 1]) - ratio[:, None] * high - lowest, 0)
    corner = lowest + slack * placement
    return scale_matrix(1 / np.maximum(ratio, 1e-12), 0.0, 0.0) @ translation_matrix(*(-corner).T)


def _placement(cfg: PMGConfig, draw: _Draw) -> np.ndarray | None:
    """(B, 2) uniform position of the first view (drawn only for ``"inside"`` framing)."""
    return draw.uniform(0, 1, 2) if cfg.framing == "inside" else None


def affine_motion(cfg: PMGConfig, angle, translate, scale, shear, placement):
    """(first, step) of affine clips from their drawn parameters (B,) degrees, (B, 2) pixels, (B,)
    factor, (B, 2) degrees and the view's ``placement`` (B, 2) (None for ``"whole"`` framing)."""
    h, w = cfg.size
    center = np.broadcast_to(np.array([w - 1, h - 1], dtype=np.float64) / 2, (len(angle), 2))

    def make_step(alpha, rows):
        a = np.ones_like(angle[rows]) if alpha is None else alpha
        return affine_step_matrix(a * angle[rows], a[:, None] * translate[rows], scale[rows] ** a,
                                  a[:, None] * shear[rows], center[rows])

    step, extent = _fit_motion(cfg, make_step)
    return _first_view(cfg, extent, placement, len(angle)), step


def sample_affine(cfg: PMGConfig, draw: _Draw):
    """Per step: rotation, translation, isotropic scale and shear about the image centre
    (:func:`affine_motion`; by default the view stays inside the image, see ``PMGConfig.framing``)."""
    h, w = cfg.size
    _, _, c0, cs = _identity(draw.batch)
    angle = draw.uniform(-cfg.affine_degrees, cfg.affine_degrees)
    side = np.array([w - 1, h - 1], dtype=np.float64)
    translate = draw.uniform(-cfg.affine_translate, cfg.affine_translate, 2) * side
    scale = draw.uniform(*cfg.affine_scale)
    shear = draw.uniform(-cfg.affine_shear, cfg.affine_shear, 2)
    first, step = affine_motion(cfg, angle, translate, scale, shear, _placement(cfg, draw))
    return first, step, c0, cs


def sample_perspective(cfg: PMGConfig, draw: _Draw):
    """Per step: the homography that moves each image corner by up to ``perspective_distortion``
    of the side (kornia's four-point solver), framed as affine clips are."""
    from kornia.geometry.transform import get_perspective_transform

    h, w = cfg.size
    _, _, c0, cs = _identity(draw.batch)
    corners = np.tile(np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64),
                      (draw.batch, 1, 1))
    side = np.array([w - 1, h - 1], dtype=np.float64)
    d = cfg.perspective_distortion
    shift = draw.uniform(-d, d, 4, 2) * side

    def make_step(alpha, rows):
        moved = shift[rows] if alpha is None else alpha[:, None, None] * shift[rows]
        src = torch.from_numpy(np.ascontiguousarray(corners[rows]))
        return get_perspective_transform(src, src + torch.from_numpy(moved)).numpy()

    step, extent = _fit_motion(cfg, make_step)
    return _first_view(cfg, extent, _placement(cfg, draw), draw.batch), step, c0, cs


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
    if cfg.framing == "inside":     # every pasted pixel samples between the partner's pixel centres
        patch = np.minimum(patch, extent - 1)
        cut = draw.uniform(0, 1, 2) * (extent - 1 - patch)
    else:                           # the cut may reach the partner's outer pixel edges
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


def videomix_edges(cut, centre, side: int, floor, clip):
    """One side of a VideoMix box, in whole pixels: a length of ``cut * side`` rounded half up,
    centred on the pixel ``centre`` and clipped to ``[0, side]``. Returns (start, stop). ``floor`` and
    ``clip`` are the array library's (NumPy on the host, ``nvidia.dali.math`` in DALI's graph), so both
    samplers apply this one rule."""
    length = floor(cut * side + 0.5)
    return clip(floor(centre - length / 2), 0, side), clip(floor(centre + length / 2), 0, side)


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
    x0, x1 = videomix_edges(cut, np.floor(draw.uniform(0, w)), w, np.floor, np.clip)
    y0, y1 = videomix_edges(cut, np.floor(draw.uniform(0, h)), h, np.floor, np.clip)
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
    target = check_device(device) if device is not None else draw_device
    return program if program.device == target else program.to(target)
