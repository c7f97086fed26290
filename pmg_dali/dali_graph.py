"""DALI graph helpers: the pseudo-motion renderer and an in-graph sampler as ``fn.*`` nodes.

Every function here takes and returns DALI ``DataNode``s, is called inside a ``@pipeline_def`` and
works on both DALI devices (``"cpu"`` nodes, or ``"gpu"`` nodes after a ``"mixed"`` decoder).
Clips flow through the graph as FHWC sequences in a ``unit`` scale (255 for uint8 sources, 1 for
float sources) -- float, or uint8 between the warp and the mix on the fast path (``exact=False``) --
and are formatted last. :mod:`pmg_dali.dali` builds pipelines from these.

Convention (warps): DALI puts the origin at the top-left pixel *corner*; the package puts it at the
top-left pixel *centre* (:mod:`pmg_dali.geometry`). Program-fed matrices are converted on the host by
:func:`pmg_dali.geometry.dali_inverse_map` (frame -> source, ``inverse_map=True``); in-graph matrices
are built in the package convention and converted by :func:`corner_forward` (its graph twin: source
-> frame, ``inverse_map=False``, which DALI inverts per frame).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

try:
    from nvidia.dali import fn, types
    from nvidia.dali import math as dmath
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("pmg_dali.dali needs NVIDIA DALI: pip install pmg_dali[dali] "
                      "(or pip install nvidia-dali-cuda130; nvidia-dali-cuda120 for CUDA 12 drivers)") from exc

import torch

from ._checks import check_choice, check_seed
from .config import PMGConfig
from .rules import PASTE_PADDING
from .sampling import FIT_STEPS, excess, fit_step, narrow, videomix_edges

__all__ = ["GraphMotion", "InGraphSample", "IN_GRAPH_TRANSFORMS", "dali_dtype", "warp_frames", "box_mask",
           "paste_patches",
           "apply_color", "mix_clips", "format_clips", "render_motion", "corner_forward",
           "sample_motion", "pseudo_motion"]

# Transforms the in-graph sampler draws; the rest need the program-fed path (a MotionProgram).
IN_GRAPH_TRANSFORMS = ("identity", "sliding_window", "zoom", "fade", "affine")
_BORDERS = {"zeros": "constant", "border": "replicate", "reflection": "reflect_101"}


class GraphMotion(NamedTuple):
    """A motion program as graph nodes (per sample; T = ``config.num_frames``).

    num_frames: T.
    matrices: (T, 2, 3) or (T, 3, 3) float per-frame maps in DALI coordinates; frame -> source when
        ``inverse_map`` (program-fed), source -> frame otherwise (in-graph).
    color: (T, 3, 4) float colour maps on RGB in [0, 1], or None (identity: the colour pass is skipped).
    paste_index / paste_matrices / paste_box: () int partner, (T, 2|3, 3) maps, (T, 4) boxes, or None.
    mix_index / mix_lambda / mix_box: () int partner, (1,) or (T, 1, 1, 1) weight, (4,) VideoMix box
        (then mix_lambda is unused), or None.
    """

    num_frames: int
    matrices: object
    inverse_map: bool = True
    perspective: bool = False
    color: object = None
    paste_index: object = None
    paste_matrices: object = None
    paste_box: object = None
    mix_index: object = None
    mix_lambda: object = None
    mix_box: object = None


def dali_dtype(dtype: torch.dtype):
    """DALI output type for a torch dtype; bfloat16 (not a DALI type) is produced as float32."""
    return {torch.uint8: types.UINT8, torch.float16: types.FLOAT16}.get(dtype, types.FLOAT)


def _on(node, like):
    """``node`` moved to the device of ``like`` (arithmetic needs its inputs on one device)."""
    return node.gpu() if like.device == "gpu" and node.device != "gpu" else node


def warp_frames(images, matrices, num_frames: int, *, padding_mode: str = "zeros",
                perspective: bool = False, inverse_map: bool = True, exact: bool = True):
    """T warped views of each image: HWC -> FHWC, frame t by ``matrices[t]`` (bilinear).

    The image is repeated T times by ``fn.sequence_rearrange`` (a memcpy of the source: the cheapest
    way to hand a per-frame operator T frames of one image) and warped once by a per-frame
    ``fn.warp_affine`` (2x3) or ``fn.experimental.warp_perspective`` (3x3; reflection padding too).
    ``exact``: float output; else the input type (uint8 frames: a quarter of the memory traffic,
    values rounded to whole levels).

    Convention: DALI pixel-corner origin; ``matrices`` map frame -> source when ``inverse_map``,
    source -> frame otherwise (see :func:`pmg_dali.geometry.dali_inverse_map`).
    """
    check_choice("padding_mode", padding_mode, tuple(_BORDERS))
    if padding_mode == "reflection" and not perspective:
        raise ValueError("`padding_mode='reflection'` needs 3x3 matrices and perspective=True: "
                         "fn.warp_affine has no reflecting border")
    if perspective and exact:
        images = fn.cast(images, dtype=types.FLOAT)   # warp_perspective keeps the input type
    frames = fn.sequence_rearrange(fn.expand_dims(images, axes=[0], new_axis_names="F"),
                                   new_order=[0] * num_frames)
    if perspective:
        fill = {"fill_value": 0.0} if padding_mode == "zeros" else {}
        return fn.experimental.warp_perspective(frames, matrix=fn.per_frame(matrices), inverse_map=inverse_map,
                                                border_mode=_BORDERS[padding_mode], **fill)
    fill = 0.0 if padding_mode == "zeros" else None   # None: clamp, i.e. replicate the border
    return fn.warp_affine(frames, matrix=fn.per_frame(matrices), inverse_map=inverse_map,
                          fill_value=fill, dtype=types.FLOAT if exact else None)


def box_mask(box, size: tuple[int, int], like, per_frame: bool):
    """(T, H, W, 1) float 0/1 (per-frame boxes (T, 4)) or (1, H, W, 1) (one box (4,)): 1 at pixel
    centres (x, y) with ``x0 <= x < x1`` and ``y0 <= y < y1``, on the device of ``like``."""
    h, w = size
    xs = types.Constant(np.arange(w, dtype=np.float32).reshape(1, 1, w, 1))
    ys = types.Constant(np.arange(h, dtype=np.float32).reshape(1, h, 1, 1))
    col = [_on(fn.reshape(box[:, i] if per_frame else box[i], shape=[-1, 1, 1, 1]), like) for i in range(4)]
    return ((xs >= col[0]) & (xs < col[2]) & (ys >= col[1]) & (ys < col[3])) * 1.0


def _blend(a, b, weight):
    """``weight * a + (1 - weight) * b`` (float; safe for uint8 inputs, where a - b would wrap)."""
    return weight * a + (1.0 - weight) * b


def paste_patches(frames, images, motion: GraphMotion, size: tuple[int, int], exact: bool = True):
    """Cutmix: inside ``paste_box[t]`` frame t shows image ``paste_index`` warped by
    ``paste_matrices[t]`` (edge pixels replicated, as the torch reference). frames: FHWC; images: the
    HWC batch. Returns float."""
    if motion.paste_index is None:
        return frames
    partner = fn.permute_batch(images, indices=motion.paste_index)
    patches = warp_frames(partner, motion.paste_matrices, motion.num_frames, padding_mode=PASTE_PADDING,
                          perspective=motion.perspective, inverse_map=motion.inverse_map, exact=exact)
    return _blend(patches, frames, box_mask(motion.paste_box, size, frames, per_frame=True))


def apply_color(frames, color, unit: float, exact: bool = True):
    """``clamp(color[t, :, :3] @ rgb + unit * color[t, :, 3], 0, unit)`` per pixel of frame t, as one
    per-frame ``fn.coord_transform`` (an affine map on the C vectors of an FHWC sequence). Not
    ``exact`` (uint8, ``unit`` 255): the output is uint8, rounded and saturated by the operator."""
    mt = color * types.Constant(np.array([1, 1, 1, unit], dtype=np.float32))
    if not exact:
        return fn.coord_transform(frames, MT=fn.per_frame(mt), dtype=types.UINT8)
    return dmath.clamp(fn.coord_transform(frames, MT=fn.per_frame(mt)), 0.0, float(unit))


def mix_clips(clips, motion: GraphMotion, size: tuple[int, int]):
    """Frame Mixup (``lambda * clip + (1 - lambda) * partner`` on every frame) or VideoMix (the
    partner's pixels inside ``mix_box``); the partner is ``fn.permute_batch`` of the clips."""
    if motion.mix_index is None:
        return clips
    partner = fn.permute_batch(clips, indices=motion.mix_index)
    if motion.mix_box is not None:
        return _blend(partner, clips, box_mask(motion.mix_box, size, clips, per_frame=False))
    return _blend(clips, partner, _on(motion.mix_lambda, clips))


def format_clips(clips, config: PMGConfig, unit: float):
    """FHWC in [0, unit] -> ``config.layout`` ("BCTHW": CFHW samples, "BTCHW": FCHW) and
    ``config.dtype`` (uint8: round(x * 255); float: ImageNet-normalised when ``config.normalize``;
    bfloat16 comes out as float32) in one ``fn.crop_mirror_normalize``."""
    if config.dtype == torch.uint8:
        mean, std = [0.0] * 3, [unit / 255] * 3
    elif config.normalize:
        mean, std = [unit * m for m in config.mean], [unit * s for s in config.std]
    else:
        mean, std = [0.0] * 3, [float(unit)] * 3
    layout = "CFHW" if config.layout == "BCTHW" else "FCHW"
    return fn.crop_mirror_normalize(clips, mean=mean, std=std, dtype=dali_dtype(config.dtype),
                                    output_layout=layout)


def render_motion(images, motion: GraphMotion, config: PMGConfig, unit: float = 255.0, exact: bool = True):
    """The whole renderer: warp -> cutmix paste -> colour -> mix -> normalise, dtype and layout.

    Args:
        images: HWC batch at ``config.size``: uint8 0-255 with ``unit=255``, float 0-1 with ``unit=1``.
        motion: the :class:`GraphMotion`.
        exact: float intermediates (the torch backend's values up to float rounding); False keeps
            uint8 frames between the warp and the mix (a quarter of the bytes of float frames,
            every value within one 1/255 level of the exact one).
    Returns:
        Clips (C, T, H, W) or (T, C, H, W) per sample, as the torch backend's ``render``.
    """
    exact = exact or unit != 255
    frames = warp_frames(images, motion.matrices, motion.num_frames, padding_mode=config.padding_mode,
                         perspective=motion.perspective, inverse_map=motion.inverse_map, exact=exact)
    frames = paste_patches(frames, images, motion, config.size, exact)
    if motion.color is not None:
        frames = apply_color(frames, motion.color, unit, exact)
    return format_clips(mix_clips(frames, motion, config.size), config, unit)


# ---- in-graph sampling: the same distributions as pmg_dali.sampling, drawn by DALI's RNG ----------

def corner_forward(a, b, c, d, e, f):
    """Source -> frame affine map ``[[a, b, c], [d, e, f]]`` in the package convention (pixel centres
    at integers) -> the same map in DALI's pixel-corner coordinates: ``T(0.5) @ M @ T(-0.5)``.
    The graph twin of :func:`pmg_dali.geometry.dali_inverse_map` (use with ``inverse_map=False``)."""
    return a, b, c + 0.5 * (1 - a - b), d, e, f + 0.5 * (1 - d - e)


class _Draw:
    """Per-sample random scalars; op seeds are ``seed + k`` when a seed is given, else the pipeline's."""

    def __init__(self, seed: int | None):
        self.seed, self.count = seed, 0

    def _kw(self) -> dict:
        self.count += 1
        return {} if self.seed is None else {"seed": (int(self.seed) + self.count) % 2 ** 63}

    def uniform(self, low: float, high: float):
        return fn.random.uniform(range=[float(low), float(high)], **self._kw())

    def choice(self, n: int):
        return fn.random.choice(n, **self._kw())

    def beta(self, alpha: float, shape: list[int]):
        return fn.random.beta(alpha=float(alpha), beta=float(alpha), shape=shape, **self._kw())

    def permutation(self):
        """() int32 partner per sample, never the sample itself -- except in a batch of one (batch_size=1
        or a short batch), whose sample is its own partner: DALI ignores ``no_fixed_points`` there,
        as :mod:`pmg_dali.sampling` does (a no-op mix)."""
        return fn.batch_permutation(no_fixed_points=True, **self._kw())


def _frames_from(components, num_frames: int, perspective: bool):
    """(T, 2, 3) or (T, 3, 3) per-frame matrices from six scalar-or-(T,) component nodes."""
    zero = fn.zeros(shape=[num_frames], dtype=types.FLOAT)
    rows = [c + zero for c in components]
    if perspective:
        rows += [zero, zero, zero + 1.0]
    shape = [num_frames, 3, 3] if perspective else [num_frames, 2, 3]
    return fn.reshape(fn.stack(*rows, axis=1), shape=shape)


def _zoom(cfg: PMGConfig, draw: _Draw, t):
    """:func:`pmg_dali.sampling.sample_zoom`: frame t scales by ``s^-t / r0`` about (cx, cy)."""
    h, w = cfg.size
    half = cfg.zoom_center / 2
    s = draw.uniform(*cfg.zoom_scale)
    cx = (w - 1) * draw.uniform(0.5 - half, 0.5 + half)
    cy = (h - 1) * draw.uniform(0.5 - half, 0.5 + half)
    r0 = 1.0 + (s > 1.0) * (s ** float(1 - cfg.num_frames) - 1.0)
    k = s ** (-t) / r0
    return (k, 0.0, cx * (1 - k), 0.0, k, cy * (1 - k)), {"zoom_scale": s, "zoom_cx": cx, "zoom_cy": cy}


def _fit_path(draw: _Draw, velocity, room, num_frames: int):
    """:func:`pmg_dali.sampling._fit_path` on (x, y) pairs of scalar nodes."""
    travel = [v * float(num_frames - 1) for v in velocity]
    fit = [1.0 + (dmath.abs(tr) > rm) * (rm / dmath.max(dmath.abs(tr), 1e-12) - 1.0)
           for tr, rm in zip(travel, room)]
    shrink = dmath.min(fit[0], fit[1])
    velocity = [v * shrink for v in velocity]
    start = []
    for v, rm in zip(velocity, room):
        low = dmath.max(-v * float(num_frames - 1), 0.0)
        high = rm - dmath.max(v * float(num_frames - 1), 0.0)
        start.append(low + dmath.max(high - low, 0.0) * draw.uniform(0, 1))
    return start, velocity


def _sliding_window(cfg: PMGConfig, draw: _Draw, t):
    """:func:`pmg_dali.sampling.sample_sliding_window`: frame t shows the window at start + t v."""
    h, w = cfg.size
    r = draw.uniform(*cfg.sliding_window_scale)
    room = [(1 - r) * float(w - 1), (1 - r) * float(h - 1)]
    angle, speed = draw.uniform(0, 2 * math.pi), draw.uniform(*cfg.sliding_window_speed)
    velocity = [speed * dmath.cos(angle) * float(w - 1), speed * dmath.sin(angle) * float(h - 1)]
    (sx, sy), (vx, vy) = _fit_path(draw, velocity, room, cfg.num_frames)
    k = 1.0 / r
    return (k, 0.0, -(sx + t * vx) * k, 0.0, k, -(sy + t * vy) * k), {"window": r, "start": (sx, sy),
                                                                      "velocity": (vx, vy)}


def _affine_step(cfg: PMGConfig, p: dict, alpha):
    """The affine step ``[[a, b, c], [d, e, f]]`` of drawn parameters ``p`` at intensity ``alpha``, in
    the package convention: :func:`pmg_dali.geometry.affine_step_matrix` on scalar nodes."""
    h, w = cfg.size
    rad = alpha * p["angle"] * (math.pi / 180)
    cos, sin = dmath.cos(rad), dmath.sin(rad)
    kx, ky = (dmath.tan(alpha * sh * (math.pi / 180)) for sh in p["shear"])
    scale = dmath.pow(p["scale"], alpha)
    # linear part R @ Sh @ S: R = [[cos, sin], [-sin, cos]], Sh = [[1, kx], [ky, 1]], S = scale * I
    a, b = (cos + sin * ky) * scale, (cos * kx + sin) * scale
    d, e = (cos * ky - sin) * scale, (cos - sin * kx) * scale
    cx, cy = (w - 1) / 2, (h - 1) / 2
    tx, ty = (alpha * v for v in p["translate"])
    return a, b, cx + tx - (a * cx + b * cy), d, e, cy + ty - (d * cx + e * cy)


def _matrix(a, b, c, d, e, f):
    return fn.reshape(fn.stack(a, b, c, d, e, f), shape=[2, 3])


def _chain(first, step, num_frames: int):
    """(T, 2, 3) maps ``step^t @ first`` by ``fn.transforms.combine``."""
    powers = [first]
    for _ in range(num_frames - 1):
        powers.append(fn.transforms.combine(powers[-1], step))
    return fn.stack(*powers, axis=0)


def _view_extent(cfg: PMGConfig, step):
    """:func:`pmg_dali.sampling.view_extent` of an affine step: (ratio, (low x, low y), (high x, high y))."""
    h, w = cfg.size
    a, b, c, d, e, f = step
    det = a * e - b * d
    inverse = _matrix(e / det, -b / det, (b * f - c * e) / det, -d / det, a / det, (c * d - a * f) / det)
    rows = fn.reshape(_chain(fn.transforms.scale(scale=[1.0, 1.0]), inverse, cfg.num_frames), shape=[-1, 3])
    corners = np.float32([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]])
    points = fn.reshape(fn.coord_transform(rows, M=corners.flatten().tolist()), shape=[-1, 2, 4])
    low, high = fn.reductions.min(points, axes=[0, 2]), fn.reductions.max(points, axes=[0, 2])   # (x, y)
    span = dmath.max(high - low, 1e-12)
    ratio = dmath.min(1.0, dmath.min(float(w - 1) / span[0], float(h - 1) / span[1]))
    return ratio, (low[0], low[1]), (high[0], high[1])


def _fit_affine(cfg: PMGConfig, p: dict):
    """:func:`pmg_dali.sampling._fit_motion` in the graph: the same ``FIT_STEPS`` steps of
    :func:`~pmg_dali.sampling.fit_step` for every clip (a clip whose full motion fits starts with the
    bracket closed at 1 and keeps it). Returns (step, extent, intensity)."""
    h, w = cfg.size
    target = math.sqrt(cfg.min_view_area)
    ratio, low, high = _view_extent(cfg, _affine_step(cfg, p, 1.0))
    fits = ratio >= target
    one = ratio * 0.0 + 1.0
    g = excess(ratio, dmath.max)
    bracket = [fits * one, fits * g, one, g]                             # lo, g(lo), hi, g(hi)
    kept = (fits * (ratio - 1.0) + 1.0, [fits * v for v in low],          # the extent at lo (identity: 0)
            [fits * (v - side) + side for v, side in zip(high, (w - 1.0, h - 1.0))])
    for _ in range(FIT_STEPS):
        alpha = fit_step(bracket, cfg.min_view_area, dmath.min, dmath.max)
        trial = _view_extent(cfg, _affine_step(cfg, p, alpha))
        fits = trial[0] >= target
        bracket = narrow(bracket, alpha, excess(trial[0], dmath.max), fits)
        kept = (kept[0] + fits * (trial[0] - kept[0]), [k + fits * (t - k) for t, k in zip(trial[1], kept[1])],
                [k + fits * (t - k) for t, k in zip(trial[2], kept[2])])
    return _affine_step(cfg, p, bracket[0]), kept, bracket[0]


def _affine(cfg: PMGConfig, draw: _Draw, perspective: bool):
    """:func:`pmg_dali.sampling.sample_affine`: frame t is ``step^t @ first`` (``fn.transforms.combine``
    powers); with ``"inside"`` framing the step is fitted and the first view placed as on the host."""
    h, w = cfg.size
    p = {"angle": draw.uniform(-cfg.affine_degrees, cfg.affine_degrees),
         "translate": tuple(draw.uniform(-cfg.affine_translate, cfg.affine_translate) * float(side - 1)
                            for side in (w, h)),
         "scale": draw.uniform(*cfg.affine_scale),
         "shear": tuple(draw.uniform(-cfg.affine_shear, cfg.affine_shear) for _ in range(2))}
    if cfg.framing == "inside":
        step, (ratio, low, high), p["intensity"] = _fit_affine(cfg, p)
        p["placement"] = (draw.uniform(0, 1), draw.uniform(0, 1))
        corner = [-ratio * lo + dmath.max(float(side - 1) - ratio * hi + ratio * lo, 0.0) * u
                  for lo, hi, side, u in zip(low, high, (w, h), p["placement"])]
        k = 1.0 / ratio
        first = _matrix(*corner_forward(k, 0.0, -corner[0] * k, 0.0, k, -corner[1] * k))
    else:
        step = _affine_step(cfg, p, 1.0)
        first = fn.transforms.scale(scale=[1.0, 1.0])
    frames = _chain(first, _matrix(*corner_forward(*step)), cfg.num_frames)
    if perspective:
        frames = fn.cat(frames, types.Constant(np.float32([[[0, 0, 1]]] * cfg.num_frames)), axis=1)
    return frames, p


def _fade(cfg: PMGConfig, draw: _Draw, t):
    """:func:`pmg_dali.sampling.sample_fade`: gain^t (fade out) or gain^(T-1-t) (fade in) per frame."""
    g = draw.uniform(*cfg.fade_gain)
    fade_in = draw.uniform(0, 1) < 0.5
    return g ** (t + fade_in * (float(cfg.num_frames - 1) - 2.0 * t)), {"fade_gain": g, "fade_in": fade_in}


class InGraphSample(NamedTuple):
    """What :func:`sample_motion` draws: the motion, each clip's transform index () int32 into
    ``config.transforms``, and the drawn parameters by name (nodes, for inspection and tests)."""

    motion: GraphMotion
    transform: object
    params: dict


def _mix(cfg: PMGConfig, draw: _Draw):
    """:func:`pmg_dali.sampling.sample_mix`: partner (a permutation without fixed points; a batch of
    one mixes with itself), lambda ~ Beta(alpha, alpha) per clip or per frame, and for VideoMix a
    whole-pixel box of area 1 - lambda."""
    h, w = cfg.size
    t = cfg.num_frames
    index = draw.permutation()
    per_frame = cfg.mixup == "frame" and cfg.mixup_per_frame
    lam = draw.beta(cfg.mixup_alpha, [t] if per_frame else [1])
    if per_frame:
        lam = fn.reshape(lam, shape=[t, 1, 1, 1])
    if cfg.mixup == "frame":
        return index, lam, None
    cut = dmath.sqrt(1.0 - lam[0])
    (x0, x1), (y0, y1) = (videomix_edges(cut, dmath.floor(draw.uniform(0, side)), float(side), dmath.floor,
                                         dmath.clamp) for side in (w, h))
    return index, lam, fn.stack(x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5)


def sample_motion(config: PMGConfig, seed: int | None = None) -> InGraphSample:
    """Draw one motion per sample inside the graph, as :func:`pmg_dali.sampling.sample_program` does
    for ``config`` (same transforms, ranges and mixup; DALI's random stream instead of torch's).

    Supports the transforms in :data:`IN_GRAPH_TRANSFORMS`; perspective, color_jitter and cutmix need
    the program-fed path (:class:`pmg_dali.dali.ProgramRenderer`). ``seed``: None takes the op seeds
    from the pipeline seed; an int fixes them. Call inside a ``@pipeline_def``.
    """
    other = [name for name in config.transforms if name not in IN_GRAPH_TRANSFORMS]
    if other:
        raise ValueError(f"`config.transforms` must be a subset of {IN_GRAPH_TRANSFORMS} for in-graph "
                         f"sampling, but got {other}: feed MotionPrograms through ProgramRenderer instead")
    if config.recursion != "composed":
        raise ValueError(f"`config.recursion` must be 'composed' for the DALI backend, but got {config.recursion!r}")
    draw, n = _Draw(None if seed is None else check_seed(seed)), config.num_frames
    t = types.Constant(np.arange(n, dtype=np.float32))
    perspective = config.padding_mode == "reflection"
    which = draw.choice(len(config.transforms)) if len(config.transforms) > 1 else None
    matrices, gains, params = [], [], {}
    for name in config.transforms:
        gain, found = 1.0, {}
        if name == "affine":
            frames, found = _affine(config, draw, perspective)
        else:
            comps = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
            if name in ("zoom", "sliding_window"):
                comps, found = (_zoom if name == "zoom" else _sliding_window)(config, draw, t)
            frames = _frames_from(corner_forward(*comps), n, perspective)
        if name == "fade":
            gain, found = _fade(config, draw, t)
        matrices.append(frames)
        gains.append(gain)
        params.update(found)

    def select(nodes):
        if which is None:
            return nodes[0]
        return sum((which == i) * node for i, node in enumerate(nodes))

    color = None
    if "fade" in config.transforms:
        eye = types.Constant(np.eye(3, 4, dtype=np.float32))
        color = fn.reshape(select(gains), shape=[n, 1, 1]) * eye
    mix = _mix(config, draw) if config.mixup is not None else (None, None, None)
    motion = GraphMotion(n, select(matrices), inverse_map=False, perspective=perspective, color=color,
                         mix_index=mix[0], mix_lambda=mix[1], mix_box=mix[2])
    transform = which if which is not None else fn.zeros(shape=[], dtype=types.INT32)
    return InGraphSample(motion, transform, params)


def pseudo_motion(images, config: PMGConfig, seed: int | None = None, unit: float = 255.0,
                  exact: bool = False):
    """The drop-in graph helper: HWC images at ``config.size`` -> pseudo-motion clips.

    Example (inside your ``@pipeline_def``)::

        images = fn.decoders.image(jpegs, device="mixed")
        images = fn.resize(images, size=cfg.size)
        clips = pseudo_motion(images, cfg)          # (C, T, H, W) per sample for "BCTHW"

    Draws the motion in the graph (:func:`sample_motion`, seeded by the pipeline or ``seed``) and
    renders it (:func:`render_motion`). ``unit``: 255 for uint8 images, 1 for float images in [0, 1];
    ``exact``: float intermediates (default False: uint8 frames, the fast path).
    """
    return render_motion(images, sample_motion(config, seed).motion, config, unit, exact)
