"""Tube masks: counts, tube structure and token order against the official VideoMAE generator
semantics (a NumPy reference) and Hugging Face's own patch embedding."""
import numpy as np
import pytest
import torch

import pmg_dali
from pmg_dali.masks import tube_mask_shape


def official_tube_mask(num_frames, size, patch_size, tubelet_size, mask_ratio, rng):
    """The official VideoMAE ``TubeMaskingGenerator`` step by step, with an explicit NumPy Generator:
    one shuffled 0/1 frame pattern with int(ratio * Ns) ones, tiled over T / tubelet positions."""
    steps, spatial = num_frames // tubelet_size, (size // patch_size) ** 2
    per_frame = int(mask_ratio * spatial)
    frame = np.hstack([np.zeros(spatial - per_frame), np.ones(per_frame)])
    rng.shuffle(frame)
    return np.tile(frame, (steps, 1)).flatten().astype(bool)


CASES = [  # (num_frames, size, patch_size, tubelet_size, mask_ratio)
    (16, 224, 16, 2, 0.75), (16, 224, 16, 2, 0.9), (16, 224, 16, 2, 0.5), (4, 32, 8, 2, 0.75),
    (8, 64, 16, 4, 0.6), (2, 16, 4, 1, 0.0), (6, 48, 8, 3, 0.95)]


@pytest.mark.parametrize("num_frames, size, patch_size, tubelet_size, mask_ratio", CASES)
def test_counts_and_tubes_match_official_generator(num_frames, size, patch_size, tubelet_size, mask_ratio):
    g = torch.Generator().manual_seed(1)
    mask = pmg_dali.tube_mask(5, num_frames, size, patch_size, tubelet_size, mask_ratio, generator=g)
    ref = official_tube_mask(num_frames, size, patch_size, tubelet_size, mask_ratio, np.random.default_rng(1))
    steps, spatial = num_frames // tubelet_size, (size // patch_size) ** 2
    assert mask.dtype == torch.bool and mask.shape == (5, ref.size) == (5, steps * spatial)
    assert mask.sum(1).tolist() == [int(ref.sum())] * 5                       # the official count
    tubes = mask.view(5, steps, spatial)
    assert torch.equal(tubes, tubes[:, :1].expand_as(tubes))                  # same pattern every step
    ref_tubes = ref.reshape(steps, spatial)
    assert (ref_tubes == ref_tubes[:1]).all()


def test_count_is_int_ratio_n_when_divisible_and_tube_count_otherwise(generator):
    mask = pmg_dali.tube_mask(2, generator=generator)                         # 16 x 224^2, 0.75
    assert mask.shape == (2, 1568) and mask.sum(1).tolist() == [int(0.75 * 1568)] * 2 == [1176] * 2
    mask = pmg_dali.tube_mask(2, mask_ratio=0.9, generator=generator)
    assert int(0.9 * 1568) == 1411 and mask.sum(1).tolist() == [8 * int(0.9 * 196)] * 2 == [1408] * 2


def test_rows_differ_and_positions_are_uniform():
    g = torch.Generator().manual_seed(0)
    mask = pmg_dali.tube_mask(4000, 2, 16, 4, 1, 0.75, generator=g)           # Ns = 16, 12 masked
    frames = mask.view(4000, 2, 16)[:, 0].double()
    assert torch.unique(frames, dim=0).shape[0] > 1000                          # C(16, 12) = 1820 patterns
    freq = frames.mean(0)                                                        # P(masked) = 12 / 16
    assert (freq - 0.75).abs().max() < 0.03, freq


def test_deterministic_for_a_seed_and_device_argument(generator):
    a = pmg_dali.tube_mask(3, 4, 32, 8, 2, generator=torch.Generator().manual_seed(7))
    b = pmg_dali.tube_mask(3, 4, 32, 8, 2, generator=torch.Generator().manual_seed(7), device="cpu")
    c = pmg_dali.tube_mask(3, 4, 32, 8, 2, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert pmg_dali.tube_mask(0, 4, 32, 8, 2, generator=generator).shape == (0, 32)
    assert pmg_dali.tube_mask(2, 4, (32, 48), 8, 2, generator=generator).shape == (2, 2 * 4 * 6)


@pytest.mark.gpu
def test_cuda_generator_and_cpu_generator_to_cuda():
    cpu = pmg_dali.tube_mask(4, generator=torch.Generator().manual_seed(0))
    moved = pmg_dali.tube_mask(4, generator=torch.Generator().manual_seed(0), device="cuda")
    assert moved.is_cuda and torch.equal(moved.cpu(), cpu)
    on_gpu = pmg_dali.tube_mask(4, generator=torch.Generator("cuda").manual_seed(0))
    assert on_gpu.is_cuda and on_gpu.sum(1).tolist() == [1176] * 4


def test_token_order_is_hugging_face_patch_order():
    """Token t * Ns + row * Wp + col is tubelet t, patch (row, col) in HF's own patch embedding."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2,
                                      hidden_size=8, num_hidden_layers=1, num_attention_heads=1)
    embed = transformers.models.videomae.modeling_videomae.VideoMAEPatchEmbeddings(cfg).eval()
    video = torch.zeros(1, 4, 3, 32, 32)                                         # BTCHW
    base = embed(video)
    t, row, col = 1, 2, 3                                                        # frames 2-3
    video[:, 2 * t:2 * t + 2, :, 8 * row:8 * row + 8, 8 * col:8 * col + 8] = 1
    changed = (embed(video) - base).abs().sum(-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == [t * 16 + row * 4 + col]
    steps, spatial = tube_mask_shape(4, 32, 8, 2)
    assert (steps, spatial) == (2, 16)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=-1), ValueError, "`batch_size` must be >= 0"),
    (dict(batch_size=2.0), TypeError, "`batch_size` must be an int"),
    (dict(num_frames=15), ValueError, "`num_frames` must be divisible by `tubelet_size`"),
    (dict(size=225), ValueError, "`size` must be divisible by `patch_size`"),
    (dict(size=(224, 200)), ValueError, "`size` must be divisible by `patch_size`"),
    (dict(patch_size=0), ValueError, "`patch_size` must be >= 1"),
    (dict(tubelet_size=0), ValueError, "`tubelet_size` must be >= 1"),
    (dict(mask_ratio=1.0), ValueError, r"`mask_ratio` must be in \[0, 1\)"),
    (dict(mask_ratio=-0.1), ValueError, r"`mask_ratio` must be in \[0, 1\)"),
    (dict(mask_ratio="0.75"), TypeError, "`mask_ratio` must be a number"),
    (dict(generator=0), TypeError, "`generator` must be a torch.Generator"),
])
def test_invalid_arguments(kwargs, error, match):
    kwargs = {"batch_size": 2, **kwargs}
    with pytest.raises(error, match=match):
        pmg_dali.tube_mask(**kwargs)
