"""Building blocks of the synthetic image generators: a counter-based random stream, pixel
coordinates, cosine palettes and periodic spectral noise. Pure, batched torch; no global RNG.

Counter-based randomness: the k-th number drawn for an image is ``hash(key, k)``, where ``key`` is a
32-bit hash of (seed, index). It depends on nothing else -- not on the batch the index sits in, not
on the device (integer ops are exact everywhere) -- which makes image ``i`` a pure function of
(seed, i, size). The hash is Chris Wellons' "lowbias32" integer mixer, evaluated on int64 tensors
holding 32-bit values (multipliers taken as signed 32-bit numbers, so no product overflows int64).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["signed32", "mul32", "hash32", "combine", "Draws", "pixel_grid", "rotate", "sample_palette",
           "cosine_palette", "spectral_noise", "pad_periodic", "sample_periodic", "smoothstep", "composite",
           "over", "to_uint8"]

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def signed32(c: int) -> int:
    """A multiplier congruent to ``c`` mod 2**32 in [-2**31, 2**31): its product with any value in
    [0, 2**32) fits in int64, and two's-complement ``& 0xFFFFFFFF`` keeps the right low 32 bits."""
    return c - (1 << 32) if c >= (1 << 31) else c


def mul32(x: torch.Tensor, c) -> torch.Tensor:
    """``(x * c) mod 2**32`` for int64 ``x`` in [0, 2**32) and ``c`` an int or an int64 tensor
    already reduced by :func:`signed32`; no int64 overflow."""
    return (x * (signed32(c) if isinstance(c, int) else c)) & _MASK


def hash32(x: torch.Tensor) -> torch.Tensor:
    """Bijective 32-bit integer mixer on an int64 tensor of values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def combine(key: torch.Tensor, value) -> torch.Tensor:
    """A new 32-bit key from ``key`` and a 32-bit ``value`` (tensor or int); bijective in ``value``."""
    value = torch.as_tensor(value, dtype=torch.int64, device=key.device)
    return hash32(key ^ hash32((value + _GOLDEN) & _MASK))


def _to_unit(h: torch.Tensor) -> torch.Tensor:
    """32-bit hashes -> float32 in [0, 1) from their top 24 bits (exact in float32)."""
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


_BLOCK = 64   # counters hashed at once per key (a cache: the numbers do not depend on it)


class Draws:
    """Counter-based random numbers, one independent stream per image key.

    The k-th number of image ``b`` is ``combine(keys[b], k)``: it depends only on ``keys[b]`` and on
    the sequence of calls, never on the other keys of the batch. Numbers are hashed where ``keys``
    live (exact integers, so identical on every device) in blocks of counters and handed out on
    ``device``: parameters are hashed on the CPU and moved once per block.

    Args:
        keys: (B,) int64 keys in [0, 2**32).
        device: where the numbers are returned (default: the keys' device).
    """

    def __init__(self, keys: torch.Tensor, device=None):
        self.keys = keys
        self.device = keys.device if device is None else torch.device(device)
        self.counter = 0
        self._cache, self._unit, self._start = None, None, 0   # counters _start, _start + 1, ...

    def _hash(self, start: int, n: int) -> torch.Tensor:
        ctr = torch.arange(start, start + n, dtype=torch.int64, device=self.keys.device)
        return combine(self.keys[:, None], ctr[None]).to(self.device)

    def prefetch(self, n: int) -> None:
        """Hash the next ``n`` counters of every key now (one batched hash instead of many)."""
        self._cache, self._start = self._hash(self.counter, n), self.counter
        self._unit = _to_unit(self._cache)

    def _take(self, shape: tuple, unit: bool) -> torch.Tensor:
        n, start = math.prod(shape), self.counter
        if n > _BLOCK:
            self.counter += n
            h = self._hash(start, n).view(-1, *shape)
            return _to_unit(h) if unit else h
        if self._cache is None or start < self._start or start + n > self._start + self._cache.shape[1]:
            self.prefetch(_BLOCK)
        self.counter += n
        block = self._unit if unit else self._cache
        return block[:, start - self._start:start - self._start + n].reshape(-1, *shape)

    def bits(self, *shape: int) -> torch.Tensor:
        """(B, *shape) int64 hashes in [0, 2**32), on ``device``."""
        return self._take(shape, unit=False)

    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        """(B, *shape) float32 uniform in [low, high)."""
        u = self._take(shape, unit=True)
        return u if (low, high) == (0.0, 1.0) else u * (high - low) + low

    def integers(self, low: int, high: int, *shape: int) -> torch.Tensor:
        """(B, *shape) int64 uniform in [low, high)."""
        return low + (self.bits(*shape) % (high - low))

    def sign(self, *shape: int) -> torch.Tensor:
        """(B, *shape) float32 in {-1, 1}."""
        return (self.bits(*shape) & 1).to(torch.float32) * 2 - 1

    def subset(self, rows: torch.Tensor) -> "Draws":
        """The streams of ``keys[rows]`` (``rows`` on the keys' device), continuing at this counter."""
        sub = Draws(self.keys[rows], self.device)
        sub.counter = self.counter
        if self._cache is not None:
            rows = rows.to(self.device)
            sub._cache, sub._unit, sub._start = self._cache[rows], self._unit[rows], self._start
        return sub

    def fork(self, device) -> "Draws":
        """A new stream whose keys live on ``device`` and are hashed there (bulk numbers such as
        noise phases on the GPU, or CPU-side decisions); it replaces one number of this stream."""
        keys = combine(self.keys, self.counter)
        self.counter += 1
        return Draws(keys.to(device))


def per_image(v: torch.Tensor) -> torch.Tensor:
    """(B,) or (B, L) per-image parameters -> broadcastable against (B, [L,] H, W)."""
    return v[..., None, None]


def pixel_grid(size: tuple[int, int], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates ``x, y`` of shape (1, H, W), scaled so that the shorter side spans
    [-1, 1] (y grows downwards); the image is the same picture at every resolution and aspect."""
    h, w = size
    half = min(h, w) / 2
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5 - h / 2) / half
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5 - w / 2) / half
    return xs.view(1, 1, w).expand(1, h, w), ys.view(1, h, 1).expand(1, h, w)


def rotate(x: torch.Tensor, y: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor):
    """Coordinates rotated by ``angle`` and scaled by ``scale`` (each (B,) on the coordinates' device)."""
    c, s = (torch.cos(angle) * scale)[:, None, None], (torch.sin(angle) * scale)[:, None, None]
    return c * x - s * y, s * x + c * y


def sample_palette(d: Draws) -> torch.Tensor:
    """(B, 4, 3) parameters (a, b, c, d) of a random cosine palette, on ``d.device``."""
    a = d.uniform(3, low=0.3, high=0.7)
    b = d.uniform(3, low=0.25, high=0.5)
    c = d.uniform(3, low=0.4, high=1.6)
    phase = d.uniform(3)
    return torch.stack([a, b, c, phase], 1)


def cosine_palette(t: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Colours ``a + b cos(2 pi (c t + d))`` (I. Quilez' cosine palettes).

    Args:
        t: (B, ..., 1, H, W) float (any number of middle dimensions, e.g. layers; B may be 1).
        palette: (B, 4, 3) from :func:`sample_palette`.
    Returns:
        (B, ..., 3, H, W) float, in [0, 1] up to ``a +- b``.
    """
    shape = (palette.shape[0],) + (1,) * (t.ndim - 4) + (3, 1, 1)
    a, b, c, ph = (p.reshape(shape) for p in palette.unbind(1))
    return torch.addcmul(a, b, torch.cos(torch.addcmul(ph, c, t) * (2 * math.pi)))


def spectral_noise(d: Draws, channels: int, res: int, beta: torch.Tensor, low: float = 1,
                   high: float | None = None) -> torch.Tensor:
    """Periodic random fields with a power-law spectrum (amplitude ~ 1 / f**beta), like natural images.

    Random phases come from ``d`` on its device (exact integers, so identical on every device).

    Args:
        d: draws whose keys live on the output device.
        channels: independent fields per image.
        res: texture side (even).
        beta: (B,) spectral slope on the output device: 1 rough, 2 smooth.
        low, high: band of frequencies kept, in cycles per texture (``high`` None: up to res / 2).
    Returns:
        (B, channels, res, res) float32, zero mean and unit std per field.
    """
    fy = torch.fft.fftfreq(res, 1.0 / res, device=beta.device).abs()
    fx = torch.fft.rfftfreq(res, 1.0 / res, device=beta.device)
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)                          # (res, res // 2 + 1)
    keep = ((f >= low) & (f <= (res / 2 if high is None else high))).to(torch.float32)
    amp = keep * f.clamp(min=1.0)[None] ** -beta[:, None, None]                 # (B, res, res//2+1)
    phase = 2 * math.pi * d.uniform(channels, res, res // 2 + 1)
    spec = torch.polar(amp[:, None].expand_as(phase).contiguous(), phase)
    field = torch.fft.irfft2(spec, s=(res, res))
    field = field - field.mean(dim=(-2, -1), keepdim=True)
    return field / field.std(dim=(-2, -1), keepdim=True).clamp(min=1e-8)


def pad_periodic(tex: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) one period of textures -> (B, C, S + 2, S + 2) wrapped by one texel, for
    :func:`sample_periodic`."""
    return F.pad(tex, (1, 1, 1, 1), mode="circular")


def sample_periodic(padded: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of periodic textures at coordinates measured in texture periods.

    Args:
        padded: (B, C, S + 2, S + 2) from :func:`pad_periodic`.
        coords: (B, H, W, 2) positions (x, y); 1.0 is one full period, any real value wraps around.
    Returns:
        (B, C, H, W).
    """
    s = padded.shape[-1] - 2
    # texel k (centre at (k + 0.5) / S periods) sits at padded index k + 1 (align_corners=True)
    grid = torch.remainder(coords, 1.0) * (2.0 * s / (s + 1)) + (1.0 / (s + 1) - 1)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=True)


def smoothstep(e0, e1, x: torch.Tensor) -> torch.Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def composite(background: torch.Tensor, layers) -> torch.Tensor:
    """Layers painted in order over a background: for each ``(colour, alpha, darken)`` of
    ``layers``, ``canvas = lerp(canvas * darken, colour, alpha)`` (``darken`` None: 1).

    ``layers`` may be a generator, so that one layer's (B, 3, H, W) colour exists at a time.

    Args:
        background: (B, 3, H, W).
        layers: iterable of (colour (B, 3, H, W) or (B, 3, 1, 1), alpha (B, 1, H, W) coverage in
            [0, 1], darken (B, 1, H, W) factor on what lies below -- a shadow -- or None).
    Returns:
        (B, 3, H, W).
    """
    canvas = background
    for colour, alpha, darken in layers:
        if darken is not None:
            canvas = canvas * darken
        canvas = torch.lerp(canvas, colour.expand_as(canvas), alpha)
    return canvas


def over(canvas: torch.Tensor, colour: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``colour`` composited over ``canvas`` with coverage ``alpha`` (broadcast (B, 1, H, W))."""
    return torch.lerp(canvas, colour, alpha)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 0-255 (rounded, clamped)."""
    return (images * 255).round_().clamp_(0, 255).to(torch.uint8)
