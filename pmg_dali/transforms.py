"""The transforms of the Pseudo-Motion Generator, one :class:`Transform` record each, in :data:`TABLE`.

A record is everything the package knows about a transform:

- ``name``: its name in ``PMGConfig.transforms``;
- ``sample(cfg, draw) -> dict``: draws its parameters for the whole batch and returns them **by name**,
  NumPy float64 arrays with one row per clip (kornia's generator / apply split; the names and shapes
  are in each ``sample_<name>``'s docstring). The search that weakens motions so that their clips stay
  inside the picture (``PMGConfig.framing``) is part of the sampling: its result is a parameter too;
- ``matrices(cfg, params) -> Motion``: turns those parameters into the transform's maps in closed form,
  without drawing anything: frame t's map is ``step^t @ first`` (:class:`Motion`);
- ``fields``: the ``PMGConfig`` fields it owns, with the bounds ``PMGConfig`` checks them against;
- ``colors``: whether its colour maps may differ from the identity (a program of geometric transforms
  only skips the colour maps);
- ``pastes``: whether it pastes a moving patch of a partner clip (the program has one paste: cutmix);
- ``projective``: whether its maps may be projective (not affine: a renderer needs perspective warps).

The lists of transforms are read from the table: :data:`TRANSFORMS` (``PMGConfig``'s choices, in table
order), :data:`COLOR_TRANSFORMS`, :data:`PASTE_TRANSFORMS`, :data:`PROJECTIVE_TRANSFORMS`;
``PMGConfig`` checks each record's fields and :mod:`pmg_dali.sampling` draws and compiles a batch through
it. A new transform is one more record here, plus its intensity keywords declared on ``PMGConfig`` (typed
fields, documented there and in the README).

Samplers draw through ``draw``, the random source of one batch (:class:`pmg_dali.sampling.Draw`:
``draw.batch`` B, ``draw.uniform(low, high, *shape)`` (B, *shape) float64, ``draw.shift()`` (B,) partner
indices), and do their arithmetic in NumPy float64 on the host; nothing here calls a random number
generator itself. The order of their draws fixes the programs a generator gives: keep it. This module
imports nothing of the package but the matrix builders (:mod:`pmg_dali.geometry`), because ``PMGConfig``
reads the table and :mod:`pmg_dali.sampling` draws through it: ``cfg`` (a ``PMGConfig``) and ``draw`` go
unannotated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch

from .geometry import affine_step_matrix, color_jitter_matrix, eye, scale_matrix, translation_matrix

__all__ = ["Transform", "ConfigField", "Motion", "Paste", "TABLE", "TRANSFORMS", "COLOR_TRANSFORMS",
           "PASTE_TRANSFORMS", "PROJECTIVE_TRANSFORMS", "view_extent"]

Params = dict[str, np.ndarray]           # a transform's parameters by name, one row per clip


class Paste(NamedTuple):
    """A moving patch of a partner clip (cutmix). ``index`` (B,) int64: the partner of each clip;
    ``first``, ``step`` (B, 3, 3): partner source -> frame 0 and frame t -> t + 1 maps of the patch;
    ``box`` (B, T, 4): the patch's ``(x0, y0, x1, y1)`` frame pixel box at every frame."""

    index: np.ndarray
    first: np.ndarray
    step: np.ndarray
    box: np.ndarray


class Motion(NamedTuple):
    """A transform's maps for a batch in closed form: frame t's homography is ``step^t @ first`` and its
    colour map ``color_step^t @ color_first`` (:func:`pmg_dali.geometry.matrix_powers`).

    ``first`` / ``step``: (B, 3, 3) float64, source -> frame 0 and frame t -> frame t + 1 pixel maps;
    ``color_first`` / ``color_step``: (B, 4, 4) float64 augmented colour matrices, likewise; ``paste``: the
    moving patch of a partner (:class:`Paste`). None is the identity (no paste)."""

    first: np.ndarray | None = None
    step: np.ndarray | None = None
    color_first: np.ndarray | None = None
    color_step: np.ndarray | None = None
    paste: Paste | None = None


class ConfigField(NamedTuple):
    """A ``PMGConfig`` field a transform owns and its valid values: a finite number in ``[low, high]``,
    or with ``pair`` a range ``(min, max)`` with ``low <= min <= max <= high``. ``compounds``: the value is
    a per-step factor -- a range of factors, or ``1 +- value`` -- whose power over ``num_frames - 1`` steps
    ``PMGConfig`` keeps within ``MAX_COMPOUNDING`` when the transform is in use."""

    name: str
    low: float
    high: float
    pair: bool = False
    compounds: bool = False


@dataclass(frozen=True)
class Transform:
    """One transform of the Pseudo-Motion Generator (the module docstring describes each field)."""

    name: str
    sample: Callable[..., Params]              # (cfg, draw) -> parameters
    matrices: Callable[..., Motion]            # (cfg, parameters) -> maps
    fields: tuple[ConfigField, ...] = ()
    colors: bool = False
    pastes: bool = False
    projective: bool = False


# ---- framing: weakening a motion until its clip stays inside the picture ----------------------------------

FIT_STEPS = 3        # bracketing steps of the weakening search


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


def fit_strength(cfg, make_step: Callable, batch: int):
    """The intensity each clip's motion keeps, (B,) in (0, 1] (1: as drawn), and with
    ``cfg.framing == "inside"`` the :func:`view_extent` of the kept motion (None for ``"whole"``, where
    every clip keeps 1).

    ``make_step(strength, rows)`` builds the steps of clips ``rows`` at intensities ``strength`` (0: no
    motion). A clip whose full motion would need a first view smaller than ``cfg.min_view_area`` of the
    image is weakened: its intensity is searched in ``FIT_STEPS`` steps of :func:`fit_step` between 0
    (fits) and 1 (does not), and the largest intensity seen to fit is kept, so its view is never below
    the floor. The view is then framed on the kept motion's own extent: no frame leaves the image.
    """
    strength = np.ones(batch)
    if cfg.framing != "inside":
        return strength, None
    target = math.sqrt(cfg.min_view_area)
    with np.errstate(over="ignore", invalid="ignore"):
        ratio, low, high = view_extent(make_step(strength, slice(None)), cfg.size, cfg.num_frames)
        rows = np.flatnonzero(ratio < target)
        if len(rows):
            h, w = cfg.size
            n = len(rows)
            bracket = [np.zeros(n), np.zeros(n), np.ones(n), excess(ratio[rows])]     # lo, g(lo), hi, g(hi)
            kept = (np.ones(n), np.zeros((n, 2)), np.tile([w - 1.0, h - 1.0], (n, 1)))  # the extent at lo
            for _ in range(FIT_STEPS):
                alpha = fit_step(bracket, cfg.min_view_area)
                trial = view_extent(make_step(alpha, rows), cfg.size, cfg.num_frames)
                fits = trial[0] >= target
                bracket = narrow(bracket, alpha, excess(trial[0]), fits)
                kept = tuple(np.where(fits.reshape(-1, *[1] * (k.ndim - 1)), t, k) for t, k in zip(trial, kept))
            strength[rows] = bracket[0]
            ratio[rows], low[rows], high[rows] = kept
    return strength, (ratio, low, high)


def excess(ratio):
    """``g = 1 / ratio - 1``: how much larger than the view a clip's extent is (finite: a clip whose
    motion crosses the line at infinity, ratio 0, counts as far too large)."""
    return 1.0 / np.maximum(ratio, 1e-6) - 1.0


def fit_step(bracket, min_view_area: float):
    """The next intensity to try in ``bracket = [lo, g(lo), hi, g(hi)]`` (``lo`` fits, ``hi`` does
    not): regula falsi in ``g`` (which grows about linearly with the intensity) aimed a little inside
    the goal, kept off the ends of the bracket."""
    lo, g_lo, hi, g_hi = bracket
    aim = 0.95 * (1 / math.sqrt(min_view_area) - 1)
    t = (aim - g_lo) / np.maximum(g_hi - g_lo, 1e-12)
    return lo + (hi - lo) * np.minimum(np.maximum(t, 0.02), 0.98)


def narrow(bracket, alpha, g, fits):
    """The bracket after trying ``alpha`` (excess ``g``): ``lo`` moves up to it when it fits, ``hi``
    down to it when not (``fits`` a bool array)."""
    lo, g_lo, hi, g_hi = bracket
    return [lo + fits * (alpha - lo), g_lo + fits * (g - g_lo), alpha + fits * (hi - alpha), g + fits * (g_hi - g)]


def _framed(cfg, draw, make_step: Callable) -> Params:
    """The framing parameters of a motion (affine, perspective), after its own draws:

    - ``placement`` (B, 2): drawn uniform in [0, 1)², where the first view sits (x, y) among the
      positions that keep every frame inside the image (``"inside"`` framing; zeros, not drawn, for
      ``"whole"``);
    - ``strength`` (B,): the intensity the motion keeps (:func:`fit_strength`; 1 for ``"whole"``);
    - ``view`` (B,): the first view's side as a fraction of the image side (1 for ``"whole"``);
    - ``view_origin`` (B, 2): the source pixel (x, y) at frame 0's top-left pixel centre (frame-0 pixel
      p shows source pixel ``view_origin + view * p``; zeros for ``"whole"``).
    """
    placement = draw.uniform(0, 1, 2) if cfg.framing == "inside" else np.zeros((draw.batch, 2))
    strength, extent = fit_strength(cfg, make_step, len(placement))
    if extent is None:
        return {"placement": placement, "strength": strength, "view": np.ones(len(placement)),
                "view_origin": np.zeros((len(placement), 2))}
    ratio, low, high = extent
    h, w = cfg.size
    lowest = -ratio[:, None] * low                                   # origin keeping ``low`` at pixel 0
    slack = np.maximum(np.array([w - 1, h - 1]) - ratio[:, None] * high - lowest, 0)
    return {"placement": placement, "strength": strength, "view": ratio, "view_origin": lowest + slack * placement}


def _first_view(cfg, params: Params) -> np.ndarray | None:
    """(B, 3, 3) source -> frame-0 maps of framed motions; None (the identity: the whole image) for
    ``"whole"`` framing."""
    if cfg.framing != "inside":
        return None
    return _view_matrix(np.maximum(params["view"], 1e-12), params["view_origin"])


def _view_matrix(side: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(B, 3, 3) source -> frame maps showing a view of ``side`` (B,) (a fraction of the image side) whose
    top-left pixel centre is the source pixel ``origin`` (B, 2), full-frame."""
    return scale_matrix(1 / side, 0.0, 0.0) @ translation_matrix(*(-origin).T)


# ---- straight paths (sliding window, cutmix) ---------------------------------------------------------------

def _path(draw, speed: tuple[float, float], size: tuple[int, int], room: np.ndarray,
          num_frames: int) -> Params:
    """A straight path at constant velocity that fits in ``room`` (B, 2) pixels: ``direction`` (B,)
    radians and ``speed`` (B,) fraction of each side per frame, drawn uniformly; ``slowdown`` (B,) in
    (0, 1], the factor the speed is multiplied by when the path would not fit; ``velocity`` (B, 2) pixels
    (x, y) per frame after it; ``start`` (B, 2) drawn where the path starts, an offset in [0, room]."""
    direction = draw.uniform(0, 2 * math.pi)
    v = draw.uniform(*speed)
    h, w = size
    velocity = np.stack([v * np.cos(direction) * (w - 1), v * np.sin(direction) * (h - 1)], axis=-1)
    travel = np.abs(velocity * (num_frames - 1))
    fit = np.where(travel > room, room / np.maximum(travel, 1e-12), 1.0)
    slowdown = fit.min(axis=-1)
    velocity = velocity * slowdown[:, None]
    travel = velocity * (num_frames - 1)
    low = np.maximum(-travel, 0)
    high = room - np.maximum(travel, 0)
    start = low + np.maximum(high - low, 0) * draw.uniform(0, 1, 2)
    return {"direction": direction, "speed": v, "slowdown": slowdown, "velocity": velocity, "start": start}


# ---- the transforms: sample_<name> draws, <name>_matrices builds --------------------------------------------

def sample_identity(cfg, draw) -> Params:
    """No parameters."""
    return {}


def identity_matrices(cfg, params: Params) -> Motion:
    return Motion()


def sample_sliding_window(cfg, draw) -> Params:
    """A window of the image, shown full-frame, slides in a straight line at a constant speed and stays
    inside the image (the speed is reduced when the path would not fit).

    ``window`` (B,): its side as a fraction of the image side, uniform in ``sliding_window_scale``;
    ``direction`` (B,) radians, ``speed`` (B,) uniform in ``sliding_window_speed``, ``slowdown`` (B,),
    ``velocity`` (B, 2) source pixels per frame, ``start`` (B, 2) the source pixel (x, y) at the
    window's top-left pixel centre in frame 0 (:func:`_path`).
    """
    h, w = cfg.size
    r = draw.uniform(*cfg.sliding_window_scale)
    room = np.stack([(1 - r) * (w - 1), (1 - r) * (h - 1)], axis=-1)
    return {"window": r, **_path(draw, cfg.sliding_window_speed, cfg.size, room, cfg.num_frames)}


def sliding_window_matrices(cfg, params: Params) -> Motion:
    r = params["window"]
    return Motion(_view_matrix(r, params["start"]), translation_matrix(*(-params["velocity"] / r[:, None]).T))


def sample_zoom(cfg, draw) -> Params:
    """The view scales about a centre in the middle of the image. ``scale`` (B,): the view's scale per
    step, uniform in ``zoom_scale`` (< 1 zooms in, > 1 out); ``center`` (B, 2): the pixel (x, y) it scales
    about, uniform in the middle ``zoom_center`` of each side."""
    h, w = cfg.size
    s = draw.uniform(*cfg.zoom_scale)
    half = cfg.zoom_center / 2
    cx = (w - 1) * draw.uniform(0.5 - half, 0.5 + half)
    cy = (h - 1) * draw.uniform(0.5 - half, 0.5 + half)
    return {"scale": s, "center": np.stack([cx, cy], axis=-1)}


def zoom_matrices(cfg, params: Params) -> Motion:
    """Zooming in starts from the whole image; zooming out is its time reversal, ending on the whole
    image, so the view never leaves the image."""
    s, (cx, cy) = params["scale"], params["center"].T
    r0 = np.where(s > 1, s ** -(cfg.num_frames - 1), 1.0)   # the view at frame t is r_t = r_0 s^t <= 1
    return Motion(scale_matrix(1 / r0, cx, cy), scale_matrix(1 / s, cx, cy))


def sample_fade(cfg, draw) -> Params:
    """``gain`` (B,): brightness gain per step of a fade out, uniform in ``fade_gain``; ``fade_in`` (B,)
    bool, with probability 1/2: the clip fades in instead (the time reversal)."""
    g = draw.uniform(*cfg.fade_gain)
    return {"gain": g, "fade_in": draw.uniform(0, 1) < 0.5}


def fade_matrices(cfg, params: Params) -> Motion:
    """Brightness times ``gain`` per step, or its inverse from a first frame darkened by gain^(T-1)."""
    g, fade_in = params["gain"], params["fade_in"]
    c0, cs = eye(len(g), 4), eye(len(g), 4)
    c0[:, :3, :3] *= np.where(fade_in, g ** (cfg.num_frames - 1), 1.0)[:, None, None]
    cs[:, :3, :3] *= np.where(fade_in, 1 / g, g)[:, None, None]
    return Motion(color_first=c0, color_step=cs)


def affine_steps(cfg, params: Params) -> Callable:
    """``make_step(strength, rows)`` of affine clips (:func:`fit_strength`)."""
    angle, translate, scale, shear = (params[k] for k in ("angle", "translate", "scale", "shear"))
    h, w = cfg.size
    center = np.broadcast_to(np.array([w - 1, h - 1], dtype=np.float64) / 2, (len(angle), 2))

    def make_step(a, rows):
        return affine_step_matrix(a * angle[rows], a[:, None] * translate[rows], scale[rows] ** a,
                                  a[:, None] * shear[rows], center[rows])
    return make_step


def sample_affine(cfg, draw) -> Params:
    """Per step: rotation, translation, isotropic scale and shear about the image centre, weakened and
    framed so that the clip stays inside the image (``PMGConfig.framing``).

    ``angle`` (B,) degrees, uniform in +-``affine_degrees``; ``translate`` (B, 2) pixels (x, y), uniform
    in +-``affine_translate`` of each side; ``scale`` (B,) uniform in ``affine_scale``; ``shear`` (B, 2)
    degrees along x and y, uniform in +-``affine_shear``; then the framing: ``placement``, ``strength``
    (the step is :func:`~pmg_dali.geometry.affine_step_matrix` of ``strength`` times angle, translate and
    shear and of ``scale ** strength``), ``view``, ``view_origin`` (:func:`_framed`).
    """
    h, w = cfg.size
    side = np.array([w - 1, h - 1], dtype=np.float64)
    params = {"angle": draw.uniform(-cfg.affine_degrees, cfg.affine_degrees),
              "translate": draw.uniform(-cfg.affine_translate, cfg.affine_translate, 2) * side,
              "scale": draw.uniform(*cfg.affine_scale),
              "shear": draw.uniform(-cfg.affine_shear, cfg.affine_shear, 2)}
    return {**params, **_framed(cfg, draw, affine_steps(cfg, params))}


def affine_matrices(cfg, params: Params) -> Motion:
    return Motion(_first_view(cfg, params), affine_steps(cfg, params)(params["strength"], slice(None)))


def perspective_steps(cfg, params: Params) -> Callable:
    """``make_step(strength, rows)`` of perspective clips (kornia's four-point solver)."""
    shift = params["shift"]
    h, w = cfg.size
    corners = np.tile(np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64),
                      (len(shift), 1, 1))

    def make_step(a, rows):
        from kornia.geometry.transform import get_perspective_transform

        src = torch.from_numpy(np.ascontiguousarray(corners[rows]))
        return get_perspective_transform(src, src + torch.from_numpy(a[:, None, None] * shift[rows])).numpy()
    return make_step


def sample_perspective(cfg, draw) -> Params:
    """Per step: the homography that moves each image corner a little, framed as affine clips are.

    ``shift`` (B, 4, 2): the displacement (x, y) in pixels of the top-left, top-right, bottom-right and
    bottom-left corners, uniform in +-``perspective_distortion`` of each side; then ``placement``,
    ``strength`` (the corners move by ``strength * shift``), ``view``, ``view_origin`` (:func:`_framed`).
    """
    h, w = cfg.size
    d = cfg.perspective_distortion
    params = {"shift": draw.uniform(-d, d, 4, 2) * np.array([w - 1, h - 1], dtype=np.float64)}
    return {**params, **_framed(cfg, draw, perspective_steps(cfg, params))}


def perspective_matrices(cfg, params: Params) -> Motion:
    return Motion(_first_view(cfg, params), perspective_steps(cfg, params)(params["strength"], slice(None)))


def sample_color_jitter(cfg, draw) -> Params:
    """Per step, as one colour matrix: ``brightness``, ``contrast``, ``saturation`` (B,) factors,
    uniform in 1 +- ``jitter_brightness`` / ``jitter_contrast`` / ``jitter_saturation``; ``hue`` (B,)
    fraction of a turn, uniform in +-``jitter_hue``."""
    names = ("brightness", "contrast", "saturation")
    params = {n: draw.uniform(1 - x, 1 + x) for n, x in
              zip(names, (cfg.jitter_brightness, cfg.jitter_contrast, cfg.jitter_saturation))}
    return {**params, "hue": draw.uniform(-cfg.jitter_hue, cfg.jitter_hue)}


def color_jitter_matrices(cfg, params: Params) -> Motion:
    return Motion(color_step=color_jitter_matrix(*(params[n] for n in ("brightness", "contrast", "saturation",
                                                                           "hue"))))


def sample_cutmix(cfg, draw) -> Params:
    """A patch cut from another image of the batch, pasted and sliding at a constant velocity inside
    the frame.

    ``partner`` (B,) int64: the batch image the patch is cut from (another clip); ``scale`` (B,): the
    patch side as a fraction of the image side, uniform in ``cutmix_scale``; ``patch`` (B, 2): its
    (width, height) in pixels (with ``"inside"`` framing at most the side - 1, so that every pasted pixel
    samples between the partner's pixel centres); ``cut`` (B, 2): the partner point (x, y) at the patch's
    top-left corner, uniform where the patch fits in the partner; ``direction``, ``speed`` (uniform in
    ``cutmix_speed``), ``slowdown``, ``velocity`` (B, 2) pixels per frame (:func:`_path`); ``origin``
    (B, 2): the patch's top-left corner (x, y) in frame 0, a pixel edge (box ``origin + t * velocity +
    [0, patch]`` at frame t).
    """
    h, w = cfg.size
    partner = draw.shift()
    extent = np.array([w, h], dtype=np.float64)
    scale = draw.uniform(*cfg.cutmix_scale)
    patch = scale[:, None] * extent
    if cfg.framing == "inside":     # every pasted pixel samples between the partner's pixel centres
        patch = np.minimum(patch, extent - 1)
        cut = draw.uniform(0, 1, 2) * (extent - 1 - patch)
    else:                           # the cut may reach the partner's outer pixel edges
        cut = -0.5 + draw.uniform(0, 1, 2) * (extent - patch)
    path = _path(draw, cfg.cutmix_speed, cfg.size, extent - patch, cfg.num_frames)
    origin = path.pop("start") - 0.5
    return {"partner": partner, "scale": scale, "patch": patch, "cut": cut, **path, "origin": origin}


def cutmix_matrices(cfg, params: Params) -> Motion:
    origin, velocity = params["origin"], params["velocity"]
    top_left = origin[:, None] + np.arange(cfg.num_frames)[None, :, None] * velocity[:, None]
    box = np.concatenate([top_left, top_left + params["patch"][:, None]], axis=-1)
    return Motion(paste=Paste(params["partner"], translation_matrix(*(origin - params["cut"]).T),
                              translation_matrix(*velocity.T), box))


# ---- the table ------------------------------------------------------------------------------------------

def _range(name: str, low: float, high: float, compounds: bool = False) -> ConfigField:
    return ConfigField(name, low, high, pair=True, compounds=compounds)


TABLE: dict[str, Transform] = {t.name: t for t in (
    Transform("identity", sample_identity, identity_matrices),
    Transform("sliding_window", sample_sliding_window, sliding_window_matrices,
              fields=(_range("sliding_window_scale", 1e-3, 1), _range("sliding_window_speed", 0, 1))),
    Transform("zoom", sample_zoom, zoom_matrices,
              fields=(_range("zoom_scale", 0.5, 2, compounds=True), ConfigField("zoom_center", 0, 1))),
    Transform("fade", sample_fade, fade_matrices, fields=(_range("fade_gain", 1e-3, 1),), colors=True),
    Transform("affine", sample_affine, affine_matrices,
              fields=(ConfigField("affine_degrees", 0, 180), ConfigField("affine_translate", 0, 1),
                      _range("affine_scale", 1e-3, 10, compounds=True), ConfigField("affine_shear", 0, 45))),
    Transform("perspective", sample_perspective, perspective_matrices, projective=True,
              fields=(ConfigField("perspective_distortion", 0, 0.25),)),
    Transform("color_jitter", sample_color_jitter, color_jitter_matrices, colors=True,
              fields=(ConfigField("jitter_brightness", 0, 0.99, compounds=True),
                      ConfigField("jitter_contrast", 0, 0.99, compounds=True),
                      ConfigField("jitter_saturation", 0, 0.99, compounds=True), ConfigField("jitter_hue", 0, 0.5))),
    Transform("cutmix", sample_cutmix, cutmix_matrices, pastes=True,
              fields=(_range("cutmix_scale", 1e-3, 1), _range("cutmix_speed", 0, 1))),
)}
TRANSFORMS = tuple(TABLE)                                              # PMGConfig's choices, in table order
COLOR_TRANSFORMS = frozenset(name for name, t in TABLE.items() if t.colors)
PASTE_TRANSFORMS = frozenset(name for name, t in TABLE.items() if t.pastes)
PROJECTIVE_TRANSFORMS = frozenset(name for name, t in TABLE.items() if t.projective)
