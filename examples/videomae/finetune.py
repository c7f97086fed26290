"""Fine-tune (or linear-probe) a VideoMAE encoder on labelled videos; prints val_acc=<top-1 %> per epoch.

    python examples/videomae/finetune.py --data_root=data/hmdb51 --init=out/videomae/ckpt.pt
    python examples/videomae/finetune.py --data_root=data/hmdb51 --init=none --model=vit_small  # scratch

Data, either layout under ``data_root``:
- class folders ``train/<class>/*.{mp4,avi,webm,mkv}`` and ``val/<class>/...`` (UCF101 / HMDB51 style;
  classes are the sorted folder names of train/);
- VideoMAE list files ``train.txt`` / ``val.txt`` (or ``.csv``), one ``path label`` per line.
Videos are decoded with PyAV in DataLoader workers by ``pmg_dali.video.decode_clip`` (the decoder of
``pmg_dali.VideoFolder``): train clips with segment-jittered uniform sampling, a random-resized crop
shared by all frames and a horizontal flip; val clips with centred uniform sampling and a centre crop.
An unreadable video is skipped with a warning naming it.

With ``--init=<pretrain checkpoint>`` the architecture (width, depth, heads, patch, tubelet) comes
from the checkpoint; ``img_size`` / ``num_frames`` may differ (the position table is fixed sin-cos).
"""
import math
import os
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from configurator import configure  # noqa: E402
from model import IMAGENET_MEAN, IMAGENET_STD, VideoClassifier, VideoMAEConfig  # noqa: E402

from pmg_dali import VideoFolder  # noqa: E402
from pmg_dali.video import decode_clip, sample_clip_noise  # noqa: E402

# -----------------------------------------------------------------------------
# data
data_root = "data/hmdb51"    # {train,val}/<class>/*.mp4, or train.txt / val.txt (`path label`)
num_workers = 4              # DataLoader worker processes decoding with PyAV
frame_stride = None          # None: uniform segment sampling; an int: frames this far apart
crop_scale = (0.08, 1.0)     # random-resized-crop area fraction (train)
# model
init = "none"                # a pretrain.py checkpoint, or "none" (from scratch)
model = "vit_small"          # vit_tiny | vit_small | vit_base (ignored for the architecture with --init)
img_size = 224
num_frames = 16
patch_size = 16
tubelet_size = 2
embed_dim = None             # None: the --model preset (these four only matter with --init=none)
depth = None
num_heads = None
drop_path = 0.1              # stochastic depth rate of the last block
head_drop = 0.0
linear_probe = False         # freeze the encoder; train only fc_norm + head
# optimisation (VideoMAE fine-tuning recipe, scaled to short schedules)
epochs = 30
batch_size = 8
base_lr = 1e-3               # lr = base_lr * batch_size / 256
min_lr = 1e-6
layer_decay = 0.75           # lr scale of block i: layer_decay ** (depth + 1 - (i + 1))
weight_decay = 0.05
warmup_epochs = 5
label_smoothing = 0.1
# system
device = "auto"              # auto | cpu | cuda | cuda:1 ...
dtype = "bfloat16"           # autocast dtype on CUDA (CPU runs float32)
compile = False
seed = 0
out_dir = "out/finetune"
config = configure(globals(), sys.argv[1:])
# -----------------------------------------------------------------------------


class ClipDataset(Dataset):
    """(uint8 (3, T, H, W) clip, label) per video; None for an unreadable video (warned about).
    Train randomness comes from a generator seeded by (seed, epoch, index), so it does not depend on
    worker count or order; val clips are deterministic."""

    def __init__(self, files: list[str], labels: list[int], train: bool, num_frames: int, size: int,
                 frame_stride: int | None, scale: tuple[float, float], seed: int):
        self.files, self.labels, self.train, self.epoch = files, labels, train, 0
        self.num_frames, self.size, self.frame_stride, self.scale, self.seed = num_frames, size, frame_stride, scale, seed

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


def lr_at(it: int, total: int, warmup: int, peak: float) -> float:
    if it < warmup:
        return peak * (it + 1) / warmup
    progress = (it - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (peak - min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


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


if __name__ == "__main__":
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    autocast = torch.autocast(device_type, dtype=getattr(torch, dtype), enabled=device_type == "cuda")
    torch.manual_seed(seed)
    os.makedirs(out_dir, exist_ok=True)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1, 1)

    train_files, train_labels, classes = load_split("train", None)
    val_files, val_labels, _ = load_split("val", classes or None)
    num_classes = len(classes) if classes else max(train_labels + val_labels) + 1
    print(f"data: {len(train_files)} train / {len(val_files)} val videos, {num_classes} classes")

    checkpoint = None if init == "none" else torch.load(init, map_location="cpu", weights_only=False)
    arch = dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads, patch_size=patch_size,
                tubelet_size=tubelet_size)
    if checkpoint is not None:
        arch = {k: checkpoint["model_args"][k] for k in arch}
    model_args = VideoMAEConfig.from_name(model, img_size=img_size, num_frames=num_frames,
                                          drop_path_rate=drop_path, **arch)
    net = VideoClassifier(model_args, num_classes, head_drop=head_drop)
    if checkpoint is not None:
        missing, unexpected = net.load_encoder(checkpoint)
        print(f"loaded encoder from {init}: missing keys {missing}, unexpected keys {unexpected}")
    net.to(device)
    steps_per_epoch = math.ceil(len(train_files) / batch_size)
    lr = base_lr * batch_size / 256
    groups = net.param_groups(lr, weight_decay, layer_decay, linear_probe=linear_probe)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999),
                                  fused=device_type == "cuda")
    run = torch.compile(net) if compile else net

    data_args = dict(num_frames=num_frames, size=img_size, frame_stride=frame_stride, scale=crop_scale, seed=seed)
    train_set = ClipDataset(train_files, train_labels, train=True, **data_args)
    loader_args = dict(batch_size=batch_size, num_workers=num_workers, collate_fn=collate,
                       pin_memory=device_type == "cuda")
    val_loader = DataLoader(ClipDataset(val_files, val_labels, train=False, **data_args), shuffle=False,
                            **loader_args)
    total, warmup = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    it, best = 0, 0.0
    for epoch in range(epochs):
        train_set.epoch = epoch                    # workers are started per epoch and see it
        run.train()
        if linear_probe:
            net.encoder.eval()
        loader = DataLoader(train_set, shuffle=True, generator=torch.Generator().manual_seed(seed + epoch),
                            **loader_args)
        t0, seen, loss_sum = time.time(), 0, 0.0
        for batch in loader:
            if batch is None:
                continue
            for g in optimizer.param_groups:
                g["lr"] = lr_at(it, total, warmup, lr) * g["lr_scale"]
            clips, labels = batch
            with autocast:
                logits = run(to_input(clips))
            loss = F.cross_entropy(logits.float(), labels.to(device), label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            it, seen, loss_sum = it + 1, seen + len(labels), loss_sum + loss.item() * len(labels)
        acc = evaluate(run, val_loader)
        best = max(best, acc)
        print(f"epoch {epoch}: train_loss={loss_sum / max(seen, 1):.4f} val_acc={acc:.2f} "
              f"best={best:.2f} ({seen / (time.time() - t0):.1f} clips/s)", flush=True)
        torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                    "val_acc": acc, "model_args": asdict(model_args), "classes": classes,
                    "config": config}, os.path.join(out_dir, "finetune.pt"))
