"""PseudoMotion.augment: pseudo-motion on real clips (B, 3, T, H, W) -- frame t of a clip warped and
coloured by the program's frame t. Checked against rendering each frame as a still image under the
program's frame t, against OpenCV per frame, and for the identity program, layouts, dtypes and errors."""
import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pmg_dali import TRANSFORMS, MotionProgram, PMGConfig, PseudoMotion
from pmg_dali.render import augment, augment_clips, render

T, SIZE = 4, (18, 22)
WILD = dict(affine_degrees=20.0, affine_translate=0.15, perspective_distortion=0.1,
            sliding_window_speed=(0.1, 0.2), cutmix_speed=(0.1, 0.2))


def make(transforms=TRANSFORMS, **kw):
    kw = {"num_frames": T, "size": SIZE, "mixup": None, "normalize": False, **kw}
    return PseudoMotion(PMGConfig(transforms=transforms, **kw), renderer="reference")


def random_video(b, size=SIZE, dtype=torch.uint8, seed=0, frames=T):
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (b, 3, frames, *size), dtype=torch.uint8, generator=g)
    return video if dtype == torch.uint8 else video.to(dtype) / 255


def smooth_video(b, seed=0):
    """Float (B, 3, T, H, W) in [0, 1] with gentle gradients (bilinear-friendly, for OpenCV)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b * T, 3, 5, 6, generator=g)
    frames = F.interpolate(coarse, size=SIZE, mode="bicubic", align_corners=True).clamp(0, 1)
    return frames.view(b, T, 3, *SIZE).transpose(1, 2).contiguous()


def frame_program(program: MotionProgram, t: int) -> MotionProgram:
    """The one-frame program of frame t: per-frame fields sliced, per-clip fields kept."""
    per_frame = {"homography", "color", "paste_homography", "paste_box"}
    return dataclasses.replace(program, **{k: v[:, t:t + 1] if k in per_frame or (k == "mix_lambda" and v.ndim == 2)
                                           else v for k, v in program.tensors().items()})


def frame_view(clips, cfg, t):
    return clips[:, :, t] if cfg.layout == "BCTHW" else clips[:, t]


CASES = [  # (transforms, config options, video dtype, video size)
    (TRANSFORMS, dict(mixup="frame", dtype=torch.float32, normalize=True), torch.uint8, SIZE),
    (("cutmix", "zoom"), dict(mixup="videomix", layout="BTCHW", padding_mode="border", **WILD), torch.float32, SIZE),
    (("affine", "perspective", "color_jitter"), dict(mixup="frame", mixup_per_frame=True, dtype=torch.uint8,
                                                     padding_mode="reflection", **WILD), torch.uint8, (25, 31)),
    (("sliding_window", "fade", "cutmix"), dict(mixup=None, dtype=torch.bfloat16, normalize=True), torch.float16,
     (14, 40)),
]


@pytest.mark.parametrize("transforms,options,dtype,size", CASES)
def test_frame_t_is_the_image_render_of_video_frame_t(transforms, options, dtype, size):
    """augment(video)[:, :, t] == render(video[:, :, t], program frame t): cutmix takes the partner
    clip's frame t, Mixup / VideoMix the partner's augmented frame t, resizing is per frame."""
    gen = make(transforms, **options)
    cfg = gen.config
    video = random_video(6, size, dtype)
    program = gen.sample(6, generator=torch.Generator().manual_seed(1))
    clips = gen.augment(video, program=program)
    assert clips.dtype == cfg.dtype and clips.is_contiguous()
    for t in range(T):
        expect = frame_view(render(video[:, :, t], frame_program(program, t), cfg.replace(num_frames=1)), cfg, 0)
        got = frame_view(clips, cfg, t)
        if cfg.dtype == torch.uint8:
            assert (got.int() - expect.int()).abs().max() <= 1 and (got != expect).float().mean() < 0.01
        else:
            torch.testing.assert_close(got.float(), expect.float(), atol=1e-5, rtol=0)


def test_geometric_frames_match_opencv_per_frame():
    """Independent reference: cv2.warpPerspective of the video's frame t with homography[b, t]."""
    gen = make(("zoom", "affine", "perspective"))
    video = smooth_video(3)
    program = gen.sample(3, generator=torch.Generator().manual_seed(2))
    clips = gen.augment(video, program=program)
    for b in range(3):
        for t in range(T):
            src = video[b, :, t].permute(1, 2, 0).numpy()
            ref = cv2.warpPerspective(src, program.homography[b, t].double().numpy(), (SIZE[1], SIZE[0]),
                                      flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            ours = clips[b, :, t].permute(1, 2, 0).numpy()
            assert np.abs(ours - ref).max() < 0.02 and np.abs(ours - ref).mean() < 2e-3


def test_real_motion_is_kept_frame_by_frame():
    """A video whose frames differ, under a program that only translates: frame t is frame t shifted
    (not frame 0 shifted) -- the program's motion composes with the video's."""
    video = random_video(1, dtype=torch.float32)
    h = torch.eye(3).repeat(1, T, 1, 1)
    h[0, :, 0, 2] = torch.arange(T).float()                       # shift right by t pixels
    program = MotionProgram(homography=h, color=torch.eye(3, 4).repeat(1, T, 1, 1),
                            transform=torch.zeros(1, dtype=torch.long))
    clips = make().augment(video, program=program)
    for t in range(T):
        torch.testing.assert_close(clips[0, :, t, :, t:], video[0, :, t, :, :SIZE[1] - t], atol=1e-5, rtol=0)
        assert float(clips[0, :, t, :, :t].abs().sum()) < 1e-4       # entered from outside: zeros


def identity_program(b):
    return MotionProgram(homography=torch.eye(3).repeat(b, T, 1, 1), color=torch.eye(3, 4).repeat(b, T, 1, 1),
                         transform=torch.zeros(b, dtype=torch.long))


def test_identity_program_returns_the_video_resized():
    video = random_video(3)
    same = make(dtype=torch.uint8).augment(video, program=identity_program(3))
    assert torch.equal(same, video)
    big = random_video(2, size=(40, 30), dtype=torch.float32)
    resized = F.interpolate(big.transpose(1, 2).reshape(2 * T, 3, 40, 30), size=SIZE, mode="bilinear",
                            antialias=True, align_corners=False).clamp(0, 1)
    expect = resized.view(2, T, 3, *SIZE).transpose(1, 2)
    torch.testing.assert_close(make().augment(big, program=identity_program(2)), expect, atol=1e-6, rtol=0)
    sampled = make(("identity",)).augment(big, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sampled, expect, atol=1e-6, rtol=0)


def test_layouts_dtypes_and_normalisation():
    video = random_video(3)
    program = make(mixup="frame").sample(3, generator=torch.Generator().manual_seed(0))
    raw = make(mixup="frame").augment(video, program=program)
    norm = make(mixup="frame", normalize=True).augment(video, program=program)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(norm, (raw - mean) / std)
    btchw = make(mixup="frame", normalize=True, layout="BTCHW").augment(video, program=program)
    assert btchw.shape == (3, T, 3, *SIZE) and btchw.is_contiguous()
    assert torch.equal(btchw, norm.permute(0, 2, 1, 3, 4))
    u8 = make(mixup="frame", dtype=torch.uint8).augment(video, program=program)
    assert torch.equal(u8, (raw * 255).round().to(torch.uint8))
    bf16 = make(mixup="frame", normalize=True, dtype=torch.bfloat16).augment(video, program=program)
    assert bf16.dtype == torch.bfloat16 and torch.equal(bf16, norm.to(torch.bfloat16))


def test_uint8_and_float_videos_agree_and_are_not_modified():
    u8 = random_video(3)
    f32 = u8.float() / 255
    u8_copy, f32_copy = u8.clone(), f32.clone()
    gen = make(mixup="frame")
    program = gen.sample(3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gen.augment(u8, program=program), gen.augment(f32, program=program))
    assert torch.equal(u8, u8_copy) and torch.equal(f32, f32_copy)


def test_generator_replay_and_empty_batch():
    gen = make(mixup="frame")
    video = random_video(4)
    a = gen.augment(video, generator=torch.Generator().manual_seed(3))
    b = gen.augment(video, program=gen.sample(4, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(a, b)
    empty = make(mixup="videomix", dtype=torch.uint8).augment(random_video(0), generator=torch.Generator())
    assert empty.shape == (0, 3, T, *SIZE) and empty.dtype == torch.uint8


def test_renderer_selection():
    from pmg_dali.fused import augment_fused

    cpu = torch.device("cpu")
    assert PseudoMotion(make().config, renderer="auto").augment_function(torch.device("cuda")) is augment_fused
    assert PseudoMotion(make().config, renderer="fused").augment_function(cpu) is augment_fused
    for name in ("auto", "reference", "cpu"):    # the CPU renderer draws from still images only
        fn = PseudoMotion(make().config, renderer=name).augment_function(cpu)
        video = random_video(2)
        program = make().sample(2, generator=torch.Generator().manual_seed(0))
        assert torch.equal(fn(video, program, make().config), augment(video, program, make().config))


def test_errors():
    gen = make()
    program = gen.sample(2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"`video` must have shape \(B, 3, T, H, W\) with B = 2 clips and "
                                         r"T = 4 frames \(the program's\), but got \(2, 3, 5, 18, 22\)"):
        gen.augment(random_video(2, frames=5), program=program)
    with pytest.raises(ValueError, match=r"with B = 2 clips .* but got \(3, 3, 4, 18, 22\)"):
        gen.augment(random_video(3), program=program)
    with pytest.raises(ValueError, match=r"`video` must have shape \(B, 3, T, H, W\), but got \(2, 3, 18, 22\)"):
        gen.augment(torch.zeros(2, 3, *SIZE), program=program)
    with pytest.raises(TypeError, match="`video` must be uint8 or floating point, but got torch.int32"):
        gen.augment(torch.zeros(2, 3, T, *SIZE, dtype=torch.int32), program=program)
    with pytest.raises(TypeError, match="`video` must be a torch.Tensor, but got ndarray"):
        gen.augment(np.zeros((2, 3, T, *SIZE), np.float32), program=program)
    with pytest.raises(TypeError, match="`video` must be a torch.Tensor, but got list"):   # the function, too
        augment([[0.0]], program, gen.config)
    with pytest.raises(TypeError, match="`program` must be a MotionProgram, but got str"):
        gen.augment(random_video(2), program="zoom")
    with pytest.raises(TypeError, match="`program` must be a MotionProgram, but got str"):   # the unmixed step
        augment_clips(random_video(2), "zoom", SIZE)
    with pytest.raises(ValueError, match="`program` must have 4 frames"):
        gen.augment(random_video(2, frames=3), program=make(num_frames=3).sample(2))
    iterative = make(recursion="iterative")
    with pytest.raises(ValueError, match="`config.recursion` must be 'composed' to augment real clips"):
        iterative.augment(random_video(2), program=program)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    """The CUDA path (the fused kernel under renderer="auto") against the CPU reference."""
    gen = PseudoMotion(make(mixup="frame", dtype=torch.bfloat16, normalize=True).config)
    video = random_video(5)
    program = gen.sample(5, generator=torch.Generator().manual_seed(0))
    cpu = gen.augment(video, program=program)
    cuda = gen.augment(video.cuda(), program=program)
    assert cuda.device.type == "cuda" and cuda.dtype == torch.bfloat16
    torch.testing.assert_close(cuda.cpu().float(), cpu.float(), atol=2e-2, rtol=2 ** -7)
    ref = PseudoMotion(gen.config, renderer="reference").augment(video.cuda(), program=program.to("cuda"))
    torch.testing.assert_close(ref.cpu().float(), cpu.float(), atol=2e-2, rtol=2 ** -7)
