import dataclasses

import pytest
import torch

import pmg_dali
from pmg_dali import TRANSFORMS, PMGConfig, config
from pmg_dali.transforms import TABLE

OWNED = [(name, f) for name, record in TABLE.items() for f in record.fields]   # (transform, ConfigField)
# the fields no transform owns: the API contract's and the framing / padding / normalisation options
GENERAL = {"num_frames", "size", "transforms", "mixup", "mixup_alpha", "recursion", "layout", "dtype", "normalize",
           "mixup_per_frame", "framing", "min_view_area", "padding_mode", "mean", "std"}


def test_transforms_tuple():
    assert TRANSFORMS == ("identity", "sliding_window", "zoom", "fade",
                          "affine", "perspective", "color_jitter", "cutmix")
    assert config.TRANSFORMS is pmg_dali.transforms.TRANSFORMS


def test_every_intensity_field_is_owned_by_one_transform():
    """PMGConfig's fields are the general ones and those the transform records own, each owned once."""
    names = [f.name for _, f in OWNED]
    fields = {f.name for f in dataclasses.fields(PMGConfig)}
    assert len(names) == len(set(names)) and set(names) <= fields
    assert fields - set(names) == GENERAL


def _beyond(bound, direction):
    """A value just past ``bound`` (direction -1: below, +1: above)."""
    return bound + direction * max(abs(bound), 1) * 1e-6


@pytest.mark.parametrize("name, f", OWNED, ids=[f.name for _, f in OWNED])
def test_owned_fields_are_checked_within_their_record_bounds(name, f):
    """Each owned field accepts its record's bounds and refuses values just outside them, or of the wrong
    kind, naming the field (checked whether or not its transform is in use)."""
    def make(value):
        return PMGConfig(transforms=("identity",), **{f.name: value})

    if f.pair:
        assert getattr(make([f.low, f.high]), f.name) == (f.low, f.high)      # stored as a tuple
        outside = [(_beyond(f.low, -1), f.high), (f.low, _beyond(f.high, 1)), (f.high, f.low)]
        wrong_kind = f.high
    else:
        assert getattr(make(f.low), f.name) == f.low and getattr(make(f.high), f.name) == f.high
        outside = [_beyond(f.low, -1), _beyond(f.high, 1)]
        wrong_kind = (f.low, f.high)
    for value in outside:
        with pytest.raises(ValueError, match=f"`{f.name}`"):
            make(value)
    with pytest.raises(TypeError, match=f"`{f.name}`"):
        make(wrong_kind)


@pytest.mark.parametrize("name, f", [(n, f) for n, f in OWNED if f.compounds], ids=lambda x: getattr(x, "name", x))
def test_compounding_fields_are_bounded_for_the_transforms_in_use(name, f):
    """A field its record marks ``compounds`` (a per-step scale or colour gain) is refused when its power
    over the clip leaves [1e-6, 1e6] -- only when its transform is in use."""
    value = (f.high, f.high) if f.pair else f.high
    with pytest.raises(ValueError, match=f"`{f.name}` compounded over num_frames - 1 = 39 steps"):
        PMGConfig(transforms=(name,), num_frames=40, **{f.name: value})
    other = next(n for n in TRANSFORMS if n != name)
    assert getattr(PMGConfig(transforms=(other,), num_frames=40, **{f.name: value}), f.name) == value


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
