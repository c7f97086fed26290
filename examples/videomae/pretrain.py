"""VideoMAE pre-training on pseudo-motion clips made on the fly by pmg_dali (no videos needed).

    python examples/videomae/pretrain.py --help                             # every key, its default and meaning
    python examples/videomae/pretrain.py                                    # ViT-S, 16 x 224², synthetic images
    python examples/videomae/pretrain.py --demo=True                        # short demo (tiny on CPU)
    python examples/videomae/pretrain.py --source=folder:/data/images --model=vit_base
    python examples/videomae/pretrain.py --source=videos:/data/ucf101/train --pmg_ratio=0.5   # mixed, below
    torchrun --standalone --nproc_per_node=8 examples/videomae/pretrain.py --batch_size=32
    python examples/videomae/pretrain.py --out_dir=out/videomae --resume=True   # continue a run exactly

Config values below can be overridden as ``--key=value``. Every ``ckpt_every`` iterations (and at
the end) ``out_dir/ckpt.pt`` holds the model, the optimiser, the iteration (the lr schedule is a
function of it), the elapsed time, the loader state and the RNG state, as tensors and plain Python
values (it is read back with ``torch.load(weights_only=True)``); ``--resume=True`` continues bit-exactly
and appends to ``log.csv`` from the checkpoint's iteration on. SIGTERM or Ctrl-C (SIGINT) finishes the
current step, writes the checkpoint and exits with status 128 + the signal number, printing the command
that resumes. Also written: ``log.csv`` (+ TensorBoard with ``--tensorboard=True``), ``recon_<iter>.png``
(original / masked / reconstructed frames) and ``clips.gif`` (the first batch of clips).

Learning rate: peak ``base_lr * batch / 256`` from a total batch of 256 up (VideoMAE's rule, made for
512-2048), ``base_lr`` below (see ``runtime.peak_lr``: scaled down, a small batch stays at chance); linear
warm-up over ``warmup_iters``, cosine decay to the end. With ``--max_seconds`` the run ends at ``max_iters`` or at
the time budget, whichever comes first, and the schedule follows whichever is further along, so a
time-capped run still anneals (such a run is not bit-reproducible: its lr depends on the clock).

Mixed pre-training on real videos (the paper's PMG-as-augmentation result): ``--source=videos:<path>``
(a folder of videos or a VideoMAE list file, decoded by ``pmg_dali.VideoFolder`` in this process)
mixes real clips with pseudo-motion clips of ``--pmg_source`` images (``synthetic:<kind>`` or
``folder:<path>``); ``--pmg_ratio`` is the fraction of pseudo-motion clips (0: real clips only),
``--augment_videos`` whether the real clips get pseudo-motion too. An epoch is one pass over the
source the ratio exhausts first (see ``pmg_dali.real_videos``); resume stays exact.
"""
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runtime  # noqa: E402
from configurator import ConfigError, check, choice, configure, given_keys, integer, number, subset  # noqa: E402
from model import VideoMAE, VideoMAEConfig  # noqa: E402

import pmg_dali  # noqa: E402
from pmg_dali.gif import clip_sheet, write_gif  # noqa: E402

# -----------------------------------------------------------------------------
# I/O
out_dir = "out/videomae"     # ckpt.pt, log.csv, recon_<iter>.png, clips.gif go here
log_interval = 10            # print + CSV row (mean loss since the last row) at iteration 1 and every N iterations
ckpt_every = 1000            # write out_dir/ckpt.pt every N iterations (and at the end or on SIGTERM / SIGINT)
ckpt_keep = False            # also keep each one as out_dir/ckpt_<iter>.pt
image_every = 1000           # write out_dir/recon_<iter>.png every N iterations (and at the end)
resume = False               # continue from out_dir/ckpt.pt (same settings; log.csv continues)
tensorboard = False          # also log to out_dir/tb (needs `pip install tensorboard`)
demo = False                 # short demo: fills in every key not given on the command line (see DEMO)
# data
source = "synthetic:mixed"   # synthetic:<shader|fractal|atom|mixed>, folder:<path of images> or videos:<path>
num_images = 100_000         # synthetic images per epoch
pmg_source = "synthetic:mixed"   # with --source=videos:<path>: the images of the pseudo-motion clips
pmg_ratio = 0.5              # with --source=videos:<path>: fraction of clips that are pseudo-motion
augment_videos = True        # with --source=videos:<path>: apply pseudo-motion to the real clips too
transforms = ("zoom", "affine")   # PMG transforms, comma-separated (the paper's best pair); see pmg_dali.TRANSFORMS
mixup = "frame"              # none | frame | videomix
renderer = "auto"            # the loader's renderer: auto | reference | fused | cpu | dali
loader_workers = -1          # processes drawing each batch's programs and masks ahead; -1: 2 on CUDA, 0 on CPU
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
# optimisation (VideoMAE: AdamW 0.9 / 0.95, wd 0.05, warm-up + cosine)
batch_size = 32              # clips per micro-step per rank
grad_accum = 1               # micro-steps per iteration
max_iters = 10_000
max_seconds = 0.0            # time budget in s: stop at max_iters or here, the lr schedule follows the further; 0: off
base_lr = 1.5e-4             # peak lr = base_lr * B / 256 for total batch B >= 256, base_lr below
base_min_lr = 1e-5           # final lr, scaled like base_lr
warmup_iters = None          # None: 5% of lr_decay_iters (VideoMAE: 40 of 800 epochs)
lr_decay_iters = None        # None: max_iters (set it to extend a run with --resume)
weight_decay = 0.05
beta1 = 0.9
beta2 = 0.95
grad_clip = 0.0              # 0: off (VideoMAE pre-training does not clip)
# system
device = "auto"              # auto | cpu | cuda | cuda:1 ...
dtype = "bfloat16"           # autocast dtype on CUDA (CPU runs float32)
threads = 0                  # CPU: torch threads; 0: OMP_NUM_THREADS if set, else all usable cores
compile = False
sync_timing = False          # synchronise CUDA around the data fetch: exact loader share, slightly slower
_argv = sys.argv[1:]
config = configure(globals(), _argv, nullable=("mixup",),
                   types=dict(embed_dim=int, depth=int, num_heads=int, decoder_embed_dim=int,
                              decoder_num_heads=int, warmup_iters=int, lr_decay_iters=int))
# what each key allows, checked before any work starts (one line and exit 2 otherwise)
RULES = dict(runtime.SHARED_RULES, log_interval=integer(1), ckpt_every=integer(1), image_every=integer(1),
             num_images=integer(1), pmg_ratio=number(0, 1), transforms=subset(pmg_dali.TRANSFORMS),
             mixup=choice(*pmg_dali.config.MIXUPS), renderer=choice(*pmg_dali.engines.RENDERERS),
             loader_workers=integer(-1), decoder_embed_dim=integer(1, none=True), decoder_depth=integer(1),
             decoder_num_heads=integer(1, none=True), mask_ratio=number(0, 1, high_open=True), grad_accum=integer(1),
             max_iters=integer(1), max_seconds=number(0), base_min_lr=number(0), warmup_iters=integer(0, none=True),
             lr_decay_iters=integer(1, none=True), beta1=number(0, 1, high_open=True),
             beta2=number(0, 1, high_open=True), grad_clip=number(0))
check(config, RULES)
_device = runtime.run_device(device)              # where it runs
_why = "" if renderer == "auto" else pmg_dali.engines.engine(renderer).unavailable(_device)
if _why:                                           # its device, or its package (DALI, Triton) missing
    raise ConfigError(f"--renderer={renderer} cannot render on --device={device}: it {_why}")
# -----------------------------------------------------------------------------
# --demo=True: a short pre-training that shows the loss falling; keys given on the command line win.
# CUDA: ViT-S on 16 x 224² clips for 600 iterations. CPU: a 4-block 128-wide ViT on 8 x 64² clips with
# 8 x 8 patches (256 tokens), 300 iterations or 225 s of training, whichever comes first: on a slow or busy
# machine the time budget ends it, and the lr schedule follows the time, so it still anneals.
DEMO = {
    "cuda": dict(out_dir="out/demo", model="vit_small", max_iters=600, batch_size=32, base_lr=1.5e-3,
                 warmup_iters=60, log_interval=20, ckpt_every=600, image_every=200),
    "cpu": dict(out_dir="out/demo", model="vit_tiny", img_size=64, num_frames=8, patch_size=8, embed_dim=128,
                depth=4, num_heads=4, decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=2, batch_size=16,
                max_iters=300, max_seconds=225.0, base_lr=1.5e-3, warmup_iters=15, num_images=10_000, log_interval=25,
                ckpt_every=100, image_every=100),
}


def from_flag(flag: str, spec: str, make, *args, **kwargs):
    """``make(*args, **kwargs)``; the TypeError / ValueError it raises (naming its own argument) is a
    ConfigError that names the flag too."""
    try:
        return make(*args, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"pretrain.py: {flag}={spec}: {err}") from None


def make_images(spec: str, flag: str = "--source"):
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        return from_flag(flag, spec, pmg_dali.SyntheticImages, arg or "mixed", num_images=num_images, seed=seed)
    if kind == "folder" and arg:
        return from_flag(flag, spec, pmg_dali.ImageFolder, arg)
    raise ConfigError(f"{flag} must be synthetic:<kind> or folder:<path>"
                     f"{', or videos:<path>' if flag == '--source' else ''}, but got {spec!r}")


def make_sources() -> tuple[object, dict]:
    """The loader's image source and, for --source=videos:<path>, its mixing keywords."""
    kind, _, arg = source.partition(":")
    if kind != "videos":
        return make_images(source), {}
    if not arg:
        raise ConfigError(f"--source=videos:<path> needs a path, but got {source!r}")
    images = make_images(pmg_source, "--pmg_source")          # before the videos are listed
    videos = from_flag("--source", source, pmg_dali.VideoFolder, arg, num_frames=num_frames)
    return images, dict(videos=videos, pmg_ratio=pmg_ratio, augment_videos=augment_videos)


def batches(loader):
    """Batches forever: epoch after epoch (a resumed loader first finishes its epoch)."""
    while True:
        yield from loader
        loader.set_epoch(loader.epoch + 1)


def main() -> None:
    ddp, rank, world_size, dev = runtime.setup_distributed(_device)
    master, device_type = rank == 0, ("cuda" if dev.startswith("cuda") else "cpu")
    clock = runtime.Clock(max_seconds, ddp, dev, verbose=master)    # time budget; SIGTERM / SIGINT end the step
    if device_type == "cpu":
        runtime.cpu_threads(0, threads)
    torch.manual_seed(seed)
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    autocast = (torch.autocast("cuda", dtype=getattr(torch, dtype)) if device_type == "cuda" else nullcontext())
    ckpt_path = os.path.join(out_dir, "ckpt.pt")

    # model and optimiser
    try:
        model_args = VideoMAEConfig.from_name(
            model, img_size=img_size, num_frames=num_frames, patch_size=patch_size, tubelet_size=tubelet_size,
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, decoder_embed_dim=decoder_embed_dim,
            decoder_depth=decoder_depth, decoder_num_heads=decoder_num_heads, norm_pix_loss=norm_pix_loss)
    except ValueError as err:                      # the message names the setting (`model`, `img_size`, ...)
        raise ConfigError(f"pretrain.py: {err}") from None
    net = VideoMAE(model_args).to(dev)
    total_batch = batch_size * grad_accum * world_size
    lr, min_lr = runtime.peak_lr(base_lr, total_batch), runtime.peak_lr(base_min_lr, total_batch)
    decay_iters = lr_decay_iters or max_iters
    warmup = warmup_iters if warmup_iters is not None else decay_iters // 20
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=lr, betas=(beta1, beta2), fused=device_type == "cuda")

    # data: every rank makes its own clips (the loader takes rank / world size from torch.distributed)
    try:                                           # the message names the setting (`size`, `batch_size`, ...)
        pmg = pmg_dali.PMGConfig(num_frames=num_frames, size=img_size, transforms=transforms, mixup=mixup)
        images, mixing = make_sources()
        loader = pmg_dali.PseudoMotionLoader(images, batch_size=batch_size, config=pmg, device=dev,
                                             renderer=renderer, seed=seed, mask_ratio=mask_ratio,
                                             patch_size=patch_size, tubelet_size=tubelet_size,
                                             num_workers=(2 if device_type == "cuda" else 0) if loader_workers < 0
                                             else loader_workers, **mixing)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"pretrain.py: {err}") from None
    if master:                                     # settings checked: now the run writes
        os.makedirs(out_dir, exist_ok=True)

    iter_num, elapsed = 0, 0.0
    if resume:
        ckpt = runtime.load_checkpoint(ckpt_path, "--resume=True")
        runtime.check_resumable(ckpt, asdict(model_args), ckpt_path,
                                ("model", "optimizer", "loader", "rng", "iter_num", "model_args"))
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        try:
            loader.load_state_dict(ckpt["loader"])
        except ValueError as err:                  # another batch size, seed, source size ...
            raise SystemExit(f"--resume=True: {ckpt_path!r} was written with other data settings: {err}") from None
        torch.set_rng_state(ckpt["rng"])
        iter_num, elapsed = ckpt["iter_num"], float(ckpt.get("elapsed_s", 0.0))
        if master:
            print(f"resumed from {ckpt_path} at iteration {iter_num} ({elapsed:.0f} s in)")
    run = torch.compile(net) if compile else net
    run = DDP(run, device_ids=[torch.device(dev).index] if device_type == "cuda" else None) if ddp else run

    if master:                                     # log.csv continues from the checkpoint's iteration on resume
        log = runtime.CsvLog(os.path.join(out_dir, "log.csv"),
                             ["iter", "loss", "lr", "clips_per_s", "data_share", "elapsed_s", "flat_loss"],
                             resume_at=iter_num if resume else None,
                             tensorboard=os.path.join(out_dir, "tb") if tensorboard else None)
        budget = f" or {max_seconds:.0f} s, whichever comes first," if max_seconds > 0 else ""
        threads_note = f" ({torch.get_num_threads()} threads)" if device_type == "cpu" else ""
        print(f"{model} {sum(p.numel() for p in net.parameters()) / 1e6:.1f}M params | "
              f"{num_frames}x{img_size}² clips, {model_args.num_patches} tokens of {tubelet_size}x{patch_size}², "
              f"mask {mask_ratio} | batch {total_batch} ({world_size} rank(s)) | peak lr {lr:.2e} | "
              f"{max_iters} iterations{budget} on {dev}{threads_note}", flush=True)
        if mixing:
            print(f"data: {len(mixing['videos'])} videos from {source[len('videos:'):]}, "
                  f"{pmg_ratio:.0%} pseudo-motion clips of {pmg_source}, {len(loader)} batches per epoch")

    sync = torch.cuda.synchronize if (sync_timing and device_type == "cuda") else (lambda: None)
    stream = batches(loader)
    clock.start(elapsed)                           # a resumed run keeps counting its time
    t_log, t_data, clips_since, last_logged = time.time(), 0.0, 0, None    # last_logged: (loss, flat loss)
    loss_since, flat_since = torch.zeros((), device=dev), torch.zeros((), device=dev)
    while iter_num < max_iters and not clock.out_of_time:
        # lr: warm-up, then cosine, following iterations or the time budget, whichever is further along
        progress = max(iter_num / decay_iters, clock.share)
        step_lr = runtime.lr_at(progress, lr, min_lr, warmup / decay_iters, 1 / decay_iters)
        for group in optimizer.param_groups:
            group["lr"] = step_lr
        for micro in range(grad_accum):
            sync()
            t0 = time.time()
            batch = next(stream)
            sync()
            t_data += time.time() - t0
            if ddp:
                run.require_backward_grad_sync = micro == grad_accum - 1
            with autocast:
                loss, pred, flat = run(batch["video"], batch["mask"], with_flat=True)
            (loss / grad_accum).backward()
            loss_since += loss.detach() / grad_accum       # the step's mean loss, summed until the next row
            flat_since += flat / grad_accum
        if iter_num == 0 and master and not resume:             # the first batch of clips, side by side
            write_gif(clip_sheet(net.pixels(batch["video"][:8])), os.path.join(out_dir, "clips.gif"))
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        iter_num += 1
        clips_since += total_batch
        clock.tick()                               # elapsed time and any stop signal, the same on every rank
        last = iter_num == max_iters or clock.out_of_time or clock.signum > 0
        if master and (iter_num % log_interval == 0 or iter_num == 1 or last):
            steps = clips_since // total_batch
            loss_value, flat_value = loss_since.item() / steps, flat_since.item() / steps   # means since the last row
            now = time.time()                      # after .item(), which waits for the GPU
            rate, share = clips_since / (now - t_log), t_data / (now - t_log)
            print(f"iter {iter_num}/{max_iters}: loss {loss_value:.4f} (flat patches {flat_value:.4f}), "
                  f"lr {step_lr:.2e}, {rate:.1f} clips/s, data {share:.0%}, {clock.elapsed:.0f} s", flush=True)
            log.write([iter_num, repr(loss_value), step_lr, f"{rate:.2f}", f"{share:.3f}", f"{clock.elapsed:.1f}",
                       repr(flat_value)], loss=loss_value, clips_per_s=rate)
            last_logged = (loss_value, flat_value)
            t_log, t_data, clips_since = time.time(), 0.0, 0
            loss_since, flat_since = torch.zeros((), device=dev), torch.zeros((), device=dev)
        if master and (iter_num % image_every == 0 or (last and not clock.signum)):
            path = os.path.join(out_dir, f"recon_{iter_num:06d}.png")
            runtime.save_png(net.reconstruction(batch["video"], batch["mask"], pred.detach()), path)
            print(f"reconstruction: {path}", flush=True)
        if master and (iter_num % ckpt_every == 0 or last):     # temp file + rename: never half-written
            state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": iter_num,
                     "elapsed_s": clock.elapsed, "loader": loader.state_dict(), "rng": torch.get_rng_state(),
                     "model_args": asdict(model_args), "config": config}
            runtime.save_checkpoint(state, ckpt_path,
                                    keep=os.path.join(out_dir, f"ckpt_{iter_num:06d}.pt") if ckpt_keep else None)
            print(f"checkpoint: {ckpt_path} (iteration {iter_num})", flush=True)
        if last:
            break

    if master:
        log.close()
    if ddp:
        dist.destroy_process_group()
    if clock.signum:                               # the resume command on stderr, exit status 128 + signal
        runtime.exit_stopped(clock.signum, f"after iteration {iter_num} of {max_iters} ({clock.elapsed:.0f} s)",
                             ckpt_path, _argv, verbose=master)
    if master:
        why = ("" if iter_num == max_iters else f" (the {max_seconds:.0f} s budget ended it at iteration {iter_num} "
               f"of {max_iters}; the lr schedule followed the time)")
        print(f"done: {iter_num} iterations in {clock.elapsed:.0f} s{why}; outputs in {out_dir} "
              f"(ckpt.pt, log.csv, recon_*.png, clips.gif)", flush=True)
        if last_logged is not None:
            loss_value, flat_value = last_logged
            print(f"last logged loss {loss_value:.4f} against {flat_value:.4f} for flat patches on the same "
                  f"batches: {100 * abs(1 - loss_value / flat_value):.1f} % "
                  f"{'below' if loss_value < flat_value else 'above'} the trivial prediction", flush=True)


if __name__ == "__main__":
    if demo:                                       # keys given on the command line win
        _demo = DEMO["cuda" if _device.startswith("cuda") else "cpu"]
        _preset = {k: v for k, v in _demo.items() if k not in given_keys(_argv)}
        globals().update(_preset)
        config.update(_preset)
    main()
