"""SyntheticImages and its building blocks (pmg_dali.procedural, .shaders, .synthetic).

Building blocks are checked against independent references (pure-Python integer hashing and LCG,
a literal NumPy chaos game, NumPy bilinear lookups and FFT spectra, the literal layer-by-layer
"over" loop); images are checked for determinism, seed dependence and measured diversity.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pmg_dali import SyntheticImages
from pmg_dali.procedural import (Draws, combine, composite, cosine_palette, hash32, mul32, over,
                                 pad_periodic, pixel_grid, sample_periodic, spectral_noise)
from pmg_dali.shaders import SHADERS
from pmg_dali.synthetic import (_MIN_FILL, KINDS, _chaos_game, _choose_ifs, _map_choices,
                                render_atoms, render_fractals)

IMAGE_KINDS = ("shader", "fractal", "atom")
M32 = 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------
# pure-Python references
# ----------------------------------------------------------------------------------------------

def ref_hash32(v: int) -> int:
    """C. Wellons' lowbias32, written out on Python ints."""
    v ^= v >> 16
    v = (v * 0x7FEB352D) & M32
    v ^= v >> 15
    v = (v * 0x846CA68B) & M32
    return v ^ (v >> 16)


def ref_combine(key: int, value: int) -> int:
    return ref_hash32(key ^ ref_hash32((value + 0x9E3779B9) & M32))


def test_hash32_and_mul32_match_python_integers():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2 ** 32, (3000,), generator=g, dtype=torch.int64)
    x[:4] = torch.tensor([0, 1, 2 ** 31, 2 ** 32 - 1])
    assert hash32(x).tolist() == [ref_hash32(v) for v in x.tolist()]
    for c in (0x7FEB352D, 0x846CA68B, 1664525, 2 ** 32 - 1, 2 ** 31):
        assert mul32(x, c).tolist() == [(v * c) % 2 ** 32 for v in x.tolist()]
    assert combine(x[:50], 7).tolist() == [ref_combine(v, 7) for v in x[:50].tolist()]


def test_draws_are_counter_based_whatever_the_call_pattern():
    keys = torch.tensor([3, 99, 2 ** 32 - 5], dtype=torch.int64)
    expected = [[ref_combine(k, c) for c in range(200)] for k in keys.tolist()]
    d = Draws(keys)
    got = torch.cat([d.bits(5), d.bits(2, 3).flatten(1), d.bits(100), d.bits(89)], 1)   # crosses blocks
    assert got.tolist() == expected
    d = Draws(keys)
    d.bits(10)
    sub = d.subset(torch.tensor([2, 0]))
    assert sub.bits(4).tolist() == [expected[2][10:14], expected[0][10:14]]
    u = Draws(keys).uniform(6, low=-2.0, high=3.0)
    ref = torch.tensor([[(h >> 8) / 2 ** 24 for h in row[:6]] for row in expected]) * 5 - 2
    torch.testing.assert_close(u, ref.float(), rtol=0, atol=1e-6)


def test_map_choices_follow_the_literal_lcg():
    prob = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.0, 0.0]])
    keys = torch.tensor([11, 12], dtype=torch.int64)
    k = _map_choices(prob, keys, walkers=3, steps=40)
    cum = prob.cumsum(-1).tolist()
    for n in range(2):
        for w in range(3):
            state = ref_combine(keys[n].item(), w)
            for s in range(40):
                state = (state * 1664525 + 1013904223) & M32
                u = (state >> 8) / 2 ** 24
                assert k[s, n, w].item() == sum(u >= c for c in cum[n][:3])


def test_chaos_game_matches_a_literal_numpy_recursion():
    coef = torch.tensor([[[0.5, 0.0, 0.0, 0.5, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5, 0.5, 0.0],
                          [0.4, -0.3, 0.3, 0.4, 0.2, 0.5], [0.2, 0.1, 0.0, 0.6, -0.3, 0.1]]])
    prob = torch.tensor([[0.25, 0.25, 0.3, 0.2]])
    keys = torch.tensor([5], dtype=torch.int64)
    xs, ys, k = _chaos_game(coef, prob, keys, walkers=4, steps=30)
    c = coef[0].double().numpy()
    a, b, cc, d, e, f = c[0]
    start = np.linalg.solve(np.array([[1 - a, -b], [-cc, 1 - d]]), np.array([e, f]))   # fixed point of map 0
    for w in range(4):
        p = start.copy()
        for s in range(30):
            m = c[k[s, 0, w].item()]
            p = np.array([m[0] * p[0] + m[1] * p[1] + m[4], m[2] * p[0] + m[3] * p[1] + m[5]])
            assert abs(xs[s, 0, w].item() - p[0]) < 1e-5 and abs(ys[s, 0, w].item() - p[1]) < 1e-5


def test_chosen_ifs_are_contractive_fill_and_use_det_probabilities():
    d = Draws(torch.arange(40, dtype=torch.int64) * 7919)
    coef, prob, box = _choose_ifs(d)
    a = coef[..., :4].reshape(40, 4, 2, 2).double()
    sigma = torch.linalg.svdvals(a)[..., 0]                                   # largest singular value
    used = prob > 0
    assert used.sum(1).min() >= 2 and used.sum(1).max() <= 4
    assert (sigma[used] < 1).all()
    det = torch.linalg.det(a).abs().clamp(min=1e-3) * used
    torch.testing.assert_close(prob.double(), det / det.sum(1, keepdim=True), rtol=1e-4, atol=1e-6)
    assert (box[:, 3] >= _MIN_FILL).float().mean() >= 0.9


def test_composite_equals_the_closed_form():
    """Layer k: canvas <- canvas * darken_k * (1 - alpha_k) + colour_k * alpha_k, so the result is
    background * prod_k t_k + sum_k colour_k alpha_k prod_{j > k} t_j with t_k = darken_k (1 - alpha_k)."""
    g = torch.Generator().manual_seed(1)
    bg = torch.rand(2, 3, 5, 6, generator=g).double()
    colours = torch.rand(2, 4, 3, 5, 6, generator=g).double()
    alpha = torch.rand(2, 4, 1, 5, 6, generator=g).double()
    darken = torch.rand(2, 4, 1, 5, 6, generator=g).double()
    t = darken * (1 - alpha)
    expected = bg * t.prod(1)
    for k in range(4):
        expected = expected + colours[:, k] * alpha[:, k] * t[:, k + 1:].prod(1)
    got = composite(bg, ((colours[:, k], alpha[:, k], darken[:, k]) for k in range(4)))
    torch.testing.assert_close(got, expected)
    got = composite(bg, [(colours[:, k, :, :1, :1], alpha[:, k], None) for k in range(4)])   # flat colours
    expected = bg
    for k in range(4):
        expected = expected * (1 - alpha[:, k]) + colours[:, k, :, :1, :1] * alpha[:, k]
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(over(bg, colours[:, 0], alpha[:, 0]), bg + alpha[:, 0] * (colours[:, 0] - bg))


def test_sample_periodic_is_a_wrapping_bilinear_lookup():
    g = torch.Generator().manual_seed(2)
    tex = torch.rand(1, 2, 8, 8, generator=g)
    coords = torch.rand(1, 5, 7, 2, generator=g) * 6 - 3                    # several periods, negative too
    got = sample_periodic(pad_periodic(tex), coords)
    t = tex[0].double().numpy()
    for i in range(5):
        for j in range(7):
            u = (coords[0, i, j, 0].item() % 1.0) * 8 - 0.5                 # texel centres at k + 0.5
            v = (coords[0, i, j, 1].item() % 1.0) * 8 - 0.5
            x0, y0 = math.floor(u), math.floor(v)
            fx, fy = u - x0, v - y0
            val = sum(t[:, (y0 + dy) % 8, (x0 + dx) % 8] * (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
                      for dy in (0, 1) for dx in (0, 1))
            np.testing.assert_allclose(got[0, :, i, j].numpy(), val, atol=1e-5)


def test_cosine_palette_formula():
    g = torch.Generator().manual_seed(3)
    pal = torch.rand(2, 4, 3, generator=g)
    t = torch.rand(2, 1, 3, 4, generator=g)
    a, b, c, d = (pal[:, i, :, None, None] for i in range(4))
    torch.testing.assert_close(cosine_palette(t, pal), a + b * torch.cos(2 * math.pi * (c * t + d)))


def test_spectral_noise_is_normalised_and_follows_its_power_law():
    beta = torch.tensor([1.0, 2.0])
    field = spectral_noise(Draws(torch.tensor([1, 2], dtype=torch.int64)), 1, 64, beta, low=2, high=24)
    torch.testing.assert_close(field.mean((-2, -1)), torch.zeros(2, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(field.std((-2, -1)), torch.ones(2, 1), atol=1e-4, rtol=0)
    power = np.abs(np.fft.fft2(field[:, 0].double().numpy())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(64, 1 / 64), np.fft.fftfreq(64, 1 / 64)))
    band = (f >= 2) & (f <= 24)
    for i, b in enumerate(beta.tolist()):
        slope = np.polyfit(np.log(f[band]), np.log(power[i][band]), 1)[0]
        assert abs(slope + 2 * b) < 0.05                                    # amplitude ~ f ** -beta
    assert (power[:, ~band & (f > 0)] < 1e-6 * power[:, band].max()).all()


def test_pixel_grid_is_centred_on_pixel_centres():
    x, y = pixel_grid((4, 6), "cpu")
    assert x.shape == y.shape == (1, 4, 6)
    torch.testing.assert_close(x[0, 0], (torch.arange(6) + 0.5 - 3) / 2)
    torch.testing.assert_close(y[0, :, 0], (torch.arange(4) + 0.5 - 2) / 2)


# ----------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("render", list(SHADERS) + [render_atoms, render_fractals], ids=lambda f: f.__name__)
def test_every_program_is_finite_and_in_range(render):
    x, y = pixel_grid((20, 28), "cpu")
    out = render(Draws(torch.arange(6, dtype=torch.int64) * 31 + 1), x, y, 10.0)
    assert out.shape == (6, 3, 20, 28) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.min() > -0.5 and out.max() < 1.5                            # about [0, 1] before clamping


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_dtype_and_batch_independence(kind):
    source = SyntheticImages(kind, num_images=50, seed=3)
    full = source.load(range(12), (24, 40), "cpu")
    assert full.shape == (12, 3, 24, 40) and full.dtype == torch.uint8 and full.device.type == "cpu"
    part = SyntheticImages(kind, num_images=50, seed=3).load([7, 3, 11, 0, 7], (24, 40))
    assert torch.equal(part, full[[7, 3, 11, 0, 7]])
    assert torch.equal(source.load(torch.tensor([5]), (24, 40)), full[5:6])
    gen = torch.Generator().manual_seed(123)                                 # accepted, unused
    assert torch.equal(source.load(range(3), (24, 40), generator=gen), full[:3])


@pytest.mark.parametrize("kind", KINDS)
def test_seed_changes_every_image(kind):
    a = SyntheticImages(kind, seed=0).load(range(6), 32).float()
    b = SyntheticImages(kind, seed=1).load(range(6), 32).float()
    assert ((a - b).abs().mean((1, 2, 3)) > 10).all()


def test_mixed_draws_every_kind_and_reuses_its_images():
    mixed = SyntheticImages("mixed", seed=5)
    kinds = mixed.kinds(torch.arange(300))
    counts = {k: kinds.count(k) for k in IMAGE_KINDS}
    assert min(counts.values()) > 60, counts
    images = mixed.load(range(9), 24)
    for i, kind in enumerate(kinds[:9]):
        assert torch.equal(images[i], SyntheticImages(kind, seed=5).load([i], 24)[0])


@pytest.mark.parametrize("kind", KINDS)
def test_images_are_varied_textured_and_coloured(kind):
    """Measured on 32 images at 64x64, 0-255 scale (thresholds about half the observed minima)."""
    x = SyntheticImages(kind, seed=0).load(range(32), 64).float()
    std = x.flatten(1).std(1)
    grad_x = (x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))
    grad = (grad_x + (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3))) / 2
    coarse = F.avg_pool2d(x, 8).flatten(1).std(1)                            # structure at 1/8 scale
    chroma = x.std(1).mean((1, 2))                                           # spread across R, G, B
    diff = (x[:, None] - x[None]).abs().mean((2, 3, 4))
    pairs = diff[~torch.eye(32, dtype=torch.bool)]
    assert std.min() > 15, std.min()                                        # no near-constant image
    assert grad.min() > 1.5, grad.min()                                     # edges / fine texture
    assert coarse.min() > 6, coarse.min()                                   # large-scale structure
    assert chroma.median() > 12, chroma.median()                            # colour, not grey
    assert pairs.mean() > 30, pairs.mean()                                  # varied
    assert pairs.min() > 10, pairs.min()                                    # no near-duplicate pair


def test_empty_batch():
    out = SyntheticImages("mixed").load([], 16)
    assert out.shape == (0, 3, 16, 16) and out.dtype == torch.uint8


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        SyntheticImages("noise")
    with pytest.raises(ValueError, match="`num_images` must be in"):
        SyntheticImages("shader", num_images=0)
    with pytest.raises(TypeError, match="`num_images` must be an int"):
        SyntheticImages("shader", num_images=10.0)
    with pytest.raises(TypeError, match="`num_images` must be an int"):
        SyntheticImages("shader", num_images=True)
    with pytest.raises(ValueError, match="`seed` must be in"):
        SyntheticImages("shader", seed=-1)
    with pytest.raises(TypeError, match="`seed` must be an int"):
        SyntheticImages("shader", seed="0")
    source = SyntheticImages("atom", num_images=10)
    assert len(source) == 10 and "atom" in repr(source)
    with pytest.raises(ValueError, match="`indices` must lie in"):
        source.load([10], 16)
    with pytest.raises(TypeError, match="`size` must be"):
        source.load([0], "big")
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
        source.load([0], 16, generator=0)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_matches_cpu_up_to_rounding(kind):
    source = SyntheticImages(kind, seed=2)
    cpu = source.load(range(8), 64, "cpu").float()
    gpu = source.load(range(8), 64, "cuda")
    assert gpu.device.type == "cuda" and gpu.dtype == torch.uint8
    part = source.load([5, 1], 64, "cuda")                                  # same parameters; CUDA reductions
    assert (part.int() - gpu[[5, 1]].int()).abs().max() <= 2               # may round differently per batch
    diff = (gpu.cpu().float() - cpu).abs()
    assert diff.mean() < 1.0, diff.mean()                                   # same parameters: rounding only
    assert torch.quantile(diff.flatten(), 0.99) <= 8
