"""Motion ground truth of a :class:`~pmg_dali.MotionProgram`: optical flow, point tracks, and the
annotations (masks, boxes, keypoints) of real clips moved by :meth:`pmg_dali.PseudoMotion.augment`.

Every clip is drawn from exact per-frame homographies, so where each source pixel is in each frame is
known exactly; these functions read it off the program. Pure functions, no RNG, no images.

Convention (the package's, :mod:`pmg_dali.geometry`):
    Pixel centres sit at integer coordinates ``(x, y)``, origin at the top-left pixel centre; a frame of
    size (H, W) covers ``x in [-0.5, W - 0.5)``, ``y in [-0.5, H - 0.5)``. ``homography[b, t]`` maps
    source pixel coordinates to frame-t pixel coordinates, so a source point ``s`` is at
    ``homography[b, t] @ s`` in frame t and a frame-t pixel ``p`` moves to
    ``homography[b, t + 1] @ inv(homography[b, t]) @ p`` in frame t + 1.

Layers. A frame shows one of up to four layers at each pixel (:data:`LAYERS`, :func:`visible_layers`),
composed by the reference renderer's own layering functions (:func:`pmg_dali.rules.paste_layer`,
:func:`pmg_dali.rules.mix_layers`): the clip's own image (warped by ``homography``), the cutmix patch
inside ``paste_box[b, t]`` (warped by ``paste_homography``) and, for VideoMix, the partner clip's image or
patch inside ``mix_box[b]``. Flow is the motion of the layer a pixel shows; tracks follow points of the
clip's own image.
Colour maps (fade, colour jitter) change no geometry: flow and tracks ignore them, so brightness
constancy holds up to ``color[t + 1]`` against ``color[t]`` and clamping.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ._checks import check_motion_program
from .config import parse_size
from .geometry import inverse_maps, warp_frames
from .rules import PASTE_PADDING, box_mask, box_pixels, in_box, mix_layers, paste_layer

if TYPE_CHECKING:     # program.py imports this module (MotionProgram.flow / .track)
    from .program import MotionProgram

__all__ = ["TARGETS", "TARGET_KEYS", "LAYERS", "flow_targets", "visible_layers", "track_points", "grid_points",
           "check_targets", "batch_targets", "apply_homography", "warp_masks", "warp_boxes", "warp_keypoints"]

TARGETS = ("flow", "tracks")
# The batch keys each target adds (PseudoMotionLoader).
TARGET_KEYS = {"flow": ("flow", "flow_valid"), "tracks": ("tracks", "tracks_visible")}

# The layers a frame pixel can show, in the order of visible_layers' codes: the clip's own image, its cutmix
# patch, and (Mixup / VideoMix) the partner clip's image and patch. A code + 2 is the same layer of the partner.
LAYERS = ("image", "patch", "partner image", "partner patch")
_PATCH, _PARTNER = LAYERS.index("patch"), LAYERS.index("partner image")

# Coordinates within this many pixels of an integer count as that integer (float32 round-off of the maps).
_EPS = 1e-3


def apply_homography(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``matrix @ (x, y, 1)`` with the projective divide, computed in float64.

    Args:
        points: (..., N, 2) pixel coordinates.
        matrix: (..., 3, 3), broadcast against ``points``' leading dimensions.
    Returns:
        (..., N, 2) float64; a point mapped to or behind the line at infinity (w <= 0) comes back
        as NaN.
    """
    p = points.to(torch.float64)
    m = matrix.to(device=p.device, dtype=torch.float64)
    xyw = p[..., 0:1] * m[..., None, :, 0] + p[..., 1:2] * m[..., None, :, 1] + m[..., None, :, 2]  # (..., N, 3)
    w = xyw[..., 2:]
    w = torch.where(w > 0, w, torch.full_like(w, float("nan")))
    return xyw[..., :2] / w


def _map_grid(matrix: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pixel centre of an (H, W) frame mapped by ``matrix`` (..., 3, 3): x and y, each (..., H, W)
    float32 (NaN where w <= 0). Each row of the matrix costs one pass over the pixels: its x and y terms
    are (..., 1, W) and (..., H, 1) and only their sum is full size."""
    h, w = size
    m = matrix.to(torch.float32)[..., None, None]                          # (..., 3, 3, 1, 1)
    xs = torch.arange(w, device=m.device, dtype=torch.float32)
    ys = torch.arange(h, device=m.device, dtype=torch.float32)[:, None]
    row = lambda r: (m[..., r, 0, :, :] * xs) + (m[..., r, 1, :, :] * ys + m[..., r, 2, :, :])  # noqa: E731
    den = row(2)
    den = den.masked_fill_(den <= 0, float("nan"))
    return row(0).div_(den), row(1).div_(den)


def _in_hull(x: torch.Tensor, y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear reads at (x, y) touch only pixels of an (H, W) image: ``0 <= x <= W - 1``, same for y
    (to ``_EPS``). NaN is outside."""
    h, w = size
    inside = (x - (w - 1) / 2).abs_() <= (w - 1) / 2 + _EPS
    return inside.logical_and_((y - (h - 1) / 2).abs_() <= (h - 1) / 2 + _EPS)


def _reads_in_box(x: torch.Tensor, y: torch.Tensor, box: torch.Tensor, every: bool) -> torch.Tensor:
    """Do all (``every``) / any of the pixel centres a bilinear read at (x, y) touches lie inside ``box``
    (pixel centres with ``x0 <= x < x1``, ``y0 <= y < y1``)? x, y (B, T', H, W); box (B, T', 4) or (B, 1, 4).

    The centres inside are the integers ``lo = ceil(x0) .. hi = ceil(x1) - 1`` (:func:`pmg_dali.rules.box_pixels`);
    a read at x touches ``floor(x)`` and ``ceil(x)`` (one pixel within ``_EPS`` of an integer). All are inside
    when ``lo - eps <= x <= hi + eps``, some are when ``lo - 1 + eps < x < hi + 1 - eps``: interval tests."""
    pixels = box_pixels(box[..., None, None, :]).to(x.dtype)          # the box's own dtype, as box_mask
    lo, hi = pixels[..., :2], pixels[..., 2:] - 1                              # (..., 1, 1, 2)
    if every:
        lo, hi = lo - _EPS, hi + _EPS
        inside = (x >= lo[..., 0]) & (x <= hi[..., 0])
        return inside.logical_and_(y >= lo[..., 1]).logical_and_(y <= hi[..., 1])
    lo, hi = lo - 1 + _EPS, hi + 1 - _EPS
    inside = (x > lo[..., 0]) & (x < hi[..., 0])
    return inside.logical_and_(y > lo[..., 1]).logical_and_(y < hi[..., 1])


def _layer_flow(homography: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """One rigidly warped layer: its flow (B, T - 1, 2, H, W), its positions x / y in frame t + 1 (each
    (B, T - 1, H, W)) and whether the frame-t pixel and its destination both read only source and frame
    pixels."""
    h64 = homography.to(torch.float64)
    inv = inverse_maps(h64[:, :-1])
    qx, qy = _map_grid(h64[:, 1:] @ inv, size)                             # frame t -> frame t + 1
    sx, sy = _map_grid(inv, size)                                          # frame t -> source
    valid = _in_hull(sx, sy, size).logical_and_(_in_hull(qx, qy, size))
    flow = qx.new_empty(*qx.shape[:2], 2, *size)
    torch.sub(qx, torch.arange(size[1], device=qx.device, dtype=qx.dtype), out=flow[:, :, 0])
    torch.sub(qy, torch.arange(size[0], device=qx.device, dtype=qx.dtype)[:, None], out=flow[:, :, 1])
    return flow, qx, qy, valid


def _unmixed_layers(program: MotionProgram, size: tuple[int, int]) -> torch.Tensor:
    """(B, T, H, W) uint8 codes of :data:`LAYERS` the unmixed clips show: the cutmix patch over the image,
    laid by :func:`pmg_dali.rules.paste_layer` as the renderer lays the pixels."""
    image = torch.zeros((), dtype=torch.uint8, device=program.device).expand(
        program.batch_size, 1, program.num_frames, *size)                  # (B, 1, T, H, W)
    if program.paste_index is None:
        return image[:, 0]
    return paste_layer(image, image.new_full((), _PATCH), program.paste_box)[:, 0]


def _own_dominates(program: MotionProgram) -> torch.Tensor:
    """(B, T) bool, frame Mixup: the clip's own layers weigh at least half (``mix_lambda >= 0.5``), else
    the partner's do."""
    lam = program.mix_lambda.to(device=program.device, dtype=torch.float32)
    lam = lam[:, None].expand(-1, program.num_frames) if lam.ndim == 1 else lam
    return lam >= 0.5


def _mixed_layers(program: MotionProgram, unmixed: torch.Tensor) -> torch.Tensor:
    """:func:`visible_layers` from the unmixed layer codes (B, T, H, W) of the program's clips."""
    if program.mix_index is None:
        return unmixed
    partner = unmixed[program.mix_index.to(unmixed.device)] + _PARTNER
    if program.mix_box is not None:
        return mix_layers(unmixed[:, None], partner[:, None], None, program.mix_box)[:, 0]
    return torch.where(_own_dominates(program)[..., None, None], unmixed, partner)


def visible_layers(program: MotionProgram, size) -> torch.Tensor:
    """Which layer each pixel of each rendered frame shows: (B, T, H, W) uint8 indices into :data:`LAYERS`.

    Composed exactly as the renderer composes the pixels (:func:`pmg_dali.rules.paste_layer`, then
    :func:`pmg_dali.rules.mix_layers` with the partner ``mix_index[b]``'s layers): the clip's own image,
    its cutmix patch inside ``paste_box[b, t]``, for VideoMix the partner's image or patch inside
    ``mix_box[b]``. Frame Mixup blends both clips at every pixel; the layer given is that of the clip
    weighted at least 1/2 (the clip's own when ``mix_lambda >= 0.5``), the one :func:`flow_targets`
    follows. ``size``: ``int`` or ``(H, W)`` of the rendered frames. On ``program.device``."""
    check_motion_program(program)
    return _mixed_layers(program, _unmixed_layers(program, parse_size(size)))


def _unmixed_flow(program: MotionProgram, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow (B, T - 1, 2, H, W) and validity (B, T - 1, H, W) of the unmixed clips: the clip's own image,
    and inside ``paste_box`` (:func:`pmg_dali.rules.box_mask`, as :func:`pmg_dali.rules.paste_layer`
    lays it) the cutmix patch."""
    flow, qx, qy, valid = _layer_flow(program.homography, size)
    if program.paste_index is None:
        return flow, valid
    box = program.paste_box.to(flow.device)
    rows = slice(None)
    if box.device.type == "cpu":   # the patch layer of the clips that paste only (on a GPU: no host sync)
        rows = (box[..., 2] > box[..., 0]).any(1).nonzero().flatten()
        if len(rows) == 0:
            return flow, valid
    box = box[rows]
    covered = _reads_in_box(qx[rows], qy[rows], box[:, 1:], every=False)
    pflow, pqx, pqy, pvalid = _layer_flow(program.paste_homography[rows], size)
    stays = _reads_in_box(pqx, pqy, box[:, 1:], every=True)
    # the patch where the renderer lays it: paste_layer's box_mask, on the program's own box values
    on_patch = box_mask(box[:, :-1], size)                                 # (B', T - 1, H, W)
    flow[rows] = torch.where(on_patch[:, :, None], pflow, flow[rows])
    valid[rows] = torch.where(on_patch, pvalid & stays, valid[rows] & ~covered)
    return flow, valid


def flow_targets(program: MotionProgram, size) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward optical flow of the clips ``program`` renders, frame t -> t + 1, and where it is valid.

    Frame t at pixel ``p`` shows what frame t + 1 shows at ``p + flow[b, t, :, p]``: the layer visible
    at ``p`` (see the module docstring) moved by ``layer_homography[t + 1] @ inv(layer_homography[t])``.
    So ``cv2.remap(frame[t + 1], p + flow[t])`` reproduces ``frame[t]`` on valid pixels, to bilinear
    interpolation error (and to the colour change between t and t + 1 for fade / colour jitter).

    A pixel is valid when
      - its layer's source point lies within the source's pixel centres (no padding is read: content
        from outside the source image is invalid),
      - its destination ``p + flow`` lies within frame t + 1's pixel centres (content leaving the frame
        is invalid), and
      - frame t + 1 shows the same layer at every pixel a bilinear read at ``p + flow`` touches: content
        about to be covered by the cutmix patch (or, for a patch pixel, leaving the patch) is invalid.
        Pixels uncovered in frame t + 1 have no pixel in frame t pointing at them.

    Mixing (the partner ``j = mix_index[b]``'s own flow and validity are ``flow[j]``, ``valid[j]``):
      - VideoMix: inside ``mix_box`` the partner's layers are shown, so flow and validity there are the
        partner's; the box is the same every frame, so content never crosses its edge validly (a
        destination whose read straddles the edge is invalid).
      - frame Mixup: every pixel blends two transparent layers, ``lambda`` of the clip's own and
        ``1 - lambda`` of the partner's. Flow is that of the dominant layer (the clip's own when
        ``lambda >= 0.5``, else the partner's), valid only where the same layer dominates frames t and
        t + 1 (per-frame lambdas can switch). The other layer, weighted at most 1/2, moves differently:
        brightness constancy does not hold for the blend, only for the dominant layer.

    Args:
        program: a :class:`MotionProgram` of B clips of T frames.
        size: ``int`` or ``(H, W)`` of the rendered frames: the size of the config the program was drawn
            for (the program is in its pixel coordinates).
    Returns:
        flow (B, T - 1, 2, H, W) float32, x then y, in pixels; valid (B, T - 1, H, W) bool. Both on
        ``program.device``. T = 1 gives empty tensors.
    """
    size = parse_size(size)
    check_motion_program(program)
    flow, valid = _unmixed_flow(program, size)
    if program.mix_index is None:
        return flow, valid
    partner = program.mix_index.to(flow.device)
    if program.mix_box is not None:
        box = program.mix_box.to(flow.device)[:, None]                         # (B, 1, 4)
        qx = flow[:, :, 0] + torch.arange(size[1], device=flow.device, dtype=flow.dtype)
        qy = flow[:, :, 1] + torch.arange(size[0], device=flow.device, dtype=flow.dtype)[:, None]
        pflow = flow[partner]
        pqx = pflow[:, :, 0] + torch.arange(size[1], device=flow.device, dtype=flow.dtype)
        pqy = pflow[:, :, 1] + torch.arange(size[0], device=flow.device, dtype=flow.dtype)[:, None]
        own_crosses = _reads_in_box(qx, qy, box, every=False)
        partner_stays = _reads_in_box(pqx, pqy, box, every=True)
        inside = box_mask(box, size)                                       # (B, 1, H, W): as mix_layers
        return (torch.where(inside[:, :, None], pflow, flow),
                torch.where(inside, valid[partner] & partner_stays, valid & ~own_crosses))
    own = _own_dominates(program)                                          # (B, T)
    clips = torch.arange(program.batch_size, device=flow.device)[:, None]
    dominant = torch.where(own[:, :-1], clips, partner[:, None])           # (B, T - 1): whose layer
    frames = torch.arange(program.num_frames - 1, device=flow.device)
    same = (own[:, :-1] == own[:, 1:])[:, :, None, None]
    return flow[dominant, frames], valid[dominant, frames].logical_and_(same)


def track_points(program: MotionProgram, points: torch.Tensor, size=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Where query points of frame 0 are in every frame, and whether they are visible there.

    A query point is a point of the clip's own image: the source point ``inv(homography[b, 0]) @ p``,
    at ``homography[b, t] @ inv(homography[b, 0]) @ p`` in frame t (computed in float64).

    Visibility at frame t: the point is not under the cutmix patch (``paste_box[b, t]``) nor, for
    VideoMix, inside ``mix_box[b]``; and, when ``size`` is given, it lies inside frame t
    (``-0.5 <= x < W - 0.5``, same for y) and its source point inside the source image (a query point
    over padding is never visible). Without ``size`` frame bounds are not checked. Frame Mixup occludes
    nothing: both layers are seen, the clip's own at weight ``mix_lambda``.

    Args:
        program: a :class:`MotionProgram` of B clips of T frames.
        points: (B, N, 2) float query points ``(x, y)`` in frame-0 pixel coordinates.
        size: ``int`` or ``(H, W)`` of the rendered frames, or None (no frame-bounds test).
    Returns:
        positions (B, T, N, 2) float32 and visible (B, T, N) bool, on ``program.device``.
    """
    check_motion_program(program)
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"`points` must be a torch.Tensor, but got {type(points).__name__}")
    b = program.batch_size
    if points.ndim != 3 or points.shape[0] != b or points.shape[2] != 2:
        raise ValueError(f"`points` must have shape (B, N, 2) with B = {b} (the program's clips), "
                         f"but got {tuple(points.shape)}")
    if not points.is_floating_point():
        raise TypeError(f"`points` must be floating point, but got {points.dtype}")
    h64 = program.homography.to(torch.float64)
    to_source = inverse_maps(h64[:, 0])                                     # (B, 3, 3)
    source = apply_homography(points.to(h64.device), to_source)            # (B, N, 2)
    positions = apply_homography(source[:, None], h64)                     # (B, T, N, 2)
    visible = _visible(positions, program, size)
    if size is not None:
        visible &= _point_in_box(source[:, None, :, :], _frame_box(parse_size(size), source))
    return positions.to(torch.float32), visible


def _point_in_box(positions: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """positions (B, T, N, 2) inside boxes (B, T or 1, 4) (:func:`pmg_dali.rules.in_box`)."""
    return in_box(positions[..., 0], positions[..., 1], box[..., None, :].to(positions.dtype))


def _frame_box(size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """The box (4,) of an (H, W) frame's pixel-centre extent, ``-0.5 <= x < W - 0.5`` (same for y), in
    ``like``'s dtype and device."""
    h, w = size
    return torch.tensor([-0.5, -0.5, w - 0.5, h - 0.5], dtype=like.dtype, device=like.device)


def _visible(positions: torch.Tensor, program: MotionProgram, size) -> torch.Tensor:
    """(B, T, N) bool: positions (B, T, N, 2) that are numbers, inside the frame (with ``size``) and under
    neither the cutmix patch nor the VideoMix box."""
    visible = ~positions.isnan().any(-1)
    if size is not None:
        visible &= _point_in_box(positions, _frame_box(parse_size(size), positions))
    if program.paste_index is not None:
        visible &= ~_point_in_box(positions, program.paste_box.to(positions.device))
    if program.mix_box is not None:
        visible &= ~_point_in_box(positions, program.mix_box.to(positions.device)[:, None])
    return visible


def grid_points(batch_size: int, size, stride: int, device=None) -> torch.Tensor:
    """(B, N, 2) float32 query points: the centres of the ``stride`` x ``stride`` cells of an (H, W)
    frame, row-major -- ``((j + 0.5) * stride - 0.5, (i + 0.5) * stride - 0.5)`` for the
    ``N = (H // stride) * (W // stride)`` whole cells. With ``stride`` = the ViT patch size these are
    the centres of the patch tokens, in token order."""
    h, w = parse_size(size)
    ys = (torch.arange(h // stride, dtype=torch.float32, device=device) + 0.5) * stride - 0.5
    xs = (torch.arange(w // stride, dtype=torch.float32, device=device) + 0.5) * stride - 0.5
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    return grid.expand(batch_size, -1, -1)


def check_targets(targets) -> tuple[str, ...]:
    """``targets`` as a tuple of distinct names from :data:`TARGETS`; None or empty -> ``()``."""
    if targets is None:
        return ()
    names = (targets,) if isinstance(targets, str) else targets
    if (not isinstance(names, (tuple, list)) or not all(isinstance(n, str) and n in TARGETS for n in names)
            or len(set(names)) != len(names)):
        raise ValueError(f"`targets` must be None or a tuple of distinct names from {TARGETS}, but got {targets!r}")
    return tuple(names)


def batch_targets(program: MotionProgram, targets: tuple[str, ...], size, stride: int,
                  device) -> dict[str, torch.Tensor]:
    """The loader's target keys of one batch, computed on ``device`` from its program:

    - ``"flow"``: ``"flow"`` (B, T - 1, 2, H, W) float32 and ``"flow_valid"`` (B, T - 1, H, W) bool
      (:func:`flow_targets`);
    - ``"tracks"``: ``"tracks"`` (B, T, N, 2) float32 and ``"tracks_visible"`` (B, T, N) bool
      (:func:`track_points` with ``size``) of the query points :func:`grid_points` ``(B, size, stride)``
      -- the centres of the patch tokens of frame 0, row-major, so ``tracks[:, 0]`` is that grid.
    """
    out = {}
    if not targets:
        return out
    program = program.to(device)
    if "flow" in targets:
        out["flow"], out["flow_valid"] = flow_targets(program, size)
    if "tracks" in targets:
        points = grid_points(program.batch_size, size, stride, device=program.device)
        out["tracks"], out["tracks_visible"] = track_points(program, points, size)
    return out


# ---- annotations of real clips moved by PseudoMotion.augment ---------------------------------------------------
def _check_frames(name: str, x, program: MotionProgram, shape: str, trailing: int) -> None:
    """``x`` is a tensor (B, T, ...) with B, T the program's and ``trailing`` more dimensions."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, but got {type(x).__name__}")
    b, t = program.batch_size, program.num_frames
    if x.ndim != 2 + trailing or tuple(x.shape[:2]) != (b, t):
        raise ValueError(f"`{name}` must have shape {shape} with B = {b}, T = {t} (the program's), "
                         f"but got {tuple(x.shape)}")


def warp_masks(masks: torch.Tensor, program: MotionProgram, fill: float = 0) -> torch.Tensor:
    """Masks of real clips moved as :meth:`pmg_dali.PseudoMotion.augment` moves their pixels.

    Frame t of clip b: ``masks[b, t]`` warped by ``homography[b, t]`` with nearest-neighbour reads,
    ``fill`` where the read falls outside the mask; inside ``paste_box[b, t]`` (cutmix) the partner's
    ``masks[paste_index[b], t]`` warped by ``paste_homography[b, t]`` (edge replicated, as the pixels);
    inside ``mix_box[b]`` (VideoMix) the partner clip's moved masks. Frame Mixup blends pixels, which a
    label mask cannot: the clip's own moved mask is returned (the partner's is ``out[mix_index]``).

    Args:
        masks: (B, T, H, W) or (B, T, C, H, W), any dtype (labels, bool, soft masks), at the frames'
            size -- the size the clips are rendered at (resize with nearest first if needed).
        program: the :class:`MotionProgram` given to ``augment``.
        fill: value outside the source frame (e.g. an ignore label).
    Returns:
        masks of the input's shape, dtype and device.
    """
    check_motion_program(program)
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"`masks` must be a torch.Tensor, but got {type(masks).__name__}")
    if masks.ndim == 4:
        return warp_masks(masks[:, :, None], program, fill)[:, :, 0]
    _check_frames("masks", masks, program, "(B, T, H, W) or (B, T, C, H, W)", 3)
    dtype = torch.float64 if masks.dtype in (torch.int32, torch.int64, torch.float64) else torch.float32
    x = masks.to(dtype).transpose(1, 2)                                    # (B, C, T, H, W)
    inside = warp_frames(torch.ones_like(x[:, :1]), program.homography, "zeros", mode="nearest") > 0.5
    moved = warp_frames(x, program.homography, "zeros", mode="nearest")
    out = torch.where(inside, moved, torch.as_tensor(fill, dtype=dtype))
    if program.paste_index is not None:
        patch = warp_frames(x[program.paste_index.to(x.device)], program.paste_homography, PASTE_PADDING,
                            mode="nearest")
        out = paste_layer(out, patch, program.paste_box)
    if program.mix_box is not None:
        out = mix_layers(out, out[program.mix_index.to(x.device)], None, program.mix_box)
    return out.transpose(1, 2).to(masks.dtype)


def warp_keypoints(keypoints: torch.Tensor, program: MotionProgram, size=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints of real clips moved as their pixels: frame t's points mapped by ``homography[b, t]``.

    Args:
        keypoints: (B, T, N, 2) ``(x, y)`` in frame-t pixel coordinates of the video at the frames' size.
        program: the :class:`MotionProgram` given to ``augment``.
        size: ``int`` or ``(H, W)`` of the frames, or None (no frame-bounds test).
    Returns:
        positions (B, T, N, 2) float32 and visible (B, T, N) bool: inside the frame (``-0.5 <= x < W - 0.5``,
        same for y; with ``size``) and not under the cutmix patch or the VideoMix box. Keypoints the
        partner's pixels carry into the patch are the partner's (``positions[paste_index]``).
    """
    check_motion_program(program)
    _check_frames("keypoints", keypoints, program, "(B, T, N, 2)", 2)
    if keypoints.shape[-1] != 2:
        raise ValueError(f"`keypoints` must have shape (B, T, N, 2), but got {tuple(keypoints.shape)}")
    positions = apply_homography(keypoints.to(program.device), program.homography)
    return positions.to(torch.float32), _visible(positions, program, size)


def _area(box: torch.Tensor) -> torch.Tensor:
    return (box[..., 2] - box[..., 0]).clamp(min=0) * (box[..., 3] - box[..., 1]).clamp(min=0)


def _intersect(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])], dim=-1)


def warp_boxes(boxes: torch.Tensor, program: MotionProgram, size) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes of real clips moved as their pixels: the four corners of frame t's box mapped by
    ``homography[b, t]``, their enclosing box clipped to the frame.

    Convention: boxes are ``(x0, y0, x1, y1)`` in the package's continuous pixel coordinates (pixel centres at
    integers), so a box of whole pixels ``i0 .. i1`` is ``(i0 - 0.5, .., i1 + 0.5, ..)`` and the frame is
    ``(-0.5, -0.5, W - 0.5, H - 0.5)``.

    Args:
        boxes: (B, T, N, 4) float, frame-t boxes of the video at the frames' size.
        program: the :class:`MotionProgram` given to ``augment``.
        size: ``int`` or ``(H, W)`` of the frames.
    Returns:
        boxes (B, T, N, 4) float32, clipped to the frame, and visibility (B, T, N) float32 in [0, 1]: the
        fraction of the enclosing box's area inside the frame and not under the cutmix patch or the
        VideoMix box (0 for an empty box).
    """
    check_motion_program(program)
    _check_frames("boxes", boxes, program, "(B, T, N, 4)", 2)
    if boxes.shape[-1] != 4:
        raise ValueError(f"`boxes` must have shape (B, T, N, 4), but got {tuple(boxes.shape)}")
    size = parse_size(size)
    x0, y0, x1, y1 = boxes.to(program.device, torch.float64).unbind(-1)
    corners = torch.stack([torch.stack([x0, y0], -1), torch.stack([x1, y0], -1), torch.stack([x1, y1], -1),
                           torch.stack([x0, y1], -1)], dim=-2)                  # (B, T, N, 4, 2)
    b, t, n = corners.shape[:3]
    moved = apply_homography(corners.reshape(b, t, n * 4, 2), program.homography).reshape(b, t, n, 4, 2)
    enclosing = torch.cat([moved.amin(-2), moved.amax(-2)], dim=-1)         # NaN corners propagate
    frame = _frame_box(size, moved)
    clipped = _intersect(enclosing, frame.expand_as(enclosing))
    clipped = torch.cat([clipped[..., :2], torch.maximum(clipped[..., 2:], clipped[..., :2])], dim=-1)
    seen = _area(clipped)
    occluders = []
    if program.paste_index is not None:
        occluders.append(program.paste_box.to(moved.device, torch.float64)[:, :, None])
    if program.mix_box is not None:
        occluders.append(program.mix_box.to(moved.device, torch.float64)[:, None, None])
    parts = [_intersect(clipped, o.expand_as(clipped)) for o in occluders]
    for part in parts:
        seen = seen - _area(part)
    if len(parts) == 2:
        seen = seen + _area(_intersect(parts[0], parts[1]))
    total = _area(enclosing)
    visibility = torch.where(total > 0, seen / total.clamp(min=1e-12), torch.zeros_like(total))
    visibility = torch.nan_to_num(visibility, nan=0.0).clamp(0, 1)
    return clipped.to(torch.float32), visibility.to(torch.float32)
