"""Image sources: anything with ``len(source)`` and
``source.load(indices, size, device, generator=None) -> uint8 (B, 3, H, W)``.

``TensorImages`` (in-memory tensors) and ``ImageFolder`` (image files, decoded with nvJPEG on CUDA
or PIL on the CPU) live here; ``SyntheticImages`` (data-free) in :mod:`pmg_dali.synthetic`.
"""
from __future__ import annotations

import io
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ._checks import check_device, check_generator, check_int, check_range
from .config import parse_size

__all__ = ["TensorImages", "ImageFolder", "IMG_EXTENSIONS", "check_indices", "check_generator", "scan_images",
           "check_crop_ranges", "crop_box", "resized_crop", "pil_to_rgb", "decode_pil", "CROP_SCALE", "CROP_RATIO",
           "MAX_PIXELS"]


def check_indices(indices, length: int) -> torch.Tensor:
    """``indices`` (sequence or 1-D tensor of ints in [0, length)) -> CPU long tensor."""
    idx = torch.as_tensor(indices)
    if idx.ndim != 1 or (idx.numel() and (idx.is_floating_point() or idx.dtype == torch.bool)):
        raise ValueError(f"`indices` must be a 1-D sequence of ints, but got shape {tuple(idx.shape)} "
                         f"and dtype {idx.dtype}")
    idx = idx.long().cpu()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= length):
        raise ValueError(f"`indices` must lie in [0, {length}), but got values from "
                         f"{int(idx.min())} to {int(idx.max())}")
    return idx


class TensorImages:
    """An in-memory (N, 3, H, W) uint8 tensor as an image source.

    ``load`` gathers the requested images, moves them to ``device`` and resizes them to ``size``
    (antialiased bilinear) when their size differs. The tensor is kept where it is given: put it on
    the GPU once to avoid a host-to-device copy per batch.
    """

    def __init__(self, images: torch.Tensor):
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"`images` must be a torch.Tensor, but got {type(images).__name__}")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"`images` must have shape (N, 3, H, W), but got {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            raise TypeError(f"`images` must be uint8, but got {images.dtype}")
        if images.shape[0] == 0:
            raise ValueError("`images` must hold at least one image, but got N = 0")
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return f"TensorImages(num_images={len(self)}, size={tuple(self.images.shape[-2:])})"

    def load(self, indices, size, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (B, 3, H, W) images ``indices`` at ``size`` on ``device``; ``generator`` is unused
        (the images are deterministic)."""
        idx = check_indices(indices, len(self))
        size = parse_size(size)
        check_generator(generator)
        out = self.images[idx.to(self.images.device)].to(None if device is None else check_device(device))
        if tuple(out.shape[-2:]) != size and out.shape[0]:
            out = F.interpolate(out.float(), size=size, mode="bilinear", antialias=True,
                                align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
        return out


# ----------------------------------------------------------------------------------------------
# ImageFolder
# ----------------------------------------------------------------------------------------------

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
CROP_SCALE = (0.35, 1.0)     # random-resized-crop area fraction: ImageFolder, VideoFolder, DALI's folder_pipeline
CROP_RATIO = (3 / 4, 4 / 3)  # and aspect ratio (torchvision's)
MAX_PIXELS = 50_000_000      # default limit on the pixels decoded for one image (about 150 MB as RGB)
_CROP_ATTEMPTS = 10      # rows of noise (area, log-aspect, y, x) that crop_box consumes per image


def scan_images(root: str, extensions=IMG_EXTENSIONS) -> list[str]:
    """Sorted paths, relative to ``root``, of the files under it (recursively) whose extension is in
    ``extensions`` (any case). An ``os.scandir`` walk: no ``stat`` per file on common file
    systems, symlinked folders are not followed (like ``os.walk``), unreadable folders are skipped."""
    exts = tuple(e.lower() for e in extensions)
    found, stack = [], [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as entries:
                for entry in entries:
                    path = os.path.join(rel, entry.name) if rel else entry.name
                    if entry.name.lower().endswith(exts):
                        if entry.is_file():
                            found.append(path)
                    elif entry.is_dir(follow_symlinks=False):
                        stack.append(path)
        except OSError:
            continue
    found.sort()
    return found


def check_crop_ranges(scale, ratio, names: tuple[str, str] = ("scale", "ratio")) -> None:
    """``scale`` (area fraction) and ``ratio`` (aspect) ranges of :func:`crop_box`: pairs of numbers
    with 0 < min <= max (<= 1 for ``scale``); errors name the arguments ``names``."""
    check_range(names[0], scale, 0, 1, open_low=True)
    check_range(names[1], ratio, 0, open_low=True)


def crop_box(height: int, width: int, size: tuple[int, int], noise: torch.Tensor | None = None,
             scale=CROP_SCALE, ratio=CROP_RATIO) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the region of a ``height`` x ``width`` image that is resized to ``size``.

    noise None: the largest centred box of the output aspect (= resize the shorter side, centre crop).
    noise (10, 4) uniform numbers: torchvision's random-resized-crop rule -- per attempt, area fraction
    in ``scale``, log-uniform aspect in ``ratio``, then the position; the first attempt that fits,
    else the centred box.
    """
    if noise is not None:
        log_r = (math.log(ratio[0]), math.log(ratio[1]))
        for area_u, ratio_u, y_u, x_u in noise.tolist():
            area = height * width * (scale[0] + area_u * (scale[1] - scale[0]))
            aspect = math.exp(log_r[0] + ratio_u * (log_r[1] - log_r[0]))
            w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < w <= width and 0 < h <= height:
                return int(y_u * (height - h + 1)), int(x_u * (width - w + 1)), h, w
    aspect = size[1] / size[0]
    if width / height >= aspect:
        h, w = height, max(1, min(width, round(height * aspect)))
    else:
        h, w = max(1, min(height, round(width / aspect))), width
    return (height - h) // 2, (width - w) // 2, h, w


def resized_crop(image: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """uint8 (3, h, w) -> uint8 (3, H, W): the ``box`` (top, left, h, w) region, resized with
    antialiased bilinear interpolation (``align_corners=False``, like PIL's resize). On the CPU
    torch's uint8 kernel (SIMD, channels-last) is used, on CUDA the float one; they agree to +-1."""
    top, left, h, w = box
    crop = image[:, top:top + h, left:left + w]
    if (h, w) == tuple(size):
        return crop.contiguous()
    if crop.device.type == "cpu":
        return F.interpolate(crop[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    out = F.interpolate(crop[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(torch.uint8)


def pil_to_rgb(image) -> np.ndarray:
    """A PIL image of any mode -> (H, W, 3) uint8 RGB. 16-bit and 32-bit grey ("I;16*", "I") are
    scaled by 1/257 (0-65535 -> 0-255); alpha is dropped (like torchvision's ``pil_loader``);
    palette, grey, CMYK and YCbCr go through ``Image.convert``."""
    if image.mode.startswith("I"):
        grey = np.asarray(image, dtype=np.float64) / 257.0
        return np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.array(image.convert("RGB"))           # a writable copy, for torch.from_numpy


def decode_pil(path: str, size: tuple[int, int], noise: torch.Tensor | None = None,
               scale=CROP_SCALE, ratio=CROP_RATIO, max_pixels: int | None = MAX_PIXELS) -> torch.Tensor:
    """Decode one file with PIL and return its resized crop, uint8 (3, H, W) on the CPU.

    JPEGs whose crop is at least four times the output size are decoded at 1/2, 1/4 or 1/8 scale by
    libjpeg (``Image.draft``, DCT scaling: much faster and smaller), leaving at least a 2x antialiased
    resize; other formats have no reduced decode. An image that would still decode to more than
    ``max_pixels`` pixels (None: no limit) raises ``ValueError`` before anything is decoded, as PIL's
    decompression-bomb guard (which stays on) does for bombs.
    """
    with Image.open(path) as im:
        orientation = exif_orientation(im)
        turned = orientation in (5, 6, 7, 8)                        # a quarter turn: width and height swap
        upright = lambda wh: wh[::-1] if turned else wh             # noqa: E731 (size as displayed)
        width, height = upright(im.size)
        top, left, h, w = crop_box(height, width, size, noise, scale, ratio)
        reduce = min(h / size[0], w / size[1])
        if im.format == "JPEG" and reduce >= 4:                     # keep >= 2x for the antialiased resize
            k = 8 if reduce >= 16 else 4 if reduce >= 8 else 2
            im.draft(None, (im.size[0] // k, im.size[1] // k))
            drafted_w, drafted_h = upright(im.size)
            fy, fx = drafted_h / height, drafted_w / width
            top, left = int(top * fy), int(left * fx)
            h, w = max(1, min(round(h * fy), drafted_h - top)), max(1, min(round(w * fx), drafted_w - left))
        if max_pixels is not None and im.size[0] * im.size[1] > max_pixels:
            raise ValueError(f"the image is {width}x{height} and would decode to {im.size[0] * im.size[1]:,} "
                             f"pixels, more than max_pixels={max_pixels:,}")
        array = pil_to_rgb(im.transpose(UPRIGHT[orientation]) if orientation != 1 else im)
    return resized_crop(torch.from_numpy(array).permute(2, 0, 1), (top, left, h, w), size)


# the transpose that turns an image with EXIF orientation k upright (as PIL's ImageOps.exif_transpose,
# without rewriting the EXIF block, which can fail on a malformed one)
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def exif_orientation(image) -> int:
    """The EXIF orientation tag (1-8) of an open PIL image; 1 (upright) when absent or unreadable."""
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 -- a broken EXIF block is no reason to refuse the pixels
        return 1
    return value if value in range(1, 9) else 1


def _decode_jpegs_cuda(datas: list, device) -> list:
    """nvJPEG decode of JPEG byte strings to uint8 (3, h, w) tensors on ``device``, one batched
    call; if it fails, one call per image, None for those that still fail (PIL then tries them)."""
    from torchvision.io import ImageReadMode, decode_jpeg
    tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # torchvision 0.29 deprecates its decoders
        try:
            return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device))
        except Exception:  # noqa: BLE001 -- find the culprit(s) one by one
            out = []
            for t in tensors:
                try:
                    out.append(decode_jpeg(t, mode=ImageReadMode.RGB, device=device))
                except Exception:  # noqa: BLE001
                    out.append(None)
            return out


class ThreadMap:
    """``map(fn, items)`` on a pool of ``workers`` threads started at first use (0, or fewer than two
    items: in the calling thread), for decoders that run outside Python's lock (PIL, FFmpeg). The
    pool is not pickled: a copy (a DataLoader worker) starts its own."""

    def __init__(self, workers: int, name: str):
        self.workers, self.name, self._pool = workers, name, None

    def __getstate__(self):
        return {**self.__dict__, "_pool": None}

    def map(self, fn, items: list) -> list:
        if self.workers == 0 or len(items) < 2:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name)
        return list(self._pool.map(fn, items))


class ImageFolder:
    """Every image file under ``root`` (jpg, jpeg, png, webp, bmp; any case; recursive; sorted).

    Construction only lists the files (an ``os.scandir`` walk; nothing is opened). ``load`` decodes:

    - on CUDA, JPEGs (RGB / grey) in one batch with nvJPEG (``torchvision.io.decode_jpeg(...,
      device="cuda")``), crop and resize on the GPU; other formats (and CMYK JPEGs, and JPEGs with an
      EXIF orientation other than upright) with PIL;
    - on the CPU, with PIL (in ``num_workers`` threads when > 0), JPEGs reduced by libjpeg's DCT
      scaling where the crop is at least four times the output.

    Every image is turned upright as its EXIF orientation tag says (as a photo viewer shows it, as PIL's
    ``ImageOps.exif_transpose`` does) and becomes RGB uint8 (grey, palette, alpha, 16-bit and CMYK converted,
    see :func:`pil_to_rgb`), then:

    - ``generator=None``: the largest centred box of the output aspect, resized (= resize the
      shorter side and centre-crop; the aspect ratio is kept);
    - with a ``generator``: a random-resized crop (area fraction ``scale`` = (0.35, 1), aspect
      ``ratio`` = (3/4, 4/3), torchvision's rule; 40 numbers per image drawn from the generator
      before decoding, so its stream does not depend on the files), then the resize;

    both antialiased bilinear. Decoding is bounded: JPEGs much larger than the crop are decoded at a
    reduced scale (see :func:`decode_pil`; on CUDA they go to PIL instead of nvJPEG when the full image
    would exceed ``max_pixels``), and an image that would still decode to more than ``max_pixels``
    pixels is refused as undecodable. A file that cannot be decoded (corrupt, truncated, unsupported,
    too large, a decompression bomb: PIL's ``Image.MAX_IMAGE_PIXELS`` guard stays on) is warned about once,
    naming it, recorded in ``bad_files`` and replaced by the next decodable file in sorted order,
    with the same crop numbers -- never an exception mid-epoch; only when no file decodes at all
    is a ``RuntimeError`` raised.

    Args:
        root: the folder.
        num_workers: CPU decoding threads (0: decode in the calling thread).
        scale, ratio: random-resized-crop ranges.
        max_pixels: the most pixels one image may decode to (default 50 million, about 150 MB as RGB;
            None: no limit beyond PIL's bomb guard).

    Attributes: ``root``, ``files`` (sorted paths relative to ``root``), ``bad_files`` (set of paths).
    """

    def __init__(self, root, num_workers: int = 0, scale=CROP_SCALE, ratio=CROP_RATIO,
                 max_pixels: int | None = MAX_PIXELS):
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"`root` must be a str or os.PathLike, but got {type(root).__name__}")
        num_workers = check_int("num_workers", num_workers, 0)
        check_crop_ranges(scale, ratio)
        self.max_pixels = None if max_pixels is None else check_int("max_pixels", max_pixels, 1)
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise ValueError(f"`root` must be an existing folder, but {self.root!r} "
                             f"{'is not a folder' if os.path.exists(self.root) else 'does not exist'}")
        self.files = scan_images(self.root)
        if not self.files:
            raise ValueError(f"`root` holds no image files ({', '.join(IMG_EXTENSIONS)}, any case, "
                             f"recursively): {self.root!r}")
        self.num_workers, self.scale, self.ratio = num_workers, tuple(scale), tuple(ratio)
        self.bad_files: set[str] = set()
        self._threads = ThreadMap(num_workers, "ImageFolder")

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (f"ImageFolder(root={self.root!r}, num_images={len(self)}, num_workers={self.num_workers}, "
                f"max_pixels={self.max_pixels})")

    def path(self, index: int) -> str:
        return os.path.join(self.root, self.files[index])

    def _decode_or_error(self, item):
        index, noise, size = item
        path = self.path(index)
        if path in self.bad_files:
            return None
        try:
            return decode_pil(path, size, noise, self.scale, self.ratio, self.max_pixels)
        except Exception as err:  # noqa: BLE001 -- any decoder failure means "undecodable"
            return err

    def _record_bad(self, index: int, err: Exception) -> None:
        path = self.path(index)
        if path not in self.bad_files:
            self.bad_files.add(path)
            warnings.warn(f"ImageFolder: cannot decode {path} ({type(err).__name__}: {err}); it is "
                          "replaced by the next decodable image", RuntimeWarning, stacklevel=4)

    def _replace(self, index: int, noise, size, err) -> torch.Tensor:
        """The image shown for ``index`` whose own file failed with ``err`` (None: known bad): the
        next decodable file in sorted order, with the same crop numbers."""
        if err is not None:
            self._record_bad(index, err)
        for k in range(1, len(self)):
            other = (index + k) % len(self)
            result = self._decode_or_error((other, noise, size))
            if isinstance(result, torch.Tensor):
                return result
            if result is not None:
                self._record_bad(other, result)
        raise RuntimeError(f"ImageFolder: no image under {self.root!r} could be decoded "
                           f"({len(self.bad_files)} undecodable files)")

    def _read_jpeg(self, index: int):
        """Bytes of a baseline RGB / grey JPEG for nvJPEG, False for anything else PIL should
        decode (also a JPEG larger than ``max_pixels``: PIL decodes it at a reduced scale or refuses
        it), None for a known bad file, or the exception (header unreadable, bomb)."""
        path = self.path(index)
        if path in self.bad_files:
            return None
        try:
            with open(path, "rb") as f:
                data = f.read()
            with Image.open(io.BytesIO(data)) as im:            # header only; the bomb check runs here
                small = self.max_pixels is None or im.size[0] * im.size[1] <= self.max_pixels
                upright = exif_orientation(im) == 1         # PIL turns the others upright
                return data if im.format == "JPEG" and im.mode in ("RGB", "L") and small and upright else False
        except Exception as err:  # noqa: BLE001
            return err

    def _load_cuda(self, idx: list, noise: list, size, device) -> list:
        """nvJPEG for the JPEGs of the batch (one batched call), PIL for the rest; crops on the GPU."""
        read = self._threads.map(self._read_jpeg, idx)
        rows = [r for r, data in enumerate(read) if isinstance(data, bytes)]
        full = dict(zip(rows, _decode_jpegs_cuda([read[r] for r in rows], device))) if rows else {}
        out = [None] * len(idx)
        for r, image in full.items():
            if image is not None:
                box = crop_box(image.shape[1], image.shape[2], size, noise[r], self.scale, self.ratio)
                out[r] = resized_crop(image, box, size)
        cpu_rows = [r for r in range(len(idx)) if out[r] is None and not isinstance(read[r], Exception)]
        decoded = self._threads.map(self._decode_or_error, [(idx[r], noise[r], size) for r in cpu_rows])
        for r, result in zip(cpu_rows, decoded):
            ok = isinstance(result, torch.Tensor)
            out[r] = result if ok else self._replace(idx[r], noise[r], size, result)
        for r in range(len(idx)):
            if out[r] is None:                                   # header failed
                out[r] = self._replace(idx[r], noise[r], size, read[r])
        return [image.to(device) for image in out]

    def load(self, indices, size, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (B, 3, H, W) images ``indices`` at ``size`` on ``device`` (default CPU); a
        random-resized crop from ``generator`` when given, else the centred crop."""
        idx = check_indices(indices, len(self)).tolist()
        size = parse_size(size)
        check_generator(generator)
        device = check_device("cpu" if device is None else device)
        noise = [None] * len(idx)
        if generator is not None:
            noise = list(torch.rand(len(idx), _CROP_ATTEMPTS, 4, generator=generator,
                                    device=generator.device).cpu().unbind(0))
        if not idx:
            return torch.empty(0, 3, *size, dtype=torch.uint8, device=device)
        if device.type == "cuda":
            images = self._load_cuda(idx, noise, size, device)
        else:
            images = self._threads.map(self._decode_or_error, [(i, n, size) for i, n in zip(idx, noise)])
            images = [im if isinstance(im, torch.Tensor) else self._replace(i, n, size, im)
                      for i, n, im in zip(idx, noise, images)]
        return torch.stack(images).to(device)
