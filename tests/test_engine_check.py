"""The engine self-check (canary): faulty engines injected by monkeypatching the engines' modules are
caught, warned about once and replaced for ``renderer="auto"``, raised for an explicit request; good
engines pass; the environment variable skips the check; the command line's usage errors.

Every check compares with the reference renderer (:mod:`pmg_dali.render`), the independent
specification; the faults are made from the reference's own clips, so only the fault differs.
"""
import importlib.util
import os
import subprocess
import sys
import warnings

import pytest
import torch

import pmg_dali
from conftest import HAS_DALI
from pmg_dali import TRANSFORMS, PMGConfig, PseudoMotion, cpu_render
from pmg_dali import engine_check as ec
from pmg_dali.__main__ import main
from pmg_dali.render import render

CFG = PMGConfig(num_frames=3, size=(48, 53), transforms=("zoom", "affine", "fade"), dtype=torch.uint8)


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Each test starts with no check made in this process and the check enabled."""
    monkeypatch.delenv(ec.SKIP_ENV, raising=False)
    ec.clear_cache()
    yield
    ec.clear_cache()


def shifted(clips: torch.Tensor) -> torch.Tensor:
    """``clips`` moved right by one pixel (the first column repeated): an off-by-one engine."""
    out = clips.clone()
    out[..., 1:] = clips[..., :-1]
    return out


def counting(fn, calls: list):
    def engine(images, program, cfg):
        calls.append(images.shape)
        return fn(images, program, cfg)
    return engine


def images_and_program(cfg=CFG, b=3):
    images = torch.randint(0, 256, (b, 3, *cfg.size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return images, PseudoMotion(cfg).sample(b, generator=torch.Generator().manual_seed(2))


# ---- check_engines -------------------------------------------------------------------------------

def test_check_engines_on_cpu():
    report = pmg_dali.check_engines("cpu")
    assert "check_engines" in pmg_dali.__all__ and report.device == "cpu" and report.ok
    cpu = report["cpu"]
    assert cpu.status == "ok" and cpu.max_diff < 1e-3 and cpu.seconds > 0   # the reference's arithmetic
    assert report["fused"].status == "unavailable" and "CUDA" in report["fused"].detail
    dali = report["dali"]
    if HAS_DALI:     # DALI's CPU operators: interpolation / resize rounding, within the tolerance
        assert dali.status == "ok" and 0 < dali.max_diff <= ec.TOLERANCE_LEVELS + 1
    else:
        assert dali.status == "unavailable"
    data = report.as_dict()
    assert data["ok"] and data["engines"]["cpu"]["status"] == "ok" and "fused" in report and "numpy" not in report
    text = str(report)
    assert "cpu     ok" in text and "fused   unavailable" in text and "agree with the reference" in text


def test_check_engines_reports_a_faulty_engine(monkeypatch):
    real = cpu_render.render_cpu
    monkeypatch.setattr(cpu_render, "render_cpu", lambda i, p, c: shifted(real(i, p, c)))
    report = pmg_dali.check_engines("cpu", CFG)
    cpu = report["cpu"]
    assert not report.ok and cpu.status == "failed" and cpu.max_diff > 20
    assert "values beyond the tolerance" in cpu.detail and "FAILED" in str(report)


def test_check_engines_reports_an_engine_that_raises(monkeypatch):
    def broken(images, program, cfg):
        raise RuntimeError("illegal memory access")
    monkeypatch.setattr(cpu_render, "render_cpu", broken)
    cpu = pmg_dali.check_engines("cpu", CFG)["cpu"]
    assert cpu.status == "failed" and cpu.max_diff is None and "illegal memory access" in cpu.detail


def test_check_engines_argument_errors():
    with pytest.raises(ValueError,
                       match=r"`device` must name a device such as 'cpu', 'cuda' or 'cuda:1', but got 'gpu0'"):
        pmg_dali.check_engines("gpu0")
    with pytest.raises(TypeError, match=r"`config` must be a PMGConfig or None, but got dict"):
        pmg_dali.check_engines("cpu", {"size": 8})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="`device` is 'cuda' but CUDA is not available here"):
            pmg_dali.check_engines("cuda")
    with pytest.raises(KeyError, match="`engine` must be one of"):
        pmg_dali.check_engines("cpu", CFG)["numpy"]


# ---- the canary ----------------------------------------------------------------------------------

def test_canary_draws_every_transform_at_an_odd_size():
    for transforms in (TRANSFORMS, ("cutmix",), ("zoom", "cutmix")):
        cfg = ec.canary_config(PMGConfig(transforms=transforms, mixup="videomix"))
        assert cfg.size == ec.CANARY_SIZE and cfg.size[0] % 2 == cfg.size[1] % 2 == 1 and cfg.size[0] != cfg.size[1]
        program = ec.canary_program(cfg)
        b = program.batch_size
        assert b == max(4, len(transforms)) and set(program.transform.tolist()) == set(range(len(transforms)))
        for index in (program.paste_index, program.mix_index):
            assert index is None or bool((index != torch.arange(b)).all() & (index < b).all())
        pmg_dali.render.check_program(program, cfg=cfg)
        assert torch.equal(ec.canary_program(cfg).homography, program.homography)     # fixed


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.bfloat16])
def test_tolerance_passes_rounding_and_catches_faults(dtype):
    """Rounding-sized differences pass; a one-pixel shift, a swapped frame pair, a bias of a few
    levels, a NaN and an unwritten tile fail."""
    cfg = ec.canary_config(PMGConfig(transforms=TRANSFORMS, dtype=dtype))
    case = ec._Case(cfg, "direct", "render", torch.device("cpu"))
    _, _, ref = case.made()
    level = 1.0 if dtype == torch.uint8 else 1 / 255 / min(cfg.std)         # one level in output units
    noise = torch.randint(-1, 2, ref.shape, generator=torch.Generator().manual_seed(0)) * level
    near = (ref.float() + noise).clamp(0, 255).round() if dtype == torch.uint8 else ref.float() + noise
    assert ec.compare(near.to(dtype), ref, cfg)[1] == ""
    assert ec.compare(ref.clone(), ref, cfg) == (0.0, "")
    swapped = ref.clone()
    swapped[:, :, [0, 1]] = ref[:, :, [1, 0]]
    biased = (ref.float() + 4 * level).clamp(max=255 if dtype == torch.uint8 else float("inf")).to(dtype)
    tile = ref.clone()
    tile[..., :16, :32] = 0
    faults = {"shift": shifted(ref), "swap": swapped, "bias": biased, "tile": tile}
    if dtype != torch.uint8:
        faults["nan"] = ref.clone().index_put_((torch.tensor([0]),) * 5, torch.tensor(float("nan"), dtype=dtype))
    for name, out in faults.items():
        assert "beyond the tolerance" in ec.compare(out, ref, cfg)[1], name
    assert "expected" in ec.compare(ref.transpose(1, 2), ref, cfg)[1]                  # wrong layout
    assert "expected" in ec.compare(ref.float() if dtype != torch.float32 else ref.half(), ref, cfg)[1]


# ---- automatic use -------------------------------------------------------------------------------

def test_auto_warns_once_and_falls_back_to_the_reference(monkeypatch):
    images, program = images_and_program()
    gen = PseudoMotion(CFG, renderer="auto")
    assert gen.engine(torch.device("cpu")) == "cpu"
    gen(images, program=program)          # the real engine passed: cached, but for that function only
    real = cpu_render.render_cpu
    monkeypatch.setattr(cpu_render, "render_cpu", lambda i, p, c: shifted(real(i, p, c)))
    with pytest.warns(ec.EngineCheckWarning) as record:
        first = gen(images, program=program)
        again = PseudoMotion(CFG)(images, program=program)
        other = PseudoMotion(CFG.replace(dtype=torch.float32))(images, program=program)   # same engine, device
    assert len(record) == 1
    message = str(record[0].message)
    for part in ("'cpu' engine", "on cpu", "max difference", "python -m pmg_dali check --device=cpu", "report"):
        assert part in message
    expect = render(images, program, CFG)
    assert torch.equal(first, expect) and torch.equal(again, expect)
    assert torch.equal(other, render(images, program, CFG.replace(dtype=torch.float32)))


def test_explicit_engine_raises(monkeypatch):
    real = cpu_render.render_cpu
    monkeypatch.setattr(cpu_render, "render_cpu", lambda i, p, c: shifted(real(i, p, c)))
    images, program = images_and_program()
    gen = PseudoMotion(CFG, renderer="cpu")
    for _ in range(2):      # the failure is remembered, and raised at every call
        with pytest.raises(RuntimeError, match=r"the 'cpu' engine failed its self-check on cpu: max difference "
                                               r"to the reference renderer \d+"):
            gen(images, program=program)


def test_good_engine_checked_once_per_process_device_and_config(monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_render, "render_cpu", counting(cpu_render.render_cpu, calls))
    images, program = images_and_program()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ec.EngineCheckWarning)
        for renderer in ("auto", "cpu", "auto"):
            out = PseudoMotion(CFG, renderer=renderer)(images, program=program)
            assert torch.equal(out, render(images, program, CFG))
        assert len(calls) == 4 and calls[0][-2:] == ec.CANARY_SIZE     # one canary, then three batches
        PseudoMotion(CFG)(images.float() / 255, program=program)        # float input: another kernel path
        PseudoMotion(CFG.replace(layout="BTCHW"))(images, program=program)   # another config
    assert len(calls) == 8


def test_environment_variable_skips_the_check(monkeypatch):
    real, calls = cpu_render.render_cpu, []
    monkeypatch.setattr(cpu_render, "render_cpu", counting(lambda i, p, c: shifted(real(i, p, c)), calls))
    monkeypatch.setenv(ec.SKIP_ENV, "1")
    images, program = images_and_program()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ec.EngineCheckWarning)
        out = PseudoMotion(CFG, renderer="auto")(images, program=program)
    assert len(calls) == 1 and torch.equal(out, shifted(render(images, program, CFG)))   # unchecked engine


def test_reference_renderer_is_never_checked(monkeypatch):
    calls = []
    monkeypatch.setattr(ec, "_check", counting(ec._check, calls))
    images, program = images_and_program(CFG.replace(size=(20, 21)))    # auto: the reference below 48^2
    PseudoMotion(CFG.replace(size=(20, 21)))(images, program=program)
    PseudoMotion(CFG, renderer="reference")(images, program=program)
    assert calls == []


@pytest.mark.dali
def test_dali_engine_is_checked_against_the_torch_reference(monkeypatch):
    from pmg_dali import dali

    source = pmg_dali.TensorImages(torch.randint(0, 256, (4, 3, 30, 30), dtype=torch.uint8))
    cfg = PMGConfig(num_frames=2, size=32, transforms=("zoom",), mixup=None)
    good = pmg_dali.PseudoMotionLoader(source, batch_size=2, config=cfg, device="cpu", renderer="dali")
    assert next(iter(good))["video"].shape == (2, 3, 2, 32, 32)

    real = dali.render_images
    monkeypatch.setattr(dali, "render_images", lambda i, p, c: shifted(real(i, p, c)))
    loader = pmg_dali.PseudoMotionLoader(source, batch_size=2, config=cfg, device="cpu", renderer="dali")
    with pytest.raises(RuntimeError, match="the 'dali' engine failed its self-check on cpu"):
        next(iter(loader))
    assert pmg_dali.check_engines("cpu", cfg)["dali"].status == "failed"


@pytest.mark.gpu
def test_every_engine_passes_on_cuda():
    report = pmg_dali.check_engines("cuda")
    print(report)
    assert report.ok and report["cpu"].status == "ok" and report.device.startswith("cuda:")
    assert report["fused"].status == ("ok" if importlib.util.find_spec("triton") else "unavailable")
    assert report["dali"].status == ("ok" if HAS_DALI else "unavailable")


@pytest.mark.gpu
def test_auto_replaces_a_faulty_fused_engine_on_cuda(monkeypatch):
    fused = pytest.importorskip("pmg_dali.fused")
    real = fused.render_fused
    monkeypatch.setattr(fused, "render_fused", lambda i, p, c: shifted(real(i, p, c)))
    images, program = images_and_program()
    gen = PseudoMotion(CFG)
    assert gen.engine(torch.device("cuda")) == "fused"
    with pytest.warns(ec.EngineCheckWarning, match="'fused' engine failed its self-check on cuda:"):
        out = gen(images.cuda(), program=program)
    assert torch.equal(out, PseudoMotion(CFG, renderer="reference")(images.cuda(), program=program))
    with pytest.raises(RuntimeError, match="'fused' engine failed"):
        PseudoMotion(CFG, renderer="fused")(images.cuda(), program=program)


# ---- command line --------------------------------------------------------------------------------

@pytest.mark.slow
def test_check_command_exit_status(monkeypatch, capsys):
    run = subprocess.run([sys.executable, "-m", "pmg_dali", "check", "--device=cpu"], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    assert "cpu     ok" in run.stdout and "agree with the reference" in run.stdout
    real = cpu_render.render_cpu
    monkeypatch.setattr(cpu_render, "render_cpu", lambda i, p, c: shifted(real(i, p, c)))
    monkeypatch.setattr(ec, "CHECKED", ("cpu",))      # the faulty engine alone, in this process
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--device=cpu"])
    assert exit_.value.code == 1 and "cpu     failed" in capsys.readouterr().out


@pytest.mark.parametrize("argv,flag", [
    (["demo", "--size=-5"], "--size"), (["demo", "--size=abc"], "--size"), (["demo", "--num_frames=0"], "--num_frames"),
    (["demo", "--device=foo"], "--device"), (["demo", "--clips_per_row=0"], "--clips_per_row"),
    (["demo", "--batch_size=0"], "--batch_size"), (["demo", "--seed=-1"], "--seed"),
    (["demo", f"--out_dir={__file__}"], "--out_dir"), (["check", "--device=foo"], "--device"),
    (["check", "--device=cuda:99"], "--device"), (["bench", "--size=1"], "--size"),
    (["bench", "--batch_size=0"], "--batch_size"), (["bench", "--repeats=0"], "--repeats"),
    (["bench", "--device=tpu"], "--device"), (["bench", "--num_frames=0"], "--num_frames"), (["nope"], "command"),
])
def test_bad_values_are_usage_errors(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "usage:" in err and f"argument {flag}" in err and "Traceback" not in err
