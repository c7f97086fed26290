"""The benchmark harness (benchmarks/harness.py) and the scripts in benchmarks/: baselines do the same work as
the renderers they are compared with, and every script runs end to end in its --quick CPU mode and
writes what the docs read. No assertion on a timing."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import runpy
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import pmg_dali
from conftest import HAS_DALI
from pmg_dali.render import render

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import harness as bench  # noqa: E402  (benchmarks/ is not a package: the scripts import it the same way)

REFACTORED = [
    ("bench_loader.py", ["--quick", "--device", "cpu", "--batch_size", "2", "--num_frames", "4", "--size", "32"]),
    ("bench_dali.py", ["--quick"]),
    ("bench_load.py", ["--no_demo", "--batch_size", "1", "--repeats", "1"]),
]
ENV_KEYS = {"device", "date", "torch", "kornia", "dali", "triton", "cpu_count", "cpu_affinity"}


@pytest.fixture(scope="module")
def scripts(tmp_path_factory, one_process) -> dict:
    """Every benchmark script's quick CPU run, one after the other in one process (torch, kornia, DALI
    imported once; ``run`` each would start a process): name -> (exit status, stdout, stderr), and
    ``"out"``: the folder they wrote to. bench_render.py runs as the quick GPU session's "render" step."""
    out = tmp_path_factory.mktemp("bench")
    runs = {
        "generate": ["benchmarks/bench_generate.py", "--quick", "--out_dir", str(out)],
        "overhead": ["benchmarks/bench_overhead.py", "--quick", "--out_dir", str(out)],
        "cli bench": ["-m", "pmg_dali", "bench", "--quick", "--device", "cpu", "--json", str(out / "bench.json")],
        "sources": ["benchmarks/bench_sources.py", "--quick", "--device", "cpu", "--json", str(out / "sources.json")],
        "framing": ["benchmarks/bench_framing.py", "--quick", "--json", str(out / "framing.json")],
        "targets": ["benchmarks/bench_targets.py", "--quick", "--device", "cpu"],
        "inputs": ["benchmarks/bench_inputs.py", "--quick"],
        **{script: [f"benchmarks/{script}", *args, "--json", str(out / f"{script}.json")]
           for script, args in REFACTORED},
        "session dry": ["benchmarks/gpu_session.py", "--dry", "--out_dir", str(out / "dry")],
        "session": ["benchmarks/gpu_session.py", "--quick", "--only", "loader,render", "--out_dir",
                    str(out / "session")],
        "session spent": ["benchmarks/gpu_session.py", "--quick", "--only", "loader", "--budget", "0", "--out_dir",
                          str(out / "spent")],
        "session unknown step": ["benchmarks/gpu_session.py", "--dry", "--only", "render,nope"],
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return {"out": out, **dict(zip(runs, one_process(list(runs.values()), ROOT, env)))}


def ran(scripts: dict, name: str) -> str:
    """The stdout of the quick run ``name`` of :func:`scripts`, which must have succeeded."""
    code, stdout, stderr = scripts[name]
    assert code == 0, f"{name}: exit status {code}\n{stdout[-3000:]}\n{stderr[-3000:]}"
    return stdout


@pytest.fixture
def smooth_images(generator):
    """(4, 3, 40, 40) uint8: smooth colour fields, so that bilinear resampling error stays small."""
    low = torch.rand(4, 3, 5, 5, generator=generator)
    return (F.interpolate(low, size=(40, 40), mode="bicubic", align_corners=False).clamp(0, 1) * 255).round().byte()


def geometric_program(cfg, generator):
    return pmg_dali.PseudoMotion(cfg).sample(4, generator=generator)


@pytest.mark.parametrize("layout, dtype", [("BCTHW", torch.float32), ("BTCHW", torch.float32), ("BCTHW", torch.uint8)])
def test_kornia_baseline_renders_the_reference_clips(smooth_images, generator, layout, dtype):
    cfg = pmg_dali.PMGConfig(num_frames=5, size=40, layout=layout, dtype=dtype)
    program = geometric_program(cfg, generator)
    out = bench.kornia_render(smooth_images, program, cfg)
    expected = render(smooth_images, program, cfg)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    torch.testing.assert_close(out.float(), expected.float(), atol=1e-4 if dtype == torch.float32 else 1, rtol=0)


def test_pil_baseline_is_the_literal_recursion_of_the_same_program(smooth_images, generator):
    """PIL warps frame t-1 by the per-step map in uint8: frame 1 equals the reference within
    interpolation rounding; later frames drift only by the accumulated rounding and blur."""
    cfg = pmg_dali.PMGConfig(num_frames=5, size=40, normalize=False, mixup=None)
    program = geometric_program(cfg, generator)
    out = bench.pil_render(smooth_images, program, cfg)
    expected = render(smooth_images, program, cfg.replace(recursion="iterative"))
    assert out.shape == expected.shape == (4, 3, 5, 40, 40) and out.dtype == torch.float32
    inner = (slice(None),) * 3 + (slice(8, -8), slice(8, -8))
    diff = (out - expected).abs()[inner]
    assert diff[:, :, :2].max() <= 3 / 255        # one or two uint8 roundings
    assert diff.mean() <= 2 / 255
    other = bench.pil_render(smooth_images, geometric_program(cfg, generator), cfg)
    assert (other - expected).abs()[inner].mean() > 4 * diff.mean()     # a different program differs


def test_pil_baseline_mixes_and_normalises_like_the_reference(smooth_images, generator):
    cfg = pmg_dali.PMGConfig(num_frames=2, size=40, dtype=torch.bfloat16)
    program = geometric_program(cfg, generator)
    out = bench.pil_render(smooth_images, program, cfg)
    expected = render(smooth_images, program, cfg.replace(recursion="iterative"))
    unmixed = render(smooth_images, dataclasses.replace(program, mix_index=None, mix_lambda=None), cfg)
    assert out.dtype == torch.bfloat16 and out.shape == expected.shape
    error = lambda x: (out.float() - x.float()).abs()[..., 8:-8, 8:-8].max()  # noqa: E731
    assert error(expected) <= 0.07          # ~3 uint8 levels / std, plus bf16 rounding
    assert error(unmixed) > 0.3


def test_timed_takes_turns_and_reports_medians():
    calls = []
    paths = {name: (lambda n, name=name: calls.append((name, n))) for name in ("a", "b")}
    seconds = bench.timed(paths, torch.device("cpu"), steps=3, repeats=2, warmup=1)
    assert calls == [("a", 1), ("b", 1), ("a", 3), ("b", 3), ("a", 3), ("b", 3)]
    assert set(seconds) == {"a", "b"} and all(s >= 0 for s in seconds.values())


def test_clip_batches_are_pure_functions_of_the_batch_index(generator):
    cfg = pmg_dali.PMGConfig(num_frames=4, size=32)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=generator)
    data = bench.ClipBatches(images, cfg, render, batch_size=3, seed=1, mask_ratio=0.75)
    a, b, c = data[2], data[2], data[3]
    assert a["video"].shape == (3, 3, 4, 32, 32) and a["mask"].shape == (3, 8)
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["mask"], b["mask"])
    assert not torch.equal(a["video"], c["video"])
    assert (a["mask"].sum(1) == 6).all()                 # 2 time positions x int(0.75 * 4)
    next_batch, close = bench.cpu_dataloader(images, cfg, render, 3, "cpu", workers=0, seed=1, mask_ratio=0.75)
    first = next_batch()
    close()
    assert torch.equal(first["video"], data[0]["video"])


@pytest.mark.slow
def test_bench_generate_quick_writes_json_markdown_and_png(scripts):
    ran(scripts, "generate")
    tmp_path = scripts["out"]
    result = json.loads((tmp_path / "generate_cpu.json").read_text())
    assert ENV_KEYS <= result["environment"].keys()
    assert {"batch_size", "num_frames", "size", "dtype", "steps", "repeats", "warmup", "program"} <= \
        result["settings"].keys()
    rows = {r["path"]: r for r in result["rows"]}
    expected = {"floor", "auto", "auto_render_only", "reference", "cpu", "loader", "iterative", "kornia",
                "cpu_baseline", "cpu_renderer_dataloader", *(f"transform:{name}" for name in pmg_dali.TRANSFORMS)}
    expected |= {"dali_pipeline", "dali_program_fed"} if HAS_DALI else set()      # rows only with the extra
    assert expected <= rows.keys()
    assert "fused" in result["skipped"]
    for r in rows.values():
        assert {"group", "what", "clips_per_s", "seconds_per_batch", "floor_fraction", "x_cpu_baseline"} <= r.keys()
        assert r["clips_per_s"] > 0
    assert rows["cpu_baseline"]["x_cpu_baseline"] == pytest.approx(1.0)
    assert "| cpu_baseline |" in (tmp_path / "generate_cpu.md").read_text()
    assert (tmp_path / "generate_cpu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_bench_overhead_quick_writes_shares_and_speedups(scripts):
    ran(scripts, "overhead")
    tmp_path = scripts["out"]
    result = json.loads((tmp_path / "overhead_cpu.json").read_text())
    assert ENV_KEYS <= result["environment"].keys() and "prefetch" in result["skipped"]
    rows = result["rows"]
    assert {(r["model"], r["size"], r["mask_ratio"]) for r in rows} == {
        (m, s, k) for m in ("example", "hf") for s in ("vit_small", "vit_base") for k in (0.75, 0.9)}
    for r in rows:
        assert {"static_clips_per_s", "loader_clips_per_s", "cpu_dataloader_clips_per_s", "loader_share",
                "cpu_dataloader_share", "loader_speedup_vs_cpu"} <= r.keys()
        assert r["loader_share"] < 1 and r["static_clips_per_s"] > 0
    assert "| hf | vit_base | 0.9 |" in (tmp_path / "overhead_cpu.md").read_text()


@pytest.mark.slow
def test_python_m_pmg_dali_bench_quick(scripts):
    out = scripts["out"] / "bench.json"
    stdout = ran(scripts, "cli bench")
    assert "| auto | cpu |" in stdout and "| reference | reference |" in stdout
    result = json.loads(out.read_text())
    # every engine that runs on the CPU here: the reference and CPU engines, and DALI's CPU operators when installed
    assert result["device"] == "cpu"
    assert set(result["rows"]) == {"auto", "reference", "cpu"} | ({"dali"} if HAS_DALI else set())
    assert all(r["clips_per_s"] > 0 for r in result["rows"].values())


@pytest.mark.parametrize("script", [script for script, _ in REFACTORED])
@pytest.mark.slow
def test_refactored_scripts_still_run(scripts, script):
    if script == "bench_dali.py":
        pytest.importorskip("nvidia.dali")
    ran(scripts, script)
    assert json.loads((scripts["out"] / f"{script}.json").read_text())["rows"]


@pytest.mark.slow
def test_bench_render_quick_runs_every_cpu_path(scripts):
    """benchmarks/bench_render.py --quick runs every CPU path and writes its JSON and table (its run is the
    quick GPU session's "render" step: ``bench_render.py --quick --json ... --markdown ...``)."""
    ran(scripts, "session")
    out = scripts["out"] / "session"
    status = {r["step"]: r["status"] for r in json.loads((out / "results" / "session.json").read_text())}
    assert status["render"] == "ok", (out / "logs" / "render.log").read_text()[-3000:]
    result = json.loads((out / "results" / "bench_render.json").read_text())
    paths = {row["path"] for row in result["rows"]}
    assert {"pil_recursive", "reference", "cpu", "cpu_bf16", "cpu_out"} <= paths
    assert all(row["clips_per_s"] > 0 for row in result["rows"])
    assert "| path |" in (out / "results" / "bench_render.md").read_text()


@pytest.mark.slow
def test_bench_sources_quick(scripts):
    assert "| SyntheticImages('shader') |" in ran(scripts, "sources") and (scripts["out"] / "sources.json").exists()


@pytest.mark.slow
def test_gpu_session_plan_names_existing_scripts_and_runs_budgeted(scripts):
    """The one-call GPU session: every step of the full plan names a script of this tree; a quick run
    writes the summary and the tarball a device call brings back; a spent budget skips, not fails."""
    plan = ran(scripts, "session dry").splitlines()
    assert [line.split()[0] for line in plan] == ["env", "check", "render", "dali", "tests_gpu", "generate",
                                                  "overhead", "loader", "sources", "targets", "inputs", "transfer"]
    for line in plan:
        names = [a for a in line.split() if a.endswith(".py")]
        assert all((ROOT / name).is_file() for name in names), line
    ran(scripts, "session")
    out = scripts["out"] / "session"
    rows = json.loads((out / "results" / "session.json").read_text())
    assert [(r["step"], r["status"]) for r in rows] == [("loader", "ok"), ("render", "ok")]   # in the order named
    with tarfile.open(out / "gpu_session.tar.gz") as tar:
        assert {"results/bench_loader.json", "logs/render.log"} <= set(tar.getnames())
    ran(scripts, "session spent")
    spent = scripts["out"] / "spent"
    assert json.loads((spent / "results" / "session.json").read_text())[0]["status"] == "skipped: budget spent"
    assert "| loader | skipped" in (spent / "summary.md").read_text()
    code, _, stderr = scripts["session unknown step"]
    assert code != 0 and "`--only` names unknown steps ['nope']" in stderr


BAD_FLAGS = [   # (script, flags, the parser's one-line error)
    ("bench_load.py", ["--repeats", "0"], "argument --repeats: must be an int >= 1, but got 0"),
    ("bench_dali.py", ["--quick", "--transforms", "zoom,warp"], "argument --transforms: `transforms` must be"),
    ("bench_dali.py", ["--quick", "--folder", "maybe"], "argument --folder: invalid choice: 'maybe'"),
    ("bench_dali.py", ["--quick", "--transforms", "zoom,zoom"], "argument --transforms: `transforms` must not repeat"),
    pytest.param("bench_dali.py", ["--quick", "--num_frames", "1000"],   # checked after DALI is imported;
                 "error: `zoom_scale` compounded over num_frames - 1 = 999 steps",   # not blamed on --transforms
                 marks=pytest.mark.dali),
]


@pytest.mark.parametrize("script, flags, message", BAD_FLAGS)
def test_bad_flags_are_one_line_and_exit_2(monkeypatch, capsys, script, flags, message):
    """``python benchmarks/<script> <flags>``, run in this process as conftest's ``one_process`` runs it
    (runpy, ``__main__``): the parser's error and exit status 2; any other exception (a traceback) fails."""
    path = str(ROOT / "benchmarks" / script)
    monkeypatch.setattr(sys, "argv", [path, *flags])
    threads = torch.get_num_threads()            # bench_dali.py --quick sets torch's threads before it checks
    try:
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(path, run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2 and message in stderr, stderr


def test_a_failing_path_is_reported_and_the_other_rows_kept(monkeypatch):
    """One path that breaks (a backend never run on this machine) must not lose the whole table."""
    def broken(n):
        raise RuntimeError("no such kernel")

    def alone_broken():
        raise RuntimeError("workers died")

    real = bench.generation_paths

    def paths(cfg, images, *args, **kw):
        good, skipped = real(cfg, images, False, 0, 1)
        keep = [p for p in good if p.name in ("reference", "auto")]
        return keep + [bench.Path("broken", "test", "raises", lambda: broken),
                       bench.Path("broken_alone", "test", "raises when built", alone_broken, alone=True)], skipped
    monkeypatch.setattr(bench, "generation_paths", paths)
    args = bench.resolve(bench.add_arguments(argparse.ArgumentParser()).parse_args(["--quick", "--no_transforms"]),
                         cpu_size=(2, 4, 32))
    result = bench.run_generate(args)
    assert [r["path"] for r in result["rows"]] == ["floor", "auto", "reference"]
    assert result["skipped"]["broken"] == "failed: RuntimeError: no such kernel"
    assert result["skipped"]["broken_alone"] == "failed: RuntimeError: workers died"
    assert "skipped: broken: failed: RuntimeError" in bench.table(result)


@pytest.mark.slow
def test_bench_framing_quick_counts_padding_only_for_whole_framing(scripts):
    ran(scripts, "framing")
    result = json.loads((scripts["out"] / "framing.json").read_text())
    rows = result["rows"]
    assert (result["program_feed_ms"] is not None) == HAS_DALI    # with DALI: the host cost of its program feed
    if HAS_DALI:
        assert set(result["program_feed_ms"]) == {"default, inside", "default, whole", "all eight, inside"}
    for name in ("sliding_window", "zoom", "affine", "perspective", "cutmix"):
        assert rows[f"{name}, inside"]["padded_fraction"] == 0, name
    assert rows["affine, whole"]["padded_fraction"] > 0.01 and rows["perspective, whole"]["padded_fraction"] > 0.01
    affine = rows["affine, inside"]
    assert 0.35 * 0.97 <= affine["first_view_area_min"] < affine["first_view_area_mean"] < 1


@pytest.mark.slow
def test_bench_targets_and_inputs_quick(scripts):
    stdout = ran(scripts, "targets")
    assert "| zoom + affine |" in stdout and "flow cost" in stdout
    stdout = ran(scripts, "inputs")
    assert "| check float32 |" in stdout and "| render (default program) |" in stdout
