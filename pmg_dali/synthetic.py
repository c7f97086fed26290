"""`SyntheticImages`: data-free image sources rendered in batches on the requested device.

Image ``i`` is a pure function of (seed, i, size): every random parameter comes from a
counter-based hash of (seed, i) (:class:`~pmg_dali.procedural.Draws`), drawn on the CPU and moved,
so it is the same in every batch and on every device; only the pixel arithmetic runs on the device
(CPU and CUDA pixels may differ by float rounding).

Kinds:

- ``"shader"``: eight procedural per-pixel programs (:mod:`pmg_dali.shaders`), the data-free
  stand-in for Shaders1k.
- ``"fractal"``: FractalDB-style iterated function systems rendered by the chaos game.
- ``"atom"``: VisualAtom-style families of closed contours whose radius is a sum of sine waves.
- ``"mixed"``: each index draws one of the three kinds.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._checks import check_choice, check_device, check_generator, check_int, check_seed
from .config import parse_size
from .procedural import (Draws, combine, composite, cosine_palette, mul32, over, per_image, pixel_grid,
                         sample_palette, signed32, to_uint8)
from .shaders import render_shaders
from .sources import check_indices

__all__ = ["SyntheticImages", "KINDS", "render_atoms", "render_fractals"]

KINDS = ("shader", "fractal", "atom", "mixed")
_CPU_CHUNK = 16          # images rendered at once on the CPU (cache-sized batches)
_MASK = 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------
# "atom": VisualAtom-style contour families
# ----------------------------------------------------------------------------------------------

_FAMILIES, _WAVES, _ORBITS = 5, 3, 8


def render_atoms(d: Draws, x: torch.Tensor, y: torch.Tensor, px: float) -> torch.Tensor:
    """VisualAtom-style images (Takashima et al., 2023): 2-5 families of concentric closed orbits
    ``rho = s_m g(theta)``, ``g = 1 + sum_j a_j sin(f_j theta + p_j)`` with integer frequencies,
    drawn as anti-aliased lines (optionally filled inside the innermost orbit) over a dark gradient.

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    n, j = _FAMILIES, _WAVES
    pal = sample_palette(d)
    shade = d.uniform(low=0.1, high=0.6)
    direction = d.uniform(high=2 * math.pi)
    families = d.integers(2, n + 1)
    centre = d.uniform(n, 2, low=-0.7, high=0.7)
    inner = per_image(d.uniform(n, low=0.08, high=0.5))
    orbits = per_image(d.integers(1, _ORBITS + 1, n).float())
    spacing = per_image(d.uniform(n, low=0.025, high=0.12))
    freq = d.integers(0, 17, n, j).float()
    amp = d.uniform(n, j) * d.uniform(n, 1, low=0.05 / j, high=0.6 / j)
    phase = d.uniform(n, j, high=2 * math.pi)
    width = per_image(d.uniform(n, low=0.8, high=3.5))
    fill = per_image(d.uniform(n, low=-0.6, high=0.9).clamp(min=0))
    tone, step = d.uniform(n), per_image(d.uniform(n, low=-0.15, high=0.15))
    on = per_image((torch.arange(n, device=d.device) < families[:, None]).float())
    dx, dy = x - per_image(centre[..., 0]), y - per_image(centre[..., 1])          # (B, n, H, W)
    rho, theta = torch.hypot(dx, dy), torch.atan2(dy, dx)
    g, dg = torch.ones_like(rho), torch.zeros_like(rho)
    for k in range(j):
        arg = torch.addcmul(per_image(phase[..., k]), per_image(freq[..., k]), theta)
        g = torch.addcmul(g, per_image(amp[..., k]), torch.sin(arg))
        dg = torch.addcmul(dg, per_image(amp[..., k] * freq[..., k]), torch.cos(arg))
    s = rho / g
    to_px = g * px * torch.rsqrt(1 + (dg / g) ** 2)                      # |ds| -> distance in pixels
    m = torch.minimum(torch.round((s - inner) / spacing).clamp(min=0), orbits - 1)
    line = on * (width / 2 - (s - inner - m * spacing).abs() * to_px + 0.5).clamp(0, 1)
    inside = on * fill * ((inner - s) * to_px + 0.5).clamp(0, 1)
    fill_colour = cosine_palette(per_image(tone + 0.5)[:, :, None], pal) * 0.7          # (B, n, 3, 1, 1)
    orbit = torch.arange(_ORBITS, device=d.device, dtype=torch.float32)
    orbit_colour = cosine_palette((tone[:, :, None] + orbit * step[..., 0])[:, :, None, None, :], pal)
    orbit_colour = orbit_colour[:, :, :, 0]                                        # (B, n, 3, orbits)
    ramp = (per_image(torch.cos(direction)) * x + per_image(torch.sin(direction)) * y)[:, None]
    background = cosine_palette(0.2 * ramp + 0.5, pal) * per_image(shade)[:, None]
    b, h, w = m.shape[0], *m.shape[2:]

    def layers():                                  # per family: its fill, then its orbits (colour per orbit)
        for k in range(n):
            yield fill_colour[:, k], inside[:, k, None], None
            which = m[:, k].long().view(b, 1, h * w).expand(-1, 3, -1)
            yield torch.gather(orbit_colour[:, k], 2, which).view(b, 3, h, w), line[:, k, None], None
    return composite(background, layers())


# ----------------------------------------------------------------------------------------------
# "fractal": FractalDB-style iterated function systems
# ----------------------------------------------------------------------------------------------

_CANDIDATES = 8          # IFS drawn per image; the first that passes the checks is used
_CHECK_WALKERS, _CHECK_STEPS, _CHECK_GRID = 96, 14, 24
_MIN_FILL = 0.2          # FractalDB's filling-rate test: occupied share of a _CHECK_GRID**2 grid


def _sample_ifs(d: Draws, n: int):
    """``n`` candidate systems of N = 2-4 contractive affine maps per image (CPU).

    Each map is ``R(a) diag(s1, +-s2) R(b)`` with singular values scaled so that the sigma factor
    ``sum(s1 + 2 s2)`` aims at a target drawn in [0.5 (5 + N), 0.5 (6 + N)] (Anderson & Farrell,
    "Improving Fractal Pre-training", 2022), then capped at s1 <= 0.95 (contractive); maps beyond
    N get probability 0.

    Returns:
        coef (B, n, 4, 6) as (a, b, c, d, e, f): ``x' = a x + b y + e``, ``y' = c x + d y + f``;
        prob (B, n, 4) map probabilities, proportional to |det| as in FractalDB.
    """
    maps = d.integers(2, 5, n)
    used = (torch.arange(4) < maps[..., None]).float()
    rot_a, rot_b = d.uniform(n, 4, high=2 * math.pi), d.uniform(n, 4, high=2 * math.pi)
    s1 = d.uniform(n, 4, low=0.25, high=1.0)
    s2 = s1 * d.uniform(n, 4, low=0.1, high=1.0)
    flip = d.sign(n, 4)
    target = 0.5 * (5 + maps + d.uniform(n))
    factor = target / ((s1 + 2 * s2) * used).sum(-1)
    s1 = (s1 * factor[..., None]).clamp(max=0.95)
    s2 = torch.minimum(s2 * factor[..., None], s1) * flip
    ca, sa, cb, sb = torch.cos(rot_a), torch.sin(rot_a), torch.cos(rot_b), torch.sin(rot_b)
    a = ca * s1 * cb - sa * s2 * sb
    b = -ca * s1 * sb - sa * s2 * cb
    c = sa * s1 * cb + ca * s2 * sb
    dd = -sa * s1 * sb + ca * s2 * cb
    shift = d.uniform(n, 4, 2, low=-1.0, high=1.0)
    coef = torch.stack([a, b, c, dd, shift[..., 0], shift[..., 1]], -1)
    weight = (s1 * s2).abs().clamp(min=1e-3) * used
    return coef, weight / weight.sum(-1, keepdim=True)


_LCG_A, _LCG_C = 1664525, 1013904223     # Numerical Recipes' 32-bit LCG


def _map_choices(prob: torch.Tensor, keys: torch.Tensor, walkers: int, steps: int) -> torch.Tensor:
    """(steps, N, walkers) int64 index of the map each walker applies at each step.

    Each walker runs a 32-bit LCG seeded by ``combine(key, walker)``; step s uses state
    ``A_s state_0 + C_s`` (the LCG jumped ahead, all steps at once), compared with the cumulative
    probabilities ``prob`` (N, 4). Exact integers: identical on every device.
    """
    mult, add, a_s, c_s = [], [], 1, 0
    for _ in range(steps):
        a_s, c_s = (a_s * _LCG_A) & _MASK, (c_s * _LCG_A + _LCG_C) & _MASK
        mult.append(signed32(a_s))
        add.append(c_s)
    dev = keys.device
    state = combine(keys[:, None], torch.arange(walkers, device=dev)[None])[None]           # (1, N, W)
    state = (mul32(state, torch.tensor(mult, device=dev).view(-1, 1, 1))
             + torch.tensor(add, device=dev).view(-1, 1, 1)) & _MASK
    u = (state >> 8).to(torch.float32) * (1.0 / (1 << 24))
    cum = prob.cumsum(-1)
    k = (u >= cum[None, :, 0:1]).long()
    for j in (1, 2):
        k += u >= cum[None, :, j:j + 1]
    return k


def _chaos_game(coef: torch.Tensor, prob: torch.Tensor, keys: torch.Tensor, walkers: int, steps: int):
    """Random iteration of the IFS on many walkers at once, started on the attractor (the fixed
    point of map 0), so that no point is off it.

    Args:
        coef: (N, 4, 6), prob: (N, 4), keys: (N,) int64, all on one device.
    Returns:
        x, y: (steps, N, walkers) float positions after each step; k: (steps, N, walkers) the map used.
    """
    a, b, c, d, e, f = coef[:, 0].unbind(-1)
    det = (1 - a) * (1 - d) - b * c
    x = (((1 - d) * e + b * f) / det)[:, None].expand(-1, walkers)
    y = (((1 - a) * f + c * e) / det)[:, None].expand(-1, walkers)
    k = _map_choices(prob, keys, walkers, steps)
    index = k + (torch.arange(coef.shape[0], device=coef.device) * 4)[:, None]
    flat = coef.reshape(-1, 6)
    xs = coef.new_empty(steps, *x.shape)
    ys = coef.new_empty(steps, *x.shape)
    for s in range(steps):
        m = flat.index_select(0, index[s].flatten()).view(*x.shape, 6)
        x, y = m[..., 0] * x + m[..., 1] * y + m[..., 4], m[..., 2] * x + m[..., 3] * y + m[..., 5]
        xs[s], ys[s] = x, y
    return xs, ys, k


def _choose_ifs(d: Draws):
    """Per image, the first candidate system whose attractor fills at least _MIN_FILL of its
    bounding square (FractalDB's filling-rate rejection; the most filling candidate if none does),
    estimated from a short chaos game; all on the CPU, deterministic.

    Returns:
        coef (B, 4, 6), prob (B, 4), box (B, 4) as (x0, y0, side, _) of the attractor's square.
    """
    coef, prob = _sample_ifs(d, _CANDIDATES)
    b = coef.shape[0]
    check_keys = d.bits(_CANDIDATES).flatten()
    xs, ys, _ = _chaos_game(coef.flatten(0, 1), prob.flatten(0, 1), check_keys, _CHECK_WALKERS, _CHECK_STEPS)
    xs, ys = xs[4:].permute(1, 0, 2).flatten(1), ys[4:].permute(1, 0, 2).flatten(1)   # (B * n, points)
    lo_x, hi_x, lo_y, hi_y = xs.amin(1), xs.amax(1), ys.amin(1), ys.amax(1)
    side = torch.maximum(hi_x - lo_x, hi_y - lo_y).clamp(min=1e-6) * 1.08
    x0, y0 = (lo_x + hi_x - side) / 2, (lo_y + hi_y - side) / 2
    gx = ((xs - x0[:, None]) / side[:, None] * _CHECK_GRID).long().clamp(0, _CHECK_GRID - 1)
    gy = ((ys - y0[:, None]) / side[:, None] * _CHECK_GRID).long().clamp(0, _CHECK_GRID - 1)
    occupied = torch.zeros(xs.shape[0], _CHECK_GRID ** 2).scatter_(1, gy * _CHECK_GRID + gx, 1.0)
    fill = occupied.mean(1)
    good = (fill >= _MIN_FILL).view(b, _CANDIDATES)
    first = torch.where(good.any(1), good.float().argmax(1), fill.view(b, _CANDIDATES).argmax(1))
    pick = torch.arange(b) * _CANDIDATES + first
    box = torch.stack([x0[pick], y0[pick], side[pick], fill[pick]], 1)
    return coef.flatten(0, 1)[pick], prob.flatten(0, 1)[pick], box


def render_fractals(d: Draws, x: torch.Tensor, y: torch.Tensor, px: float) -> torch.Tensor:
    """FractalDB-style images: the point density of a chaos game (about 1.5 points per pixel,
    counted per map so that each map has its own colour) over a dark gradient, (B, 3, H, W)."""
    dev = x.device
    h, w = x.shape[-2:]
    coef, prob, box = (t.to(dev) for t in _choose_ifs(d.fork("cpu")))
    pal = sample_palette(d)
    tones = d.uniform(4)
    shade = d.uniform(low=0.05, high=0.3)
    keys = d.bits()
    b = coef.shape[0]
    walkers = 2048
    steps = 6 + math.ceil(1.5 * h * w / walkers)
    scale = min(h, w) / box[:, 2:3]                                      # pixels per IFS unit
    off_x = (w - min(h, w)) / 2 - box[:, 0:1] * scale
    off_y = (h - min(h, w)) / 2 - box[:, 1:2] * scale
    xs, ys, maps = (t[6:] for t in _chaos_game(coef, prob, keys, walkers, steps))   # (S, B, walkers)
    col = torch.floor(xs * scale + off_x).long()
    row = torch.floor(ys * scale + off_y).long()
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    plane = maps + (torch.arange(b, device=dev) * 4)[:, None]                      # (image, map) plane
    index = (plane * h + row.clamp(0, h - 1)) * w + col.clamp(0, w - 1)
    index = torch.where(inside, index, b * 4 * h * w).flatten()              # outside: a spare bin
    counts = torch.zeros(b * 4 * h * w + 1, device=dev)
    counts.index_add_(0, index, torch.ones(index.numel(), device=dev))      # integer sums: exact on CUDA
    counts = counts[:-1].view(b, 4, h, w)
    counts = counts + 2 * F.avg_pool2d(counts, 3, 1, 1, count_include_pad=False)   # a soft glow
    total = counts.sum(1, keepdim=True)
    mean = total.sum((2, 3), keepdim=True) / (total > 0).sum((2, 3), keepdim=True).clamp(min=1)
    bright = 1 - torch.exp(-1.5 * total / mean)
    colours = cosine_palette(tones.view(b, 4, 1, 1, 1), pal)             # (B, 4, 3, 1, 1)
    colours = colours / colours.amax(2, keepdim=True).clamp(min=0.1)      # bright: max channel 1
    colour = sum(counts[:, k:k + 1] * colours[:, k] for k in range(4)) / total.clamp(min=1)
    ramp = (per_image(torch.cos(tones[:, 0] * 6.3)) * x + per_image(torch.sin(tones[:, 0] * 6.3)) * y)[:, None]
    canvas = cosine_palette(0.25 * ramp + 0.5, pal) * per_image(shade)[:, None]
    return over(canvas, colour, bright)


# ----------------------------------------------------------------------------------------------
# the image source
# ----------------------------------------------------------------------------------------------

_KIND_FUNCTIONS = {"shader": render_shaders, "fractal": render_fractals, "atom": render_atoms}
_SALTS = {"shader": 0x5AD3, "fractal": 0xF4AC, "atom": 0xA70E, "mixed": 0x313D}


class SyntheticImages:
    """Data-free images: image ``i`` is a pure function of (``seed``, ``i``, ``size``).

    ``load`` renders a batch directly on the requested device with batched torch ops (one group of
    ops per kind / shader program, small loops over layers and chaos-game steps, no loop over
    images or pixels). Parameters are drawn on the CPU from a counter-based hash of (seed, i) and
    moved, so they are identical in every batch and on every device; CPU and CUDA pixels may differ
    by float rounding.

    Example::

        source = SyntheticImages("mixed", num_images=100_000, seed=0)
        images = source.load(range(64), 224, "cuda")        # uint8 (64, 3, 224, 224)

    Args:
        kind: ``"shader"`` (eight procedural programs), ``"fractal"`` (FractalDB-style IFS),
            ``"atom"`` (VisualAtom-style contours) or ``"mixed"`` (each index draws one of the three;
            image i is then image i of that kind with the same seed).
        num_images: ``len(source)``; indices range over [0, num_images).
        seed: int >= 0; a different seed gives an unrelated set of images.
    """

    def __init__(self, kind: str = "shader", num_images: int = 100_000, seed: int = 0):
        check_choice("kind", kind, KINDS)
        self.kind = kind
        self.num_images = check_int("num_images", num_images, 1, 2 ** 48)
        self.seed = check_seed(seed)

    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        return f"SyntheticImages(kind={self.kind!r}, num_images={self.num_images}, seed={self.seed})"

    def keys(self, indices: torch.Tensor, kind: str) -> torch.Tensor:
        """(B,) int64 32-bit keys of images ``indices`` (CPU long tensor) for ``kind``."""
        root = combine(torch.tensor(self.seed & _MASK), self.seed >> 32)
        root = combine(root, _SALTS[kind])
        return combine(combine(root, indices & _MASK), indices >> 32)

    def kinds(self, indices: torch.Tensor) -> list[str]:
        """The kind each of ``indices`` is rendered as (``"mixed"`` draws one per index)."""
        if self.kind != "mixed":
            return [self.kind] * indices.numel()
        choice = Draws(self.keys(indices, "mixed")).integers(0, 3).tolist()
        return [KINDS[c] for c in choice]

    def load(self, indices, size, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (B, 3, H, W) images ``indices`` at ``size``, rendered on ``device`` (default CPU).

        ``generator`` is accepted for the source protocol and unused: the images are a function of
        (seed, index, size) only. On the CPU the batch is rendered in chunks of
        ``_CPU_CHUNK`` images (cache-sized, faster than one big batch; the images do not
        depend on the batch they are rendered in).
        """
        idx = check_indices(indices, len(self))
        size = parse_size(size)
        check_generator(generator)
        device = check_device("cpu" if device is None else device)
        out = torch.empty(idx.numel(), 3, *size, dtype=torch.uint8, device=device)
        chunk = _CPU_CHUNK if device.type == "cpu" else max(1, idx.numel())
        for start in range(0, idx.numel(), chunk):
            out[start:start + chunk] = self._render(idx[start:start + chunk], size, device)
        return out

    def _render(self, idx: torch.Tensor, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """uint8 (B, 3, H, W): each kind's images of ``idx`` rendered in one batch."""
        x, y = pixel_grid(size, device)
        out = torch.empty(idx.numel(), 3, *size, device=device)
        kinds = self.kinds(idx)
        for kind, render in _KIND_FUNCTIONS.items():
            rows = torch.tensor([k == kind for k in kinds], dtype=torch.bool).nonzero().flatten()
            if rows.numel():
                out[rows.to(device)] = render(Draws(self.keys(idx[rows], kind), device), x, y, min(size) / 2)
        return to_uint8(out.clamp_(0, 1))
