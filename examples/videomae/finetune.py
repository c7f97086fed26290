"""Fine-tune (or linear-probe) a VideoMAE encoder on labelled videos; prints val_acc=<top-1 %> per epoch.

    python examples/videomae/finetune.py --help                      # every key, its default and meaning
    python examples/videomae/finetune.py --data_root=data/hmdb51 --init=out/videomae/ckpt.pt
    python examples/videomae/finetune.py --data_root=data/hmdb51 --init=none --model=vit_small  # scratch
    python examples/videomae/finetune.py --data_root=data/hmdb51 --out_dir=out/finetune --resume=True

Data, either layout under ``data_root``:
- class folders ``train/<class>/*.{mp4,avi,webm,mkv}`` and ``val/<class>/...`` (UCF101 / HMDB51 style;
  classes are the sorted folder names of train/);
- VideoMAE list files ``train.txt`` / ``val.txt`` (or ``.csv``), one ``path label`` per line.
Videos are decoded with PyAV in DataLoader workers by ``pmg_dali.video.decode_clip`` (the decoder of
``pmg_dali.VideoFolder``): train clips with segment-jittered uniform sampling, a random-resized crop
shared by all frames and a horizontal flip; val clips with centred uniform sampling and a centre crop.
An unreadable video is skipped with a warning naming it.

With ``--init=<pretrain checkpoint>`` (read with ``torch.load(weights_only=True)``) the architecture
(width, depth, heads, patch, tubelet) comes from the checkpoint, and so do ``img_size`` / ``num_frames``
unless given on the command line (they may differ: the position table is fixed sin-cos).

Learning rate: peak ``base_lr * batch / 256`` from batch 256 up (VideoMAE's rule), ``base_lr`` below
(``runtime.peak_lr``), times the layer-wise decay; warm-up, then cosine.
``out_dir/finetune.pt`` (model, optimiser, position in the run, RNG state) is written atomically after
every epoch; SIGTERM or Ctrl-C (SIGINT) finishes the current step, writes it and exits with status
128 + the signal number; ``--resume=True`` continues from it exactly, mid-epoch included.
"""
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runtime  # noqa: E402
from configurator import ConfigError, check, configure, given_keys, integer, interval, number  # noqa: E402
from model import IMAGENET_MEAN, IMAGENET_STD, VideoClassifier, VideoMAEConfig  # noqa: E402

from pmg_dali import VideoFolder  # noqa: E402
from pmg_dali.video import decode_clip, sample_clip_noise  # noqa: E402

# -----------------------------------------------------------------------------
# data
data_root = "data/hmdb51"    # {train,val}/<class>/*.mp4, or train.txt / val.txt (`path label`)
num_workers = 4              # DataLoader worker processes decoding with PyAV
frame_stride = None          # None: uniform segment sampling; an int: frames this far apart
crop_scale = (0.08, 1.0)     # random-resized-crop area fraction (train), e.g. 0.5,1
# model
init = None                  # a pretrain.py checkpoint, or none (from scratch)
model = "vit_small"          # vit_tiny | vit_small | vit_base (ignored for the architecture with --init)
img_size = 224               # with --init: the checkpoint's unless given
num_frames = 16              # with --init: the checkpoint's unless given
patch_size = 16
tubelet_size = 2
embed_dim = None             # None: the --model preset (these four only matter without --init)
depth = None
num_heads = None
drop_path = 0.1              # stochastic depth rate of the last block
head_drop = 0.0
linear_probe = False         # freeze the encoder; train only fc_norm + head
# optimisation (VideoMAE fine-tuning recipe, scaled to short schedules)
epochs = 30
batch_size = 8
base_lr = 1e-3               # peak lr = base_lr * B / 256 for batch B >= 256, base_lr below
min_lr = 1e-6
layer_decay = 0.75           # lr scale of block i: layer_decay ** (depth + 1 - (i + 1))
weight_decay = 0.05
warmup_epochs = 5
label_smoothing = 0.1
# system
device = "auto"              # auto | cpu | cuda | cuda:1 ...
dtype = "bfloat16"           # autocast dtype on CUDA (CPU runs float32)
threads = 0                  # CPU: torch threads; 0: OMP_NUM_THREADS if set, else usable cores - num_workers
compile = False
seed = 0
out_dir = "out/finetune"     # finetune.pt goes here
resume = False               # continue from out_dir/finetune.pt (same settings)
_argv = sys.argv[1:]
config = configure(globals(), _argv, types=dict(init=str, frame_stride=int, embed_dim=int, depth=int, num_heads=int))
# what each key allows, checked before any work starts (one line and exit 2 otherwise)
RULES = dict(runtime.SHARED_RULES, num_workers=integer(0), frame_stride=integer(1, none=True),
             crop_scale=interval(0, 1), drop_path=number(0, 1, high_open=True), head_drop=number(0, 1, high_open=True),
             epochs=integer(1), min_lr=number(0), layer_decay=number(0, 1, low_open=True),
             warmup_epochs=integer(0), label_smoothing=number(0, 1, high_open=True))
check(config, RULES)
# -----------------------------------------------------------------------------


class ClipDataset(Dataset):
    """(uint8 (3, T, H, W) clip, label) per video; None for an unreadable video (warned about).
    Train randomness comes from a generator seeded by (seed, epoch, index), so it does not depend on
    worker count or order; val clips are deterministic."""

    def __init__(self, files: list[str], labels: list[int], train: bool, num_frames: int, size: int,
                 frame_stride: int | None, scale: tuple[float, float], seed: int):
        self.files, self.labels, self.train, self.epoch = files, labels, train, 0
        self.num_frames, self.size, self.frame_stride = num_frames, size, frame_stride
        self.scale, self.seed = scale, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        noise, flip = None, False
        if self.train:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + i)
            noise = sample_clip_noise(self.num_frames, g)
            flip = bool(torch.rand((), generator=g) < 0.5)
        try:
            clip = decode_clip(self.files[i], self.num_frames, self.size, frame_stride=self.frame_stride,
                               noise=noise, scale=self.scale)
        except Exception as err:  # noqa: BLE001 - any decoder failure means "unreadable"
            warnings.warn(f"skipping unreadable video {self.files[i]} ({type(err).__name__}: {err})")
            return None
        return (clip.flip(-1) if flip else clip), self.labels[i]


def collate(items):
    items = [item for item in items if item is not None]
    if not items:
        return None
    return torch.stack([c for c, _ in items]), torch.tensor([label for _, label in items])


def load_split(split: str, classes: list[str] | None) -> tuple[list[str], list[int], list[str]]:
    """(files, labels, classes) of ``split``; folder labels follow ``classes`` (train's) if given."""
    root = Path(data_root)
    lists = [root / f"{split}{ext}" for ext in (".txt", ".csv") if (root / f"{split}{ext}").is_file()]
    videos = VideoFolder(lists[0] if lists else root / split, num_frames=num_frames)
    if lists:
        return videos.files, videos.labels, []
    classes = classes or videos.classes
    names = [videos.classes[k] if k >= 0 else None for k in videos.labels]
    unknown = sorted({n for n in names if n not in classes})
    if unknown:
        raise SystemExit(f"{root / split}: videos outside a class folder of train/ or unknown classes {unknown}")
    return videos.files, [classes.index(n) for n in names], classes


def to_input(clips: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, T, H, W) -> ImageNet-normalised float on ``device``."""
    x = clips.to(device, non_blocking=True).float().div_(255)
    return (x - mean) / std


@torch.no_grad()
def evaluate(net, loader) -> float:
    net.eval()
    correct = total = 0
    for batch in loader:
        if batch is None:
            continue
        clips, labels = batch
        with autocast:
            logits = net(to_input(clips))
        correct += int((logits.argmax(-1).cpu() == labels).sum())
        total += len(labels)
    return 100.0 * correct / max(total, 1)


def build_model(num_classes: int, checkpoint: dict | None,
                resumed: dict | None) -> tuple[VideoClassifier, VideoMAEConfig]:
    """The classifier. ``resumed``: the config of the run being resumed. With a pre-training
    ``checkpoint``: its architecture, img_size and num_frames (unless given on the command line) and
    its encoder weights."""
    if resumed is not None:
        model_args = VideoMAEConfig(**resumed)
        return VideoClassifier(model_args, num_classes, head_drop=head_drop), model_args
    arch = dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads, patch_size=patch_size,
                tubelet_size=tubelet_size, img_size=img_size, num_frames=num_frames)
    if checkpoint is not None:
        if not isinstance(checkpoint.get("model_args"), dict):
            raise SystemExit(f"--init={init}: not a pretrain.py checkpoint (it has no `model_args`)")
        given = given_keys(_argv)
        for key in arch:
            if key in checkpoint["model_args"] and not (key in ("img_size", "num_frames") and key in given):
                arch[key] = checkpoint["model_args"][key]
    try:
        model_args = VideoMAEConfig.from_name(model, drop_path_rate=drop_path, **arch)
    except ValueError as err:                      # the message names the setting (`model`, `img_size`, ...)
        raise ConfigError(f"finetune.py: {err}") from None
    net = VideoClassifier(model_args, num_classes, head_drop=head_drop)
    if checkpoint is not None:
        missing, unexpected = net.load_encoder(checkpoint)
        expected = ["norm.weight", "norm.bias"]          # pre-training's final norm; fc_norm replaces it
        loaded = len(net.encoder.state_dict()) - len(missing)
        print(f"loaded the encoder from {init}: {loaded} tensors; {model_args.depth} blocks, "
              f"{model_args.embed_dim} wide, {model_args.num_frames}x{model_args.img_size}² input; its final "
              "norm is not used (tokens are mean-pooled, then fc_norm, as in VideoMAE)")
        if missing or sorted(unexpected) != sorted(expected):
            warnings.warn(f"--init={init}: encoder keys missing {missing}, "
                          f"unexpected {sorted(set(unexpected) - set(expected))}")
    return net, model_args


def ignore_sigint(worker_id: int) -> None:
    """DataLoader workers ignore Ctrl-C: the main process stops them after it has written its checkpoint."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def epoch_order(epoch: int, n: int) -> list[int]:
    """The shuffled train indices of ``epoch``: a function of (seed, epoch), so a resumed run sees the
    same order."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()


if __name__ == "__main__":
    device = runtime.run_device(device)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    if device_type == "cpu":
        runtime.cpu_threads(num_workers, threads)
    stop = runtime.SignalStop()
    autocast = torch.autocast(device_type, dtype=getattr(torch, dtype), enabled=device_type == "cuda")
    torch.manual_seed(seed)
    os.makedirs(out_dir, exist_ok=True)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1, 1)

    ckpt_path = os.path.join(out_dir, "finetune.pt")
    state = runtime.load_checkpoint(ckpt_path, "--resume=True") if resume else None
    checkpoint = None
    if init not in (None, "none") and state is None:
        checkpoint = runtime.load_checkpoint(init, f"--init={init}")
    try:
        train_files, train_labels, classes = load_split("train", None)
        val_files, val_labels, _ = load_split("val", classes or None)
    except ValueError as err:
        raise SystemExit(f"--data_root={data_root}: {err}") from None
    num_classes = len(classes) if classes else max(train_labels + val_labels) + 1
    print(f"data: {len(train_files)} train / {len(val_files)} val videos, {num_classes} classes")
    net, model_args = build_model(num_classes, checkpoint, None if state is None else state["model_args"])
    del checkpoint
    net.to(device)
    steps_per_epoch = math.ceil(len(train_files) / batch_size)
    lr = runtime.peak_lr(base_lr, batch_size)
    groups = net.param_groups(lr, weight_decay, layer_decay, linear_probe=linear_probe)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999),
                                  fused=device_type == "cuda")
    run = torch.compile(net) if compile else net
    print(f"{'linear probe' if linear_probe else 'fine-tuning'} {model_args.num_frames}x{model_args.img_size}² "
          f"clips | batch {batch_size} | peak lr {lr:.2e} | {epochs} epochs of {steps_per_epoch} steps on {device}"
          + (f" ({torch.get_num_threads()} threads, {num_workers} workers)" if device_type == "cpu" else ""),
          flush=True)

    data_args = dict(num_frames=model_args.num_frames, size=model_args.img_size, frame_stride=frame_stride,
                     scale=crop_scale, seed=seed)
    train_set = ClipDataset(train_files, train_labels, train=True, **data_args)
    loader_args = dict(batch_size=batch_size, num_workers=num_workers, collate_fn=collate,
                       pin_memory=device_type == "cuda", worker_init_fn=ignore_sigint if num_workers else None)
    val_loader = DataLoader(ClipDataset(val_files, val_labels, train=False, **data_args), shuffle=False,
                            **loader_args)
    total, warmup = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    # position: `it` optimiser steps in all; `step` batches of epoch `epoch` done
    it, best, epoch, step, seen, loss_sum = 0, 0.0, 0, 0, 0, 0.0
    if state is not None:
        if state.get("classes") != classes:
            raise SystemExit(f"--resume=True: {ckpt_path!r} was written for the classes {state.get('classes')}, "
                             f"but {data_root} has {classes}; resume on the same data or start a new --out_dir")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        it, best, epoch, step = state["it"], state["best"], state["epoch"], state["step"]
        seen, loss_sum = state["seen"], state["loss_sum"]
        print(f"resumed from {ckpt_path} at epoch {epoch}, step {step} of {steps_per_epoch}")

    def write_checkpoint(acc: float | None) -> None:
        snapshot = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "it": it, "best": best,
                    "epoch": epoch, "step": step, "seen": seen, "loss_sum": loss_sum, "val_acc": acc,
                    "rng": torch.get_rng_state(), "model_args": asdict(model_args), "classes": classes,
                    "config": config}
        runtime.save_checkpoint(snapshot, ckpt_path)   # temp file + rename: never half-written

    while epoch < epochs:
        train_set.epoch = epoch                    # workers are started per epoch and see it
        run.train()
        if linear_probe:
            net.encoder.eval()
        order = epoch_order(epoch, len(train_set))[step * batch_size:]
        loader = DataLoader(train_set, sampler=order, generator=torch.Generator().manual_seed(seed + epoch),
                            **loader_args)
        t0, seen_before = time.time(), seen
        for batch in loader:
            step += 1
            if batch is not None:
                for g in optimizer.param_groups:
                    g["lr"] = runtime.lr_at(it / max(1, total), lr, min_lr, warmup / max(1, total), 1 / max(1, total)) \
                        * g["lr_scale"]
                clips, labels = batch
                with autocast:
                    logits = run(to_input(clips))
                loss = F.cross_entropy(logits.float(), labels.to(device), label_smoothing=label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                it, seen, loss_sum = it + 1, seen + len(labels), loss_sum + loss.item() * len(labels)
            if stop.signum:
                break
        if stop.signum:
            del loader                              # stop the workers before writing
            write_checkpoint(None)
            runtime.exit_stopped(stop.signum, f"at epoch {epoch}, step {step} of {steps_per_epoch}", ckpt_path, _argv)
        acc = evaluate(run, val_loader)
        best = max(best, acc)
        print(f"epoch {epoch}: train_loss={loss_sum / max(seen, 1):.4f} val_acc={acc:.2f} "
              f"best={best:.2f} ({(seen - seen_before) / (time.time() - t0):.1f} clips/s)", flush=True)
        epoch, step, seen, loss_sum = epoch + 1, 0, 0, 0.0
        write_checkpoint(acc)
