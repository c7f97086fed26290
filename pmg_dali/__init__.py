"""pmg_dali: pseudo-motion video clips from still images, as batched GPU ops (torch and NVIDIA DALI).

Implements the Pseudo-Motion Generator of *Data Collection-free Masked Video Modeling*
(Ishikawa, Kondo, Aoki, ECCV 2024, arXiv 2409.06665).
"""
from .config import TRANSFORMS, PMGConfig
from .engine_check import check_engines
from .loader import PseudoMotionLoader
from .masks import tube_mask
from .module import PseudoMotion
from .program import MotionProgram
from .sources import ImageFolder, TensorImages
from .synthetic import SyntheticImages
from .targets import flow_targets, track_points, warp_boxes, warp_keypoints, warp_masks
from .version import __version__
from .video import VideoFolder

__all__ = ["__version__", "TRANSFORMS", "PMGConfig", "PseudoMotion", "MotionProgram", "tube_mask", "PseudoMotionLoader",
           "SyntheticImages", "ImageFolder", "TensorImages", "VideoFolder", "check_engines"]
__all__ += ["flow_targets", "track_points", "warp_masks", "warp_boxes", "warp_keypoints", "PseudoMotionAugmentation"]


def __getattr__(name):
    # kornia.augmentation takes seconds to import: the kornia interface is loaded on first use only.
    if name == "PseudoMotionAugmentation":
        from .kornia_aug import PseudoMotionAugmentation
        return PseudoMotionAugmentation
    raise AttributeError(f"module 'pmg_dali' has no attribute {name!r}")
