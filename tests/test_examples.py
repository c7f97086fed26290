"""examples/videomae: masking correctness of the model (in-process), the configurator, the shared
runtime (lr rule, checkpoints, threads) and CPU runs of pretrain.py / finetune.py (subprocesses,
tiny sizes): smoke, exact resume, a refused pickled payload, --help, signals."""
import csv
import math
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "videomae"
sys.path.insert(0, str(EXAMPLE))
import model as videomae  # noqa: E402

import pmg_dali  # noqa: E402

TINY = dict(img_size=32, num_frames=4, patch_size=8, tubelet_size=2, embed_dim=32, depth=2, num_heads=2,
            decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
TINY_FLAGS = [f"--{k}={v}" for k, v in TINY.items()] + ["--device=cpu", "--model=vit_tiny"]


def tiny_model(seed: int = 0, **config) -> videomae.VideoMAE:
    """The TINY model (with ``config`` fields changed), its weights drawn from the global RNG seeded ``seed``."""
    torch.manual_seed(seed)
    return videomae.VideoMAE(videomae.VideoMAEConfig(**TINY, **config)).eval()


def tiny_batch(batch_size: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch_size, 3, 4, 32, 32, generator=g)
    mask = pmg_dali.tube_mask(batch_size, num_frames=4, size=32, patch_size=8, tubelet_size=2,
                              mask_ratio=0.75, generator=g)
    return video, mask


def reference_target(video: torch.Tensor, mask: torch.Tensor, cfg) -> torch.Tensor:
    """The VideoMAE target written out token by token with NumPy: un-normalise, cut each
    (tubelet, patch, patch) cube in (t, h, w) order, standardise per channel (ddof=1), flatten (t y x c)."""
    mean, std = np.array(videomae.IMAGENET_MEAN), np.array(videomae.IMAGENET_STD)
    pixels = video.double().numpy() * std[None, :, None, None, None] + mean[None, :, None, None, None]
    t_, h_, w_ = cfg.grid
    p, k = cfg.patch_size, cfg.tubelet_size
    rows = []
    for b in range(video.shape[0]):
        tokens = []
        for n in range(t_ * h_ * w_):
            t, h, w = n // (h_ * w_), (n // w_) % h_, n % w_
            cube = pixels[b, :, t * k:(t + 1) * k, h * p:(h + 1) * p, w * p:(w + 1) * p]   # (C, k, p, p)
            cube = cube.transpose(1, 2, 3, 0).reshape(-1, 3)                              # (t y x, C)
            cube = (cube - cube.mean(0)) / (cube.std(0, ddof=1) + 1e-6)
            if mask[b, n]:
                tokens.append(cube.reshape(-1))
        rows.append(np.stack(tokens))
    return torch.from_numpy(np.stack(rows))


# ----------------------------------------------------------------------------- model


def test_token_order_is_time_major_then_row_major():
    cfg = videomae.VideoMAEConfig(**TINY)
    embed = videomae.TubeletEmbed(cfg)
    video = torch.zeros(1, 3, 4, 32, 32)
    video[0, :, 2:4, 0:8, 8:16] = 1.0                     # tubelet t=1, row 0, column 1
    tokens = embed(video) - embed.proj.bias
    changed = tokens.abs().sum(-1)[0].nonzero().flatten().tolist()
    assert changed == [1 * 16 + 0 * 4 + 1]
    patches = videomae.patchify(video, 8, 2)
    assert patches.shape == (1, 32, 2 * 8 * 8, 3) and patches[0].abs().sum((1, 2)).nonzero().flatten().tolist() == [17]
    assert torch.equal(videomae.unpatchify(patches, cfg.grid, 8, 2), video)


def test_sincos_table_matches_formula():
    table = videomae.sincos_table(10, 6)[0]
    for pos in (0, 3, 9):
        for j in range(6):
            angle = pos / 10000 ** (2 * (j // 2) / 6)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(float(table[pos, j]) - expected) < 1e-6


def test_only_visible_tokens_enter_the_encoder():
    net = tiny_model()
    video, mask = tiny_batch()
    seen = []
    net.encoder.blocks[0].register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    net(video, mask)
    num_visible = 32 - int(0.75 * 32)
    assert seen[0].shape == (2, num_visible, 32)
    full = net.encoder.patch_embed(video) + net.encoder.pos_embed
    for b in range(2):
        assert torch.allclose(seen[0][b], full[b][~mask[b]])
    # hidden patches can hold anything: the encoder output does not change
    scrambled = torch.where(_pixel_mask(mask, net.cfg), torch.randn_like(video) * 5, video)
    with torch.no_grad():
        assert torch.equal(net.encoder(scrambled, mask), net.encoder(video, mask))


def _pixel_mask(mask: torch.Tensor, cfg) -> torch.Tensor:
    """(B, N) token mask -> (B, 1, T, H, W) pixel mask."""
    t, h, w = cfg.grid
    m = mask.view(-1, 1, t, h, w).float()
    m = m.repeat_interleave(cfg.tubelet_size, 2).repeat_interleave(cfg.patch_size, 3)
    return m.repeat_interleave(cfg.patch_size, 4).bool()


def test_loss_is_mse_on_masked_tokens_against_reference_target():
    net = tiny_model()
    video, mask = tiny_batch()
    loss, pred = net(video, mask)
    assert pred.shape == (2, 24, 2 * 8 * 8 * 3)
    target = reference_target(video, mask, net.cfg)
    assert torch.allclose(net.target(video, mask).double(), target, atol=1e-4)
    assert torch.allclose(loss.double(), ((pred.double() - target) ** 2).mean(), atol=1e-6)
    # the target ignores visible patches entirely
    changed = torch.where(_pixel_mask(mask, net.cfg), video, torch.randn_like(video))
    assert torch.equal(net.target(changed, mask), net.target(video, mask))
    hidden_changed = torch.where(_pixel_mask(mask, net.cfg), torch.randn_like(video), video)
    assert not torch.allclose(net.target(hidden_changed, mask), net.target(video, mask))


def test_mask_is_checked():
    net = tiny_model()
    video, mask = tiny_batch()
    with pytest.raises(TypeError, match="`mask` must be a bool tensor"):
        net(video, mask.float())
    with pytest.raises(ValueError, match=r"`mask` must have shape \(B, N\) = \(2, 32\)"):
        net(video, mask[:, :10])
    uneven = mask.clone()
    uneven[0, (~mask[0]).nonzero()[0]] = True
    with pytest.raises(ValueError, match="same number of tokens in every row"):
        net(video, uneven)


def test_classifier_loads_pretrained_encoder():
    net = tiny_model()
    clf = videomae.VideoClassifier(videomae.VideoMAEConfig(**TINY), num_classes=3)
    state = {f"module._orig_mod.{k}": v for k, v in net.state_dict().items()}   # DDP + compile prefixes
    missing, unexpected = clf.load_encoder({"model": state})
    assert missing == [] and unexpected == ["norm.weight", "norm.bias"]
    for key, value in clf.encoder.state_dict().items():
        assert torch.equal(value, net.encoder.state_dict()[key])
    assert clf(torch.randn(2, 3, 4, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="no `encoder"):
        clf.load_encoder({"model": {"head.weight": torch.zeros(1)}})
    groups = clf.param_groups(1.0, 0.05, 0.5)
    scales = sorted({g["lr_scale"] for g in groups})
    assert scales == [0.125, 0.25, 0.5, 1.0]                  # patch embed, block 0, block 1, head
    probe = clf.param_groups(1.0, 0.05, 0.5, linear_probe=True)
    assert {id(p) for g in probe for p in g["params"]} == {id(p) for p in
                                                          [*clf.fc_norm.parameters(), *clf.head.parameters()]}


# ----------------------------------------------------------------------------- scripts


def run(script: str, *flags: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "default", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(EXAMPLE / script), *flags], capture_output=True, text=True,
                            env=env, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed:\n{result.stdout}\n{result.stderr}")
    return result


def losses(out_dir: Path) -> dict[int, str]:
    with open(out_dir / "log.csv") as f:
        return {int(row["iter"]): row["loss"] for row in csv.DictReader(f)}


PRETRAIN = TINY_FLAGS + ["--batch_size=2", "--num_images=4", "--log_interval=1", "--warmup_iters=1",
                         "--base_lr=4e-3", "--source=synthetic:mixed"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """4 iterations (2 epochs of 2 batches) with a kept checkpoint after iteration 2."""
    out = tmp_path_factory.mktemp("pretrain")
    result = run("pretrain.py", *PRETRAIN, f"--out_dir={out}", "--max_iters=4", "--ckpt_every=2",
                 "--ckpt_keep=True")
    return out, result.stdout


@pytest.mark.slow
def test_pretrain_smoke(pretrained):
    out, stdout = pretrained
    assert "iter 2/4: loss" in stdout and "iter 4/4: loss" in stdout
    assert sorted(losses(out)) == [1, 2, 3, 4] and all(math.isfinite(float(v)) for v in losses(out).values())
    ckpt = torch.load(out / "ckpt_000002.pt", weights_only=True)          # tensors and plain values only
    assert ckpt["iter_num"] == 2 and ckpt["loader"]["step"] == 2 and ckpt["loader"]["epoch"] == 0
    assert {"model", "optimizer", "rng", "model_args", "config", "elapsed_s"} <= ckpt.keys()
    assert torch.load(out / "ckpt.pt", weights_only=True)["loader"]["epoch"] == 1
    assert (out / "recon_000004.png").is_file() and (out / "clips.gif").is_file()
    # beside each loss, the trivial prediction's on the same batches: (n - 1) / n with n = 2 * 8 * 8 pixels
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert all(float(r["flat_loss"]) == pytest.approx(127 / 128, abs=2e-3) for r in rows)
    assert "(flat patches 0.99" in stdout and "against 0.99" in stdout and "the trivial prediction" in stdout


@pytest.mark.parametrize("norm", [True, False])
def test_flat_loss_is_the_loss_of_flat_patches(norm):
    """The flat loss the forward pass returns beside its own equals the loss of predicting each hidden
    patch channel as its mean: with or without the per-patch normalised target."""
    net = tiny_model(norm_pix_loss=norm)
    video, mask = torch.randn(2, 3, 4, 32, 32), torch.zeros(2, net.cfg.num_patches, dtype=torch.bool)
    mask[:, ::3] = True
    target = net.target(video, mask)
    channels = target.reshape(*target.shape[:2], -1, 3)
    flat = channels.mean(dim=-2, keepdim=True).expand_as(channels).reshape(target.shape)
    flat_loss = net(video, mask, with_flat=True)[2]
    assert flat_loss.item() == pytest.approx(torch.nn.functional.mse_loss(flat, target).item())


@pytest.mark.parametrize("norm", [True, False])
def test_reconstruction_of_the_target_is_the_clip(norm):
    """VideoMAE.reconstruction: rows original / masked / reconstructed of clip 0; predicting the target
    itself gives the clip back (un-normalised with each patch's own mean and std); hidden patches are grey."""
    net = tiny_model(norm_pix_loss=norm)
    pixels = torch.rand(2, 3, 4, 32, 32)
    video = (pixels - net.mean) / net.std
    _, mask = tiny_batch()
    rows = net.reconstruction(video, mask, net.target(video, mask))
    assert rows.shape == (3, 3, 4, 32, 32)
    assert torch.allclose(rows[0], pixels[0], atol=1e-5) and torch.allclose(rows[2], pixels[0], atol=1e-4)
    hidden = _pixel_mask(mask, net.cfg)[0].expand(3, -1, -1, -1)
    assert torch.all(rows[1][hidden] == 0.5) and torch.equal(rows[1][~hidden], rows[0][~hidden])


@pytest.mark.slow
def test_resume_continues_bit_exactly(pretrained, tmp_path):
    """Resuming from the checkpoint of iteration 2 (the end of epoch 0) gives the same losses at
    iterations 3 and 4 as the straight run, to the last bit."""
    out, _ = pretrained
    (tmp_path / "ckpt.pt").write_bytes((out / "ckpt_000002.pt").read_bytes())
    stdout = run("pretrain.py", *PRETRAIN, f"--out_dir={tmp_path}", "--max_iters=4", "--resume=True").stdout
    assert "resumed from" in stdout and "at iteration 2" in stdout
    assert sorted(losses(tmp_path)) == [3, 4]
    assert losses(tmp_path)[3] == losses(out)[3] and losses(tmp_path)[4] == losses(out)[4]


def test_config_overrides():
    from configurator import configure

    def fresh() -> dict:
        return {"max_iters": 10, "lr": 0.1, "device": "auto", "depth": None, "compile": False, "_hidden": 1,
                "transforms": ("zoom", "affine"), "mixup": "frame", "scale": (0.08, 1.0)}

    namespace = fresh()
    config = configure(namespace, ["--max_iters=1e3", "--lr=1", "--device=cuda:1", "--depth=(1, 2)",
                                   "--compile=true", "--transforms=identity", "--scale=0.5,1"])
    assert config == {"max_iters": 1000, "lr": 1.0, "device": "cuda:1", "depth": (1, 2), "compile": True,
                      "transforms": ("identity",), "mixup": "frame", "scale": (0.5, 1)}
    assert namespace["max_iters"] == 1000 and isinstance(namespace["lr"], float)
    assert configure(fresh(), ["--transforms=zoom,affine"])["transforms"] == ("zoom", "affine")
    assert configure(fresh(), ["--transforms=('fade',)"])["transforms"] == ("fade",)
    assert configure(fresh(), ["--mixup=none"], nullable=("mixup",))["mixup"] is None
    assert configure(fresh(), ["--depth=none"])["depth"] is None
    assert configure(fresh(), ["--depth=3"], types={"depth": int})["depth"] == 3
    with pytest.raises(SystemExit, match="unknown config key 'no_such_key'"):
        configure(fresh(), ["--no_such_key=1"])
    with pytest.raises(SystemExit, match="unknown config key '_hidden'"):
        configure(fresh(), ["--_hidden=2"])
    with pytest.raises(SystemExit, match="unknown config key 'CONSTANT'"):                # constants are not keys
        configure({**fresh(), "CONSTANT": 3}, ["--CONSTANT=2"])
    with pytest.raises(SystemExit, match=r"--max_iters must be an int \(default 10\), but got 'ten'"):
        configure(fresh(), ["--max_iters=ten"])
    with pytest.raises(SystemExit, match=r"--max_iters must be an int .* but got '2.5'"):
        configure(fresh(), ["--max_iters=2.5"])
    with pytest.raises(SystemExit, match="--compile must be True or False .* but got 'maybe'"):
        configure(fresh(), ["--compile=maybe"])
    with pytest.raises(SystemExit, match="--lr must be a float; it cannot be None"):
        configure(fresh(), ["--lr=None"])
    with pytest.raises(SystemExit, match="--mixup must be a str; it cannot be None"):
        configure(fresh(), ["--mixup=none"])
    with pytest.raises(SystemExit, match="--depth must be an int .* but got 'deep'"):
        configure(fresh(), ["--depth=deep"], types={"depth": int})
    with pytest.raises(SystemExit, match="must look like --key=value"):
        configure(fresh(), ["max_iters=3"])


# script -> (a bad flag, what its error says), with --help checked beside it
HELP_BAD = {"pretrain.py": ("--batch_size=big", "--batch_size must be an int"),
            "finetune.py": ("--no_such_key=1", "unknown config key 'no_such_key'")}


@pytest.mark.slow
@pytest.mark.parametrize("script", list(HELP_BAD))
def test_help_lists_every_key_with_default_and_comment(cli, script):
    code, stdout, stderr = cli[script, "help"]
    assert code == 0 and stderr == "" and "usage: python " + script in stdout
    line = next(x for x in stdout.splitlines() if x.strip().startswith("--base_lr="))
    assert "peak lr = base_lr * B / 256 for" in line and "base_lr below" in line     # the default's comment
    for key in ("batch_size", "device", "seed", "out_dir", "resume"):
        assert f"--{key}=" in stdout
    bad_code, _, bad_stderr = cli[script, "bad"]
    _, message = HELP_BAD[script]
    assert bad_code != 0 and message in bad_stderr and "Traceback" not in bad_stderr


# ----------------------------------------------------------------------------- runtime


def test_peak_lr_is_linear_from_256_and_base_lr_below():
    from runtime import peak_lr

    assert peak_lr(1.5e-4, 256) == pytest.approx(1.5e-4)
    assert peak_lr(1.5e-4, 1024) == pytest.approx(6e-4)                   # VideoMAE: base_lr * batch / 256
    assert peak_lr(1.5e-4, 2048) == pytest.approx(1.2e-3)
    assert peak_lr(1.5e-4, 16) == peak_lr(1.5e-4, 1) == 1.5e-4            # not 9.4e-6 at batch 16
    assert peak_lr(1e-3, 8) == 1e-3


def test_lr_schedule_warms_up_then_anneals_to_the_floor():
    from runtime import lr_at

    n, warmup = 100, 10
    lrs = [lr_at(k / n, 1.0, 0.01, warmup / n, 1 / n) for k in range(n)]
    assert lrs[:warmup] == pytest.approx([(k + 1) / (warmup + 1) for k in range(warmup)])
    assert lrs[warmup] == pytest.approx(1.0) and all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))
    assert lr_at(1.0, 1.0, 0.01, 0.1, 0.01) == pytest.approx(0.01)
    assert lr_at(0.55, 1.0, 0.0, 0.1, 0.01) == pytest.approx(0.5)          # half-way through the cosine


@pytest.mark.slow
def test_busy_cores_sees_a_spinning_process():
    import runtime
    quiet = runtime.busy_cores(0.3)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = runtime.busy_cores(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert 0 <= quiet and busy > quiet + 0.5, (quiet, busy)


def test_cpu_threads_leave_a_core_per_worker(monkeypatch):
    import runtime

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
        monkeypatch.setattr(runtime, "busy_cores", lambda: 0.2)             # a quiet machine
        assert runtime.cpu_threads(num_workers=1) == 3 == torch.get_num_threads()
        assert runtime.cpu_threads(num_workers=4) == 1
        monkeypatch.setattr(runtime, "busy_cores", lambda: 1.7)             # two cores taken by others
        assert runtime.cpu_threads(num_workers=1) == 1
        assert runtime.cpu_threads(num_workers=0) == 2
        assert runtime.cpu_threads(num_workers=0, requested=2) == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert runtime.cpu_threads(num_workers=0) == torch.get_num_threads() == 2   # left as it is
    finally:
        torch.set_num_threads(before)


class Payload:
    """Unpickling this calls ``Path.touch(marker)``: a stand-in for any code a checkpoint could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.slow
def test_checkpoint_with_pickled_code_is_refused(cli):
    (code, _, stderr), (init_code, _, init_stderr) = cli["pickled", "resume"], cli["pickled", "init"]
    assert code != 0 and "refusing to load" in stderr and "Traceback" not in stderr
    assert init_code != 0 and "--init=" in init_stderr and "refusing to load" in init_stderr
    root = cli["root"]
    assert not (root / "code_ran").exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(root / "pickled" / "ckpt.pt", weights_only=True)
    torch.load(root / "pickled" / "ckpt.pt", weights_only=False)             # the payload is live
    assert (root / "code_ran").exists()


SIGNAL_ITERS = 60                 # long enough that the signal lands mid-run on a fast machine
SIGNAL_RUN = PRETRAIN + [f"--max_iters={SIGNAL_ITERS}", "--ckpt_every=1000", "--image_every=1000"]


def interrupt(out_dir: Path, sig: int) -> subprocess.CompletedProcess:
    """Run SIGNAL_RUN into ``out_dir`` and send ``sig`` once iteration 2 is logged."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(EXAMPLE / "pretrain.py"), *SIGNAL_RUN, f"--out_dir={out_dir}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if line.startswith("iter 2/"):                       # mid-run
            proc.send_signal(sig)
            break
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def check_stopped(result: subprocess.CompletedProcess, out_dir: Path, sig: int) -> dict:
    """The run stopped by ``sig`` finished its step, said how to resume and left a loadable checkpoint."""
    assert result.returncode == 128 + sig, result.stdout[-500:] + result.stderr
    assert f"stopped by {signal.Signals(sig).name} after iteration" in result.stderr
    assert "--resume=True" in result.stderr and "Traceback" not in result.stderr
    ckpt = torch.load(out_dir / "ckpt.pt", weights_only=True)
    assert 2 <= ckpt["iter_num"] < SIGNAL_ITERS and sorted(losses(out_dir)) == list(range(1, ckpt["iter_num"] + 1))
    assert not (out_dir / "ckpt.pt.tmp").exists()
    return ckpt


@pytest.mark.slow
def test_sigint_finishes_the_step_and_writes_a_loadable_checkpoint(tmp_path):
    check_stopped(interrupt(tmp_path, signal.SIGINT), tmp_path, signal.SIGINT)


@pytest.mark.slow
def test_resume_after_sigterm_matches_a_straight_run(tmp_path):
    """SIGTERM finishes the step and writes a loadable checkpoint; after --resume=True, log.csv has every
    iteration once, with the straight run's losses, and its elapsed time keeps counting."""
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    run("pretrain.py", *SIGNAL_RUN, f"--out_dir={straight}")
    ckpt = check_stopped(interrupt(cut, signal.SIGTERM), cut, signal.SIGTERM)
    stopped = ckpt["iter_num"]
    with open(cut / "log.csv", "a") as f:                     # a row logged after the checkpoint: dropped on resume
        f.write(f"{stopped + 1},9.9,0.1,1.0,0.0,1.0\n")
    resumed = run("pretrain.py", *SIGNAL_RUN, f"--out_dir={cut}", "--resume=True")
    assert f"at iteration {stopped}" in resumed.stdout
    with open(cut / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iter"]) for r in rows] == list(range(1, SIGNAL_ITERS + 1))
    assert losses(cut) == losses(straight)
    elapsed = [float(r["elapsed_s"]) for r in rows]
    assert elapsed == sorted(elapsed) and elapsed[stopped] >= float(ckpt["elapsed_s"])


@pytest.mark.slow
def test_time_budget_anneals_and_flags_are_accepted(tmp_path):
    """--max_seconds ends a long run on time with the lr at its floor; --transforms=identity and
    --mixup=none are taken."""
    result = run("pretrain.py", *PRETRAIN, f"--out_dir={tmp_path}", "--max_iters=100000", "--max_seconds=3",
                 "--base_min_lr=0", "--warmup_iters=0", "--transforms=identity", "--mixup=none", "--log_interval=5")
    assert "or 3 s, whichever comes first" in result.stdout and "the 3 s budget ended it" in result.stdout
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    lrs = [float(r["lr"]) for r in rows]
    assert len(rows) >= 2 and lrs[-1] < 0.1 * lrs[0]
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["config"]["transforms"] == ("identity",)


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    write_video = pytest.importorskip("test_video").write_video
    root = tmp_path_factory.mktemp("ucf")
    for split, count in (("train", 3), ("val", 2)):
        for label, name in enumerate(("jump", "run")):
            (root / split / name).mkdir(parents=True)
            for k in range(count):
                write_video(root / split / name / f"{k}.avi", num_frames=10, tag=60 * label)
    (root / "train" / "run" / "corrupt.mp4").write_bytes(b"\x00\x01" * 300)
    return root


@pytest.mark.slow
def test_finetune_one_epoch_from_pretrained(pretrained, video_root, tmp_path):
    out, _ = pretrained
    result = run("finetune.py", f"--data_root={video_root}", f"--init={out / 'ckpt.pt'}", "--model=vit_tiny",
                 "--batch_size=4", "--epochs=1", "--device=cpu", f"--out_dir={tmp_path}", "--num_workers=1",
                 "--warmup_epochs=0")          # img_size / num_frames: the checkpoint's (32, 4)
    assert "data: 7 train / 4 val videos, 2 classes" in result.stdout
    assert "2 blocks, 32 wide, 4x32² input; its final norm is not used" in result.stdout
    assert "fine-tuning 4x32² clips" in result.stdout
    assert "keys" not in result.stderr and "unexpected" not in result.stderr
    assert "val_acc=" in result.stdout
    acc = float(result.stdout.split("val_acc=")[1].split()[0])
    assert acc in (0.0, 25.0, 50.0, 75.0, 100.0)
    assert "corrupt.mp4" in result.stderr
    ckpt = torch.load(tmp_path / "finetune.pt", weights_only=True)
    assert ckpt["classes"] == ["jump", "run"] and ckpt["model_args"]["embed_dim"] == 32


@pytest.mark.slow
def test_finetune_linear_probe_from_scratch_with_list_files(video_root, tmp_path):
    for split in ("train", "val"):
        lines = [f"{p} {0 if p.parent.name == 'jump' else 1}" for p in sorted((video_root / split).rglob("*.avi"))]
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    result = run("finetune.py", f"--data_root={tmp_path}", "--init=none", *TINY_FLAGS[:7], "--model=vit_tiny",
                 "--batch_size=4", "--epochs=1", "--device=cpu", f"--out_dir={tmp_path}", "--num_workers=0",
                 "--linear_probe=True")
    assert "data: 6 train / 4 val videos, 2 classes" in result.stdout and "val_acc=" in result.stdout


@pytest.mark.slow
def test_finetune_sigterm_then_resume_matches_a_straight_run(video_root, tmp_path):
    flags = [f"--data_root={video_root}", "--init=none", *TINY_FLAGS[:7], "--model=vit_tiny", "--batch_size=1",
             "--epochs=3", "--warmup_epochs=1", "--device=cpu", "--num_workers=0"]
    straight = run("finetune.py", *flags, f"--out_dir={tmp_path / 'straight'}").stdout
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, str(EXAMPLE / "finetune.py"), *flags, f"--out_dir={tmp_path / 'cut'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if line.startswith("epoch 0:"):
            proc.send_signal(signal.SIGTERM)
            break
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM at epoch" in stderr
    state = torch.load(tmp_path / "cut" / "finetune.pt", weights_only=True)
    epoch = state["epoch"]                                   # 1 unless the machine stalled for a whole epoch
    assert epoch in (1, 2) and state["val_acc"] is None and 1 <= state["step"] <= 7
    resumed = run("finetune.py", *flags, f"--out_dir={tmp_path / 'cut'}", "--resume=True").stdout
    assert f"resumed from {tmp_path / 'cut' / 'finetune.pt'} at epoch {epoch}, step {state['step']}" in resumed

    def metrics(stdout: str) -> list[str]:
        return [line.split(" (")[0] for line in stdout.splitlines() if line.startswith("epoch ")]

    assert metrics(resumed) == metrics(straight)[epoch:]


BAD_VALUES = [     # (script, flags, what its one-line error says)
    ("pretrain.py", ["--grad_accum=0"], "--grad_accum must be an int >= 1, but got 0"),
    ("pretrain.py", ["--ckpt_every=0"], "--ckpt_every must be an int >= 1, but got 0"),
    ("pretrain.py", ["--log_interval=0"], "--log_interval must be an int >= 1, but got 0"),
    ("pretrain.py", ["--base_lr=-1"], "--base_lr must be a finite number > 0, but got -1.0"),
    ("pretrain.py", ["--base_lr=nan"], "--base_lr must be a finite number > 0, but got nan"),
    ("pretrain.py", ["--device=foo"], "--device must be auto, cpu, or cuda / cuda:N of a GPU this machine has"),
    ("pretrain.py", [f"--device=cuda:{torch.cuda.device_count()}"], "--device must be auto, cpu, or cuda"),
    ("pretrain.py", ["--max_iters=-5"], "--max_iters must be an int >= 1, but got -5"),
    ("pretrain.py", ["--threads=-1"], "--threads must be an int >= 0, but got -1"),
    ("pretrain.py", ["--max_seconds=-1"], "--max_seconds must be a finite number >= 0, but got -1.0"),
    ("pretrain.py", ["--dtype=int8"], "--dtype must be one of bfloat16, float16, float32, but got 'int8'"),
    ("pretrain.py", ["--mask_ratio=1"], r"--mask_ratio must be a finite number in [0, 1), but got 1.0"),
    ("pretrain.py", ["--transforms=zoom,warp"], "--transforms must be distinct items of identity, sliding_window"),
    ("pretrain.py", ["--embed_dim=30", "--num_heads=4", "--device=cpu"],
     "`embed_dim` must be a multiple of `num_heads` (4), but got 30"),
    ("pretrain.py", ["--seed=9223372036854775808"], "--seed must be an int in [0, 9223372036854775807]"),
    ("pretrain.py", ["--renderer=fused", "--device=cpu"],
     "--renderer=fused cannot render on --device=cpu: it needs a CUDA device"),
    ("pretrain.py", [*TINY_FLAGS, "--num_images=3", "--batch_size=4", "--source=synthetic:shader"],
     "pretrain.py: `batch_size` must be at most the 3 images each rank gets per epoch"),
    ("pretrain.py", [*TINY_FLAGS, "--source=videos:"], "--source=videos:<path> needs a path, but got 'videos:'"),
    ("pretrain.py", [*TINY_FLAGS, "--source=bogus"], "--source must be synthetic:<kind> or folder:<path>, or "
     "videos:<path>, but got 'bogus'"),
    ("pretrain.py", [*TINY_FLAGS, "--source=folder:/nonexistent"],
     "pretrain.py: --source=folder:/nonexistent: `root` must be an existing folder, but '/nonexistent' does not exist"),
    ("pretrain.py", [*TINY_FLAGS, "--source=videos:/nonexistent"],
     "pretrain.py: --source=videos:/nonexistent: `root` must be a folder of videos"),
    ("pretrain.py", [*TINY_FLAGS, "--source=videos:/nonexistent", "--pmg_source=synthetic:bogus"],
     "pretrain.py: --pmg_source=synthetic:bogus: `kind` must be one of"),
    ("finetune.py", ["--batch_size=0"], "--batch_size must be an int >= 1, but got 0"),
    ("finetune.py", ["--crop_scale=1.5,0.2"], "--crop_scale must be two numbers a,b with 0 < a <= b <= 1"),
    ("finetune.py", ["--layer_decay=0"], "--layer_decay must be a finite number in (0, 1], but got 0.0"),
    ("finetune.py", ["--epochs=0"], "--epochs must be an int >= 1, but got 0"),
    ("transfer.py", ["--seeds=-1"], "--seeds must be one or more comma-separated values, each an int in "
     "[0, 9223372036854775807], but got (-1,)"),
    ("transfer.py", ["--seeds=0,9223372036854775808"], "--seeds must be one or more comma-separated values, each an "
     "int in [0, 9223372036854775807], but got (0, 9223372036854775808)"),
    ("transfer.py", ["--conditions=pmg,video"], "--conditions must be distinct items of pmg, identity"),
    ("transfer.py", ["--embed_dim=30"], "transfer.py: `embed_dim` must be a multiple of `num_heads` (4), but got 30"),
    ("transfer.py", ["--img_size=30"], "transfer.py: `img_size` must be a multiple of `patch_size` (4), but got 30"),
    ("transfer.py", ["--pretrain_lr=inf"], "--pretrain_lr must be a finite number > 0, but got inf"),
    ("transfer.py", ["--dry=maybe"], "--dry must be True or False (default False), but got 'maybe'"),
]


@pytest.fixture(scope="module")
def cli(pretrained, tmp_path_factory, one_process) -> dict:
    """Every case of this module that runs an example to a quick exit (help, bad values, bad checkpoints),
    in one process (``one_process``, conftest.py): ``(exit status, stdout, stderr)`` by case, and ``"root"``:
    their folder."""
    root, (out, _) = tmp_path_factory.mktemp("cli"), pretrained
    cases = {(script, kind): [script, [flag]] for script, (bad, _) in HELP_BAD.items()
             for kind, flag in (("help", "--help"), ("bad", bad))}
    cases.update({("bad value", k): [script, flags] for k, (script, flags, _) in enumerate(BAD_VALUES)})
    for name, data in (("text", b"not a checkpoint at all\n"), ("cut", (out / "ckpt.pt").read_bytes()[:5000]),
                       ("other", (out / "ckpt.pt").read_bytes())):
        (root / name).mkdir()
        (root / name / "ckpt.pt").write_bytes(data)
    (root / "damaged").mkdir()                  # a whole archive whose pickle is cut short (an IndexError inside)
    cut = pickle.dumps({"iter_num": 1}, protocol=2)[:-3]
    with zipfile.ZipFile(out / "ckpt.pt") as good, zipfile.ZipFile(root / "damaged" / "ckpt.pt", "w") as damaged:
        for item in good.infolist():
            damaged.writestr(item, cut if item.filename.endswith("data.pkl") else good.read(item))
    resume = [*PRETRAIN, "--max_iters=6", "--resume=True"]
    cases.update({("checkpoint", "text"): ["pretrain.py", [*resume, f"--out_dir={root / 'text'}"]],
                  ("checkpoint", "cut"): ["pretrain.py", [*resume, f"--out_dir={root / 'cut'}"]],
                  ("checkpoint", "damaged"): ["pretrain.py", [*resume, f"--out_dir={root / 'damaged'}"]],
                  ("checkpoint", "depth"): ["pretrain.py", [*resume, f"--out_dir={root / 'other'}", "--depth=3"]],
                  ("checkpoint", "batch"): ["pretrain.py", [*resume, f"--out_dir={root / 'other'}", "--batch_size=1"]]})
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)          # one that would run code when unpickled
    ckpt["config"]["payload"] = Payload(root / "code_ran")
    (root / "pickled").mkdir()
    torch.save(ckpt, root / "pickled" / "ckpt.pt")
    cases.update({("pickled", "resume"): ["pretrain.py", [*resume, f"--out_dir={root / 'pickled'}"]],
                  ("pickled", "init"): ["finetune.py", [f"--init={root / 'pickled' / 'ckpt.pt'}", "--device=cpu",
                                                        "--data_root=/nonexistent", f"--out_dir={root / 'ft'}"]]})
    runs = one_process([[script, *flags] for script, flags in cases.values()], EXAMPLE,
                       {**os.environ, "OMP_NUM_THREADS": "1"})
    return {"root": root, **dict(zip(cases, runs))}


@pytest.mark.slow
@pytest.mark.parametrize("k", range(len(BAD_VALUES)), ids=[" ".join([s, *f]) for s, f, _ in BAD_VALUES])
def test_every_bad_value_is_one_line_and_exit_2(cli, k):
    script, flags, message = BAD_VALUES[k]
    code, _, stderr = cli["bad value", k]
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, (script, flags, stderr)


@pytest.mark.slow
@pytest.mark.parametrize("name, message", [
    ("text", "is not a PyTorch checkpoint: not a zip archive"),
    ("cut", "is not a PyTorch checkpoint: not a zip archive"),
    ("damaged", "ckpt.pt' (IndexError: index out of range)"),      # cannot read the checkpoint '<path>' (...)
    ("depth", "holds another model (depth=2 there, 3 here)"),
    ("batch", "was written with other data settings: `state` was taken with batch_size=2, but this loader has "
              "batch_size=1"),
])
def test_bad_checkpoints_are_named(cli, name, message):
    """A file that is not a checkpoint, one cut short, a damaged one, one of another model and one written
    with other data settings: one line each."""
    code, _, stderr = cli["checkpoint", name]
    assert code != 0 and message in stderr and "Traceback" not in stderr, stderr
