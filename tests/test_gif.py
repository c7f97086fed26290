"""pmg_dali.gif: frames in, a GIF that PIL reads back with the same frame count, size and pixels; one palette
for all frames (read from the GIF's own blocks); the clip sheet's layout; bad arguments named."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pmg_dali.gif import clip_sheet, write_gif


def gif_color_tables(path: Path) -> tuple[bool, list[bool]]:
    """(global colour table?, [local colour table? per frame]) read from the GIF blocks directly."""
    data = path.read_bytes()
    flags, i, local = data[10], 13, []
    if flags & 0x80:
        i += 3 * 2 ** ((flags & 7) + 1)
    while i < len(data) and data[i] != 0x3B:
        if data[i] == 0x21:                                    # extension: label, then sub-blocks
            i += 2
        else:                                                  # 0x2C image descriptor
            f = data[i + 9]
            local.append(bool(f & 0x80))
            i += 10 + (3 * 2 ** ((f & 7) + 1) if f & 0x80 else 0) + 1    # + LZW minimum code size
        while data[i]:
            i += data[i] + 1
        i += 1
    return bool(flags & 0x80), local


def read_gif(path: Path) -> tuple[list[np.ndarray], list[int]]:
    """Every frame as uint8 (H, W, 3) RGB and its duration in ms, as PIL reads them."""
    frames, durations = [], []
    with Image.open(path) as gif:
        for t in range(gif.n_frames):
            gif.seek(t)
            frames.append(np.asarray(gif.convert("RGB")))
            durations.append(gif.info["duration"])
    return frames, durations


def moving_frames(num_frames: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = (rng.random((24, 40, 3)) * 255).astype(np.uint8)
    frames = np.stack([np.roll(base, 3 * t, axis=1) for t in range(num_frames)])
    frames[3, :, :8] = (250, 0, 0)                             # a colour only one frame has
    return frames


def few_colour_frames(num_frames: int = 5, height: int = 12, width: int = 20) -> np.ndarray:
    """Frames of 4 flat colours in moving bands: fewer colours than a palette holds, so they survive exactly."""
    colours = np.array([(0, 0, 0), (255, 255, 255), (200, 30, 10), (20, 90, 240)], np.uint8)
    x = np.arange(width)[None, None, :] + np.arange(num_frames)[:, None, None] + np.arange(height)[None, :, None] // 4
    return colours[(x // 3) % 4]                                                     # (T, H, W, 3)


def test_frames_in_same_frames_out(tmp_path):
    frames = few_colour_frames()
    write_gif(frames, tmp_path / "a.gif", ms_per_frame=80)
    read, durations = read_gif(tmp_path / "a.gif")
    assert len(read) == len(frames) and read[0].shape == frames[0].shape == (12, 20, 3)
    assert all(np.array_equal(r, f) for r, f in zip(read, frames))
    assert durations == [80] * len(frames)


def test_a_tensor_and_a_str_path_are_taken(tmp_path):
    frames = few_colour_frames(num_frames=1)
    write_gif(torch.from_numpy(frames), str(tmp_path / "one.gif"))
    read, _ = read_gif(tmp_path / "one.gif")
    assert len(read) == 1 and np.array_equal(read[0], frames[0])


def test_one_palette_for_all_frames(tmp_path):
    frames = moving_frames()
    write_gif(frames, tmp_path / "a.gif")
    assert gif_color_tables(tmp_path / "a.gif") == (True, [False] * len(frames))
    read, _ = read_gif(tmp_path / "a.gif")
    assert len(read) == len(frames)
    for t, (r, f) in enumerate(zip(read, frames)):
        error = np.abs(r.astype(float) - f).mean()
        assert error < 25, (t, error)
    # PIL's default writer gives every frame after the first its own palette: the flicker write_gif avoids
    images = [Image.fromarray(f) for f in frames]
    images[0].save(tmp_path / "c.gif", save_all=True, append_images=images[1:])
    assert any(gif_color_tables(tmp_path / "c.gif")[1])


def test_clip_sheet_puts_rows_under_each_other_and_clips_side_by_side():
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(0, 256, (3, 3, 4, 5, 6), dtype=torch.uint8, generator=g) for _ in range(2)]   # N C T H W
    sheet = clip_sheet(rows)
    assert sheet.dtype == np.uint8 and sheet.shape == (4, 2 * 5, 3 * 6, 3)
    for r, clips in enumerate(rows):
        for n, clip in enumerate(clips):
            expected = clip.permute(1, 2, 3, 0).numpy()                       # (T, H, W, C)
            assert np.array_equal(sheet[:, r * 5:(r + 1) * 5, n * 6:(n + 1) * 6], expected)
    assert np.array_equal(clip_sheet(rows[0]), clip_sheet([rows[0]]))           # one tensor: one row
    as_float = clip_sheet([rows[0].float() / 255])
    assert np.array_equal(as_float, clip_sheet(rows[:1]))                       # float [0, 1]: scaled by 255


@pytest.mark.parametrize("frames, error, match", [
    ([[[[0, 0, 0]]]], TypeError, "`frames` must be a NumPy array or a tensor, but got list"),
    (np.zeros((2, 4, 4, 3), np.float32), TypeError, "`frames` must be uint8, but got float32"),
    (np.zeros((4, 4, 3), np.uint8), ValueError, r"`frames` must have shape \(T, H, W, 3\).*, but got \(4, 4, 3\)"),
    (np.zeros((2, 4, 4, 4), np.uint8), ValueError, r"`frames` must have shape \(T, H, W, 3\).*\(2, 4, 4, 4\)"),
    (np.zeros((0, 4, 4, 3), np.uint8), ValueError, r"`frames` must have shape \(T, H, W, 3\) with T, H, W >= 1"),
])
def test_bad_frames_are_named(tmp_path, frames, error, match):
    with pytest.raises(error, match=match):
        write_gif(frames, tmp_path / "bad.gif")
    assert not (tmp_path / "bad.gif").exists()


def test_bad_path_and_duration_are_named(tmp_path):
    frames = few_colour_frames(num_frames=2)
    with pytest.raises(TypeError, match="`path` must be a str or a path, but got int"):
        write_gif(frames, 3)
    with pytest.raises(ValueError, match="`ms_per_frame` must be >= 1, but got 0"):
        write_gif(frames, tmp_path / "a.gif", ms_per_frame=0)
    with pytest.raises(TypeError, match="`ms_per_frame` must be an int, but got 1.5"):
        write_gif(frames, tmp_path / "a.gif", ms_per_frame=1.5)


@pytest.mark.parametrize("rows, error, match", [
    ("clips", TypeError, "`rows` must be a tensor or a non-empty list of tensors, but got str"),
    ([], TypeError, "`rows` must be a tensor or a non-empty list of tensors, but got list"),
    ([torch.zeros(2, 3, 4, 5)], ValueError, r"`rows` must hold tensors of shape \(N, 3, T, H, W\), but got \(2, 3, 4"),
    ([torch.zeros(2, 1, 4, 5, 5)], ValueError, r"shape \(N, 3, T, H, W\), but got \(2, 1, 4, 5, 5\)"),
    ([torch.zeros(2, 3, 4, 5, 5), torch.zeros(1, 3, 4, 5, 5)], ValueError, "`rows` must hold tensors of one shape"),
    ([torch.zeros(1, 3, 2, 2, 2, dtype=torch.uint8), torch.zeros(1, 3, 2, 2, 2)], ValueError,
     r"`rows` must hold tensors of one dtype, but got \[torch.uint8, torch.float32\]"),
    ([torch.zeros(1, 3, 2, 2, 2, dtype=torch.int32)], TypeError, "`rows` must be uint8 or float tensors, but got"),
])
def test_bad_rows_are_named(rows, error, match):
    with pytest.raises(error, match=match):
        clip_sheet(rows)
