"""Procedural "shader" images: small per-pixel functions (shaders) with random parameters and palettes, the
data-free stand-in for Shaders1k (Baradad et al., 2022), evaluated for a whole batch at once.

Every shader has the signature ``shader(d, x, y, px) -> (B, 3, H, W)`` float (about [0, 1]):
``d`` is the :class:`~pmg_dali.procedural.Draws` stream of the B images (hashed on the CPU, handed
out on the target device), ``x, y`` the (1, H, W) pixel coordinates on the target device (shorter
side spans [-1, 1]) and ``px`` the pixels per unit (for one-pixel anti-aliasing). Layers, waves and
neighbours are extra tensor dimensions rather than Python loops: on a GPU the cost of these
programs is the number of kernels they launch, not the arithmetic.
"""
from __future__ import annotations

import math

import torch

from .procedural import (Draws, composite, cosine_palette, pad_periodic, per_image, rotate, sample_palette,
                         sample_periodic, smoothstep, spectral_noise)

__all__ = ["SHADERS", "render_shaders"]

TAU = 2 * math.pi
_TEX = 128          # side of the spectral-noise textures
_TABLE = 16         # cells per period of the Voronoi / Truchet lookup tables


def _noise(d: Draws, channels: int, beta=(1.3, 2.2), low: float = 1.5, high: float = 32) -> torch.Tensor:
    """(B, channels, _TEX + 2, _TEX + 2) padded periodic power-law noise, random slope per image."""
    slope = d.uniform(low=beta[0], high=beta[1])
    return pad_periodic(spectral_noise(d.fork(d.device), channels, _TEX, slope, low=low, high=high))


def _frame(d: Draws, x, y, low: float, high: float):
    """Coordinates ``u, v`` (B, H, W) under a random rotation and a log-uniform scale in
    [low, high], and that (B,) scale."""
    angle = d.uniform(high=TAU)
    scale = torch.exp(d.uniform(low=math.log(low), high=math.log(high)))
    return (*rotate(x, y, angle, scale), scale)


def _grain(d: Draws, x, y, low: float, high: float) -> torch.Tensor:
    """(B, 1, H, W) multiplicative surface texture ``1 + a * noise``, ``a`` uniform in [low, high]."""
    u, v, _ = _frame(d, x, y, 0.3, 0.8)
    amount = d.uniform(low=low, high=high)
    tex = _noise(d, 1, beta=(1.0, 1.6), low=2, high=48)
    return 1 + per_image(amount)[:, None] * sample_periodic(tex, torch.stack([u, v], -1)).clamp(-2.5, 2.5)


def warped_noise(d: Draws, x, y, px) -> torch.Tensor:
    """Domain-warped fBm ``f(p + w2 r(p + w1 q(p)))``, coloured by two palettes."""
    u, v, _ = _frame(d, x, y, 0.25, 0.6)
    w = d.uniform(2, low=0.04, high=0.25)
    pal, tint = sample_palette(d), sample_palette(d)
    tex = _noise(d, 4, beta=(1.7, 2.5), high=24)
    p = torch.stack([u, v], -1)                                            # (B, H, W, 2)
    q = sample_periodic(tex[:, :2], p)
    r = sample_periodic(tex[:, 2:], p + w[:, 0, None, None, None] * q.permute(0, 2, 3, 1))
    f = sample_periodic(tex[:, :1], p + w[:, 1, None, None, None] * r.permute(0, 2, 3, 1))
    col = cosine_palette(0.25 * f, pal)
    col = torch.lerp(col, cosine_palette(0.3 * q[:, :1], tint), smoothstep(-0.5, 1.5, r[:, 1:]) * 0.6)
    return col * (0.8 + 0.2 * q[:, 1:].clamp(-1, 1))


def interference(d: Draws, x, y, px) -> torch.Tensor:
    """Plasma: a sum of six planar and circular sine waves of log-uniform frequencies, sharpened."""
    n = 6
    direction = d.uniform(n, high=TAU)
    freq = torch.exp(d.uniform(n, low=math.log(2.0), high=math.log(30.0)))
    phase = d.uniform(n, high=TAU)
    centre = d.uniform(n, 2, low=-1.5, high=1.5)
    circular = (d.uniform(n) < 0.4).float()
    amp = d.uniform(n, low=0.2, high=1.0)
    sharp = d.uniform(low=1.0, high=5.0)
    pal = sample_palette(d)
    planar = per_image(torch.cos(direction)) * x + per_image(torch.sin(direction)) * y        # (B, n, H, W)
    radial = torch.hypot(x - per_image(centre[..., 0]), y - per_image(centre[..., 1]))
    dist = torch.lerp(planar, radial, per_image(circular))
    waves = torch.sin(torch.addcmul(per_image(phase), per_image(freq), dist))
    v = (waves * per_image(amp * (2 / amp.sum(1, keepdim=True)))).sum(1, keepdim=True)
    v = torch.tanh(per_image(sharp)[:, None] * v) / per_image(torch.tanh(sharp))[:, None]
    return cosine_palette(0.35 * v, pal)


def cells(d: Draws, x, y, px) -> torch.Tensor:
    """Voronoi cells of a jittered grid: flat cell colours, inner shading and dark borders."""
    b = d.keys.shape[0]
    u, v, _ = _frame(d, x, y, 1.5, 6.0)
    jitter = d.uniform(low=0.5, high=1.0)
    border = d.uniform(low=0.02, high=0.12)
    shade = d.uniform(low=0.0, high=0.8)
    pal = sample_palette(d)
    table = d.fork(d.device).uniform(3, _TABLE * _TABLE)               # jitter x, jitter y, colour
    cx, cy = torch.floor(u)[:, None], torch.floor(v)[:, None]            # (B, 1, H, W); 9 neighbours below
    fx, fy = u[:, None] - cx, v[:, None] - cy
    offs = torch.tensor([-1.0, 0.0, 1.0], device=x.device)
    dx, dy = offs.repeat(3).view(1, 9, 1, 1), offs.repeat_interleave(3).view(1, 9, 1, 1)
    idx = (torch.remainder(cy + dy, _TABLE) * _TABLE + torch.remainder(cx + dx, _TABLE)).long()
    jit = torch.gather(table[:, :2], 2, idx.view(b, 1, -1).expand(-1, 2, -1)).view(b, 2, *idx.shape[1:])
    ox = dx + 0.5 - fx + per_image(jitter)[:, None] * (jit[:, 0] - 0.5)
    oy = dy + 0.5 - fy + per_image(jitter)[:, None] * (jit[:, 1] - 0.5)
    best, which = torch.topk(ox * ox + oy * oy, 2, dim=1, largest=False)  # F1^2, F2^2 and where
    f1, f2 = best.sqrt().unbind(1)
    nearest = torch.gather(idx, 1, which[:, :1]).view(b, -1)
    value = torch.gather(table[:, 2], 1, nearest).view_as(u)
    col = cosine_palette((value + 0.3 * f1)[:, None], pal) * (1 - per_image(shade) * f1 * f1)[:, None]
    edge = smoothstep(0.0, per_image(border), (f2 - f1) / 2)[:, None]
    return col * (0.15 + 0.85 * edge)


def kaleidoscope(d: Draws, x, y, px) -> torch.Tensor:
    """Polar mirror symmetry (3-12 sectors) of noise and rings."""
    sectors = d.integers(3, 13).float()
    centre = d.uniform(2, low=-0.3, high=0.3)
    spin = d.uniform(high=TAU)
    zoom = d.uniform(low=0.15, high=0.5)
    ring_freq = d.uniform(low=3.0, high=25.0)
    pal = sample_palette(d)
    tex = _noise(d, 2, beta=(1.2, 2.0))
    dx, dy = x - per_image(centre[:, 0]), y - per_image(centre[:, 1])
    rho = torch.hypot(dx, dy)
    sector = TAU / per_image(sectors)
    a = (torch.remainder(torch.atan2(dy, dx) + per_image(spin), sector) - sector / 2).abs()
    f = sample_periodic(tex, torch.stack([torch.cos(a), torch.sin(a)], -1) * (rho * per_image(zoom))[..., None])
    rings = torch.sin(per_image(ring_freq) * rho + 2.0 * f[:, 1])
    t = 0.3 * f[:, :1] + (0.25 * rings + 0.3 * rho)[:, None]
    return cosine_palette(t, pal) * (1 - 0.25 * smoothstep(0.6, 1.6, rho))[:, None]


def _rounded_box(u, v, half_w, half_h, corner):
    """Signed distance to a rounded box centred at the origin (negative inside)."""
    qx, qy = u.abs() - (half_w - corner), v.abs() - (half_h - corner)
    outside = torch.hypot(qx.clamp(min=0), qy.clamp(min=0))
    return outside + torch.maximum(qx, qy).clamp(max=0) - corner


def sdf_shapes(d: Draws, x, y, px) -> torch.Tensor:
    """Six layers of rounded boxes, discs, capsules and rings with soft drop shadows and dome
    shading, over a textured gradient."""
    layers = 6
    pal = sample_palette(d)
    light = d.uniform(high=TAU)
    offset = d.uniform(low=0.02, high=0.08)
    centre = d.uniform(layers, 2, low=-1.0, high=1.0)
    half = d.uniform(layers, 2, low=0.06, high=0.55)
    angle = d.uniform(layers, high=TAU)
    corner = d.uniform(layers) * half.amin(-1)
    ring = d.uniform(layers, low=0.01, high=0.06) * (d.uniform(layers) < 0.3).float()
    tone = d.uniform(layers)
    visible = (d.uniform(layers) < 0.8).float()
    background = cosine_palette((0.3 * y + 0.15 * x)[None] + 0.5, pal) * 0.8 * _grain(d, x, y, 0.03, 0.12)
    c, s = per_image(torch.cos(angle)), per_image(torch.sin(angle))
    dx, dy = x - per_image(centre[..., 0]), y - per_image(centre[..., 1])          # (B, L, H, W)
    u, v = c * dx + s * dy, c * dy - s * dx
    sx, sy = per_image(offset * torch.cos(light))[:, None], per_image(offset * torch.sin(light))[:, None]
    hw, hh, rr = per_image(half[..., 0]), per_image(half[..., 1]), per_image(corner)
    dist = _rounded_box(u, v, hw, hh, rr)
    shadow = _rounded_box(u - (c * sx + s * sy), v - (c * sy - s * sx), hw, hh, rr)
    t = per_image(ring)
    dist = torch.where(t > 0, dist.abs() - t, dist)
    shadow = torch.where(t > 0, shadow.abs() - t, shadow)
    on = per_image(visible)
    darken = 1 - 0.45 * on * (1 - smoothstep(-0.03, 0.05, shadow))
    dome = (-dist / torch.minimum(hw, hh)).clamp(0, 1).sqrt()
    alpha = on * (0.5 - dist * px).clamp(0, 1)
    shading = (0.7 + 0.4 * dome)[:, :, None]
    layers = ((cosine_palette((per_image(tone[:, k]) + 0.2 * dome[:, k])[:, None], pal) * shading[:, k],
               alpha[:, k, None], darken[:, k, None]) for k in range(layers))
    return composite(background, layers)


def colour_fields(d: Draws, x, y, px) -> torch.Tensor:
    """Layered gradients: five soft- or hard-edged half planes, bands and discs over a gradient."""
    layers = 5
    pal = sample_palette(d)
    base_dir = d.uniform(high=TAU)
    direction = d.uniform(layers, high=TAU)
    anchor = d.uniform(layers, 2, low=-0.8, high=0.8)
    width = d.uniform(layers, low=0.05, high=0.5)
    soft = torch.exp(d.uniform(layers, low=math.log(0.5), high=math.log(12.0))) / px
    kind = d.integers(0, 3, layers)
    tone = d.uniform(layers)
    opacity = d.uniform(layers, low=0.5, high=1.0)
    ramp = (per_image(torch.cos(base_dir)) * x + per_image(torch.sin(base_dir)) * y)[:, None]
    background = cosine_palette(0.4 * ramp, pal)
    dx, dy = x - per_image(anchor[..., 0]), y - per_image(anchor[..., 1])          # (B, L, H, W)
    s = per_image(torch.cos(direction)) * dx + per_image(torch.sin(direction)) * dy
    band, disc = s.abs() - per_image(width), torch.hypot(dx, dy) - 2 * per_image(width)
    dist = torch.where(per_image(kind) == 0, s, torch.where(per_image(kind) == 1, band, disc))
    alpha = per_image(opacity) * (1 - smoothstep(-per_image(soft), per_image(soft), dist))
    layers = ((cosine_palette((per_image(tone[:, k]) + 0.25 * s[:, k])[:, None], pal), alpha[:, k, None], None)
              for k in range(layers))
    return composite(background, layers) * _grain(d, x, y, 0.03, 0.15)


def marble(d: Draws, x, y, px) -> torch.Tensor:
    """Marble / wood: sine stripes (linear or concentric) displaced by turbulence, sharp veins."""
    u, v, _ = _frame(d, x, y, 0.15, 0.5)
    freq = d.uniform(low=4.0, high=20.0)
    amount = d.uniform(low=1.0, high=5.0)
    sharp = d.uniform(low=0.15, high=0.8)
    concentric = (d.uniform() < 0.35).float()
    centre = d.uniform(2, low=-1.0, high=1.0)
    pal = sample_palette(d)
    turb = sample_periodic(_noise(d, 2, beta=(1.0, 1.7)), torch.stack([u, v], -1))
    radial = torch.hypot(x - per_image(centre[:, 0]), y - per_image(centre[:, 1]))
    base = torch.lerp((x + y) * 0.7, radial, per_image(concentric))
    wave = torch.sin(per_image(freq) * base + per_image(amount) * turb[:, 0])
    vein = (wave.abs() ** per_image(sharp))[:, None]
    return cosine_palette(0.45 * vein + 0.12 * turb[:, 1:], pal) * (0.55 + 0.45 * vein)


def truchet(d: Draws, x, y, px) -> torch.Tensor:
    """Truchet tiles of quarter-circle arcs: two-tone regions and anti-aliased outlined bands."""
    b = d.keys.shape[0]
    u, v, scale = _frame(d, x, y, 2.0, 7.0)
    half = d.uniform(low=0.04, high=0.16)
    pal = sample_palette(d)
    flips = d.fork(d.device).integers(0, 2, _TABLE * _TABLE)
    cx, cy = torch.floor(u), torch.floor(v)
    fx, fy = u - cx, v - cy
    idx = (torch.remainder(cy, _TABLE) * _TABLE + torch.remainder(cx, _TABLE)).long()
    flip = torch.gather(flips, 1, idx.view(b, -1)).view_as(u).float()
    fx = torch.lerp(fx, 1 - fx, flip)
    r1, r2 = torch.hypot(fx, fy), torch.hypot(1 - fx, 1 - fy)
    dist = torch.minimum((r1 - 0.5).abs(), (r2 - 0.5).abs())
    region = ((r1 < 0.5).float() + (r2 < 0.5).float() + torch.remainder(cx + cy, 2) + flip) % 2
    fill = cosine_palette((0.5 * region + 0.15 * torch.sin(1.3 * u) * torch.cos(1.1 * v))[:, None], pal)
    band = cosine_palette((0.25 + 0.3 * r1)[:, None], pal)
    cover = ((per_image(half) - dist) * (px / per_image(scale)) + 0.5).clamp(0, 1)
    return torch.lerp(fill * 0.85, band, cover[:, None])


SHADERS = (warped_noise, interference, cells, kaleidoscope, sdf_shapes, colour_fields, marble, truchet)


def render_shaders(d: Draws, x: torch.Tensor, y: torch.Tensor, px: float) -> torch.Tensor:
    """Each image takes one of :data:`SHADERS`; each shader renders its images in one batch.

    Returns:
        (B, 3, H, W) float in [0, 1] on the coordinates' device.
    """
    b = d.keys.shape[0]
    shader = d.fork(d.keys.device).integers(0, len(SHADERS))         # chosen where the keys live
    d.prefetch(128)                                                    # one hash for all shaders
    out = x.new_empty(b, 3, *x.shape[-2:])
    for p, fn in enumerate(SHADERS):
        rows = (shader == p).nonzero().flatten()
        if rows.numel():
            out[rows.to(x.device)] = fn(d.subset(rows), x, y, px)
    return out.clamp_(0, 1)
