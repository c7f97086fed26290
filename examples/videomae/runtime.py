"""What pretrain.py and finetune.py share: the lr rule, safe checkpoints, stopping on a signal, CPU threads
and the GIF writer.

- ``peak_lr``: VideoMAE's linear rule ``base_lr * batch / 256`` from a total batch of 256 up (the recipe
  runs at 512-2048), and ``base_lr`` itself below 256. Scaling down linearly leaves a small-batch run at
  chance (batch 16 would pre-train at ``base_lr / 16`` = 9.4e-6; even the square-root rule's ``base_lr / 4``
  had not reached the flat-patch loss after 200 iterations; examples/videomae/README.md has the curves).
- ``load_checkpoint`` reads with ``torch.load(weights_only=True)``: a checkpoint is tensors and plain
  Python values only, and one that holds anything else (a pickled object, which could run code) is refused.
  ``save_checkpoint`` writes a temporary file and renames it, so a checkpoint is never half-written.
- ``SignalStop``: SIGTERM / SIGINT ask the loop to stop after the current step (a second one stops at once).
"""
from __future__ import annotations

import math
import os
import pickle
import signal
import sys
import time
import zipfile

import numpy as np
import torch
from configurator import choice, device_rule, integer, number

# the domains of the keys pretrain.py and finetune.py share (configurator.check; each adds its own)
SHARED_RULES = dict(model=choice("vit_tiny", "vit_small", "vit_base"), img_size=integer(1), num_frames=integer(1),
                    patch_size=integer(1), tubelet_size=integer(1), embed_dim=integer(1, none=True),
                    depth=integer(1, none=True), num_heads=integer(1, none=True), batch_size=integer(1),
                    base_lr=number(0, low_open=True), weight_decay=number(0), device=device_rule(),
                    dtype=choice("bfloat16", "float16", "float32"), threads=integer(0),
                    seed=integer(0, 2 ** 63 - 1))
RECIPE_BATCH = 256      # base_lr is the lr at this total batch and below; the linear rule holds above


def peak_lr(base_lr: float, total_batch: int) -> float:
    """``base_lr * total_batch / 256`` for a total batch >= 256, ``base_lr`` below (never less)."""
    return base_lr * max(total_batch, RECIPE_BATCH) / RECIPE_BATCH


def lr_at(progress: float, peak: float, low: float, warmup: float, step: float) -> float:
    """Linear warm-up to ``peak`` over the first ``warmup`` of the run, then cosine decay to ``low`` at 1.

    ``progress`` in [0, 1] is the share of the run done before this step; ``step`` is one iteration's
    share (warm-up step k of n gets ``peak * (k + 1) / (n + 1)``).
    """
    if progress < warmup:
        return peak * (progress + step) / (warmup + step)
    frac = min(1.0, (progress - warmup) / max(step, 1.0 - warmup))
    return low + 0.5 * (peak - low) * (1.0 + math.cos(math.pi * frac))


def load_checkpoint(path: str, flag: str) -> dict:
    """``torch.load(path, weights_only=True)`` on CPU; a missing, foreign, truncated, refused or
    unreadable file is a ``SystemExit`` saying which."""
    if not os.path.isfile(path):
        raise SystemExit(f"{flag}: no checkpoint at {path!r}")
    if not zipfile.is_zipfile(path):                       # torch.save writes a zip archive
        raise SystemExit(f"{flag}: {path!r} is not a PyTorch checkpoint: not a zip archive as torch.save "
                         f"writes (another kind of file, or one cut short)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SystemExit(f"{flag}: refusing to load {path!r}: it holds more than tensors and plain Python "
                         f"values, and unpickling it could run code ({reason})") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise SystemExit(f"{flag}: cannot read the checkpoint {path!r} ({type(err).__name__}: {err})") from None


def check_resumable(state: dict, model_args: dict, path: str, keys: tuple[str, ...]) -> None:
    """``state`` holds ``keys`` and was written for ``model_args``: else a one-line ``SystemExit``
    naming the file and what differs (rather than a state-dict mismatch from torch)."""
    if not isinstance(state, dict) or set(keys) - set(state) or not isinstance(state["model_args"], dict):
        missing = sorted(set(keys) - set(state)) if isinstance(state, dict) else list(keys)
        raise SystemExit(f"--resume=True: {path!r} is not a checkpoint of this script "
                         f"({'no ' + ', '.join(missing) if missing else 'its model_args are not a dict'})")
    differ = {k: (state["model_args"].get(k), v) for k, v in model_args.items() if state["model_args"].get(k) != v}
    if differ:
        said = ", ".join(f"{k}={was!r} there, {now!r} here" for k, (was, now) in differ.items())
        raise SystemExit(f"--resume=True: {path!r} holds another model ({said}); resume with its settings "
                         f"or start a new --out_dir")


def save_checkpoint(state: dict, path: str) -> None:
    """``torch.save`` to ``path + ".tmp"``, then ``os.replace``: readers see the old file or the new one."""
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


class SignalStop:
    """Turns SIGTERM / SIGINT into a request to stop: ``signum`` is set, the loop finishes its step,
    writes a checkpoint and exits with ``exit_code``. A second signal raises ``KeyboardInterrupt`` at once."""

    def __init__(self, verbose: bool = True):
        self.signum, self.verbose = 0, verbose
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.handle)

    def handle(self, signum, frame) -> None:
        if self.signum:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
        self.signum = signum
        if self.verbose:
            print(f"\n{signal.Signals(signum).name}: finishing this step, then writing a checkpoint "
                  "(send it again to stop at once)", file=sys.stderr, flush=True)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def resume_command(script: str, argv: list[str]) -> str:
    """The command line that continues this run: the same arguments with ``--resume=True``."""
    kept = [a for a in argv if not a.startswith("--resume=")]
    return " ".join([sys.executable, script, *kept, "--resume=True"])


def busy_cores(seconds: float = 0.25) -> float:
    """How many of the cores this process may run on other processes keep busy now: their busy time
    over ``seconds`` (the per-CPU lines of ``/proc/stat``, while this process waits), in cores; 0
    where ``/proc/stat`` cannot be read."""
    mine = {f"cpu{k}" for k in (os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else ())}

    def sample() -> tuple[float, float]:
        total = idle = 0.0
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name in mine:          # user nice system idle iowait irq softirq steal (guest: in user)
                    values = [float(v) for v in fields[:8]]
                    total, idle = total + sum(values), idle + values[3] + values[4]   # idle + iowait
        return total, idle
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    if total1 <= total0:
        return 0.0
    return len(mine) * max(0.0, 1 - (idle1 - idle0) / (total1 - total0))


def cpu_threads(num_workers: int = 0, requested: int = 0) -> int:
    """Set and return the torch thread count of a CPU run.

    ``requested`` > 0 wins; else ``OMP_NUM_THREADS`` if set; else the usable cores minus the DataLoader
    worker processes minus the cores other processes keep busy at start-up (:func:`busy_cores`,
    rounded), at least 1. Torch's threads wait for each other at every operation: one of them sharing
    its core with a busy process slows all of them (2 threads on 2 cores beside one busy process ran
    the demo at 31 clips/s, 1 thread at 67; quiet, 2 threads ran at 100). A process that starts later
    is not seen; set ``--threads`` then.
    """
    if requested > 0:
        threads = requested
    elif os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores - num_workers - round(busy_cores()))
    torch.set_num_threads(threads)
    return threads


def save_gif(frames: np.ndarray, path: str, ms_per_frame: int = 120) -> None:
    """uint8 (T, H, W, 3) -> an animated GIF with one palette for all frames (no colour flicker):
    :func:`pmg_dali.__main__.write_gif`, the writer of ``python -m pmg_dali demo``'s preview."""
    from pmg_dali.__main__ import write_gif
    write_gif(frames, path, ms_per_frame)
