"""Bad values through every public entry point: each raises where it is given (at construction, not at
the first batch), with TypeError / ValueError and a message naming the argument -- pinned here, one row
per (entry point, argument, value)."""
import math

import pytest
import torch
from PIL import Image

import pmg_dali
import pmg_dali.cpu_render
from pmg_dali import (ImageFolder, MotionProgram, PMGConfig, PseudoMotion, PseudoMotionLoader, SyntheticImages,
                      TensorImages, tube_mask)

CFG = PMGConfig(num_frames=4, size=16, mixup=None)
IMAGES = torch.rand(2, 3, 16, 16)
VIDEO = torch.rand(2, 3, 4, 16, 16)
PARTNERED = CFG.replace(transforms=("zoom", "cutmix"), mixup="frame")     # programs with paste_index, mix_index
SOURCE = TensorImages(torch.zeros(8, 3, 16, 16, dtype=torch.uint8))


def _with(x: torch.Tensor, value: float) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[7] = value
    return x


def _program(config=CFG, **values):
    """A drawn program with the named tables set to one value throughout (a hand-made program gone wrong)."""
    program = PseudoMotion(config).sample(2, generator=torch.Generator().manual_seed(0))
    return program.__class__(**{**program.tensors(), **{k: torch.full_like(getattr(program, k), v)
                                                          for k, v in values.items()}})


def _loader(**kw):
    return PseudoMotionLoader(SOURCE, **{"batch_size": 2, "config": CFG, "device": "cpu", **kw})


def _folder(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    return tmp_path


CASES = [
    # PMGConfig
    ("config num_frames", lambda: PMGConfig(num_frames=0), ValueError, "`num_frames` must be >= 1, but got 0"),
    ("config size", lambda: PMGConfig(size=-5), ValueError, r"`size` must be at least 2 pixels on each side"),
    ("config size type", lambda: PMGConfig(size="224"), TypeError, r"`size` must be an int or a pair of ints"),
    ("config framing", lambda: PMGConfig(framing="outside"), ValueError, r"`framing` must be one of \('inside'"),
    ("config min_view_area", lambda: PMGConfig(min_view_area=0), ValueError,
     r"`min_view_area` must be in \[0.0001, 1\], but got 0"),
    ("config dtype", lambda: PMGConfig(dtype=torch.int32), ValueError, "`dtype` must be one of"),
    ("config mixup_alpha inf", lambda: PMGConfig(mixup_alpha=math.inf), ValueError,
     "`mixup_alpha` must be a finite number, but got inf"),
    ("config std NaN", lambda: PMGConfig(std=(math.nan, 1, 1)), ValueError,
     r"`std` must be 3 finite numbers \(R, G, B\), but got \(nan, 1, 1\)"),
    ("config mean inf", lambda: PMGConfig(mean=(math.inf, 0, 0)), ValueError, "`mean` must be 3 finite numbers"),
    ("config std tiny for float16", lambda: PMGConfig(std=(1e-30, 1, 1), dtype=torch.float16), ValueError,
     r"`std` and `mean` give normalised values up to 5.15e\+29, beyond the largest torch.float16 \(65504\)"),
    ("config range inf", lambda: PMGConfig(affine_scale=(1, math.inf)), ValueError,
     r"`affine_scale` must be a pair of finite numbers \(min, max\)"),
    ("config zoom compounded", lambda: PMGConfig(transforms=("zoom",), zoom_scale=(0.5, 0.5), num_frames=128),
     ValueError, r"`zoom_scale` compounded over num_frames - 1 = 127 steps reaches 5.88e-39 to 5.88e-39, "
                 r"outside \[1e-06, 1e\+06\]"),
    ("config affine compounded", lambda: PMGConfig(transforms=("affine",), affine_scale=(1, 5), num_frames=64),
     ValueError, r"`affine_scale` compounded over num_frames - 1 = 63 steps reaches 1 to 1.08e\+44"),
    ("config jitter compounded", lambda: PMGConfig(transforms=("color_jitter",), jitter_contrast=0.99,
                                                   num_frames=256), ValueError, "`jitter_contrast` compounded"),
    # PseudoMotion
    ("module config", lambda: PseudoMotion("zoom"), TypeError, "`config` must be a PMGConfig, but got str"),
    ("module renderer", lambda: PseudoMotion(CFG, renderer="gpu"), ValueError, "`renderer` must be one of"),
    ("engine device", lambda: PseudoMotion(CFG).engine("foo"), ValueError,
     "`device` must name a device such as 'cpu', 'cuda' or 'cuda:1', but got 'foo'"),
    ("engine op", lambda: PseudoMotion(CFG).engine("cpu", "warp"), ValueError,
     r"`op` must be one of \('render', 'augment'\), but got 'warp'"),
    ("engine op of a named renderer", lambda: PseudoMotion(CFG, renderer="cpu").engine("cpu", "warp"), ValueError,
     r"`op` must be one of \('render', 'augment'\), but got 'warp'"),
    ("engine device type", lambda: PseudoMotion(CFG).render_function(["cpu"]), TypeError,
     "`device` must be a torch.device, a str or an int, but got list"),
    ("sample batch_size", lambda: PseudoMotion(CFG).sample(-1), ValueError, "`batch_size` must be >= 0"),
    ("sample device", lambda: PseudoMotion(CFG).sample(2, device="foo"), ValueError,
     "`device` must name a device such as 'cpu', 'cuda' or 'cuda:1', but got 'foo'"),
    ("sample device index", lambda: PseudoMotion(CFG).sample(2, device=f"cuda:{torch.cuda.device_count()}"),
     ValueError, "`device` "),
    ("images zero-sized", lambda: PseudoMotion(CFG)(torch.zeros(2, 3, 0, 16)), ValueError,
     r"`images` must have at least one pixel per frame, but got shape \(2, 3, 0, 16\)"),
    ("program NaN homography", lambda: PseudoMotion(CFG)(IMAGES, program=_program(homography=math.nan)), ValueError,
     "`program` must hold finite tables and invertible homographies, but these are not: homography"),
    ("program singular homography", lambda: PseudoMotion(CFG, renderer="cpu")(IMAGES, program=_program(homography=0)),
     ValueError, r"but these are not: homography \(invertible\)"),
    ("program inf colour", lambda: PseudoMotion(CFG, renderer="reference")(IMAGES, program=_program(color=math.inf)),
     ValueError, "but these are not: color"),
    ("program mix_index outside the batch",
     lambda: PseudoMotion(PARTNERED, renderer="cpu")(IMAGES, program=_program(PARTNERED, mix_index=-1)), ValueError,
     r"`program.mix_index` must hold indices of the batch's clips, in \[0, 2\), but got \[-1\]"),
    ("program paste_index outside the batch",
     lambda: PseudoMotion(PARTNERED, renderer="reference")(IMAGES, program=_program(PARTNERED, paste_index=2)),
     ValueError, r"`program.paste_index` must hold indices of the batch's clips, in \[0, 2\), but got \[2\]"),
    ("program float mix_index", lambda: MotionProgram(**{**_program(PARTNERED).tensors(), "mix_index": torch.zeros(2)}),
     TypeError,
     "`mix_index` must be an integer tensor, but got torch.float32"),
    ("images 0-255 floats", lambda: PseudoMotion(CFG)(IMAGES * 255), ValueError,
     r"`images` must be uint8 \(0-255\) or float with finite values in \[0, 1\], but got torch.float32 "
     r"values from .* \(0-255 pixels\? divide by 255, or pass uint8\)"),
    ("images NaN", lambda: PseudoMotion(CFG)(_with(IMAGES, math.nan)), ValueError, "`images` must .* NaN values"),
    ("images Inf", lambda: PseudoMotion(CFG)(_with(IMAGES, math.inf)), ValueError, r"`images` must .* to inf"),
    ("images -Inf", lambda: PseudoMotion(CFG)(_with(IMAGES, -math.inf)), ValueError, r"`images` must .* from -inf"),
    ("images negative", lambda: PseudoMotion(CFG)(IMAGES - 0.5), ValueError, r"`images` must .* from -0.4"),
    ("images half 0-255", lambda: PseudoMotion(CFG, renderer="reference")((IMAGES * 255).half()), ValueError,
     r"`images` must .* torch.float16 values"),
    ("images dtype", lambda: PseudoMotion(CFG)(IMAGES.int()), TypeError, "`images` must be uint8 or floating"),
    ("images shape", lambda: PseudoMotion(CFG)(IMAGES[0]), ValueError, r"`images` must have shape \(B, 3, H, W\)"),
    ("video 0-255 floats", lambda: PseudoMotion(CFG).augment(VIDEO * 255), ValueError,
     r"`video` must be uint8 \(0-255\) or float .* divide by 255"),
    ("video NaN", lambda: PseudoMotion(CFG).augment(_with(VIDEO, math.nan)), ValueError, "`video` must .* NaN"),
    ("augment NaN homography", lambda: PseudoMotion(CFG).augment(VIDEO, program=_program(homography=math.nan)),
     ValueError, "`program` must hold finite tables and invertible homographies, but these are not: homography"),
    ("render reference", lambda: pmg_dali.render.render(IMAGES * 2, PseudoMotion(CFG).sample(2), CFG), ValueError,
     r"`images` must .* values from"),
    ("render cpu", lambda: pmg_dali.cpu_render.render_cpu(_with(IMAGES, math.inf), PseudoMotion(CFG).sample(2), CFG),
     ValueError, r"`images` must .* to inf"),
    # PseudoMotionLoader: every argument at construction
    ("loader seed range", lambda: _loader(seed=2 ** 70), ValueError,
     r"`seed` must be in \[0, 9223372036854775807\], but got 1180591620717411303424"),
    ("loader seed negative", lambda: _loader(seed=-1), ValueError, r"`seed` must be in \[0, "),
    ("loader seed type", lambda: _loader(seed=1.5), TypeError, "`seed` must be an int, but got 1.5"),
    ("loader device", lambda: _loader(device="foo"), ValueError, "`device` must name a device .* but got 'foo'"),
    ("loader device type", lambda: _loader(device=[0]), TypeError, "`device` must be a torch.device, a str or an int"),
    ("loader batch_size", lambda: _loader(batch_size=0), ValueError, "`batch_size` must be >= 1, but got 0"),
    ("loader batch_size large", lambda: _loader(batch_size=9), ValueError, "`batch_size` must be at most the 8"),
    ("loader mask_ratio", lambda: _loader(mask_ratio=1.0), ValueError, "`mask_ratio` must be"),
    ("loader backend", lambda: _loader(backend="jax"), ValueError, "`backend` must be one of"),
    ("loader config", lambda: _loader(config={"size": 16}), TypeError, "`config` must be a PMGConfig"),
    ("loader source", lambda: PseudoMotionLoader([1, 2], device="cpu"), TypeError, "`source` must have len"),
    ("loader rank", lambda: _loader(rank=2, world_size=2), ValueError, r"`rank` must be in \[0, 1\]"),
    ("loader set_epoch", lambda: _loader().set_epoch(-1), ValueError, "`epoch` must be >= 0, but got -1"),
    ("make_renderer renderer", lambda: pmg_dali.loader.make_renderer("bogus", CFG), ValueError,
     r"`renderer` must be one of \('auto', 'reference'.*but got 'bogus'"),
    ("make_renderer config", lambda: pmg_dali.loader.make_renderer("cpu", {"size": 16}), TypeError,
     "`config` must be a PMGConfig, but got dict"),
    # sources
    ("tensor images dtype", lambda: TensorImages(torch.zeros(2, 3, 4, 4)), TypeError, "`images` must be uint8"),
    ("tensor images empty", lambda: TensorImages(torch.zeros(0, 3, 4, 4, dtype=torch.uint8)), ValueError,
     "`images` must hold at least one image"),
    ("tensor load device", lambda: SOURCE.load([0], 8, device="foo"), ValueError, "`device` must name a device"),
    ("tensor load size", lambda: SOURCE.load([0], -5), ValueError, "`size` must be at least 2"),
    ("tensor load indices", lambda: SOURCE.load([8], 8), ValueError, r"`indices` must lie in \[0, 8\)"),
    ("synthetic kind", lambda: SyntheticImages("photo"), ValueError, "`kind` must be one of"),
    ("synthetic seed", lambda: SyntheticImages(seed=2 ** 70), ValueError, r"`seed` must be in \[0, "),
    ("synthetic num_images", lambda: SyntheticImages(num_images=0), ValueError, r"`num_images` must be in \[1, "),
    ("synthetic load device", lambda: SyntheticImages().load([0], 8, device="foo"), ValueError,
     "`device` must name a device"),
    ("folder root", lambda: ImageFolder("/no/such/folder"), ValueError,
     "`root` must be an existing folder, but '/no/such/folder' does not exist"),
    ("folder root type", lambda: ImageFolder(3), TypeError, "`root` must be a str or os.PathLike, but got int"),
    ("tube_mask ratio", lambda: tube_mask(2, 4, 16, 8, 2, mask_ratio=1.5), ValueError, "`mask_ratio` must be"),
    ("tube_mask device", lambda: tube_mask(2, 4, 16, 8, 2, device="foo"), ValueError, "`device` must name a device"),
]


@pytest.mark.parametrize("name, call, error, match", CASES, ids=[c[0] for c in CASES])
def test_bad_value_raises_naming_the_argument(name, call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("name, make, error, match", [
    ("folder max_pixels", lambda p: ImageFolder(p, max_pixels=0), ValueError, "`max_pixels` must be >= 1"),
    ("folder num_workers", lambda p: ImageFolder(p, num_workers=-1), ValueError, "`num_workers` must be >= 0"),
    ("folder scale", lambda p: ImageFolder(p, scale=(0.5, 2)), ValueError, r"`scale` must satisfy"),
])
def test_bad_folder_arguments(tmp_path, name, make, error, match):
    with pytest.raises(error, match=match):
        make(_folder(tmp_path))


def test_video_folder_arguments(tmp_path):
    pytest.importorskip("av")
    from pmg_dali import VideoFolder
    with pytest.raises(ValueError, match="`root` must be a folder of videos or a list file, but '/no/such' does"):
        VideoFolder("/no/such")
    with pytest.raises(ValueError, match="`num_frames` must be >= 1, but got 0"):
        VideoFolder(tmp_path, num_frames=0)
    with pytest.raises(ValueError, match="`root` holds no video files"):
        VideoFolder(tmp_path)


def test_dali_entry_points():
    pytest.importorskip("nvidia.dali")
    from pmg_dali import dali
    with pytest.raises(ValueError, match=r"`images` must .* divide by 255"):
        dali.render(IMAGES * 255, PseudoMotion(CFG).sample(2), CFG, device="cpu")
    with pytest.raises(ValueError, match=r"`seed` must be in \[0, "):
        dali.source_pipeline(SOURCE, CFG, batch_size=2, device_id=None, seed=-1)
    with pytest.raises(ValueError, match=r"`seed` must be in \[0, "):
        dali.folder_pipeline(None, CFG, batch_size=2, device_id=None, files=["unused.jpg"], seed=2 ** 70)
    with pytest.raises(TypeError, match="`config` must be a PMGConfig, but got dict"):
        dali.source_pipeline(SOURCE, {"size": 16}, batch_size=2, device_id=None)
    with pytest.raises(ValueError, match="`config.recursion` must be 'composed' for the 'dali' engine, "
                                         "but got 'iterative'"):
        dali.folder_pipeline(None, CFG.replace(recursion="iterative"), 2, device_id=None, files=["unused.jpg"])
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        dali.ProgramRenderer(CFG, batch_size=0, device="cpu")


@pytest.mark.parametrize("off", ["0", "false", "No", "off"])
def test_value_check_can_be_skipped(monkeypatch, off):
    """PMG_DALI_CHECK_INPUTS=0 (or any false word of the package's flag parser) skips the value check,
    not the shape and type checks."""
    monkeypatch.setenv("PMG_DALI_CHECK_INPUTS", off)
    PseudoMotion(CFG)(IMAGES * 255, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="`images` must be uint8 or floating"):
        PseudoMotion(CFG)(IMAGES.int())
    monkeypatch.setenv("PMG_DALI_CHECK_INPUTS", "perhaps")
    with pytest.raises(ValueError, match="the environment variable PMG_DALI_CHECK_INPUTS must be one of"):
        PseudoMotion(CFG)(IMAGES * 255)


def test_valid_edges_pass():
    """The bounds are inclusive: 0 and 1 floats, uint8 0 and 255, the largest seed."""
    edges = torch.cat([torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)])
    PseudoMotion(CFG)(edges, generator=torch.Generator().manual_seed(0))
    PseudoMotion(CFG)((edges * 255).to(torch.uint8), generator=torch.Generator().manual_seed(0))
    batch = next(iter(_loader(seed=2 ** 63 - 1)))
    assert batch["video"].shape == (2, 3, 4, 16, 16)


@pytest.mark.gpu
@pytest.mark.parametrize("renderer", ["reference", pytest.param("fused", marks=pytest.mark.skipif(
    not pmg_dali.engines.engine("fused").installed(), reason="the fused engine needs triton"))])
def test_partner_indices_are_checked_on_a_gpu(renderer):
    """The CUDA branch of the table check: a partner outside the batch is refused (the fused kernel would
    read outside it), and an index left on the host beside CUDA tables is still taken."""
    images = IMAGES.cuda()
    module = PseudoMotion(PARTNERED, renderer=renderer)
    with pytest.raises(ValueError, match=r"`program.mix_index` must hold indices of the batch's clips, in \[0, 2\), "
                                         r"but got \[-1\]"):
        module(images, program=_program(PARTNERED, mix_index=-1).to("cuda"))
    program = _program(PARTNERED)
    mixed = MotionProgram(**{**program.to("cuda").tensors(), "mix_index": program.mix_index})
    torch.testing.assert_close(module(images, program=mixed), module(images, program=program.to("cuda")))
