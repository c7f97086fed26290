"""Engine self-check ("canary"): every fast engine proves on the user's machine that it renders the
reference renderer's clips before it renders any training clip.

The fused Triton kernel, the CPU renderer and the DALI engine (the rows of :mod:`pmg_dali.engines`) are
tested against the reference renderer (:mod:`pmg_dali.render`, the specification) in this project's CI,
but they run on
compilers, drivers and devices CI has never seen. A canary is a small batch -- a few clips of a few
frames at an odd, non-square size (19 x 35), every transform of the config drawn at least once,
with the config's mixing, padding, layout, dtype and normalisation -- rendered by the engine and by
the reference on the same device from the same textured images and the same program.

Automatic use (:func:`ensure_engine`, called by :class:`pmg_dali.PseudoMotion` -- and so by
:class:`pmg_dali.PseudoMotionLoader` -- and by :func:`pmg_dali.dali.render`): the first time an
engine other than the reference renders on a device, the canary runs for the features of that call
that select different engine code -- the config (at the canary size) and whether the source is uint8
at the output size or resized / float, still images or video. The result is kept for the process. While a canary runs,
torch uses one CPU thread (its tensors are tiny; the thread count is restored after). On a failure,
``renderer="auto"`` warns once (:class:`EngineCheckWarning`) and uses the reference renderer from
then on for that engine and device; an explicitly requested engine raises ``RuntimeError``. Setting
the environment variable ``PMG_DALI_SKIP_ENGINE_CHECK=1`` skips the automatic check.

Explicit use: :func:`check_engines` (``python -m pmg_dali check --device=cuda``) checks every
engine on a device and returns an :class:`EngineReport`.

Tolerance: outputs are compared in uint8 levels (1/255 of the [0, 1] range, after undoing the
ImageNet normalisation of float clips). An engine passes when every element is within its row's
``Tolerance.canary_levels`` (:mod:`pmg_dali.engines`; 2 levels for every engine) of the reference, plus one
unit in the last place of the output dtype at the element's value (two engines may round a value to
neighbouring representable numbers: one level for uint8 output, ``eps * |value|`` for float16 /
bfloat16). The rows' conformance tolerances, what CI establishes, are tighter; the canary's leave room
for another device's arithmetic, while a pixel moved by one position, a wrong channel, frame or layout,
an unwritten tile or a NaN differs by tens to hundreds of levels on the canary's images. The measured
differences and costs are in BENCHMARKS.md.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import threading
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import render as reference
from ._checks import check_device, env_flag
from .config import TRANSFORMS, PMGConfig
from . import engines
from .engines import CANARY_LEVELS, Engine
from .program import MotionProgram
from .sampling import sample_program

__all__ = ["check_engines", "ensure_engine", "EngineReport", "EngineResult", "EngineCheckWarning", "CHECKED",
           "SKIP_ENV", "TOLERANCE_LEVELS", "CANARY_SIZE", "canary_config", "canary_program", "clear_cache"]

CHECKED = tuple(e.name for e in engines.ENGINES if e.name != "reference")   # the engines checked against the reference
SKIP_ENV = "PMG_DALI_SKIP_ENGINE_CHECK"
TOLERANCE_LEVELS = CANARY_LEVELS      # the engines' default (pmg_dali.engines.Tolerance.canary_levels)
CANARY_SIZE = (19, 35)          # odd, H != W; partial tiles of the fused kernel on both axes
CANARY_FRAMES = 4
RESIZED_SIZE = (26, 47)         # source size of the resized / float input case (downscaled, antialiased)
_SEED = 20261203


class EngineCheckWarning(UserWarning, RuntimeWarning):
    """An engine failed its self-check and ``renderer="auto"`` fell back to the reference renderer
    (a ``UserWarning`` and a ``RuntimeWarning``: filters for either catch it)."""


@dataclass(frozen=True)
class EngineResult:
    """The check of one engine on one device.

    Fields:
        engine: the engine's name (:data:`CHECKED`).
        status: ``"ok"``, ``"failed"`` or ``"unavailable"`` (the engine cannot run on the device).
        max_diff: largest difference to the reference over every canary, in uint8 levels; None when
            nothing was compared, NaN when the engine wrote NaN.
        seconds: wall time of the engine's canary renders (the reference's excluded).
        detail: why it is unavailable, or what failed (the case and the error).
    """

    engine: str
    status: str
    max_diff: float | None = None
    seconds: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class EngineReport:
    """What :func:`check_engines` found on ``device``: one :class:`EngineResult` per engine.

    ``report.ok`` is False when an engine failed (unavailable engines are not failures);
    ``report["fused"]`` is one engine's result; ``report.as_dict()`` plain data (JSON-ready);
    ``str(report)`` a printable table.
    """

    device: str
    results: tuple[EngineResult, ...]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    def __getitem__(self, engine: str) -> EngineResult:
        for result in self.results:
            if result.engine == engine:
                return result
        raise KeyError(f"`engine` must be one of {tuple(r.engine for r in self.results)}, but got {engine!r}")

    def __contains__(self, engine: str) -> bool:
        return any(r.engine == engine for r in self.results)

    def as_dict(self) -> dict:
        """``{"device", "ok", "seconds", "engines": {engine: {"status", "max_diff", "seconds", "detail"}}}``."""
        return {"device": self.device, "ok": self.ok, "seconds": self.seconds,
                "engines": {r.engine: {k: v for k, v in dataclasses.asdict(r).items() if k != "engine"}
                            for r in self.results}}

    def __str__(self) -> str:
        lines = [f"pmg_dali engine check on {self.device} against the reference renderer "
                 f"(max diff in uint8 levels; tolerance {TOLERANCE_LEVELS:g} + rounding), {self.seconds:.2f} s",
                 f"{'engine':<7} {'status':<12} {'max diff':>9} {'time':>9}  detail"]
        for r in self.results:
            diff = "" if r.max_diff is None else f"{r.max_diff:.2f}"
            took = "" if r.status == "unavailable" else f"{1e3 * r.seconds:.1f} ms"
            lines.append(f"{r.engine:<7} {r.status:<12} {diff:>9} {took:>9}  {r.detail}".rstrip())
        lines.append("all available engines agree with the reference" if self.ok else
                     "FAILED: an engine renders different clips than the reference renderer on this machine; please "
                     "report this output with your GPU model and torch / Triton / DALI versions to the pmg_dali "
                     "maintainers")
        return "\n".join(lines)


# ---- the canary --------------------------------------------------------------------------------

def canary_config(config: PMGConfig) -> PMGConfig:
    """``config`` at the canary's size and length: every other field (transforms, intensities, mixing,
    padding, layout, dtype, normalisation, recursion) is kept."""
    return _canary_config(config, CANARY_SIZE, CANARY_FRAMES)


@functools.lru_cache(maxsize=64)
def _canary_config(config: PMGConfig, size: tuple[int, int], frames: int) -> PMGConfig:
    return dataclasses.replace(config, size=size, num_frames=min(config.num_frames, frames))


def canary_program(config: PMGConfig) -> MotionProgram:
    """A fixed program of ``max(4, len(config.transforms))`` clips in which every transform of
    ``config`` is drawn at least once: clips picked from a larger sampled batch, their cutmix and
    Mixup partners re-pointed to the next clip of the canary batch."""
    n = len(config.transforms)
    batch = max(4, n)
    big = sample_program(config, 16 * batch, generator=torch.Generator().manual_seed(_SEED))
    which = big.transform.tolist()
    rows = [which.index(k) for k in range(n) if k in which]
    rows += [i for i in range(len(which)) if i not in rows][:batch - len(rows)]
    rows = torch.tensor(rows)
    partner = (torch.arange(batch) + 1) % batch
    fields = {name: value[rows] if value.ndim and value.shape[0] == big.batch_size else value
              for name, value in big.tensors().items()}
    for name in ("paste_index", "mix_index"):
        if name in fields:
            fields[name] = partner.clone()
    return MotionProgram(**fields)


def canary_images(batch: int, size: tuple[int, int], device, dtype=torch.uint8, seed: int = 0) -> torch.Tensor:
    """(batch, 3, H, W) textured images: uniform noise at a third of the size, bicubically upsampled
    (edges of 50-150 levels per pixel, yet smooth enough that interpolation arithmetic does not
    dominate), uint8 or float in [0, 1]."""
    g = torch.Generator().manual_seed(_SEED + seed)
    coarse = torch.rand(batch, 3, (size[0] + 2) // 3, (size[1] + 2) // 3, generator=g)
    x = F.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    x = (x * 255).round()
    return (x.to(torch.uint8) if dtype == torch.uint8 else (x / 255).to(dtype)).to(device)


def _cases(config: PMGConfig | None) -> list[PMGConfig]:
    """The canary configs: ``config``'s, or with None a set covering every transform, layout, dtype,
    mixing mode and padding mode (what the command-line check runs)."""
    if config is not None:
        return [canary_config(config)]
    every = dict(transforms=TRANSFORMS, size=CANARY_SIZE, num_frames=CANARY_FRAMES)
    return [PMGConfig(**every, layout="BCTHW", dtype=torch.float32, mixup="frame", padding_mode="zeros"),
            PMGConfig(**every, layout="BTCHW", dtype=torch.uint8, mixup="videomix", padding_mode="border"),
            PMGConfig(**every, layout="BCTHW", dtype=torch.bfloat16, mixup=None, padding_mode="reflection"),
            PMGConfig(**every, layout="BTCHW", dtype=torch.float16, mixup="frame", mixup_per_frame=True,
                      normalize=False)]


def _inputs(cfg: PMGConfig, kind: str, op: str, batch: int, device) -> torch.Tensor:
    """The canary's images (B, 3, H, W), or for ``op="augment"`` video (B, 3, T, H, W): ``kind``
    ``"direct"`` is uint8 at the output size, ``"resized"`` float32 at another size."""
    direct = kind == "direct"
    size, dtype = (cfg.size, torch.uint8) if direct else (RESIZED_SIZE, torch.float32)
    if op == "render":
        return canary_images(batch, size, device, dtype)
    frames = [canary_images(batch, size, device, dtype, seed=1 + t) for t in range(cfg.num_frames)]
    return torch.stack(frames, dim=2)


def input_kind(x: torch.Tensor, cfg: PMGConfig) -> str:
    """``"direct"`` for uint8 input at the output size (the engines read its bytes), else
    ``"resized"`` (resized / converted to float first)."""
    return "direct" if x.dtype == torch.uint8 and tuple(x.shape[-2:]) == tuple(cfg.size) else "resized"


def _unit(x: torch.Tensor, cfg: PMGConfig) -> torch.Tensor:
    """Clips in ``cfg``'s dtype / layout -> float64 in uint8 levels (0-255, normalisation undone)."""
    x = x.double()
    if cfg.dtype == torch.uint8:
        return x
    if cfg.normalize:
        shape = [1] * x.ndim
        shape[1 if cfg.layout == "BCTHW" else 2] = 3
        x = x * torch.tensor(cfg.std, dtype=x.dtype, device=x.device).view(shape)
        x = x + torch.tensor(cfg.mean, dtype=x.dtype, device=x.device).view(shape)
    return x * 255


def compare(out, expect: torch.Tensor, cfg: PMGConfig, levels: float = TOLERANCE_LEVELS) -> tuple[float | None, str]:
    """``(max difference in uint8 levels, problem)`` of an engine's clips against the reference's;
    ``problem`` is empty when every element is within ``levels`` plus rounding (module docstring)."""
    if not isinstance(out, torch.Tensor):
        return None, f"returned {type(out).__name__}, not a tensor"
    if out.shape != expect.shape or out.dtype != expect.dtype or out.device != expect.device:
        return None, (f"returned {tuple(out.shape)} {out.dtype} on {out.device}, expected "
                      f"{tuple(expect.shape)} {expect.dtype} on {expect.device}")
    ref = _unit(expect, cfg)
    diff = (_unit(out, cfg) - ref).abs()
    allowed = torch.full_like(diff, levels)
    if cfg.dtype == torch.uint8:                        # one unit in the last place of the output
        allowed += 1
    elif cfg.dtype in (torch.float16, torch.bfloat16):  # (float32's is negligible)
        allowed += torch.finfo(cfg.dtype).eps * (ref - _unit(torch.zeros_like(expect), cfg)).abs()
    worst = float(diff.max()) if diff.numel() else 0.0
    bad = ~(diff <= allowed)                            # NaN fails
    if bool(bad.any()):
        return worst, f"{int(bad.sum())} of {diff.numel()} values beyond the tolerance"
    return worst, ""


def describe(cfg: PMGConfig, kind: str, op: str) -> str:
    """A short name of one canary case."""
    dtype = str(cfg.dtype).replace("torch.", "")
    return (f"{op} {kind} {dtype} {cfg.layout} mixup={cfg.mixup} padding={cfg.padding_mode} "
            f"transforms={'+'.join(cfg.transforms) if len(cfg.transforms) < len(TRANSFORMS) else 'all'}")


# ---- engines -----------------------------------------------------------------------------------

def unavailable(name: str, device: torch.device, cfg: PMGConfig | None = None) -> str:
    """Why engine ``name`` cannot run on ``device`` (for ``cfg``), or ``""`` when it can."""
    row = engines.engine(name)
    why = row.unavailable(device, cfg)
    if not why:
        try:
            row.function()
        except ImportError as exc:
            why = f"not installed ({exc})"
    return why


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Case:
    """One canary: config, input kind and operation; its inputs, program and the reference's clips
    on ``device``, made on first use."""

    def __init__(self, cfg: PMGConfig, kind: str, op: str, device: torch.device):
        self.cfg, self.kind, self.op, self.device = cfg, kind, op, device
        self._made = None

    def made(self) -> tuple[torch.Tensor, MotionProgram, torch.Tensor]:
        if self._made is None:
            program = canary_program(self.cfg)
            x = _inputs(self.cfg, self.kind, self.op, program.batch_size, self.device)
            draw = reference.render if self.op == "render" else reference.augment
            self._made = (x, program, draw(x, program, self.cfg))
        return self._made

    def run(self, engine: Engine, fn) -> tuple[float | None, str, float]:
        """``(max difference, problem, seconds)`` of ``fn`` (the engine's function) on this case."""
        x, program, expect = self.made()
        _sync(self.device)
        start = time.perf_counter()
        try:
            out = fn(x, program, self.cfg)
            _sync(self.device)
        except Exception as exc:  # noqa: BLE001 -- any error is the engine failing its check
            return None, f"raised {type(exc).__name__}: {exc}", time.perf_counter() - start
        seconds = time.perf_counter() - start
        diff, problem = compare(out, expect, self.cfg, engine.tolerance.canary_levels)
        return diff, problem, seconds


@contextlib.contextmanager
def _one_thread():
    """torch on one CPU thread meanwhile: the canary's tensors are tiny, and on a loaded host the
    thread pool's start-up and spin-waits cost 3-10x the canary itself (BENCHMARKS.md)."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def _check(engine: str, cases: list[_Case], fn=None) -> EngineResult:
    """Run ``engine`` (its function for each case's operation, looked up through its module now so that
    what is checked is what the module holds; or ``fn``) on every case it supports (torch on one CPU
    thread meanwhile); the worst difference and the first failure."""
    with _one_thread():
        return _check_cases(engines.engine(engine), cases, fn)


def _check_cases(row: Engine, cases: list[_Case], fn) -> EngineResult:
    device, engine = cases[0].device, row.name
    worst, seconds, failure, ran = None, 0.0, "", 0
    for case in cases:
        if unavailable(engine, device, case.cfg):
            continue
        try:
            function = row.function(case.op) if fn is None else fn
        except NotImplementedError:
            continue
        diff, problem, took = case.run(row, function)
        ran, seconds = ran + 1, seconds + took
        if diff is not None:
            worst = diff if worst is None or math.isnan(diff) or diff > worst else worst
        if problem and not failure:
            failure = f"{describe(case.cfg, case.kind, case.op)}: {problem}"
    if ran == 0:
        why = unavailable(engine, device) or unavailable(engine, device, cases[0].cfg) or "no case applies"
        return EngineResult(engine, "unavailable", detail=why)
    return EngineResult(engine, "failed" if failure else "ok", worst, seconds, failure)


def check_engines(device, config: PMGConfig | None = None) -> EngineReport:
    """Check every engine on ``device`` against the reference renderer on the same device.

    Each engine that can run there (``"cpu"``; ``"fused"`` on CUDA with Triton; ``"dali"`` when
    DALI is installed, its CPU operators on ``"cpu"``) renders the canary batch (module docstring)
    from uint8 images at the output size and from float images that need a resize (and the fused
    engine also real clips, :meth:`pmg_dali.PseudoMotion.augment`), and is compared with the
    reference's clips. Never raises for a failing engine: the report says which failed.

    Example::

        report = pmg_dali.check_engines("cuda")
        print(report)               # per engine: ok / failed / unavailable, max difference, time
        assert report.ok

    Args:
        device: where to check (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``).
        config: check the features of this :class:`~pmg_dali.PMGConfig` (at the canary's size);
            None: a set of configs covering every transform, layout, dtype, mixing and padding mode.
    Returns:
        an :class:`EngineReport` (``.ok``, ``[engine]``, printable).
    """
    device = check_device(device)
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
    if config is not None and not isinstance(config, PMGConfig):
        raise TypeError(f"`config` must be a PMGConfig or None, but got {type(config).__name__}")
    start = time.perf_counter()
    cases = [_Case(cfg, kind, op, device) for cfg in _cases(config) for kind in ("direct", "resized")
             for op in (("render", "augment") if cfg.recursion == "composed" else ("render",))]
    results = tuple(_check(name, cases) for name in CHECKED)
    return EngineReport(str(device), results, time.perf_counter() - start)


# ---- automatic use -----------------------------------------------------------------------------

_LOCK = threading.RLock()   # re-entrant: an engine may itself call PseudoMotion
_RESULTS: dict[tuple, EngineResult] = {}     # (engine, function, device, canary config, kind, op) -> result
_ABANDONED: set[tuple] = set()               # (engine, function, device): failed once, "auto" uses the reference


def clear_cache() -> None:
    """Forget every check made in this process (the next use of each engine checks again)."""
    with _LOCK:
        _RESULTS.clear()
        _ABANDONED.clear()


def skipped() -> bool:
    """True when the environment variable ``PMG_DALI_SKIP_ENGINE_CHECK`` is set to 1 (or true / yes / on;
    :func:`pmg_dali._checks.env_flag`)."""
    return env_flag(SKIP_ENV, False)


def ensure_engine(engine: str, x: torch.Tensor, config: PMGConfig, *, op: str = "render", auto: bool,
                  device=None) -> bool:
    """Whether ``engine`` may render ``x`` (images, or video for ``op="augment"``) under ``config``:
    runs its canary the first time this engine function, device, canary config and input kind meet
    in this process (module docstring), then answers from the cache. ``device``: where the engine
    renders (default ``x.device``; e.g. ``"cuda:0"`` for DALI's GPU operators fed host images).

    Returns True when the engine passed (or the check is skipped by ``PMG_DALI_SKIP_ENGINE_CHECK=1``,
    or the engine cannot run there at all: its own error then says why). On a failure: with ``auto``
    warns once per engine function and device (:class:`EngineCheckWarning`) and returns False (use
    the reference renderer); without ``auto`` raises ``RuntimeError``.
    """
    if skipped():
        return True
    device, fn = (x.device if device is None else torch.device(device)), engines.engine(engine).function(op)
    owner = (engine, fn, str(device))
    if auto and owner in _ABANDONED:
        return False
    cfg = canary_config(config)
    key = owner + (cfg, input_kind(x, config), op)
    with _LOCK:
        result = _RESULTS.get(key)
        if result is None:
            case = _Case(cfg, key[-2], op, device)
            result = _RESULTS[key] = _check(engine, [case], fn)
    if result.status != "failed":
        return True
    message = _failure_message(result, device)
    if not auto:
        raise RuntimeError(message + f" Use renderer='reference' (or set {SKIP_ENV}=1 to skip the check).")
    with _LOCK:
        first = owner not in _ABANDONED
        _ABANDONED.add(owner)
    if first:
        warnings.warn(message + " renderer='auto' uses the reference renderer from now on (correct, slower).",
                      EngineCheckWarning, stacklevel=2)
    return False


def _failure_message(result: EngineResult, device: torch.device) -> str:
    diff = "n/a" if result.max_diff is None else f"{result.max_diff:.2f}"
    levels = engines.engine(result.engine).tolerance.canary_levels
    return (f"pmg_dali: the {result.engine!r} engine failed its self-check on {device}: max difference to "
            f"the reference renderer {diff} uint8 levels (tolerance {levels:g} + rounding) -- "
            f"{result.detail}. "
            f"Please report it to the pmg_dali maintainers with the output of "
            f"`python -m pmg_dali check --device={device}` and your GPU, driver, torch, Triton and DALI versions.")
