import dataclasses
import math

import cv2
import numpy as np
import pytest
import torch

from pmg_dali import TRANSFORMS, MotionProgram, PMGConfig, PseudoMotion
from pmg_dali.sampling import Draw, MotionParams, compile_program, drawn_for, sample_params, sample_program
from pmg_dali.transforms import (COLOR_TRANSFORMS, PASTE_TRANSFORMS, PROJECTIVE_TRANSFORMS, TABLE,
                                 sample_zoom, view_extent)

T, SIZE = 6, (40, 56)
SIDE = np.array([SIZE[1] - 1, SIZE[0] - 1], dtype=np.float64)      # (x, y) span of the pixel centres


def sample(transforms, b=32, seed=0, **kw):
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=transforms, **kw)
    return cfg, PseudoMotion(cfg).sample(b, generator=torch.Generator().manual_seed(seed))


def drawn(transforms, b=32, seed=0, **kw):
    """(cfg, the parameters drawn by name, the program compiled from them) for one seed."""
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=transforms, **kw)
    params = sample_params(cfg, b, torch.Generator().manual_seed(seed))
    return cfg, params, compile_program(cfg, params)


def steps(h):
    """(B, T-1, 3, 3) maps from frame t to frame t+1."""
    h = h.double()
    a = h[:, 1:] @ torch.linalg.inv(h[:, :-1])
    return a / a[..., 2:3, 2:3]          # homographies are defined up to scale


def assert_uniform(x, low, high, bins=8):
    """``x`` drawn uniformly in [low, high]: inside it, every 1/bins of it drawn about as often."""
    x = np.asarray(x, dtype=np.float64).ravel()
    assert x.min() >= low and x.max() <= high, (x.min(), x.max())
    counts = np.histogram(x, bins=bins, range=(low, high))[0]
    assert counts.min() > 0.6 * len(x) / bins, counts


def assert_velocity(params):
    """``velocity`` (x, y pixels per frame) is ``speed * slowdown`` (fractions of SIDE) along ``direction``."""
    heading = np.stack([np.cos(params["direction"]), np.sin(params["direction"])], -1)
    velocity = (params["speed"] * params["slowdown"])[:, None] * heading * SIDE
    np.testing.assert_allclose(params["velocity"], velocity, rtol=1e-12, atol=1e-12)


def framed_view(view, origin):
    """(B, 3, 3) from scratch: frame-0 pixel p shows the source pixel ``origin + view * p``."""
    m = np.zeros((len(view), 3, 3))
    m[:, 0, 0] = m[:, 1, 1] = 1 / view
    m[:, :2, 2] = -origin / view[:, None]
    m[:, 2, 2] = 1
    return m


def frames(step, first):
    """(B, T, 3, 3) ``step^t @ first`` by repeated products, normalised."""
    out = [first]
    for _ in range(T - 1):
        out.append(step @ out[-1])
    out = np.stack(out, 1)
    return out / out[..., 2:3, 2:3]


def assert_maps(homography, expected):
    torch.testing.assert_close(homography.double(), torch.from_numpy(expected), rtol=1e-5, atol=2e-4)


def test_shapes_and_dtypes():
    cfg, p = sample(TRANSFORMS, mixup="frame")
    assert p.homography.shape == (32, T, 3, 3) and p.homography.dtype == torch.float32
    assert p.color.shape == (32, T, 3, 4) and p.transform.dtype == torch.long
    assert p.paste_box.shape == (32, T, 4) and p.paste_homography.shape == (32, T, 3, 3)
    assert p.mix_lambda.shape == (32,) and p.mix_box is None
    _, p = sample(("zoom",), mixup=None)
    assert p.paste_index is None and p.mix_index is None
    _, p = sample(("zoom",), mixup="frame", mixup_per_frame=True)
    assert p.mix_lambda.shape == (32, T)
    _, p = sample(("zoom",), b=0)
    assert p.homography.shape == (0, T, 3, 3)


def test_every_transform_is_drawn_uniformly():
    _, p = sample(TRANSFORMS, b=4000)
    counts = torch.bincount(p.transform, minlength=len(TRANSFORMS)).float()
    assert counts.min() > 0.8 * 500 and counts.max() < 1.2 * 500


def test_same_generator_same_program_different_seed_differs():
    _, a = sample(TRANSFORMS, mixup="videomix")
    _, b = sample(TRANSFORMS, mixup="videomix")
    _, c = sample(TRANSFORMS, mixup="videomix", seed=1)
    for name, x in a.tensors().items():
        assert torch.equal(x, b.tensors()[name]), name
    assert not torch.equal(a.homography, c.homography)


def test_device_argument_moves_the_program():
    cfg, p = sample(("affine",))
    q = PseudoMotion(cfg).sample(32, generator=torch.Generator().manual_seed(0), device="cpu")
    assert torch.equal(p.homography, q.homography) and q.device.type == "cpu"


def test_lists_of_transforms_come_from_the_table():
    assert all(name == record.name for name, record in TABLE.items())
    assert list(TABLE) == list(TRANSFORMS) and TABLE["zoom"].sample is sample_zoom
    assert COLOR_TRANSFORMS == {"fade", "color_jitter"}
    assert PASTE_TRANSFORMS == {"cutmix"}                 # the program has one paste
    assert PROJECTIVE_TRANSFORMS == {"perspective"}


@pytest.mark.parametrize("b", [0, 1, 3])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_every_record_samples_named_batched_parameters_and_builds_its_maps(name, b, generator):
    """A record's sampler returns NumPy arrays with one row per clip (an empty batch included); its
    ``matrices`` give (B, 3, 3) / (B, 4, 4) maps, colour ones exactly when the record ``colors`` (programs
    without a colour transform skip the colour maps), a paste exactly when it ``pastes``."""
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=(name,))
    record = TABLE[name]
    params = record.sample(cfg, Draw(b, generator, torch.device("cpu")))
    assert all(isinstance(v, np.ndarray) and v.shape[:1] == (b,) for v in params.values()), params
    motion = record.matrices(cfg, params)
    for key, n in (("first", 3), ("step", 3), ("color_first", 4), ("color_step", 4)):
        value = getattr(motion, key)
        assert value is None or value.shape == (b, n, n), key
    colours = [m for m in (motion.color_first, motion.color_step) if m is not None]
    coloured = any(not np.allclose(m, np.eye(4)) for m in colours)
    assert coloured == record.colors or b == 0
    assert not colours or record.colors
    assert (motion.paste is not None) == record.pastes
    if record.pastes:
        assert motion.paste.box.shape == (b, T, 4) and motion.paste.first.shape == (b, 3, 3)


def test_program_is_compiled_from_the_parameters_without_drawing():
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=TRANSFORMS, mixup="videomix")
    g = torch.Generator().manual_seed(3)
    params = sample_params(cfg, 24, g)
    state = g.get_state()
    before = {n: {k: v.copy() for k, v in p.items()} for n, p in params.params.items()}
    a, b = compile_program(cfg, params), compile_program(cfg, params)
    program = sample_program(cfg, 24, generator=torch.Generator().manual_seed(3))
    for name, x in program.tensors().items():
        assert torch.equal(x, a.tensors()[name]) and torch.equal(x, b.tensors()[name]), name
    assert torch.equal(g.get_state(), state)                                 # compiling draws nothing
    for n, p in params.params.items():                                       # nor modifies its input
        assert all(np.array_equal(v, before[n][k]) for k, v in p.items()), n
    assert np.array_equal(params.transform, program.transform.numpy())
    rows, picked = params.picked("affine")
    assert np.array_equal(rows, np.flatnonzero(params.transform == TRANSFORMS.index("affine")))
    assert np.array_equal(picked["angle"], params["affine"]["angle"][rows])
    with pytest.raises(ValueError, match=r"`name` must be one of \('identity', 'sliding_window', .*\), but got 'spin'"):
        params.picked("spin")
    # the output format may differ; what the parameters were drawn for may not
    same = compile_program(cfg.replace(dtype=torch.uint8, layout="BTCHW", padding_mode="border"), params)
    assert torch.equal(same.homography, a.homography)
    with pytest.raises(ValueError, match="`params` were drawn for another config: num_frames, cutmix_scale differ"):
        compile_program(cfg.replace(num_frames=T + 1, cutmix_scale=(0.3, 0.4)), params)
    with pytest.raises(ValueError, match="`params` were drawn for another config: num_frames differ"):
        compile_program(cfg, dataclasses.replace(params, drawn_for=params.drawn_for[1:]))   # a record missing a field
    with pytest.raises(ValueError, match="`params` were drawn for another config: old_field differ"):
        compile_program(cfg, dataclasses.replace(params, drawn_for=params.drawn_for + (("old_field", 1),)))
    with pytest.raises(ValueError, match="drawn for another config: the form of `params.drawn_for` differ"):
        compile_program(cfg, dataclasses.replace(params, drawn_for=list(params.drawn_for)))   # not the tuple
    hand_made = dict(transform=params.transform, params=params.params, mix=params.mix, device=params.device)
    with pytest.raises(ValueError, match=r"`params.drawn_for` is empty: draw the parameters with sample_params"):
        compile_program(cfg, MotionParams(**hand_made))
    assert torch.equal(compile_program(cfg, MotionParams(**hand_made, drawn_for=drawn_for(cfg))).homography,
                       a.homography)
    with pytest.raises(TypeError, match="`params` must be MotionParams, but got dict"):
        compile_program(cfg, {})
    edited = [(params.transform.astype(float), TypeError, "`params.transform` must be an integer NumPy array, "
               "but got float64 array"),
              (list(params.transform), TypeError, "`params.transform` must be an integer NumPy array, but got list"),
              (params.transform[None], ValueError, r"`params.transform` must have shape \(B,\), but got \(1, "),
              (np.where(params.transform == 0, -1, params.transform), ValueError,    # -1 would pick the last one
               r"`params.transform` must hold indices into `cfg.transforms`, in \[0, 8\), but got \[-1\]"),
              (params.transform[:2], ValueError,
               r"`params\['sliding_window'\]\['window'\]` must have one row per clip \(2\), but got shape \(24,\)")]
    for transform, error, match in edited:
        with pytest.raises(error, match=match):
            compile_program(cfg, dataclasses.replace(params, transform=transform))
    with pytest.raises(ValueError, match=r"`params.mix\['partner'\]` must have one row per clip \(\d+\), but got "
                                         r"shape \(1,\)"):
        compile_program(cfg, dataclasses.replace(params, mix={**params.mix, "partner": params.mix["partner"][:1]}))
    with pytest.raises(TypeError, match="`cfg` must be a PMGConfig, but got str"):
        compile_program("default", params)
    with pytest.raises(TypeError, match="`cfg` must be a PMGConfig, but got NoneType"):
        sample_params(None, 2)


def test_draws_follow_the_documented_order():
    """The random stream, replayed draw by draw from the same seed: each clip's transform; every
    configured transform's parameters in ``cfg.transforms`` order, cutmix's (it pastes) last; the mix.
    Nothing else is drawn: the generators end in the same state."""
    b, (h, w) = 16, SIZE
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("cutmix", "zoom", "affine", "fade"), mixup="videomix")
    gen = torch.Generator().manual_seed(7)
    d = sample_params(cfg, b, gen)
    g = torch.Generator().manual_seed(7)

    def u(low, high, *shape):
        return low + (high - low) * torch.rand(b, *shape, generator=g, dtype=torch.float64).numpy()

    assert np.array_equal(d.transform, torch.randint(0, 4, (b,), generator=g).numpy())
    zoom, affine, fade, cutmix = d["zoom"], d["affine"], d["fade"], d["cutmix"]
    assert np.array_equal(zoom["scale"], u(0.97, 1.03))
    assert np.array_equal(zoom["center"], np.stack([(w - 1) * u(0.25, 0.75), (h - 1) * u(0.25, 0.75)], -1))
    assert np.array_equal(affine["angle"], u(-2.0, 2.0))
    assert np.array_equal(affine["translate"], u(-0.009, 0.009, 2) * SIDE)
    assert np.array_equal(affine["scale"], u(0.98, 1.02))
    assert np.array_equal(affine["shear"], u(-1.0, 1.0, 2))
    assert np.array_equal(affine["placement"], u(0, 1, 2))
    assert np.array_equal(fade["gain"], u(0.9, 0.97))
    assert np.array_equal(fade["fade_in"], u(0, 1) < 0.5)
    k = int(torch.randint(1, b, (1,), generator=g))
    assert np.array_equal(cutmix["partner"], (np.arange(b) + k) % b)
    assert np.array_equal(cutmix["scale"], u(0.2, 0.5))
    extent = np.array([w, h], dtype=np.float64)
    assert np.array_equal(cutmix["cut"], u(0, 1, 2) * (extent - 1 - cutmix["patch"]))
    assert np.array_equal(cutmix["direction"], u(0, 2 * math.pi))
    assert np.array_equal(cutmix["speed"], u(0.0025, 0.0135))
    u(0, 1, 2)                                                               # where the path starts
    k = int(torch.randint(1, b, (1,), generator=g))
    assert np.array_equal(d.mix["partner"], (np.arange(b) + k) % b)
    lam = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g))).beta(1.0, 1.0, size=b)
    centre = np.floor(u(0, w)), np.floor(u(0, h))
    box = d.mix["box"]
    cut = np.floor(np.sqrt(1 - lam)[:, None] * [w, h] + 0.5)                 # the VideoMix box around its centre
    assert np.array_equal(box[:, :2] + 0.5, np.clip(np.floor(np.stack(centre, -1) - cut / 2), 0, [w, h]))
    assert torch.equal(gen.get_state(), g.get_state())


@pytest.mark.parametrize("name", TRANSFORMS)
def test_recursion_is_one_step_applied_t_times(name):
    """Frame t+1 = f(frame t) with one f per clip: consecutive frames differ by a constant map."""
    _, p = sample((name,))
    a = steps(p.homography)
    torch.testing.assert_close(a, a[:, :1].expand_as(a), atol=2e-4, rtol=1e-4)
    c = torch.zeros(32, T, 4, 4, dtype=torch.float64)
    c[..., :3, :] = p.color.double()
    c[..., 3, 3] = 1
    cs = c[:, 1:] @ torch.linalg.inv(c[:, :-1])
    torch.testing.assert_close(cs, cs[:, :1].expand_as(cs), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["identity", "fade", "affine", "perspective", "color_jitter", "cutmix"])
def test_first_view_is_the_whole_image_with_whole_framing(name):
    _, p = sample((name,), framing="whole")
    torch.testing.assert_close(p.homography[:, 0], torch.eye(3).expand(32, 3, 3))
    if name in ("affine", "perspective"):           # nothing weakened, nothing placed
        _, d, _ = drawn((name,), framing="whole")
        framing = d[name]
        assert (framing["strength"] == 1).all() and (framing["view"] == 1).all()
        assert (framing["view_origin"] == 0).all() and (framing["placement"] == 0).all()


@pytest.mark.parametrize("name", ["affine", "perspective"])
@pytest.mark.parametrize("kw", [{}, dict(affine_degrees=10.0, affine_translate=0.05, perspective_distortion=0.05)])
def test_inside_framing_keeps_every_frame_inside_the_image(name, kw):
    """Every frame's corners (hence every pixel: a frame is a convex quadrilateral in the source) map
    between the source's pixel centres; the first view is a crop of at least min_view_area."""
    cfg, d, p = drawn((name,), b=512, **kw)
    c = frame_corners_in_source(p.homography)
    assert c[..., 0].min() >= -1e-3 and c[..., 0].max() <= SIZE[1] - 1 + 1e-3
    assert c[..., 1].min() >= -1e-3 and c[..., 1].max() <= SIZE[0] - 1 + 1e-3
    first = p.homography[:, 0].double()
    torch.testing.assert_close(first[:, 1, 1], first[:, 0, 0])                # a crop: scale + shift
    torch.testing.assert_close(first[:, [0, 1, 2, 2], [1, 0, 0, 1]], torch.zeros(512, 4, dtype=torch.float64))
    params = d[name]
    assert_maps(p.homography[:, 0], framed_view(params["view"], params["view_origin"]))
    view = params["view"]
    assert view.max() <= 1 + 1e-9 and view.min() ** 2 >= 0.35 * 0.85         # the fit lands near the floor
    assert_uniform(params["placement"], 0, 1)
    # the same draws without framing: the motion is kept whole unless it needed a view below 0.35
    cfg_whole, e, q = drawn((name,), b=512, framing="whole", **kw)
    raw = ("angle", "translate", "scale", "shear") if name == "affine" else ("shift",)
    assert all(np.array_equal(params[k], e[name][k]) for k in raw)
    needed = view_extent(TABLE[name].matrices(cfg_whole, e[name]).step, SIZE, T)[0]
    same = needed ** 2 >= 0.35
    assert same.mean() > 0.5
    assert (params["strength"][same] == 1).all() and (params["strength"][~same] < 1).all()
    assert (params["strength"] > 0).all()
    same = torch.from_numpy(same)
    torch.testing.assert_close(steps(p.homography)[same], steps(q.homography)[same], atol=2e-4, rtol=1e-4)


def test_inside_framing_weakens_only_motions_that_need_a_small_view():
    _, d, _ = drawn(("affine",), b=512, affine_degrees=10.0, min_view_area=0.6)
    params = d["affine"]
    weaker = params["strength"] < 1
    assert 0.2 < weaker.mean() < 1
    assert ((params["strength"] > 0) & (params["strength"] <= 1)).all()
    assert params["view"].min() ** 2 >= 0.6 * 0.7 and (params["view"][weaker] ** 2 < 0.95).all()  # near the floor
    assert_uniform(params["angle"], -10, 10)                                  # drawn as configured


def test_inside_framing_cutmix_samples_between_partner_pixel_centres():
    _, p = sample(("cutmix",), b=256, cutmix_scale=(0.5, 1.0))
    hh, ww = SIZE
    inv = torch.linalg.inv(p.paste_homography.double())
    ys, xs = torch.meshgrid(torch.arange(hh, dtype=torch.float64), torch.arange(ww, dtype=torch.float64),
                            indexing="ij")
    box = p.paste_box.double()[..., None, None]
    inside = (xs >= box[..., 0, :, :]) & (xs < box[..., 2, :, :]) & (ys >= box[..., 1, :, :]) & (ys < box[..., 3, :, :])
    src_x = inv[..., 0, 0, None, None] * xs + inv[..., 0, 1, None, None] * ys + inv[..., 0, 2, None, None]
    src_y = inv[..., 1, 0, None, None] * xs + inv[..., 1, 1, None, None] * ys + inv[..., 1, 2, None, None]
    assert inside.any(dim=(-1, -2)).all()
    assert src_x[inside].min() >= -1e-4 and src_x[inside].max() <= ww - 1 + 1e-4
    assert src_y[inside].min() >= -1e-4 and src_y[inside].max() <= hh - 1 + 1e-4


def test_geometry_free_transforms_keep_identity_geometry():
    for name in ("identity", "fade", "color_jitter", "cutmix"):
        _, p = sample((name,))
        torch.testing.assert_close(p.homography, torch.eye(3).expand(32, T, 3, 3))
    geometric = ("identity", "sliding_window", "zoom", "affine", "perspective", "cutmix")
    for name in geometric:                              # no colour transform in the config: shortcut
        _, p = sample((name,))
        torch.testing.assert_close(p.color, torch.eye(3, 4).expand(32, T, 3, 4))
    _, p = sample(TRANSFORMS, b=256)                    # colour maps computed, geometric clips picked
    picked = torch.isin(p.transform, torch.tensor([TRANSFORMS.index(n) for n in geometric]))
    assert 0 < picked.sum() < 256
    torch.testing.assert_close(p.color[picked], torch.eye(3, 4).expand(int(picked.sum()), T, 3, 4))


def frame_corners_in_source(h):
    """(B, T, 4, 2) source coordinates of the frame's corner pixel centres."""
    hh, ww = SIZE
    corners = torch.tensor([[0, 0, 1], [ww - 1, 0, 1], [ww - 1, hh - 1, 1], [0, hh - 1, 1]], dtype=torch.float64)
    src = torch.einsum("btij,kj->btki", torch.linalg.inv(h.double()), corners)
    return src[..., :2] / src[..., 2:]


@pytest.mark.parametrize("name", ["sliding_window", "zoom"])
def test_window_views_stay_inside_the_image(name):
    _, p = sample((name,), b=256)
    c = frame_corners_in_source(p.homography)
    assert c[..., 0].min() >= -1e-3 and c[..., 0].max() <= SIZE[1] - 1 + 1e-3
    assert c[..., 1].min() >= -1e-3 and c[..., 1].max() <= SIZE[0] - 1 + 1e-3


def test_sliding_window_parameters_and_maps():
    _, d, p = drawn(("sliding_window",), b=512)
    params = d["sliding_window"]
    r = params["window"]                                              # window side / image side
    assert_uniform(r, 0.5, 0.8)
    assert_uniform(params["speed"], 0.0025, 0.0135)
    assert_uniform(params["direction"], 0, 2 * math.pi)
    slowdown = params["slowdown"]
    assert ((slowdown > 0) & (slowdown <= 1)).all() and (slowdown == 1).mean() > 0.9
    assert_velocity(params)
    speed = np.hypot(*(params["velocity"] / SIDE).T)                  # source fraction per frame
    assert speed.max() <= 0.0135 + 1e-12 and np.median(speed) > 0.0025
    # the window's top-left corner moves along start + t * velocity, inside the image
    corner = params["start"][:, None] + np.arange(T)[None, :, None] * params["velocity"][:, None]
    assert corner.min() >= -1e-9 and (corner <= ((1 - r)[:, None] * SIDE)[:, None] + 1e-9).all()
    # frame t shows the window at that corner, full-frame (from scratch: scale 1 / r, then shift)
    expected = np.zeros((512, T, 3, 3))
    expected[..., 0, 0] = expected[..., 1, 1] = 1 / r[:, None]
    expected[..., :2, 2] = -corner / r[:, None, None]
    expected[..., 2, 2] = 1
    assert_maps(p.homography, expected)


def test_zoom_parameters_and_maps():
    _, d, p = drawn(("zoom",), b=512)
    s, center = d["zoom"]["scale"], d["zoom"]["center"]               # window scale per step, fixed point
    assert_uniform(s, 0.97, 1.03)
    assert_uniform(center / SIDE, 0.25, 0.75)                         # the middle half of each side
    zoom_in = torch.from_numpy(s < 1)
    assert zoom_in.any() and (~zoom_in).any()
    torch.testing.assert_close(p.homography[zoom_in, 0], torch.eye(3).expand(int(zoom_in.sum()), 3, 3))
    torch.testing.assert_close(p.homography[~zoom_in, -1], torch.eye(3).expand(int((~zoom_in).sum()), 3, 3))
    # frame t scales by s^-t about the centre, from the whole image (in) or towards it (out)
    t = np.arange(T)
    k = s[:, None] ** -t * np.where(s > 1, s ** (T - 1), 1.0)[:, None]          # (B, T)
    expected = np.zeros((512, T, 3, 3))
    expected[..., 0, 0] = expected[..., 1, 1] = k
    expected[..., :2, 2] = center[:, None] * (1 - k[..., None])
    expected[..., 2, 2] = 1
    assert_maps(p.homography, expected)


def test_fade_parameters_and_colours():
    _, d, p = drawn(("fade",), b=512)
    gain, fade_in = d["fade"]["gain"], d["fade"]["fade_in"]
    assert_uniform(gain, 0.9, 0.97)
    assert fade_in.dtype == bool and 0.4 < fade_in.mean() < 0.6
    t = np.arange(T)
    k = gain[:, None] ** np.where(fade_in[:, None], T - 1 - t, t)    # brightness of frame t
    expected = np.zeros((512, T, 3, 4))
    expected[..., [0, 1, 2], [0, 1, 2]] = k[..., None]
    torch.testing.assert_close(p.color.double(), torch.from_numpy(expected), rtol=1e-6, atol=1e-6)
    in_ = torch.from_numpy(fade_in)
    torch.testing.assert_close(p.color[in_, -1], torch.eye(3, 4).expand(int(in_.sum()), 3, 4))


def test_affine_parameters_within_their_ranges():
    _, d, _ = drawn(("affine",), b=512)
    params = d["affine"]
    assert_uniform(params["angle"], -2, 2)
    assert_uniform(params["translate"] / SIDE, -0.009, 0.009)
    assert_uniform(params["scale"], 0.98, 1.02)
    assert_uniform(params["shear"], -1, 1)
    assert ((params["strength"] > 0.5) & (params["strength"] <= 1)).all()     # default motions fit (nearly)


@pytest.mark.parametrize("kw", [dict(framing="whole"), dict(affine_degrees=10.0, affine_translate=0.05)])
def test_affine_maps_match_opencv(kw):
    """Frame t = step^t @ first, with step OpenCV's rotation + scale about the centre of the fitted
    ``strength`` times the drawn angle (``scale ** strength``) plus ``strength`` times the translation,
    and the first view the crop ``view`` / ``view_origin``."""
    cfg, d, p = drawn(("affine",), b=256, affine_shear=0.0, **kw)
    params = d["affine"]
    a = params["strength"]
    if kw.get("framing") != "whole":
        assert (a < 1).any()
    step = np.stack([np.vstack([cv2.getRotationMatrix2D(tuple(SIDE / 2), float(ai * angle), float(scale ** ai)),
                                [0, 0, 1]]) for ai, angle, scale in zip(a, params["angle"], params["scale"])])
    step[:, :2, 2] += a[:, None] * params["translate"]
    assert_maps(p.homography, frames(step, framed_view(params["view"], params["view_origin"])))


@pytest.mark.parametrize("kw", [{}, dict(perspective_distortion=0.05)])
def test_perspective_parameters_and_maps_match_opencv(kw):
    """Each step moves the image corners by ``strength * shift`` (OpenCV's four-point solver)."""
    _, d, p = drawn(("perspective",), b=256, **kw)
    params = d["perspective"]
    shift, a = params["shift"], params["strength"]
    assert shift.shape == (256, 4, 2)
    assert_uniform(shift / SIDE, -kw.get("perspective_distortion", 0.01), kw.get("perspective_distortion", 0.01))
    corners = np.array([[0, 0], [SIDE[0], 0], SIDE, [0, SIDE[1]]], dtype=np.float32)
    step = np.stack([cv2.getPerspectiveTransform(corners, (corners + ai * s).astype(np.float32))
                     for ai, s in zip(a, shift)])
    assert_maps(p.homography, frames(step, framed_view(params["view"], params["view_origin"])))


def test_color_jitter_parameters_and_brightness_colours():
    _, d, _ = drawn(("color_jitter",), b=512)
    params = d["color_jitter"]
    for name in ("brightness", "contrast", "saturation"):
        assert_uniform(params[name], 0.97, 1.03)
    assert_uniform(params["hue"], -0.01, 0.01)
    _, d, p = drawn(("color_jitter",), b=64, jitter_brightness=0.2, jitter_contrast=0.0, jitter_saturation=0.0,
                    jitter_hue=0.0)
    k = d["color_jitter"]["brightness"][:, None] ** np.arange(T)            # brightness alone: gain^t
    expected = np.zeros((64, T, 3, 4))
    expected[..., [0, 1, 2], [0, 1, 2]] = k[..., None]
    torch.testing.assert_close(p.color.double(), torch.from_numpy(expected), rtol=1e-6, atol=1e-6)


def test_cutmix_patch_moves_rigidly_inside_the_frame():
    _, p = sample(("cutmix",), b=128)
    box = p.paste_box.double()
    hh, ww = SIZE
    assert box[..., 0].min() >= -0.5 - 1e-4 and box[..., 2].max() <= ww - 0.5 + 1e-4
    assert box[..., 1].min() >= -0.5 - 1e-4 and box[..., 3].max() <= hh - 0.5 + 1e-4
    side = (box[..., 2] - box[..., 0]) / ww
    assert side.min() >= 0.2 - 1e-5 and side.max() <= 0.5 + 1e-5
    velocity = box[:, 1:, :2] - box[:, :-1, :2]
    torch.testing.assert_close(velocity, velocity[:, :1].expand_as(velocity), atol=1e-4, rtol=0)
    # the patch content moves with the box: the box corner maps back to the same partner point
    corner = torch.cat([box[..., :2], torch.ones_like(box[..., :1])], -1)
    src = torch.einsum("btij,btj->bti", torch.linalg.inv(p.paste_homography.double()), corner)
    torch.testing.assert_close(src, src[:, :1].expand_as(src), atol=1e-3, rtol=0)
    assert (p.paste_index != torch.arange(128)).all()


@pytest.mark.parametrize("framing", ["inside", "whole"])
def test_cutmix_parameters_and_paste(framing):
    _, d, p = drawn(("cutmix",), b=512, framing=framing)
    params = d["cutmix"]
    extent = np.array([SIZE[1], SIZE[0]], dtype=np.float64)
    assert_uniform(params["scale"], 0.2, 0.5)
    assert_uniform(params["speed"], 0.0025, 0.0135)
    assert_uniform(params["direction"], 0, 2 * math.pi)
    patch = params["scale"][:, None] * extent
    np.testing.assert_allclose(params["patch"], np.minimum(patch, extent - 1) if framing == "inside" else patch)
    lowest = 0.0 if framing == "inside" else -0.5                     # the cut inside the partner
    highest = extent - 1 - params["patch"] if framing == "inside" else extent - 0.5 - params["patch"]
    assert (params["cut"] >= lowest).all() and (params["cut"] <= highest + 1e-9).all()
    partner = params["partner"]
    assert partner.dtype == np.int64 and (partner != np.arange(512)).all()
    assert np.array_equal(partner, (np.arange(512) + partner[0]) % 512)   # one cyclic shift
    assert ((params["slowdown"] > 0) & (params["slowdown"] <= 1)).all()
    assert_velocity(params)
    # the program pastes the partner's cut at origin + t * velocity, the box inside the frame
    top_left = params["origin"][:, None] + np.arange(T)[None, :, None] * params["velocity"][:, None]
    box = np.concatenate([top_left, top_left + params["patch"][:, None]], -1)
    torch.testing.assert_close(p.paste_box.double(), torch.from_numpy(box), atol=1e-4, rtol=1e-6)
    assert top_left.min() >= -0.5 - 1e-9 and (box[..., 2:] <= extent - 0.5 + 1e-9).all()
    shift = np.zeros((512, T, 3, 3))
    shift[..., [0, 1, 2], [0, 1, 2]] = 1
    shift[..., :2, 2] = top_left - params["cut"][:, None]
    torch.testing.assert_close(p.paste_homography.double(), torch.from_numpy(shift), atol=1e-4, rtol=1e-6)
    assert torch.equal(p.paste_index, torch.from_numpy(partner))


def test_cutmix_box_is_empty_for_other_transforms():
    _, p = sample(("zoom", "cutmix"), b=64)
    other = p.transform == 0
    assert other.any() and (p.paste_box[other] == 0).all()
    assert (p.paste_box[~other, :, 2] > p.paste_box[~other, :, 0]).all()


def test_mixup_partner_and_lambda():
    _, d, p = drawn(("zoom",), b=2000, mixup="frame", mixup_alpha=0.5)
    partner, lam = d.mix["partner"], d.mix["lam"]
    assert (partner != np.arange(2000)).all()
    assert sorted(partner.tolist()) == list(range(2000))              # a permutation
    assert lam.min() >= 0 and lam.max() <= 1
    assert abs(lam.mean() - 0.5) < 0.03 and abs(lam.var() - 1 / 8) < 0.015  # Beta(0.5, 0.5)
    assert d.mix["box"] is None and p.mix_box is None
    assert torch.equal(p.mix_index, torch.from_numpy(partner))
    assert torch.equal(p.mix_lambda, torch.from_numpy(lam).float())


def test_videomix_box_area_matches_lambda():
    cfg, p = sample(("zoom",), b=200, mixup="videomix")
    box = p.mix_box.double()
    area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]) / (SIZE[0] * SIZE[1])
    torch.testing.assert_close(p.mix_lambda.double(), 1 - area, atol=1e-6, rtol=0)
    assert (box == box.round() - 0.5).all() or torch.allclose(box + 0.5, (box + 0.5).round())


def test_sample_argument_errors():
    gen = PseudoMotion(PMGConfig(num_frames=T, size=SIZE))
    with pytest.raises(TypeError, match="`batch_size`"):
        gen.sample(2.0)
    with pytest.raises(ValueError, match="`batch_size`"):
        gen.sample(-1)
    with pytest.raises(TypeError, match="`generator`"):
        gen.sample(2, generator=np.random.default_rng(0))
    with pytest.raises(TypeError, match="`batch_size` must be an int, but got True"):
        gen.sample(True)
    with pytest.raises(ValueError, match="`batch_size`"):
        sample_params(gen.config, -1)
    with pytest.raises(TypeError, match="`generator`"):
        sample_params(gen.config, 2, generator=np.random.default_rng(0))


def test_sample_accepts_numpy_ints():
    gen = PseudoMotion(PMGConfig(num_frames=T, size=SIZE))
    a = gen.sample(np.int64(2), generator=torch.Generator().manual_seed(3))
    b = gen.sample(2, generator=torch.Generator().manual_seed(3))
    assert a.batch_size == 2
    assert a.tensors().keys() == b.tensors().keys()
    assert all(torch.equal(a.tensors()[k], v) for k, v in b.tensors().items())


def test_motion_program_validates_shapes():
    h = torch.eye(3).expand(2, 4, 3, 3)
    with pytest.raises(ValueError, match="`homography`"):
        MotionProgram(homography=h[0], color=torch.zeros(2, 4, 3, 4), transform=torch.zeros(2))
    with pytest.raises(ValueError, match="`color`"):
        MotionProgram(homography=h, color=torch.zeros(2, 4, 3, 3), transform=torch.zeros(2))
    with pytest.raises(ValueError, match="`mix_index` and `mix_lambda`"):
        MotionProgram(homography=h, color=torch.zeros(2, 4, 3, 4), transform=torch.zeros(2),
                      mix_index=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="`paste_index`"):
        MotionProgram(homography=h, color=torch.zeros(2, 4, 3, 4), transform=torch.zeros(2),
                      paste_index=torch.zeros(2, dtype=torch.long))


def test_motion_program_rejects_non_tensor_fields():
    h = torch.eye(3).expand(2, 4, 3, 3)
    with pytest.raises(TypeError, match="`color` must be a torch.Tensor, but got str"):
        MotionProgram(homography=h, color="x", transform=torch.zeros(2))
    with pytest.raises(TypeError, match="`homography` must be a torch.Tensor, but got list"):
        MotionProgram(homography=h.tolist(), color=torch.zeros(2, 4, 3, 4), transform=torch.zeros(2))
    with pytest.raises(TypeError, match="`mix_lambda` must be a torch.Tensor or None, but got float"):
        MotionProgram(homography=h, color=torch.zeros(2, 4, 3, 4), transform=torch.zeros(2),
                      mix_index=torch.zeros(2, dtype=torch.long), mix_lambda=0.5)


@pytest.mark.gpu
def test_program_is_the_same_on_cuda():
    cfg, p = sample(TRANSFORMS, mixup="frame")
    q = PseudoMotion(cfg).sample(32, generator=torch.Generator().manual_seed(0), device="cuda")
    assert q.device.type == "cuda"
    for name, x in p.tensors().items():
        assert torch.equal(x, q.tensors()[name].cpu()), name


@pytest.mark.gpu
def test_cuda_generator_draws_there_and_is_deterministic():
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=TRANSFORMS, mixup="videomix")
    a, b = (PseudoMotion(cfg).sample(16, generator=torch.Generator("cuda").manual_seed(5)) for _ in range(2))
    assert a.device.type == "cuda"
    for name, x in a.tensors().items():
        assert torch.equal(x, b.tensors()[name]), name
    cpu = PseudoMotion(cfg).sample(16, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(a.homography.cpu(), cpu.homography)     # another stream than the CPU's


def test_angles_are_not_degenerate():
    # sanity: the default affine magnitude produces visible motion over 16 frames
    cfg = PMGConfig(transforms=("affine",))
    p = PseudoMotion(cfg).sample(64, generator=torch.Generator().manual_seed(0))
    last = p.homography[:, -1].double()
    moved = (last - torch.eye(3, dtype=torch.float64)).abs().amax(dim=(1, 2))
    assert moved.median() > math.radians(2)


def test_videomix_box_side_rounds_half_up(monkeypatch):
    """A box side of exactly k + 0.5 pixels becomes k + 1 (floor(x + 0.5), as the rule says; NumPy's round
    would give the even neighbour)."""
    import pmg_dali.sampling as sampling

    class Beta:                                      # lambda with sqrt(1 - lambda) * 8 = 4.5 exactly
        def __init__(self, seed):
            pass

        def beta(self, a, b, size):
            return np.full(size, 1 - (4.5 / 8) ** 2)

    monkeypatch.setattr(sampling.np.random, "default_rng", Beta)
    cfg = PMGConfig(num_frames=2, size=(8, 8), transforms=("identity",), mixup="videomix")
    p = PseudoMotion(cfg).sample(64, generator=torch.Generator().manual_seed(0))
    box = p.mix_box.double()
    side = box[:, 2] - box[:, 0]
    centred = (box[:, 0] > -0.5) & (box[:, 2] < 7.5)           # boxes not clipped by the frame
    assert centred.any() and (side[centred] == 5).all()
    assert sampling.videomix_edges(np.array([4.5 / 8]), np.array([4.0]), 8)[1][0] == 6.0
