"""Every rendering engine against the reference renderer (the specification), in one parametrised suite.

Modelled on torchvision v2's ``check_kernel``: each engine of :data:`pmg_dali.engines.ENGINES` renders the
same :class:`~pmg_dali.MotionProgram` from the same inputs as :func:`pmg_dali.render.render` (and
:func:`pmg_dali.render.augment` for engines that augment real clips) and must return the same clips
within the tolerance of its row (:class:`pmg_dali.engines.Tolerance`). The same call also checks the
contract: an engine that accepts ``out=`` gets a buffer poisoned with NaN (uint8: 255) and must return it,
every element overwritten; an engine without ``out=`` returns a contiguous tensor of the right shape,
dtype, layout and device, without NaN; the inputs (images and program) are not modified. The reference
row checks only that contract (comparing it with itself could not fail). Further checks per engine: a
clip rendered alone equals its row of the batch (programs without a cross-clip partner: no Mixup, no
cutmix), an empty batch gives an empty clip tensor, the literal recursion, bad inputs and ``out=``
buffers refused with the argument named, the engine's own options (the fused kernel's tile and uint8
planes), its self-check (:mod:`pmg_dali.engine_check`) passing, and an engine with its own resize
resizes like the reference inside the frame.

Adding an engine is one more row in :mod:`pmg_dali.engines` (and here, where it has them, its call
options and own resize); adding a transform to ``pmg_dali.TRANSFORMS`` adds its cases to every engine.

The grid (B = 3 clips of T = 3 frames at 13 x 18: odd, H != W, not a multiple of any tile):

- every transform x every engine, one transform per config, strong motions (``framing="whole"``: the
  view leaves the image) cycling through layouts, output dtypes, padding modes and mixing modes;
- features x every engine, all transforms per config: a covering array over layout, output (uint8,
  float32 normalised or raw, float16, bfloat16), view (``framing="whole"`` with each padding mode, or
  ``"inside"``), mixing (none, frame Mixup per clip or per frame, VideoMix), source (uint8 or float at
  the output size, uint8 or float64 downscaled, float16 upscaled, a non-contiguous uint8 view) and batch
  (1: a clip is its own partner, or 3). Fast engines get every pair of values (``covering=2``); the
  fused Triton kernel, which without a GPU runs through Triton's interpreter (slow), gets every value once;
- a larger batch, the literal recursion, real clips (``augment``: four cases for the engines that have it);
- batched equals per-clip and the empty batch, for each operation of each engine that has them.

uint8 output may differ by one level in under 1 % of the values (a value near a rounding tie); float16 /
bfloat16 output by one unit in the last place. DALI resizes with its own ``fn.resize``, which differs from
torch's at the outermost pixel ring of a downscaled image: its clips from resized sources are checked
against the reference drawn from DALI's resized source, and the resize itself by :func:`test_own_resize`.

The fused engine runs on CUDA in this process when a GPU is present; without one,
:func:`test_fused_engine_through_the_interpreter` runs all its cases of this module in one subprocess
with ``TRITON_INTERPRET=1`` (which must be set before Triton is imported). In the interpreter it draws
with one 16 x 32 tile (a partial tile on both axes); on CUDA with 8 x 16 tiles (several, partial ones last).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from itertools import combinations, product
from pathlib import Path
from typing import Callable

import pytest
import torch

from conftest import boxes_past_pixel_centres
from pmg_dali import TRANSFORMS, MotionProgram, PMGConfig, engines
from pmg_dali.render import augment, render, to_float_images
from pmg_dali.rules import box_mask
from pmg_dali.sampling import sample_program
from pmg_dali.transforms import COLOR_TRANSFORMS

B, T, SIZE = 3, 3, (13, 18)
SOURCE_SIZES = {"down": (SIZE[0] + 6, SIZE[1] + 9), "up": (9, 11)}   # resized to SIZE by the engine
WILD = dict(affine_degrees=25.0, affine_translate=0.2, affine_scale=(0.85, 1.15), perspective_distortion=0.1,
            zoom_scale=(0.85, 1.15), sliding_window_speed=(0.1, 0.2), cutmix_speed=(0.1, 0.2))
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = importlib.util.find_spec("triton") is not None
ULP = {torch.float32: 0.0, torch.float16: 2 ** -10, torch.bfloat16: 2 ** -7}   # relative spacing of the dtype


# ---- engines ------------------------------------------------------------------------------------

FUSED_BLOCK = (16, 32) if INTERPRET or not HAS_CUDA else (8, 16)


def _dali_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """DALI's own resize of ``images`` (B, 3, H, W) to ``size``: float32 in [0, 1], read back through the
    DALI engine as the frame of an identity program (sampled at pixel centres: the source itself)."""
    cfg = PMGConfig(num_frames=1, size=size, transforms=("identity",), mixup=None, normalize=False)
    program = sample_program(cfg, images.shape[0], generator=torch.Generator().manual_seed(0))
    return engines.engine("dali").function()(images, program, cfg)[:, :, 0]


@dataclass(frozen=True)
class Engine:
    """One row of :data:`pmg_dali.engines.ENGINES` as this suite drives it; its tolerance, operations and
    ``out=`` support are the row's.

    Fields:
        row: the engine's row.
        device: where its inputs and output live here.
        options: keyword arguments every call gets (the fused kernel's tile).
        variants: further keyword arguments its own options take, each checked on a case of its own.
        resize: the engine's own resize ``(images, size) -> float32 in [0, 1]`` where it is not the
            reference's; clips are then checked against the reference drawn from that resized source,
            and :func:`test_own_resize` checks the resize itself. None: the reference's resize.
        covering: 2 = every pair of feature values, 1 = every value once (an engine slow on this machine).
    """

    row: engines.Engine
    device: str
    options: dict = dataclasses.field(default_factory=dict)
    variants: tuple[dict, ...] = ()
    resize: Callable | None = None
    covering: int = 2

    name = property(lambda self: self.row.name)
    tolerance = property(lambda self: self.row.tolerance)

    @property
    def unavailable(self) -> str:
        """Why the engine cannot run anywhere in this environment ("" when it can)."""
        return "" if self.row.installed() else f"needs {self.row.requires}"

    def has(self, op: str) -> bool:
        return self.row.has(op)

    def __call__(self, op: str, x, program, cfg, out=None, **options):
        fn = self.row.function(op)
        if self.row.takes_out:
            return fn(x, program, cfg, out=out, **{**self.options, **options})
        return fn(x, program, cfg, **options)

    def __repr__(self) -> str:
        return self.name


FUSED_HERE = HAS_CUDA and not INTERPRET
ENGINES = [Engine(row, "cpu") for row in engines.ENGINES if row.name in ("reference", "cpu")] + [
    Engine(engines.engine("fused"), "cuda" if FUSED_HERE else "cpu", options=dict(block=FUSED_BLOCK),
           variants=(dict(block=(8, 8)), dict(pack=False)), covering=2 if FUSED_HERE else 1),
    Engine(engines.engine("dali"), "cuda" if HAS_CUDA else "cpu", resize=_dali_resize),
]
assert [e.name for e in ENGINES] == list(engines.NAMES), "an engine of pmg_dali.engines is missing here"


def runs_here(engine: Engine) -> bool:
    """The fused engine runs in this process on CUDA or through the interpreter; without either its
    cases run in :func:`test_fused_engine_through_the_interpreter`."""
    return engine.name != "fused" or HAS_CUDA or INTERPRET


# ---- cases --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One configuration and its inputs: ``source`` is ``"<dtype>"`` at the output size,
    ``"<dtype> down|up"`` (resized by the engine) or ``"<dtype> view"`` (a non-contiguous view); ``view``
    is ``"inside"`` or ``"whole <padding_mode>"`` (strong motions leaving the image); ``mixup``
    ``"frame/t"`` is frame Mixup with a lambda per frame."""

    transforms: tuple[str, ...] = TRANSFORMS
    layout: str = "BCTHW"
    output: str = "float32"            # uint8 | float32 | float32 raw (not normalised) | float16 | bfloat16
    view: str = "inside"
    mixup: str | None = None
    source: str = "uint8"
    batch: int = B
    recursion: str = "composed"
    variant: int | None = None        # index into the engine's Engine.variants
    seed: int = 0

    @property
    def config(self) -> PMGConfig:
        framing, *padding = self.view.split()
        strong = WILD if framing == "whole" else {}
        return PMGConfig(num_frames=T, size=SIZE, transforms=self.transforms, layout=self.layout,
                         dtype=getattr(torch, self.output.split()[0]), normalize="raw" not in self.output,
                         framing=framing, padding_mode=padding[0] if padding else "zeros",
                         mixup=None if self.mixup is None else self.mixup.split("/")[0],
                         mixup_per_frame=self.mixup == "frame/t", recursion=self.recursion, **strong)

    def inputs(self, video: bool = False) -> torch.Tensor:
        """Uniform noise (the hardest input for interpolation): (batch, 3, H, W), or (batch, 3, T, H, W)."""
        dtype, *how = self.source.split()
        size = SOURCE_SIZES[how[0]] if how and how[0] in SOURCE_SIZES else SIZE
        g = torch.Generator().manual_seed(1000 + self.seed)
        x = torch.randint(0, 256, (self.batch, 3, *((T,) if video else ()), *size), dtype=torch.uint8, generator=g)
        x = x if dtype == "uint8" else (x.double() / 255).to(getattr(torch, dtype))
        if how == ["view"]:     # not contiguous: the columns 2 .. W + 1 of a wider tensor
            wide = torch.zeros(*x.shape[:-1], x.shape[-1] + 5, dtype=x.dtype)
            wide[..., 2:2 + x.shape[-1]] = x
            x = wide[..., 2:2 + x.shape[-1]]
        return x

    def program(self) -> MotionProgram:
        return sample_program(self.config, self.batch, generator=torch.Generator().manual_seed(self.seed))

    @property
    def id(self) -> str:
        transforms = "all" if self.transforms == TRANSFORMS else "+".join(self.transforms)
        return "-".join([transforms, self.layout, self.output, self.view, f"mixup={self.mixup}", self.source,
                         f"b{self.batch}", *([self.recursion] if self.recursion != "composed" else []),
                         *([f"variant{self.variant}"] if self.variant is not None else [])]
                        ).replace(" ", "_")


def covering_rows(factors: dict[str, list], strength: int) -> list[dict]:
    """Rows (one value per factor) in which every combination of ``strength`` factors' values appears
    at least once: 1 = each value once, 2 = each pair of values (a pairwise covering array). Greedy and
    deterministic: each row starts from the first missing combination and takes, factor by factor, the
    value completing the most missing combinations."""
    names = list(factors)
    levels = [range(len(factors[n])) for n in names]
    missing = {tuple(zip(ks, vs)) for ks in combinations(range(len(names)), strength)
               for vs in product(*(levels[k] for k in ks))}
    within = lambda row: set(combinations(sorted(row.items()), strength))  # noqa: E731
    rows = []
    while missing:
        row = dict(min(missing))
        for k in range(len(names)):
            if k not in row:
                row[k] = max(levels[k], key=lambda v: len(within({**row, k: v}) & missing))
        missing -= within(row)
        rows.append({names[k]: factors[names[k]][v] for k, v in row.items()})
    return rows


FEATURES = dict(output=["uint8", "float32", "float32 raw", "float16", "bfloat16"],
                view=["inside", "whole zeros", "whole border", "whole reflection"],
                mixup=[None, "frame", "frame/t", "videomix"],
                source=["uint8", "float32", "uint8 down", "float64 down", "float16 up", "uint8 view"],
                layout=["BCTHW", "BTCHW"],
                batch=[1, B])
FEATURE_CASES = {k: [Case(**row, seed=i) for i, row in enumerate(covering_rows(FEATURES, k))] for k in (1, 2)}

# One transform each, strong motions, cycling through the other features.
TRANSFORM_CASES = [Case(transforms=(name,), layout=FEATURES["layout"][i % 2], output=FEATURES["output"][i % 5],
                        view=FEATURES["view"][1 + i % 3], mixup=FEATURES["mixup"][i % 4], seed=i)
                   for i, name in enumerate(TRANSFORMS)]

AUGMENT_CASES = [
    Case(layout="BTCHW", output="bfloat16", mixup="frame/t", source="uint8 view"),
    Case(output="uint8", view="whole border", mixup="videomix", source="float32"),
    Case(output="float32 raw", view="whole reflection", mixup="frame", source="uint8 down"),
    Case(transforms=("cutmix", "color_jitter", "perspective"), layout="BTCHW", output="float16", view="whole zeros",
         source="float16 up", batch=1),
]

# Programs without a cross-clip partner (no cutmix, no Mixup): each clip can be drawn alone.
ALONE_CASE = Case(transforms=tuple(t for t in TRANSFORMS if t != "cutmix"), view="whole reflection", seed=7)
LARGE_CASE = Case(output="bfloat16", view="whole zeros", mixup="frame", batch=96 if FUSED_HERE else 8, seed=2)
# The literal recursion I_{t+1} = f(I_t), resampling each output frame (colour and geometry).
ITERATIVE_CASES = [Case(transforms=("zoom", "fade", "affine", "color_jitter"), view="whole border",
                        recursion="iterative"),
                   Case(output="uint8", mixup="videomix", recursion="iterative", seed=3)]
# The engine's own options: variant k of ``Engine.variants`` on case k.
VARIANT_CASES = [Case(output="bfloat16", mixup="frame", batch=1),
                 Case(output="uint8", view="whole border", mixup="videomix", source="uint8", seed=4)]


def params(cases_of: Callable[[Engine], list], op: str = "render", here: bool = True) -> list:
    """``pytest.param(engine, case)`` for every engine with ``op`` and each of its cases
    (``cases_of(engine)``); ``here``: only the engines that run in this process."""
    out = []
    for engine in ENGINES:
        if (op == "augment" and not engine.has("augment")) or (here and not runs_here(engine)):
            continue
        marks = [pytest.mark.skip(reason=engine.unavailable)] if engine.unavailable else []
        out += [pytest.param(engine, case, marks=marks, id=f"{engine.name}-{case.id}") for case in cases_of(engine)]
    return out


GRID = {  # test -> (cases of an engine, operation)
    "test_every_transform": (lambda e: TRANSFORM_CASES, "render"),
    "test_features": (lambda e: [*FEATURE_CASES[e.covering], LARGE_CASE], "render"),
    "test_cutmix_patch_cut_at_the_partner_edge": (lambda e: [Case(transforms=("cutmix",), output="float32 raw")],
                                                  "render"),
    "test_float64_boxes": (lambda e: [Case(transforms=("zoom", "cutmix"), mixup="videomix", output="float32 raw")],
                           "render"),
    "test_iterative_recursion": (lambda e: ITERATIVE_CASES if "iterative" in e.row.recursions else [], "render"),
    "test_augment_real_clips": (lambda e: AUGMENT_CASES, "augment"),
    "test_batched_equals_per_clip": (lambda e: [ALONE_CASE], "render"),
    "test_batched_equals_per_clip_augment": (lambda e: [ALONE_CASE], "augment"),
    "test_empty_batch": (lambda e: [Case(mixup="videomix", batch=0)], "render"),
    "test_empty_batch_augment": (lambda e: [Case(mixup="frame", output="uint8", batch=0)], "augment"),
    "test_bad_inputs": (lambda e: [Case(transforms=("zoom",), batch=2)], "render"),
    "test_bad_out_buffers": (lambda e: [Case(transforms=("zoom", "cutmix"), layout="BTCHW", output="bfloat16")]
                             if e.row.takes_out else [], "render"),
    "test_variants": (lambda e: [dataclasses.replace(VARIANT_CASES[v], variant=v) for v in range(len(e.variants))],
                      "render"),
    "test_variants_augment": (lambda e: [dataclasses.replace(VARIANT_CASES[1], variant=v, seed=5, batch=1)
                                         for v in range(len(e.variants))], "augment"),
    "test_self_check": (lambda e: [Case(transforms=("zoom", "cutmix", "fade"), output="uint8", mixup="frame")]
                        if e.name != "reference" else [], "render"),
}


def grid(test: str) -> list:
    cases_of, op = GRID[test]
    return params(cases_of, op)


# ---- the checks -----------------------------------------------------------------------------------

def clip_shape(cfg: PMGConfig, batch: int) -> tuple:
    return (batch, 3, T, *SIZE) if cfg.layout == "BCTHW" else (batch, T, 3, *SIZE)


def call(engine: Engine, op: str, x: torch.Tensor, program: MotionProgram, cfg: PMGConfig,
         **options) -> torch.Tensor:
    """The engine's clips of ``x`` (moved to its device), with the contract checked: ``out=`` poisoned
    and returned (engines that take it), or a fresh contiguous tensor; shape, dtype, layout and device;
    ``x`` and ``program`` unmodified."""
    x = x.to(engine.device)
    x_before, program_before = x.clone(), {k: v.clone() for k, v in program.tensors().items()}
    shape = clip_shape(cfg, x.shape[0])
    if engine.row.takes_out:
        poison = torch.full(shape, 255 if cfg.dtype == torch.uint8 else float("nan"), dtype=cfg.dtype,
                            device=engine.device)
        clips = engine(op, x, program, cfg, out=poison, **options)
        assert clips is poison, f"{engine.name} {op}: did not return the `out` buffer"
    else:
        clips = engine(op, x, program, cfg, **options)
    assert isinstance(clips, torch.Tensor), f"{engine.name} {op}: returned {type(clips).__name__}"
    device = torch.device(engine.device).type
    assert (tuple(clips.shape), clips.dtype, clips.device.type) == (shape, cfg.dtype, device), (
        f"{engine.name} {op}: returned {tuple(clips.shape)} {clips.dtype} on {clips.device}, expected {shape} "
        f"{cfg.dtype} on {engine.device}")
    assert clips.is_contiguous(), f"{engine.name} {op}: output not contiguous"
    if clips.is_floating_point():
        assert not bool(clips.isnan().any()), f"{engine.name} {op}: NaN in the output (an element left unwritten?)"
    assert torch.equal(x, x_before), f"{engine.name} {op}: modified its input"
    for name, value in program.tensors().items():
        assert torch.equal(value, program_before[name]), f"{engine.name} {op}: modified program.{name}"
    return clips.cpu()


def expected(engine: Engine, op: str, x: torch.Tensor, program: MotionProgram, cfg: PMGConfig) -> torch.Tensor:
    """The reference's clips of ``x``; from the engine's own resized source where it has one."""
    if engine.resize is not None and tuple(x.shape[-2:]) != SIZE:
        if x.ndim == 5:   # every frame of the clips as an image
            b, c, t, h, w = x.shape
            frames = engine.resize(x.transpose(1, 2).reshape(b * t, c, h, w).to(engine.device), SIZE).cpu()
            x = frames.view(b, t, c, *SIZE).transpose(1, 2)
        else:
            x = engine.resize(x.to(engine.device), SIZE).cpu()
    return (render if op == "render" else augment)(x, program, cfg)


def assert_conforms(engine: Engine, clips: torch.Tensor, expect: torch.Tensor, cfg: PMGConfig, what: str) -> None:
    """``clips`` within ``engine``'s tolerance of the reference's ``expect`` (both on the CPU)."""
    n, tol = expect.numel(), engine.tolerance
    if cfg.dtype == torch.uint8:
        diff = (clips.int() - expect.int()).abs()
        worst = int(diff.max()) if n else 0
        changed = float((diff > 0).float().mean()) if n else 0.0
        assert worst <= tol.uint8_levels and changed <= tol.uint8_fraction, (
            f"{engine.name} {what}: uint8 clips differ from the reference by up to {worst} levels in {changed:.2%} "
            f"of the values (allowed {tol.uint8_levels} in {tol.uint8_fraction:.0%}); first at "
            f"{tuple(int(i) for i in (diff == worst).nonzero()[0])}")
        return
    atol = tol.atol / min(cfg.std) if cfg.normalize else tol.atol
    rtol = ULP[cfg.dtype] if tol.atol else 0.0
    got, ref = clips.double(), expect.double()
    diff = (got - ref).abs()
    bad = ~(diff <= atol + rtol * ref.abs())        # NaN is bad
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        worst = float(diff.nan_to_num(float("inf")).max())
        scale = 255 * (max(cfg.std) if cfg.normalize else 1)
        raise AssertionError(
            f"{engine.name} {what}: {int(bad.sum())} of {n} values beyond the tolerance (atol {atol:.3g}, rtol "
            f"{rtol:.3g}); max difference {worst:.4g} (~{worst * scale:.3g} uint8 levels); first at {where}: "
            f"{float(got[where]):.6g} vs {float(ref[where]):.6g}")


def check_case(engine: Engine, case: Case, op: str = "render", program: MotionProgram | None = None,
               **options) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The engine's clips of ``case`` (of ``program``, default the case's) within its tolerance of the
    reference's (the reference row: the contract alone); returns both (on the CPU; the reference's clips
    None for the reference row)."""
    cfg, program = case.config, case.program() if program is None else program
    x = case.inputs(video=op == "augment")
    clips, expect = call(engine, op, x, program, cfg, **options), None
    if engine.name != "reference":
        expect = expected(engine, op, x, program, cfg)
        assert_conforms(engine, clips, expect, cfg, f"{op} {case.id}")
    return clips, expect


# ---- tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine,case", grid("test_every_transform"))
def test_every_transform(engine, case):
    """Each transform as the reference draws it; the CPU renderer performs the reference's own arithmetic
    frame by frame: without a colour matrix its clips are the reference's bits (colour matrices may differ
    by float rounding)."""
    clips, expect = check_case(engine, case)
    if engine.name == "cpu" and not COLOR_TRANSFORMS & set(case.transforms):
        assert torch.equal(clips, expect), case.id
    clips = clips.double()
    if case.transforms != ("identity",):     # the program moves something: not one frame repeated
        first, last = (clips[:, :, i] if case.layout == "BCTHW" else clips[:, i] for i in (0, -1))
        assert (first - last).abs().max() > 0.04 * (255 if case.output == "uint8" else 1), case.id


@pytest.mark.parametrize("engine,case", grid("test_cutmix_patch_cut_at_the_partner_edge"))
def test_cutmix_patch_cut_at_the_partner_edge(engine, case):
    """A patch cut flush with the partner's top-left corner (its first pixel centre on the patch's box
    corner): its edge pixels are replicated, as every engine must, not blended with black. On flat images
    (one colour per clip) every pixel inside ``paste_box[b, t]`` is the colour of clip ``paste_index[b]``,
    every other pixel the clip's own colour (the case moves nothing else: identity colour, a view inside)."""
    program = case.program()
    moved = program.paste_homography.clone()          # partner -> frame: a shift by (box corner - cut)
    moved[..., :2, 2] = program.paste_box[..., :2] + 0.5                  # the cut at (-0.5, -0.5)
    program = dataclasses.replace(program, paste_homography=moved)
    corner = program.paste_box[:, 0, :2] - program.paste_homography[:, 0, :2, 2]
    torch.testing.assert_close(corner, torch.full_like(corner, -0.5), atol=1e-4, rtol=0)
    check_case(engine, case, program=program)
    colours = torch.tensor([[200, 40, 90], [30, 220, 120], [120, 60, 250]], dtype=torch.uint8)[:case.batch]
    flat = colours[:, :, None, None].expand(-1, -1, *SIZE).contiguous()
    clips = call(engine, "render", flat, program, case.config).double()     # float32 raw, BCTHW: [0, 1] pixels
    inside = box_mask(program.paste_box, SIZE)                                # (B, T, H, W)
    atol = engine.tolerance.atol + 2 ** -20           # the row's tolerance, plus float32 rounding of a blend
    for b, t in product(range(case.batch), range(T)):
        frame, box = clips[b, :, t], inside[b, t]
        assert box.any(), (b, t)                      # the patch shows on every frame
        for pixels, source in ((frame[:, box], int(program.paste_index[b])), (frame[:, ~box], b)):
            colour = colours[source].double()[:, None].expand_as(pixels) / 255
            torch.testing.assert_close(pixels, colour, atol=atol, rtol=0, msg=lambda m: f"clip {b} frame {t} "
                                       f"(the colour of clip {source}): {m}")


@pytest.mark.parametrize("engine,case", grid("test_float64_boxes"))
def test_float64_boxes(engine, case):
    """Boxes of a hand-made program in float64, each left edge just past a pixel centre (which float32
    rounds onto it): every engine lays the patch and the VideoMix box on the reference's pixels."""
    check_case(engine, case, program=boxes_past_pixel_centres(case.program()))


@pytest.mark.parametrize("engine,case", grid("test_features"))
def test_features(engine, case):
    check_case(engine, case)


@pytest.mark.parametrize("engine,case", grid("test_iterative_recursion"))
def test_iterative_recursion(engine, case):
    """An engine that takes ``recursion="iterative"`` hands it to the reference renderer: the same bits."""
    clips, expect = check_case(engine, case)
    if engine.device != "cpu":                       # the reference's bits on the engine's own device
        expect = render(case.inputs().to(engine.device), case.program(), case.config).cpu()
    if engine.name != "reference":                   # (the reference row would compare render with itself)
        assert torch.equal(clips, expect), case.id


@pytest.mark.parametrize("engine,case", grid("test_variants"))
def test_variants(engine, case):
    """The engine's own options (the fused kernel: small tiles, several per frame, a clip its own partner;
    uint8 sources read as three byte planes instead of packed words)."""
    check_case(engine, case, **engine.variants[case.variant])


@pytest.mark.parametrize("engine,case", grid("test_variants_augment"))
def test_variants_augment(engine, case):
    """The engine's own options on real clips."""
    check_case(engine, case, "augment", **engine.variants[case.variant])


@pytest.mark.parametrize("engine,case", grid("test_augment_real_clips"))
def test_augment_real_clips(engine, case):
    """Frame t of each clip drawn from the clip's own frame t (a different noise image per frame)."""
    check_case(engine, case, "augment")


def one_clip(program: MotionProgram, i: int) -> MotionProgram:
    return dataclasses.replace(program, **{k: v[i:i + 1] for k, v in program.tensors().items()})


def check_batched_equals_per_clip(engine: Engine, case: Case, op: str) -> None:
    cfg, program = case.config, case.program()
    assert program.paste_index is None and program.mix_index is None
    x = case.inputs(video=op == "augment")
    batched = call(engine, op, x, program, cfg)
    for i in range(case.batch):
        alone = call(engine, op, x[i:i + 1], one_clip(program, i), cfg)
        assert torch.equal(alone, batched[i:i + 1]), (
            f"{engine.name} {op}: clip {i} drawn alone differs from its row of the batch by up to "
            f"{float((alone.double() - batched[i:i + 1].double()).abs().max()):.3g}")


@pytest.mark.parametrize("engine,case", grid("test_batched_equals_per_clip"))
def test_batched_equals_per_clip(engine, case):
    check_batched_equals_per_clip(engine, case, "render")


@pytest.mark.parametrize("engine,case", grid("test_batched_equals_per_clip_augment"))
def test_batched_equals_per_clip_augment(engine, case):
    check_batched_equals_per_clip(engine, case, "augment")


@pytest.mark.parametrize("engine,case", grid("test_empty_batch"))
def test_empty_batch(engine, case):
    assert call(engine, "render", case.inputs(), case.program(), case.config).numel() == 0


@pytest.mark.parametrize("engine,case", grid("test_empty_batch_augment"))
def test_empty_batch_augment(engine, case):
    assert call(engine, "augment", case.inputs(video=True), case.program(), case.config).numel() == 0


@pytest.mark.parametrize("engine,case", grid("test_bad_inputs"))
def test_bad_inputs(engine, case):
    """Images that do not fit the program, and what is not a program or not a config, are refused with the
    argument named."""
    cfg, program, x = case.config, case.program(), case.inputs().to(engine.device)
    with pytest.raises(ValueError, match="`images` must have one image per clip of the program, but got 3"):
        engine("render", torch.cat([x, x[:1]]), program, cfg)
    with pytest.raises(ValueError, match=r"`images` must have shape \(B, 3, H, W\)"):
        engine("render", x[:, 0], program, cfg)
    with pytest.raises(ValueError, match=rf"`program` must have {T + 1} frames \(config.num_frames\), but got {T}"):
        engine("render", x, program, cfg.replace(num_frames=T + 1))
    with pytest.raises(TypeError, match="`program` must be a MotionProgram, but got str"):
        engine("render", x, "zoom", cfg)
    ops = [("render", x)] + ([("augment", x[:, :, None].expand(-1, -1, T, -1, -1))] if engine.has("augment") else [])
    for op, inputs in ops:
        with pytest.raises(TypeError, match="`cfg` must be a PMGConfig, but got dict"):
            engine(op, inputs, program, {"size": SIZE})


@pytest.mark.parametrize("engine,case", grid("test_bad_out_buffers"))
def test_bad_out_buffers(engine, case):
    """An ``out=`` buffer of the wrong kind is refused, naming what it must be."""
    cfg, program, x = case.config, case.program(), case.inputs().to(engine.device)
    out = torch.empty(clip_shape(cfg, B), dtype=cfg.dtype, device=engine.device)
    must = rf"`out` must be a contiguous torch.bfloat16 tensor of shape \({B}, {T}, 3, {SIZE[0]}, {SIZE[1]}\) on "
    with pytest.raises(ValueError, match=must + ".*, but got a non-contiguous"):
        engine("render", x, program, cfg, out=out.transpose(1, 2))
    with pytest.raises(ValueError, match=must):
        engine("render", x, program, cfg, out=out.half())
    with pytest.raises(TypeError, match="`out` must be a torch.Tensor or None, but got list"):
        engine("render", x, program, cfg, out=[])


@pytest.mark.parametrize("engine,case", grid("test_self_check"))
def test_self_check(engine, case, monkeypatch):
    """The engine passes its own canary (:func:`pmg_dali.check_engines`) on its device, at a small canary
    size (the interpreter is slow)."""
    from pmg_dali import engine_check as ec
    monkeypatch.setattr(ec, "CHECKED", (engine.name,))
    monkeypatch.setattr(ec, "CANARY_SIZE", (5, 7))
    monkeypatch.setattr(ec, "CANARY_FRAMES", 2)
    monkeypatch.setattr(ec, "RESIZED_SIZE", (7, 9))
    result = ec.check_engines(engine.device, case.config)[engine.name]
    assert result.status == "ok", result


OWN_RESIZE = [pytest.param(e, marks=[pytest.mark.skip(reason=e.unavailable)] if e.unavailable else [], id=e.name)
              for e in ENGINES if e.resize is not None and runs_here(e)]


@pytest.mark.parametrize("engine", OWN_RESIZE)
def test_own_resize(engine):
    """An engine's own resize equals the reference's (antialiased bilinear) inside the frame, on noise and
    on smooth images, downscaling and upscaling. DALI's ``fn.resize`` weighs the outermost ring of a
    downscaled image differently from torch's antialiased ``interpolate`` (~9 levels on noise, ~1.4 on
    smooth images at this scale; the latter bounded here); its clips are therefore checked against the reference
    drawn from DALI's resized source (:func:`expected`)."""
    g = torch.Generator().manual_seed(5)
    for name, size in SOURCE_SIZES.items():
        coarse = torch.rand(B, 3, size[0] // 3, size[1] // 3, generator=g)
        smooth = torch.nn.functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False)
        images = {"noise": torch.randint(0, 256, (B, 3, *size), dtype=torch.uint8, generator=g),
                  "smooth": (smooth.clamp(0, 1) * 255).round().to(torch.uint8)}
        for kind, x in images.items():
            diff = (engine.resize(x.to(engine.device), SIZE).cpu() - to_float_images(x, SIZE)).abs() * 255
            inside, ring = float(diff[..., 1:-1, 1:-1].max()), float(diff.max())
            assert inside < 0.01, f"{engine.name} resize {name} {kind}: {inside:.3g} levels off inside the frame"
            assert kind == "noise" or ring < 4, f"{engine.name} resize {name} {kind}: {ring:.3g} levels off at the edge"


@pytest.mark.slow
@pytest.mark.skipif(INTERPRET or HAS_CUDA or not HAS_TRITON, reason="the fused engine runs in this process")
def test_fused_engine_through_the_interpreter():
    """Without a GPU, the fused engine's cases of this module, in a subprocess with TRITON_INTERPRET=1."""
    expect = sum(1 for test in GRID for p in params(*GRID[test], here=False) if p.values[0].name == "fused")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "fused and not "
                          "interpreter", str(Path(__file__).resolve())], cwd=Path(__file__).resolve().parents[1],
                         env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed.group(1)) == expect, run.stdout[-2000:]
