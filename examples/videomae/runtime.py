"""The plumbing pretrain.py and finetune.py share, so that their own text is the training: the lr rule,
safe checkpoints, stopping on a signal or at a time budget, torchrun set-up, the CSV log, CPU threads and the
reconstruction PNG.

- ``peak_lr``: VideoMAE's linear rule ``base_lr * batch / 256`` from a total batch of 256 up (the recipe
  runs at 512-2048), and ``base_lr`` itself below 256. Scaling down linearly leaves a small-batch run at
  chance (batch 16 would pre-train at ``base_lr / 16`` = 9.4e-6; even the square-root rule's ``base_lr / 4``
  had not reached the flat-patch loss after 200 iterations; examples/videomae/README.md has the curves).
- ``load_checkpoint`` reads with ``torch.load(weights_only=True)``: a checkpoint is tensors and plain
  Python values only, and one that holds anything else (a pickled object, which could run code) is refused.
  ``save_checkpoint`` writes a temporary file and renames it, so a checkpoint is never half-written.
- ``SignalStop``: SIGTERM / SIGINT ask the loop to stop after the current step (a second one stops at once);
  ``Clock`` adds the time budget and agrees on both across ranks; ``exit_stopped`` prints the command that
  resumes and exits with status 128 + the signal number.
- ``CsvLog``: ``log.csv`` (and TensorBoard); on resume it drops the rows logged after the checkpoint.
"""
from __future__ import annotations

import csv
import math
import os
import pickle
import shutil
import signal
import sys
import time
import zipfile

import torch
import torch.distributed as dist
from configurator import choice, device_rule, integer, number
from model import SIZES

# the domains of the keys pretrain.py and finetune.py share (configurator.check; each adds its own)
SHARED_RULES = dict(model=choice(*SIZES), img_size=integer(1), num_frames=integer(1),
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
        raise SystemExit(f"{flag}: refusing to load {path!r}: it holds more than tensors and plain Python "
                         f"values, and unpickling it could run code ({_first_line(err, type(err).__name__)})") from None
    except Exception as err:    # a damaged archive fails in many ways: RuntimeError, EOFError, IndexError, ...
        raise SystemExit(f"{flag}: cannot read the checkpoint {path!r} "
                         f"({type(err).__name__}: {_first_line(err, 'empty')})") from None


def _first_line(err: BaseException, default: str) -> str:
    """The first line of ``err``'s message, or ``default`` when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else default


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


def save_checkpoint(state: dict, path: str, keep: str | None = None) -> None:
    """``torch.save`` to ``path + ".tmp"``, then ``os.replace``: readers see the old file or the new one.
    ``keep``: also copy it there (a checkpoint kept for good)."""
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)
    if keep:
        shutil.copyfile(path, keep)


class SignalStop:
    """Turns SIGTERM / SIGINT into a request to stop: ``signum`` is set, the loop finishes its step,
    writes a checkpoint and exits (:func:`exit_stopped`). A second signal raises ``KeyboardInterrupt`` at once."""

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


class Clock:
    """Training time against the ``max_seconds`` budget (0: none), and SIGTERM / SIGINT (a
    :class:`SignalStop`, installed at construction), agreed by every rank.

    ``start(elapsed)`` starts counting (a resumed run from its checkpoint's ``elapsed_s``); ``tick()``,
    after each iteration, reads the time and any signal and under DDP takes the maxima over the ranks, so
    that every rank takes the same lr and stops at the same iteration.
    """

    def __init__(self, max_seconds: float, ddp: bool = False, device: str = "cpu", verbose: bool = True):
        self.stop = SignalStop(verbose)
        self.max_seconds, self.ddp, self.device = max_seconds, ddp, device
        self.start(0.0)

    def start(self, elapsed: float = 0.0) -> None:
        self.elapsed, self.signum, self.t_start = elapsed, 0, time.time() - elapsed

    def tick(self) -> None:
        elapsed, signum = time.time() - self.t_start, self.stop.signum
        if self.ddp:
            flags = torch.tensor([elapsed, float(signum)], device=self.device, dtype=torch.float64)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            elapsed, signum = float(flags[0]), int(flags[1])
        self.elapsed, self.signum = elapsed, signum

    @property
    def share(self) -> float:
        """The share of the time budget spent (0 without a budget)."""
        return self.elapsed / self.max_seconds if self.max_seconds > 0 else 0.0

    @property
    def out_of_time(self) -> bool:
        return self.max_seconds > 0 and self.elapsed >= self.max_seconds


def resume_command(script: str, argv: list[str]) -> str:
    """The command line that continues this run: the same arguments with ``--resume=True``."""
    kept = [a for a in argv if not a.startswith("--resume=")]
    return " ".join([sys.executable, script, *kept, "--resume=True"])


def exit_stopped(signum: int, where: str, ckpt_path: str, argv: list[str], verbose: bool = True):
    """After a stop signal and its checkpoint: say where the run stopped and how to resume it (on stderr,
    with ``verbose``), then exit with status 128 + ``signum``."""
    if verbose:
        print(f"stopped by {signal.Signals(signum).name} {where}; checkpoint {ckpt_path}. Resume with:\n  "
              f"{resume_command(sys.argv[0], argv)}", file=sys.stderr, flush=True)
    sys.exit(128 + signum)


def run_device(device: str) -> str:
    """Where ``--device`` runs: ``"auto"`` is cuda where torch sees a GPU, else cpu; any other value as given."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def setup_distributed(device: str) -> tuple[bool, int, int, str]:
    """torchrun sets RANK / LOCAL_RANK / WORLD_SIZE: join its process group (NCCL on CUDA, else gloo) and
    return (ddp, rank, world_size, device) with this rank's GPU; without torchrun (False, 0, 1, device)."""
    if int(os.environ.get("RANK", -1)) == -1:
        return False, 0, 1, device
    cuda = torch.cuda.is_available() and device != "cpu"
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
    return True, dist.get_rank(), dist.get_world_size(), device


def trim_log(path: str, iter_num: int) -> None:
    """Keep the header and the rows of the CSV log ``path`` up to ``iter_num``."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= iter_num]
    with open(path + ".tmp", "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(path + ".tmp", path)


class CsvLog:
    """A CSV log with a ``columns`` header, the first column the iteration, and TensorBoard scalars in the
    folder ``tensorboard`` (if given; needs ``pip install tensorboard``).

    With ``resume_at`` an existing log is kept up to that iteration (:func:`trim_log`: rows logged after the
    checkpoint a run resumes from would be logged again) and appended to; otherwise the log starts afresh.
    """

    def __init__(self, path: str, columns: list[str], resume_at: int | None = None, tensorboard: str | None = None):
        fresh = resume_at is None or not os.path.exists(path)
        if not fresh:
            trim_log(path, resume_at)
        self.file = open(path, "w" if fresh else "a", newline="")
        self.csv, self.tb = csv.writer(self.file), None
        if fresh:
            self.csv.writerow(columns)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(tensorboard)

    def write(self, row: list, **scalars: float) -> None:
        """One CSV row (flushed), and ``scalars`` to TensorBoard at the row's iteration."""
        self.csv.writerow(row)
        self.file.flush()
        if self.tb is not None:
            for name, value in scalars.items():
                self.tb.add_scalar(name, value, row[0])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


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


def save_png(rows: torch.Tensor, path: str, max_frames: int = 8, min_side: int = 96) -> None:
    """(R, 3, T, H, W) in [0, 1] -> one PNG, R rows of up to ``max_frames`` frames, upscaled if small."""
    from PIL import Image

    from pmg_dali.gif import clip_sheet

    T = rows.shape[2]
    picks = torch.linspace(0, T - 1, min(T, max_frames)).round().long()
    # each row's picked frames as one-frame clips side by side: a one-frame sheet
    image = Image.fromarray(clip_sheet([r[:, picks].transpose(0, 1).unsqueeze(2) for r in rows])[0])
    zoom = max(1, math.ceil(min_side / rows.shape[-1]))
    image.resize((image.width * zoom, image.height * zoom), Image.NEAREST).save(path)
