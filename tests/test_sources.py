"""Image sources: TensorImages and ImageFolder (pmg_dali.sources), checked against PIL.

The folder fixture holds an RGB JPEG (upper-case extension), an RGBA PNG,
a grey PNG, a tiny BMP, a WebP, a corrupt .jpg and a .txt, in nested folders.
"""
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import pmg_dali
from pmg_dali import ImageFolder, TensorImages, sources
from pmg_dali.sources import crop_box, scan_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients and a few discs (JPEG-friendly, so decoders agree closely)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    img = np.stack([np.sin(6 * xx + rng.uniform(0, 6)), np.cos(5 * yy + rng.uniform(0, 6)),
                    np.sin(4 * (xx + yy))], -1) * 90 + 128
    for _ in range(3):
        cy, cx, r = rng.uniform(0, 1, 3) * [height, width, min(height, width) / 3]
        side = max(height, width)
        img[np.hypot(yy * side - cy, xx * side - cx) < r] = rng.uniform(0, 255, 3)
    return img.clip(0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(smooth_image(60, 80)).save(tmp_path / "photo.JPG", quality=95)
    rgba = np.dstack([smooth_image(50, 40, 1), np.full((50, 40), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "sub" / "alpha.png")
    Image.fromarray(smooth_image(30, 30, 2)[..., 0], "L").save(tmp_path / "sub" / "grey.png")
    Image.fromarray(smooth_image(3, 5, 3)).save(tmp_path / "sub" / "deeper" / "tiny.bmp")
    Image.fromarray(smooth_image(40, 64, 4)).save(tmp_path / "web.webp", lossless=True)
    (tmp_path / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


FILES = ["photo.JPG", "sub/alpha.png", "sub/broken.jpg", "sub/deeper/tiny.bmp", "sub/grey.png", "web.webp"]


def pil_reference(path, size, box) -> np.ndarray:
    """Independent path: PIL decode, RGB, crop (top, left, h, w), PIL bilinear (antialiased) resize."""
    top, left, h, w = box
    with Image.open(path) as im:
        im = im.convert("RGB").crop((left, top, left + w, top + h))
        return np.asarray(im.resize((size[1], size[0]), Image.BILINEAR)).astype(np.int16)


def test_lists_six_images_sorted_recursive_case_insensitive(folder):
    source = ImageFolder(folder)
    assert [f.replace(os.sep, "/") for f in source.files] == sorted(FILES)
    assert len(source) == 6 and "num_images=6" in repr(source)


def test_all_load_and_the_corrupt_one_is_warned_once_and_replaced(folder):
    source = ImageFolder(folder)
    broken = source.files.index(os.path.join("sub", "broken.jpg"))
    with pytest.warns(RuntimeWarning, match="broken.jpg") as record:
        images = source.load(range(6), 24)
    assert len([w for w in record if "broken.jpg" in str(w.message)]) == 1
    assert images.shape == (6, 3, 24, 24) and images.dtype == torch.uint8
    assert source.bad_files == {str(folder / "sub" / "broken.jpg")}
    assert torch.equal(images[broken], images[broken + 1])                  # the next decodable file
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                      # no second warning
        again = source.load([broken], 24)
    assert torch.equal(again[0], images[broken])


@pytest.mark.parametrize("size", [32, (24, 40), (50, 20)])
def test_centre_crop_matches_pil(folder, size):
    source = ImageFolder(folder)
    hw = size if isinstance(size, tuple) else (size, size)
    for name in ["photo.JPG", "sub/alpha.png", "sub/grey.png", "web.webp", "sub/deeper/tiny.bmp"]:
        path = folder / name
        with Image.open(path) as im:
            width, height = im.size
        aspect = hw[1] / hw[0]                                              # largest centred box of it
        if width / height >= aspect:
            h, w = height, max(1, min(width, round(height * aspect)))
        else:
            h, w = max(1, min(height, round(width / aspect))), width
        ref = pil_reference(path, hw, ((height - h) // 2, (width - w) // 2, h, w))
        ours = source.load([source.files.index(name.replace("/", os.sep))], size)[0].permute(1, 2, 0).numpy()
        diff = np.abs(ours.astype(np.int16) - ref)
        assert diff.max() <= 3 and diff.mean() < 0.6, (name, diff.max(), diff.mean())


def test_random_resized_crop_uses_the_generator(folder):
    source = ImageFolder(folder)
    i = source.files.index("photo.JPG")
    a = source.load([i, i, i], 32, generator=torch.Generator().manual_seed(7))
    b = source.load([i, i, i], 32, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert (a[0] != a[1]).any() and (a[1] != a[2]).any()                    # three different crops
    noise = torch.rand(3, 10, 4, generator=torch.Generator().manual_seed(7))
    for k in range(3):
        box = crop_box(60, 80, (32, 32), noise[k], scale=(0.35, 1.0))
        ref = pil_reference(folder / "photo.JPG", (32, 32), box)
        assert np.abs(a[k].permute(1, 2, 0).numpy().astype(np.int16) - ref).max() <= 3


def test_crop_box_follows_the_random_resized_crop_rule():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        height, width = torch.randint(8, 300, (2,), generator=g).tolist()
        top, left, h, w = crop_box(height, width, (32, 32), torch.rand(10, 4, generator=g))
        assert 0 <= top <= height - h and 0 <= left <= width - w and h >= 1 and w >= 1
        if (h, w) != (min(height, width),) * 2:                              # not the fallback box
            assert 0.35 * height * width * 0.8 <= h * w <= height * width * 1.05
            assert 3 / 4 * 0.8 <= w / h <= 4 / 3 * 1.25
    assert crop_box(100, 200, (50, 50)) == (0, 50, 100, 100)
    assert crop_box(100, 200, (10, 40)) == (25, 0, 50, 200)


def test_modes_are_converted_to_rgb(tmp_path):
    grey16 = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 109)
    Image.fromarray(grey16).save(tmp_path / "a16.png")
    palette = Image.fromarray(smooth_image(20, 30)).convert("P", palette=Image.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "b_palette.png", transparency=0)
    Image.fromarray(smooth_image(20, 30)).convert("CMYK").save(tmp_path / "c_cmyk.jpg", quality=95)
    Image.fromarray(np.dstack([smooth_image(20, 30)[..., 0]] * 2), "LA").save(tmp_path / "d_la.png")
    source = ImageFolder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images = source.load(range(4), (20, 30))                            # same size: no resize
    assert images.shape == (4, 3, 20, 30) and not source.bad_files
    expected = np.clip(np.rint(grey16 / 257.0), 0, 255)
    for c in range(3):
        np.testing.assert_array_equal(images[0, c].numpy(), expected)
    ref = np.asarray(Image.open(tmp_path / "b_palette.png").convert("RGBA").convert("RGB"))
    np.testing.assert_array_equal(images[1].permute(1, 2, 0).numpy(), ref)
    ref = np.asarray(Image.open(tmp_path / "c_cmyk.jpg").convert("RGB"))
    np.testing.assert_array_equal(images[2].permute(1, 2, 0).numpy(), ref)
    assert torch.equal(images[3][0], images[3][1]) and torch.equal(images[3][1], images[3][2])


def test_large_jpeg_draft_decoding_stays_close_to_a_full_decode(tmp_path):
    Image.fromarray(smooth_image(480, 640)).save(tmp_path / "big.jpg", quality=95)
    ours = ImageFolder(tmp_path).load([0], 48)[0].permute(1, 2, 0).numpy().astype(np.int16)
    ref = pil_reference(tmp_path / "big.jpg", (48, 48), (0, 80, 480, 480))
    diff = np.abs(ours - ref)
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 25, (diff.mean(), np.percentile(diff, 99))


@pytest.mark.parametrize("orientation", [3, 6, 8, 5])
def test_exif_orientation_is_applied(tmp_path, orientation):
    """A photo stored sideways with an EXIF orientation tag loads as a viewer shows it: as the same
    picture stored upright (lossless PNG: equal pixels), also through a random crop; and through
    libjpeg's reduced decode of a large JPEG, close to PIL's own upright full decode."""
    upright = smooth_image(30, 50)
    stored = Image.fromarray(upright)
    inverse = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
               5: Image.Transpose.TRANSPOSE}[orientation]              # undone by exif_transpose
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.transpose(inverse).save(tmp_path / "a_tagged.png", exif=exif)
    stored.save(tmp_path / "b_upright.png")
    source = ImageFolder(tmp_path)
    for generator in (None, 3):
        g = lambda: None if generator is None else torch.Generator().manual_seed(generator)  # noqa: E731
        tagged, plain = (source.load([k], (12, 20), generator=g())[0] for k in (0, 1))
        assert torch.equal(tagged, plain)
    big = Image.fromarray(smooth_image(480, 640))
    big.transpose(inverse).save(tmp_path / "c_big.jpg", quality=95, exif=exif)
    ours = ImageFolder(tmp_path).load([2], (24, 32))[0].permute(1, 2, 0).numpy().astype(np.int16)
    with Image.open(tmp_path / "c_big.jpg") as im:
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB").resize((32, 24), Image.BILINEAR, reducing_gap=None))
    diff = np.abs(ours - ref)
    assert diff.mean() < 3.0, diff.mean()


def test_decompression_bomb_guard_is_kept_and_counts_as_broken(tmp_path, monkeypatch):
    assert Image.MAX_IMAGE_PIXELS is not None                               # pmg_dali did not disable it
    Image.fromarray(smooth_image(100, 100)).save(tmp_path / "a_bomb.png")
    Image.fromarray(smooth_image(10, 10)).save(tmp_path / "b_small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)                    # 100 * 100 > 2 * 1000
    source = ImageFolder(tmp_path)
    with pytest.warns(RuntimeWarning, match="a_bomb.png.*DecompressionBombError"):
        images = source.load([0, 1], 8)
    assert torch.equal(images[0], images[1])
    assert source.bad_files == {str(tmp_path / "a_bomb.png")}


def test_images_above_max_pixels_are_refused_as_broken(tmp_path):
    """A PNG (no reduced decode) above the limit is refused before decoding: one warning naming it,
    ``bad_files``, the next image instead; a JPEG as large is decoded at a reduced scale and kept."""
    Image.fromarray(smooth_image(1000, 1200)).save(tmp_path / "a_large.png")
    Image.fromarray(smooth_image(1000, 1200, 1)).save(tmp_path / "b_large.jpg", quality=90)
    Image.fromarray(smooth_image(40, 40, 2)).save(tmp_path / "c_small.png")
    source = ImageFolder(tmp_path, max_pixels=500_000)
    with pytest.warns(RuntimeWarning, match=r"a_large\.png.*more than max_pixels=500,000") as caught:
        out = source.load([0, 1, 2], 32)
    assert len(caught) == 1 and source.bad_files == {str(tmp_path / "a_large.png")}
    torch.testing.assert_close(out[0], out[1])                   # replaced by the next decodable file
    unlimited = ImageFolder(tmp_path, max_pixels=None).load([0, 1], 32)
    assert (out[1].int() - unlimited[1].int()).abs().max() <= 4  # the JPEG: 1/8-scale decode ~ full decode
    assert ImageFolder(tmp_path).load([0], 32).shape == (1, 3, 32, 32)    # the default limit is far above


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    """No more pixels than the output needs: a 1200 x 1000 JPEG for a 32^2 output is decoded at 1/8."""
    Image.fromarray(smooth_image(1000, 1200)).save(tmp_path / "big.jpg", quality=90)
    decoded = []
    original = sources.pil_to_rgb
    monkeypatch.setattr(sources, "pil_to_rgb", lambda im: decoded.append(im.size) or original(im))
    ImageFolder(tmp_path).load([0], 32)
    assert decoded == [(150, 125)]


def test_max_pixels_is_checked(tmp_path):
    Image.fromarray(smooth_image(10, 10)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="`max_pixels` must be >= 1, but got 0"):
        ImageFolder(tmp_path, max_pixels=0)
    with pytest.raises(TypeError, match="`max_pixels` must be an int, but got 1.5"):
        ImageFolder(tmp_path, max_pixels=1.5)


def test_all_broken_raises_naming_the_root(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"nope")
    (tmp_path / "b.png").write_bytes(b"nope either")
    source = ImageFolder(tmp_path)
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match=str(tmp_path)):
        source.load([0], 8)


def test_missing_empty_and_wrong_roots_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="`root` must be an existing folder, but .*missing.* does not exist"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="`root` holds no image files.*" + tmp_path.name):
        ImageFolder(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "image.gif").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="`root` holds no image files"):
        ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="is not a folder"):
        ImageFolder(tmp_path / "notes.txt")
    with pytest.raises(TypeError, match="`root` must be a str or os.PathLike"):
        ImageFolder(3)
    with pytest.raises(ValueError, match="`num_workers` must be >= 0, but got -1"):
        ImageFolder(REPO, num_workers=-1)
    with pytest.raises(TypeError, match="`num_workers` must be an int, but got 1.5"):
        ImageFolder(REPO, num_workers=1.5)
    with pytest.raises(TypeError, match="`scale` must be a pair of numbers"):
        ImageFolder(REPO, scale=0.5)
    with pytest.raises(ValueError, match=r"`ratio` must satisfy 0 < min <= max, but got \(0, 1\)"):
        ImageFolder(REPO, ratio=(0, 1))


def test_load_arguments_are_checked(folder):
    source = ImageFolder(folder)
    with pytest.raises(ValueError, match="`indices` must lie in"):
        source.load([6], 8)
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
        source.load([0], 8, generator=1)
    out = source.load([], 8)
    assert out.shape == (0, 3, 8, 8) and out.dtype == torch.uint8


def test_threads_give_the_same_images_and_the_source_pickles(folder):
    plain = ImageFolder(folder)
    threaded = ImageFolder(folder, num_workers=2)
    with pytest.warns(RuntimeWarning):
        a = plain.load(range(6), 16, generator=torch.Generator().manual_seed(1))
    with pytest.warns(RuntimeWarning):
        b = threaded.load(range(6), 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    clone = pickle.loads(pickle.dumps(threaded))
    assert torch.equal(clone.load(range(6), 16, generator=torch.Generator().manual_seed(1)), a)


def test_scan_skips_other_files_and_sorts(tmp_path):
    for d in range(5):
        (tmp_path / f"d{d}").mkdir()
        for i in range(40):
            ext = ["jpg", "PNG", "jpeg", "WebP", "bmp", "gif", "txt"][i % 7]
            (tmp_path / f"d{d}" / f"{i:03d}.{ext}").touch()
    files = scan_images(str(tmp_path))
    assert len(files) == 5 * sum(1 for i in range(40) if i % 7 < 5)
    assert files == sorted(files)


def test_tensor_images_gather_and_resize():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 10, 12), dtype=torch.uint8, generator=g)
    source = TensorImages(images)
    assert len(source) == 4
    assert torch.equal(source.load([2, 0], (10, 12)), images[[2, 0]])
    assert source.load([1], 5).shape == (1, 3, 5, 5)
    with pytest.raises(TypeError, match="`images` must be uint8"):
        TensorImages(images.float())
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator or None, but got int"):
        source.load([0], 5, generator=0)


def test_exports():
    assert {"SyntheticImages", "ImageFolder", "TensorImages"} <= set(pmg_dali.__all__)


@pytest.mark.gpu
def test_cuda_decoding_matches_cpu(folder):
    source = ImageFolder(folder)
    with pytest.warns(RuntimeWarning, match="broken.jpg"):
        gpu = source.load(range(6), 32, "cuda")
    cpu = ImageFolder(folder)
    with pytest.warns(RuntimeWarning):
        ref = cpu.load(range(6), 32, "cpu")
    assert gpu.device.type == "cuda" and gpu.shape == (6, 3, 32, 32)
    diff = (gpu.cpu().float() - ref.float()).abs()
    assert diff.mean() < 2.0                                                # nvJPEG vs libjpeg: IDCT and
    assert torch.quantile(diff.flatten(), 0.99) <= 24                       # chroma upsampling differ
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = source.load(range(6), 32, "cuda", generator=g1).cpu().float()
    b = cpu.load(range(6), 32, "cpu", generator=g2).float()
    assert (a - b).abs().mean() < 2.0
