"""The DALI backend against independent references: OpenCV for the matrix convention, the torch
reference renderer on identical MotionPrograms, pmg_dali.geometry for the in-graph matrices.

CPU tests run DALI's CPU operators (``device_id=None``); ``@pytest.mark.gpu`` tests need CUDA.
"""
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pmg_dali import PMGConfig, PseudoMotionLoader, TensorImages
from pmg_dali.config import TRANSFORMS
from pmg_dali.geometry import affine_step_matrix, dali_inverse_map, matrix_powers, scale_matrix, translation_matrix
from pmg_dali.render import render as reference_render
from pmg_dali.render import render_clips
from pmg_dali.sampling import sample_program

pytestmark = pytest.mark.dali
TOL = 2 / 255          # interior parity with the torch backend
B, T, SIZE = 4, 4, (36, 44)


def _dali():
    from pmg_dali import dali
    return dali


@pytest.fixture(scope="module")
def images():
    """Smooth uint8 images (B, 3, H, W): bilinear differences stay small, as on natural images."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(B, 3, SIZE[0] // 4, SIZE[1] // 4, generator=g)
    x = F.interpolate(x, size=SIZE, mode="bicubic", align_corners=False).clamp(0, 1)
    return (x * 255).round().to(torch.uint8)


def _program(cfg, seed=1, batch=B):
    return sample_program(cfg, batch, generator=torch.Generator().manual_seed(seed))


def _max_diff(a, b, margin=0):
    d = (a.float() - b.float()).abs()
    if margin:
        d = d[..., margin:-margin, margin:-margin]
    return float(d.max())


def _run(pipe_fn, **kw):
    from nvidia.dali import pipeline_def
    pipe = pipeline_def(pipe_fn, batch_size=kw.pop("batch_size", B), num_threads=1, device_id=None, **kw)()
    pipe.build()
    return [np.asarray(o.as_array()) for o in pipe.run()]


# ---- module import --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.dali
def test_import_without_dali_raises_install_hint():
    code = ("import sys; sys.modules['nvidia.dali'] = None\n"
            "import pmg_dali\n"
            "try:\n    import pmg_dali.dali\nexcept ImportError as e:\n    print('IMPORTERROR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "IMPORTERROR" in out.stdout, out.stderr
    assert "pip install pmg_dali[dali]" in out.stdout and "nvidia-dali-cuda120" in out.stdout


# ---- the convention: dali_inverse_map / corner_forward vs OpenCV -----------------------------------

# fn.warp_affine has no reflecting border: the renderer warps with warp_perspective for it
@pytest.mark.parametrize("perspective,border", [(False, "zeros"), (False, "border"), (True, "zeros"),
                                                (True, "border"), (True, "reflection")])
def test_dali_inverse_map_matches_opencv(perspective, border):
    cv2 = pytest.importorskip("cv2")
    from nvidia.dali import fn
    rng = np.random.default_rng(0)
    h, w = 20, 26
    img = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    hom = np.array([[1.05, 0.08, 1.3], [-0.05, 0.97, -0.7], [0.0015 * perspective, -0.001 * perspective, 1.0]])
    m = dali_inverse_map(torch.tensor(hom)).numpy()
    cv_border = {"zeros": cv2.BORDER_CONSTANT, "border": cv2.BORDER_REPLICATE,
                 "reflection": cv2.BORDER_REFLECT_101}[border]
    ref = cv2.warpPerspective(img, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv_border, borderValue=0)

    def pipe():
        x = fn.external_source(lambda: [img], batch=True, layout="HWC")
        mat = fn.external_source(lambda: [m if perspective else m[:2].copy()], batch=True)
        if perspective:
            mode = {"zeros": "constant", "border": "replicate", "reflection": "reflect_101"}[border]
            return fn.experimental.warp_perspective(x, matrix=mat, border_mode=mode, fill_value=[0.0])
        return fn.warp_affine(x, matrix=mat, fill_value=0.0 if border == "zeros" else None)

    (out,) = _run(pipe, batch_size=1)
    # OpenCV interpolates with 1/32-pixel fixed-point weights: up to ~0.01 levels here.
    assert np.abs(out[0] - ref).max() < 0.05


def test_corner_forward_is_the_inverse_of_dali_inverse_map():
    from pmg_dali.dali import corner_forward
    hom = torch.tensor([[1.1, 0.2, 3.0], [-0.1, 0.9, -2.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    expected = torch.linalg.inv(dali_inverse_map(hom).double())[:2].reshape(-1)
    got = torch.tensor(corner_forward(*hom[:2].reshape(-1).tolist()), dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


# ---- program-fed path: parity with the torch reference ----------------------------------------------

@pytest.mark.parametrize("transform", TRANSFORMS)
def test_parity_per_transform(images, transform):
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=(transform,), mixup=None, normalize=False)
    program = _program(cfg)
    out = _dali().render(images, program, cfg)
    ref = reference_render(images, program, cfg)
    assert out.shape == ref.shape == (B, 3, T, *SIZE) and out.dtype == torch.float32
    assert _max_diff(out, ref) < TOL
    if transform != "identity":   # the program moves something: the clip is not one frame repeated
        assert _max_diff(out[:, :, :1], out[:, :, -1:]) > 10 / 255


def test_parity_cutmix_patch_cut_at_the_partner_edge(images):
    """A patch cut flush with the partner's top-left corner: its edge pixels are replicated (as every
    renderer does), not blended with black."""
    import dataclasses

    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("cutmix",), mixup=None, normalize=False)
    program = _program(cfg)
    moved = program.paste_homography.clone()       # partner -> frame is a shift by (box corner - cut)
    moved[..., :2, 2] = program.paste_box[..., :2] + 0.5                  # the cut at (-0.5, -0.5)
    program = dataclasses.replace(program, paste_homography=moved)
    corner = program.paste_box[:, 0, :2] - program.paste_homography[:, 0, :2, 2]
    torch.testing.assert_close(corner, torch.full_like(corner, -0.5), atol=1e-4, rtol=0)
    out = _dali().render(images, program, cfg)
    assert _max_diff(out, reference_render(images, program, cfg)) < TOL


@pytest.mark.parametrize("mixup", ["frame", "videomix"])
def test_parity_mixup_normalised(images, mixup):
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("zoom", "affine", "cutmix", "color_jitter"),
                    mixup=mixup)
    program = _program(cfg, seed=3)
    out = _dali().render(images, program, cfg)
    ref = reference_render(images, program, cfg)
    unmixed = (render_clips(images, program, cfg.size) - torch.tensor(cfg.mean).view(1, 3, 1, 1, 1)) \
        / torch.tensor(cfg.std).view(1, 3, 1, 1, 1)
    assert _max_diff(out, ref) < TOL / min(cfg.std)
    assert _max_diff(out, unmixed) > 0.1           # the mix changed the clips
    assert abs(float(out.mean()) - float(ref.mean())) < 1e-3


def test_parity_per_frame_lambda(images):
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("zoom",), mixup="frame", mixup_per_frame=True,
                    normalize=False)
    program = _program(cfg)
    assert program.mix_lambda.shape == (B, T)
    assert _max_diff(_dali().render(images, program, cfg), reference_render(images, program, cfg)) < TOL


@pytest.mark.parametrize("layout", ["BCTHW", "BTCHW"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16, torch.bfloat16])
def test_layouts_and_dtypes(images, layout, dtype):
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("zoom", "perspective", "fade"), layout=layout,
                    dtype=dtype)
    program = _program(cfg, seed=5)
    out = _dali().render(images, program, cfg)
    ref = reference_render(images, program, cfg)
    assert out.shape == ref.shape and out.dtype == dtype and out.is_contiguous()
    if dtype == torch.uint8:   # rounding of near-ties (and DALI rounds ties away from zero): one level
        assert _max_diff(out, ref) <= 1 and (out != ref).float().mean() < 0.01
    else:
        ulp = {torch.float32: 0, torch.float16: 2 ** -8, torch.bfloat16: 2 ** -5}[dtype] * 3
        assert _max_diff(out, ref) < TOL / min(cfg.std) + ulp


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_padding_modes(images, padding_mode):
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("affine", "perspective"), mixup=None,
                    affine_scale=(0.85, 0.9), padding_mode=padding_mode, normalize=False, framing="whole")
    program = _program(cfg, seed=2)
    out, ref = _dali().render(images, program, cfg), reference_render(images, program, cfg)
    assert _max_diff(out, ref) < TOL
    if padding_mode == "zeros":   # the clips leave the source: padding shows
        assert float((ref == 0).float().mean()) > 0.01


def test_resize_and_float_images(images):
    """Images at another size are resized in the graph (DALI's antialiased linear resize; it differs
    from torch's at the one- or two-pixel border only), float images in [0, 1] work as uint8 ones."""
    cfg = PMGConfig(num_frames=T, size=(24, 30), transforms=("zoom", "sliding_window"), mixup=None,
                    normalize=False)
    program = _program(cfg)
    for x in (images, images.float() / 255):
        out, ref = _dali().render(x, program, cfg), reference_render(x, program, cfg)
        assert _max_diff(out, ref, margin=3) < TOL
        assert (out.float() - ref.float()).abs().mean() < 2e-3


def test_renderer_reuse_smaller_batch_and_empty(images):
    dali = _dali()
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("affine",), mixup="frame", normalize=False)
    renderer = dali.ProgramRenderer(cfg, batch_size=B, device="cpu")
    for batch, seed in ((B, 1), (2, 2), (B, 3)):
        program = _program(cfg, seed=seed, batch=batch)
        first = renderer(images[:batch], program)
        assert _max_diff(first, reference_render(images[:batch], program, cfg)) < TOL
        assert torch.equal(first, renderer(images[:batch], program))          # deterministic
    assert len(renderer._pipelines) == 1                                      # built once, reused
    empty = renderer(images[:0], _program(cfg, batch=0))
    assert empty.shape == (0, 3, T, *SIZE) and empty.dtype == torch.float32


def test_render_batch_of_one_cutmix_and_mixup(images):
    """A batch of one is its own cutmix and mix partner (pmg_dali.sampling): the mix is a no-op."""
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("cutmix",), mixup="frame", normalize=False)
    program = _program(cfg, batch=1)
    assert program.paste_index.tolist() == [0] and program.mix_index.tolist() == [0]
    out = _dali().render(images[:1], program, cfg)
    assert _max_diff(out, reference_render(images[:1], program, cfg)) < TOL
    assert _max_diff(out, render_clips(images[:1], program, SIZE)) < TOL


def test_render_reuses_one_renderer_for_smaller_batches(images, monkeypatch):
    """render() builds one renderer (of batch 4) for a batch of 3 and feeds it the trailing batch of
    2; a larger batch rebuilds it at the next power of two; the 4 last used renderers are kept."""
    dali = _dali()
    monkeypatch.setattr(dali, "_PIPELINE_CACHE", {})
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("affine", "cutmix"), mixup="frame", normalize=False)
    renderers = []
    for batch in (3, 2):
        program = _program(cfg, seed=batch, batch=batch)
        out = dali.render(images[:batch], program, cfg)
        assert out.shape == (batch, 3, T, *SIZE)
        assert _max_diff(out, reference_render(images[:batch], program, cfg)) < TOL
        renderers += list(dali._PIPELINE_CACHE.values())
    assert len(renderers) == 2 and renderers[0] is renderers[1] and renderers[0].batch_size == 4
    assert dali._renderer(cfg, 0, "cpu", None) is renderers[0]
    assert dali._renderer(cfg, 5, "cpu", None).batch_size == 8 and len(dali._PIPELINE_CACHE) == 1
    for frames in (2, 3, 5, 6):
        dali._renderer(cfg.replace(num_frames=frames), 1, "cpu", None)
    assert len(dali._PIPELINE_CACHE) == 4 and (cfg, "cpu", None) not in dali._PIPELINE_CACHE


def test_renderer_errors(images):
    dali = _dali()
    cfg = PMGConfig(num_frames=T, size=SIZE)
    renderer = dali.ProgramRenderer(cfg, batch_size=2, device="cpu")
    with pytest.raises(TypeError, match="`program` must be a MotionProgram"):
        renderer(images, "zoom")
    with pytest.raises(TypeError, match="`images` must be a torch.Tensor"):
        renderer(images.numpy(), _program(cfg))
    with pytest.raises(ValueError, match="one image per clip"):
        renderer(images[:3], _program(cfg, batch=2))
    with pytest.raises(ValueError, match="at most batch_size=2"):
        renderer(images, _program(cfg))
    with pytest.raises(ValueError, match="must have 4 frames"):
        renderer(images[:2], _program(PMGConfig(num_frames=3, size=SIZE), batch=2))
    with pytest.raises(ValueError, match="`config.recursion` must be 'composed'"):
        dali.ProgramRenderer(cfg.replace(recursion="iterative"), batch_size=2, device="cpu")
    with pytest.raises(ValueError, match="`device` must be 'cpu' or 'gpu'"):
        dali.ProgramRenderer(cfg, batch_size=2, device="cuda")
    with pytest.raises(ValueError, match="`batch_size` must be >= 1, but got 0"):
        dali.ProgramRenderer(cfg, batch_size=0, device="cpu")
    with pytest.raises(TypeError, match="`batch_size` must be an int, but got 2.0"):
        dali.ProgramRenderer(cfg, batch_size=2.0, device="cpu")
    with pytest.raises(ValueError, match="`num_threads` must be >= 1, but got 0"):
        dali.ProgramRenderer(cfg, batch_size=2, device="cpu", num_threads=0)
    with pytest.raises(TypeError, match="`config` must be a PMGConfig"):
        dali.ProgramRenderer({"size": 8}, batch_size=2, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs a CUDA device"):
            dali.ProgramRenderer(cfg, batch_size=2, device="gpu")


# ---- in-graph path --------------------------------------------------------------------------------

def _in_graph(cfg, images, seed=7, extra=lambda s: [], exact=True):
    """Run sample_motion + render_motion on ``images`` once; returns [clips, *extra outputs]."""
    from nvidia.dali import fn

    from pmg_dali.dali import render_motion, sample_motion
    hwc = [np.ascontiguousarray(x) for x in images.permute(0, 2, 3, 1).numpy()]

    def pipe():
        x = fn.external_source(lambda: hwc, batch=True, layout="HWC")
        s = sample_motion(cfg)
        return (render_motion(x, s.motion, cfg, exact=exact), s.transform, *extra(s))

    return _run(pipe, seed=seed)


def _homographies(forward_corner):
    """In-graph DALI source -> frame maps (..., 2|3, 3) in corner coordinates -> package homographies."""
    m = torch.as_tensor(forward_corner, dtype=torch.float64)
    if m.shape[-2] == 2:
        m = torch.cat([m, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(*m.shape[:-2], 1, 3)], -2)
    shift = torch.eye(3, dtype=torch.float64)
    shift[:2, 2] = 0.5                       # centre coordinates -> corner coordinates
    return torch.linalg.inv(shift) @ m @ shift


def test_in_graph_zoom_frame0_is_source_and_moves(images):
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("zoom",), zoom_scale=(0.9, 0.95), mixup=None,
                    normalize=False)
    clips, _ = _in_graph(cfg, images)
    clips = torch.from_numpy(clips)
    assert _max_diff(clips[:, :, 0], images.float() / 255) < 1e-5
    assert all(_max_diff(clips[:, :, t], clips[:, :, t + 1]) > 5 / 255 for t in range(T - 1))


def test_in_graph_matrices_match_geometry(images):
    """The in-graph matrices equal pmg_dali.geometry's builders on the drawn parameters, and the
    rendered clips equal the torch reference rendering of those matrices."""
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("zoom", "affine", "sliding_window"), mixup=None,
                    normalize=False, framing="whole")
    names = ["zoom_scale", "zoom_cx", "zoom_cy", "angle", "scale", "window"]
    pairs = ["translate", "shear", "start", "velocity"]
    clips, which, mats, *p = _in_graph(cfg, images, extra=lambda s: [s.motion.matrices]
                                       + [s.params[n] for n in names] + [x for n in pairs for x in s.params[n]])
    keys = names + [f"{n}{i}" for n in pairs for i in "xy"]
    p = {n: torch.from_numpy(v).double().reshape(-1) for n, v in zip(keys, p)}
    h, w = SIZE
    s, t = p["zoom_scale"], torch.arange(T, dtype=torch.float64)
    r0 = torch.where(s > 1, s ** -(T - 1), torch.ones_like(s))
    zoom = torch.stack([torch.from_numpy(scale_matrix(s ** -k / r0, p["zoom_cx"], p["zoom_cy"])) for k in t], 1)
    center = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64).expand(B, 2)
    step = affine_step_matrix(p["angle"], torch.stack([p["translatex"], p["translatey"]], -1), p["scale"],
                              torch.stack([p["shearx"], p["sheary"]], -1), center)     # NumPy builders
    affine = torch.from_numpy(matrix_powers(step, torch.eye(3, dtype=torch.float64).expand(B, 3, 3), T))
    r, start, vel = p["window"], (p["startx"], p["starty"]), (p["velocityx"], p["velocityy"])
    first = scale_matrix(1 / r, 0 * r, 0 * r) @ translation_matrix(-start[0], -start[1])
    window = torch.from_numpy(matrix_powers(translation_matrix(-vel[0] / r, -vel[1] / r), first, T))
    expected = torch.stack([zoom, affine, window], 1)[torch.arange(B), torch.from_numpy(which).long()]
    got = _homographies(mats)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=2e-3)
    # the sliding window stays inside the image on every frame
    room = ((1 - r) * (w - 1))[:, None]
    x_path = start[0][:, None] + t * vel[0][:, None]
    assert bool(((x_path > -1e-3) & (x_path < room + 1e-3)).all())
    program = _program(cfg.replace(transforms=("identity",)))
    program = type(program)(homography=got.float(), color=program.color, transform=program.transform)
    assert _max_diff(torch.from_numpy(clips), reference_render(images, program, cfg)) < TOL


@pytest.mark.parametrize("kw", [{}, dict(affine_degrees=8.0, affine_translate=0.04, min_view_area=0.5)])
def test_in_graph_affine_framing_matches_the_host(kw):
    """``"inside"`` framing in the graph: the fitted intensity and the placed first view are the host
    sampler's (pmg_dali.sampling.affine_motion on the drawn parameters), and a white image stays white."""
    from pmg_dali.sampling import affine_motion
    cfg = PMGConfig(num_frames=16, size=(20, 28), transforms=("affine",), mixup=None, normalize=False, **kw)
    white = torch.full((B, 3, 20, 28), 255, dtype=torch.uint8)
    keys = lambda p: [p["angle"], *p["translate"], p["scale"], *p["shear"], p["intensity"], *p["placement"]]  # noqa
    clips, _, mats, *p = _in_graph(cfg, white, extra=lambda s: [s.motion.matrices] + keys(s.params))
    angle, tx, ty, scale, shx, shy, intensity, ux, uy = (v.astype(np.float64).reshape(-1) for v in p)
    first, step = affine_motion(cfg, angle, np.stack([tx, ty], -1), scale, np.stack([shx, shy], -1),
                                np.stack([ux, uy], -1))
    expected = torch.from_numpy(matrix_powers(step, first, 16))
    torch.testing.assert_close(_homographies(mats), expected, rtol=1e-3, atol=5e-3)
    assert clips.min() >= 1 - 1e-4
    if kw:                                       # strong motions are weakened, not stopped
        assert (intensity < 1).any() and intensity.max() > 0


def test_in_graph_fade_colour(images):
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("fade",), mixup=None, normalize=False)
    clips, _, color, gain, fade_in = _in_graph(
        cfg, images, extra=lambda s: [s.motion.color, s.params["fade_gain"], s.params["fade_in"]])
    t = np.arange(T)
    expected = gain[:, None] ** np.where(fade_in[:, None], T - 1 - t, t)
    np.testing.assert_allclose(color[:, :, 0, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(color[:, :, :, :3], expected[..., None, None] * np.eye(3), rtol=1e-5, atol=1e-7)
    ref = images.float()[:, :, None] / 255 * torch.from_numpy(expected).float()[:, None, :, None, None]
    assert _max_diff(torch.from_numpy(clips), ref) < 1e-4


@pytest.mark.parametrize("mixup", ["frame", "videomix"])
def test_in_graph_mixup(images, mixup):
    """The mixed clip is lambda * clip + (1 - lambda) * partner (or the partner inside the box) of
    the unmixed clips the same motion renders; partners are other clips; output normalised."""
    from nvidia.dali import fn

    from pmg_dali.dali import render_motion, sample_motion
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("zoom", "affine"), mixup=mixup)
    plain = cfg.replace(mixup=None, normalize=False)
    hwc = [np.ascontiguousarray(x) for x in images.permute(0, 2, 3, 1).numpy()]

    def pipe():
        x = fn.external_source(lambda: hwc, batch=True, layout="HWC")
        m = sample_motion(cfg).motion
        unmixed = render_motion(x, m._replace(mix_index=None, mix_lambda=None, mix_box=None), plain)
        box = m.mix_box if m.mix_box is not None else m.mix_lambda
        return render_motion(x, m, cfg), unmixed, m.mix_index, m.mix_lambda, box

    mixed, unmixed, index, lam, box = (torch.from_numpy(a) for a in _run(pipe, seed=11))
    index = index.long()
    assert bool((index != torch.arange(B)).all()) and sorted(index.tolist()) == list(range(B))
    assert bool(((lam >= 0) & (lam <= 1)).all())
    if mixup == "frame":
        lam = lam.view(B, 1, 1, 1, 1)
        expected = lam * unmixed + (1 - lam) * unmixed[index]
    else:
        from pmg_dali.render import box_mask
        inside = box_mask(box.float(), SIZE)[:, None, None]
        expected = torch.where(inside, unmixed[index], unmixed)
        assert bool((box[:, 2] >= box[:, 0]).all())
    mean, std = torch.tensor(cfg.mean).view(1, 3, 1, 1, 1), torch.tensor(cfg.std).view(1, 3, 1, 1, 1)
    assert _max_diff(mixed, (expected - mean) / std) < 1e-4


@pytest.mark.parametrize("mixup", ["frame", "videomix"])
@pytest.mark.parametrize("batch_size", [1, B])
def test_in_graph_mixup_batch_of_one(images, mixup, batch_size):
    """One clip -- a pipeline of batch_size 1, or a short batch fed to a larger pipeline -- is its
    own partner, as in pmg_dali.sampling: the mixed clip equals the unmixed one."""
    from nvidia.dali import fn, pipeline_def

    from pmg_dali.dali import render_motion, sample_motion
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("zoom", "affine"), mixup=mixup)
    hwc = [np.ascontiguousarray(images[0].permute(1, 2, 0).numpy())]

    @pipeline_def(batch_size=batch_size, num_threads=1, device_id=None, seed=11, prefetch_queue_depth=1)
    def pipe():
        x = fn.external_source(name="images", layout="HWC")
        m = sample_motion(cfg).motion
        unmixed = m._replace(mix_index=None, mix_lambda=None, mix_box=None)
        return render_motion(x, m, cfg), render_motion(x, unmixed, cfg.replace(mixup=None)), m.mix_index

    p = pipe()
    p.build()
    for _ in range(2):
        p.feed_input("images", hwc)
        mixed, unmixed, index = (np.asarray(o.as_array()) for o in p.run())
        assert mixed.shape == (1, 3, T, *SIZE) and index.reshape(-1).tolist() == [0]
        np.testing.assert_allclose(mixed, unmixed, rtol=0, atol=1e-5)


def test_in_graph_determinism_and_fast_path(images):
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("zoom", "affine"), mixup="frame", dtype=torch.uint8)
    a, b, c = _in_graph(cfg, images, seed=3), _in_graph(cfg, images, seed=3), _in_graph(cfg, images, seed=4)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])
    fast = _in_graph(cfg, images, seed=3, exact=False)
    assert np.abs(fast[0].astype(int) - a[0].astype(int)).max() <= 2   # uint8 frames: within a level or two


def test_in_graph_rejects_unsupported():
    from pmg_dali.dali import sample_motion
    with pytest.raises(ValueError, match="program-fed|ProgramRenderer"):
        sample_motion(PMGConfig(transforms=("zoom", "perspective")))
    with pytest.raises(ValueError, match="`config.recursion` must be 'composed'"):
        sample_motion(PMGConfig(recursion="iterative"))


# ---- pipelines ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """6 good images (jpg and png, in sub-folders), a non-image and a truncated jpg."""
    from PIL import Image
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(6):
        sub = root / "a" if i < 4 else root / "b" / "c"
        sub.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(rng.integers(0, 255, (60 + i, 80, 3), dtype=np.uint8))
        img.save(sub / (f"{i}.jpg" if i % 2 else f"{i}.PNG"))
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / "bad.jpg").write_bytes(b"this is not a jpeg" * 10)
    good = (root / "a" / "1.jpg").read_bytes()
    (root / "b" / "truncated.jpg").write_bytes(good[:len(good) // 2])   # the header survives
    return root


def test_list_image_files_validation(image_folder):
    dali = _dali()
    with pytest.warns(RuntimeWarning, match="bad.jpg") as record:
        header = dali.list_image_files(image_folder, validate="header")
    assert len(record) == 1 and "truncated" not in str(record[0].message)
    assert len(header) == 7 and any(p.endswith("truncated.jpg") for p in header)
    assert header == sorted(header) and not any(p.endswith(".txt") for p in header)
    with pytest.warns(RuntimeWarning, match="truncated.jpg") as record:
        decoded = dali.list_image_files(image_folder, num_threads=1)          # validate="decode"
    assert len(record) == 1 and "bad.jpg" in str(record[0].message)
    assert len(decoded) == 6
    with pytest.raises(ValueError, match="`validate` must be"):
        dali.list_image_files(image_folder, validate="full")
    with pytest.raises(ValueError, match="`root` must be an existing folder"):
        dali.list_image_files(image_folder / "missing")
    (image_folder.parent / "empty").mkdir(exist_ok=True)
    with pytest.raises(ValueError, match="has none"):
        dali.list_image_files(image_folder.parent / "empty")


def test_missing_nvimgcodec_is_named(image_folder, monkeypatch):
    """DALI 2 decodes through nvImageCodec, a separate wheel: without it the probe's build fails with
    DALI's dlopen error, which the validation turns into a message naming the package to install."""
    from nvidia.dali.pipeline import Pipeline
    dali = _dali()

    def build(self):
        raise RuntimeError("Critical error when building pipeline: dlopen libnvimgcodec.so failed!")
    monkeypatch.setattr(Pipeline, "build", build)
    with pytest.raises(RuntimeError, match="install `nvidia-nvimgcodec-cu13`"):
        dali.list_image_files(image_folder, num_threads=1)
    monkeypatch.setattr(Pipeline, "build", lambda self: (_ for _ in ()).throw(RuntimeError("other failure")))
    with pytest.raises(RuntimeError, match="^other failure$"):
        dali.list_image_files(image_folder, num_threads=1)


def test_folder_pipeline_with_corrupt_files(image_folder):
    from nvidia.dali.plugin.pytorch import DALIGenericIterator
    dali = _dali()
    cfg = PMGConfig(num_frames=T, size=(32, 32), dtype=torch.float16, layout="BTCHW")
    with pytest.warns(RuntimeWarning, match="truncated.jpg"):
        pipe = dali.folder_pipeline(image_folder, cfg, batch_size=2, device_id=None, seed=0,
                                    validate="decode", num_threads=1)
    seen = []
    for batch in DALIGenericIterator(pipe, ["video", "index"], reader_name="Reader"):
        video = batch[0]["video"]
        assert video.shape == (2, T, 3, 32, 32) and video.dtype == torch.float16
        assert bool(torch.isfinite(video).all()) and float(video.std()) > 0.1
        seen += batch[0]["index"].view(-1).tolist()
    assert sorted(seen) == list(range(6))
    # with the header check only, the truncated file stops DALI: what the default "decode" check prevents
    with pytest.warns(RuntimeWarning, match="bad.jpg"):
        files = dali.list_image_files(image_folder, validate="header")
    broken = dali.folder_pipeline(None, cfg, batch_size=7, device_id=None, files=files, num_threads=1)
    broken.build()
    with pytest.raises(RuntimeError):
        broken.run()


def test_source_pipeline_epochs_and_shards():
    from nvidia.dali.plugin.pytorch import DALIGenericIterator
    dali = _dali()
    source = TensorImages(torch.randint(0, 256, (10, 3, 20, 24), generator=torch.Generator().manual_seed(0),
                                        dtype=torch.uint8))
    cfg = PMGConfig(num_frames=T, size=(16, 16), transforms=("zoom", "affine"), mixup=None)

    def epochs(shard, seed=0):
        it = DALIGenericIterator(dali.source_pipeline(source, cfg, 2, device_id=None, seed=seed, shard_id=shard,
                                                      num_shards=2), ["video", "index"])
        out = []
        for _ in range(2):
            out.append([(b[0]["index"].view(-1).tolist(), b[0]["video"]) for b in it])
            it.reset()
        return out

    shard0, shard1, again = epochs(0), epochs(1), epochs(0)
    for e in range(2):
        a = [i for idx, _ in shard0[e] for i in idx]
        b = [i for idx, _ in shard1[e] for i in idx]
        assert len(a) == len(b) == 4 and not set(a) & set(b)      # 10 // 2 shards // 2 = 2 batches of 2
        for shard, got in ((0, a), (1, b)):                        # the loader's (DistributedSampler) order
            loader = PseudoMotionLoader(source, 2, cfg, device="cpu", seed=0, rank=shard, world_size=2)
            assert got == loader.indices(e)[:4].tolist()
        assert [idx for idx, _ in shard0[e]] == [idx for idx, _ in again[e]]
        assert all(torch.equal(x, y) for (_, x), (_, y) in zip(shard0[e], again[e]))
        assert shard0[e][0][1].shape == (2, 3, T, 16, 16)
    assert [i for idx, _ in shard0[0] for i in idx] != [i for idx, _ in shard0[1] for i in idx]
    with pytest.raises(ValueError, match="at least batch_size"):
        dali.source_pipeline(source, cfg, 8, device_id=None, num_shards=2)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(shard_id=2, num_shards=2), ValueError, r"`shard_id` must be in \[0, 1\] \(num_shards 2\), but got 2"),
    (dict(shard_id=-1), ValueError, "`shard_id` must be >= 0, but got -1"),
    (dict(num_shards=0), ValueError, "`num_shards` must be >= 1, but got 0"),
    (dict(batch_size=0), ValueError, "`batch_size` must be >= 1, but got 0"),
    (dict(batch_size=True), TypeError, "`batch_size` must be an int, but got True"),
])
@pytest.mark.parametrize("pipeline", ["folder", "source"])
def test_pipeline_batching_arguments_are_checked(pipeline, kwargs, error, match):
    dali = _dali()
    cfg = PMGConfig(num_frames=T, size=(16, 16), mixup=None)
    kwargs = {"batch_size": 2, **kwargs}
    with pytest.raises(error, match=match):
        if pipeline == "folder":
            dali.folder_pipeline(None, cfg, device_id=None, files=["unused.jpg"], **kwargs)
        else:
            dali.source_pipeline(TensorImages(torch.zeros(4, 3, 8, 8, dtype=torch.uint8)), cfg, device_id=None,
                                 **kwargs)


def test_image_extensions_are_the_sources():
    from pmg_dali.sources import IMG_EXTENSIONS
    assert _dali().IMAGE_EXTENSIONS is IMG_EXTENSIONS


# ---- GPU ------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("transforms", [("zoom", "affine"), ("perspective", "color_jitter", "cutmix", "fade")])
def test_gpu_parity(images, transforms):
    dali = _dali()
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=transforms, mixup="frame")
    program = _program(cfg)
    out = dali.ProgramRenderer(cfg, B, device="gpu")(images.cuda(), program)
    ref = reference_render(images, program, cfg)
    assert out.device.type == "cuda" and out.shape == ref.shape
    assert _max_diff(out.cpu(), ref, margin=2) < TOL / min(cfg.std)
    cpu = dali.render(images, program, cfg, device="cpu")
    assert _max_diff(out.cpu(), cpu, margin=2) < TOL / min(cfg.std)


@pytest.mark.gpu
def test_gpu_nvjpeg_folder_pipeline_and_shards(image_folder):
    from nvidia.dali.plugin.pytorch import DALIGenericIterator
    dali = _dali()
    cfg = PMGConfig(num_frames=T, size=(32, 32))
    with pytest.warns(RuntimeWarning):
        files = dali.list_image_files(image_folder, validate="decode", num_threads=1)
    seen = []
    for shard in range(2):
        pipe = dali.folder_pipeline(None, cfg, batch_size=3, device_id=0, files=files, shard_id=shard,
                                    num_shards=2, shuffle=False)
        shard_seen = []
        for batch in DALIGenericIterator(pipe, ["video", "index"], reader_name="Reader"):
            assert batch[0]["video"].device.type == "cuda" and batch[0]["video"].shape == (3, 3, T, 32, 32)
            shard_seen += batch[0]["index"].view(-1).tolist()
        seen.append(set(shard_seen))
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(6))


@pytest.mark.gpu
def test_gpu_source_pipeline(images):
    from nvidia.dali.plugin.pytorch import DALIGenericIterator
    dali = _dali()
    cfg = PMGConfig(num_frames=T, size=SIZE, dtype=torch.uint8)
    source = TensorImages(images.cuda())
    it = DALIGenericIterator(dali.source_pipeline(source, cfg, 2, device_id=0), ["video", "index"])
    batches = list(it)
    assert len(batches) == 2 and batches[0][0]["video"].device.type == "cuda"
    assert batches[0][0]["video"].dtype == torch.uint8


def test_folder_pipeline_crops_like_image_folder():
    """One random-resized-crop range for every image path: DALI's folder_pipeline, ImageFolder and
    VideoFolder take pmg_dali.sources.CROP_SCALE / CROP_RATIO (the DALI default once drifted to 0.25)."""
    import inspect

    from pmg_dali import ImageFolder, VideoFolder, sources
    dali = _dali()
    params = inspect.signature(dali.folder_pipeline).parameters
    assert params["random_area"].default == sources.CROP_SCALE == (0.35, 1.0)
    assert params["random_aspect_ratio"].default == sources.CROP_RATIO
    for cls in (ImageFolder, VideoFolder):
        ps = inspect.signature(cls).parameters
        assert (ps["scale"].default, ps["ratio"].default) == (sources.CROP_SCALE, sources.CROP_RATIO), cls


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    cdf = lambda x: np.searchsorted(np.sort(x), grid, side="right") / len(x)  # noqa: E731
    return float(np.abs(cdf(a) - cdf(b)).max())


def _motion_statistics(h: torch.Tensor, color: torch.Tensor | None) -> dict:
    """Per-clip quantities that pin a transform's distribution, from (B, T, 3, 3) homographies."""
    h = h.double()
    step = h[:, 1] @ torch.linalg.inv(h[:, 0])
    step = step / step[:, 2:3, 2:3]
    out = {"first view side": 1 / h[:, 0, 0, 0], "step x scale": step[:, 0, 0], "step shear": step[:, 0, 1],
           "step x shift": step[:, 0, 2], "step y shift": step[:, 1, 2], "view x": h[:, 0, 0, 2]}
    if color is not None:
        out["gain"] = torch.as_tensor(color)[:, 1, 0, 0].double() / torch.as_tensor(color)[:, 0, 0, 0].double()
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize("name", ["zoom", "sliding_window", "affine", "fade"])
def test_in_graph_sampler_draws_the_host_distributions(name):
    """The in-graph sampler and the host sampler are two implementations of one set of distributions:
    per-clip statistics of their programs (step maps, first views, gains, Mixup lambda) agree by a
    two-sample Kolmogorov-Smirnov test (n = 384 each, fixed seeds; D < 0.15, the 0.1 % critical value
    being about 0.14 for these sizes). Default framing, so the weakened affine motions are included."""
    n = 384
    cfg = PMGConfig(num_frames=6, size=(20, 28), transforms=(name,), mixup="frame", normalize=False)
    from pmg_dali.dali import sample_motion
    host = sample_program(cfg, n, generator=torch.Generator().manual_seed(5))

    def pipe():
        m = sample_motion(cfg).motion
        return (m.matrices, m.mix_lambda) + ((m.color,) if m.color is not None else ())

    mats, lam, *color = _run(pipe, batch_size=n, seed=11)
    ours = _motion_statistics(_homographies(mats), color[0] if color else None)
    theirs = _motion_statistics(host.homography, host.color if name == "fade" else None)
    ours["lambda"], theirs["lambda"] = np.asarray(lam).reshape(-1), host.mix_lambda.double().numpy()
    for key in ours:
        spread = np.ptp(np.concatenate([ours[key], theirs[key]]))
        if spread < 1e-6:                            # a constant of this transform (e.g. no shear for zoom)
            continue
        assert _ks(ours[key], theirs[key]) < 0.15, (key, _ks(ours[key], theirs[key]))


def test_in_graph_sampler_takes_the_largest_seed():
    """Per-operator seeds stay in DALI's int64 range for any seed check_seed accepts."""
    from pmg_dali.dali import sample_motion
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=("zoom", "affine"), mixup="frame")
    mats, = _run(lambda: (sample_motion(cfg, seed=2 ** 63 - 1).motion.matrices,))
    assert np.isfinite(mats).all()
