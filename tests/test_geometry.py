import cv2
import numpy as np
import pytest
import torch

from pmg_dali.geometry import (LUMA, affine_step_matrix, color_jitter_matrix, eye, inverse_maps, matrix_powers,
                               normalized_inverse, sampling_grid, scale_matrix, translation_matrix)

def test_rotation_and_scale_match_opencv():
    angle, scale, center = 17.0, 1.3, (40.0, 25.0)
    ours = affine_step_matrix([angle], np.zeros((1, 2)), [scale], np.zeros((1, 2)), [center])[0]
    ref = cv2.getRotationMatrix2D(center, angle, scale)
    np.testing.assert_allclose(ours[:2], ref, atol=1e-12)
    np.testing.assert_allclose(ours[2], [0, 0, 1])


def test_affine_translation_and_shear_from_scratch():
    m = affine_step_matrix([0.0], [[3.0, -2.0]], [1.0], [[10.0, 0.0]], [[5.0, 7.0]])[0]
    # x' = cx + tx + (x - cx) + tan(10°) (y - cy);  y' = cy + ty + (y - cy)
    p = np.array([9.0, 4.0, 1.0])
    expect = [5 + 3 + 4 + np.tan(np.deg2rad(10)) * (4 - 7), 7 - 2 + (4 - 7), 1]
    np.testing.assert_allclose(m @ p, expect, atol=1e-12)


def test_translation_and_scale_about_a_point():
    t = translation_matrix([2.0], [-1.0])[0]
    np.testing.assert_allclose(t @ [1, 1, 1], [3, 0, 1])
    s = scale_matrix([2.0], [4.0], [4.0])[0]
    np.testing.assert_allclose(s @ [4, 4, 1], [4, 4, 1])          # the centre is fixed
    np.testing.assert_allclose(s @ [5, 4, 1], [6, 4, 1])
    assert eye(2, 4).shape == (2, 4, 4) and (eye(2, 4) == np.eye(4)).all()


def _apply(m, rgb):
    return (m[:3, :3] @ rgb) + m[:3, 3]


@pytest.mark.parametrize("rgb", [[0.2, 0.5, 0.9], [0.7, 0.1, 0.3]])
def test_color_jitter_components(rgb):
    rgb = np.array(rgb)
    one, zero = [1.0], [0.0]
    bri = color_jitter_matrix([1.1], one, one, zero)[0]
    np.testing.assert_allclose(_apply(bri, rgb), 1.1 * rgb, atol=1e-12)
    con = color_jitter_matrix(one, [0.8], one, zero)[0]
    np.testing.assert_allclose(_apply(con, rgb), 0.8 * rgb + 0.2 * 0.5, atol=1e-12)
    grey = color_jitter_matrix(one, one, [0.0], zero)[0]
    np.testing.assert_allclose(_apply(grey, rgb), np.full(3, np.dot(LUMA, rgb)), atol=1e-12)
    # a third of a turn about the grey axis permutes the channels R -> G -> B -> R
    hue = color_jitter_matrix(one, one, one, [1 / 3])[0]
    np.testing.assert_allclose(_apply(hue, rgb), rgb[[2, 0, 1]], atol=1e-12)
    identity = color_jitter_matrix(one, one, one, zero)[0]
    np.testing.assert_allclose(identity, np.eye(4), atol=1e-12)


def test_hue_keeps_greys():
    m = color_jitter_matrix([1.0], [1.0], [1.0], [0.07])[0]
    np.testing.assert_allclose(_apply(m, np.full(3, 0.4)), np.full(3, 0.4), atol=1e-12)


def test_matrix_powers_are_the_recursion():
    rng = np.random.default_rng(0)
    step = np.eye(3) + 0.05 * rng.standard_normal((2, 3, 3))
    first = np.eye(3) + 0.05 * rng.standard_normal((2, 3, 3))
    out = matrix_powers(step, first, 6)
    assert out.shape == (2, 6, 3, 3) and matrix_powers(step, first, 1).shape == (2, 1, 3, 3)
    for b in range(2):
        for t in range(6):
            ref = np.linalg.matrix_power(step[b], t) @ first[b]
            np.testing.assert_allclose(out[b, t], ref / ref[2, 2], rtol=1e-10, atol=1e-12)
    colour = matrix_powers(np.tile(np.diag([0.9, 0.9, 0.9, 1.0]), (2, 1, 1)), np.tile(np.eye(4), (2, 1, 1)), 3)
    np.testing.assert_allclose(colour[:, 2], np.tile(np.diag([0.81, 0.81, 0.81, 1.0]), (2, 1, 1)))  # no rescaling


def test_normalized_inverse_maps_pixel_centres_to_grid_coordinates():
    h, w = 5, 9
    shift = torch.from_numpy(translation_matrix([2.0], [1.0])[0])             # source -> frame
    m = normalized_inverse(shift, (h, w)).double()
    # frame pixel (x, y) = (2, 1) samples source pixel (0, 0) = normalised (-1, -1)
    frame = torch.tensor([2 * 2 / (w - 1) - 1, 2 * 1 / (h - 1) - 1, 1.0], dtype=torch.float64)
    np.testing.assert_allclose((m @ frame).numpy(), [-1, -1, 1], atol=1e-6)


def test_sampling_grid_reads_the_source_at_the_inverse_map():
    """Frame pixel (x, y) reads source pixel inverse @ (x, y, 1) (projective divide), written in
    grid_sample's align_corners=True coordinates: pixel centre 0 -> -1, W - 1 -> +1 (NumPy from scratch)."""
    h, w = 5, 9
    rng = np.random.default_rng(0)
    homography = np.eye(3) + 0.05 * rng.standard_normal((2, 3, 3, 3))
    inverse = inverse_maps(torch.from_numpy(homography))
    grid = sampling_grid(inverse, (h, w))
    assert grid.shape == (2, 3, h, w, 2) and grid.dtype == torch.float32
    ys, xs = np.mgrid[0:h, 0:w]
    pixels = np.stack([xs, ys, np.ones_like(xs)], -1).astype(np.float64)          # (H, W, 3)
    src = np.einsum("btij,hwj->bthwi", np.linalg.inv(homography), pixels)
    src = src[..., :2] / src[..., 2:]
    expect = src / [(w - 1) / 2, (h - 1) / 2] - 1
    np.testing.assert_allclose(grid.numpy(), expect, atol=1e-5)
    # the identity reads every pixel centre exactly: grid_sample returns the image
    identity = sampling_grid(torch.eye(3, dtype=torch.float64), (h, w))
    image = torch.rand(1, 2, h, w)
    out = torch.nn.functional.grid_sample(image, identity[None], align_corners=True)
    torch.testing.assert_close(out, image, atol=1e-6, rtol=0)
