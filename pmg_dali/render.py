"""The reference torch renderer: motion program + images -> clips. Pure functions, no RNG.

This is the specification every other renderer (fused GPU, fast CPU, DALI) is tested against. The
default path makes one sampling grid for the whole (B, T) batch and one ``grid_sample`` call that
reads each source image once: the T frames of a clip are stacked along the height of one tall
output, so the source is never repeated T times.

Real clips (:func:`augment`): the same program applied to a video (B, 3, T, H, W), frame t warped and
coloured from the video's own frame t instead of the one still image -- pseudo-motion composed with the
real motion. Only the warp's source changes (:func:`warp_frames` takes either), so images and videos
share every other step.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_motion_program, env_flag
from .config import PMGConfig, check_config
from .geometry import warp_frames
from .program import MotionProgram
from .rules import PASTE_PADDING, mix_layers, paste_layer

__all__ = ["to_float_images", "to_float_video", "warp_frames", "paste_patches", "apply_color", "mix_clips",
           "format_clips", "render_clips", "render", "augment_clips", "augment"]


# Float pixels are checked to be finite and in [0, 1] (one reduction per batch; on CUDA it waits for the
# batch once, to read the result). PMG_DALI_CHECK_INPUTS=0 skips that value check, not the shape checks.
CHECK_INPUTS_VARIABLE = "PMG_DALI_CHECK_INPUTS"
RESIZE_CHUNK_BYTES = 64 << 20    # float32 copy made at a time when images are resized to the clip size


def check_images(images, name: str = "images", values: bool = True) -> None:
    """``images`` is a (B, 3, H, W) uint8 tensor, or float with every value finite and in [0, 1]
    (``values``; see :data:`CHECK_INPUTS_VARIABLE`)."""
    _check_rgb(images, name, "(B, 3, H, W)", values)


def check_video(video, name: str = "video", values: bool = True) -> None:
    """``video`` is a (B, 3, T, H, W) clip tensor, uint8 or float as :func:`check_images` asks."""
    _check_rgb(video, name, "(B, 3, T, H, W)", values)


def _check_rgb(x, name: str, shape: str, values: bool) -> None:
    """``x``: a uint8 or float tensor of ``shape`` (written out, e.g. "(B, 3, H, W)")."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, but got {type(x).__name__}")
    if x.ndim != shape.count(",") + 1 or x.shape[1] != 3:
        raise ValueError(f"`{name}` must have shape {shape}, but got {tuple(x.shape)}")
    if min(x.shape[-2:]) < 1:
        raise ValueError(f"`{name}` must have at least one pixel per frame, but got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise TypeError(f"`{name}` must be uint8 or floating point, but got {x.dtype}")
    if values and x.is_floating_point() and x.numel() and env_flag(CHECK_INPUTS_VARIABLE, True):
        low, high = torch.stack(torch.aminmax(x)).double().tolist()   # NaN anywhere makes both NaN
        if not 0 <= low <= high <= 1:
            found = "NaN values" if math.isnan(low) else f"values from {low:.6g} to {high:.6g}"
            hint = " (0-255 pixels? divide by 255, or pass uint8)" if 1 < high <= 255 else ""
            raise ValueError(f"`{name}` must be uint8 (0-255) or float with finite values in [0, 1], "
                             f"but got {x.dtype} {found}{hint}")


def check_program(program, images: torch.Tensor | None = None, cfg: PMGConfig | None = None,
                  values: bool = True) -> None:
    """``program`` is a :class:`MotionProgram`; with ``images`` (B, ...) it has one clip per image,
    with ``cfg`` (a :class:`PMGConfig`) it has ``cfg.num_frames`` frames; with ``values`` its tables are
    usable (:func:`check_program_values`)."""
    check_motion_program(program)
    if cfg is not None:
        check_config(cfg, "cfg")
    if images is not None and images.shape[0] != program.batch_size:
        raise ValueError(f"`images` must have one image per clip of the program, but got "
                         f"{images.shape[0]} images for {program.batch_size} clips")
    if cfg is not None and program.num_frames != cfg.num_frames:
        raise ValueError(f"`program` must have {cfg.num_frames} frames (config.num_frames), "
                         f"but got {program.num_frames}")
    if values:
        check_program_values(program)


MIN_DETERMINANT = 1e-30   # below it a homography's inverse leaves float32's range


def _determinant(m):
    """Determinants of (..., 3, 3) NumPy arrays or tensors, written out (a batched LAPACK call costs
    more than the whole check for these sizes)."""
    return (m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
            - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
            + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0]))


def check_program_values(program: MotionProgram) -> None:
    """Every float table of ``program`` is finite, every homography invertible (|det| >
    :data:`MIN_DETERMINANT`) and every partner index (``paste_index``, ``mix_index``) a clip of the
    batch: what a hand-made or edited program can break (drawn ones hold by construction). On the host
    in NumPy (tens of microseconds for a batch of 64); a CUDA program is checked with one reduction that
    waits for its tables."""
    fields = program.tensors()
    tables = {k: v for k, v in fields.items() if v.is_floating_point()}
    maps = [k for k in ("homography", "paste_homography") if k in tables]
    indices = {k: v.to(program.device) for k, v in fields.items() if k in ("paste_index", "mix_index")}
    b = program.batch_size
    if program.device.type == "cpu":
        tables = {k: v.numpy() for k, v in tables.items()}
        dets = [np.abs(_determinant(tables[k].astype(np.float64))) for k in maps]
        in_batch = [bool(((i >= 0) & (i < b)).all()) for i in (v.numpy() for v in indices.values())]
        if (np.isfinite(np.concatenate([t.ravel() for t in tables.values()])).all()
                and all((d > MIN_DETERMINANT).all() for d in dets) and all(in_batch)):
            return
        ok = ([bool(np.isfinite(t).all()) for t in tables.values()] + [bool((d > MIN_DETERMINANT).all()) for d in dets]
              + in_batch)
    else:
        ok = torch.stack([torch.isfinite(t).all() for t in tables.values()]
                         + [(_determinant(tables[k].double()).abs() > MIN_DETERMINANT).all() for k in maps]
                         + [((i >= 0) & (i < b)).all() for i in indices.values()]).tolist()
        if all(ok):
            return
    bad = [name for name, good in zip([*tables, *(f"{k} (invertible)" for k in maps)], ok) if not good]
    if bad:
        raise ValueError(f"`program` must hold finite tables and invertible homographies, but these are not: "
                         f"{', '.join(bad)}")
    name, index = next((k, v) for (k, v), good in zip(indices.items(), ok[-len(indices):]) if not good)
    wrong = sorted(set(index[(index < 0) | (index >= b)].tolist()))
    raise ValueError(f"`program.{name}` must hold indices of the batch's clips, in [0, {b}), but got {wrong}")


def output_buffer(out, cfg: PMGConfig, batch: int, device: torch.device) -> torch.Tensor:
    """``out`` checked to be a contiguous clip tensor of ``cfg``'s layout and dtype on ``device``,
    or a new one when None."""
    h, w = cfg.size
    shape = (batch, 3, cfg.num_frames, h, w) if cfg.layout == "BCTHW" else (batch, cfg.num_frames, 3, h, w)
    if out is None:
        return torch.empty(shape, dtype=cfg.dtype, device=device)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"`out` must be a torch.Tensor or None, but got {type(out).__name__}")
    if tuple(out.shape) != shape or out.dtype != cfg.dtype or out.device != device or not out.is_contiguous():
        raise ValueError(f"`out` must be a contiguous {cfg.dtype} tensor of shape {shape} on {device}, but got "
                         f"{'a contiguous' if out.is_contiguous() else 'a non-contiguous'} {out.dtype} "
                         f"tensor of shape {tuple(out.shape)} on {out.device}")
    return out


def to_float_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, H, W) uint8 (0-255) or float ([0, 1]) -> float32 in [0, 1] at ``size``.

    A different size is reached with antialiased bilinear resizing (``align_corners=False``).
    """
    check_images(images)
    return _to_float(images, size)


def _to_float(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """:func:`to_float_images` / :func:`to_float_video` of checked images or clips."""
    if images.ndim == 5:                        # (B, 3, T, H, W): every frame as an image
        b, c, t, h, w = images.shape
        frames = _to_float(images.transpose(1, 2).reshape(b * t, c, h, w), size)
        return frames.reshape(b, t, c, *size).transpose(1, 2)
    def unit(x: torch.Tensor) -> torch.Tensor:        # float32 in [0, 1]
        return x.float().div_(255) if x.dtype == torch.uint8 else x.float()

    if images.shape[0] == 0:
        return torch.zeros(0, 3, *size, dtype=torch.float32, device=images.device)
    if tuple(images.shape[-2:]) == tuple(size):
        return unit(images)
    # resized a few images at a time: large uint8 images never exist as one float32 batch (4x their bytes)
    out = torch.empty(images.shape[0], 3, *size, dtype=torch.float32, device=images.device)
    per = max(1, RESIZE_CHUNK_BYTES // (4 * images[0].numel()))
    for start in range(0, images.shape[0], per):
        out[start:start + per] = F.interpolate(unit(images[start:start + per]), size=size, mode="bilinear",
                                               antialias=True, align_corners=False).clamp_(0, 1)
    return out


def to_float_video(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, T, H, W) uint8 (0-255) or float ([0, 1]) -> float32 in [0, 1] at ``size``, every frame
    converted exactly as :func:`to_float_images` converts an image."""
    check_video(video)
    return _to_float(video, size)


def paste_patches(frames: torch.Tensor, images: torch.Tensor, program: MotionProgram) -> torch.Tensor:
    """Cutmix: inside ``paste_box[b, t]``, frame t of clip b shows ``images[paste_index[b]]`` (for a
    video source (B, C, T, H, W): its frame t) warped by ``paste_homography[b, t]``
    (:func:`pmg_dali.rules.paste_layer`). frames: (B, C, T, H, W) float; returns a new tensor."""
    if program.paste_index is None or frames.shape[0] == 0:
        return frames
    patches = warp_frames(images[program.paste_index.to(images.device)],
                          program.paste_homography, padding_mode=PASTE_PADDING)
    return paste_layer(frames, patches, program.paste_box)


def apply_color(frames: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """``clamp(color[b, t, :, :3] @ rgb + color[b, t, :, 3], 0, 1)`` per pixel.

    frames: (B, 3, T, H, W) float; color: (B, T, 3, 4). Returns a new tensor.
    """
    color = color.to(device=frames.device, dtype=frames.dtype)
    out = torch.einsum("btij,bjthw->bithw", color[..., :3], frames)
    out = out + color[..., 3].permute(0, 2, 1)[..., None, None]
    return out.clamp_(0, 1)


def mix_clips(clips: torch.Tensor, program: MotionProgram) -> torch.Tensor:
    """Frame Mixup (``lambda * clip + (1 - lambda) * partner`` on every frame) or VideoMix (the
    partner's pixels inside ``mix_box`` on every frame): :func:`pmg_dali.rules.mix_layers` with the
    partner ``clips[mix_index]``. clips: (B, C, T, H, W) float."""
    if program.mix_index is None or clips.shape[0] == 0:
        return clips
    partner = clips[program.mix_index.to(clips.device)]
    return mix_layers(clips, partner, program.mix_lambda, program.mix_box)


def format_clips(clips: torch.Tensor, cfg: PMGConfig) -> torch.Tensor:
    """(B, 3, T, H, W) float in [0, 1] -> ``cfg.dtype`` (uint8 0-255, or float normalised when
    ``cfg.normalize``) in ``cfg.layout``."""
    if cfg.dtype == torch.uint8:
        out = clips.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    else:
        out = clips
        if cfg.normalize:
            mean = torch.tensor(cfg.mean, device=clips.device, dtype=clips.dtype).view(1, 3, 1, 1, 1)
            std = torch.tensor(cfg.std, device=clips.device, dtype=clips.dtype).view(1, 3, 1, 1, 1)
            out = (out - mean) / std
        out = out.to(cfg.dtype)
    if cfg.layout == "BTCHW":
        out = out.permute(0, 2, 1, 3, 4)
    return out.contiguous()


def _render_iterative(src: torch.Tensor, program: MotionProgram, padding_mode: str) -> torch.Tensor:
    """The literal recursion: frame 0 from the source, frame t+1 = one step applied to frame t
    (resampled, colour-mapped and clamped every step). A Python loop over frames: a reference."""
    h = program.homography.to(device=src.device, dtype=torch.float64)
    c = torch.zeros(*program.color.shape[:2], 4, 4, dtype=torch.float64, device=src.device)
    c[..., :3, :] = program.color.to(device=src.device, dtype=torch.float64)
    c[..., 3, 3] = 1
    frame = apply_color(warp_frames(src, h[:, :1], padding_mode)[:, :, 0:1], c[:, :1, :3])[:, :, 0]
    frames = [frame]
    for t in range(1, h.shape[1]):
        geo_step = (h[:, t] @ torch.linalg.inv(h[:, t - 1]))[:, None]
        col_step = (c[:, t] @ torch.linalg.inv(c[:, t - 1]))[:, None, :3]
        frame = apply_color(warp_frames(frame, geo_step, padding_mode), col_step)[:, :, 0]
        frames.append(frame)
    return torch.stack(frames, dim=2)


def render_clips(images: torch.Tensor, program: MotionProgram, size: tuple[int, int],
                 padding_mode: str = "zeros", recursion: str = "composed") -> torch.Tensor:
    """Draw the unmixed clips of ``program`` from ``images``: (B, 3, T, H, W) float32 in [0, 1]."""
    src = to_float_images(images, size)
    check_program(program, src)
    if recursion == "iterative":
        clips = _render_iterative(src, program, padding_mode)
        if program.paste_index is not None:   # the patch is composited onto each frame, coloured
            pasted = apply_color(paste_patches(torch.zeros_like(clips), src, program), program.color)
            clips = paste_layer(clips, pasted, program.paste_box)
        return clips
    return _compose(src, program, padding_mode)


def _compose(src: torch.Tensor, program: MotionProgram, padding_mode: str) -> torch.Tensor:
    """The closed form: frame t = colour t of (paste t over warp t of the source), src (B, 3, H, W)
    or per frame (B, 3, T, H, W). Unmixed clips (B, 3, T, H, W)."""
    frames = warp_frames(src, program.homography, padding_mode)
    frames = paste_patches(frames, src, program)
    return apply_color(frames, program.color)


def render(images: torch.Tensor, program: MotionProgram, cfg: PMGConfig) -> torch.Tensor:
    """The full reference pipeline: warp + paste + colour -> mix -> normalise, dtype and layout (the
    program moved to the images' device)."""
    check_images(images, values=False)                 # before images.device; render_clips checks the values
    check_program(program, cfg=cfg, values=False)      # render_clips checks the tables
    program = program.to(images.device)
    clips = render_clips(images, program, cfg.size, cfg.padding_mode, cfg.recursion)
    return format_clips(mix_clips(clips, program), cfg)


def augment_clips(video: torch.Tensor, program: MotionProgram, size: tuple[int, int],
                  padding_mode: str = "zeros") -> torch.Tensor:
    """Pseudo-motion on real clips, unmixed: frame t of clip b is ``video[b, :, t]`` (resized to
    ``size`` like an image) warped by ``homography[b, t]``, cutmix-pasted from frame t of clip
    ``paste_index[b]`` and coloured by ``color[b, t]`` -- :func:`render_clips` with the source
    varying over t, so the program's motion is composed with the video's own.

    video: (B, 3, T, H, W) uint8 (0-255) or float in [0, 1] with T = ``program.num_frames``.
    Returns (B, 3, T, H, W) float32 in [0, 1].
    """
    check_program(program)                             # a MotionProgram with usable tables
    check_video_program(video, program)
    return _compose(_to_float(video, size), program, padding_mode)


def augment(video: torch.Tensor, program: MotionProgram, cfg: PMGConfig) -> torch.Tensor:
    """The full reference pipeline on real clips: :func:`augment_clips` -> mix (Mixup / VideoMix
    with the partner's augmented clip) -> normalise, dtype and layout, as :func:`render`.

    Only ``cfg.recursion="composed"``: the literal recursion ``I_{t+1} = f(I_t)`` resamples the
    previous *output* frame, which would discard every real frame after the first, so for real clips
    it has no meaning and raises ``ValueError`` (the composed form is also the exact one).
    """
    check_augment_config(cfg)
    check_video(video, values=False)                   # before video.device; augment_clips checks the values
    check_program(program, cfg=cfg, values=False)      # augment_clips checks the tables
    program = program.to(video.device)
    clips = augment_clips(video, program, cfg.size, cfg.padding_mode)
    return format_clips(mix_clips(clips, program), cfg)


def check_video_program(video, program: MotionProgram) -> None:
    """``video`` is a clip tensor with one clip per clip of ``program`` and its number of frames."""
    check_video(video)
    if video.shape[0] != program.batch_size or video.shape[2] != program.num_frames:
        raise ValueError(f"`video` must have shape (B, 3, T, H, W) with B = {program.batch_size} clips "
                         f"and T = {program.num_frames} frames (the program's), but got {tuple(video.shape)}")


def check_augment_config(cfg: PMGConfig) -> None:
    if check_config(cfg, "cfg").recursion != "composed":
        raise ValueError(f"`config.recursion` must be 'composed' to augment real clips (the literal "
                         f"recursion would replace frames 1.. by resampled frame 0), but got {cfg.recursion!r}")
