"""Pseudo-motion as a kornia augmentation, for real clips in kornia's containers.

:class:`PseudoMotionAugmentation` is a ``kornia.augmentation.GeometricAugmentationBase2D`` that lives in a
``kornia.augmentation.VideoSequential`` (and so in ``AugmentationSequential`` beside stock kornia
augmentations): frame t of each clip is warped by its own homography ``homography[b, t]`` of a
pseudo-motion program, exactly as :meth:`pmg_dali.PseudoMotion.augment` warps it, and masks, boxes and
keypoints given to the container through ``data_keys`` follow with the same per-frame matrices::

    aug = kornia.augmentation.AugmentationSequential(
        kornia.augmentation.VideoSequential(
            PseudoMotionAugmentation(PMGConfig(num_frames=8, transforms=("affine", "perspective"), mixup=None)),
            kornia.augmentation.ColorJiggle(0.1, 0.1, 0.1, p=1.0),
            data_format="BCTHW"),
        data_keys=["input", "mask", "keypoints"])
    clips, masks, keypoints = aug(clips, masks, keypoints)   # (B, C, T, H, W), (B, 1, T, H, W), (B, T, N, 2)

Still images: a still image is a clip whose frames are all that image, so
``images[:, :, None].expand(-1, -1, T, -1, -1)`` through the same container gives pseudo-motion clips of
images (with their masks, boxes, keypoints); frame t then equals :class:`pmg_dali.PseudoMotion`'s frame t
for the same program. kornia's augmentation bases keep one sample shape per call (an input is
standardised to (B, C, H, W) and ``keepdim`` restores the input's rank), so no kornia augmentation can
turn a (B, C, H, W) image into a (B, C, T, H, W) clip itself.

Convention (kornia's geometric one, which is the package's): pixel centres at integer coordinates,
origin at the top-left pixel centre; ``transform_matrix`` maps input pixel coordinates to output pixel
coordinates. Row ``b * T + t`` of the flattened (B * T, C, H, W) frames that ``VideoSequential`` hands its
children is frame t of clip b, and its matrix is ``homography[b, t]``.
"""
from __future__ import annotations

from typing import Any

import torch
from kornia.augmentation import GeometricAugmentationBase2D
from kornia.augmentation.random_generator import RandomGeneratorBase
from kornia.constants import Resample

from .config import PMGConfig, check_config
from .program import MotionProgram
from .geometry import warp_frames
from .render import apply_color
from .sampling import sample_program
from .transforms import COLOR_TRANSFORMS, PASTE_TRANSFORMS

__all__ = ["PseudoMotionAugmentation", "PseudoMotionParameters"]


class PseudoMotionParameters(RandomGeneratorBase):
    """kornia parameter generator of pseudo-motion: one :class:`MotionProgram` per clip.

    ``forward((B, C, H, W))`` draws a program for B clips of ``config.num_frames`` frames at the frames'
    size (H, W) -- ``config.size`` is replaced by the input's -- and returns its fields as kornia
    parameters: ``"homography"`` (B, T, 3, 3), ``"color"`` (B, T, 3, 4), ``"transform"`` (B,).

    Randomness is kornia's: the numbers come from torch's default CPU generator, so ``torch.manual_seed``
    reproduces a draw (kornia has no per-instance generator) and ``forward(x, params=...)`` replays one.
    """

    def __init__(self, config: PMGConfig) -> None:
        super().__init__()
        self.config = config

    def make_samplers(self, device: torch.device, dtype: torch.dtype) -> None:
        # Programs are drawn on the host from torch's default CPU generator; nothing to build.
        pass

    def forward(self, batch_shape: tuple[int, ...], same_on_batch: bool = False) -> dict[str, torch.Tensor]:
        b, h, w = batch_shape[0], batch_shape[-2], batch_shape[-1]
        program = sample_program(self.config.replace(size=(h, w)), 1 if same_on_batch else b)
        params = {"homography": program.homography, "color": program.color, "transform": program.transform}
        if same_on_batch:
            params = {k: v.expand(b, *v.shape[1:]) for k, v in params.items()}
        return params

    def __repr__(self) -> str:
        return f"transforms={self.config.transforms}, num_frames={self.config.num_frames}"


class PseudoMotionAugmentation(GeometricAugmentationBase2D):
    """Pseudo-motion of real clips as a kornia augmentation: frame t of each clip warped (and, for fade /
    colour jitter, coloured) by frame t of a pseudo-motion program drawn per clip.

    Use it inside ``kornia.augmentation.VideoSequential`` with ``same_on_frame=True`` (its default): the
    container draws parameters once per clip (``generate_parameters`` at (B, C, H, W)) and hands the
    frames over as (B * T, C, H, W), which is what lets each frame take its own matrix of the clip's one
    program. Outside a ``VideoSequential``, or with ``same_on_frame=False``, frames cannot be told apart
    from clips and a call raises ``ValueError`` (unless ``config.num_frames`` is 1).

    Frame t of clip b is ``warp(frame, homography[b, t])`` -- bilinear, ``config.padding_mode`` outside the
    frame -- then, when ``config.transforms`` holds a colour transform, ``clamp(color[b, t] @ rgb, 0, 1)``
    on RGB in [0, 1]; geometric-only programs leave pixel values untouched (any float range). This is
    :meth:`pmg_dali.PseudoMotion.augment` frame for frame, before mixing and normalisation.

    Masks (``data_keys`` "mask") are warped with the same matrices, nearest-neighbour by default (kornia
    containers pass ``resample="nearest"``), zeros outside, never coloured; boxes and keypoints are mapped
    by the per-frame ``transform_matrix`` by kornia's own handlers (boxes: the transformed corners'
    enclosing box). ``p`` gates whole clips (the container repeats the gate over frames): a skipped clip
    keeps its frames and gets identity matrices.

    Args:
        config: a :class:`PMGConfig`; its ``num_frames`` must be the clips' T, its transforms, intensities
            and ``padding_mode`` are used, its ``size`` is replaced by the frames' (H, W). Cutmix and Mixup /
            VideoMix mix clips of a batch: kornia does that with its own mix augmentations
            (``RandomCutMixV2``, ``RandomMixUpV2``, which also mix the labels), so ``config`` must have
            neither (ValueError).
        p: probability of applying the pseudo-motion to a clip.
        keepdim: kornia's ``keepdim``.

    Attributes:
        transform_matrix: (B * T, 3, 3) per-frame matrices of the last call (kornia's).
    """

    def __init__(self, config: PMGConfig | None = None, p: float = 1.0, keepdim: bool = False) -> None:
        super().__init__(p=p, same_on_batch=False, keepdim=keepdim)
        config = PMGConfig(mixup=None) if config is None else check_config(config)
        if PASTE_TRANSFORMS & set(config.transforms) or config.mixup is not None:
            raise ValueError(f"`config` must have no 'cutmix' transform and mixup=None (use kornia's "
                             f"RandomCutMixV2 / RandomMixUpV2 in the container), but got "
                             f"transforms={config.transforms} and mixup={config.mixup!r}")
        self.config = config
        self._param_generator = PseudoMotionParameters(config)
        self.flags = {"resample": Resample.BILINEAR, "padding_mode": config.padding_mode,
                      "color": bool(COLOR_TRANSFORMS & set(config.transforms))}

    # ---- per-frame rows -------------------------------------------------------------------------
    def _rows(self, params: dict[str, torch.Tensor], key: str, rows: int) -> torch.Tensor:
        """``params[key]`` (R, T, ...) of each row's clip -> (rows, ...) of each row's own frame:
        row i is frame ``i % T`` of its clip."""
        value = params[key]
        t = value.shape[1]
        clips = int(params["forward_input_shape"][0])
        if rows != clips * t or value.shape[0] not in (rows, clips):
            raise ValueError(f"`input` must be the (B * T, C, H, W) frames of B = {clips} clips of T = {t} "
                             f"frames (config.num_frames) that VideoSequential(same_on_frame=True) passes, "
                             f"but got {rows} rows ({rows / max(clips, 1):g} per clip: a plain image batch, "
                             f"same_on_frame=False, or clips of another length than config.num_frames)")
        if value.shape[0] == clips:                 # parameters not yet repeated over the frames
            value = value.repeat_interleave(t, dim=0)
        index = torch.arange(rows, device=value.device)
        return value[index, index % t]

    def compute_transformation(self, input: torch.Tensor, params: dict[str, torch.Tensor],
                               flags: dict[str, Any]) -> torch.Tensor:
        """(B * T, 3, 3): frame row i's homography, input -> output pixel coordinates."""
        return self._rows(params, "homography", input.shape[0]).to(device=input.device, dtype=input.dtype)

    def _warp(self, input: torch.Tensor, transform: torch.Tensor, mode: str, padding_mode: str) -> torch.Tensor:
        """Each row of ``input`` (N, C, H, W) warped by its (N, 3, 3) source -> output matrix: the
        reference's :func:`pmg_dali.geometry.warp_frames`, each row a one-frame clip."""
        return warp_frames(input, transform[:, None], padding_mode, mode=mode)[:, :, 0]

    def apply_transform(self, input: torch.Tensor, params: dict[str, torch.Tensor], flags: dict[str, Any],
                        transform: torch.Tensor | None = None) -> torch.Tensor:
        if transform is None:
            transform = self.compute_transformation(input, params, flags)
        mode = Resample.get(flags["resample"]).name.lower()
        out = self._warp(input, transform, mode, flags["padding_mode"])
        if flags["color"] and out.shape[0] > 0:
            # the reference's colour map (pmg_dali.render.apply_color), each row a one-frame clip
            color = self._rows(params, "color", input.shape[0])
            out = apply_color(out[:, :, None], color[:, None])[:, :, 0]
        return out

    def apply_transform_mask(self, input: torch.Tensor, params: dict[str, torch.Tensor], flags: dict[str, Any],
                             transform: torch.Tensor | None = None) -> torch.Tensor:
        """Masks: the same warp as the frames (``flags["resample"]``, nearest in containers), zeros outside,
        no colour."""
        if transform is None:
            transform = self.compute_transformation(input, params, flags)
        mode = Resample.get(flags["resample"]).name.lower()
        return self._warp(input, transform.to(input.dtype), mode, "zeros")

    def inverse_transform(self, input: torch.Tensor, flags: dict[str, Any], transform: torch.Tensor | None = None,
                          size: tuple[int, int] | None = None) -> torch.Tensor:
        """kornia's inverse: the frames warped back by ``transform`` (the inverted per-frame matrices kornia
        passes). Only the geometry is undone: a colour map that clamped cannot be, and content that left
        the frame is lost (``padding_mode`` fills it)."""
        if transform is None:
            raise ValueError("`transform` must be the (B * T, 3, 3) inverse matrices, but got None")
        mode = Resample.get(flags["resample"]).name.lower()
        return self._warp(input, transform.to(input.dtype), mode, flags["padding_mode"])

    def motion_program(self, params: dict[str, torch.Tensor] | None = None) -> MotionProgram:
        """The :class:`MotionProgram` (B clips, geometry and colour) of ``params`` (default: the last
        call's), so that :meth:`MotionProgram.flow` / :meth:`MotionProgram.track` give the motion ground
        truth of what the container produced. A clip that ``p`` skipped gets identity maps."""
        params = self._params if params is None else params
        if "homography" not in params:
            raise RuntimeError("No parameters yet: call the augmentation (or its container) first, or pass `params`")
        clips = int(params["forward_input_shape"][0])
        h, c, kind = params["homography"], params["color"], params["transform"]
        if h.shape[0] != clips:                       # repeated over the frames by VideoSequential
            step = h.shape[0] // clips
            h, c, kind = h[::step], c[::step], kind[::step]
        gate = params.get("batch_prob")
        if gate is not None and not (self.p == 1.0 and self.p_batch == 1.0):
            gate = gate.reshape(-1)[:: max(gate.numel() // clips, 1)].to(h.device) > 0.5
            eye = torch.eye(3, dtype=h.dtype, device=h.device)
            h = torch.where(gate[:, None, None, None], h, eye)
            c = torch.where(gate[:, None, None, None], c, torch.eye(3, 4, dtype=c.dtype, device=c.device))
        return MotionProgram(homography=h.float().contiguous(), color=c.float().contiguous(),
                             transform=kind.long().contiguous())
