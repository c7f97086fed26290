"""The fused GPU renderer: a whole motion program drawn in one Triton pass.

For every output pixel of frame t of clip b, one kernel computes the source coordinate from the
frame's inverse homography, samples the source bilinearly (all three channels together, from a
packed RGBx uint8 word per pixel or from float planes), pastes the cutmix patch, applies the colour
matrix, recomputes the mixup partner's pixel the same way (no intermediate clip in memory), mixes,
normalises and writes ``cfg.dtype`` in ``cfg.layout`` once. No sampling grid, no float clip, no
partner copy: the output is the only large memory traffic.

The reference renderer (:mod:`pmg_dali.render`) is the specification; the only work outside the
kernel is the antialiased resize (when the input size differs from ``cfg.size``, done exactly as the
reference does, giving a float source) and two tiny per-frame tables (inverse 3x3 maps, colour,
boxes, lambda; built where the program lives, usually the host). ``recursion="iterative"`` is
delegated to the reference.

Convention: ``homography[b, t]`` maps source pixels to frame pixels, pixel centres at integers,
origin at the top-left pixel centre (:mod:`pmg_dali.geometry`); the kernel samples the source at
``inv(homography[b, t]) @ (x, y, 1)`` with ``grid_sample``'s ``align_corners=True`` bilinear rules for
``zeros`` / ``border`` / ``reflection`` padding.

Speed (the output, ~308 MB of bf16 per default batch, is the floor): one kernel instance renders a
:data:`BLOCK` tile (8 x 32 with 2 warps by default) of one frame, all channels, and writes each channel
row-contiguous; a uint8 source is read as one packed RGBx int32 word per tap (4 gathers per sample
instead of 12; the 12.8 MB of words of a batch stay in L2); there are no int <-> float conversion
instructions (1/8 of the FMA rate on sm_80/sm_90): bytes enter the float mantissa directly and
floor/round use the 1.5 * 2^23 trick; the colour matrix is skipped by a uniform branch when it is the
identity; offsets are int32 with an int64 base per (clip, frame).

Real clips (:func:`augment_fused`, :func:`pmg_dali.render.augment`): the source is a video, frame t
of a clip sampled from the clip's own frame t. The kernel only adds ``t`` x a frame stride to the
source offset (a compile-time switch: the still-image kernel is unchanged), so both render through the
same code.

On CPU tensors the kernel runs through Triton's interpreter when ``TRITON_INTERPRET=1`` is set before
Triton is imported (slow; meant for tests on tiny sizes).
"""
from __future__ import annotations

import contextlib

import torch

from . import render as reference
from ._checks import check_choice
from .config import PMGConfig, check_config
from .engines import engine
from .program import MotionProgram
from .render import output_buffer
from .rules import COLUMNS, INDEX_COLUMNS, MIX_MODES, NUM_PARAMS, PADDING_CODES, PASTE_PADDING, frame_tables

try:
    import triton
    import triton.language as tl
except ImportError as exc:  # pragma: no cover - torch's CUDA wheels ship Triton
    raise ImportError("pmg_dali.fused needs Triton: pip install triton") from exc

__all__ = ["render_fused", "augment_fused", "parameter_tables", "prepare_source", "launch", "NUM_PARAMS"]

# Per-(b, t) float parameter row and per-clip index row of FrameTables.packed(): the columns are
# rules.COLUMNS / rules.INDEX_COLUMNS, read here by name.
_ROW = tl.constexpr(NUM_PARAMS)
_INVERSE = tl.constexpr(COLUMNS["inverse"][0])
_COLOR = tl.constexpr(COLUMNS["color"][0])
_PASTE_INV = tl.constexpr(COLUMNS["paste_inverse"][0])
_PASTE_BOX = tl.constexpr(COLUMNS["paste_box"][0])
_LAMBDA = tl.constexpr(COLUMNS["mix_lambda"][0])
_MIX_BOX = tl.constexpr(COLUMNS["mix_box"][0])
_PLAIN_COLOR = tl.constexpr(COLUMNS["plain_color"][0])
_INDEX_ROW = tl.constexpr(len(INDEX_COLUMNS))
_PASTE_INDEX = tl.constexpr(INDEX_COLUMNS.index("paste_index"))
_MIX_INDEX = tl.constexpr(INDEX_COLUMNS.index("mix_index"))
# padding modes: rules.PADDING_CODES (positions in config.PADDING_MODES); the cutmix patch's is rules.PASTE_PADDING
_ZEROS = tl.constexpr(PADDING_CODES["zeros"])
_REFLECTION = tl.constexpr(PADDING_CODES["reflection"])
_PASTE_PADDING = tl.constexpr(PADDING_CODES[PASTE_PADDING])

# the kernel's MIX switch for each FrameTables.mix_mode (rules.MIX_MODES): none, a lambda (per clip or per
# frame: one per row either way) or the VideoMix box
_NO_MIX, _MIX_LAMBDA, _MIX_IN_BOX = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2)
_MIX = {None: _NO_MIX.value, "clip": _MIX_LAMBDA.value, "frame": _MIX_LAMBDA.value, "box": _MIX_IN_BOX.value}

# the default output tile and warps per program: the fastest of bench_render.py --tune on an H200 (BENCHMARKS.md)
BLOCK, NUM_WARPS = (8, 32), 2


@triton.jit
def _fold(v, n, PAD: tl.constexpr):
    """A source coordinate along an axis of ``n`` pixels after the padding rule: zeros leaves it,
    border clips it to [0, n - 1], reflection mirrors it about the centres 0 and n - 1, then clips.
    Restates ``grid_sample``'s ``padding_mode`` with ``align_corners=True`` (geometry.warp_frames); ``PAD`` is
    a rules.PADDING_CODES code."""
    hi = (n - 1).to(tl.float32)
    if PAD == _REFLECTION:
        v = tl.abs(v)
        flips = tl.floor(v * (1.0 / hi))
        extra = v - flips * hi
        odd = (flips - 2.0 * tl.floor(flips * 0.5)) > 0.5
        v = tl.where(odd, hi - extra, extra)
    if PAD != _ZEROS:     # border, and reflection after folding
        v = tl.minimum(tl.maximum(v, 0.0), hi)
    return v


@triton.jit
def _units(r, g, b):
    """int32 bytes (the low byte of ``r``, bits 8-15 of ``g``, bits 16-23 of ``b``) as the float32s
    ``1 + byte / 256``, placed straight into the mantissa: no int -> float conversion instruction
    (those run at 1/8 of the FMA rate)."""
    one = 0x3F800000
    return (((r << 15) & 0x7F8000) | one).to(tl.float32, bitcast=True), \
        (((g << 7) & 0x7F8000) | one).to(tl.float32, bitcast=True), \
        (((b >> 1) & 0x7F8000) | one).to(tl.float32, bitcast=True)


@triton.jit
def _tap(src_ptr, base, offset, plane, ok, weight, r, g, b, SOURCE: tl.constexpr):
    """Add ``weight`` x the source pixel at ``offset`` to the running (r, g, b). uint8 sources add
    ``weight * (1 + byte / 256)`` for every tap (0 where ``ok`` is False), so (r, g, b) end as
    ``sum(weight) + value / 256``: :func:`_bilinear` removes the sum once."""
    if SOURCE == 2:     # float planes
        r += weight * tl.load(src_ptr + base + offset, mask=ok, other=0).to(tl.float32)
        g += weight * tl.load(src_ptr + base + plane + offset, mask=ok, other=0).to(tl.float32)
        b += weight * tl.load(src_ptr + base + 2 * plane + offset, mask=ok, other=0).to(tl.float32)
    else:
        if SOURCE == 0:     # packed RGBx words
            word = tl.load(src_ptr + base + offset, mask=ok, other=0)
            ur, ug, ub = _units(word, word, word)
        else:               # uint8 planes
            ur, ug, ub = _units(tl.load(src_ptr + base + offset, mask=ok, other=0).to(tl.int32),
                                tl.load(src_ptr + base + plane + offset, mask=ok, other=0).to(tl.int32) << 8,
                                tl.load(src_ptr + base + 2 * plane + offset, mask=ok, other=0).to(tl.int32) << 16)
        r += weight * ur
        g += weight * ug
        b += weight * ub
    return r, g, b


@triton.jit
def _split(v, n):
    """Integer part (int32 and float) and fraction of the coordinate ``v`` along an axis of ``n``
    pixels, without float <-> int conversions: adding 1.5 * 2^23 rounds ``v - 0.5`` to an integer
    (at an exact integer ``v`` either neighbour may come out, with fraction 1 or 0: the same
    bilinear value). ``v`` is first clamped to [-2, n + 1], where every tap beyond is outside."""
    v = tl.minimum(tl.maximum(v, -2.0), n.to(tl.float32) + 1.0)
    t = (v - 0.5) + 12582912.0
    whole = t - 12582912.0
    return t.to(tl.int32, bitcast=True) - 0x4B400000, whole, v - whole


@triton.jit
def _bilinear(src_ptr, base, H, W, sx, sy, lane, SOURCE: tl.constexpr):
    """(r, g, b) of the source image at element offset ``base`` (int64) sampled bilinearly at
    (sx, sy); taps outside are zero. Restates ``grid_sample``'s bilinear read, ``align_corners=True``
    (geometry.warp_frames)."""
    x0, x0f, wx = _split(sx, W)
    y0, y0f, ny = _split(sy, H)
    ex = (x0f + 1.0) - sx
    sy_ = (y0f + 1.0) - sy
    in_x0 = (x0 >= 0) & (x0 < W)
    in_x1 = (x0 >= -1) & (x0 < W - 1)
    in_y0 = lane & (y0 >= 0) & (y0 < H)
    in_y1 = lane & (y0 >= -1) & (y0 < H - 1)
    plane = H * W
    offset = y0 * W + x0
    w00, w01, w10, w11 = sy_ * ex, sy_ * wx, ny * ex, ny * wx
    zero = tl.zeros_like(sx)
    r, g, b = _tap(src_ptr, base, offset, plane, in_y0 & in_x0, w00, zero, zero, zero, SOURCE)
    r, g, b = _tap(src_ptr, base, offset + 1, plane, in_y0 & in_x1, w01, r, g, b, SOURCE)
    r, g, b = _tap(src_ptr, base, offset + W, plane, in_y1 & in_x0, w10, r, g, b, SOURCE)
    r, g, b = _tap(src_ptr, base, offset + W + 1, plane, in_y1 & in_x1, w11, r, g, b, SOURCE)
    if SOURCE != 2:   # uint8: remove the 1 each tap carried (the caller scales by 256 / 255)
        total = (w00 + w01) + (w10 + w11)
        r -= total
        g -= total
        b -= total
    return r, g, b


@triton.jit
def _warp(src_ptr, row, base, H, W, xf, yf, lane, PAD: tl.constexpr, SOURCE: tl.constexpr):
    """Sample the source image at offset ``base`` at ``inv @ (x, y, 1)``, ``inv`` the 3x3 map at ``row``.
    Sampling grid: geometry.sampling_grid (the same point, in pixel rather than normalised coordinates)."""
    rden = 1.0 / (tl.load(row + 6) * xf + tl.load(row + 7) * yf + tl.load(row + 8))
    sx = (tl.load(row + 0) * xf + tl.load(row + 1) * yf + tl.load(row + 2)) * rden
    sy = (tl.load(row + 3) * xf + tl.load(row + 4) * yf + tl.load(row + 5)) * rden
    return _bilinear(src_ptr, base, H, W, _fold(sx, W, PAD), _fold(sy, H, PAD), lane, SOURCE)


@triton.jit
def _inside(row, xf, yf):
    """Pixel centres inside the box ``(x0, y0, x1, y1)`` at ``row``: x0 <= x < x1, y0 <= y < y1.
    Box rule: rules.box_mask, half-open."""
    return ((xf >= tl.load(row + 0)) & (xf < tl.load(row + 2))
            & (yf >= tl.load(row + 1)) & (yf < tl.load(row + 3)))


@triton.jit
def _frame(src_ptr, par_ptr, idx_ptr, clip, t, T, img_stride, frame_stride, H, W, xf, yf, lane, scale,
           PAD: tl.constexpr, SOURCE: tl.constexpr, HAS_PASTE: tl.constexpr, PER_FRAME: tl.constexpr):
    """Frame t of ``clip`` before mixing at the pixels (xf, yf): warp, paste, colour, clamp. The
    source of clip k starts at ``k * img_stride``, plus ``t * frame_stride`` for video sources
    (``PER_FRAME``; a constant so that the still-image kernel compiles as without it)."""
    row = par_ptr + (clip * T + t) * _ROW
    frame_base = t.to(tl.int64) * frame_stride if PER_FRAME else 0
    if HAS_PASTE:    # cutmix layering: rules.paste_layer (the patch inside paste_box, read with PASTE_PADDING)
        inside = _inside(row + _PASTE_BOX, xf, yf)
        r, g, b = _warp(src_ptr, row + _INVERSE, clip.to(tl.int64) * img_stride + frame_base, H, W, xf, yf,
                        lane & (inside == 0), PAD, SOURCE)
        partner = tl.load(idx_ptr + clip * _INDEX_ROW + _PASTE_INDEX)
        pr, pg, pb = _warp(src_ptr, row + _PASTE_INV, partner.to(tl.int64) * img_stride + frame_base, H, W,
                           xf, yf, lane & inside, _PASTE_PADDING, SOURCE)
        r = tl.where(inside, pr, r)
        g = tl.where(inside, pg, g)
        b = tl.where(inside, pb, b)
    else:
        r, g, b = _warp(src_ptr, row + _INVERSE, clip.to(tl.int64) * img_stride + frame_base, H, W, xf, yf,
                        lane, PAD, SOURCE)
    r = r * scale
    g = g * scale
    b = b * scale
    # colour map and clamp: render.apply_color; skipped where rules.identity_color (a uniform branch)
    if tl.load(row + _PLAIN_COLOR) == 0.0:
        c = row + _COLOR
        nr = tl.load(c + 0) * r + tl.load(c + 1) * g + tl.load(c + 2) * b + tl.load(c + 3)
        ng = tl.load(c + 4) * r + tl.load(c + 5) * g + tl.load(c + 6) * b + tl.load(c + 7)
        nb = tl.load(c + 8) * r + tl.load(c + 9) * g + tl.load(c + 10) * b + tl.load(c + 11)
    else:
        nr = r
        ng = g
        nb = b
    nr = tl.minimum(tl.maximum(nr, 0.0), 1.0)
    ng = tl.minimum(tl.maximum(ng, 0.0), 1.0)
    nb = tl.minimum(tl.maximum(nb, 0.0), 1.0)
    return nr, ng, nb


@triton.jit
def _store(ptr, p, v, lane, gain, shift, OUT_U8: tl.constexpr, NORMALIZE: tl.constexpr):
    """Write one channel: uint8 ``round(255 v)``, or the normalised ``v * gain + shift`` (gain =
    1 / std, shift = -mean / std) cast to the output's dtype. Adding 2^23 rounds to an integer
    half to even, as ``torch.round``, without a conversion instruction. Restates render.format_clips."""
    if OUT_U8:
        v = tl.minimum(tl.maximum(v * 255.0, 0.0), 255.0)
        v = (v + 8388608.0) - 8388608.0
    elif NORMALIZE:
        v = v * gain + shift
    tl.store(ptr + p, v.to(ptr.dtype.element_ty), mask=lane)


@triton.jit
def _render_kernel(out_ptr, src_ptr, par_ptr, idx_ptr, T, H, W, img_stride, frame_stride, scale,
                   out_sb, out_sc, out_st, gain0, gain1, gain2, shift0, shift1, shift2,
                   PAD: tl.constexpr, SOURCE: tl.constexpr, HAS_PASTE: tl.constexpr, MIX: tl.constexpr,
                   PER_FRAME: tl.constexpr, OUT_U8: tl.constexpr, NORMALIZE: tl.constexpr, BLOCK_H: tl.constexpr,
                   BLOCK_W: tl.constexpr):
    """One program: a BLOCK_H x BLOCK_W tile of frame t of clip b, all channels."""
    t = tl.program_id(1)
    b = tl.program_id(2)
    tiles_w = tl.cdiv(W, BLOCK_W)
    y = (tl.program_id(0) // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    x = (tl.program_id(0) % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    lane = (y < H) & (x < W)
    p = y * W + x
    xf = x.to(tl.float32)
    yf = y.to(tl.float32)
    own = lane
    # Mixup layering: rules.mix_layers (the partner inside mix_box, or lerp(partner, clip, lambda))
    if MIX == _MIX_IN_BOX:
        in_box = _inside(par_ptr + (b * T + t) * _ROW + _MIX_BOX, xf, yf)
        own = lane & (in_box == 0)
    r, g, bl = _frame(src_ptr, par_ptr, idx_ptr, b, t, T, img_stride, frame_stride, H, W, xf, yf, own, scale,
                      PAD, SOURCE, HAS_PASTE, PER_FRAME)
    if MIX != _NO_MIX:
        partner = tl.load(idx_ptr + b * _INDEX_ROW + _MIX_INDEX)
        if MIX == _MIX_LAMBDA:
            pr, pg, pb = _frame(src_ptr, par_ptr, idx_ptr, partner, t, T, img_stride, frame_stride, H, W,
                                xf, yf, lane, scale, PAD, SOURCE, HAS_PASTE, PER_FRAME)
            lam = tl.load(par_ptr + (b * T + t) * _ROW + _LAMBDA)
            r = pr + lam * (r - pr)
            g = pg + lam * (g - pg)
            bl = pb + lam * (bl - pb)
        else:
            pr, pg, pb = _frame(src_ptr, par_ptr, idx_ptr, partner, t, T, img_stride, frame_stride, H, W,
                                xf, yf, lane & in_box, scale, PAD, SOURCE, HAS_PASTE, PER_FRAME)
            r = tl.where(in_box, pr, r)
            g = tl.where(in_box, pg, g)
            bl = tl.where(in_box, pb, bl)
    base = out_ptr + b.to(tl.int64) * out_sb + t.to(tl.int64) * out_st
    _store(base, p, r, lane, gain0, shift0, OUT_U8, NORMALIZE)
    _store(base + out_sc, p, g, lane, gain1, shift1, OUT_U8, NORMALIZE)
    _store(base + 2 * out_sc, p, bl, lane, gain2, shift2, OUT_U8, NORMALIZE)


def parameter_tables(program: MotionProgram) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's inputs, built where the program lives: :meth:`pmg_dali.rules.FrameTables.packed`
    of the program's frame tables (params (B, T, NUM_PARAMS) float32, index (B, 2) int32)."""
    return frame_tables(program).packed()


def prepare_source(images: torch.Tensor, size: tuple[int, int], pack: bool) -> tuple[torch.Tensor, int, float]:
    """The kernel's source, its kind and scale: uint8 at ``size`` -> packed RGBx int32 words
    (B, H, W), kind 0 (``pack=False``: the uint8 planes, kind 1), scale 256/255 (the kernel reads
    bytes as byte / 256); else float32 planes
    (B, 3, H, W), kind 2, scale 1, resized exactly as the reference does when the size differs."""
    if tuple(images.shape[-2:]) != tuple(size) or images.dtype != torch.uint8:
        return reference._to_float(images, size).contiguous(), 2, 1.0   # checked by the caller
    if not pack:
        return images.contiguous(), 1, 256 / 255
    b, _, h, w = images.shape
    words = torch.empty(b, h, w, 4, dtype=torch.uint8, device=images.device)
    words[..., :3] = images.permute(0, 2, 3, 1)   # byte 3 is never read
    return words.view(torch.int32).view(b, h, w), 0, 256 / 255


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    if x.device == device:
        return x.contiguous()
    if x.device.type == "cpu" and device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device).contiguous()


def _check_device(device: torch.device) -> None:
    if engine("fused").runs_on(device):
        return
    raise RuntimeError(f"`render_fused` needs CUDA images (or TRITON_INTERPRET=1 set before Triton is "
                       f"imported, to run the kernel on CPU through Triton's interpreter), but the "
                       f"images are on {device}")


def render_fused(images: torch.Tensor, program: MotionProgram, cfg: PMGConfig, *,
                 out: torch.Tensor | None = None, block: tuple[int, int] = BLOCK, num_warps: int = NUM_WARPS,
                 pack: bool = True) -> torch.Tensor:
    """Render ``program`` from ``images`` like :func:`pmg_dali.render.render`, in one kernel.

    Args:
        images: (B, 3, H, W) uint8 (0-255) or float in [0, 1] on CUDA, any H, W (resized to
            ``cfg.size`` first, antialiased, exactly as the reference).
        program: the :class:`MotionProgram` of the B clips, on any device (keep it on the host:
            its small tables are built there and copied once).
        cfg: the configuration (size, padding, mixing, layout, dtype, normalisation).
        out: optional contiguous tensor of the output's shape, dtype and device to write into.
        block: (rows, columns) of the output tile one kernel instance renders, powers of two;
            num_warps: warps per program.
        pack: read uint8 sources as one RGBx word per pixel (else three byte planes).
    Returns:
        (B, 3, T, H, W) or (B, T, 3, H, W) clips in ``cfg.dtype`` on the images' device.
    """
    iterative = check_config(cfg, "cfg").recursion == "iterative"   # handed to the reference (it checks the pixels)
    reference.check_images(images, values=not iterative)
    reference.check_program(program, images, cfg)
    _check_block(block)
    out = output_buffer(out, cfg, images.shape[0], images.device)
    if iterative:
        return out.copy_(reference.render(images, program, cfg))
    return _render(images, 0, program, cfg, out, block, num_warps, pack)


def augment_fused(video: torch.Tensor, program: MotionProgram, cfg: PMGConfig, *,
                  out: torch.Tensor | None = None, block: tuple[int, int] = BLOCK, num_warps: int = NUM_WARPS,
                  pack: bool = True) -> torch.Tensor:
    """Pseudo-motion on real clips like :func:`pmg_dali.render.augment`, in one kernel: frame t of
    clip b is drawn from ``video[b, :, t]``. ``video``: (B, 3, T, H, W) uint8 (0-255) or float in
    [0, 1] on CUDA, T = ``program.num_frames``; the other arguments as :func:`render_fused`."""
    reference.check_program(program, cfg=cfg)
    _check_block(block)
    reference.check_video_program(video, program)
    reference.check_augment_config(cfg)
    b, c, t, h, w = video.shape
    out = output_buffer(out, cfg, b, video.device)
    return _render(video.transpose(1, 2).reshape(b * t, c, h, w), t, program, cfg, out, block, num_warps, pack)


def _check_block(block) -> None:
    if (not isinstance(block, tuple) or len(block) != 2
            or not all(isinstance(n, int) and 1 <= n <= 1024 and not n & (n - 1) for n in block)):
        raise ValueError(f"`block` must be (rows, columns), powers of two up to 1024, but got {block!r}")


def _render(images: torch.Tensor, frames: int, program: MotionProgram, cfg: PMGConfig, out: torch.Tensor,
          block: tuple[int, int], num_warps: int, pack: bool) -> torch.Tensor:
    """Prepare the source and tables and launch into ``out``. ``images``: (B, 3, H, W) still images
    (``frames`` 0) or the (B * T, 3, H, W) frames of B clips (``frames`` = T)."""
    _check_device(images.device)
    if program.batch_size == 0:
        return out
    src, kind, scale = prepare_source(images, cfg.size, pack)
    tables = frame_tables(program)
    params, index = (_to_device(x, images.device) for x in tables.packed())
    launch(out, src, kind, scale, params, index, cfg, tables.paste_index is not None, tables.mix_mode,
           block, num_warps, frames=frames)
    return out


def launch(out: torch.Tensor, src: torch.Tensor, kind: int, scale: float, params: torch.Tensor,
           index: torch.Tensor, cfg: PMGConfig, has_paste: bool, mix_mode: str | None, block: tuple[int, int],
           num_warps: int, frames: int = 0) -> None:
    """Launch the kernel on prepared inputs (what :func:`render_fused` does after its checks; the
    benchmark times it alone). ``mix_mode``: the tables' :attr:`~pmg_dali.rules.FrameTables.mix_mode`
    (one of :data:`~pmg_dali.rules.MIX_MODES`). ``frames``: 0 when ``src``
    holds one image per clip, T when it holds the T frames of each clip one after the other."""
    mix = _MIX[check_choice("mix_mode", mix_mode, MIX_MODES)]
    b, t, h, w = params.shape[0], params.shape[1], *cfg.size
    sc, st = (out.stride(1), out.stride(2)) if cfg.layout == "BCTHW" else (out.stride(2), out.stride(1))
    gain = [1 / s for s in cfg.std]
    shift = [-m / s for m, s in zip(cfg.mean, cfg.std)]
    per_image = src[0].numel()
    # Triton launches on the current device: make it the tensors' one (images on cuda:1, say)
    with torch.cuda.device(out.device) if out.device.type == "cuda" else contextlib.nullcontext():
        _render_kernel[(triton.cdiv(h, block[0]) * triton.cdiv(w, block[1]), t, b)](
            out, src, params, index, t, h, w, per_image * max(frames, 1), per_image if frames else 0, scale,
            out.stride(0), sc, st, *gain, *shift,
            PAD=PADDING_CODES[cfg.padding_mode], SOURCE=kind, HAS_PASTE=has_paste, MIX=mix, PER_FRAME=frames > 0,
            OUT_U8=cfg.dtype == torch.uint8, NORMALIZE=cfg.normalize, BLOCK_H=block[0], BLOCK_W=block[1],
            num_warps=num_warps)
