"""`MotionProgram`: the one representation every pseudo-motion transform compiles to."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .targets import flow_targets, track_points


@dataclass(frozen=True)
class MotionProgram:
    """Everything needed to render a batch of B clips of T frames; tensors only, no images.

    Geometry follows the package convention (:mod:`pmg_dali.geometry`): pixel centres at integer
    coordinates, origin at the top-left pixel centre, coordinates of the source *after* it has been
    resized to the output size. A frame is rendered as::

        warped  = source sampled at homography[b, t]^-1 @ (x, y, 1)        (bilinear)
        warped  = paste of partner image paste_index[b] through paste_homography[b, t]
                  inside paste_box[b, t], edge pixels replicated               (cutmix only)
        frame   = clamp(color[b, t, :, :3] @ rgb + color[b, t, :, 3], 0, 1)
        output  = mix_lambda[b] * frame + (1 - mix_lambda[b]) * (frame of clip mix_index[b])
                  (frame Mixup), or the partner's pixels inside mix_box[b] (VideoMix)

    Fields:
        homography: (B, T, 3, 3) float32, source -> frame t pixel map.
        color: (B, T, 3, 4) float32, per-frame affine colour map on RGB in [0, 1].
        transform: (B,) long, index into ``config.transforms`` of each clip's transform.
        paste_index: (B,) long or None: the batch image a clip's patch is cut from (cutmix).
        paste_homography: (B, T, 3, 3) float32 or None: partner source -> frame t map of the patch.
        paste_box: (B, T, 4) float32 or None: ``(x0, y0, x1, y1)`` frame pixel box of the patch;
            pixel (x, y) is inside when ``x0 <= x < x1`` and ``y0 <= y < y1``. Empty
            (all zeros) for clips that paste nothing.
        mix_index: (B,) long or None: partner clip of Mixup / VideoMix.
        mix_lambda: (B,) or (B, T) float32 or None: weight of the clip itself (for VideoMix, the
            fraction of its pixels kept).
        mix_box: (B, 4) float32 or None: VideoMix cuboid ``(x0, y0, x1, y1)``, the same for every
            frame, filled with the partner; None for frame Mixup.
    """

    homography: torch.Tensor
    color: torch.Tensor
    transform: torch.Tensor
    paste_index: torch.Tensor | None = None
    paste_homography: torch.Tensor | None = None
    paste_box: torch.Tensor | None = None
    mix_index: torch.Tensor | None = None
    mix_lambda: torch.Tensor | None = None
    mix_box: torch.Tensor | None = None

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            optional = f.default is None
            if not isinstance(value, torch.Tensor) and not (optional and value is None):
                raise TypeError(f"`{f.name}` must be a torch.Tensor{' or None' if optional else ''}, "
                                f"but got {type(value).__name__}")
        h = self.homography
        if h.ndim != 4 or h.shape[-2:] != (3, 3):
            raise ValueError(f"`homography` must have shape (B, T, 3, 3), but got {tuple(h.shape)}")
        b, t = h.shape[:2]
        expected = {"color": (b, t, 3, 4), "transform": (b,), "paste_index": (b,),
                    "paste_homography": (b, t, 3, 3), "paste_box": (b, t, 4), "mix_index": (b,),
                    "mix_box": (b, 4)}
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != shape:
                raise ValueError(f"`{name}` must have shape {shape}, but got {tuple(value.shape)}")
        for name in ("paste_index", "mix_index"):    # they pick clips: a float would be truncated on the GPU
            value = getattr(self, name)
            if value is not None and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
                raise TypeError(f"`{name}` must be an integer tensor, but got {value.dtype}")
        paste = [self.paste_index is None, self.paste_homography is None, self.paste_box is None]
        if len(set(paste)) != 1:
            raise ValueError("`paste_index`, `paste_homography` and `paste_box` must be given together")
        if (self.mix_index is None) != (self.mix_lambda is None):
            raise ValueError("`mix_index` and `mix_lambda` must be given together")
        if self.mix_lambda is not None and tuple(self.mix_lambda.shape) not in ((b,), (b, t)):
            raise ValueError(f"`mix_lambda` must have shape ({b},) or ({b}, {t}), "
                             f"but got {tuple(self.mix_lambda.shape)}")
        if self.mix_box is not None and self.mix_index is None:
            raise ValueError("`mix_box` needs `mix_index` and `mix_lambda`")

    @property
    def batch_size(self) -> int:
        return self.homography.shape[0]

    @property
    def num_frames(self) -> int:
        return self.homography.shape[1]

    @property
    def device(self) -> torch.device:
        return self.homography.device

    def __repr__(self) -> str:
        """The tables' shapes and dtypes, not their numbers (``program.tensors()`` has those)."""
        fields = ", ".join(f"{name}={tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
                           for name, value in self.tensors().items())
        return (f"MotionProgram(batch_size={self.batch_size}, num_frames={self.num_frames}, "
                f"device={str(self.device)!r}, {fields})")

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fields that are set, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}

    def flow(self, size) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward optical flow of the rendered clips, frame t -> t + 1, and its validity:
        ``(flow (B, T - 1, 2, H, W) float32 px, x then y; valid (B, T - 1, H, W) bool)`` for frames of
        ``size`` (int or (H, W), the config's). Frame t at p shows what frame t + 1 shows at
        ``p + flow[:, t, :, p]``. Layers, validity and Mixup: :func:`pmg_dali.targets.flow_targets`."""
        return flow_targets(self, size)

    def track(self, points: torch.Tensor, *, size=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Query points (B, N, 2) of frame 0 in every frame: ``(positions (B, T, N, 2) float32,
        visible (B, T, N) bool)``. Visible: not under a pasted patch / VideoMix box and, with ``size``
        (int or (H, W) of the frames), inside the frame. See :func:`pmg_dali.targets.track_points`."""
        return track_points(self, points, size)

    def to(self, device=None, non_blocking: bool = False) -> "MotionProgram":
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(self, **{k: v.to(device, non_blocking=non_blocking)
                                            for k, v in self.tensors().items()})
