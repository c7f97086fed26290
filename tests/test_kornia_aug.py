"""PseudoMotionAugmentation in kornia's containers: the same frames as PseudoMotion.augment, per-frame
matrices, masks / boxes / keypoints through data_keys (against OpenCV), still images as static clips."""
import cv2
import kornia.augmentation as K
import numpy as np
import pytest
import torch

import pmg_dali
from pmg_dali import render
from pmg_dali.kornia_aug import PseudoMotionAugmentation

T, H, W = 4, 24, 32


def config(**kw):
    kw = {"num_frames": T, "size": 64, "transforms": ("affine", "perspective", "zoom"), "mixup": None,
          "affine_degrees": 4.0, "affine_translate": 0.03, "perspective_distortion": 0.03, **kw}
    return pmg_dali.PMGConfig(**kw)


def test_video_sequential_equals_augment():
    torch.manual_seed(0)
    aug = PseudoMotionAugmentation(config(transforms=("affine", "fade", "color_jitter")))
    video = torch.rand(3, 3, T, H, W)
    out = K.VideoSequential(aug, data_format="BCTHW")(video)
    program = aug.motion_program()
    assert program.homography.shape == (3, T, 3, 3)
    assert torch.equal(out, render.augment_clips(video, program, (H, W)))   # the reference's warp and colour map
    # the per-frame matrices kornia exposes are the program's, row b * T + t
    torch.testing.assert_close(aug.transform_matrix.view(3, T, 3, 3), program.homography)
    # BTCHW gives the same frames
    out2 = K.VideoSequential(aug, data_format="BTCHW")(video.transpose(1, 2), params=None)
    assert out2.shape == (3, T, 3, H, W)


def test_replay_and_seed():
    aug = PseudoMotionAugmentation(config())
    seq = K.VideoSequential(aug, data_format="BCTHW")
    video = torch.rand(2, 3, T, H, W)
    torch.manual_seed(5)
    a = seq(video)
    torch.testing.assert_close(seq(video, params=seq._params), a)
    torch.manual_seed(5)
    torch.testing.assert_close(seq(video), a)


def test_container_with_stock_kornia_and_data_keys():
    torch.manual_seed(1)
    aug = PseudoMotionAugmentation(config())
    pipeline = K.AugmentationSequential(
        K.VideoSequential(aug, K.ColorJiggle(0.1, 0.1, 0.1, p=1.0), K.RandomHorizontalFlip(p=0.0),
                          data_format="BCTHW"),
        data_keys=["input", "mask", "keypoints", "bbox"])
    video = torch.rand(2, 3, T, H, W)
    masks = torch.randint(0, 4, (2, 1, T, H, W)).float()
    keypoints = torch.rand(2, T, 5, 2) * torch.tensor([W - 1, H - 1])
    corners = torch.tensor([[2.0, 3.0], [20.0, 3.0], [20.0, 18.0], [2.0, 18.0]])
    boxes = corners.expand(2, T, 1, 4, 2).clone()
    out, out_masks, out_kp, out_boxes = pipeline(video, masks, keypoints, boxes)
    assert out.shape == video.shape and out_masks.shape == masks.shape
    h = aug.motion_program().homography.double().numpy()
    mismatched = 0
    for b in range(2):
        for t in range(T):
            expected = cv2.perspectiveTransform(keypoints[b, t].double().numpy()[None], h[b, t])[0]
            np.testing.assert_allclose(out_kp[b, t].numpy(), expected, atol=1e-3)
            # kornia's boxes stay axis-aligned: the box enclosing the moved corners
            moved = cv2.perspectiveTransform(corners.double().numpy()[None], h[b, t])[0]
            lo, hi = moved.min(0), moved.max(0)
            enclosing = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
            np.testing.assert_allclose(out_boxes[b, t, 0].numpy(), enclosing, atol=1e-3)
            ref = cv2.warpPerspective(masks[b, 0, t].numpy(), h[b, t], (W, H), flags=cv2.INTER_NEAREST)
            mismatched += int((out_masks[b, 0, t].numpy() != ref).sum())
    assert mismatched <= 0.005 * 2 * T * H * W          # nearest ties (x.5 reads) may round either way


def test_still_images_as_static_clips():
    cfg = config(num_frames=T, size=(H, W), transforms=("affine", "perspective"), dtype=torch.float32,
                 normalize=False)
    torch.manual_seed(2)
    aug = PseudoMotionAugmentation(cfg)
    images = torch.rand(2, 3, H, W)
    clips = K.VideoSequential(aug, data_format="BCTHW")(images[:, :, None].expand(-1, -1, T, -1, -1))
    expected = pmg_dali.PseudoMotion(cfg, renderer="reference")(images, program=aug.motion_program())
    torch.testing.assert_close(clips, expected, atol=1e-5, rtol=0)


def test_gate_skips_whole_clips():
    torch.manual_seed(3)
    aug = PseudoMotionAugmentation(config(), p=0.5)
    video = torch.rand(8, 3, T, H, W)
    out = K.VideoSequential(aug, data_format="BCTHW")(video)
    program = aug.motion_program()
    skipped = (program.homography == torch.eye(3)).flatten(1).all(1)
    assert 0 < skipped.sum() < 8
    torch.testing.assert_close(out[skipped], video[skipped])
    torch.testing.assert_close(out, render.augment_clips(video, program, (H, W)))


def test_errors():
    with pytest.raises(ValueError, match="`config` must have no 'cutmix' transform and mixup=None"):
        PseudoMotionAugmentation(config(mixup="frame"))
    with pytest.raises(ValueError, match="`config` must have no 'cutmix'"):
        PseudoMotionAugmentation(config(transforms=("cutmix",)))
    with pytest.raises(TypeError, match="`config` must be a PMGConfig"):
        PseudoMotionAugmentation({"num_frames": 4})
    aug = PseudoMotionAugmentation(config())
    with pytest.raises(ValueError, match=r"`input` must be the \(B \* T, C, H, W\) frames"):
        aug(torch.rand(2, 3, H, W))                                        # a plain image batch
    with pytest.raises(ValueError, match=r"`input` must be the \(B \* T, C, H, W\) frames"):
        K.VideoSequential(aug, data_format="BCTHW", same_on_frame=False)(torch.rand(2, 3, T, H, W))


def test_inverse_undoes_the_geometry():
    torch.manual_seed(4)
    aug = PseudoMotionAugmentation(config())
    pipeline = K.AugmentationSequential(K.VideoSequential(aug, data_format="BCTHW"), data_keys=["input", "keypoints"])
    ramp = torch.linspace(0, 1, W) * 0.6 + torch.linspace(0, 1, H)[:, None] * 0.4    # bilinear reads are near exact
    video = ramp.expand(2, 3, T, H, W).clone()
    keypoints = torch.rand(2, T, 5, 2) * torch.tensor([W - 1, H - 1])
    out, moved = pipeline(video, keypoints)
    back, restored = pipeline.inverse(out, moved)
    torch.testing.assert_close(restored, keypoints, atol=1e-3, rtol=0)
    # away from the edges (content that left the frame is lost) the frames come back
    torch.testing.assert_close(back[..., 6:-6, 6:-6], video[..., 6:-6, 6:-6], atol=0.02, rtol=0)
