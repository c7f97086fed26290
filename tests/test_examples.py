"""examples/videomae: masking correctness of the model (in-process) and CPU smoke runs of
pretrain.py / finetune.py (subprocesses, tiny sizes)."""
import csv
import math
import os
import subprocess
import sys
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


def tiny_model(seed: int = 0) -> videomae.VideoMAE:
    torch.manual_seed(seed)
    return videomae.VideoMAE(videomae.VideoMAEConfig(**TINY)).eval()


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
                         "--base_lr=0.5", "--source=synthetic:mixed"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """4 iterations (2 epochs of 2 batches) with a kept checkpoint after iteration 2."""
    out = tmp_path_factory.mktemp("pretrain")
    result = run("pretrain.py", *PRETRAIN, f"--out_dir={out}", "--max_iters=4", "--ckpt_every=2",
                 "--ckpt_keep=True")
    return out, result.stdout


def test_pretrain_smoke(pretrained):
    out, stdout = pretrained
    assert "iter 2/4: loss" in stdout and "iter 4/4: loss" in stdout
    assert sorted(losses(out)) == [1, 2, 3, 4] and all(math.isfinite(float(v)) for v in losses(out).values())
    ckpt = torch.load(out / "ckpt_000002.pt", weights_only=False)
    assert ckpt["iter_num"] == 2 and ckpt["loader"]["step"] == 2 and ckpt["loader"]["epoch"] == 0
    assert {"model", "optimizer", "rng", "model_args", "config"} <= ckpt.keys()
    assert torch.load(out / "ckpt.pt", weights_only=False)["loader"]["epoch"] == 1
    assert (out / "recon_000004.png").is_file() and (out / "clips.gif").is_file()


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

    namespace = {"max_iters": 10, "lr": 0.1, "device": "auto", "depth": None, "compile": False, "_hidden": 1}
    config = configure(namespace, ["--max_iters=20", "--lr=1", "--device=cuda:1", "--depth=(1, 2)",
                                   "--compile=True"])
    assert config == {"max_iters": 20, "lr": 1.0, "device": "cuda:1", "depth": (1, 2), "compile": True}
    assert namespace["max_iters"] == 20 and isinstance(namespace["lr"], float)
    with pytest.raises(SystemExit, match="unknown config key 'no_such_key'"):
        configure(dict(namespace), ["--no_such_key=1"])
    with pytest.raises(SystemExit, match="unknown config key '_hidden'"):
        configure(dict(namespace), ["--_hidden=2"])
    with pytest.raises(SystemExit, match="--max_iters must be a int"):
        configure(dict(namespace), ["--max_iters=ten"])
    with pytest.raises(SystemExit, match="must look like --key=value"):
        configure(dict(namespace), ["max_iters=3"])
    unset = configure({"mixup": "frame", "lr": 0.1}, ["--mixup=None", "--lr=None"])   # e.g. no Mixup
    assert unset == {"mixup": None, "lr": None}


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


def test_finetune_one_epoch_from_pretrained(pretrained, video_root, tmp_path):
    out, _ = pretrained
    result = run("finetune.py", f"--data_root={video_root}", f"--init={out / 'ckpt.pt'}", "--model=vit_tiny",
                 "--img_size=32", "--num_frames=4", "--batch_size=4", "--epochs=1", "--device=cpu",
                 f"--out_dir={tmp_path}", "--num_workers=1", "--warmup_epochs=0")
    assert "data: 7 train / 4 val videos, 2 classes" in result.stdout
    assert "unexpected keys ['norm.weight', 'norm.bias']" in result.stdout
    assert "val_acc=" in result.stdout
    acc = float(result.stdout.split("val_acc=")[1].split()[0])
    assert acc in (0.0, 25.0, 50.0, 75.0, 100.0)
    assert "corrupt.mp4" in result.stderr
    ckpt = torch.load(tmp_path / "finetune.pt", weights_only=False)
    assert ckpt["classes"] == ["jump", "run"] and ckpt["model_args"]["embed_dim"] == 32


def test_finetune_linear_probe_from_scratch_with_list_files(video_root, tmp_path):
    for split in ("train", "val"):
        lines = [f"{p} {0 if p.parent.name == 'jump' else 1}" for p in sorted((video_root / split).rglob("*.avi"))]
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    result = run("finetune.py", f"--data_root={tmp_path}", "--init=none", *TINY_FLAGS[:7], "--model=vit_tiny",
                 "--batch_size=4", "--epochs=1", "--device=cpu", f"--out_dir={tmp_path}", "--num_workers=0",
                 "--linear_probe=True")
    assert "data: 6 train / 4 val videos, 2 classes" in result.stdout and "val_acc=" in result.stdout
