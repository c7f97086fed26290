"""The DALI engine's own parts against independent references: OpenCV for the matrix convention, the
program-fed renderer's pipeline reuse and errors, and PseudoMotionLoader for the pipelines, whose programs
are drawn on the host by the same sampler and seeding. Its clips against the reference renderer, on every
transform and feature, are the conformance suite's (tests/test_conformance.py).

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
from pmg_dali.engines import engine
from pmg_dali.geometry import dali_inverse_map
from pmg_dali.render import render as reference_render
from pmg_dali.sampling import sample_program

pytestmark = pytest.mark.dali
TOL = engine("dali").tolerance.atol     # the DALI engine's tolerance against the reference renderer
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


# ---- the convention: dali_inverse_map vs OpenCV -------------------------------------------------------

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


# ---- the program-fed renderer -----------------------------------------------------------------------

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


def test_render_reuses_one_renderer_for_smaller_batches(images, monkeypatch):
    """render() builds one renderer (of batch 4) for a batch of 3 and feeds it the trailing batch of
    2; a larger batch rebuilds it at the next power of two; the 4 last used renderers are kept. (The
    self-check is skipped: its canary renders through the same cache.)"""
    dali = _dali()
    monkeypatch.setenv("PMG_DALI_SKIP_ENGINE_CHECK", "1")
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
    with pytest.raises(ValueError, match="`device_id` must be >= 0, but got -1"):
        dali.ProgramRenderer(cfg, batch_size=2, device="gpu", device_id=-1)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs a CUDA device"):
            dali.ProgramRenderer(cfg, batch_size=2, device="gpu")


# ---- fed programs: one packing for the renderer and the pipelines --------------------------------------

def test_program_arrays_feed_neutral_parts_and_refuse_lost_ones():
    """A pipeline's graph is fixed by its config (config_variant); clips that do not use a part get
    neutral values (identity colour, empty paste boxes, per-clip lambdas repeated per frame), and a
    program that needs a part the graph lacks is refused rather than rendered without it."""
    from pmg_dali.dali_graph import Variant, config_variant, program_arrays, tables_variant
    from pmg_dali.rules import frame_tables
    every = PMGConfig(num_frames=T, size=SIZE, transforms=TRANSFORMS, mixup="frame", mixup_per_frame=False)
    variant = config_variant(every)
    assert variant == Variant(perspective=True, color=True, paste=True, mix="frame")
    assert config_variant(every.replace(transforms=("zoom",), mixup="videomix")) == Variant(mix="box")
    assert config_variant(every.replace(transforms=("zoom",), padding_mode="reflection", mixup=None)) \
        == Variant(perspective=True)
    plain = frame_tables(_program(every.replace(transforms=("zoom",)), batch=3))     # no colour, no paste
    arrays = program_arrays(plain, variant)
    assert list(arrays) and set(arrays) == set(variant.names())
    assert arrays["matrices"].shape == arrays["paste_matrices"].shape == (3, T, 3, 3)
    np.testing.assert_array_equal(arrays["color"], np.broadcast_to(np.eye(3, 4, dtype=np.float32), (3, T, 3, 4)))
    assert arrays["paste_index"].tolist() == [0, 1, 2] and not arrays["paste_box"].any()
    assert arrays["mix_lambda"].shape == (3, T, 1, 1, 1) and arrays["mix_index"].dtype == np.int32
    np.testing.assert_array_equal(arrays["mix_lambda"][:, :, 0, 0, 0], plain.mix_lambda.numpy())
    assert tables_variant(plain, "zeros") == Variant(mix="clip")
    with pytest.raises(ValueError, match="`padding_mode` must be one of .*, but got 'wrap'"):
        tables_variant(plain, "wrap")
    assert program_arrays(plain, Variant(mix="clip"))["mix_lambda"].shape == (3, 1)
    coloured = frame_tables(_program(every.replace(transforms=("fade",)), batch=3))
    with pytest.raises(ValueError, match="`program` must fit the render graph .* needs color"):
        program_arrays(coloured, Variant(mix="frame"))
    with pytest.raises(ValueError, match="needs mix 'clip'"):
        program_arrays(plain, Variant())
    program = _program(every, batch=3)
    with pytest.raises(TypeError, match=r"`tables` must be FrameTables \(pmg_dali.rules.frame_tables\(program\)\), "
                                        "but got MotionProgram"):
        program_arrays(program, variant)
    with pytest.raises(TypeError, match="`tables` must be FrameTables .* but got MotionProgram"):
        tables_variant(program, "zeros")
    with pytest.raises(TypeError, match=r"`variant` must be a Variant \(tables_variant, config_variant\), but got str"):
        program_arrays(plain, "frame")
    with pytest.raises(TypeError, match="`config` must be a PMGConfig, but got dict"):
        config_variant({"mixup": "frame"})


def test_graph_helpers_refuse_what_they_cannot_use():
    """graph_motion takes exactly the variant's arrays (a part left out would be left out of the clips),
    feed_motion a ProgramFeed of the pipeline's batch size, render_images a (B, 3, H, W) tensor and a PMGConfig."""
    from pmg_dali.dali_graph import ProgramFeed, Variant, feed_motion, graph_motion
    variant = Variant(color=True, mix="box")
    nodes = dict.fromkeys(variant.names(), "node")
    motion = graph_motion(T, variant, nodes)
    assert (motion.num_frames, motion.color, motion.mix_box, motion.paste_box) == (T, "node", "node", None)
    with pytest.raises(ValueError, match=r"`nodes` must hold exactly the arrays of .*\('matrices', 'color', "
                                         r"'mix_index', 'mix_box'\), but got \('matrices',\)"):
        graph_motion(T, variant, {"matrices": "node"})
    with pytest.raises(TypeError, match=r"`variant` must be a Variant \(tables_variant, config_variant\), but got str"):
        graph_motion(T, "affine", nodes)
    with pytest.raises(ValueError, match=r"`variant.mix` must be one of \(None, 'clip', 'frame', 'box'\), but got "
                                         "'videomix'"):      # PMGConfig.mixup's word: lambda Mixup otherwise
        graph_motion(T, Variant(mix="videomix"), nodes)
    with pytest.raises(TypeError, match="`variant.color` must be a bool, but got 2"):   # names() would repeat
        graph_motion(T, Variant(color=2), nodes)
    with pytest.raises(TypeError, match="`nodes` must be a dict of array name -> node, but got list"):
        graph_motion(T, variant, list(nodes))
    with pytest.raises(ValueError, match="`num_frames` must be"):
        graph_motion(0, variant, nodes)
    with pytest.raises(TypeError, match="`feed` must be a ProgramFeed, but got NoneType"):
        feed_motion(None)
    cfg = PMGConfig(num_frames=T, size=SIZE)
    with pytest.raises(RuntimeError, match="feed_motion adds nodes to a pipeline: call it inside a @pipeline_def"):
        feed_motion(ProgramFeed(cfg, B))
    with pytest.raises(ValueError, match=f"`feed.batch_size` must be the pipeline's batch size, {B}, but got {B + 1}"):
        _run(lambda: feed_motion(ProgramFeed(cfg, B + 1)).matrices)      # DALI would fail at run time
    program = _program(cfg, batch=2)
    with pytest.raises(TypeError, match="`images` must be a torch.Tensor, but got list"):
        _dali().render_images([[0]], program, cfg)
    with pytest.raises(TypeError, match="`cfg` must be a PMGConfig, but got NoneType"):
        _dali().render_images(torch.zeros(2, 3, *SIZE, dtype=torch.uint8), program, None)
    iterative = cfg.replace(recursion="iterative")       # refused before a renderer (or the self-check) sees it
    for render in (_dali().render_images, _dali().render):
        with pytest.raises(ValueError, match="`cfg.recursion` must be 'composed' for the 'dali' engine, but got "
                                             "'iterative'"):
            render(torch.zeros(2, 3, *SIZE, dtype=torch.uint8), program, iterative)


def test_program_feed_draws_the_loaders_programs():
    """Batch k of epoch e on shard r: the program PseudoMotionLoader draws for that step (the same
    sampler and "program" generator of pmg_dali.seeding.batch_generators, which pmg_dali.loader
    re-exports), packed as ProgramRenderer packs it; the largest seed works."""
    import pmg_dali.loader
    import pmg_dali.seeding
    from nvidia.dali.types import BatchInfo

    from pmg_dali.dali_graph import ProgramFeed, config_variant, program_arrays
    from pmg_dali.rules import frame_tables
    assert pmg_dali.loader.batch_generators is pmg_dali.seeding.batch_generators
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=TRANSFORMS, mixup="videomix")
    source = TensorImages(torch.zeros(12, 3, 8, 8, dtype=torch.uint8))
    loader = PseudoMotionLoader(source, 3, cfg, device="cpu", seed=7, rank=1, world_size=2, mask_ratio=None)
    feed = ProgramFeed(cfg, 3, seed=7, shard_id=1, batches_per_epoch=2)
    for epoch, step in ((0, 0), (0, 1), (1, 0)):
        ours = feed.program(epoch, step)
        theirs = loader._host(loader._plan(epoch), epoch, step)["program"]
        for name, value in theirs.tensors().items():
            assert torch.equal(ours.tensors()[name], value), (epoch, step, name)
        packed = program_arrays(frame_tables(theirs), config_variant(cfg))
        for name, array in zip(feed.names, feed(BatchInfo(step, epoch))):
            np.testing.assert_array_equal(array, packed[name])
    assert not torch.equal(feed.program(0, 0).homography, feed.program(1, 0).homography)
    with pytest.raises(StopIteration):
        feed(BatchInfo(2, 0))
    assert np.isfinite(ProgramFeed(cfg, 2, seed=2 ** 63 - 1)(BatchInfo(0, 0))[0]).all()
    with pytest.raises(ValueError, match=r"`seed` must be in \[0, "):
        ProgramFeed(cfg, 2, seed=2 ** 63)
    with pytest.raises(ValueError, match="`batches_per_epoch` must be >= 1, but got 0"):
        ProgramFeed(cfg, 2, batches_per_epoch=0)
    with pytest.raises(ValueError, match="`config.recursion` must be 'composed'"):
        ProgramFeed(cfg.replace(recursion="iterative"), 2)
    with pytest.raises(TypeError, match="`config` must be a PMGConfig, but got dict"):
        ProgramFeed({"size": 8}, 2)


def test_pseudo_motion_in_your_own_pipeline(images):
    """The graph helper in a user's @pipeline_def (seeded by the pipeline's seed unless given one): batch k
    shows the program ProgramFeed draws for (0, k) with that seed,
    within 2 levels of the reference renderer's uint8; the uint8 fast path
    (``exact=False``) within two levels of the exact one; outside a pipeline definition it says where
    to call it."""
    from nvidia.dali import fn, pipeline_def

    from pmg_dali.dali import ProgramFeed, pseudo_motion
    cfg = PMGConfig(num_frames=T, size=SIZE, transforms=TRANSFORMS, mixup="frame", dtype=torch.uint8)
    hwc = images.permute(0, 2, 3, 1).contiguous().numpy()

    @pipeline_def(batch_size=B, num_threads=1, device_id=None, seed=4)
    def pipe():
        x = fn.external_source(lambda: hwc, batch=True, layout="HWC")
        return pseudo_motion(x, cfg), pseudo_motion(x, cfg, seed=4, exact=False), pseudo_motion(x, cfg, seed=7)

    p = pipe()
    p.build()
    feed, other = ProgramFeed(cfg, B, seed=4), ProgramFeed(cfg, B, seed=7)
    for k in range(3):                      # batches_per_epoch=None: the iterations go on
        exact, fast, seven = (torch.from_numpy(np.asarray(out.as_array())) for out in p.run())
        assert _max_diff(exact, reference_render(images, feed.program(0, k), cfg)) <= 2, k
        assert _max_diff(fast, exact) <= 2, k
        assert _max_diff(seven, reference_render(images, other.program(0, k), cfg)) <= 2, k
        assert _max_diff(seven, exact) > 2, k                      # its own seed, not the pipeline's
    with pytest.raises(RuntimeError, match="inside a @pipeline_def"):
        pseudo_motion(None, cfg)


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


def good_files(image_folder) -> list[str]:
    """The 6 good images of :func:`image_folder` (its broken files left out, without decoding anything)."""
    return [f for f in _dali().list_image_files(image_folder, validate="none")
            if "bad" not in f and "truncated" not in f]


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


@pytest.mark.parametrize("cfg", [
    PMGConfig(num_frames=T, size=(16, 24), transforms=TRANSFORMS, mixup="frame", dtype=torch.uint8),
    PMGConfig(num_frames=T, size=(16, 24), transforms=TRANSFORMS, mixup="videomix", normalize=False),
], ids=["uint8-frame-mixup", "float32-videomix"])
def test_source_pipeline_equals_the_loader(cfg):
    """The documented guarantee: a source_pipeline and a PseudoMotionLoader with equal arguments give the
    same indices and clips within 2/255 (2 levels of uint8), epoch after epoch
    (the pipeline's resets, the loader's set_epoch)."""
    from nvidia.dali.plugin.pytorch import DALIGenericIterator
    g = torch.Generator().manual_seed(0)
    x = F.interpolate(torch.rand(10, 3, 6, 8, generator=g), size=(20, 28), mode="bicubic", align_corners=False)
    source = TensorImages((x.clamp(0, 1) * 255).round().to(torch.uint8))
    it = DALIGenericIterator(_dali().source_pipeline(source, cfg, 4, device_id=None, seed=3, num_threads=1),
                             ["video", "index"])
    loader = PseudoMotionLoader(source, batch_size=4, config=cfg, device="cpu", renderer="auto", seed=3,
                                mask_ratio=None)
    tol = 2 if cfg.dtype == torch.uint8 else TOL
    for epoch in range(2):
        loader.set_epoch(epoch)
        ours = [(b[0]["index"].view(-1).long(), b[0]["video"]) for b in it]
        it.reset()
        theirs = [(b["index"], b["video"]) for b in loader]
        assert len(ours) == len(theirs) == 2                       # 10 // 4
        for (index, video), (expected_index, expected) in zip(ours, theirs):
            assert torch.equal(index, expected_index)
            assert video.shape == expected.shape and video.dtype == expected.dtype
            assert _max_diff(video, expected) <= tol, epoch
    assert _max_diff(ours[0][1], theirs[1][1]) > tol              # other batches differ by more: the check has teeth


@pytest.mark.parametrize("transforms", [(name,) for name in TRANSFORMS] + [TRANSFORMS])
@pytest.mark.parametrize("pipeline", ["folder", "source"])
def test_pipelines_take_every_transform(image_folder, pipeline, transforms):
    """Both pipelines render every transform of TRANSFORMS (alone, and all eight at once) on DALI's CPU
    operators: well-formed clips of the config's shape, dtype and range, and motion where the transform moves."""
    from nvidia.dali.plugin.pytorch import DALIGenericIterator
    dali = _dali()
    cfg = PMGConfig(num_frames=T, size=(16, 24), transforms=transforms, mixup=None, dtype=torch.uint8,
                    layout="BTCHW")
    if pipeline == "folder":
        files = good_files(image_folder)
        pipe = dali.folder_pipeline(None, cfg, 3, device_id=None, files=files, num_threads=1)
        it = DALIGenericIterator(pipe, ["video", "index"], reader_name="Reader")
    else:
        source = TensorImages(torch.randint(0, 256, (6, 3, 20, 28), dtype=torch.uint8,
                                            generator=torch.Generator().manual_seed(1)))
        it = DALIGenericIterator(dali.source_pipeline(source, cfg, 3, device_id=None, num_threads=1),
                                 ["video", "index"])
    batches = [b[0]["video"] for b in it]
    assert len(batches) == 2
    for video in batches:
        assert video.shape == (3, T, 3, 16, 24) and video.dtype == torch.uint8 and float(video.float().std()) > 5
    if transforms != ("identity",):      # some clip moves (or changes colour) between its first and last frame
        assert max(_max_diff(v[:, 0], v[:, -1]) for v in batches) > 10


def test_folder_pipeline_programs_stay_in_step_with_the_reader(tmp_path):
    """The reader pads each epoch to whole batches and the program feed ends the epoch with it, for every
    last-batch policy of DALI's iterator: batch k of epoch e renders the program of (e, k). White images
    and fades make every clip a function of its program alone."""
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy
    from PIL import Image

    from pmg_dali.dali import ProgramFeed
    for i in range(7):
        Image.fromarray(np.full((20 + i, 30, 3), 255, np.uint8)).save(tmp_path / f"{i}.png")
    dali = _dali()
    files = dali.list_image_files(tmp_path, validate="none")
    cfg = PMGConfig(num_frames=T, size=(16, 16), transforms=("fade",), mixup="frame", dtype=torch.uint8)
    white = torch.full((3, 3, 16, 16), 255, dtype=torch.uint8)
    feed = ProgramFeed(cfg, 3, seed=5)
    assert _max_diff(reference_render(white, feed.program(0, 0), cfg),      # the check below has teeth
                     reference_render(white, feed.program(1, 0), cfg)) > 1
    for policy, sizes in ((LastBatchPolicy.FILL, [3, 3, 3]), (LastBatchPolicy.PARTIAL, [3, 3, 1]),
                          (LastBatchPolicy.DROP, [3, 3])):
        pipe = dali.folder_pipeline(None, cfg, 3, device_id=None, seed=5, files=files, num_threads=1)
        it = DALIGenericIterator(pipe, ["video", "index"], reader_name="Reader", last_batch_policy=policy)
        for epoch in range(3):
            batches = [(b[0]["video"], b[0]["index"].view(-1).tolist()) for b in it]
            it.reset()
            assert [len(index) for _, index in batches] == sizes, policy
            if policy == LastBatchPolicy.PARTIAL:
                assert sorted(i for _, index in batches for i in index) == list(range(7))
            for k, (video, _) in enumerate(batches):
                expected = reference_render(white, feed.program(epoch, k), cfg)[:len(video)]
                assert _max_diff(video, expected) <= 1, (policy, epoch, k)


def _outputs(pipe, count: int) -> list:
    """``count`` results of ``pipe.run()``: (clips, indices) arrays, or "end" where an epoch ended (then reset)."""
    out = []
    while len(out) < count:
        try:
            video, index = pipe.run()
            out.append((np.asarray(video.as_array()), np.asarray(index.as_array()).reshape(-1).tolist()))
        except StopIteration:
            out.append("end")
            pipe.reset()
    return out


def _same(a: list, b: list) -> bool:
    def same(x, y):
        if isinstance(x, str) or isinstance(y, str):
            return x == y
        return np.array_equal(x[0], y[0]) and x[1] == y[1]
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("pipeline", ["folder", "source"])
def test_pipelines_restore_from_a_dali_checkpoint(image_folder, pipeline):
    """DALI's checkpointing restores both pipelines -- the reader, the crop's random state, the source
    feed and the program feed (pure functions of BatchInfo) -- mid-epoch and at an epoch's end, through
    pipe.checkpoint() and through DALIGenericIterator.checkpoints()."""
    from nvidia.dali.plugin.pytorch import DALIGenericIterator
    dali = _dali()
    cfg = PMGConfig(num_frames=T, size=(16, 16), transforms=TRANSFORMS, mixup="frame", dtype=torch.uint8)
    source = TensorImages(torch.randint(0, 256, (6, 3, 20, 24), dtype=torch.uint8,
                                        generator=torch.Generator().manual_seed(0)))
    files = good_files(image_folder)

    def make(**kw):
        if pipeline == "folder":
            return dali.folder_pipeline(None, cfg, 4, device_id=None, seed=5, files=files, num_threads=1,
                                        enable_checkpointing=True, **kw)
        return dali.source_pipeline(source, cfg, 2, device_id=None, seed=5, num_threads=1,
                                    enable_checkpointing=True, **kw)

    # checkpoints mid-epoch, after an epoch's last batch, and after its end (StopIteration, reset)
    for stop in ((1, 2, 3) if pipeline == "folder" else (1, 3, 4)):
        original = make()
        original.build()
        _outputs(original, stop)
        checkpoint = original.checkpoint()
        restored = make(checkpoint=checkpoint)
        restored.build()
        assert _same(_outputs(original, 5), _outputs(restored, 5)), stop
    reader = {"reader_name": "Reader"} if pipeline == "folder" else {}
    original = DALIGenericIterator(make(), ["video", "index"], **reader)
    next(original)
    restored = DALIGenericIterator(make(checkpoint=original.checkpoints()[0]), ["video", "index"], **reader)
    rest, again = list(original), list(restored)
    assert len(rest) == len(again) >= 1                            # the rest of the epoch, batch for batch
    for a, b in zip(rest, again):
        assert torch.equal(a[0]["video"], b[0]["video"]) and torch.equal(a[0]["index"], b[0]["index"])


@pytest.mark.parametrize("files, error, match", [
    ([], ValueError, r"`files` must list at least one image file, but got \[\]"),
    ("a.jpg", TypeError, "`files` must be a list of paths, but got one path 'a.jpg'"),
    (["a.jpg", 3], TypeError, r"`files` must be a list of paths \(str or os.PathLike\), but files\[1\] is int 3"),
    (7, TypeError, "`files` must be a list of paths, but got int"),
])
def test_folder_pipeline_files_are_checked(files, error, match):
    with pytest.raises(error, match=match):
        _dali().folder_pipeline(None, PMGConfig(num_frames=T, size=(16, 16)), 2, device_id=None, files=files)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(shard_id=2, num_shards=2), ValueError, r"`shard_id` must be in \[0, 1\] \(num_shards 2\), but got 2"),
    (dict(shard_id=-1), ValueError, "`shard_id` must be >= 0, but got -1"),
    (dict(num_shards=0), ValueError, "`num_shards` must be >= 1, but got 0"),
    (dict(batch_size=0), ValueError, "`batch_size` must be >= 1, but got 0"),
    (dict(batch_size=True), TypeError, "`batch_size` must be an int, but got True"),
    (dict(device_id=-1), ValueError, "`device_id` must be >= 0, but got -1"),     # before the files are listed
    (dict(device_id="0"), TypeError, "`device_id` must be an int, but got '0'"),
])
@pytest.mark.parametrize("pipeline", ["folder", "source"])
def test_pipeline_batching_arguments_are_checked(pipeline, kwargs, error, match):
    dali = _dali()
    cfg = PMGConfig(num_frames=T, size=(16, 16), mixup=None)
    kwargs = {"batch_size": 2, "device_id": None, **kwargs}
    with pytest.raises(error, match=match):
        if pipeline == "folder":
            dali.folder_pipeline("no such folder", cfg, **kwargs)    # the folder is listed after the checks
        else:
            dali.source_pipeline(TensorImages(torch.zeros(4, 3, 8, 8, dtype=torch.uint8)), cfg, **kwargs)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(random_area=(0.5, 2)), ValueError, r"`random_area` must satisfy 0 < min <= max <= 1, but got \(0.5, 2\)"),
    (dict(random_area=(0, 1)), ValueError, r"`random_area` must satisfy 0 < min"),
    (dict(random_area="x"), TypeError, r"`random_area` must be a pair of numbers \(min, max\), but got 'x'"),
    (dict(random_aspect_ratio=(2, 1)), ValueError,
     r"`random_aspect_ratio` must satisfy 0 < min <= max, but got \(2, 1\)"),
])
def test_folder_pipeline_crop_ranges_are_checked(kwargs, error, match):
    """Checked where given, before the files are listed, and by the image stage on its own (decode_crop)."""
    dali = _dali()
    with pytest.raises(error, match=match):
        dali.folder_pipeline(None, PMGConfig(num_frames=T, size=(16, 16)), 2, device_id=None, files=["unused.jpg"],
                             **kwargs)
    with pytest.raises(error, match=match):
        dali.decode_crop(None, (16, 16), None, **kwargs)


def test_decode_crop_arguments_are_checked():
    dali = _dali()
    with pytest.raises(TypeError, match=r"`size` must be an int or a pair of ints \(H, W\), but got 16.5"):
        dali.decode_crop(None, 16.5, None)
    with pytest.raises(ValueError, match="`device_id` must be >= 0, but got -1"):
        dali.decode_crop(None, 16, -1)
    with pytest.raises(TypeError, match="`device_id` must be an int, but got '0'"):
        dali.decode_crop(None, 16, "0")


def test_image_extensions_are_the_sources():
    from pmg_dali.sources import IMG_EXTENSIONS
    assert _dali().IMAGE_EXTENSIONS is IMG_EXTENSIONS


# ---- GPU ------------------------------------------------------------------------------------------

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


@pytest.mark.gpu
def test_gpu_source_pipeline_equals_the_loader():
    """On a GPU: DALI's GPU operators against the loader's own CUDA engine, the same batches within 2 levels."""
    from nvidia.dali.plugin.pytorch import DALIGenericIterator
    cfg = PMGConfig(num_frames=T, size=(32, 48), transforms=TRANSFORMS, mixup="frame", dtype=torch.uint8)
    source = TensorImages(torch.randint(0, 256, (8, 3, 40, 56), dtype=torch.uint8,
                                        generator=torch.Generator().manual_seed(0)).cuda())
    it = DALIGenericIterator(_dali().source_pipeline(source, cfg, 4, device_id=0, seed=3), ["video", "index"])
    loader = PseudoMotionLoader(source, batch_size=4, config=cfg, device="cuda", seed=3, mask_ratio=None)
    for epoch in range(2):
        loader.set_epoch(epoch)
        ours = list(it)
        it.reset()
        theirs = list(loader)
        assert len(ours) == len(theirs) == 2                       # 8 // 4
        for a, b in zip(ours, theirs):
            assert torch.equal(a[0]["index"].view(-1).long().cpu(), b["index"].cpu())
            assert _max_diff(a[0]["video"].cpu(), b["video"].cpu(), margin=2) <= 2
    assert _max_diff(ours[0][0]["video"].cpu(), theirs[1]["video"].cpu(), margin=2) > 2   # the check has teeth


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
