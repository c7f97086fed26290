"""Property test: any PMGConfig either is refused with an error naming a field, or renders finite
clips of the promised shape, dtype and range on the reference and CPU engines -- across every field's
documented range, its edges and beyond (NaN, infinities, tiny and huge values)."""
import math
import os
import re

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pmg_dali import TRANSFORMS, PMGConfig, PseudoMotion  # noqa: E402
from pmg_dali.config import DTYPES, FRAMINGS, MIXUPS, PADDING_MODES  # noqa: E402

ODD = [math.nan, math.inf, -math.inf, 0.0, -1e-9, 1e-9, 1e-30, 1e30, -5.0, 5.0]


def number(low, high):
    """Values of a field documented in [low, high], its edges included."""
    return st.one_of(st.floats(low, high), st.sampled_from([low, high]))


def pair(low, high):
    return st.tuples(number(low, high), number(low, high)).map(lambda p: tuple(sorted(p)))


# every field within its documented range
FIELDS = dict(
    num_frames=st.integers(1, 160),
    size=st.tuples(st.integers(2, 9), st.integers(2, 9)),
    transforms=st.lists(st.sampled_from(TRANSFORMS), min_size=1, max_size=3, unique=True).map(tuple),
    mixup=st.sampled_from(MIXUPS),
    mixup_alpha=number(1e-3, 100),
    dtype=st.sampled_from(DTYPES),
    normalize=st.booleans(),
    mixup_per_frame=st.booleans(),
    framing=st.sampled_from(FRAMINGS),
    min_view_area=number(1e-4, 1),
    padding_mode=st.sampled_from(PADDING_MODES),
    sliding_window_scale=pair(1e-3, 1),
    sliding_window_speed=pair(0, 1),
    zoom_scale=pair(0.5, 2),
    zoom_center=number(0, 1),
    fade_gain=pair(1e-3, 1),
    affine_degrees=number(0, 180),
    affine_translate=number(0, 1),
    affine_scale=pair(1e-3, 10),
    affine_shear=number(0, 45),
    perspective_distortion=number(0, 0.25),
    jitter_brightness=number(0, 0.99),
    jitter_contrast=number(0, 0.99),
    jitter_saturation=number(0, 0.99),
    jitter_hue=number(0, 0.5),
    cutmix_scale=pair(1e-3, 1),
    cutmix_speed=pair(0, 1),
    mean=st.tuples(number(-1, 2), number(-1, 2), number(-1, 2)),
    std=st.tuples(number(1e-6, 10), number(1e-6, 10), number(1e-6, 10)),
)
FLOATS = {name for name, strategy in FIELDS.items() if name not in
          ("num_frames", "size", "transforms", "mixup", "dtype", "normalize", "mixup_per_frame", "framing",
           "padding_mode")}


@st.composite
def configs(draw):
    """Documented values for some fields, and sometimes one float field given an odd value."""
    fields = draw(st.fixed_dictionaries({}, optional=FIELDS))
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(FLOATS)))
        odd = st.sampled_from(ODD)
        default = getattr(PMGConfig(), name)
        fields[name] = (draw(odd) if isinstance(default, float) else
                        tuple(draw(st.one_of(odd, st.just(v))) for v in default))
    return fields


@pytest.fixture(scope="module", autouse=True)
def no_canary():
    """The engines' self-check is tested elsewhere; here it would only re-run per drawn config."""
    before = os.environ.get("PMG_DALI_SKIP_ENGINE_CHECK")
    os.environ["PMG_DALI_SKIP_ENGINE_CHECK"] = "1"
    yield
    if before is None:
        del os.environ["PMG_DALI_SKIP_ENGINE_CHECK"]
    else:
        os.environ["PMG_DALI_SKIP_ENGINE_CHECK"] = before


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.integers(0, 2 ** 32 - 1))
def test_a_config_is_refused_by_name_or_renders_finite_clips(fields, seed):
    try:
        cfg = PMGConfig(**fields)
    except (ValueError, TypeError) as err:
        hypothesis.event(f"refused: {str(err)[:30]}")
        named = re.match(r"`(\w+)`", str(err))
        assert named and named.group(1) in FIELDS, f"{err} (fields {fields})"
        return
    hypothesis.event(f"rendered, {cfg.num_frames // 40 * 40}+ frames")
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (3, 3, 11, 7), dtype=torch.uint8, generator=g)
    program = PseudoMotion(cfg).sample(3, generator=g)
    h, w = cfg.size
    shape = (3, 3, cfg.num_frames, h, w) if cfg.layout == "BCTHW" else (3, cfg.num_frames, 3, h, w)
    for renderer in ("reference", "cpu"):
        clips = PseudoMotion(cfg, renderer=renderer)(images, program=program)
        assert clips.shape == shape and clips.dtype == cfg.dtype, renderer
        values = clips.double()
        assert torch.isfinite(values).all(), f"{renderer}: non-finite clips for {cfg}"
        if cfg.dtype == torch.uint8 or not cfg.normalize:
            top = 255 if cfg.dtype == torch.uint8 else 1
            assert values.min() >= 0 and values.max() <= top, renderer
        else:       # each channel within (0 - mean) / std .. (1 - mean) / std, up to the dtype's rounding
            channels = values.movedim(1 if cfg.layout == "BCTHW" else 2, 0).reshape(3, -1)
            for c, (m, s) in enumerate(zip(cfg.mean, cfg.std)):
                slack = 1e-2 * max(1.0, abs(m) / s, 1 / s)
                assert channels[c].min() >= -m / s - slack and channels[c].max() <= (1 - m) / s + slack, renderer
