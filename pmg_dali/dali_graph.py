"""DALI graph helpers: the pseudo-motion renderer as ``fn.*`` nodes, fed motion programs drawn on the host.

Every graph function here takes and returns DALI ``DataNode``s, is called inside a ``@pipeline_def`` and
works on both DALI devices (``"cpu"`` nodes, or ``"gpu"`` nodes after a ``"mixed"`` decoder).
Clips flow through the graph as FHWC sequences in a ``unit`` scale (255 for uint8 sources, 1 for
float sources) -- float, or uint8 between the warp and the mix on the fast path (``exact=False``) --
and are formatted last. :mod:`pmg_dali.dali` builds its renderer and pipelines from these.

Motion enters the graph as arrays, never drawn in it: a :class:`~pmg_dali.MotionProgram` from the one
sampler of the package (:func:`pmg_dali.sampling.sample_program`, every transform) is compiled to its
frame tables (:func:`pmg_dali.rules.frame_tables`) and packed by :func:`program_arrays` -- the one
function that turns a program into what a graph is fed, whether by ``feed_input``
(:class:`pmg_dali.dali.ProgramRenderer`) or by the ``fn.external_source`` callback :class:`ProgramFeed`
(:func:`pseudo_motion` and the pipelines, seeded per batch as the loader seeds its batches). Which
nodes a graph has -- perspective or affine warp, colour, cutmix paste, mix mode -- is its
:class:`Variant`.

Convention (warps): DALI puts the origin at the top-left pixel *corner*; the package puts it at the
top-left pixel *centre* (:mod:`pmg_dali.geometry`). Fed matrices map frame -> source pixels
(``inverse_map=True``) and are converted on the host by :func:`pmg_dali.geometry.dali_map`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

try:
    from nvidia.dali import fn, types
    from nvidia.dali import math as dmath
    from nvidia.dali.pipeline import Pipeline
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("pmg_dali.dali needs NVIDIA DALI: pip install pmg_dali[dali] "
                      "(or pip install nvidia-dali-cuda130; nvidia-dali-cuda120 for CUDA 12 drivers)") from exc

import torch

from ._checks import check_bool, check_choice, check_int, check_seed
from .config import PADDING_MODES, PMGConfig, check_config
from .engines import engine
from .geometry import dali_map
from .program import MotionProgram
from .rules import MIX_MODES, PASTE_PADDING, FrameTables, frame_tables
from .sampling import sample_program
from .seeding import batch_generators
from .transforms import COLOR_TRANSFORMS, PASTE_TRANSFORMS, PROJECTIVE_TRANSFORMS

__all__ = ["GraphMotion", "dali_dtype", "warp_frames", "box_mask", "paste_patches", "apply_color", "mix_clips",
           "format_clips", "render_motion", "Variant", "tables_variant", "config_variant", "program_arrays",
           "graph_motion", "ProgramFeed", "feed_motion", "pseudo_motion"]

# padding modes (config.PADDING_MODES) in DALI's words: grid_sample's rules about edge pixel centres
_BORDERS = dict(zip(PADDING_MODES, ("constant", "replicate", "reflect_101")))


class GraphMotion(NamedTuple):
    """A motion program as graph nodes (per sample; T = ``config.num_frames``), as
    :func:`graph_motion` builds it from fed arrays.

    num_frames: T.
    matrices: (T, 2, 3) or (T, 3, 3) float per-frame frame -> source maps in DALI coordinates.
    perspective: 3x3 maps, warped by ``fn.experimental.warp_perspective`` (else 2x3, ``fn.warp_affine``).
    color: (T, 3, 4) float colour maps on RGB in [0, 1], or None (no colour pass).
    paste_index / paste_matrices / paste_box: () int partner, (T, 2|3, 3) maps, (T, 4) boxes, or None.
    mix_index / mix_lambda / mix_box: () int partner, (1,) or (T, 1, 1, 1) weight, (4,) VideoMix box
        (then mix_lambda is unused), or None.
    """

    num_frames: int
    matrices: object
    perspective: bool = False
    color: object = None
    paste_index: object = None
    paste_matrices: object = None
    paste_box: object = None
    mix_index: object = None
    mix_lambda: object = None
    mix_box: object = None


def dali_dtype(dtype: torch.dtype):
    """DALI output type for a torch dtype; bfloat16 (not a DALI type) is produced as float32."""
    return {torch.uint8: types.UINT8, torch.float16: types.FLOAT16}.get(dtype, types.FLOAT)


def _on(node, like):
    """``node`` moved to the device of ``like`` (arithmetic needs its inputs on one device)."""
    return node.gpu() if like.device == "gpu" and node.device != "gpu" else node


def warp_frames(images, matrices, num_frames: int, *, padding_mode: str = "zeros",
                perspective: bool = False, exact: bool = True):
    """T warped views of each image: HWC -> FHWC, frame t by ``matrices[t]`` (bilinear).

    The image is repeated T times by ``fn.sequence_rearrange`` (a memcpy of the source: the cheapest
    way to hand a per-frame operator T frames of one image) and warped once by a per-frame
    ``fn.warp_affine`` (2x3) or ``fn.experimental.warp_perspective`` (3x3; reflection padding too).
    ``exact``: float output; else the input type (uint8 frames: a quarter of the memory traffic,
    values rounded to whole levels).

    Convention: DALI pixel-corner origin; ``matrices`` map frame -> source (``inverse_map=True``; see
    :func:`pmg_dali.geometry.dali_map`).
    """
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    if padding_mode == "reflection" and not perspective:
        raise ValueError("`padding_mode='reflection'` needs 3x3 matrices and perspective=True: "
                         "fn.warp_affine has no reflecting border")
    if perspective and exact:
        images = fn.cast(images, dtype=types.FLOAT)   # warp_perspective keeps the input type
    frames = fn.sequence_rearrange(fn.expand_dims(images, axes=[0], new_axis_names="F"),
                                   new_order=[0] * num_frames)
    if perspective:
        fill = {"fill_value": 0.0} if padding_mode == "zeros" else {}
        return fn.experimental.warp_perspective(frames, matrix=fn.per_frame(matrices), inverse_map=True,
                                                border_mode=_BORDERS[padding_mode], **fill)
    fill = 0.0 if padding_mode == "zeros" else None   # None: clamp, i.e. replicate the border
    return fn.warp_affine(frames, matrix=fn.per_frame(matrices), inverse_map=True,
                          fill_value=fill, dtype=types.FLOAT if exact else None)


def box_mask(box, size: tuple[int, int], like, per_frame: bool):
    """(T, H, W, 1) float 0/1 (per-frame boxes (T, 4)) or (1, H, W, 1) (one box (4,)): 1 at pixel
    centres (x, y) with ``x0 <= x < x1`` and ``y0 <= y < y1``, on the device of ``like``."""
    h, w = size
    xs = types.Constant(np.arange(w, dtype=np.float32).reshape(1, 1, w, 1))
    ys = types.Constant(np.arange(h, dtype=np.float32).reshape(1, h, 1, 1))
    col = [_on(fn.reshape(box[:, i] if per_frame else box[i], shape=[-1, 1, 1, 1]), like) for i in range(4)]
    # box rule: rules.box_mask, half-open
    return ((xs >= col[0]) & (xs < col[2]) & (ys >= col[1]) & (ys < col[3])) * 1.0


def _blend(a, b, weight):
    """``weight * a + (1 - weight) * b`` (float; safe for uint8 inputs, where a - b would wrap): the lerp of
    rules.paste_layer (weight a box mask) and rules.mix_layers (a lambda or a VideoMix box mask)."""
    return weight * a + (1.0 - weight) * b


def paste_patches(frames, images, motion: GraphMotion, size: tuple[int, int], exact: bool = True):
    """Cutmix: inside ``paste_box[t]`` frame t shows image ``paste_index`` warped by
    ``paste_matrices[t]`` (edge pixels replicated, as the reference renderer). frames: FHWC; images: the
    HWC batch. Returns float frames, or uint8 ones when not ``exact`` (the fast path keeps uint8 frames
    until the mix; ``fn.cast`` rounds to the nearest level)."""
    if motion.paste_index is None:
        return frames
    partner = fn.permute_batch(images, indices=motion.paste_index)
    patches = warp_frames(partner, motion.paste_matrices, motion.num_frames, padding_mode=PASTE_PADDING,
                          perspective=motion.perspective, exact=exact)
    pasted = _blend(patches, frames, box_mask(motion.paste_box, size, frames, per_frame=True))
    return pasted if exact else fn.cast(pasted, dtype=types.UINT8)


def apply_color(frames, color, unit: float, exact: bool = True):
    """``clamp(color[t, :, :3] @ rgb + unit * color[t, :, 3], 0, unit)`` per pixel of frame t, as one
    per-frame ``fn.coord_transform`` (an affine map on the C vectors of an FHWC sequence). Not
    ``exact`` (uint8, ``unit`` 255): the output is uint8, rounded and saturated by the operator."""
    mt = color * types.Constant(np.array([1, 1, 1, unit], dtype=np.float32))
    if not exact:
        return fn.coord_transform(frames, MT=fn.per_frame(mt), dtype=types.UINT8)
    return dmath.clamp(fn.coord_transform(frames, MT=fn.per_frame(mt)), 0.0, float(unit))


def mix_clips(clips, motion: GraphMotion, size: tuple[int, int]):
    """Frame Mixup (``lambda * clip + (1 - lambda) * partner`` on every frame) or VideoMix (the
    partner's pixels inside ``mix_box``); the partner is ``fn.permute_batch`` of the clips."""
    if motion.mix_index is None:
        return clips
    partner = fn.permute_batch(clips, indices=motion.mix_index)
    if motion.mix_box is not None:
        return _blend(partner, clips, box_mask(motion.mix_box, size, clips, per_frame=False))
    return _blend(clips, partner, _on(motion.mix_lambda, clips))


def format_clips(clips, config: PMGConfig, unit: float):
    """FHWC in [0, unit] -> ``config.layout`` ("BCTHW": CFHW samples, "BTCHW": FCHW) and
    ``config.dtype`` (uint8: round(x * 255); float: ImageNet-normalised when ``config.normalize``;
    bfloat16 comes out as float32) in one ``fn.crop_mirror_normalize``."""
    if config.dtype == torch.uint8:
        mean, std = [0.0] * 3, [unit / 255] * 3
    elif config.normalize:
        mean, std = [unit * m for m in config.mean], [unit * s for s in config.std]
    else:
        mean, std = [0.0] * 3, [float(unit)] * 3
    layout = "CFHW" if config.layout == "BCTHW" else "FCHW"
    return fn.crop_mirror_normalize(clips, mean=mean, std=std, dtype=dali_dtype(config.dtype),
                                    output_layout=layout)


def render_motion(images, motion: GraphMotion, config: PMGConfig, unit: float = 255.0, exact: bool = True):
    """The whole renderer: warp -> cutmix paste -> colour -> mix -> normalise, dtype and layout.

    Args:
        images: HWC batch at ``config.size``: uint8 0-255 with ``unit=255``, float 0-1 with ``unit=1``.
        motion: the :class:`GraphMotion`.
        exact: float intermediates (the reference renderer's values up to float rounding); False keeps
            uint8 frames between the warp and the mix (a quarter of the bytes of float frames,
            every value within one 1/255 level of the exact one).
    Returns:
        Clips (C, T, H, W) or (T, C, H, W) per sample, as the reference renderer's ``render``.
    """
    exact = exact or unit != 255
    frames = warp_frames(images, motion.matrices, motion.num_frames, padding_mode=config.padding_mode,
                         perspective=motion.perspective, exact=exact)
    frames = paste_patches(frames, images, motion, config.size, exact)
    if motion.color is not None:
        frames = apply_color(frames, motion.color, unit, exact)
    return format_clips(mix_clips(frames, motion, config.size), config, unit)


# ---- fed programs: MotionProgram -> arrays -> external_source nodes -------------------------------

class Variant(NamedTuple):
    """The static parts of a render graph: which nodes it has, hence which arrays it is fed.

    perspective: 3x3 maps and ``fn.experimental.warp_perspective`` (else 2x3 maps and ``fn.warp_affine``).
    color: a colour pass (identity maps are fed to clips without colour motion).
    paste: the cutmix paste (empty boxes are fed to clips that paste nothing).
    mix: :data:`pmg_dali.rules.MIX_MODES` -- None, ``"clip"`` (one lambda per clip), ``"frame"`` (one
        lambda per frame; takes per-clip lambdas too) or ``"box"`` (VideoMix).
    """

    perspective: bool = False
    color: bool = False
    paste: bool = False
    mix: str | None = None

    def names(self) -> tuple[str, ...]:
        """The arrays of :func:`program_arrays`, in the order a multi-output ``fn.external_source`` gives them."""
        names = ["matrices"] + ["color"] * self.color + ["paste_index", "paste_matrices", "paste_box"] * self.paste
        if self.mix is not None:
            names += ["mix_index", "mix_box" if self.mix == "box" else "mix_lambda"]
        return tuple(names)


def _check_tables(tables) -> None:
    if not isinstance(tables, FrameTables):
        raise TypeError(f"`tables` must be FrameTables (pmg_dali.rules.frame_tables(program)), but got "
                        f"{type(tables).__name__}")


def _check_variant(variant) -> None:
    if not isinstance(variant, Variant):
        raise TypeError(f"`variant` must be a Variant (tables_variant, config_variant), but got "
                        f"{type(variant).__name__}")
    for flag in ("perspective", "color", "paste"):
        check_bool(f"variant.{flag}", getattr(variant, flag))
    check_choice("variant.mix", variant.mix, MIX_MODES)   # its words, not PMGConfig.mixup's ("videomix" is "box")


def _projective(tables: FrameTables) -> bool:
    """Whether any frame -> source map of ``tables`` (the clip's or the pasted patch's) is not affine."""
    maps = [tables.inverse] + ([tables.paste_inverse] if tables.paste_inverse is not None else [])
    return any(bool((m[..., 2, :2] != 0).any()) for m in maps)


def _pastes(tables: FrameTables) -> bool:
    """Whether any clip of ``tables`` pastes a non-empty cutmix box."""
    box = tables.paste_box
    return box is not None and bool(((box[..., 2] > box[..., 0]) & (box[..., 3] > box[..., 1])).any())


def tables_variant(tables: FrameTables, padding_mode: str) -> Variant:
    """The smallest :class:`Variant` that renders ``tables`` (a :class:`~pmg_dali.dali.ProgramRenderer`
    builds one graph per variant it meets)."""
    _check_tables(tables)
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    return Variant(perspective=padding_mode == "reflection" or _projective(tables),
                   color=not bool(tables.plain_color.all()), paste=_pastes(tables), mix=tables.mix_mode)


def config_variant(config: PMGConfig) -> Variant:
    """The :class:`Variant` that renders every program ``config`` can draw (one static graph per
    pipeline): perspective maps when a projective transform is drawn or the padding reflects (only
    ``warp_perspective`` reflects), colour when a colour transform is drawn, the paste with cutmix,
    and the Mixup of ``config.mixup`` (frame Mixup fed one lambda per frame, per-clip lambdas repeated)."""
    mix = {None: None, "frame": "frame", "videomix": "box"}[check_config(config).mixup]
    drawn = set(config.transforms)
    return Variant(perspective=bool(PROJECTIVE_TRANSFORMS & drawn) or config.padding_mode == "reflection",
                   color=bool(COLOR_TRANSFORMS & drawn), paste=bool(PASTE_TRANSFORMS & drawn), mix=mix)


def program_arrays(tables: FrameTables, variant: Variant) -> dict[str, np.ndarray]:
    """The arrays that feed a render graph of ``variant`` one batch of B clips, by name (:meth:`Variant.names`).

    From the program's :func:`pmg_dali.rules.frame_tables`: ``matrices`` (B, T, 2|3, 3) float32 frame ->
    source maps in DALI's coordinates (:func:`pmg_dali.geometry.dali_map`); ``color`` (B, T, 3, 4);
    ``paste_index`` (B,) int32, ``paste_matrices`` (B, T, 2|3, 3), ``paste_box`` (B, T, 4); ``mix_index``
    (B,) int32 with ``mix_lambda`` (B, 1) (``"clip"``) or (B, T, 1, 1, 1) (``"frame"``), or ``mix_box``
    (B, 4) (``"box"``). Parts the variant has and the program lacks are fed neutral (identity colour,
    empty paste boxes); a part the program has and the variant lacks is a ValueError (it would be lost);
    the Mixup mode must be the variant's (a per-clip lambda fits a per-frame graph).
    """
    _check_variant(variant)

    def as_array(x: torch.Tensor, dtype=np.float32) -> np.ndarray:
        return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=dtype)

    need = tables_variant(tables, "zeros")          # what the program itself needs (and `tables` checked)
    b, t = tables.inverse.shape[:2]
    missing = [part for part in ("perspective", "color", "paste") if getattr(need, part) and not getattr(variant, part)]
    mode = tables.mix_mode
    if mode != variant.mix and not (variant.mix == "frame" and mode == "clip"):
        missing.append(f"mix {mode!r}")
    if missing:
        raise ValueError(f"`program` must fit the render graph {variant}, but it needs {', '.join(missing)}")
    rows = 3 if variant.perspective else 2
    arrays = {"matrices": as_array(dali_map(tables.inverse)[..., :rows, :])}
    if variant.color:
        arrays["color"] = as_array(tables.color)
    if variant.paste and tables.paste_index is not None:
        arrays.update(paste_index=as_array(tables.paste_index, np.int32), paste_box=as_array(tables.paste_box),
                      paste_matrices=as_array(dali_map(tables.paste_inverse)[..., :rows, :]))
    elif variant.paste:                      # nothing pasted: each clip its own partner, empty boxes
        arrays.update(paste_index=np.arange(b, dtype=np.int32), paste_box=np.zeros((b, t, 4), np.float32),
                      paste_matrices=arrays["matrices"])
    if variant.mix is not None:
        arrays["mix_index"] = as_array(tables.mix_index, np.int32)
        if variant.mix == "box":
            arrays["mix_box"] = as_array(tables.mix_box)
        elif variant.mix == "frame":
            arrays["mix_lambda"] = as_array(tables.mix_lambda).reshape(b, t, 1, 1, 1)
        else:
            arrays["mix_lambda"] = as_array(tables.mix_lambda[:, :1])
    return arrays


def graph_motion(num_frames: int, variant: Variant, nodes: dict) -> GraphMotion:
    """The :class:`GraphMotion` of a ``variant`` graph whose arrays enter as ``nodes`` (name -> the
    ``fn.external_source`` node of :func:`program_arrays`' array of that name): exactly the arrays of
    :meth:`Variant.names`, since a part left out would be left out of the clips."""
    check_int("num_frames", num_frames, 1)
    _check_variant(variant)
    if not isinstance(nodes, dict):
        raise TypeError(f"`nodes` must be a dict of array name -> node, but got {type(nodes).__name__}")
    if sorted(nodes) != sorted(variant.names()):
        raise ValueError(f"`nodes` must hold exactly the arrays of {variant}, {variant.names()}, but got "
                         f"{tuple(nodes)}")
    return GraphMotion(num_frames, nodes["matrices"], perspective=variant.perspective, color=nodes.get("color"),
                       paste_index=nodes.get("paste_index"), paste_matrices=nodes.get("paste_matrices"),
                       paste_box=nodes.get("paste_box"), mix_index=nodes.get("mix_index"),
                       mix_lambda=nodes.get("mix_lambda"), mix_box=nodes.get("mix_box"))


class ProgramFeed:
    """An ``fn.external_source`` callback (``batch=True, batch_info=True``): the :func:`program_arrays` of
    batch ``info.iteration`` of epoch ``info.epoch_idx``, a program drawn on the host by
    :func:`pmg_dali.sampling.sample_program` from the ``"program"`` generator of
    :func:`pmg_dali.seeding.batch_generators` ``(seed, epoch, shard_id, iteration)`` -- exactly the
    program :class:`~pmg_dali.PseudoMotionLoader` draws for that batch on rank ``shard_id``.

    A pure function of ``info``, as DALI's checkpointing wants of a callback: a pipeline restored from
    a checkpoint asks again for the batch it stopped at. ``batches_per_epoch``: StopIteration from that
    iteration on (DALI's end of epoch; ``pipe.reset()`` starts the next); None: never (the pipeline's
    epoch then stays 0 and ``info.iteration`` counts every batch).
    """

    def __init__(self, config: PMGConfig, batch_size: int, seed: int = 0, shard_id: int = 0,
                 batches_per_epoch: int | None = None):
        self.config = dali_config(config)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed, self.shard_id = check_seed(seed), check_int("shard_id", shard_id, 0)
        self.batches_per_epoch = None if batches_per_epoch is None else check_int("batches_per_epoch",
                                                                                 batches_per_epoch, 1)
        self.variant = config_variant(config)
        self.names = self.variant.names()

    def __repr__(self) -> str:
        return (f"ProgramFeed(batch_size={self.batch_size}, seed={self.seed}, shard_id={self.shard_id}, "
                f"batches_per_epoch={self.batches_per_epoch}, {self.variant})")

    def program(self, epoch: int, iteration: int) -> MotionProgram:
        """The program of batch ``iteration`` of ``epoch``."""
        generator = batch_generators(self.seed, epoch, self.shard_id, iteration)["program"]
        return sample_program(self.config, self.batch_size, generator=generator)

    def __call__(self, info) -> tuple[np.ndarray, ...]:
        if self.batches_per_epoch is not None and info.iteration >= self.batches_per_epoch:
            raise StopIteration
        arrays = program_arrays(frame_tables(self.program(info.epoch_idx, info.iteration)), self.variant)
        return tuple(arrays[name] for name in self.names)


def dali_config(config, name: str = "config") -> PMGConfig:
    """``config`` as the DALI engine takes it: a :class:`~pmg_dali.PMGConfig` with ``recursion="composed"``
    (errors name the argument ``name``)."""
    engine("dali").check_recursion(config, name)
    return config


def _current_pipeline(caller: str):
    """The pipeline being defined; RuntimeError outside a ``@pipeline_def`` function."""
    pipe = Pipeline.current()
    if pipe is None:
        raise RuntimeError(f"{caller} adds nodes to a pipeline: call it inside a @pipeline_def function")
    return pipe


def feed_motion(feed: ProgramFeed) -> GraphMotion:
    """The :class:`GraphMotion` of ``feed``'s arrays: one multi-output ``fn.external_source`` (CPU; the
    warps take their per-frame matrices from the CPU) called with DALI's ``BatchInfo``. Call inside a
    ``@pipeline_def`` whose batch size is ``feed.batch_size``."""
    if not isinstance(feed, ProgramFeed):
        raise TypeError(f"`feed` must be a ProgramFeed, but got {type(feed).__name__}")
    batch_size = _current_pipeline("feed_motion").max_batch_size
    if feed.batch_size != batch_size:   # DALI would fail at run time and leave the pipeline unusable
        raise ValueError(f"`feed.batch_size` must be the pipeline's batch size, {batch_size}, but got "
                         f"{feed.batch_size}")
    nodes = fn.external_source(source=feed, num_outputs=len(feed.names), batch=True, batch_info=True)
    return graph_motion(feed.config.num_frames, feed.variant, dict(zip(feed.names, nodes)))


def pseudo_motion(images, config: PMGConfig, *, seed: int | None = None, shard_id: int = 0,
                  batches_per_epoch: int | None = None, unit: float = 255.0, exact: bool = True):
    """The drop-in graph helper: HWC images at ``config.size`` -> pseudo-motion clips of host-drawn programs.

    Example (inside your ``@pipeline_def``; full batches)::

        jpegs, labels = fn.readers.file(file_root=root, random_shuffle=True, pad_last_batch=True, name="Reader")
        images = fn.resize(fn.decoders.image(jpegs, device="mixed"), resize_x=224, resize_y=224)
        clips = pseudo_motion(images, cfg, batches_per_epoch=math.ceil(num_files / batch_size))

    Adds a :class:`ProgramFeed` for the pipeline's batch size: each batch's program is drawn on the host
    by :func:`pmg_dali.sampling.sample_program` -- every transform of ``config`` -- seeded from ``(seed,
    epoch, shard_id, iteration)`` as the loader seeds its batches (``seed``: None takes the pipeline's
    seed, 0 when it has none; pass each rank's ``shard_id``), and rendered by :func:`render_motion`
    (one static graph, :func:`config_variant`). ``batches_per_epoch``: end each epoch there -- your
    reader's batches per epoch, whole batches (``fn.readers.file(..., pad_last_batch=True)`` over
    ``num_shards`` shards: ``ceil(ceil(num_files / num_shards) / batch_size)``); None: never (DALI's epoch
    then stays 0 and ``iteration`` counts every batch). ``unit``: 255 for uint8 images, 1 for float images
    in [0, 1]; ``exact``: float intermediates (default; False keeps uint8 frames between the warp and the mix).
    """
    pipe = _current_pipeline("pseudo_motion")
    if seed is None:
        seed = 0 if pipe.seed is None or pipe.seed < 0 else pipe.seed
    feed = ProgramFeed(config, pipe.max_batch_size, seed, shard_id, batches_per_epoch)
    return render_motion(images, feed_motion(feed), config, unit, exact)
