"""Does pseudo-motion pre-training transfer? One command: pre-train, then fine-tune and linear-probe on a
labelled video set, each against the same model trained from scratch; prints a table.

    python examples/videomae/transfer.py                          # built-in motion task, default CPU scale
    python examples/videomae/transfer.py --quick=True             # seconds: a smoke run (the tests run it)
    python examples/videomae/transfer.py --dry=True               # every run's command line, nothing run
    python examples/videomae/transfer.py --data_root=data/ucf101 --img_size=112 --num_frames=16 --patch_size=16

The built-in task (``data_root=None``) is written to ``out_dir/motion`` at run time from images shipped
with installed packages (matplotlib's sample photographs as backgrounds when matplotlib is installed,
else ``pmg_dali.SyntheticImages("fractal")``; objects are ``SyntheticImages("shader")`` discs), nothing is
downloaded. Its class is how one object moves over the background:

=============  ================================================================
``still``      does not move (only the camera does)
``linear``     constant velocity in a random direction
``circle``     circles a random centre, either way round
``oscillate``  swings back and forth along a random direction
``fall``       thrown: random sideways speed, upward start, constant gravity
=============  ================================================================

Every clip also has a camera that pans slowly and shakes from frame to frame, moving background and
object together, so whole-frame motion does not give the class away; start positions, speeds and sizes
are random, so no single frame does either. The same command takes a UCF101 / HMDB51 folder (any layout
``finetune.py`` reads: ``train/<class>/*`` and ``val/<class>/*``, or list files) with ``--data_root``.

For each seed and each pre-training condition of ``conditions``, ``pretrain.py`` on synthetic images, then
``finetune.py`` twice from its checkpoint (fine-tune and linear probe), and twice from scratch:

============  ====================================================================================
``pmg``       ``pretrain_flags`` (default: zoom + affine, frame Mixup): the Pseudo-Motion Generator
``identity``  the same images as static clips (``--transforms=identity --mixup=none``): what
              pre-training on still images alone buys, without pseudo-motion
============  ====================================================================================

Writes ``out_dir/results.csv`` (one row per seed, method, mode) and ``out_dir/results.md`` (mean over
seeds); every run's own output is in ``out_dir/<seed>/<run>/`` with its ``stdout.txt``.
"""
import csv
import os
import re
import shlex
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from configurator import ConfigError, check, configure, device_rule, integer, number, several, subset  # noqa: E402
from model import VideoMAEConfig  # noqa: E402
from runtime import SHARED_RULES  # noqa: E402

import pmg_dali  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = ("still", "linear", "circle", "oscillate", "fall")

# -----------------------------------------------------------------------------
# I/O
out_dir = "out/transfer"     # motion/ (the built-in task), <seed>/<run>/, results.csv, results.md
quick = False                # a smoke run in seconds (tiny task, model and schedules)
dry = False                  # print every run's command line, in order, and stop (nothing written or run)
data_root = None             # None: make the built-in motion task; else a UCF101 / HMDB51-style folder
# built-in task
videos_per_class = 80        # train videos per class (a third as many val videos)
video_size = 64              # frame side of the written videos
video_frames = 16            # frames per written video
# model (the same encoder is pre-trained, fine-tuned and probed)
img_size = 32
num_frames = 8
patch_size = 4
tubelet_size = 2
embed_dim = 128
depth = 4
num_heads = 4
decoder_embed_dim = 64
decoder_depth = 2
decoder_num_heads = 2
# pre-training
pretrain_iters = 1200        # iterations per seed
pretrain_batch = 16
pretrain_lr = 1.5e-3         # base_lr of pretrain.py (the lr at batch <= 256)
pretrain_flags = "--transforms=zoom,affine --mixup=frame --source=synthetic:mixed"   # pretrain.py flags of `pmg`
pretrain_seconds = 0.0       # time budget of each pre-training in s (pretrain.py --max_seconds); 0: off
conditions = ("pmg",)        # pre-training conditions compared with scratch: pmg, identity (see above)
# evaluation
finetune_epochs = 6
probe_epochs = 6
batch_size = 16
finetune_lr = 1e-3           # base_lr of finetune.py (the lr at batch <= 256)
probe_lr = 1e-2
seeds = (0,)                 # one pre-training and four evaluations per seed
num_workers = 0              # DataLoader workers of finetune.py (0: decode in the training process)
device = "cpu"
config = configure(globals(), sys.argv[1:], types=dict(data_root=str))
# the pretrain.py flags of each condition: the same images, with pseudo-motion or as static clips
CONDITIONS = {"pmg": pretrain_flags,
              "identity": " ".join([*(f for f in pretrain_flags.split() if f.startswith("--source=")),
                                    "--transforms=identity", "--mixup=none"])}
# what each key allows, checked before any work starts (one line and exit 2 otherwise)
RULES = dict(videos_per_class=integer(1), video_size=integer(8), video_frames=integer(1), img_size=integer(1),
             num_frames=integer(1), patch_size=integer(1), tubelet_size=integer(1), embed_dim=integer(1),
             depth=integer(1), num_heads=integer(1), decoder_embed_dim=integer(1), decoder_depth=integer(1),
             decoder_num_heads=integer(1), pretrain_iters=integer(1), pretrain_batch=integer(1),
             pretrain_lr=number(0, low_open=True), pretrain_seconds=number(0), conditions=subset(CONDITIONS),
             finetune_epochs=integer(1), probe_epochs=integer(1), batch_size=integer(1),
             finetune_lr=number(0, low_open=True), probe_lr=number(0, low_open=True),
             seeds=several(SHARED_RULES["seed"]),
             num_workers=integer(0), device=device_rule())
check(config, RULES)
# -----------------------------------------------------------------------------
if quick:
    videos_per_class, video_size, video_frames, img_size, num_frames, patch_size = 6, 32, 8, 16, 4, 4
    embed_dim, depth, num_heads, decoder_embed_dim, decoder_depth, decoder_num_heads = 32, 1, 2, 32, 1, 2
    pretrain_iters, pretrain_batch, finetune_epochs, probe_epochs, batch_size = 4, 4, 1, 1, 8
try:                                              # the model's own checks, before any run starts
    VideoMAEConfig(img_size=img_size, num_frames=num_frames, patch_size=patch_size, tubelet_size=tubelet_size,
                   embed_dim=embed_dim, depth=depth, num_heads=num_heads, decoder_embed_dim=decoder_embed_dim,
                   decoder_depth=decoder_depth, decoder_num_heads=decoder_num_heads)
except ValueError as err:                          # the message names the setting (`img_size`, ...)
    raise ConfigError(f"transfer.py: {err}") from None


# ----------------------------------------------------------------------------- the built-in task


def backgrounds(count: int, size: int, g: torch.Generator) -> np.ndarray:
    """uint8 (count, size, size, 3): random crops of matplotlib's sample photographs (random scale,
    flip), or SyntheticImages("fractal") when matplotlib is not installed."""
    try:
        from matplotlib import cbook
        from PIL import Image

        photos = []
        for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
            with cbook.get_sample_data(name, asfileobj=True) as f:
                photos.append(np.asarray(Image.open(f).convert("RGB")))
    except (ImportError, OSError, ValueError):
        images = pmg_dali.SyntheticImages("fractal", num_images=count, seed=10_007).load(range(count), size, "cpu")
        return images.permute(0, 2, 3, 1).numpy()
    out = np.empty((count, size, size, 3), np.uint8)
    for k in range(count):
        photo = photos[int(torch.randint(len(photos), (), generator=g))]
        side = int(min(photo.shape[:2]) * (0.25 + 0.5 * float(torch.rand((), generator=g))))
        top = int(torch.randint(photo.shape[0] - side + 1, (), generator=g))
        left = int(torch.randint(photo.shape[1] - side + 1, (), generator=g))
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.BILINEAR)
        out[k] = np.asarray(crop)[:, ::-1] if float(torch.rand((), generator=g)) < 0.5 else np.asarray(crop)
    return out


def trajectory(kind: str, T: int, size: int, g: torch.Generator) -> np.ndarray:
    """(T, 2) object centre (x, y) in pixels of a ``size`` frame, for motion class ``kind``."""
    def u(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    t = np.linspace(0.0, 1.0, T)[:, None]
    angle = u(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    centre = np.array([u(0.35, 0.65), u(0.35, 0.65)]) * size
    if kind == "still":
        return np.repeat(centre[None], T, 0)
    if kind == "linear":
        travel = u(0.35, 0.55) * size
        return centre + (t - 0.5) * travel * direction
    if kind == "circle":
        radius, turns = u(0.15, 0.25) * size, u(0.6, 1.0) * (1 if u(0, 1) < 0.5 else -1)
        phase = angle + 2 * np.pi * turns * t[:, 0]
        return centre + radius * np.stack([np.cos(phase), np.sin(phase)], 1)
    if kind == "oscillate":
        amplitude, cycles = u(0.15, 0.25) * size, u(1.0, 2.0)
        return centre + amplitude * np.sin(2 * np.pi * cycles * t + u(0, 2 * np.pi)) * direction
    if kind == "fall":
        vx, vy, gravity = u(-0.3, 0.3) * size, -u(0.6, 1.0) * size, u(1.6, 2.2) * size
        start = np.array([centre[0], u(0.55, 0.75) * size])
        return start + np.concatenate([vx * t, vy * t + 0.5 * gravity * t ** 2], 1)
    raise ValueError(f"`kind` must be one of {CLASSES}, but got {kind!r}")


def render_clip(kind: str, background: np.ndarray, sprite: np.ndarray, T: int, size: int,
                g: torch.Generator) -> np.ndarray:
    """uint8 (T, size, size, 3): ``sprite`` (r, r, 4 RGBA) moving as ``kind`` over ``background``
    (2 size, 2 size, 3), seen by a camera that pans slowly and shakes by up to 2 px per frame."""
    path = trajectory(kind, T, size, g)
    pan = (torch.rand(2, generator=g).numpy() - 0.5) * 0.3 * size               # total pan over the clip
    shake = torch.randint(-2, 3, (T, 2), generator=g).numpy()
    camera = np.linspace(0, 1, T)[:, None] * pan + shake + size // 2             # top-left of the view
    r = sprite.shape[0]
    frames = np.empty((T, size, size, 3), np.uint8)
    for k in range(T):
        cx, cy = np.round(camera[k]).astype(int)
        cx, cy = np.clip(cx, 0, size), np.clip(cy, 0, size)
        world = background.astype(np.float32).copy()
        # the object lives in world coordinates: view offset + its path in the view at rest
        ox, oy = np.round(path[k] + size // 2 - r / 2).astype(int)
        x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + r, 2 * size), min(oy + r, 2 * size)
        if x1 > x0 and y1 > y0:
            patch = sprite[y0 - oy:y1 - oy, x0 - ox:x1 - ox].astype(np.float32)
            alpha = patch[..., 3:] / 255
            world[y0:y1, x0:x1] = world[y0:y1, x0:x1] * (1 - alpha) + patch[..., :3] * alpha
        frames[k] = world[cy:cy + size, cx:cx + size].round().clip(0, 255).astype(np.uint8)
    return frames


def write_video(path: str, frames: np.ndarray) -> None:
    import av

    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = frames.shape[2], frames.shape[1], "yuv420p", \
            4_000_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_motion_task(root: str) -> str:
    """Write ``root/{train,val}/<class>/<k>.avi`` (once; kept when complete) and return ``root``."""
    done = os.path.join(root, "complete.txt")
    spec = f"{CLASSES} {videos_per_class} {video_size} {video_frames}"
    if os.path.isfile(done) and open(done).read() == spec:
        return root
    g = torch.Generator().manual_seed(123_457)
    shaders = pmg_dali.SyntheticImages("shader", num_images=100_000, seed=20_011)
    r = max(6, video_size // 5)
    yy, xx = np.mgrid[:r, :r]
    disc = (((yy - (r - 1) / 2) ** 2 + (xx - (r - 1) / 2) ** 2) <= (r / 2) ** 2).astype(np.uint8) * 255
    for split, count in (("train", videos_per_class), ("val", max(1, videos_per_class // 3))):
        n = count * len(CLASSES)
        bgs = backgrounds(n, 2 * video_size, g)
        objects = shaders.load(range(n * (split == "val"), n * (1 + (split == "val"))), r, "cpu")
        for label, kind in enumerate(CLASSES):
            os.makedirs(os.path.join(root, split, kind), exist_ok=True)
            for k in range(count):
                i = label * count + k
                sprite = np.concatenate([objects[i].permute(1, 2, 0).numpy(), disc[..., None]], -1)
                clip = render_clip(kind, bgs[i], sprite, video_frames, video_size, g)
                write_video(os.path.join(root, split, kind, f"{k:04d}.avi"), clip)
    with open(done, "w") as f:
        f.write(spec)
    return root


# ----------------------------------------------------------------------------- the runs


PROGRESS = [0, 0]     # runs started, runs in all (set by main)


def pretrained(seed: int, name: str) -> str:
    """The checkpoint of condition ``name``'s pre-training for ``seed`` (a run that finished is not redone)."""
    return os.path.join(out_dir, str(seed), "pretrain" if name == "pmg" else f"pretrain_{name}", "ckpt.pt")


def run(script: str, flags: list[str], where: str) -> str:
    """Run ``script`` with ``flags``; its stdout + stderr go to ``where/stdout.txt``; a failure stops here.
    With ``--dry=True`` only print the command line."""
    command = [sys.executable, os.path.join(HERE, script), *flags]
    if dry:
        print(shlex.join(command), flush=True)
        return ""
    os.makedirs(where, exist_ok=True)
    PROGRESS[0] += 1
    print(f"[{PROGRESS[0]}/{PROGRESS[1]}] {script} {os.path.relpath(where, out_dir)} ...", flush=True)
    t0 = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    with open(os.path.join(where, "stdout.txt"), "w") as f:
        f.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"{script} failed (exit {result.returncode}); its output is in {where}/stdout.txt:\n"
                         f"{result.stderr[-2000:]}")
    print(f"  {script} {os.path.relpath(where, out_dir)}: {time.time() - t0:.0f} s", flush=True)
    return result.stdout


def accuracies(stdout: str) -> tuple[float, float]:
    """(val_acc of the last epoch, best val_acc) from finetune.py's output."""
    values = [float(v) for v in re.findall(r"val_acc=([0-9.]+)", stdout)]
    if not values:
        raise SystemExit(f"finetune.py printed no val_acc:\n{stdout[-2000:]}")
    return values[-1], max(values)


def main() -> None:
    if not dry:
        os.makedirs(out_dir, exist_ok=True)
    root = data_root or (os.path.join(out_dir, "motion") if dry else make_motion_task(os.path.join(out_dir, "motion")))
    arch = [f"--img_size={img_size}", f"--num_frames={num_frames}", f"--patch_size={patch_size}",
            f"--tubelet_size={tubelet_size}", f"--embed_dim={embed_dim}", f"--depth={depth}",
            f"--num_heads={num_heads}", "--model=vit_tiny", f"--device={device}"]
    decoder = [f"--decoder_embed_dim={decoder_embed_dim}", f"--decoder_depth={decoder_depth}",
               f"--decoder_num_heads={decoder_num_heads}"]
    print(f"task: {root} | encoder {embed_dim} wide x {depth} blocks on {num_frames}x{img_size}² clips, "
          f"{tubelet_size}x{patch_size}² tokens | seeds {seeds}", flush=True)
    rows = []
    PROGRESS[1] = (sum(not os.path.isfile(pretrained(s, name)) for s in seeds for name in conditions)
                   + 2 * len(seeds) * (1 + len(conditions)))        # pre-trainings still to run, evaluations
    for seed in seeds:
        base = os.path.join(out_dir, str(seed))
        inits = [("scratch", "none")]
        for name in conditions:
            ckpt = pretrained(seed, name)
            inits.append((name, ckpt))
            where = os.path.dirname(ckpt)
            if not os.path.isfile(ckpt):
                run("pretrain.py", [*arch, *decoder, *CONDITIONS[name].split(), f"--out_dir={where}",
                                    f"--max_iters={pretrain_iters}", f"--max_seconds={pretrain_seconds}",
                                    f"--batch_size={pretrain_batch}", f"--base_lr={pretrain_lr}", f"--seed={seed}",
                                    "--num_images=100000", f"--log_interval={max(1, pretrain_iters // 20)}",
                                    f"--ckpt_every={pretrain_iters}", f"--image_every={pretrain_iters}"], where)
        for method, init in inits:
            for mode, epochs, lr in (("finetune", finetune_epochs, finetune_lr), ("probe", probe_epochs, probe_lr)):
                where = os.path.join(base, f"{method}_{mode}")
                stdout = run("finetune.py", [*arch, f"--data_root={root}", f"--init={init}", f"--seed={seed}",
                                             f"--epochs={epochs}", f"--batch_size={batch_size}", f"--base_lr={lr}",
                                             f"--linear_probe={mode == 'probe'}", "--crop_scale=0.6,1",
                                             f"--warmup_epochs={max(0, epochs // 5)}", f"--out_dir={where}",
                                             f"--num_workers={num_workers}"], where)
                if dry:
                    continue
                last, best = accuracies(stdout)
                rows.append(dict(seed=seed, method=method, mode=mode, val_acc=last, best_val_acc=best))
                print(f"  seed {seed} {method:8s} {mode:9s} val_acc={last:.1f} best={best:.1f}", flush=True)
                with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:     # so far
                    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
    if dry:
        return
    lines = ["| init | fine-tune top-1 % (last epoch) | linear probe top-1 % (last epoch) |", "|---|---|---|"]
    names = dict(scratch="scratch", pmg="PMG pre-trained", identity="identity (static clips) pre-trained")
    for method in ("scratch", *conditions):
        cells = []
        for mode in ("finetune", "probe"):
            accs = [r["val_acc"] for r in rows if r["method"] == method and r["mode"] == mode]
            cells.append(f"{np.mean(accs):.1f}" + (f" ± {np.std(accs):.1f} ({len(accs)} seeds: "
                                                    f"{', '.join(f'{a:.1f}' for a in accs)})" if len(accs) > 1 else ""))
        lines.append(f"| {names[method]} | {cells[0]} | {cells[1]} |")
    table = "\n".join(lines)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    print(f"chance: {100 / len(CLASSES):.1f} %" if data_root is None else "", flush=True)


if __name__ == "__main__":
    main()
