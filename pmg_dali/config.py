"""`PMGConfig`: every knob of the Pseudo-Motion Generator, validated once at construction.

The paper (Ishikawa et al., ECCV 2024) does not publish its per-transform intensity ranges. The
defaults below are our own, chosen by eye on the preview GIF (``python -m pmg_dali demo``): small
per-step magnitudes, because the last of 16 frames is the step applied 15 times. Geometric
magnitudes are fractions of the frame side (resolution independent); the comments give the pixel
value at 224².
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

import torch

from ._checks import check_bool, check_choice, check_int, check_number, check_range
from .transforms import TABLE, TRANSFORMS

LAYOUTS = ("BCTHW", "BTCHW")
MIXUPS = (None, "frame", "videomix")
RECURSIONS = ("composed", "iterative")
PADDING_MODES = ("zeros", "border", "reflection")
FRAMINGS = ("inside", "whole")
DTYPES = (torch.uint8, torch.float32, torch.float16, torch.bfloat16)
MAX_COMPOUNDING = 1e6   # bound of a per-step scale or gain compounded over a clip (PMGConfig._check_compounding)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PMGConfig:
    """Configuration of the Pseudo-Motion Generator (frozen; use ``dataclasses.replace``).

    Args:
        num_frames: frames per clip T (>= 1).
        size: output frame size, ``int`` or ``(H, W)``; stored as ``(H, W)``.
        transforms: non-empty subset of :data:`TRANSFORMS` (the records of
            :data:`pmg_dali.transforms.TABLE`); one is drawn uniformly per clip.
        mixup: ``None``, ``"frame"`` (frame-wise Mixup: every frame of a clip mixed with the same
            frame of a partner clip, one lambda per clip) or ``"videomix"`` (a cuboid of the partner).
        mixup_alpha: lambda ~ Beta(alpha, alpha).
        mixup_per_frame: frame Mixup draws one lambda per frame instead of one per clip.
        recursion: ``"composed"`` renders frame t once from the source with the t-th power of the
            step; ``"iterative"`` resamples frame t-1 (the literal I_{t+1} = f(I_t), a reference).
        layout: ``"BCTHW"`` (VideoMAE, torchvision) or ``"BTCHW"`` (Hugging Face VideoMAE).
        dtype: ``torch.uint8`` (0-255, never normalised) or a float dtype.
        normalize: float output is ``(x - IMAGENET_MEAN) / IMAGENET_STD``; else in [0, 1].
        framing: where a clip's first view comes from. ``"inside"`` (default): affine and perspective
            clips start on a crop of the source placed so that every frame of the clip sees only image
            pixels (a camera framing part of a larger scene), and cutmix patches are cut between the
            partner's pixel centres: no frame shows padding (sliding_window and zoom always work this
            way). ``"whole"``: the literal behaviour -- the view starts on the whole image and may walk
            off it, showing ``padding_mode`` there. ``recursion="iterative"`` resamples frame t-1, whose
            content ends at its edges, so it shows padding under either framing.
        min_view_area: with ``"inside"`` framing, the smallest first view as a fraction of the image
            area (0.35, the smallest crop of :class:`pmg_dali.ImageFolder`'s random resized crop): a clip
            whose motion would need a smaller view moves less instead (its per-step intensity is scaled
            down in one step aimed at that area: on the default ranges every view keeps at least it;
            motions much stronger than the defaults land near it), so the framing never zooms far in.
        padding_mode: what the warp shows outside the source: ``"zeros"``, ``"border"``
            (replicate the edge pixel) or ``"reflection"`` (mirror about the edge pixel centre).

    Every number must be finite. Per-transform intensities (per step; the clip's value is drawn once,
    uniformly; each is owned by its transform's record in :data:`pmg_dali.transforms.TABLE`, which gives
    the bounds it is checked against); frame t applies the step t times, so for the transforms in use the
    scales (``zoom_scale``, ``affine_scale``) and colour gains (``1 + jitter_*``) raised to
    ``num_frames - 1`` must stay within [1e-6, 1e6] (:data:`MAX_COMPOUNDING`), and with ``normalize``
    the normalised values ``(v - mean) / std`` must fit ``dtype``:
        sliding_window_scale: window side as a fraction of the image side (0.5-0.8).
        sliding_window_speed: window speed, fraction of the side per frame (0.0025-0.0135: 0.5-3 px).
        zoom_scale: window scale per step; < 1 zooms in, > 1 zooms out (0.97-1.03).
        zoom_center: zoom centre drawn within this fraction of the side around the middle (0.5).
        fade_gain: brightness gain per step for fading out; fading in uses its inverse from a
            darkened first frame (0.90-0.97).
        affine_degrees: rotation per step, +-degrees (2).
        affine_translate: translation per step, +-fraction of the side (0.009: 2 px).
        affine_scale: isotropic scale per step (0.98-1.02).
        affine_shear: shear per step, +-degrees (1).
        perspective_distortion: per-step corner displacement, fraction of the side (0.01).
        jitter_brightness / jitter_contrast / jitter_saturation: per-step factor 1 +- value (0.03).
        jitter_hue: per-step hue rotation, +-fraction of a turn (0.01).
        cutmix_scale: pasted patch side as a fraction of the image side (0.2-0.5).
        cutmix_speed: patch speed, fraction of the side per frame (0.0025-0.0135).
    """

    num_frames: int = 16
    size: int | tuple[int, int] = 224
    transforms: tuple[str, ...] = ("zoom", "affine")
    mixup: str | None = "frame"
    mixup_alpha: float = 1.0
    recursion: str = "composed"
    layout: str = "BCTHW"
    dtype: torch.dtype = torch.float32
    normalize: bool = True
    # ---- keyword fields beyond the API contract --------------------------------------------
    mixup_per_frame: bool = False
    framing: str = "inside"
    min_view_area: float = 0.35
    padding_mode: str = "zeros"
    sliding_window_scale: tuple[float, float] = (0.5, 0.8)
    sliding_window_speed: tuple[float, float] = (0.0025, 0.0135)
    zoom_scale: tuple[float, float] = (0.97, 1.03)
    zoom_center: float = 0.5
    fade_gain: tuple[float, float] = (0.90, 0.97)
    affine_degrees: float = 2.0
    affine_translate: float = 0.009
    affine_scale: tuple[float, float] = (0.98, 1.02)
    affine_shear: float = 1.0
    perspective_distortion: float = 0.01
    jitter_brightness: float = 0.03
    jitter_contrast: float = 0.03
    jitter_saturation: float = 0.03
    jitter_hue: float = 0.01
    cutmix_scale: tuple[float, float] = (0.2, 0.5)
    cutmix_speed: tuple[float, float] = (0.0025, 0.0135)
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN, repr=False)
    std: tuple[float, float, float] = field(default=IMAGENET_STD, repr=False)

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        check_int("num_frames", self.num_frames, 1)
        set_("size", parse_size(self.size))
        transforms = (self.transforms,) if isinstance(self.transforms, str) else self.transforms
        if not isinstance(transforms, (tuple, list)) or len(transforms) == 0:
            raise ValueError(f"`transforms` must be a non-empty subset of {TRANSFORMS}, "
                             f"but got {self.transforms!r}")
        for name in transforms:
            if name not in TRANSFORMS:
                raise ValueError(f"`transforms` must be a non-empty subset of {TRANSFORMS}, "
                                 f"but got unknown transform {name!r}")
        if len(set(transforms)) != len(transforms):
            raise ValueError(f"`transforms` must not repeat a transform, but got {self.transforms!r}")
        set_("transforms", tuple(transforms))
        check_choice("mixup", self.mixup, MIXUPS)
        if not check_number("mixup_alpha", self.mixup_alpha) > 0:
            raise ValueError(f"`mixup_alpha` must be > 0, but got {self.mixup_alpha!r}")
        check_choice("recursion", self.recursion, RECURSIONS)
        check_choice("layout", self.layout, LAYOUTS)
        if not isinstance(self.dtype, torch.dtype):
            raise TypeError(f"`dtype` must be a torch.dtype, but got {self.dtype!r}")
        check_choice("dtype", self.dtype, DTYPES)
        for flag in ("normalize", "mixup_per_frame"):
            check_bool(flag, getattr(self, flag))
        check_choice("framing", self.framing, FRAMINGS)
        if not 1e-4 <= check_number("min_view_area", self.min_view_area) <= 1:
            raise ValueError(f"`min_view_area` must be in [0.0001, 1], but got {self.min_view_area!r}")
        check_choice("padding_mode", self.padding_mode, PADDING_MODES)
        for transform in TABLE.values():       # each transform's own fields, within its record's bounds
            for f in transform.fields:
                if f.pair:
                    set_(f.name, check_range(f.name, getattr(self, f.name), f.low, f.high))
                else:
                    check_number(f.name, getattr(self, f.name), f.low, f.high)
        for name in ("mean", "std"):
            value = getattr(self, name)
            if (not isinstance(value, (tuple, list))
                    or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
                raise TypeError(f"`{name}` must be 3 numbers (R, G, B), but got {value!r}")
            if len(value) != 3:
                raise ValueError(f"`{name}` must be 3 numbers (R, G, B), but got {value!r}")
            set_(name, tuple(float(v) for v in value))
            if not all(math.isfinite(v) for v in getattr(self, name)):
                raise ValueError(f"`{name}` must be 3 finite numbers (R, G, B), but got {value!r}")
        if min(self.std) <= 0:
            raise ValueError(f"`std` must be positive, but got {self.std!r}")
        if self.normalize and self.dtype.is_floating_point:    # (v - mean) / std for v in [0, 1] must fit
            largest = max(max(abs(m), abs(1 - m)) / s for m, s in zip(self.mean, self.std))
            if largest > torch.finfo(self.dtype).max:
                raise ValueError(f"`std` and `mean` give normalised values up to {largest:.3g}, beyond the "
                                 f"largest {self.dtype} ({torch.finfo(self.dtype).max:.6g}), but got "
                                 f"mean={self.mean!r}, std={self.std!r}")
        self._check_compounding()

    def _check_compounding(self) -> None:
        """A clip's frame t applies the per-step motion t times: a step's scale or colour gain
        compounded over ``num_frames - 1`` steps must stay within [1 / MAX_COMPOUNDING,
        MAX_COMPOUNDING], where the maps stay finite in float32 with room to spare (beyond it a frame
        would show the image shrunk or grown a million times, or colours pushed a million times past
        white). Checked for the transforms in use, on the fields their records mark ``compounds``."""
        steps = self.num_frames - 1
        for transform in (TABLE[name] for name in self.transforms):
            for name, pair in ((f.name, f.pair) for f in transform.fields if f.compounds):
                value = getattr(self, name)
                low, high = value if pair else (1 - value, 1 + value)     # a range of factors, or 1 +- value
                shrinks = not transform.colors     # a colour gain may fade to grey; a view may not vanish
                if high ** steps > MAX_COMPOUNDING or (shrinks and low ** steps < 1 / MAX_COMPOUNDING):
                    raise ValueError(
                        f"`{name}` compounded over num_frames - 1 = {steps} steps reaches "
                        f"{low ** steps:.3g} to {high ** steps:.3g}, outside [{1 / MAX_COMPOUNDING:g}, "
                        f"{MAX_COMPOUNDING:g}]: use a range closer to 1 or fewer frames, but got {name}="
                        f"{getattr(self, name)!r} with num_frames={self.num_frames}")

    def replace(self, **changes) -> "PMGConfig":
        """``dataclasses.replace(self, **changes)``."""
        return dataclasses.replace(self, **changes)


def check_config(value, name: str = "config") -> PMGConfig:
    """``value``, a :class:`PMGConfig`; TypeError naming the argument ``name`` otherwise."""
    if not isinstance(value, PMGConfig):
        raise TypeError(f"`{name}` must be a PMGConfig, but got {type(value).__name__}")
    return value


def parse_size(size) -> tuple[int, int]:
    """``int`` or ``(H, W)`` -> ``(H, W)``, each >= 2 (bilinear needs two pixel centres)."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size)):
        raise TypeError(f"`size` must be an int or a pair of ints (H, W), but got {size!r}")
    if min(size) < 2:
        raise ValueError(f"`size` must be at least 2 pixels on each side, but got {size!r}")
    return (int(size[0]), int(size[1]))
