"""Every GPU check and benchmark of the project in one budgeted run, for a short GPU lease.

    python benchmarks/gpu_session.py --out_dir "$OUT"              # on the GPU machine, ~8 minutes
    python benchmarks/gpu_session.py --out_dir "$OUT" --only tests_gpu,dali   # rerun some steps
    python benchmarks/gpu_session.py --dry                      # print the plan, run nothing
    python benchmarks/gpu_session.py --quick --out_dir out/session  # the same steps, tiny, on this CPU

Steps run one after another in the order below (most needed figures first). Each step gets at most
its own cap and never more than what is left of ``--budget``; a step that would start with less
than ``--min_start`` seconds left is skipped and marked so. After every step the runner rewrites
``<out>/summary.md`` (step, exit status, seconds, the headline lines of its log) and
``<out>/gpu_session.tar.gz`` (every result file and log), so a lease that ends early still returns
what ran -- two files, within what a device call brings back.

Results land in ``<out>/results`` (``*_cuda.json`` / ``.md`` / ``.png`` as each benchmark names them,
``pytest_gpu.xml``) and logs in ``<out>/logs``; copy the results into ``benchmarks/results`` and the
figures into ``BENCHMARKS.md``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


# the versions, then one tiny clip through the fused kernel (compiler, launcher, driver) and DALI's import
SMOKE = ("import torch, triton, pmg_dali; print(torch.__version__, torch.cuda.get_device_name(), triton.__version__); "
         "x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, device=\"cuda\"); "
         "c = pmg_dali.PMGConfig(num_frames=4, size=32); g = torch.Generator().manual_seed(0); "
         "y = pmg_dali.PseudoMotion(c, renderer=\"fused\")(x, generator=g); "
         "print(\"fused ok\", tuple(y.shape), y.dtype); import nvidia.dali as d; print(\"dali\", d.__version__); "
         "import importlib.util as u; print(\"nvimgcodec (DALI image decoding)\", "
         "\"present\" if u.find_spec(\"nvidia.nvimgcodec\") else \"MISSING: pip install nvidia-nvimgcodec-cu13\")")


# what pre-training buys at GPU scale (examples/videomae/README.md): scratch / PMG / static clips, one seed,
# by iterations, run alone (nothing else on the GPU); the table lands in results/transfer_cuda.{md,csv}
TRANSFER = ("--device=cuda --conditions=pmg,identity --seeds=0 --videos_per_class=300 --img_size=64 --num_frames=16 "
            "--patch_size=8 --tubelet_size=2 --embed_dim=192 --depth=6 --num_heads=3 --decoder_embed_dim=128 "
            "--decoder_depth=2 --decoder_num_heads=4 --pretrain_iters=1500 --pretrain_batch=64 --pretrain_lr=1e-3 "
            "--finetune_epochs=30 --probe_epochs=30 --batch_size=32 --finetune_lr=1e-3 --probe_lr=1e-2 --num_workers=8")


def steps(results: Path, quick: bool) -> list[tuple[str, list[str], int]]:
    """(name, argv, cap in seconds) of every step, in the order they run."""
    r = str(results)
    if quick:   # the same scripts and outputs on tiny sizes, to check the plumbing anywhere
        q = ["--quick"]
        return [("env", [PY, "-m", "pmg_dali", "bench", "--help"], 60),
                ("render", [PY, "benchmarks/bench_render.py", *q, "--json", f"{r}/bench_render.json",
                            "--markdown", f"{r}/bench_render.md"], 120),
                ("loader", [PY, "benchmarks/bench_loader.py", *q, "--json", f"{r}/bench_loader.json"], 120)]
    # a hung test should not eat the whole step: pytest-timeout, where installed (the GPU image has it)
    per_test = ["--timeout", "180"] if importlib.util.find_spec("pytest_timeout") else []
    return [
        ("env", ["bash", "-c", f"nvidia-smi; df -h /dev/shm; {PY} -c '{SMOKE}'"], 60),
        # every engine against the reference on this GPU (the canary users get on first use)
        ("check", [PY, "-m", "pmg_dali", "check", "--device=cuda"], 90),
        # the fused kernel against the reference and the write floor, tiles swept
        ("render", [PY, "benchmarks/bench_render.py", "--tune", "--json", f"{r}/bench_render_cuda.json",
                    "--markdown", f"{r}/bench_render_cuda.md"], 100),
        # DALI pipeline (host-drawn programs) / ProgramRenderer / torch, nvJPEG folder pipeline
        ("dali", [PY, "benchmarks/bench_dali.py", "--json", f"{r}/bench_dali_cuda.json"], 100),
        # every GPU-marked test: fused/DALI/torch parity on the GPU, nvJPEG, CUDA generators
        ("tests_gpu", [PY, "-m", "pytest", "-q", "-m", "gpu", "tests", "-p", "no:cacheprovider", *per_test,
                       "-rs", f"--junitxml={r}/pytest_gpu.xml"], 200),
        # every generation path and the CPU DataLoader baseline in one run
        ("generate", [PY, "benchmarks/bench_generate.py", "--no_transforms", "--out_dir", r], 150),
        # the loader's share of a ViT-S VideoMAE step
        ("overhead", [PY, "benchmarks/bench_overhead.py", "--models", "example", "--sizes", "vit_small",
                      "--masks", "0.9", "--out_dir", r], 120),
        # the loader against the bare renderer, with prefetch
        ("loader", [PY, "benchmarks/bench_loader.py", "--prefetch", "--json", f"{r}/bench_loader_cuda.json"], 60),
        # synthetic images/s and ImageFolder decode (PIL and nvJPEG)
        ("sources", [PY, "benchmarks/bench_sources.py", "--json", f"{r}/bench_sources_cuda.json"], 60),
        # flow / track targets against the clip render; the CUDA cost of the float-input check
        ("targets", [PY, "benchmarks/bench_targets.py", "--out_dir", r], 60),
        ("inputs", [PY, "benchmarks/bench_inputs.py", "--device", "cuda", "--json", f"{r}/inputs_cuda.json"], 30),
        # last (needs PyAV): pre-train twice, then fine-tune and probe three initialisations
        ("transfer", ["bash", "-c", f"OMP_NUM_THREADS=2 {PY} examples/videomae/transfer.py {TRANSFER} "
                      f"--out_dir=/tmp/pmg_transfer && cp /tmp/pmg_transfer/results.md {r}/transfer_cuda.md && "
                      f"cp /tmp/pmg_transfer/results.csv {r}/transfer_cuda.csv"], 480),
    ]


def headline(log: Path, lines: int = 6) -> str:
    """The last non-empty lines of a step's log (pytest's summary, a benchmark's table tail)."""
    text = [x for x in log.read_text(errors="replace").splitlines() if x.strip()] if log.exists() else []
    return " / ".join(x.strip() for x in text[-lines:])[:600]


def write_summary(out: Path, rows: list[dict], started: float) -> None:
    lines = [f"# GPU session ({time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC, "
             f"{time.time() - started:.0f} s)", "", "| step | status | seconds | last lines |", "|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['status']} | {r['seconds']:.0f} | {r['tail'].replace('|', '/')} |" for r in rows]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "results" / "session.json").write_text(json.dumps(rows, indent=1))
    with tarfile.open(out / "gpu_session.tar.gz", "w:gz") as tar:
        for sub in ("results", "logs"):
            tar.add(out / sub, arcname=sub)


def run(out: Path, budget: float, min_start: float, only: list[str] | None, quick: bool, dry: bool) -> list[dict]:
    plan = steps(out / "results", quick)
    unknown = set(only or ()) - {name for name, _, _ in plan}
    if unknown:
        raise ValueError(f"`--only` names unknown steps {sorted(unknown)}; steps: {[n for n, _, _ in plan]}")
    if only is not None:        # the steps named, in the order named
        plan = [next(s for s in plan if s[0] == name) for name in only]
    if dry:
        for name, argv, cap in plan:
            print(f"{name:10s} cap {cap:4d} s  {' '.join(argv)}")
        return []
    for sub in ("results", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    started, rows = time.time(), []
    for name, argv, cap in plan:
        left = budget - (time.time() - started)
        log = out / "logs" / f"{name}.log"
        if left < min_start:
            rows.append(dict(step=name, status="skipped: budget spent", seconds=0.0, tail=""))
            continue
        limit, t0 = min(cap, left), time.time()
        print(f"== {name} (at most {limit:.0f} s): {' '.join(argv)}", flush=True)
        with open(log, "w") as f:
            try:
                rc = subprocess.run(argv, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                    timeout=limit).returncode
                status = "ok" if rc == 0 else f"exit {rc}"
            except subprocess.TimeoutExpired:
                status = f"timed out after {limit:.0f} s"
            except OSError as exc:          # e.g. nvidia-smi missing
                status = f"not run: {exc}"
        rows.append(dict(step=name, status=status, seconds=time.time() - t0, tail=headline(log)))
        print(f"   {status} in {rows[-1]['seconds']:.0f} s: {rows[-1]['tail'][-300:]}", flush=True)
        write_summary(out, rows, started)
    write_summary(out, rows, started)
    print((out / "summary.md").read_text(), flush=True)   # the device call returns the output's tail
    return rows


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default=os.environ.get("OUT") or "out/gpu_session", help="$OUT when set")
    parser.add_argument("--budget", type=float, default=500, help="seconds for all steps together")
    parser.add_argument("--min_start", type=float, default=30, help="skip a step with less left than this")
    parser.add_argument("--only", type=lambda s: s.split(","), default=None,
                        help="step names, comma-separated, run in this order")
    parser.add_argument("--quick", action="store_true", help="tiny versions of some steps (runs on a CPU)")
    parser.add_argument("--dry", action="store_true", help="print the plan only")
    args = parser.parse_args(argv)
    return run(Path(args.out_dir).resolve(), args.budget, args.min_start, args.only, args.quick, args.dry)


if __name__ == "__main__":
    main()
