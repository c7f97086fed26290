"""VideoMAE pre-training on pseudo-motion clips made on the fly by pmg_dali (no videos needed).

    python examples/videomae/pretrain.py                                    # ViT-S, 16 x 224², synthetic images
    python examples/videomae/pretrain.py --demo=True                        # short demo (tiny on CPU)
    python examples/videomae/pretrain.py --source=folder:/data/images --model=vit_base
    python examples/videomae/pretrain.py --source=videos:/data/ucf101/train --pmg_ratio=0.5   # mixed, below
    torchrun --standalone --nproc_per_node=8 examples/videomae/pretrain.py --batch_size=32
    python examples/videomae/pretrain.py --out_dir=out/videomae --resume=True   # continue a run exactly

Config values below can be overridden as ``--key=value``. Every ``ckpt_every`` iterations (and at
the end) ``out_dir/ckpt.pt`` holds the model, the optimiser, the iteration (the lr schedule is a
function of it), the loader state and the RNG state; ``--resume=True`` continues bit-exactly. Also
written: ``log.csv`` (+ TensorBoard with ``--tensorboard=True``), ``recon_<iter>.png`` (original /
masked / reconstructed frames) and ``clips.gif`` (the first batch of clips).

Mixed pre-training on real videos (the paper's PMG-as-augmentation result): ``--source=videos:<path>``
(a folder of videos or a VideoMAE list file, decoded by ``pmg_dali.VideoFolder`` in this process)
mixes real clips with pseudo-motion clips of ``--pmg_source`` images (``synthetic:<kind>`` or
``folder:<path>``); ``--pmg_ratio`` is the fraction of pseudo-motion clips (0: real clips only),
``--augment_videos`` whether the real clips get pseudo-motion too. An epoch is one pass over the
source the ratio exhausts first (see ``pmg_dali.mixed``); resume stays exact.
"""
import csv
import math
import os
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from configurator import configure  # noqa: E402
from model import VideoMAE, VideoMAEConfig, patchify, unpatchify  # noqa: E402

import pmg_dali  # noqa: E402

# -----------------------------------------------------------------------------
# I/O
out_dir = "out/videomae"
log_interval = 10            # print + CSV row (mean loss of the interval) every N iterations
ckpt_every = 1000            # write out_dir/ckpt.pt every N iterations (and at the end)
ckpt_keep = False            # also keep each one as out_dir/ckpt_<iter>.pt
image_every = 1000           # write out_dir/recon_<iter>.png every N iterations (and at the end)
resume = False               # continue from out_dir/ckpt.pt
tensorboard = False          # also log to out_dir/tb (needs `pip install tensorboard`)
demo = False                 # short demo: fills in every key not given on the command line (see DEMO)
# data
source = "synthetic:mixed"   # synthetic:<shader|fractal|atom|mixed>, folder:<path of images> or videos:<path>
num_images = 100_000         # synthetic images per epoch
pmg_source = "synthetic:mixed"   # with --source=videos:<path>: the images of the pseudo-motion clips
pmg_ratio = 0.5              # with --source=videos:<path>: fraction of clips that are pseudo-motion
augment_videos = True        # with --source=videos:<path>: apply pseudo-motion to the real clips too
transforms = ("zoom", "affine")   # PMG transforms (the paper's best pair)
mixup = "frame"              # None | "frame" | "videomix"
backend = "torch"            # loader backend: torch | dali
seed = 0
# model
model = "vit_small"          # vit_tiny | vit_small | vit_base
img_size = 224
num_frames = 16
patch_size = 16
tubelet_size = 2
embed_dim = None             # None: the --model preset; set these to shrink a model (tests, CPU demo)
depth = None
num_heads = None
decoder_embed_dim = None
decoder_depth = 4
decoder_num_heads = None
mask_ratio = 0.75
norm_pix_loss = True         # target: per-patch normalised pixels (VideoMAE); False: [0, 1] pixels
# optimisation (VideoMAE: AdamW 0.9 / 0.95, wd 0.05, lr 1.5e-4 * batch / 256, warm-up + cosine)
batch_size = 32              # clips per micro-step per rank
grad_accum = 1               # micro-steps per iteration
max_iters = 10_000
max_seconds = 0              # also stop (with checkpoint and PNG) after this much time; 0: off
base_lr = 1.5e-4             # lr = base_lr * total batch / 256
base_min_lr = 1e-5           # min_lr = base_min_lr * total batch / 256
warmup_iters = None          # None: 5% of lr_decay_iters (VideoMAE: 40 of 800 epochs)
lr_decay_iters = None        # None: max_iters (set it to extend a run with --resume)
weight_decay = 0.05
beta1 = 0.9
beta2 = 0.95
grad_clip = 0.0              # 0: off (VideoMAE pre-training does not clip)
# system
device = "auto"              # auto | cpu | cuda | cuda:1 ...
dtype = "bfloat16"           # autocast dtype on CUDA (CPU runs float32)
compile = False
sync_timing = False          # synchronise CUDA around the data fetch: exact loader share, slightly slower
_argv = sys.argv[1:]
config = configure(globals(), _argv)
# -----------------------------------------------------------------------------
# --demo=True: a short pre-training that shows the loss falling; keys given on the command line win.
# CUDA: ViT-S on 16 x 224² clips for 600 iterations. CPU: a 4-block 128-wide ViT on 8 x 64² clips
# (64 tokens), 600 iterations or 4 minutes, whichever comes first.
DEMO = {
    "cuda": dict(out_dir="out/demo", model="vit_small", max_iters=600, batch_size=32, base_lr=1.5e-3,
                 warmup_iters=60, log_interval=20, ckpt_every=600, image_every=200),
    "cpu": dict(out_dir="out/demo", model="vit_tiny", img_size=64, num_frames=8, embed_dim=128, depth=4,
                num_heads=4, decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=2, batch_size=16,
                max_iters=600, max_seconds=240, base_lr=6e-2, warmup_iters=50, num_images=10_000,
                log_interval=25, ckpt_every=200, image_every=200),
}


def setup_distributed(device: str):
    """torchrun sets RANK / LOCAL_RANK / WORLD_SIZE; returns (ddp, rank, world_size, device)."""
    if int(os.environ.get("RANK", -1)) == -1:
        return False, 0, 1, device
    cuda = torch.cuda.is_available() and device != "cpu"
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank, local_rank = dist.get_rank(), int(os.environ["LOCAL_RANK"])
    if cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    return True, rank, dist.get_world_size(), device


def make_images(spec: str, flag: str = "--source"):
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        return pmg_dali.SyntheticImages(arg or "mixed", num_images=num_images, seed=seed)
    if kind == "folder" and arg:
        return pmg_dali.ImageFolder(arg)
    raise SystemExit(f"{flag} must be synthetic:<kind> or folder:<path>"
                     f"{', or videos:<path>' if flag == '--source' else ''}, but got {spec!r}")


def make_sources() -> tuple[object, dict]:
    """The loader's image source and, for --source=videos:<path>, its mixing keywords."""
    kind, _, arg = source.partition(":")
    if kind != "videos":
        return make_images(source), {}
    if not arg:
        raise SystemExit(f"--source=videos:<path> needs a path, but got {source!r}")
    videos = pmg_dali.VideoFolder(arg, num_frames=num_frames)
    return make_images(pmg_source, "--pmg_source"), dict(videos=videos, pmg_ratio=pmg_ratio,
                                                          augment_videos=augment_videos)


def get_lr(it: int, peak: float, low: float, warmup: int, decay_iters: int) -> float:
    """Linear warm-up to ``peak``, then cosine decay to ``low`` at ``decay_iters``."""
    if it < warmup:
        return peak * (it + 1) / (warmup + 1)
    progress = min(1.0, (it - warmup) / max(1, decay_iters - warmup))
    return low + 0.5 * (peak - low) * (1.0 + math.cos(math.pi * progress))


def batches(loader):
    """Batches forever: epoch after epoch (a resumed loader first finishes its epoch)."""
    while True:
        yield from loader
        loader.set_epoch(loader.epoch + 1)


def out_of_time(t_start: float, ddp: bool, dev: str) -> bool:
    """``max_seconds`` has passed (on any rank: all ranks stop at the same iteration)."""
    if max_seconds <= 0:
        return False
    flag = torch.tensor(float(time.time() - t_start >= max_seconds), device=dev)
    if ddp:
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag)


def to_pixels(video: torch.Tensor, mean, std) -> torch.Tensor:
    """Normalised (B, C, T, H, W) -> float [0, 1]."""
    return (video.float() * std + mean).clamp(0, 1)


def reconstruction(video, mask, pred, cfg: VideoMAEConfig, mean, std) -> torch.Tensor:
    """(3 rows: original, masked, reconstructed) of clip 0 as float (3, 3, T, H, W) in [0, 1].
    Predicted patches are un-normalised with the original patch's mean / std (norm_pix_loss)."""
    pixels = to_pixels(video[:1], mean, std)
    patches = patchify(pixels, cfg.patch_size, cfg.tubelet_size)[0]          # (N, P, C)
    m = mask[0]
    guess = pred[0].float().reshape(-1, *patches.shape[1:])
    if cfg.norm_pix_loss:
        target = patches[m]
        scale = target.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6
        guess = guess * scale + target.mean(dim=-2, keepdim=True)
    masked, recon = patches.clone(), patches.clone()
    masked[m], recon[m] = 0.5, guess.clamp(0, 1)
    rows = [unpatchify(p[None], cfg.grid, cfg.patch_size, cfg.tubelet_size)[0] for p in (patches, masked, recon)]
    return torch.stack(rows)


def save_png(rows: torch.Tensor, path: str, max_frames: int = 8, min_side: int = 96) -> None:
    """(R, 3, T, H, W) in [0, 1] -> one PNG, R rows of up to ``max_frames`` frames, upscaled if small."""
    from PIL import Image

    T = rows.shape[2]
    picks = torch.linspace(0, T - 1, min(T, max_frames)).round().long()
    sheet = torch.cat([torch.cat(list(r[:, picks].permute(1, 0, 2, 3)), dim=-1) for r in rows], dim=-2)
    image = Image.fromarray((sheet * 255).round().byte().permute(1, 2, 0).cpu().numpy())
    zoom = max(1, math.ceil(min_side / rows.shape[-1]))
    image.resize((image.width * zoom, image.height * zoom), Image.NEAREST).save(path)


def save_gif(clips: torch.Tensor, path: str, ms_per_frame: int = 120) -> None:
    """float (B, 3, T, H, W) in [0, 1] -> an animated GIF with the B clips side by side."""
    from PIL import Image

    strip = torch.cat(list(clips), dim=-1)                                    # (3, T, H, B*W)
    frames = [Image.fromarray((strip[:, t] * 255).round().byte().permute(1, 2, 0).cpu().numpy())
              for t in range(strip.shape[1])]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)


def main() -> None:
    ddp, rank, world_size, dev = setup_distributed(
        ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    master, device_type = rank == 0, ("cuda" if dev.startswith("cuda") else "cpu")
    torch.manual_seed(seed)
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    autocast = (torch.autocast("cuda", dtype=getattr(torch, dtype)) if device_type == "cuda" else nullcontext())
    if master:
        os.makedirs(out_dir, exist_ok=True)
    ckpt_path = os.path.join(out_dir, "ckpt.pt")

    # model and optimiser
    model_args = VideoMAEConfig.from_name(
        model, img_size=img_size, num_frames=num_frames, patch_size=patch_size, tubelet_size=tubelet_size,
        embed_dim=embed_dim, depth=depth, num_heads=num_heads, decoder_embed_dim=decoder_embed_dim,
        decoder_depth=decoder_depth, decoder_num_heads=decoder_num_heads, norm_pix_loss=norm_pix_loss)
    net = VideoMAE(model_args).to(dev)
    total_batch = batch_size * grad_accum * world_size
    lr, min_lr = base_lr * total_batch / 256, base_min_lr * total_batch / 256
    decay_iters = lr_decay_iters or max_iters
    warmup = warmup_iters if warmup_iters is not None else decay_iters // 20
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr, betas=(beta1, beta2), fused=device_type == "cuda")

    # data: every rank makes its own clips (the loader takes rank / world size from torch.distributed)
    pmg = pmg_dali.PMGConfig(num_frames=num_frames, size=img_size, transforms=transforms, mixup=mixup)
    images, mixing = make_sources()
    loader = pmg_dali.PseudoMotionLoader(images, batch_size=batch_size, config=pmg, device=dev,
                                         backend=backend, seed=seed, mask_ratio=mask_ratio,
                                         patch_size=patch_size, tubelet_size=tubelet_size, **mixing)
    mean = torch.tensor(pmg.mean, device=dev).view(1, 3, 1, 1, 1)
    std = torch.tensor(pmg.std, device=dev).view(1, 3, 1, 1, 1)

    iter_num = 0
    if resume:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        loader.load_state_dict(ckpt["loader"])
        torch.set_rng_state(ckpt["rng"])
        iter_num = ckpt["iter_num"]
        if master:
            print(f"resumed from {ckpt_path} at iteration {iter_num}")
    run = torch.compile(net) if compile else net
    run = DDP(run, device_ids=[torch.device(dev).index] if device_type == "cuda" else None) if ddp else run

    def save_checkpoint() -> None:
        state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": iter_num,
                 "loader": loader.state_dict(), "rng": torch.get_rng_state(), "model_args": asdict(model_args),
                 "config": config}
        torch.save(state, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)          # never a half-written checkpoint
        if ckpt_keep:
            shutil.copyfile(ckpt_path, os.path.join(out_dir, f"ckpt_{iter_num:06d}.pt"))
        print(f"checkpoint: {ckpt_path} (iteration {iter_num})", flush=True)

    log_file, writer = None, None
    if master:
        fresh = not (resume and os.path.exists(os.path.join(out_dir, "log.csv")))
        log_file = open(os.path.join(out_dir, "log.csv"), "w" if fresh else "a", newline="")
        log = csv.writer(log_file)
        if fresh:
            log.writerow(["iter", "loss", "lr", "clips_per_s", "data_share", "elapsed_s"])
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(os.path.join(out_dir, "tb"))
        print(f"{model} {sum(p.numel() for p in net.parameters()) / 1e6:.1f}M params | "
              f"{num_frames}x{img_size}² clips, {model_args.num_patches} tokens, mask {mask_ratio} | "
              f"batch {total_batch} ({world_size} rank(s)) | lr {lr:.2e} | {max_iters} iters on {dev}")
        if mixing:
            print(f"data: {len(mixing['videos'])} videos from {source[len('videos:'):]}, "
                  f"{pmg_ratio:.0%} pseudo-motion clips of {pmg_source}, {len(loader)} batches per epoch")

    sync = torch.cuda.synchronize if (sync_timing and device_type == "cuda") else (lambda: None)
    stream = batches(loader)
    t_start = t_log = time.time()
    t_data, clips_since, loss_since = 0.0, 0, torch.zeros((), device=dev)
    while iter_num < max_iters:
        step_lr = get_lr(iter_num, lr, min_lr, warmup, decay_iters)
        for group in optimizer.param_groups:
            group["lr"] = step_lr
        loss_sum = torch.zeros((), device=dev)
        for micro in range(grad_accum):
            sync()
            t0 = time.time()
            batch = next(stream)
            sync()
            t_data += time.time() - t0
            if ddp:
                run.require_backward_grad_sync = micro == grad_accum - 1
            with autocast:
                loss, pred = run(batch["video"], batch["mask"])
            (loss / grad_accum).backward()
            loss_sum += loss.detach() / grad_accum
        if iter_num == 0 and master:
            save_gif(to_pixels(batch["video"][:8], mean, std), os.path.join(out_dir, "clips.gif"))
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        iter_num += 1
        clips_since, loss_since = clips_since + total_batch, loss_since + loss_sum
        last = iter_num == max_iters or out_of_time(t_start, ddp, dev)
        if master and (iter_num % log_interval == 0 or last):
            loss_value = loss_since.item() / (clips_since // total_batch)   # mean since the last log line
            now = time.time()                                # after .item(), which waits for the GPU
            rate, share = clips_since / (now - t_log), t_data / (now - t_log)
            print(f"iter {iter_num}/{max_iters}: loss {loss_value:.4f}, lr {step_lr:.2e}, "
                  f"{rate:.1f} clips/s, data {share:.0%}", flush=True)
            log.writerow([iter_num, repr(loss_value), step_lr, f"{rate:.2f}", f"{share:.3f}", f"{now - t_start:.1f}"])
            log_file.flush()
            if writer is not None:
                writer.add_scalar("loss", loss_value, iter_num)
                writer.add_scalar("clips_per_s", rate, iter_num)
            t_log, t_data, clips_since, loss_since = time.time(), 0.0, 0, torch.zeros((), device=dev)
        if master and (iter_num % image_every == 0 or last):
            path = os.path.join(out_dir, f"recon_{iter_num:06d}.png")
            save_png(reconstruction(batch["video"], batch["mask"], pred.detach(), model_args, mean, std), path)
            print(f"reconstruction: {path}", flush=True)
        if master and (iter_num % ckpt_every == 0 or last):
            save_checkpoint()
        if last:
            break
    if master:
        log_file.close()
        print(f"done: {iter_num} iterations in {time.time() - t_start:.0f} s; outputs in {out_dir} "
              f"(ckpt.pt, log.csv, recon_*.png, clips.gif)")
    if ddp:
        dist.destroy_process_group()


if __name__ == "__main__":
    if demo:
        _given = {a[2:].split("=", 1)[0] for a in _argv}
        _kind = "cuda" if (device == "auto" and torch.cuda.is_available()) or device.startswith("cuda") else "cpu"
        for _key, _value in DEMO[_kind].items():
            if _key not in _given:
                globals()[_key] = _value
                config[_key] = _value
    main()
