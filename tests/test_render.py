"""The reference renderer against independent references: OpenCV, a from-scratch NumPy bilinear warp,
per-pixel NumPy colour maps, the literal step-by-step recursion and naive loops for mixing."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pmg_dali import TRANSFORMS, MotionProgram, PMGConfig, PseudoMotion
from pmg_dali.render import render, render_clips

T, SIZE = 5, (36, 44)
GEOMETRIC = ("sliding_window", "zoom", "affine", "perspective")


def smooth_images(b, seed=0, size=SIZE, low=0.0, high=1.0):
    """(B, 3, H, W) float images in [low, high] with gentle gradients (bilinear-interpolation friendly)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 6, 7, generator=g)
    img = F.interpolate(coarse, size=size, mode="bicubic", align_corners=True).clamp(0, 1)
    return low + (high - low) * img


def make(transforms, **kw):
    kw = {"num_frames": T, "size": SIZE, "mixup": None, "normalize": False, **kw}
    return PseudoMotion(PMGConfig(transforms=transforms, **kw))


def sample(gen, b, seed=0):
    return gen.sample(b, generator=torch.Generator().manual_seed(seed))


def numpy_warp(src, h, padding_mode):
    """From-scratch bilinear warp, (C, H, W) float64 source, frame = src sampled at h^-1 (x, y, 1)."""
    c, hh, ww = src.shape
    ys, xs = np.mgrid[0:hh, 0:ww].astype(np.float64)
    q = np.linalg.inv(h) @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    sx, sy = q[0] / q[2], q[1] / q[2]
    if padding_mode == "border":
        sx, sy = np.clip(sx, 0, ww - 1), np.clip(sy, 0, hh - 1)
    if padding_mode == "reflection":   # mirror about the edge pixel centres
        fold = lambda v, n: (n - 1) - np.abs((np.abs(v) % (2 * (n - 1))) - (n - 1))  # noqa: E731
        sx, sy = fold(sx, ww), fold(sy, hh)
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = sx - x0, sy - y0
    out = np.zeros((c, xs.size))
    for dx, dy, wgt in [(0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)]:
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < ww) & (yi >= 0) & (yi < hh)
        out[:, ok] += wgt[ok] * src[:, yi[ok], xi[ok]]
    return out.reshape(c, hh, ww)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_geometric_frames_match_opencv(name):
    gen = make((name,))
    images = smooth_images(4)
    p = sample(gen, 4)
    clips = gen(images, program=p)
    for b in range(4):
        src = images[b].permute(1, 2, 0).numpy().astype(np.float32)
        for t in range(T):
            ref = cv2.warpPerspective(src, p.homography[b, t].double().numpy(), (SIZE[1], SIZE[0]),
                                      flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            ours = clips[b, :, t].permute(1, 2, 0).numpy()
            # OpenCV quantises sub-pixel positions to 1/32 px; smooth images keep that small
            assert np.abs(ours - ref).max() < 0.02 and np.abs(ours - ref).mean() < 2e-3


@pytest.mark.parametrize("padding_mode, border", [("zeros", cv2.BORDER_CONSTANT), ("border", cv2.BORDER_REPLICATE),
                                                  ("reflection", cv2.BORDER_REFLECT_101)])
def test_padding_modes_match_opencv_and_numpy(padding_mode, border):
    gen = make(("affine",), affine_degrees=8.0, affine_translate=0.05, padding_mode=padding_mode)
    images = smooth_images(3, seed=1)
    p = sample(gen, 3, seed=2)
    clips = gen(images, program=p)
    for b in range(3):
        for t in (1, T - 1):
            h = p.homography[b, t].double().numpy()
            exact = numpy_warp(images[b].double().numpy(), h, padding_mode)
            np.testing.assert_allclose(clips[b, :, t].numpy(), exact, atol=2e-4)
            ref = cv2.warpPerspective(images[b].permute(1, 2, 0).numpy(), h, (SIZE[1], SIZE[0]),
                                      flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
            assert np.abs(clips[b, :, t].permute(1, 2, 0).numpy() - ref).max() < 0.02


@pytest.mark.parametrize("name", ["fade", "color_jitter"])
def test_colour_frames_are_the_per_pixel_affine_map(name):
    gen = make((name,), jitter_hue=0.05, jitter_saturation=0.2)
    images = smooth_images(4)
    p = sample(gen, 4)
    clips = gen(images, program=p).numpy()
    rgb = images.numpy().reshape(4, 3, -1)
    for b in range(4):
        for t in range(T):
            m = p.color[b, t].double().numpy()
            ref = np.clip(m[:, :3] @ rgb[b] + m[:, 3:], 0, 1).reshape(3, *SIZE)
            np.testing.assert_allclose(clips[b, :, t], ref, atol=1e-5)


@pytest.mark.parametrize("name, crop", [("zoom", 0), ("fade", 0), ("color_jitter", 0), ("identity", 0),
                                        ("sliding_window", 9), ("affine", 9), ("perspective", 9)])
def test_composed_equals_the_literal_recursion(name, crop):
    """Closed form (frame t from the source once) vs I_{t+1} = f(I_t), resampled every step: equal up to
    the blur of repeated resampling, and away from content the literal recursion lost off-frame."""
    kw = dict(zoom_scale=(0.9, 0.95), fade_gain=(0.9, 0.95))
    images = smooth_images(6, low=0.25, high=0.75)
    composed = make((name,), **kw)
    iterative = make((name,), recursion="iterative", **kw)
    p = sample(composed, 6)
    a, b = composed(images, program=p), iterative(images, program=p)
    sl = (slice(None), slice(None), slice(None), slice(crop, SIZE[0] - crop), slice(crop, SIZE[1] - crop))
    assert (a[sl] - b[sl]).abs().max() < 0.03
    torch.testing.assert_close(a[:, :, 0], b[:, :, 0])


def test_iterative_recursion_resamples_each_step():
    """A shift of half a pixel per step: the literal recursion averages neighbours at every step
    (frame 2 = [1/4, 1/2, 1/4] filter), the closed form samples the source once (frame 2 = shift by 1)."""
    h = torch.eye(3).repeat(1, 3, 1, 1)
    h[0, :, 0, 2] = torch.tensor([0.0, 0.5, 1.0])
    p = MotionProgram(homography=h, color=torch.eye(3, 4).repeat(1, 3, 1, 1),
                      transform=torch.zeros(1, dtype=torch.long))
    src = torch.rand(1, 3, *SIZE, generator=torch.Generator().manual_seed(0))
    s = src[0].numpy()
    composed = render_clips(src, p, SIZE)[0, :, 2].numpy()
    iterative = render_clips(src, p, SIZE, recursion="iterative")[0, :, 2].numpy()
    np.testing.assert_allclose(composed[:, :, 1:], s[:, :, :-1], atol=1e-5)
    expect = 0.25 * s[:, :, :-2] + 0.5 * s[:, :, 1:-1] + 0.25 * s[:, :, 2:]
    np.testing.assert_allclose(iterative[:, :, 2:], expect, atol=1e-5)


def test_frame_mixup_equals_a_naive_loop():
    mixed = make(("zoom", "affine"), mixup="frame")
    images = smooth_images(5)
    p = sample(mixed, 5)
    clips = render_clips(images, p, SIZE)     # the unmixed clips of the same program
    out = mixed(images, program=p)
    for b in range(5):
        lam, partner = float(p.mix_lambda[b]), int(p.mix_index[b])
        torch.testing.assert_close(out[b], lam * clips[b] + (1 - lam) * clips[partner], atol=1e-6, rtol=0)


def test_per_frame_mixup_lambda():
    mixed = make(("zoom",), mixup="frame", mixup_per_frame=True)
    images = smooth_images(3)
    p = sample(mixed, 3)
    clips = render_clips(images, p, SIZE)
    out = mixed(images, program=p)
    for b in range(3):
        for t in range(T):
            lam, partner = float(p.mix_lambda[b, t]), int(p.mix_index[b])
            torch.testing.assert_close(out[b, :, t], lam * clips[b, :, t] + (1 - lam) * clips[partner, :, t],
                                       atol=1e-6, rtol=0)


def test_videomix_takes_the_partner_cuboid():
    mixed = make(("zoom",), mixup="videomix")
    images = smooth_images(4)
    p = sample(mixed, 4)
    clips = render_clips(images, p, SIZE)
    out = mixed(images, program=p)
    for b in range(4):
        x0, y0, x1, y1 = (int(v + 0.5) for v in p.mix_box[b].tolist())
        expect = clips[b].clone()
        expect[:, :, y0:y1, x0:x1] = clips[int(p.mix_index[b]), :, :, y0:y1, x0:x1]
        assert torch.equal(out[b], expect)
        kept = 1 - (x1 - x0) * (y1 - y0) / (SIZE[0] * SIZE[1])
        assert abs(kept - float(p.mix_lambda[b])) < 1e-6


def test_cutmix_paste_position_per_frame():
    colours = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.5, 0.1], [0.3, 0.8, 0.6], [0.6, 0.1, 0.9]])
    images = colours[:, :, None, None].expand(4, 3, *SIZE).contiguous()
    gen = make(("cutmix",), cutmix_scale=(0.3, 0.5), cutmix_speed=(0.02, 0.03))
    p = sample(gen, 4)
    clips = gen(images, program=p)
    xs, ys = torch.arange(SIZE[1]).float(), torch.arange(SIZE[0]).float()
    for b in range(4):
        partner = colours[p.paste_index[b]]
        for t in range(T):
            x0, y0, x1, y1 = p.paste_box[b, t].tolist()
            inside = ((ys[:, None] >= y0) & (ys[:, None] < y1) & (xs >= x0) & (xs < x1))
            frame = clips[b, :, t]
            assert inside.sum() > 0.05 * inside.numel()
            torch.testing.assert_close(frame[:, inside], partner[:, None].expand(3, int(inside.sum())))
            torch.testing.assert_close(frame[:, ~inside], colours[b][:, None].expand(3, int((~inside).sum())))


def test_cutmix_patch_content_slides_with_the_box():
    images = smooth_images(3)
    gen = make(("cutmix",), cutmix_speed=(0.05, 0.05))
    p = sample(gen, 3)
    clips = gen(images, program=p)
    for b in range(3):
        x0, y0, x1, y1 = p.paste_box[b, 0].tolist()
        u0 = x0 - float(p.paste_homography[b, 0, 0, 2])     # where the patch was cut in the partner
        v0 = y0 - float(p.paste_homography[b, 0, 1, 2])
        ref = numpy_warp(images[p.paste_index[b]].double().numpy(), p.paste_homography[b, T - 1].double().numpy(),
                         "border")
        xl, yl, xr, yr = (int(np.ceil(v)) for v in p.paste_box[b, T - 1].tolist())
        np.testing.assert_allclose(clips[b, :, T - 1, yl:yr, xl:xr].numpy(), ref[:, yl:yr, xl:xr], atol=2e-4)
        assert -0.5 - 1e-4 <= u0 and -0.5 - 1e-4 <= v0


def test_program_replay_and_determinism():
    gen = make(TRANSFORMS, mixup="frame")
    images = smooth_images(8)
    a = gen(images, generator=torch.Generator().manual_seed(3))
    b = gen(images, generator=torch.Generator().manual_seed(3))
    c = gen(images, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    p = sample(gen, 8, seed=3)
    assert torch.equal(gen(images, program=p), a)


@pytest.mark.parametrize("name", ["identity", "affine", "perspective", "color_jitter"])
def test_frame_zero_is_the_resized_source(name):
    """With ``framing="whole"``; by default affine and perspective clips start on a crop of it."""
    images = (smooth_images(3, size=(50, 70)) * 255).round().to(torch.uint8)
    clips = make((name,), framing="whole")(images, generator=torch.Generator().manual_seed(0))
    resized = F.interpolate(images.float() / 255, size=SIZE, mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(clips[:, :, 0], resized.clamp(0, 1), atol=1e-5, rtol=0)


def test_layouts_dtypes_and_normalisation():
    images = smooth_images(3)
    p = sample(make(("zoom", "fade"), mixup="frame"), 3)
    raw = make(("zoom", "fade"), mixup="frame")(images, program=p)       # float32 in [0, 1], BCTHW
    norm = make(("zoom", "fade"), mixup="frame", normalize=True)(images, program=p)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(norm, (raw - mean) / std)
    btchw = make(("zoom", "fade"), mixup="frame", normalize=True, layout="BTCHW")(images, program=p)
    assert btchw.shape == (3, T, 3, *SIZE) and btchw.is_contiguous()
    torch.testing.assert_close(btchw, norm.permute(0, 2, 1, 3, 4))
    u8 = make(("zoom", "fade"), mixup="frame", dtype=torch.uint8)(images, program=p)
    assert u8.dtype == torch.uint8 and torch.equal(u8, (raw * 255).round().to(torch.uint8))
    for dtype in (torch.float16, torch.bfloat16):
        half = make(("zoom", "fade"), mixup="frame", normalize=True, dtype=dtype)(images, program=p)
        assert half.dtype == dtype and torch.equal(half, norm.to(dtype))


def test_uint8_and_float_inputs_agree_and_are_not_modified():
    u8 = (smooth_images(2) * 255).round().to(torch.uint8)
    f32 = u8.float() / 255
    u8_copy, f32_copy = u8.clone(), f32.clone()
    gen = make(("affine",), mixup="frame")
    p = sample(gen, 2)
    torch.testing.assert_close(gen(u8, program=p), gen(f32, program=p))
    assert torch.equal(u8, u8_copy) and torch.equal(f32, f32_copy)


def test_any_input_size_is_resized_antialiased():
    big = smooth_images(2, size=(90, 130))
    gen = make(("zoom",))
    p = sample(gen, 2)
    resized = F.interpolate(big, size=SIZE, mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(gen(big, program=p), gen(resized, program=p))
    assert gen(big, program=p).shape == (2, 3, T, *SIZE)


def test_empty_batch():
    gen = make(TRANSFORMS, mixup="videomix", dtype=torch.uint8)
    out = gen(torch.zeros(0, 3, 20, 20, dtype=torch.uint8), generator=torch.Generator().manual_seed(0))
    assert out.shape == (0, 3, T, *SIZE) and out.dtype == torch.uint8


def test_input_errors():
    gen = make(("zoom",))
    with pytest.raises(ValueError, match=r"`images` must have shape \(B, 3, H, W\), but got \(3, 36, 44\)"):
        gen(torch.zeros(3, *SIZE))
    with pytest.raises(TypeError, match="`images` must be uint8 or floating point"):
        gen(torch.zeros(1, 3, *SIZE, dtype=torch.int32))
    with pytest.raises(TypeError, match="`images` must be a torch.Tensor"):
        gen(np.zeros((1, 3, *SIZE), np.float32))
    with pytest.raises(TypeError, match="`images` must be a torch.Tensor, but got list"):   # the function, too
        render([[0.0]], sample(gen, 1), gen.config)
    with pytest.raises(TypeError, match="`program`"):
        gen(torch.zeros(1, 3, *SIZE), program="zoom")
    p = make(("zoom",), num_frames=3).sample(1)
    with pytest.raises(ValueError, match="`program` must have 5 frames"):
        gen(torch.zeros(1, 3, *SIZE), program=p)
    with pytest.raises(ValueError, match="one image per clip"):
        render_clips(torch.zeros(2, 3, *SIZE), sample(gen, 3), SIZE)


@pytest.mark.gpu
@pytest.mark.parametrize("recursion", ["composed", "iterative"])
def test_cpu_equals_cuda(recursion):
    gen = make(TRANSFORMS, mixup="frame", recursion=recursion)
    images = (smooth_images(8) * 255).round().to(torch.uint8)
    p = sample(gen, 8)
    cpu = gen(images, program=p)
    cuda = gen(images.cuda(), program=p.to("cuda"))
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, atol=2e-3, rtol=0)


@pytest.mark.parametrize("renderer", ["reference", "cpu"])
@pytest.mark.parametrize("name", ["affine", "perspective"])
def test_white_image_stays_white_with_the_default_framing(renderer, name):
    """No padding reaches a clip by default: a white image through affine or perspective motion (default
    ranges, frame Mixup, uint8) is white in every frame; the literal framing shows padding."""
    white = torch.full((8, 3, 60, 52), 255, dtype=torch.uint8)
    cfg = PMGConfig(num_frames=16, size=48, transforms=(name,), dtype=torch.uint8)
    clips = PseudoMotion(cfg, renderer=renderer)(white, generator=torch.Generator().manual_seed(0))
    assert int(clips.min()) >= 250
    literal = PseudoMotion(cfg.replace(framing="whole"), renderer=renderer)(
        white, generator=torch.Generator().manual_seed(0))
    assert int(literal.min()) < 250


def test_resizing_in_chunks_equals_one_batch(monkeypatch):
    """Images are resized a few at a time (no float32 copy of a whole batch of large uint8 images):
    the result is the one-batch antialiased resize."""
    from pmg_dali import render as reference
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 37, 23), dtype=torch.uint8, generator=g)
    whole = F.interpolate(images.float() / 255, size=(16, 12), mode="bilinear", antialias=True,
                          align_corners=False).clamp(0, 1)
    monkeypatch.setattr(reference, "RESIZE_CHUNK_BYTES", 2 * 4 * images[0].numel())     # two images a chunk
    assert torch.equal(reference.to_float_images(images, (16, 12)), whole)
    assert torch.equal(reference.to_float_images(images.float() / 255, (16, 12)), whole)
    assert torch.equal(reference.to_float_images(images, (37, 23)), images.float() / 255)   # no resize
    default = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)               # float32 whatever the default dtype
        assert reference.to_float_images(images, (16, 12)).dtype == torch.float32
    finally:
        torch.set_default_dtype(default)


def test_program_prints_shapes_not_numbers():
    program = PseudoMotion(PMGConfig(num_frames=4, transforms=("cutmix",))).sample(3)
    text = repr(program)
    assert text.startswith("MotionProgram(batch_size=3, num_frames=4, device='cpu', homography=(3, 4, 3, 3) float32")
    assert "paste_box=(3, 4, 4) float32" in text and "tensor(" not in text
