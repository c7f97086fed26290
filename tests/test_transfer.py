"""examples/videomae/transfer.py: the built-in motion task (labels are motion, not appearance) and a
quick end-to-end run (pre-train, fine-tune and probe against scratch, results table)."""
import csv
import os
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "videomae"


@pytest.fixture(scope="module")
def transfer():
    sys.path.insert(0, str(EXAMPLE))
    argv, sys.argv = sys.argv, ["transfer.py"]
    try:
        import transfer as module
    finally:
        sys.argv = argv
    return module


@pytest.mark.parametrize("kind", ["still", "linear", "circle", "oscillate", "fall"])
def test_trajectories_move_as_their_class_says(transfer, kind):
    g = torch.Generator().manual_seed(0)
    path = np.stack([transfer.trajectory(kind, 16, 64, g) for _ in range(20)])     # (20, T, 2)
    steps = np.diff(path, axis=1)
    speed = np.linalg.norm(steps, axis=-1)
    if kind == "still":
        assert np.all(speed == 0)
        return
    assert np.all(speed.mean(1) > 0.5)
    if kind == "linear":                                        # constant velocity
        assert np.allclose(steps, steps[:, :1], atol=1e-9)
    if kind == "circle":                                        # constant distance from the centre of mass
        centre = (path.max(1) + path.min(1)) / 2
        radius = np.linalg.norm(path - centre[:, None], axis=-1)
        assert np.all(radius.std(1) < 0.25 * radius.mean(1) + 1e-9)
    if kind == "oscillate":                                     # turns back at least once, on one line
        along = np.einsum("ntk,nk->nt", steps, steps[:, 0] / np.linalg.norm(steps[:, 0], axis=-1, keepdims=True))
        assert np.all((along < 0).any(1))
    if kind == "fall":                                          # constant downward acceleration
        accel = np.diff(steps, axis=1)
        assert np.all(accel[..., 1] > 0) and np.allclose(accel, accel[:, :1], atol=1e-9)


def test_camera_moves_background_and_object_together(transfer):
    """With a uniform background and a still object, the object's position in the frame follows the
    camera shake: whole-frame motion is not the class."""
    g = torch.Generator().manual_seed(1)
    background = np.full((64, 64, 3), 40, np.uint8)
    sprite = np.zeros((8, 8, 4), np.uint8)
    sprite[..., :3], sprite[..., 3] = 250, 255
    frames = transfer.render_clip("still", background, sprite, 12, 32, g)
    assert frames.shape == (12, 32, 32, 3)
    where = [np.argwhere(f[..., 0] > 200).mean(0) for f in frames]
    assert len({tuple(np.round(w, 3)) for w in where}) > 1          # the camera shakes the still object


@pytest.mark.slow     # transfer.py runs pretrain.py / finetune.py as processes
def test_quick_transfer_run(tmp_path):
    """The whole experiment at toy scale: the task's videos, a pre-training (identity: static clips), the
    fine-tunes and probes from scratch and from it, the results (the PMG condition's runs are the same
    code with other flags: test_every_condition_runs_the_right_commands)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(EXAMPLE / "transfer.py"), "--quick=True", f"--out_dir={tmp_path}",
                             "--conditions=identity"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for split, count in (("train", 6), ("val", 2)):
        for kind in ("still", "linear", "circle", "oscillate", "fall"):
            assert len(list((tmp_path / "motion" / split / kind).glob("*.avi"))) == count
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    runs = {(m, k) for m in ("scratch", "identity") for k in ("finetune", "probe")}
    assert {(r["method"], r["mode"]) for r in rows} == runs
    assert all(0 <= float(r["val_acc"]) <= 100 for r in rows)
    assert "| identity (static clips) pre-trained |" in result.stdout and (tmp_path / "results.md").is_file()
    assert f"loaded the encoder from {tmp_path / '0' / 'pretrain_identity' / 'ckpt.pt'}" in \
        (tmp_path / "0" / "identity_probe" / "stdout.txt").read_text()
    static = torch.load(tmp_path / "0" / "pretrain_identity" / "ckpt.pt", weights_only=True)["config"]
    assert (static["transforms"], static["mixup"], static["source"]) == (("identity",), None, "synthetic:mixed")


def test_every_condition_runs_the_right_commands(tmp_path, monkeypatch, capsys):
    """--dry=True prints every run's command line, in order, and writes nothing: PMG and identity pre-train
    on the same images (pseudo-motion vs static clips), and every evaluation loads its own encoder."""
    monkeypatch.setattr(sys, "argv", ["transfer.py", "--dry=True", "--quick=True", f"--out_dir={tmp_path / 'out'}",
                                      "--conditions=pmg,identity"])
    runpy.run_path(str(EXAMPLE / "transfer.py"), run_name="__main__")
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines() if "videomae/" in line]
    runs = [(Path(cmd[1]).name, dict(a[2:].split("=", 1) for a in cmd[2:])) for cmd in lines]
    assert [name for name, _ in runs] == ["pretrain.py", "pretrain.py"] + ["finetune.py"] * 6
    pmg, identity = runs[0][1], runs[1][1]
    assert (pmg["transforms"], pmg["mixup"], pmg["source"]) == ("zoom,affine", "frame", "synthetic:mixed")
    assert (identity["transforms"], identity["mixup"], identity["source"]) == ("identity", "none", "synthetic:mixed")
    out = tmp_path / "out" / "0"
    inits = [(flags["out_dir"], flags["init"], flags["linear_probe"]) for _, flags in runs[2:]]
    assert inits == [(str(out / f"{m}_{mode}"), init, str(mode == "probe"))
                     for m, init in (("scratch", "none"), ("pmg", str(out / "pretrain" / "ckpt.pt")),
                                     ("identity", str(out / "pretrain_identity" / "ckpt.pt")))
                     for mode in ("finetune", "probe")]
    assert not (tmp_path / "out").exists()
