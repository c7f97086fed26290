"""pmg_dali: pseudo-motion video clips from still images, as batched GPU ops (torch and NVIDIA DALI).

Implements the Pseudo-Motion Generator of *Data Collection-free Masked Video Modeling*
(Ishikawa, Kondo, Aoki, ECCV 2024, arXiv 2409.06665).
"""
from .config import TRANSFORMS, PMGConfig
from .loader import PseudoMotionLoader
from .masks import tube_mask
from .module import PseudoMotion
from .program import MotionProgram
from .sources import ImageFolder, TensorImages
from .synthetic import SyntheticImages
from .video import VideoFolder

__version__ = "0.1.0"
__all__ = ["TRANSFORMS", "PMGConfig", "PseudoMotion", "MotionProgram", "tube_mask", "PseudoMotionLoader",
           "SyntheticImages", "ImageFolder", "TensorImages", "VideoFolder"]
