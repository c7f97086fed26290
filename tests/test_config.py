import dataclasses

import pytest
import torch

import pmg_dali
from pmg_dali import TRANSFORMS, PMGConfig


def test_transforms_tuple():
    assert TRANSFORMS == ("identity", "sliding_window", "zoom", "fade",
                          "affine", "perspective", "color_jitter", "cutmix")


def test_defaults_follow_the_api():
    cfg = PMGConfig()
    assert cfg.num_frames == 16 and cfg.size == (224, 224)
    assert cfg.transforms == ("zoom", "affine") and cfg.mixup == "frame" and cfg.mixup_alpha == 1.0
    assert cfg.recursion == "composed" and cfg.layout == "BCTHW"
    assert cfg.dtype == torch.float32 and cfg.normalize is True


def test_frozen_and_replace_revalidates():
    cfg = PMGConfig(size=(96, 128), transforms=["fade"])
    assert cfg.size == (96, 128) and cfg.transforms == ("fade",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.num_frames = 3
    assert dataclasses.replace(cfg, num_frames=4).num_frames == 4
    assert cfg.replace(layout="BTCHW").layout == "BTCHW"
    with pytest.raises(ValueError, match="`layout`"):
        dataclasses.replace(cfg, layout="TCHW")


def test_single_transform_string_is_accepted():
    assert PMGConfig(transforms="zoom").transforms == ("zoom",)


@pytest.mark.parametrize("field, value, error", [
    ("num_frames", 0, ValueError),
    ("num_frames", 2.5, TypeError),
    ("size", 1, ValueError),
    ("size", (224,), TypeError),
    ("size", "224", TypeError),
    ("transforms", (), ValueError),
    ("transforms", ("zoom", "spin"), ValueError),
    ("transforms", ("zoom", "zoom"), ValueError),
    ("mixup", "cutmix", ValueError),
    ("mixup_alpha", 0.0, ValueError),
    ("mixup_alpha", "1", TypeError),
    ("recursion", "loop", ValueError),
    ("layout", "BHWC", ValueError),
    ("dtype", torch.int32, ValueError),
    ("dtype", "float32", TypeError),
    ("normalize", 1, TypeError),
    ("mixup_per_frame", "yes", TypeError),
    ("padding_mode", "wrap", ValueError),
    ("sliding_window_scale", (0.8, 0.5), ValueError),
    ("sliding_window_scale", 0.5, TypeError),
    ("sliding_window_speed", (-0.1, 0.1), ValueError),
    ("zoom_scale", (0.1, 1.0), ValueError),
    ("zoom_center", 1.5, ValueError),
    ("fade_gain", (0.9, 1.2), ValueError),
    ("affine_degrees", -1, ValueError),
    ("affine_translate", 2.0, ValueError),
    ("affine_scale", (1.2, 1.1), ValueError),
    ("affine_shear", 90, ValueError),
    ("perspective_distortion", 0.5, ValueError),
    ("jitter_brightness", 1.0, ValueError),
    ("jitter_hue", 0.6, ValueError),
    ("cutmix_scale", (0.0, 0.5), ValueError),
    ("cutmix_speed", (0.2, 0.1), ValueError),
    ("mean", (0.5, 0.5), ValueError),
    ("mean", ("a", 0, 0), TypeError),
    ("mean", 0.5, TypeError),
    ("std", (0.2, True, 0.2), TypeError),
    ("num_frames", True, TypeError),
    ("std", (0.2, 0.0, 0.2), ValueError),
])
def test_invalid_field_names_the_field(field, value, error):
    with pytest.raises(error, match=f"`{field}`"):
        PMGConfig(**{field: value})


def test_invalid_field_messages():
    with pytest.raises(TypeError, match=r"`mean` must be 3 numbers \(R, G, B\), but got \('a', 0, 0\)"):
        PMGConfig(mean=("a", 0, 0))
    with pytest.raises(ValueError, match="`mixup_alpha` must be a finite number, but got nan"):
        PMGConfig(mixup_alpha=float("nan"))
    with pytest.raises(ValueError, match=r"`affine_shear` must be in \[0, 45\], but got 90"):
        PMGConfig(affine_shear=90)
    with pytest.raises(ValueError, match=r"`zoom_scale` must satisfy 0.5 <= min <= max <= 2, but got \(0.1, 1.0\)"):
        PMGConfig(zoom_scale=(0.1, 1.0))


def test_pseudomotion_rejects_non_config():
    with pytest.raises(TypeError, match="`config`"):
        pmg_dali.PseudoMotion({"num_frames": 16})
