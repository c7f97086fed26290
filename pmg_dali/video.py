"""Real videos: ``VideoFolder`` and :func:`decode_clip`, the one PyAV decoding path of the package
(``examples/videomae/finetune.py`` calls the same function in its DataLoader workers).

Layers: :func:`sample_clip_noise` draws all random numbers of a clip (a fixed count, whatever the
video) -> :func:`decode_clip` decodes and crops deterministically from that noise -> ``VideoFolder``
lists files, replaces unreadable ones and batches.

Temporal sampling of T frames from a video of n frames:

- uniform (``frame_stride=None``, default): the video is cut into T equal segments; frame i is taken
  from segment i, at its centre without noise, at a random position inside it with noise (segment
  jitter, TSN / VideoMAE fine-tuning style). Videos shorter than T repeat frames.
- strided (``frame_stride=s``): T frames s apart, a window of (T - 1) * s + 1 frames, centred without
  noise, at a random start with noise; frames past the end repeat the last frame.

Spatial (:func:`pmg_dali.sources.crop_box`, the rule ``ImageFolder`` uses): without noise, resize the
shorter side to cover ``size`` and centre-crop; with noise, one random-resized crop (area fraction
``scale``, aspect ``ratio``) shared by all frames of the clip.

GPU decoding (not implemented here): DALI's ``fn.readers.video`` (the ``dali`` extra) decodes H.264 /
HEVC on the GPU, but only constant-frame-rate files (it detects variable frame rate heuristically
and refuses such files: phone recordings, many webm), reads ``sequence_length`` frames ``stride``
apart rather than one frame per segment, and needs the whole file list when the pipeline is built.
This module keeps to PyAV on CPU workers, which reads every container FFmpeg reads.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_device, check_generator, check_int
from .config import parse_size
from .sources import _CROP_ATTEMPTS, CROP_RATIO, CROP_SCALE, ThreadMap, check_crop_ranges, check_indices, crop_box

__all__ = ["VIDEO_EXTENSIONS", "ClipNoise", "VideoFolder", "decode_clip", "sample_clip_noise",
           "temporal_indices"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv")


class ClipNoise(NamedTuple):
    """Random numbers of one clip, uniform in [0, 1): ``time`` (T,), ``crop`` (10, 4) (one row per
    random-resized-crop attempt: area, log-aspect, y, x)."""
    time: torch.Tensor
    crop: torch.Tensor


def sample_clip_noise(num_frames: int, generator: torch.Generator | None = None) -> ClipNoise:
    """Draw the noise of one clip: always T + 40 numbers, so a stream of clips stays aligned whatever
    the videos turn out to be (length, size, unreadable)."""
    device = generator.device if generator is not None else None    # noise drawn there, used on the CPU
    return ClipNoise(torch.rand(num_frames, generator=generator, device=device).cpu(),
                     torch.rand(_CROP_ATTEMPTS, 4, generator=generator, device=device).cpu())


def temporal_indices(num_video_frames: int, num_frames: int, frame_stride: int | None = None,
                     noise: torch.Tensor | None = None) -> list[int]:
    """Indices of the T = ``num_frames`` frames to take from a video of n = ``num_video_frames``.

    noise: (T,) uniform numbers (segment jitter / random start) or None (centred, deterministic).
    """
    n, T = num_video_frames, num_frames
    if frame_stride is None:
        offset = noise.tolist() if noise is not None else [0.5] * T
        return [min(int((i + offset[i]) * n / T), n - 1) for i in range(T)]
    span = (T - 1) * frame_stride + 1
    room = max(n - span, 0)
    start = int(float(noise[0]) * (room + 1)) if noise is not None else room // 2
    return [min(start + i * frame_stride, n - 1) for i in range(T)]


def _count_frames(av, path: str) -> int:
    """Frame count from the header, else by demuxing (no decoding) the first video stream."""
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        return stream.frames or sum(1 for packet in container.demux(stream) if packet.size)


def _read_frames(path: str, wanted: Callable[[int], list[int]]) -> list[np.ndarray]:
    """Decode ``path`` with PyAV; ``wanted(n)`` gives the indices of the frames to keep from n frames.
    Decodes sequentially up to the last wanted frame; a file shorter than its header says repeats
    its last decoded frame."""
    import av  # the `video` extra (checked by VideoFolder): only real videos need it

    n = _count_frames(av, path)
    if n <= 0:
        raise ValueError("no frames")
    indices = wanted(n)
    wanted_set, stop = set(indices), max(indices)
    keep, last = {}, None
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted_set:
                keep[i] = frame.to_ndarray(format="rgb24")
            last = (i, frame)
            if i >= stop:
                break
    if last is None:
        raise ValueError("no decodable frames")
    if last[0] not in keep:
        keep[last[0]] = last[1].to_ndarray(format="rgb24")
    return [keep[min(i, last[0])] for i in indices]


def decode_clip(path, num_frames: int, size, *, frame_stride: int | None = None,
                noise: ClipNoise | None = None, scale=CROP_SCALE, ratio=CROP_RATIO) -> torch.Tensor:
    """Decode T = ``num_frames`` frames of the video at ``path`` as uint8 (3, T, H, W) at ``size``.

    Temporal sampling and crop as the module docstring says; ``noise`` from :func:`sample_clip_noise`
    (None: deterministic). Raises whatever PyAV raises (``av.FFmpegError``, ``OSError``) or
    ``ValueError`` for a file without decodable video frames; callers decide how to skip it.
    """
    size = parse_size(size)
    frames = _read_frames(str(path), lambda n: temporal_indices(
        n, num_frames, frame_stride, None if noise is None else noise.time))
    clip = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)          # (T, 3, h, w)
    top, left, h, w = crop_box(clip.shape[-2], clip.shape[-1], size,
                               None if noise is None else noise.crop, scale, ratio)
    clip = clip[..., top:top + h, left:left + w]
    if (h, w) != size:
        clip = F.interpolate(clip.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        clip = clip.round_().clamp_(0, 255).to(torch.uint8)
    return clip.permute(1, 0, 2, 3).contiguous()


def _list_file(path: Path) -> tuple[list[str], list[int]]:
    """VideoMAE list file: one ``path label`` per line (the path may hold spaces; relative paths are
    relative to the list file's folder)."""
    files, labels = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"`root` list file {path} line {lineno} must be `path label`, but got {line!r}")
        files.append(str(path.parent / parts[0]))
        labels.append(int(parts[1]))
    return files, labels


class VideoFolder:
    """Every video file under ``root`` (mp4, avi, webm, mkv; any case; recursive; sorted), or the
    videos of a VideoMAE list file (``path label`` per line).

    ``load(indices, size, device, generator=None) -> uint8 (B, 3, T, H, W)``: see the module docstring
    for sampling. The clips of a batch are decoded by ``num_workers`` threads (FFmpeg decodes outside
    Python's lock, so they run in parallel; 0: in the calling thread; default None: one per core, at
    most 8), as ``ImageFolder``'s; the result does not depend on it. An unreadable video is warned
    about once (naming it), recorded in ``bad_files`` and replaced by the next readable video in file
    order (so the replacement is deterministic); the clip's noise is drawn before decoding, so the
    generator stream does not depend on failures.

    Attributes: ``files`` (paths), ``labels`` (ints: the list file's labels, or the index in
    ``classes`` of each video's top-level sub-folder; -1 for videos directly under ``root``),
    ``classes`` (sorted top-level sub-folder names; empty for a list file), ``bad_files``.
    """

    def __init__(self, root, num_frames: int = 16, frame_stride: int | None = None,
                 scale=CROP_SCALE, ratio=CROP_RATIO, num_workers: int | None = None):
        num_frames = check_int("num_frames", num_frames, 1)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        num_workers = min(8, cores) if num_workers is None else check_int("num_workers", num_workers, 0)
        frame_stride = None if frame_stride is None else check_int("frame_stride", frame_stride, 1)
        check_crop_ranges(scale, ratio)
        if importlib.util.find_spec("av") is None:   # else every video would look unreadable
            raise ImportError("VideoFolder decodes with PyAV: pip install av (or pip install 'pmg_dali[video]')")
        self.root = Path(root)
        self.num_frames, self.frame_stride, self.scale, self.ratio = num_frames, frame_stride, scale, ratio
        self.classes: list[str] = []
        if self.root.is_file():
            self.files, self.labels = _list_file(self.root)
        elif self.root.is_dir():
            paths = sorted(p for p in self.root.rglob("*")
                           if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
            top = [p.relative_to(self.root).parts[0] if len(p.relative_to(self.root).parts) > 1 else None
                   for p in paths]
            self.classes = sorted({t for t in top if t is not None})
            self.files = [str(p) for p in paths]
            self.labels = [self.classes.index(t) if t is not None else -1 for t in top]
        else:
            raise ValueError(f"`root` must be a folder of videos or a list file, but {str(root)!r} does not exist")
        if not self.files:
            raise ValueError(f"`root` holds no video files ({', '.join(VIDEO_EXTENSIONS)}): {str(root)!r}")
        self.bad_files: set[str] = set()
        self.num_workers, self._threads = num_workers, ThreadMap(num_workers, "VideoFolder")

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (f"VideoFolder(root={str(self.root)!r}, num_videos={len(self)}, num_frames={self.num_frames}, "
                f"frame_stride={self.frame_stride})")

    def decode(self, index: int, size, noise: ClipNoise | None = None) -> torch.Tensor:
        """uint8 (3, T, H, W) clip of video ``index``, or of the next readable one."""
        return self._collect([self._decode(index, parse_size(size), noise)])[0]

    def _decode(self, index: int, size: tuple[int, int], noise: ClipNoise | None):
        """(clip or None when no file is readable, [(path, error), ...] of the files that failed on
        the way); changes no state, so threads can run it side by side."""
        failures = []
        for k in range(len(self)):
            path = self.files[(index + k) % len(self)]
            if path in self.bad_files or any(path == p for p, _ in failures):
                continue
            try:
                return decode_clip(path, self.num_frames, size, frame_stride=self.frame_stride,
                                   noise=noise, scale=self.scale, ratio=self.ratio), failures
            except MemoryError:
                raise                 # the machine's problem, not the file's
            except Exception as err:  # noqa: BLE001 - any decoder failure means "unreadable"
                failures.append((path, err))
        return None, failures

    def _collect(self, results) -> list[torch.Tensor]:
        """The clips of ``_decode`` results, after adding their failed files to ``bad_files`` with
        one warning per new file, here in the caller's thread; RuntimeError when a clip found no
        readable video."""
        for _, failures in results:
            for path, err in failures:
                if path not in self.bad_files:
                    self.bad_files.add(path)
                    warnings.warn(f"VideoFolder: skipping unreadable video {path} ({type(err).__name__}: "
                                  f"{err}); it is replaced by the next readable video", RuntimeWarning, stacklevel=3)
        if any(clip is None for clip, _ in results):
            raise RuntimeError(f"VideoFolder: no readable video under {str(self.root)!r}")
        return [clip for clip, _ in results]

    def load(self, indices, size, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (B, 3, T, H, W) clips of videos ``indices`` at ``size`` on ``device``."""
        idx = check_indices(indices, len(self))
        size = parse_size(size)
        check_generator(generator)
        device = None if device is None else check_device(device)
        noise = [sample_clip_noise(self.num_frames, generator) if generator is not None else None
                 for _ in range(len(idx))]
        if not len(idx):
            return torch.empty(0, 3, self.num_frames, *size, dtype=torch.uint8, device=device)
        jobs = [(int(i), size, n) for i, n in zip(idx, noise)]
        results = self._threads.map(lambda job: self._decode(*job), jobs)
        return torch.stack(self._collect(results)).to(device)
