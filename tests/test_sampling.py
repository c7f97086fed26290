import math

import numpy as np
import pytest
import torch

from pmg_dali import TRANSFORMS, MotionProgram, PMGConfig, PseudoMotion
from pmg_dali.sampling import view_extent

T, SIZE = 6, (40, 56)


def sample(transforms, b=32, seed=0, **kw):
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=transforms, **kw)
    return cfg, PseudoMotion(cfg).sample(b, generator=torch.Generator().manual_seed(seed))


def steps(h):
    """(B, T-1, 3, 3) maps from frame t to frame t+1."""
    h = h.double()
    a = h[:, 1:] @ torch.linalg.inv(h[:, :-1])
    return a / a[..., 2:3, 2:3]          # homographies are defined up to scale


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


@pytest.mark.parametrize("name", ["affine", "perspective"])
@pytest.mark.parametrize("kw", [{}, dict(affine_degrees=10.0, affine_translate=0.05, perspective_distortion=0.05)])
def test_inside_framing_keeps_every_frame_inside_the_image(name, kw):
    """Every frame's corners (hence every pixel: a frame is a convex quadrilateral in the source) map
    between the source's pixel centres; the first view is a crop of at least min_view_area."""
    _, p = sample((name,), b=512, **kw)
    c = frame_corners_in_source(p.homography)
    assert c[..., 0].min() >= -1e-3 and c[..., 0].max() <= SIZE[1] - 1 + 1e-3
    assert c[..., 1].min() >= -1e-3 and c[..., 1].max() <= SIZE[0] - 1 + 1e-3
    first = p.homography[:, 0].double()
    ratio = 1 / first[:, 0, 0]
    torch.testing.assert_close(first[:, 1, 1], first[:, 0, 0])                # a crop: scale + shift
    torch.testing.assert_close(first[:, [0, 1, 2, 2], [1, 0, 0, 1]], torch.zeros(512, 4, dtype=torch.float64))
    assert ratio.max() <= 1 + 1e-6 and ratio.min() ** 2 >= 0.35 * 0.85      # the fit lands near the floor
    # the same draws without framing: the motion is unchanged unless it needed a view below 0.35
    _, q = sample((name,), b=512, framing="whole", **kw)
    needed = view_extent(steps(q.homography)[:, 0].numpy(), SIZE, T)[0]
    same = torch.from_numpy(needed ** 2 >= 0.35)
    assert same.float().mean() > 0.5
    torch.testing.assert_close(steps(p.homography)[same], steps(q.homography)[same], atol=2e-4, rtol=1e-4)


def test_inside_framing_weakens_only_motions_that_need_a_small_view():
    _, p = sample(("affine",), b=512, affine_degrees=10.0, min_view_area=0.6)
    _, q = sample(("affine",), b=512, affine_degrees=10.0, framing="whole")
    angle = lambda h: torch.rad2deg(torch.atan2(steps(h)[:, 0, 0, 1], steps(h)[:, 0, 0, 0]))  # noqa: E731
    weaker = angle(p.homography).abs() < angle(q.homography).abs() - 1e-3
    assert 0.2 < weaker.float().mean() < 1
    ratio = 1 / p.homography[:, 0, 0, 0].double()
    assert ratio.min() ** 2 >= 0.6 * 0.7 and (ratio[weaker] ** 2 < 0.95).all()     # weakened: near the floor


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


def test_sliding_window_size_and_speed_ranges():
    cfg, p = sample(("sliding_window",), b=256)
    scale = 1 / p.homography[:, 0, 0, 0].double()                     # window side / image side
    assert scale.min() >= 0.5 - 1e-6 and scale.max() <= 0.8 + 1e-6
    torch.testing.assert_close(p.homography[..., 0, 0], p.homography[:, :1, 0, 0].expand(-1, T))
    a = steps(p.homography)[:, 0]
    speed_px = torch.hypot(a[:, 0, 2] / a.new_tensor(SIZE[1] - 1), a[:, 1, 2] / a.new_tensor(SIZE[0] - 1))
    speed = speed_px * scale                                          # source fraction per frame
    assert speed.max() <= 0.0135 + 1e-6 and speed.median() > 0.0025


def test_zoom_scale_per_step_in_range_and_both_directions():
    _, p = sample(("zoom",), b=256)
    s = 1 / steps(p.homography)[:, 0, 0, 0]                           # window scale per step
    assert s.min() >= 0.97 - 1e-6 and s.max() <= 1.03 + 1e-6
    assert (s < 1).any() and (s > 1).any()
    zoom_in = s < 1
    torch.testing.assert_close(p.homography[zoom_in, 0], torch.eye(3).expand(int(zoom_in.sum()), 3, 3))
    torch.testing.assert_close(p.homography[~zoom_in, -1], torch.eye(3).expand(int((~zoom_in).sum()), 3, 3))


def test_fade_gain_range_and_directions():
    _, p = sample(("fade",), b=256)
    gain = p.color[:, 1:, 0, 0].double() / p.color[:, :-1, 0, 0].double()
    g = gain[:, 0]
    fade_out = g < 1
    assert fade_out.any() and (~fade_out).any()
    assert g[fade_out].min() >= 0.9 - 1e-6 and g[fade_out].max() <= 0.97 + 1e-6
    assert (1 / g[~fade_out]).min() >= 0.9 - 1e-6
    torch.testing.assert_close(p.color[~fade_out, -1], torch.eye(3, 4).expand(int((~fade_out).sum()), 3, 4))


def test_affine_step_rotation_within_degrees():
    _, p = sample(("affine",), b=256, affine_shear=0.0)
    a = steps(p.homography)[:, 0]
    angle = torch.rad2deg(torch.atan2(a[:, 0, 1], a[:, 0, 0]))
    scale = torch.hypot(a[:, 0, 0], a[:, 0, 1])
    assert angle.abs().max() <= 2 + 1e-4 and angle.abs().max() > 1.5
    assert scale.min() >= 0.98 - 1e-6 and scale.max() <= 1.02 + 1e-6


def test_perspective_corner_displacement_per_step():
    _, p = sample(("perspective",), b=64)
    hh, ww = SIZE
    corners = torch.tensor([[0, 0, 1], [ww - 1, 0, 1], [ww - 1, hh - 1, 1], [0, hh - 1, 1]], dtype=torch.float64)
    moved = torch.einsum("bij,kj->bki", steps(p.homography)[:, 0], corners)
    moved = moved[..., :2] / moved[..., 2:]
    d = (moved - corners[:, :2]).abs() / torch.tensor([ww - 1, hh - 1], dtype=torch.float64)
    assert d.max() <= 0.01 + 1e-6 and d.max() > 0.005


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


def test_cutmix_box_is_empty_for_other_transforms():
    _, p = sample(("zoom", "cutmix"), b=64)
    other = p.transform == 0
    assert other.any() and (p.paste_box[other] == 0).all()
    assert (p.paste_box[~other, :, 2] > p.paste_box[~other, :, 0]).all()


def test_mixup_partner_and_lambda():
    _, p = sample(("zoom",), b=2000, mixup="frame", mixup_alpha=0.5)
    assert (p.mix_index != torch.arange(2000)).all()
    assert sorted(p.mix_index.tolist()) == list(range(2000))         # a permutation
    lam = p.mix_lambda.double().numpy()
    assert lam.min() >= 0 and lam.max() <= 1
    assert abs(lam.mean() - 0.5) < 0.03 and abs(lam.var() - 1 / 8) < 0.015  # Beta(0.5, 0.5)


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


def test_colour_transforms_are_exactly_the_samplers_with_colour(generator):
    """sample_program skips the colour maps unless a transform of COLOR_TRANSFORMS is configured:
    that set must name every sampler whose colour maps are not the identity."""
    from pmg_dali import sampling
    cfg = PMGConfig(num_frames=T, size=SIZE)
    draw = sampling._Draw(16, generator, torch.device("cpu"))
    for name, sampler in sampling.SAMPLERS.items():
        _, _, c0, cs = sampler(cfg, draw)
        coloured = not (np.allclose(c0, np.eye(4)) and np.allclose(cs, np.eye(4)))
        assert coloured == (name in sampling.COLOR_TRANSFORMS), name


def test_angles_are_not_degenerate():
    # sanity: the default affine magnitude produces visible motion over 16 frames
    cfg = PMGConfig(transforms=("affine",))
    p = PseudoMotion(cfg).sample(64, generator=torch.Generator().manual_seed(0))
    last = p.homography[:, -1].double()
    moved = (last - torch.eye(3, dtype=torch.float64)).abs().amax(dim=(1, 2))
    assert moved.median() > math.radians(2)


def test_videomix_box_side_rounds_half_up_as_in_dali(monkeypatch):
    """One rounding rule for both samplers: a box side of exactly k + 0.5 pixels becomes k + 1 (DALI's
    in-graph sampler computes floor(x + 0.5); NumPy's round would give the even neighbour)."""
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
    assert sampling.videomix_edges(np.array([4.5 / 8]), np.array([4.0]), 8, np.floor, np.clip)[1][0] == 6.0
