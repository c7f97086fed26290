"""Motion ground truth (pmg_dali.targets): flow against cv2.remap of the rendered frames, tracks against
cv2.perspectiveTransform, the layers of cutmix / VideoMix / frame Mixup, and RAFT trained on our flow."""
import dataclasses
import types

import cv2
import numpy as np
import pytest
import torch

from conftest import boxes_past_pixel_centres
import pmg_dali
from pmg_dali import render
from pmg_dali.program import MotionProgram
from pmg_dali.rules import box_mask
from pmg_dali.targets import LAYERS, flow_targets, grid_points, visible_layers

SIZE = (40, 56)


def textured(batch: int, size=SIZE, seed: int = 0) -> torch.Tensor:
    """(B, 3, H, W) float in [0, 1]: blurred noise, texture at every pixel."""
    rng = np.random.default_rng(seed)
    h, w = size
    noise = rng.random((batch, h, w, 3)).astype(np.float32)
    img = np.stack([cv2.GaussianBlur(n, (0, 0), 2.0) for n in noise])
    img = (img - img.min()) / (img.max() - img.min())
    return torch.from_numpy(img).permute(0, 3, 1, 2).contiguous()


def make(transforms, batch=3, frames=5, mixup=None, seed=0, **kw):
    kw = {"affine_degrees": 4.0, "affine_translate": 0.03, "perspective_distortion": 0.03, **kw}
    cfg = pmg_dali.PMGConfig(num_frames=frames, size=SIZE, transforms=transforms, mixup=mixup,
                             dtype=torch.float32, normalize=False, **kw)
    gen = pmg_dali.PseudoMotion(cfg, renderer="reference")
    program = gen.sample(batch, generator=torch.Generator().manual_seed(seed))
    return cfg, program, gen(textured(batch, seed=seed), program=program)


def remap_error(clips, flow, valid):
    """Per (b, t): mean |cv2.remap(frame[t + 1], p + flow[t]) - frame[t]| over valid pixels, and the
    fraction of valid pixels."""
    h, w = clips.shape[-2:]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = []
    for b in range(clips.shape[0]):
        for t in range(clips.shape[2] - 1):
            f = flow[b, t].numpy()
            nxt = clips[b, :, t + 1].permute(1, 2, 0).numpy()
            cur = clips[b, :, t].permute(1, 2, 0).numpy()
            back = cv2.remap(nxt, xs + f[0], ys + f[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            v = valid[b, t].numpy()
            out.append((np.abs(back - cur)[v].mean() if v.any() else 0.0, v.mean()))
    return np.array(out)


@pytest.mark.parametrize("transform", ["affine", "perspective", "zoom", "sliding_window", "cutmix", "affine+cutmix"])
def test_flow_remaps_next_frame_onto_frame(transform):
    cfg, program, clips = make(tuple(transform.split("+")), batch=4)
    flow, valid = program.flow(SIZE)
    b, t = program.batch_size, program.num_frames
    assert flow.shape == (b, t - 1, 2, *SIZE) and flow.dtype == torch.float32
    assert valid.shape == (b, t - 1, *SIZE) and valid.dtype == torch.bool
    err = remap_error(clips, flow, valid)
    assert err[:, 0].max() < 3 / 255, err[:, 0].max() * 255
    assert err[:, 1].mean() > 0.8                  # most pixels keep their content in frame


def test_flow_is_the_homography_difference():
    _, program, _ = make(("perspective",))
    flow, _ = flow_targets(program, SIZE[1] if SIZE[0] == SIZE[1] else SIZE)
    h = program.homography.double()
    b, t, y, x = 1, 2, 17, 30
    p = h[b, t + 1] @ torch.linalg.inv(h[b, t]) @ torch.tensor([x, y, 1.0], dtype=torch.float64)
    expected = (p[:2] / p[2]).float() - torch.tensor([x, y], dtype=torch.float32)
    torch.testing.assert_close(flow[b, t, :, y, x], expected, atol=1e-4, rtol=0)


def test_flow_invalid_where_content_leaves_frame_or_comes_from_padding():
    h = torch.eye(3).repeat(1, 2, 1, 1)
    h[0, 1, 0, 2] = 3.0                               # frame 1: the image moved 3 px right
    program = MotionProgram(homography=h, color=torch.eye(3, 4).repeat(1, 2, 1, 1), transform=torch.zeros(1).long())
    flow, valid = program.flow(SIZE)
    assert torch.allclose(flow[0, 0, 0], torch.tensor(3.0)) and torch.allclose(flow[0, 0, 1], torch.tensor(0.0))
    w = SIZE[1]
    assert valid[0, 0, :, : w - 3].all() and not valid[0, 0, :, w - 3:].any()
    # backwards in time the content comes from the left padding
    program = dataclasses.replace(program, homography=h.flip(1).contiguous())
    _, valid = program.flow(SIZE)
    assert not valid[0, 0, :, :3].any() and valid[0, 0, :, 3:].all()


def test_flow_cutmix_layers():
    _, program, clips = make(("cutmix",), frames=4, cutmix_speed=(0.05, 0.08))
    flow, valid = program.flow(SIZE)
    box = program.paste_box
    for b in range(program.batch_size):
        x0, y0, x1, y1 = box[b, 0].tolist()
        xs, ys = torch.arange(SIZE[1]), torch.arange(SIZE[0])
        inside = ((ys[:, None] >= y0) & (ys[:, None] < y1) & (xs >= x0) & (xs < x1))
        velocity = (box[b, 1, :2] - box[b, 0, :2])
        # on the patch, flow is the patch's velocity; off it, the background is still (identity program)
        torch.testing.assert_close(flow[b, 0, :, inside].T, velocity.expand(int(inside.sum()), 2), atol=1e-3, rtol=0)
        assert flow[b, 0, :, ~inside].abs().max() < 1e-4
        # background pixels (which stand still) the patch covers at t + 1 are invalid, the others valid
        x0n, y0n, x1n, y1n = box[b, 1].tolist()
        covered = ((ys[:, None] >= y0n) & (ys[:, None] < y1n) & (xs >= x0n) & (xs < x1n))
        assert valid[b, 0][~inside & ~covered].all() and not valid[b, 0][~inside & covered].any()
    err = remap_error(clips, flow, valid)
    assert err[:, 0].max() < 3 / 255


def test_flow_videomix_takes_partner_inside_box():
    _, program, _ = make(("affine", "zoom"), batch=4, mixup="videomix", seed=3)
    flow, valid = program.flow(SIZE)
    own, own_valid = flow_targets(dataclasses.replace(program, mix_index=None, mix_lambda=None, mix_box=None), SIZE)
    j = program.mix_index
    inside = box_mask(program.mix_box, SIZE)[:, None]             # (B, 1, H, W)
    torch.testing.assert_close(flow, torch.where(inside[:, :, None], own[j], own))
    assert not (valid & inside & ~own_valid[j]).any() and not (valid & ~inside & ~own_valid).any()
    # the rendered (mixed) clip obeys the flow on valid pixels
    cfg, program, clips = make(("affine", "perspective"), batch=4, mixup="videomix", seed=3)
    flow, valid = program.flow(SIZE)
    assert remap_error(clips, flow, valid)[:, 0].max() < 3 / 255


def test_flow_layers_follow_the_boxes_as_given():
    """Boxes with an edge just past a pixel centre, in float64 (a hand-made program may hold them): the
    flow of every pixel is that of the layer the renderer lays there (visible_layers), to the last column."""
    program = boxes_past_pixel_centres(make(("zoom", "cutmix"), batch=4, mixup="videomix", seed=5)[1])
    plain = dataclasses.replace(program, paste_index=None, paste_homography=None, paste_box=None, mix_index=None,
                                mix_lambda=None, mix_box=None)
    own = flow_targets(plain, SIZE)[0]                                       # each layer's own motion
    patch = flow_targets(dataclasses.replace(plain, homography=program.paste_homography), SIZE)[0]
    j = program.mix_index
    layers = {"image": own, "patch": patch, "partner image": own[j], "partner patch": patch[j]}
    shown = visible_layers(program, SIZE)[:, :-1]                           # (B, T - 1, H, W)
    expect = torch.stack([layers[name] for name in LAYERS])                  # (layers, B, T - 1, 2, H, W)
    expect = expect.gather(0, shown[None, :, :, None].long().expand(1, -1, -1, 2, -1, -1))[0]
    assert set(shown.unique().tolist()) == set(range(len(LAYERS)))            # every layer shows somewhere
    flow, valid = flow_targets(program, SIZE)
    torch.testing.assert_close(flow, expect, atol=1e-5, rtol=0)
    # flow and validity see a box only through the pixel centres inside it (rules.box_pixels)
    whole = dataclasses.replace(program, paste_box=torch.ceil(program.paste_box), mix_box=torch.ceil(program.mix_box))
    whole_flow, whole_valid = flow_targets(whole, SIZE)
    assert torch.equal(flow, whole_flow) and torch.equal(valid, whole_valid)


def test_flow_frame_mixup_follows_dominant_layer():
    _, program, _ = make(("affine", "perspective"), batch=4, mixup="frame", mixup_per_frame=True, seed=1)
    flow, valid = program.flow(SIZE)
    unmixed = dataclasses.replace(program, mix_index=None, mix_lambda=None)
    own, own_valid = unmixed.flow(SIZE)
    lam, j = program.mix_lambda, program.mix_index
    for b in range(4):
        for t in range(program.num_frames - 1):
            dominant = b if lam[b, t] >= 0.5 else int(j[b])
            torch.testing.assert_close(flow[b, t], own[dominant, t])
            same = (lam[b, t] >= 0.5) == (lam[b, t + 1] >= 0.5)
            assert torch.equal(valid[b, t], own_valid[dominant, t] & same)


# one flat colour per image (uint8): a layer drawn from image i shows COLOURS[i]
COLOURS = torch.tensor([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]], dtype=torch.uint8)


def layered(mixup, mix_lambda=None):
    """4 clips of flat-coloured images, each pasting a moving cutmix patch over a still image: clip b shows
    image b, its patch is cut from image b + 1 and its Mixup partner is clip b + 2 (whose patch is image
    b + 3), so its four layers have four colours. Returns the program, its reference clips (B, 3, T, H, W)
    uint8 and (B, 4) the image each layer of :data:`LAYERS` is drawn from."""
    cfg = pmg_dali.PMGConfig(num_frames=4, size=SIZE, transforms=("cutmix",), mixup=mixup, dtype=torch.uint8,
                             padding_mode="border", cutmix_speed=(0.05, 0.08))
    program = pmg_dali.PseudoMotion(cfg).sample(4, generator=torch.Generator().manual_seed(4))
    b = torch.arange(4)
    program = dataclasses.replace(program, paste_index=(b + 1) % 4, mix_index=(b + 2) % 4)
    if mix_lambda is not None:
        program = dataclasses.replace(program, mix_lambda=mix_lambda)
    images = COLOURS[:, :, None, None].expand(-1, -1, *SIZE).contiguous()
    source = torch.stack([b, (b + 1) % 4, (b + 2) % 4, (b + 3) % 4], dim=1)
    return program, render.render(images, program, cfg), source


def drawn_from(source, layers):
    """(B, T, H, W) the image each pixel's layer is drawn from."""
    return source.gather(1, layers.flatten(1).long()).view_as(layers)


def test_visible_layers_are_the_rendered_layers():
    """Cutmix under VideoMix: where visible_layers (which flow_targets selects its flow by) says a layer
    shows, the rendered pixel has the colour of that layer's image, and the flow is that layer's motion."""
    program, clips, source = layered("videomix")
    layers = visible_layers(program, SIZE)
    assert layers.shape == (4, 4, *SIZE) and layers.dtype == torch.uint8
    assert set(layers.unique().tolist()) == set(range(len(LAYERS)))           # all four show somewhere
    assert torch.equal(clips.permute(0, 2, 3, 4, 1), COLOURS[drawn_from(source, layers)])
    # the images stand still and the patches move (>= 2 px a frame): flow is non-zero on patch layers only
    flow, _ = program.flow(SIZE)
    speed = flow.norm(dim=2)
    on_patch = layers[:, :-1] % 2 == 1                                       # "patch", "partner patch"
    assert (speed[on_patch] > 1).all() and (speed[~on_patch] < 1e-3).all()


def test_visible_layers_name_the_dominant_clip_of_frame_mixup():
    lam = torch.tensor([[0.8, 0.3, 0.6, 0.5], [0.1, 0.9, 0.4, 0.7], [0.5, 0.2, 0.55, 0.45], [1.0, 0.0, 0.6, 0.3]])
    program, clips, source = layered("frame", mix_lambda=lam)
    layers = visible_layers(program, SIZE)
    own = drawn_from(source, visible_layers(dataclasses.replace(program, mix_index=None, mix_lambda=None), SIZE))
    partner = own[program.mix_index]
    weight = lam[..., None, None, None]
    blend = weight * COLOURS[own].float() + (1 - weight) * COLOURS[partner].float()
    assert (clips.permute(0, 2, 3, 4, 1).float() - blend).abs().max() <= 0.5 + 1e-4    # what is rendered
    dominant = torch.where((lam >= 0.5)[..., None, None], own, partner)
    assert torch.equal(drawn_from(source, layers), dominant)
    assert torch.equal(layers >= LAYERS.index("partner image"), (lam < 0.5)[..., None, None].expand_as(layers))


def test_track_matches_cv2_perspective_transform():
    _, program, _ = make(("perspective", "affine", "zoom"), batch=3, frames=6)
    points = torch.rand(3, 7, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([SIZE[1], SIZE[0]])
    positions, visible = program.track(points)
    assert positions.shape == (3, 6, 7, 2) and visible.shape == (3, 6, 7) and visible.all()
    h = program.homography.double().numpy()
    for b in range(3):
        for t in range(6):
            m = h[b, t] @ np.linalg.inv(h[b, 0])
            expected = cv2.perspectiveTransform(points[b].double().numpy()[None], m)[0]
            np.testing.assert_allclose(positions[b, t].numpy(), expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(positions[:, 0], points, atol=1e-4, rtol=0)


def test_track_visibility():
    h = torch.eye(3).repeat(1, 3, 1, 1)
    h[0, :, 0, 2] = torch.tensor([0.0, 10.0, 20.0])                      # moves right 10 px per frame
    box = torch.zeros(1, 3, 4)
    box[0, 1] = torch.tensor([0.0, 0.0, 20.0, 20.0])                     # a patch over the top-left at t = 1
    program = MotionProgram(homography=h, color=torch.eye(3, 4).repeat(1, 3, 1, 1), transform=torch.zeros(1).long(),
                            paste_index=torch.zeros(1).long(), paste_homography=h.clone(), paste_box=box)
    points = torch.tensor([[[2.0, 5.0], [40.0, 30.0], [-3.0, 5.0]]])
    positions, visible = program.track(points, size=SIZE)
    assert visible.tolist() == [[[True, True, False], [False, True, False], [True, False, False]]]
    _, without_size = program.track(points)
    assert without_size.tolist() == [[[True, True, True], [False, True, False], [True, True, True]]]


def test_grid_points_are_patch_centres():
    pts = grid_points(2, (32, 48), 16)
    assert pts.shape == (2, 6, 2)
    assert pts[0, :4].tolist() == [[7.5, 7.5], [23.5, 7.5], [39.5, 7.5], [7.5, 23.5]]


def test_targets_errors():
    _, program, _ = make(("affine",), batch=2)
    with pytest.raises(ValueError, match=r"`points` must have shape \(B, N, 2\) with B = 2.*\(3, 2\)"):
        program.track(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="`points` must be a torch.Tensor"):
        program.track([[0.0, 0.0]])
    with pytest.raises(TypeError, match="`size` must be an int or a pair"):
        program.flow("big")
    with pytest.raises(ValueError, match="`size` must be at least 2"):
        program.flow((1, 5))
    # an object with a program's fields is not a program: the target functions name `program`
    look_alike = types.SimpleNamespace(tensors=program.tensors, homography=program.homography, color=program.color)
    with pytest.raises(TypeError, match="`program` must be a MotionProgram, but got SimpleNamespace"):
        flow_targets(look_alike, SIZE)
    single = dataclasses.replace(program, homography=program.homography[:, :1], color=program.color[:, :1])
    flow, valid = single.flow(SIZE)
    assert flow.shape == (2, 0, 2, *SIZE) and valid.shape == (2, 0, *SIZE)


def test_raft_learns_from_pseudo_motion_flow():
    """torchvision's RAFT (small, untrained) fitted to our flow on pseudo-motion frame pairs: its
    end-point error on valid pixels falls."""
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    cfg = pmg_dali.PMGConfig(num_frames=2, size=128, transforms=("affine",), mixup=None, dtype=torch.float32,
                             normalize=False, affine_translate=0.03, affine_degrees=3.0)
    gen = pmg_dali.PseudoMotion(cfg, renderer="reference")
    images = pmg_dali.SyntheticImages("shader", num_images=2, seed=0).load(torch.arange(2), cfg.size, "cpu")
    program = gen.sample(2, generator=torch.Generator().manual_seed(0))
    clips = gen(images, program=program) * 2 - 1                          # RAFT takes [-1, 1]
    flow, valid = program.flow(cfg.size)
    first, second, target, mask = clips[:, :, 0], clips[:, :, 1], flow[:, 0], valid[:, 0]
    model = raft_small(weights=None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def epe() -> float:
        model.eval()
        with torch.no_grad():
            pred = model(first, second, num_flow_updates=4)[-1]
        model.train()
        return (pred - target).norm(dim=1)[mask].mean().item()

    before = epe()
    for _ in range(12):
        preds = model(first, second, num_flow_updates=4)
        loss = sum(0.8 ** (len(preds) - 1 - k) * (p - target).abs().sum(1)[mask].mean() for k, p in enumerate(preds))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert epe() < 0.6 * before


# ---- loader targets ------------------------------------------------------------------------------------------
def small_loader(**kw):
    from pmg_dali.sources import TensorImages

    images = (textured(6, size=(32, 32)) * 255).to(torch.uint8)
    cfg = pmg_dali.PMGConfig(num_frames=4, size=32, transforms=("affine", "perspective", "cutmix"), mixup="frame")
    return pmg_dali.PseudoMotionLoader(TensorImages(images), batch_size=2, config=cfg, device="cpu", seed=3,
                                       patch_size=8, tubelet_size=2, **kw)


def test_loader_targets_match_the_batch_program():
    from pmg_dali.loader import batch_generators
    from pmg_dali.sampling import sample_program

    loader = small_loader(targets=("flow", "tracks"))
    plain = small_loader()
    batches = list(loader)
    assert len(batches) == 3
    for step, (batch, ref) in enumerate(zip(batches, plain)):
        assert set(batch) == {"video", "mask", "index", "flow", "flow_valid", "tracks", "tracks_visible"}
        assert set(ref) == {"video", "mask", "index"}
        torch.testing.assert_close(batch["video"], ref["video"])       # targets change nothing else
        program = sample_program(loader.config, 2, generator=batch_generators(3, 0, 0, step)["program"])
        flow, valid = program.flow(32)
        torch.testing.assert_close(batch["flow"], flow)
        assert torch.equal(batch["flow_valid"], valid)
        assert batch["tracks"].shape == (2, 4, 16, 2) and batch["tracks_visible"].shape == (2, 4, 16)
        torch.testing.assert_close(batch["tracks"][:, 0], grid_points(2, 32, 8), atol=1e-4, rtol=0)
        positions, visible = program.track(grid_points(2, 32, 8), size=32)
        torch.testing.assert_close(batch["tracks"], positions)
        assert torch.equal(batch["tracks_visible"], visible)
    # exact resume with targets
    state = None
    resumed = small_loader(targets=("flow",))
    for step, _ in enumerate(resumed):
        if step == 0:
            state = resumed.state_dict()
            break
    again = small_loader(targets=("flow",))
    again.load_state_dict(state)
    torch.testing.assert_close(next(iter(again))["flow"], batches[1]["flow"])


def test_loader_targets_validated():
    with pytest.raises(ValueError, match="`targets` must be None or a tuple of distinct names"):
        small_loader(targets=("depth",))
    with pytest.raises(ValueError, match="`targets` must be None or a tuple of distinct names"):
        small_loader(targets=("flow", "flow"))
    assert small_loader(targets=()).targets == () and small_loader(targets="flow").targets == ("flow",)

    class Videos:
        num_frames = 4

        def __len__(self):
            return 4

        def load(self, indices, size, device, generator=None):
            return torch.zeros(len(indices), 3, 4, *size, dtype=torch.uint8)

    with pytest.raises(ValueError, match="`targets` needs image-only batches"):
        small_loader(targets=("flow",), videos=Videos())


# ---- annotations of real clips under augment -----------------------------------------------------------------
def augment_program(transforms, batch=2, frames=3, seed=0, mixup=None):
    cfg = pmg_dali.PMGConfig(num_frames=frames, size=SIZE, transforms=transforms, mixup=mixup,
                             affine_degrees=4.0, affine_translate=0.03, perspective_distortion=0.03)
    return pmg_dali.PseudoMotion(cfg).sample(batch, generator=torch.Generator().manual_seed(seed))


def test_warp_masks_match_cv2_nearest():
    from pmg_dali.targets import warp_masks

    program = augment_program(("affine", "perspective"))
    masks = torch.randint(0, 5, (2, 3, *SIZE), generator=torch.Generator().manual_seed(0))
    out = warp_masks(masks, program, fill=255)
    assert out.shape == masks.shape and out.dtype == masks.dtype
    h = program.homography.double().numpy()
    mismatched = 0
    for b in range(2):
        for t in range(3):
            ref = cv2.warpPerspective(masks[b, t].numpy().astype(np.float32), h[b, t], SIZE[::-1],
                                      flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=255)
            mismatched += int((out[b, t].numpy() != ref).sum())
    assert mismatched <= 0.01 * masks.numel()          # nearest ties and the frame's edge may round either way
    # a mask moves as the pixels do: labels of 8 x 8 blocks warp as the augmented video of those labels
    blocks = torch.randint(1, 5, (2, 3, SIZE[0] // 8, SIZE[1] // 8), generator=torch.Generator().manual_seed(1))
    blocks = blocks.repeat_interleave(8, -2).repeat_interleave(8, -1)
    moved = render.augment_clips(blocks[:, None].float().expand(-1, 3, -1, -1, -1) / 4, program, SIZE)
    agree = ((moved[:, 0] * 4).round() == warp_masks(blocks, program).float())
    assert agree.float().mean() > 0.9                    # they differ only along block edges


def test_warp_masks_cutmix_takes_partner_mask():
    from pmg_dali.targets import warp_masks

    program = augment_program(("cutmix",), batch=3)
    masks = torch.arange(3).view(3, 1, 1, 1).expand(3, 3, *SIZE).contiguous()  # clip b's mask is all b
    out = warp_masks(masks, program)
    inside = box_mask(program.paste_box, SIZE)
    partner = program.paste_index.view(3, 1, 1, 1).expand_as(out)
    assert torch.equal(out[inside], partner[inside])
    assert torch.equal(out[~inside], masks[~inside])


def test_warp_masks_videomix_takes_partner_inside_box():
    from pmg_dali.targets import warp_masks

    program = augment_program(("affine",), batch=3, mixup="videomix", seed=2)
    masks = torch.randint(0, 5, (3, 3, *SIZE), generator=torch.Generator().manual_seed(0))
    out = warp_masks(masks, program)
    own = warp_masks(masks, dataclasses.replace(program, mix_index=None, mix_lambda=None, mix_box=None))
    inside = box_mask(program.mix_box, SIZE)[:, None].expand_as(out)
    assert inside.any() and torch.equal(out, torch.where(inside, own[program.mix_index], own))


def test_warp_keypoints_and_boxes_match_cv2():
    from pmg_dali.targets import warp_boxes, warp_keypoints

    program = augment_program(("perspective", "zoom"))
    keypoints = torch.rand(2, 3, 6, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([SIZE[1], SIZE[0]])
    positions, visible = warp_keypoints(keypoints, program, size=SIZE)
    h = program.homography.double().numpy()
    for b in range(2):
        for t in range(3):
            ref = cv2.perspectiveTransform(keypoints[b, t].double().numpy()[None], h[b, t])[0]
            np.testing.assert_allclose(positions[b, t].numpy(), ref, atol=1e-3)
    inside = ((positions[..., 0] >= -0.5) & (positions[..., 0] < SIZE[1] - 0.5)
              & (positions[..., 1] >= -0.5) & (positions[..., 1] < SIZE[0] - 0.5))
    assert torch.equal(visible, inside)
    boxes = torch.tensor([4.0, 5.0, 30.0, 25.0]).expand(2, 3, 1, 4)
    out, vis = warp_boxes(boxes, program, SIZE)
    for b in range(2):
        for t in range(3):
            corners = np.array([[[4, 5], [30, 5], [30, 25], [4, 25]]], dtype=np.float64)
            moved = cv2.perspectiveTransform(corners, h[b, t])[0]
            lo = np.maximum(moved.min(0), -0.5)
            hi = np.minimum(moved.max(0), [SIZE[1] - 0.5, SIZE[0] - 0.5])
            np.testing.assert_allclose(out[b, t, 0].numpy(), np.concatenate([lo, hi]), atol=1e-3)
            full = np.prod(moved.max(0) - moved.min(0))
            np.testing.assert_allclose(vis[b, t, 0].item(), np.prod(hi - lo) / full, atol=1e-4)
    # a box half outside the frame after a pure shift is half visible
    h1 = torch.eye(3).repeat(1, 2, 1, 1)
    h1[0, 1, 0, 2] = 10.0
    shift = MotionProgram(homography=h1, color=torch.eye(3, 4).repeat(1, 2, 1, 1), transform=torch.zeros(1).long())
    out, vis = warp_boxes(torch.tensor([[[[SIZE[1] - 20.5, 0.0, SIZE[1] - 0.5, 10.0]]] * 2]), shift, SIZE)
    assert vis[0, :, 0].tolist() == [1.0, 0.5] and out[0, 1, 0, 2].item() == SIZE[1] - 0.5
