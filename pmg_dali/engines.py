"""The rendering engines, one row each: where their functions live, the devices they run on, their place
in ``renderer="auto"``'s choice and their tolerance against the reference renderer.

Every part of the package that names engines reads this table: :class:`~pmg_dali.PseudoMotion` and
:class:`~pmg_dali.PseudoMotionLoader` (their ``renderer=`` vocabulary: ``"auto"`` and the names below),
the self-check (:mod:`pmg_dali.engine_check`), ``python -m pmg_dali bench|check`` and the conformance
suite. Adding an engine is its module plus one row here.

Functions are named as ``"module:attribute"`` and imported on first use, so that listing the engines
imports none of them (Triton and DALI take seconds to import, and may be absent). Each render function
has the signature of :func:`pmg_dali.render.render` -- ``(images, program, config) -> clips``, the
program moved to the images' device by the function -- and runs no self-check: that is the caller's
(:func:`pmg_dali.engine_check.ensure_engine`).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass

import torch

from ._checks import check_choice, parse_device
from .config import check_config, parse_size

__all__ = ["Engine", "Tolerance", "ENGINES", "NAMES", "RENDERERS", "engine", "auto_engine", "CANARY_LEVELS"]

CANARY_LEVELS = 2.0     # the self-check's default bound, in uint8 levels (Tolerance.canary_levels)
OPS = ("render", "augment")    # what an engine may do: still images, real clips


@dataclass(frozen=True)
class Tolerance:
    """How far an engine's clips may be from the reference renderer's, on the same device.

    Fields:
        atol: largest difference of float output, in [0, 1] pixel units (divided by the smallest
            ImageNet std for normalised output), plus one unit in the last place of float16 / bfloat16;
            0: bit-identical.
        uint8_levels, uint8_fraction: uint8 output differs by at most this many levels, in at most this
            fraction of the values (a value near a rounding tie).
        canary_levels: the self-check's bound on a machine CI has never seen, in uint8 levels of every
            element, plus one unit in the last place of the output dtype: room for another device's
            arithmetic (fused multiply-add, fast reciprocals), while a misplaced pixel, channel, frame
            or tile differs by tens to hundreds of levels on the canary's images.
    """

    atol: float
    uint8_levels: int
    uint8_fraction: float
    canary_levels: float = CANARY_LEVELS


@dataclass(frozen=True)
class Engine:
    """One rendering engine.

    Fields:
        name: its ``renderer=`` name.
        render: ``"module:function"`` rendering still images, ``(images, program, config) -> clips``.
        augment: the same for real clips (``PseudoMotion.augment``); None: the engine draws still images
            only, and ``augment`` uses the reference renderer.
        devices: the torch device types it renders on.
        tolerance: its :class:`Tolerance` against the reference renderer.
        requires: the module it needs beyond torch (None: torch alone); without it the engine is
            unavailable and ``"auto"`` passes it over.
        auto: the device types on which ``"auto"`` may pick it; ``"auto"`` takes the first row (in
            table order) that may render there, else the reference renderer.
        auto_min_pixels: ``"auto"`` picks it only for frames of at least this many pixels (a fixed cost
            per frame that smaller frames do not repay: BENCHMARKS.md).
        takes_out: its functions accept ``out=`` (a preallocated clip tensor, filled and returned).
        interpreter: an environment variable that, set to 1, lets it run on the CPU too (Triton's
            interpreter: slow, for tests).
        recursions: the ``PMGConfig.recursion`` values it renders.
    """

    name: str
    render: str
    augment: str | None
    devices: tuple[str, ...]
    tolerance: Tolerance
    requires: str | None = None
    auto: tuple[str, ...] = ()
    auto_min_pixels: int = 0
    takes_out: bool = False
    interpreter: str | None = None
    recursions: tuple[str, ...] = ("composed", "iterative")

    def function(self, op: str = "render"):
        """The engine's function for ``op`` (``"render"`` or ``"augment"``), looked up through its module
        now (what the module holds at this moment: a test may replace it). Raises ImportError when the
        engine's package is missing and ``NotImplementedError`` when it has no such operation."""
        if not self.has(op):
            raise NotImplementedError(f"the {self.name!r} engine has no {op!r}")
        module, attribute = getattr(self, op).split(":")
        return getattr(importlib.import_module(module), attribute)

    def has(self, op: str = "render") -> bool:
        """Whether it does ``op``: ``"render"`` (every engine) or ``"augment"``."""
        return getattr(self, check_choice("op", op, OPS)) is not None

    def renders(self, config, name: str = "config") -> bool:
        """Whether it renders ``config`` (a :class:`~pmg_dali.PMGConfig`, the argument ``name``): its
        recursion is one of :attr:`recursions`."""
        return check_config(config, name).recursion in self.recursions

    def check_recursion(self, config, name: str = "config") -> None:
        """ValueError unless it renders ``config.recursion`` (:attr:`recursions`); errors name the
        argument ``name``."""
        if not self.renders(config, name):
            raise ValueError(f"`{name}.recursion` must be {' or '.join(map(repr, self.recursions))} for "
                             f"the {self.name!r} engine, but got {config.recursion!r}")

    def installed(self) -> bool:
        """Whether the module it needs (:attr:`requires`) can be imported."""
        return self.requires is None or _found(self.requires)

    def runs_on(self, device) -> bool:
        """Whether it renders on ``device`` (its type), counting :attr:`interpreter`."""
        device = parse_device(device)
        if device.type in self.devices:
            return True
        return device.type == "cpu" and self.interpreter is not None and os.environ.get(self.interpreter) == "1"

    def unavailable(self, device, config=None) -> str:
        """Why it cannot render on ``device`` (under ``config``, a :class:`~pmg_dali.PMGConfig`), or ``""``
        when it can."""
        device = parse_device(device)
        if not self.runs_on(device):
            where = " or ".join("a CUDA device" if d == "cuda" else f"a {d} device" for d in self.devices)
            extra = f" (on the CPU through {self.interpreter}=1)" if self.interpreter else ""
            return f"needs {where}{extra}, not {device.type}"
        if config is not None and not self.renders(config):
            return f"needs recursion in {self.recursions}"
        if not self.installed():
            return f"needs {self.requires}, which is not installed"
        return ""


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:       # a parent package is missing
        return False


# Tolerances: what each engine's conformance cases establish (tests/test_conformance.py). The CPU
# renderer is the reference's arithmetic but for colour matrices; the fused kernel differs by float
# rounding (reciprocals, fused multiply-add); DALI by its interpolation arithmetic.
ENGINES: tuple[Engine, ...] = (
    Engine("reference", "pmg_dali.render:render", "pmg_dali.render:augment", ("cpu", "cuda"),
           Tolerance(0.0, 0, 0.0)),
    Engine("cpu", "pmg_dali.cpu_render:render_cpu", None, ("cpu",), Tolerance(1e-5, 1, 0.01),
           auto=("cpu",), auto_min_pixels=48 * 48, takes_out=True),
    Engine("fused", "pmg_dali.fused:render_fused", "pmg_dali.fused:augment_fused", ("cuda",),
           Tolerance(5e-5, 1, 0.01), requires="triton", auto=("cuda",), takes_out=True,
           interpreter="TRITON_INTERPRET"),
    Engine("dali", "pmg_dali.dali:render_images", None, ("cpu", "cuda"), Tolerance(2 / 255, 1, 0.01),
           requires="nvidia.dali", recursions=("composed",)),
)
NAMES = tuple(e.name for e in ENGINES)
RENDERERS = ("auto", *NAMES)          # the ``renderer=`` vocabulary
_BY_NAME = {e.name: e for e in ENGINES}


def engine(name: str) -> Engine:
    """The row of engine ``name``; ValueError naming the known ones otherwise."""
    return _BY_NAME[check_choice("engine", name, NAMES)]


def auto_engine(device: torch.device, size: tuple[int, int], op: str = "render") -> str:
    """The engine ``renderer="auto"`` picks for ``op`` on ``device`` for frames of ``size``: the first row
    whose :attr:`Engine.auto` holds the device type, that is installed, has ``op`` and whose
    :attr:`Engine.auto_min_pixels` the frames reach; else ``"reference"``."""
    device, op, (height, width) = parse_device(device), check_choice("op", op, OPS), parse_size(size)
    for row in ENGINES:
        if (device.type in row.auto and row.installed() and row.has(op)
                and height * width >= row.auto_min_pixels):
            return row.name
    return "reference"
