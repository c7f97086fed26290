"""Drawing motion programs: every random number of a clip's motion is drawn here (the image sources
draw their own crops, the masks their own patterns, each from an explicit generator too).

Two steps, kornia's generator / apply split: :func:`sample_params` draws a batch's parameters by name
(:class:`MotionParams`: each clip's transform, every configured transform's parameters, the mix), and
:func:`compile_program` turns them into a :class:`MotionProgram` without drawing anything;
:func:`sample_program` does both. What each transform draws and how it becomes maps is its record in
:data:`pmg_dali.transforms.TABLE`: frame t's map is ``step^t @ first``
(:func:`pmg_dali.geometry.matrix_powers`), f applied t times.

The arithmetic runs in NumPy float64 on the host; the random numbers come from the explicit torch
generator. Every configured transform draws for the whole batch and the transform drawn for each clip
picks its rows, so the random stream consumed does not depend on which transforms were drawn. The order
of the draws: the transform of each clip; each configured transform's parameters, in ``cfg.transforms``
order, those of a transform that pastes (cutmix) last; the mix.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ._checks import check_choice, check_device, check_generator, check_int
from .config import PMGConfig, check_config
from .geometry import eye, matrix_powers
from .program import MotionProgram
from .transforms import COLOR_TRANSFORMS, TABLE, Params

__all__ = ["sample_program", "sample_params", "compile_program", "MotionParams", "Draw", "sample_mix"]


class Draw:
    """The random source of one batch: uniform draws of shape (B, ...) in float64 from one explicit
    generator, as NumPy arrays (the arithmetic runs on the host in NumPy; a CUDA generator's numbers are
    copied over)."""

    def __init__(self, batch: int, generator: torch.Generator | None, device):
        self.batch, self.generator, self.device = batch, generator, device

    def uniform(self, low: float, high: float, *shape: int) -> np.ndarray:
        u = torch.rand(self.batch, *shape, generator=self.generator, device=self.device, dtype=torch.float64)
        return low + (high - low) * u.cpu().numpy()

    def shift(self) -> np.ndarray:
        """(B,) int64: a random non-zero cyclic shift per batch, i.e. a partner that is another clip."""
        b = self.batch
        k = int(torch.randint(1, max(b, 2), (1,), generator=self.generator, device=self.device)) % max(b, 1)
        return (np.arange(b) + k) % max(b, 1)

    def seed(self) -> int:
        """A seed for a NumPy generator (for the distributions torch draws without a generator)."""
        return int(torch.randint(0, 2**62, (1,), generator=self.generator, device=self.device))


@dataclass(frozen=True)
class MotionParams:
    """A batch's parameters as drawn, by name (NumPy arrays, one row per clip).

    Fields:
        transform: (B,) int64 index into ``cfg.transforms`` of each clip's transform.
        params: ``{name: {parameter: (B, ...) array}}`` for every transform of ``cfg.transforms``, drawn
            for the whole batch; clip b uses row b of its own transform's (the names and shapes are in
            the docstring of each ``pmg_dali.transforms.sample_<name>``).
        mix: None without ``cfg.mixup``, else ``partner`` (B,) int64, the clip mixed in (another clip);
            ``lam`` (B,), or (B, T) with ``mixup_per_frame``: the weight of the clip itself, Beta(alpha,
            alpha) for frame Mixup, the fraction of pixels kept for VideoMix; ``box`` (B, 4) the VideoMix
            cuboid ``(x0, y0, x1, y1)`` (frame pixel edges, whole pixels), None for frame Mixup.
        device: where the numbers were drawn (the program's device unless told otherwise).
        drawn_for: what of the config the parameters were drawn for (:func:`drawn_for`):
            :func:`compile_program` refuses another config.

    ``params["zoom"]`` is ``params.params["zoom"]``; :meth:`picked` gives the rows of the clips that drew
    a transform.
    """

    transform: np.ndarray
    params: dict[str, Params]
    mix: dict[str, np.ndarray | None] | None
    device: torch.device
    drawn_for: tuple = ()

    def __getitem__(self, name: str) -> Params:
        return self.params[name]

    def picked(self, name: str) -> tuple[np.ndarray, Params]:
        """(rows, parameters of those rows) of the clips whose transform is ``name``."""
        names = tuple(self.params)
        rows = np.flatnonzero(self.transform == names.index(check_choice("name", name, names)))
        return rows, {k: v[rows] for k, v in self.params[name].items()}


def videomix_edges(cut, centre, side: int):
    """One side of a VideoMix box, in whole pixels: a length of ``cut * side`` rounded half up,
    centred on the pixel ``centre`` and clipped to ``[0, side]``. Returns (start, stop)."""
    length = np.floor(cut * side + 0.5)
    return np.clip(np.floor(centre - length / 2), 0, side), np.clip(np.floor(centre + length / 2), 0, side)


def sample_mix(cfg: PMGConfig, draw: Draw) -> dict[str, np.ndarray | None]:
    """Frame Mixup / VideoMix parameters: ``partner`` (B,), ``lam`` (B,) or (B, T), ``box`` (B, 4) or
    None (:class:`MotionParams`)."""
    partner = draw.shift()
    shape = (draw.batch, cfg.num_frames) if cfg.mixup == "frame" and cfg.mixup_per_frame else (draw.batch,)
    # torch's Beta sampler takes no generator: a NumPy Generator seeded from ours keeps it explicit.
    lam = np.random.default_rng(draw.seed()).beta(cfg.mixup_alpha, cfg.mixup_alpha, size=shape)
    if cfg.mixup == "frame":
        return {"partner": partner, "lam": lam, "box": None}
    # VideoMix: a box of area (1 - lambda) H W, clipped to the frame, in whole pixels (as CutMix).
    h, w = cfg.size
    cut = np.sqrt(1 - lam)
    x0, x1 = videomix_edges(cut, np.floor(draw.uniform(0, w)), w)
    y0, y1 = videomix_edges(cut, np.floor(draw.uniform(0, h)), h)
    lam = 1 - (x1 - x0) * (y1 - y0) / (w * h)
    # pixel centres are integers: the box [x0, x1) of whole pixels is [x0 - 0.5, x1 - 0.5) in centres
    box = np.stack([x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5], axis=-1)
    return {"partner": partner, "lam": lam, "box": box}


def sample_params(cfg: PMGConfig, batch_size: int, generator: torch.Generator | None = None) -> MotionParams:
    """Draw the parameters of ``batch_size`` clips for ``cfg``, by name (:class:`MotionParams`).

    Random numbers are drawn on the generator's device (the default CPU generator when None); a CUDA
    generator's numbers are copied to the host draw by draw (each a synchronisation: prefer a CPU
    generator).
    """
    check_config(cfg, "cfg")
    batch_size = check_int("batch_size", batch_size, 0)
    check_generator(generator)
    device = generator.device if generator is not None else torch.device("cpu")
    draw = Draw(batch_size, generator, device)
    which = torch.randint(0, len(cfg.transforms), (batch_size,), generator=generator, device=device)
    order = sorted(cfg.transforms, key=lambda name: TABLE[name].pastes)    # stable: pasting ones last
    drawn = {name: TABLE[name].sample(cfg, draw) for name in order}
    mix = sample_mix(cfg, draw) if cfg.mixup is not None else None
    return MotionParams(transform=which.cpu().numpy(), params={name: drawn[name] for name in cfg.transforms},
                        mix=mix, device=device, drawn_for=drawn_for(cfg))


def drawn_for(cfg: PMGConfig) -> tuple:
    """What of ``cfg`` shapes drawn parameters: every field but the output format (layout, dtype,
    normalisation, padding) and the recursion, which a program does not depend on."""
    free = {"layout", "dtype", "normalize", "mean", "std", "padding_mode", "recursion"}
    return tuple((f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.name not in free)


def _check_rows(params: MotionParams, choices: int) -> int:
    """The batch size of ``params``: ``params.transform`` (B,) integer indices in ``[0, choices)``, B rows
    in every parameter and mix array (an edited ``MotionParams`` otherwise fails deep in the matrix code,
    or a negative index picks another transform)."""
    which = params.transform
    if not isinstance(which, np.ndarray) or which.dtype.kind not in "iu":
        got = f"{which.dtype} array" if isinstance(which, np.ndarray) else type(which).__name__
        raise TypeError(f"`params.transform` must be an integer NumPy array, but got {got}")
    if which.ndim != 1:
        raise ValueError(f"`params.transform` must have shape (B,), but got {which.shape}")
    wrong = which[(which < 0) | (which >= choices)]
    if wrong.size:
        raise ValueError(f"`params.transform` must hold indices into `cfg.transforms`, in [0, {choices}), but got "
                         f"{sorted(set(wrong.tolist()))}")
    arrays = {f"params[{name!r}][{key!r}]": v for name, p in params.params.items() for key, v in p.items()}
    arrays.update({f"params.mix[{key!r}]": v for key, v in (params.mix or {}).items() if v is not None})
    for name, value in arrays.items():
        if np.shape(value)[:1] != which.shape:
            raise ValueError(f"`{name}` must have one row per clip ({len(which)}), but got shape {np.shape(value)}")
    return len(which)


def compile_program(cfg: PMGConfig, params: MotionParams, device=None) -> MotionProgram:
    """The :class:`MotionProgram` of drawn ``params`` (draws nothing): each transform's
    :class:`~pmg_dali.transforms.Motion` (its record's ``matrices``), each clip's rows picked, the
    recursion evaluated in closed form. Moved to ``device`` (default: ``params.device``)."""
    check_config(cfg, "cfg")
    if not isinstance(params, MotionParams):
        raise TypeError(f"`params` must be MotionParams, but got {type(params).__name__}")
    ours = drawn_for(cfg)
    if not params.drawn_for:
        raise ValueError("`params.drawn_for` is empty: draw the parameters with sample_params(cfg, ...) (edit them "
                         "with dataclasses.replace), or build MotionParams with drawn_for=drawn_for(cfg)")
    if params.drawn_for != ours:
        theirs, mine = dict(params.drawn_for), dict(ours)
        differ = [name for name in {**mine, **theirs} if name not in mine or name not in theirs
                  or mine[name] != theirs[name]] or ["the form of `params.drawn_for`"]
        raise ValueError(f"`params` were drawn for another config: {', '.join(differ)} differ from `cfg`'s")
    b, t = _check_rows(params, len(cfg.transforms)), cfg.num_frames
    motions = [TABLE[name].matrices(cfg, params[name]) for name in cfg.transforms]
    rows, picked = np.arange(b), params.transform

    def pick(key: str, n: int) -> np.ndarray:
        maps = [getattr(m, key) for m in motions]
        return np.stack([eye(b, n) if x is None else x for x in maps], 1)[rows, picked]

    homography = matrix_powers(pick("step", 3), pick("first", 3), t)
    if COLOR_TRANSFORMS & set(cfg.transforms):
        color = matrix_powers(pick("color_step", 4), pick("color_first", 4), t)[..., :3, :]
    else:   # geometric motion only: every colour map is the identity
        color = np.tile(np.eye(3, 4), (b, t, 1, 1))
    fields = {}
    for k, motion in enumerate(motions):
        if motion.paste is not None:        # one transform pastes (cutmix): its patch, shown where it was drawn
            paste = motion.paste
            box = paste.box * (picked == k)[:, None, None]
            fields.update(paste_index=paste.index, paste_homography=matrix_powers(paste.step, paste.first, t),
                          paste_box=box)
    if params.mix is not None:
        fields.update(mix_index=params.mix["partner"], mix_lambda=params.mix["lam"], mix_box=params.mix["box"])
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in fields.items() if v is not None}
    program = MotionProgram(homography=torch.from_numpy(homography).float(),
                            color=torch.from_numpy(np.ascontiguousarray(color)).float(),
                            transform=torch.from_numpy(params.transform),
                            **{k: v if k.endswith("index") else v.float() for k, v in tensors.items()})
    target = check_device(device) if device is not None else params.device
    return program if program.device == target else program.to(target)


def sample_program(cfg: PMGConfig, batch_size: int, generator: torch.Generator | None = None,
                   device=None) -> MotionProgram:
    """Draw a :class:`MotionProgram` of ``batch_size`` clips for ``cfg``:
    ``compile_program(cfg, sample_params(cfg, batch_size, generator), device)``.

    Random numbers are drawn on the generator's device (the default CPU generator when None), the
    program's arithmetic runs on the host in float64 (NumPy), and the program is moved to ``device``
    (default: the generator's device). A CPU generator therefore gives the same program for every
    device and backend; a CUDA generator's numbers are copied to the host draw by draw (each a
    synchronisation: prefer a CPU generator).
    """
    params = sample_params(cfg, batch_size, generator)
    return compile_program(cfg, params, device)

