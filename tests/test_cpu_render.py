"""The fast CPU renderer against the reference renderer (the specification), and renderer selection.

The CPU renderer performs the reference's own arithmetic frame by frame, so on programs without a
colour matrix its clips are bit-identical; colour matrices may differ by float rounding.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pmg_dali import TRANSFORMS, PMGConfig, PseudoMotion
from pmg_dali.cpu_render import render_cpu
from pmg_dali.render import render

T, SIZE = 3, (19, 26)
WILD = dict(affine_degrees=25.0, affine_translate=0.2, perspective_distortion=0.1,
            sliding_window_speed=(0.1, 0.2), cutmix_speed=(0.1, 0.2))   # programs that leave the image
COLOUR = ("fade", "color_jitter")


def random_images(b, size, dtype=torch.uint8, seed=0):
    """(b, 3, *size) uint8 noise (the hardest case for interpolation), or that / 255 as ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (b, 3, *size), dtype=torch.uint8, generator=g)
    return img if dtype == torch.uint8 else img.to(dtype) / 255


def images_for(b, size=SIZE, dtype=torch.uint8, seed=0):
    return random_images(b, size, dtype, seed)


def check(cfg, images, seed=0):
    program = PseudoMotion(cfg).sample(images.shape[0], generator=torch.Generator().manual_seed(seed))
    before = images.clone()
    out, expect = render_cpu(images, program, cfg), render(images, program, cfg)
    assert torch.equal(images, before)
    assert out.dtype == expect.dtype and out.shape == expect.shape and out.is_contiguous()
    if any(name in COLOUR for name in cfg.transforms):
        torch.testing.assert_close(out.float(), expect.float(), atol=1e-5 if cfg.dtype != torch.uint8 else 1,
                                   rtol={torch.float16: 2 ** -10, torch.bfloat16: 2 ** -7}.get(cfg.dtype, 0))
    else:
        assert torch.equal(out, expect)


# One case per transform, cycling through layouts, dtypes, padding modes and mixing modes.
CASES = [(name, dict(layout=("BCTHW", "BTCHW")[i % 2],
                     dtype=(torch.float32, torch.bfloat16, torch.uint8, torch.float16)[i % 4],
                     padding_mode=("zeros", "border", "reflection")[i % 3],
                     mixup=("frame", "videomix", None)[i % 3]))
         for i, name in enumerate(TRANSFORMS)]


@pytest.mark.parametrize("name,options", CASES, ids=[c[0] for c in CASES])
def test_every_transform_matches_the_reference(name, options):
    check(PMGConfig(transforms=(name,), num_frames=T, size=SIZE, **options, **WILD), images_for(4))


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("layout,dtype", [("BCTHW", torch.bfloat16), ("BTCHW", torch.uint8)])
def test_all_transforms_mixed_far_outside(padding_mode, layout, dtype):
    cfg = PMGConfig(transforms=TRANSFORMS, num_frames=T, size=SIZE, mixup="frame", mixup_per_frame=True,
                    padding_mode=padding_mode, layout=layout, dtype=dtype, **WILD)
    check(cfg, images_for(6, seed=1), seed=1)


@pytest.mark.parametrize("source", ["float32", "uint8 resized", "float64 resized"])
def test_sources(source):
    dtype = torch.uint8 if "uint8" in source else getattr(torch, source.split()[0])
    size = (SIZE[0] + 9, SIZE[1] - 5) if "resized" in source else SIZE
    check(PMGConfig(transforms=TRANSFORMS, num_frames=T, size=SIZE, mixup="videomix"), images_for(5, size, dtype))


def test_time_steps_run_in_the_pool_on_one_intra_op_thread_each(monkeypatch):
    """The threading mechanism (not a timing): with N torch threads the steps run on the renderer's
    pool, each with torch on one thread; the process's thread count is restored; every N gives the
    same bits."""
    import threading

    from pmg_dali import cpu_render
    cfg = PMGConfig(num_frames=6, size=(12, 16), transforms=TRANSFORMS, mixup="frame")
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (4, 3, 12, 16), dtype=torch.uint8, generator=g)
    program = PseudoMotion(cfg).sample(4, generator=g)
    seen, frame = [], cpu_render._frame

    def spy(src, i, t, plan):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return frame(src, i, t, plan)
    monkeypatch.setattr(cpu_render, "_frame", spy)
    before = torch.get_num_threads()
    try:
        outs = {}
        for n in (1, 3):
            torch.set_num_threads(n)
            seen.clear()
            outs[n] = render_cpu(images, program, cfg)
            assert torch.get_num_threads() == n
            names = {name for name, _ in seen}
            if n == 1:
                assert names == {threading.current_thread().name}
            else:
                assert names and all(name.startswith("pmg_dali_cpu") for name in names)
                assert {threads for _, threads in seen} == {1}
        assert torch.equal(outs[1], outs[3])
        jitter = PMGConfig(num_frames=6, size=(12, 16), transforms=("color_jitter", "affine"), mixup=None)
        for modes in (torch.inference_mode, lambda: torch.autocast("cpu", dtype=torch.bfloat16)):
            per_count = []
            for n in (1, 3):       # the pool threads run in the caller's inference / autocast mode
                torch.set_num_threads(n)
                with modes():
                    per_count.append(render_cpu(images, PseudoMotion(jitter).sample(4, generator=torch.Generator()
                                                                                    .manual_seed(1)), jitter))
            assert torch.equal(*per_count)
    finally:
        torch.set_num_threads(before)


def test_batch_of_one_and_empty_batch():
    cfg = PMGConfig(transforms=("zoom", "affine"), num_frames=T, size=SIZE, normalize=False)
    check(cfg, images_for(1))
    out = render_cpu(images_for(0), PseudoMotion(cfg).sample(0), cfg)
    assert out.shape == (0, 3, T, *SIZE)


def test_iterative_recursion_is_the_reference():
    cfg = PMGConfig(transforms=("zoom", "color_jitter"), num_frames=T, size=SIZE, recursion="iterative")
    images = images_for(3)
    program = PseudoMotion(cfg).sample(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(render_cpu(images, program, cfg), render(images, program, cfg))


def test_out_argument():
    cfg = PMGConfig(transforms=("zoom", "cutmix"), num_frames=T, size=SIZE, layout="BTCHW", dtype=torch.bfloat16)
    images = images_for(3)
    program = PseudoMotion(cfg).sample(3, generator=torch.Generator().manual_seed(0))
    out = torch.full((3, T, 3, *SIZE), float("nan"), dtype=torch.bfloat16)
    assert render_cpu(images, program, cfg, out=out) is out
    assert torch.equal(out, render(images, program, cfg))
    with pytest.raises(ValueError, match=r"`out` must be a contiguous torch.bfloat16 tensor of shape "
                                         r"\(3, 3, 3, 19, 26\) on cpu, but got a non-contiguous"):
        render_cpu(images, program, cfg, out=out.transpose(1, 2))
    with pytest.raises(TypeError, match="`out` must be a torch.Tensor or None, but got list"):
        render_cpu(images, program, cfg, out=[])


def test_errors():
    cfg = PMGConfig(transforms=("zoom",), num_frames=T, size=SIZE)
    program = PseudoMotion(cfg).sample(2)
    with pytest.raises(ValueError, match="`images` must have one image per clip of the program, but got 3"):
        render_cpu(images_for(3), program, cfg)
    with pytest.raises(ValueError, match=r"`images` must have shape \(B, 3, H, W\)"):
        render_cpu(torch.zeros(3, *SIZE), program, cfg)
    with pytest.raises(ValueError, match=rf"`program` must have {T + 1} frames \(config.num_frames\), but got {T}"):
        render_cpu(images_for(2), program, cfg.replace(num_frames=T + 1))
    with pytest.raises(TypeError, match="`program` must be a MotionProgram, but got str"):
        render_cpu(images_for(2), "zoom", cfg)


@pytest.mark.parametrize("renderer", ["auto", "cpu", "reference", "fused"])
def test_module_renderer_selection(renderer):
    cfg = PMGConfig(transforms=("zoom", "affine"), num_frames=T, size=SIZE)
    gen = PseudoMotion(cfg, renderer=renderer)
    assert f"renderer={renderer!r}" in repr(gen)
    images = images_for(3)
    program = gen.sample(3, generator=torch.Generator().manual_seed(0))
    if renderer == "fused":
        pytest.importorskip("triton")
        with pytest.raises(RuntimeError, match="`render_fused` needs CUDA images"):
            gen(images, program=program)
        return
    assert (gen.render_function(torch.device("cpu")) is render_cpu) == (renderer == "cpu")
    assert torch.equal(gen(images, program=program), render(images, program, cfg))


def test_auto_picks_the_cpu_renderer_on_cpu_from_48_squared():
    threads = torch.get_num_threads()
    try:
        for size, threads_now, expect in [(48, 1, True), ((47, 48), 1, False), (64, 2, True)]:
            torch.set_num_threads(threads_now)
            chosen = PseudoMotion(PMGConfig(size=size)).render_function(torch.device("cpu"))
            assert (chosen is render_cpu) == expect, (size, threads_now)
    finally:
        torch.set_num_threads(threads)


def test_renderer_must_be_known():
    with pytest.raises(ValueError, match=r"`renderer` must be one of \('auto', 'reference', 'fused', 'cpu'\), "
                                         r"but got 'numpy'"):
        PseudoMotion(PMGConfig(), renderer="numpy")


@pytest.mark.slow
def test_benchmark_quick_mode(tmp_path):
    """benchmarks/bench_render.py --quick runs every CPU path and writes its JSON and table."""
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_render.py"), "--quick",
                          "--json", str(out), "--markdown", str(tmp_path / "bench.md")],
                         cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    paths = {row["path"] for row in result["rows"]}
    assert {"pil_recursive", "reference", "cpu", "cpu_bf16", "cpu_out"} <= paths
    assert all(row["clips_per_s"] > 0 for row in result["rows"])
    assert "| path |" in (tmp_path / "bench.md").read_text()
