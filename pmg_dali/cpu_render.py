"""The fast CPU renderer: the reference semantics, drawn frame by frame so that every intermediate
stays in the CPU cache.

The reference renderer (:mod:`pmg_dali.render`) builds whole-batch intermediates -- a (B, T, H, W, 3)
grid numerator, a (B, 3, T, H, W) float clip, its colour-mapped copy, the gathered mixup partner and
the normalised copy -- each written to and read back from main memory. On one CPU thread those passes,
not the bilinear sampling, dominate. This renderer renders the B frames of one time step at a time
(each ~0.6 MB at 224², cache-resident), skips work the program does not need (the projective divide
for affine frames, the colour matrix where it is the identity, the paste outside its box) and writes
each output frame once, in place, in ``cfg.layout`` and ``cfg.dtype``.

Every step is the reference's own arithmetic on the same float32 values (the same grid formula,
``grid_sample`` call, clamp, ``lerp`` and normalisation), so the clips equal the reference's to the
bit except where a non-identity colour matrix is applied (one matrix product per frame instead of one
per batch; ~1e-7).

Threads: the time steps of a batch are independent, so they are the unit of parallelism. With
``torch.get_num_threads()`` = N > 1 the N threads of a small pool take the steps one at a time as they
come free, each running torch on one thread (the process's intra-op count is set to 1 for the call and
restored after). No step waits on another: on a shared machine a descheduled thread delays only the
step it holds, instead of every small kernel waiting at an OpenMP barrier for it (which made one busy
process beside the renderer cost 10x, BENCHMARKS.md). The clips are the same bits for every N.
It pays a fixed Python cost per frame, so for small frames the reference is faster;
``PseudoMotion(renderer="auto")`` picks accordingly (the measurements are in BENCHMARKS.md).
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from . import render as reference
from .config import PMGConfig, check_config
from .geometry import normalized_map
from .program import MotionProgram
from .rules import PASTE_PADDING, box_pixels, frame_tables

__all__ = ["render_cpu"]



class _Frames:
    """Host-side tensors shared by every frame: normalised inverse maps, grid axes, flags."""

    def __init__(self, program: MotionProgram, cfg: PMGConfig, device):
        h, w = cfg.size
        tables = frame_tables(program.to(device))
        self.cfg = cfg
        self.xs = torch.linspace(-1, 1, w, device=device)
        self.ys = torch.linspace(-1, 1, h, device=device)
        self.inv = normalized_map(tables.inverse, cfg.size)                           # (B, T, 3, 3)
        self.affine = _is_affine(self.inv)                                            # (B, T) bool
        self.color = tables.color
        self.plain_color = tables.plain_color.tolist()                                # (B, T) bool
        self.paste = None
        if tables.paste_index is not None:
            self.paste = (tables.paste_index.tolist(), normalized_map(tables.paste_inverse, cfg.size),
                          _pixel_ranges(tables.paste_box, cfg.size))
        self.mix_index = None if tables.mix_index is None else tables.mix_index.tolist()
        self.lam = tables.mix_lambda if tables.mix_mode in ("clip", "frame") else None
        self.mix_box = _pixel_ranges(tables.mix_box, cfg.size) if tables.mix_mode == "box" else None


def _is_affine(inv: torch.Tensor) -> list:
    """(B, T) nested lists: True where the map's last row is exactly (0, 0, 1), so the projective
    divide of the reference grid is a division by exactly 1 and can be skipped without changing a bit."""
    last = torch.tensor([0.0, 0.0, 1.0], device=inv.device)
    return (inv[..., 2, :] == last).all(-1).tolist()


def _pixel_ranges(box: torch.Tensor, size: tuple[int, int]) -> list:
    """Boxes (..., 4) ``(x0, y0, x1, y1)`` -> nested lists of integer ``(x0, y0, x1, y1)`` pixel
    ranges within the frame: the box rule as pixel ranges (rules.box_pixels)."""
    h, w = size
    lim = torch.tensor([w, h, w, h], dtype=box.dtype, device=box.device)
    return torch.minimum(box_pixels(box).clamp_min(0), lim).long().tolist()


def _grid(inv: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, affine: bool) -> torch.Tensor:
    """(1, h, w, 2) ``grid_sample`` grid of one frame: geometry.sampling_grid's formula, term for term
    (restated per frame, on a sub-range of pixels for the patch).

    ``inv`` (3, 3) maps normalised frame coordinates to normalised source coordinates; ``xs`` (w,)
    and ``ys`` (h,) are the normalised coordinates of the output pixels. The grid is computed as
    (2, h, w) planes (contiguous rows, vectorised) and handed to ``grid_sample`` as a strided view,
    which it reads without a copy.
    """
    rows = 2 if affine else 3
    num = torch.add((inv[:rows, 0, None] * xs)[:, None, :], (inv[:rows, 1, None] * ys)[:, :, None])
    num.add_(inv[:rows, 2, None, None])
    planes = num if affine else num[:2] / num[2:3]
    return planes.permute(1, 2, 0)[None]


def _frame(src: torch.Tensor, i: int, t: int, plan: _Frames) -> torch.Tensor:
    """Frame t of clip i before mixing: (3, H, W) float32 in [0, 1] (warp, paste, colour)."""
    frame = F.grid_sample(src[i:i + 1], _grid(plan.inv[i, t], plan.xs, plan.ys, plan.affine[i][t]),
                          mode="bilinear", padding_mode=plan.cfg.padding_mode, align_corners=True)[0]
    if plan.paste is not None:       # cutmix layering (rules.paste_layer): the patch drawn on its box only
        partner, inv, boxes = plan.paste
        x0, y0, x1, y1 = boxes[i][t]
        if x1 > x0 and y1 > y0:
            grid = _grid(inv[i, t], plan.xs[x0:x1], plan.ys[y0:y1], affine=False)
            frame[:, y0:y1, x0:x1] = F.grid_sample(src[partner[i]:partner[i] + 1], grid, mode="bilinear",
                                                   padding_mode=PASTE_PADDING, align_corners=True)[0]
    if plan.plain_color[i][t]:      # colour map and clamp: render.apply_color, skipped where the identity
        return frame.clamp_(0, 1)
    color = plan.color[i, t]
    out = torch.einsum("ij,jhw->ihw", color[:, :3], frame)
    return out.add_(color[:, 3, None, None]).clamp_(0, 1)


def _write(out: torch.Tensor, frames: list, i: int, t: int, plan: _Frames, tmp: torch.Tensor,
           mean: torch.Tensor, std: torch.Tensor) -> None:
    """Mix frame t of clip i with its partner (rules.mix_layers), format it (render.format_clips) and
    write it into ``out`` (3, H, W)."""
    own = frames[i]
    if plan.lam is not None:
        own = torch.lerp(frames[plan.mix_index[i]], own, plan.lam[i, t], out=tmp)
    elif plan.mix_box is not None:
        x0, y0, x1, y1 = plan.mix_box[i]
        own = tmp.copy_(own)
        own[:, y0:y1, x0:x1] = frames[plan.mix_index[i]][:, y0:y1, x0:x1]
    if plan.cfg.dtype == torch.uint8:
        out.copy_(torch.mul(own, 255, out=tmp).round_().clamp_(0, 255))
    elif plan.cfg.normalize:
        torch.div(torch.sub(own, mean, out=tmp), std, out=out)
    else:
        out.copy_(own)


def render_cpu(images: torch.Tensor, program: MotionProgram, cfg: PMGConfig,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """Render ``program`` from ``images`` like :func:`pmg_dali.render.render`, one frame at a time.

    Args:
        images: (B, 3, H, W) uint8 (0-255) or float in [0, 1], any H, W (resized to ``cfg.size``).
        program: the :class:`MotionProgram` of the B clips (any device; it is read on the host).
        cfg: the configuration (size, padding, mixing, layout, dtype, normalisation).
        out: optional contiguous tensor of the output's shape, dtype and device to write into
            (reusing one saves the first-touch page faults of a fresh ~77 MB float32 batch).
    Returns:
        (B, 3, T, H, W) or (B, T, 3, H, W) clips in ``cfg.dtype``, on the images' device.

    ``recursion="iterative"`` (the literal per-step resampling) is delegated to the reference.
    Designed for the CPU (a Python loop over frames drives per-frame torch kernels); it also runs
    on CUDA, where :func:`pmg_dali.fused.render_fused` is the fast path.
    """
    if check_config(cfg, "cfg").recursion == "iterative":   # handed to the reference (which checks its inputs)
        clips = reference.render(images, program, cfg)
        return reference.output_buffer(out, cfg, clips.shape[0], clips.device).copy_(clips)
    src = reference.to_float_images(images, cfg.size)
    b, t, (h, w) = src.shape[0], cfg.num_frames, cfg.size
    reference.check_program(program, src, cfg)
    out = reference.output_buffer(out, cfg, b, src.device)
    if b == 0:
        return out
    plan = _Frames(program, cfg, src.device)
    mean = torch.tensor(cfg.mean, device=src.device).view(3, 1, 1)
    std = torch.tensor(cfg.std, device=src.device).view(3, 1, 1)
    frame_view = (lambda i, k: out[i, :, k]) if cfg.layout == "BCTHW" else (lambda i, k: out[i, k])

    def step(k: int) -> None:          # time step k of every clip: independent of the other steps
        frames = [_frame(src, i, k, plan) for i in range(b)]
        tmp = src.new_empty(3, h, w)
        for i in range(b):
            _write(frame_view(i, k), frames, i, k, plan, tmp, mean, std)

    threads = min(torch.get_num_threads(), t) if src.device.type == "cpu" else 1
    if threads == 1:
        for k in range(t):
            step(k)
        return out
    modes = _thread_modes()                # torch's per-thread modes, re-entered in each pool thread

    def pooled(k: int) -> None:
        with modes():
            step(k)
    with _LOCK, _intra_op_threads(1):
        list(_pool(threads).map(pooled, range(t)))
    return out


def _thread_modes():
    """A context manager factory re-entering this thread's grad, inference and CPU autocast modes
    (torch keeps them per thread: a pool thread starts without them)."""
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    autocast, dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    @contextlib.contextmanager
    def modes():
        with torch.inference_mode(inference), torch.set_grad_enabled(grad), \
                torch.autocast("cpu", dtype=dtype, enabled=autocast):
            yield
    return modes


_LOCK = threading.Lock()       # one pooled render at a time: the intra-op thread count is process-wide
_POOL: list = [None, 0]        # [ThreadPoolExecutor, its size]


def _after_fork() -> None:
    """A forked child has none of the parent's pool threads, and may inherit the lock held."""
    global _LOCK
    _LOCK = threading.Lock()
    _POOL[:] = [None, 0]


os.register_at_fork(after_in_child=_after_fork)


def _pool(size: int) -> ThreadPoolExecutor:
    if _POOL[1] != size:
        if _POOL[0] is not None:
            _POOL[0].shutdown(wait=False)
        _POOL[:] = [ThreadPoolExecutor(size, thread_name_prefix="pmg_dali_cpu"), size]
    return _POOL[0]


@contextlib.contextmanager
def _intra_op_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
