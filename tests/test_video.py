"""pmg_dali.VideoFolder / decode_clip on a tiny video folder written here with PyAV.

Every frame encodes its index in the red channel (10 * i + 10, flat) and carries a fixed spatial
pattern in green / blue, so temporal sampling and crop consistency can be read back from pixels.
"""
import math
import pickle
import threading
import warnings

import numpy as np
import pytest
import torch

from pmg_dali import VideoFolder
from pmg_dali.video import decode_clip, sample_clip_noise, temporal_indices

av = pytest.importorskip("av")

CODECS = {".mp4": "mpeg4", ".avi": "mpeg4", ".webm": "libvpx", ".mkv": "libx264"}


def frame_image(i: int, height: int = 32, width: int = 32, tag: int = 0) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = 10 * i + 10
    img[..., 1] = (np.arange(width) * 200 // width)[None, :] + tag
    img[..., 2] = (np.arange(height) * 200 // height)[:, None]
    return img


def write_video(path, num_frames: int = 20, height: int = 32, width: int = 32, tag: int = 0) -> None:
    """A short high-bitrate clip whose frame i has red = 10 * i + 10."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[path.suffix.lower()], rate=10)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = width, height, "yuv420p", 4_000_000
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, height, width, tag), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def frame_codes(clip: torch.Tensor) -> list[int]:
    """uint8 (3, T, H, W) -> the frame index encoded in each frame's red channel."""
    return [round((float(r) - 10) / 10) for r in clip[0].float().mean(dim=(1, 2))]


def pyav_frames(path) -> np.ndarray:
    """Independent reference: every frame of ``path`` decoded with plain PyAV, (n, H, W, 3)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    (root / "b_class" / "deep").mkdir(parents=True)
    (root / "a_class").mkdir()
    write_video(root / "a_class" / "v0.mp4", tag=0)
    write_video(root / "a_class" / "v1.WEBM", num_frames=12, tag=20)
    write_video(root / "b_class" / "deep" / "v2.mkv", height=24, width=40, tag=40)
    write_video(root / "b_class" / "v3.avi", num_frames=5, tag=10)
    (root / "a_class" / "broken.mp4").write_bytes(torch.randint(0, 256, (2048,), generator=torch.Generator()
                                                                .manual_seed(0), dtype=torch.uint8).numpy().tobytes())
    (root / "a_class" / "notes.txt").write_text("not a video")
    return root


def test_lists_videos_recursively_sorted_case_insensitive(folder):
    videos = VideoFolder(folder, num_frames=4)
    names = [p[len(str(folder)) + 1:] for p in videos.files]
    assert names == ["a_class/broken.mp4", "a_class/v0.mp4", "a_class/v1.WEBM",
                     "b_class/deep/v2.mkv", "b_class/v3.avi"]
    assert len(videos) == 5 and videos.classes == ["a_class", "b_class"]
    assert videos.labels == [0, 0, 0, 1, 1]


def test_missing_or_empty_root_raises(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        VideoFolder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="holds no video files.*empty"):
        VideoFolder(tmp_path / "empty")
    with pytest.raises(ValueError, match="`num_frames` must be >= 1, but got 0"):
        VideoFolder(tmp_path, num_frames=0)
    with pytest.raises(ValueError, match="`frame_stride`"):
        VideoFolder(tmp_path, frame_stride=0)


def test_argument_types_and_ranges_are_named(tmp_path):
    write_video(tmp_path / "a.mp4", num_frames=4)
    with pytest.raises(TypeError, match="`frame_stride` must be an int, but got True"):
        VideoFolder(tmp_path, frame_stride=True)
    with pytest.raises(TypeError, match="`num_frames` must be an int, but got 2.0"):
        VideoFolder(tmp_path, num_frames=2.0)
    with pytest.raises(TypeError, match=r"`scale` must be a pair of numbers \(min, max\), but got 0.5"):
        VideoFolder(tmp_path, scale=0.5)
    with pytest.raises(ValueError, match=r"`scale` must satisfy 0 < min <= max <= 1, but got \(0, 1\)"):
        VideoFolder(tmp_path, scale=(0, 1))
    with pytest.raises(ValueError, match=r"`ratio` must satisfy 0 < min <= max, but got \(2, 1\)"):
        VideoFolder(tmp_path, ratio=(2, 1))
    videos = VideoFolder(tmp_path, num_frames=np.int64(2), frame_stride=np.int64(1))     # NumPy ints are ints
    assert videos.num_frames == 2 and type(videos.num_frames) is int
    assert videos.load([0], 8).shape == (1, 3, 2, 8, 8)


def test_temporal_indices_against_formula():
    # uniform: centre of each of T equal segments; n < T repeats frames
    n, T = 20, 4
    assert temporal_indices(n, T) == [int(np.floor((i + 0.5) * n / T)) for i in range(T)] == [2, 7, 12, 17]
    assert temporal_indices(3, 6) == [0, 0, 1, 1, 2, 2]
    # jitter: frame i stays inside segment i
    noise = torch.rand(T, generator=torch.Generator().manual_seed(1))
    for i, k in enumerate(temporal_indices(n, T, noise=noise)):
        assert math.floor(i * n / T) <= k < math.floor((i + 1) * n / T)
    assert temporal_indices(n, T, noise=torch.zeros(T)) == [0, 5, 10, 15]
    # strided: centred window, random start inside the room, clamped past the end
    assert temporal_indices(20, 4, frame_stride=3) == [5, 8, 11, 14]
    assert temporal_indices(20, 4, frame_stride=3, noise=torch.zeros(4)) == [0, 3, 6, 9]
    assert temporal_indices(20, 4, frame_stride=3, noise=torch.full((4,), 0.999)) == [10, 13, 16, 19]
    assert temporal_indices(5, 4, frame_stride=2) == [0, 2, 4, 4]


def test_decode_matches_pyav_reference(folder):
    """Deterministic decode at the native size is exactly the PyAV frames at the uniform indices."""
    path = folder / "a_class" / "v0.mp4"
    clip = decode_clip(path, 4, 32)
    ref = pyav_frames(path)[[2, 7, 12, 17]]
    assert clip.dtype == torch.uint8 and clip.shape == (3, 4, 32, 32)
    assert torch.equal(clip, torch.from_numpy(ref).permute(3, 0, 1, 2))
    assert frame_codes(clip) == [2, 7, 12, 17]
    # strided; webm (no frame count in the header); a 5-frame avi sampled for 8 frames
    assert frame_codes(decode_clip(path, 4, 16, frame_stride=3)) == [5, 8, 11, 14]
    assert frame_codes(decode_clip(folder / "a_class" / "v1.WEBM", 3, 16)) == [2, 6, 10]
    assert frame_codes(decode_clip(folder / "b_class" / "v3.avi", 8, 16)) == [0, 0, 1, 2, 2, 3, 4, 4]


def test_decode_centre_crop_of_non_square_video(folder):
    """A 24 x 40 video at size 24: the centred 24 x 24 box, x from 8 to 31 (green = x * 5 + 40)."""
    clip = decode_clip(folder / "b_class" / "deep" / "v2.mkv", 2, 24)
    green = clip[1, 0].float().mean(0)
    expected = torch.arange(8, 32) * 200 // 40 + 40
    assert (green - expected).abs().max() <= 3


def test_load_shapes_and_determinism(folder):
    videos = VideoFolder(folder, num_frames=4)
    a = videos.load([1, 3], size=(16, 20), device="cpu")
    b = videos.load(torch.tensor([1, 3]), size=(16, 20), device="cpu")
    assert a.shape == (2, 3, 4, 16, 20) and a.dtype == torch.uint8 and torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    r1 = videos.load([1, 1, 2], 16, "cpu", generator=g1)
    r2 = videos.load([1, 1, 2], 16, "cpu", generator=g2)
    assert torch.equal(r1, r2)
    assert not torch.equal(r1[0], r1[1])                 # two draws of one video differ
    assert videos.load([], 16).shape == (0, 3, 4, 16, 16)
    with pytest.raises(ValueError, match=r"`indices` must lie in \[0, 5\)"):
        videos.load([5], 16)


def test_random_crop_is_shared_by_all_frames(folder):
    """The spatial pattern (green, blue) is the same in every frame; so must the crop be. The frames
    are the jittered segment indices of the same noise stream."""
    videos = VideoFolder(folder, num_frames=6, scale=(0.2, 0.5))
    clips = videos.load([2, 2, 2, 2], 16, generator=torch.Generator().manual_seed(0))
    pattern = clips[:, 1:].float()                         # (B, 2, T, H, W)
    assert (pattern - pattern[:, :, :1]).abs().max() <= 8  # codec noise only (4:2:0 chroma)
    assert (pattern[0] - pattern[1]).abs().max() > 20      # but the crops of the draws differ
    ref = torch.Generator().manual_seed(0)
    for clip in clips:                                     # v1.WEBM has 12 frames
        expected = temporal_indices(12, 6, noise=sample_clip_noise(6, ref).time)
        assert frame_codes(clip) == expected
        assert all(math.floor(i * 12 / 6) <= k < math.floor((i + 1) * 12 / 6) for i, k in enumerate(expected))


def test_broken_video_warned_once_and_replaced(folder):
    videos = VideoFolder(folder, num_frames=4)
    with pytest.warns(RuntimeWarning, match=r"unreadable video .*broken\.mp4"):
        clips = videos.load([0, 1], 16)
    assert videos.bad_files == {str(folder / "a_class" / "broken.mp4")}
    assert torch.equal(clips[0], clips[1])                 # replaced by the next video, v0.mp4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(videos.load([0], 16)[0], clips[1])


def test_generator_stream_does_not_depend_on_failures(folder):
    videos = VideoFolder(folder, num_frames=4)
    g = torch.Generator().manual_seed(3)
    with pytest.warns(RuntimeWarning):
        videos.load([0, 2], 16, generator=g)
    ref = torch.Generator().manual_seed(3)
    for _ in range(2):
        sample_clip_noise(4, ref)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=ref))


def test_all_unreadable_raises(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"\x00" * 100)
    videos = VideoFolder(tmp_path, num_frames=2)
    with pytest.warns(RuntimeWarning, match="x.mp4"), pytest.raises(RuntimeError, match="no readable video"):
        videos.load([0], 16)


def test_list_file(folder, tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text(f"{folder}/a_class/v0.mp4 3\n\n{folder}/b_class/v3.avi 7\n")
    videos = VideoFolder(listing, num_frames=2)
    assert videos.files == [f"{folder}/a_class/v0.mp4", f"{folder}/b_class/v3.avi"]
    assert videos.labels == [3, 7] and videos.classes == []
    assert videos.load([0, 1], 8).shape == (2, 3, 2, 8, 8)
    (tmp_path / "bad.txt").write_text("just_a_path.mp4\n")
    with pytest.raises(ValueError, match="line 1 must be `path label`"):
        VideoFolder(tmp_path / "bad.txt")


def test_missing_pyav_is_an_import_error_not_unreadable_videos(folder, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a))
    with pytest.raises(ImportError, match="pip install av"):
        VideoFolder(folder, num_frames=4)


def _warned_from(monkeypatch) -> list[tuple[str, str]]:
    """(message, thread name) of every warning issued by pmg_dali.video from now on (catch_warnings
    is process-wide, so it would not tell which thread warned)."""
    import pmg_dali.video
    seen = []

    def warn(message, *args, **kwargs):
        seen.append((str(message), threading.current_thread().name))
    monkeypatch.setattr(pmg_dali.video.warnings, "warn", warn)
    return seen


def test_threads_decode_the_same_clips_and_warn_once(folder, monkeypatch):
    """A batch decoded by several threads equals the one-thread batch, the broken file is warned
    about once, from the caller's thread, and replaced the same way."""
    batches, caught = [], []
    for workers in (0, 4):
        videos = VideoFolder(folder, num_frames=4, num_workers=workers)
        seen = _warned_from(monkeypatch)
        batches.append(videos.load([0, 0, 1, 2, 3, 4, 0], 16, generator=torch.Generator().manual_seed(2)))
        caught.append(seen)
        assert videos.bad_files == {str(folder / "a_class" / "broken.mp4")}
    assert torch.equal(batches[0], batches[1])
    assert len(caught[0]) == len(caught[1]) == 1 and "broken.mp4" in caught[1][0][0]
    assert caught[1][0][1] == threading.current_thread().name
    with pytest.raises(ValueError, match="`num_workers` must be"):
        VideoFolder(folder, num_workers=-1)
    with pytest.raises(TypeError, match="`num_workers` must be an int"):
        VideoFolder(folder, num_workers=2.0)
    pickle.loads(pickle.dumps(videos)).load([1], 16)     # a DataLoader worker's copy starts its own threads


def test_threads_all_unreadable_warns_every_file_then_raises(tmp_path, monkeypatch):
    for k in range(3):
        (tmp_path / f"x{k}.mp4").write_bytes(bytes([k]) * 100)
    videos = VideoFolder(tmp_path, num_frames=2, num_workers=3)
    seen = _warned_from(monkeypatch)
    with pytest.raises(RuntimeError, match="no readable video"):
        videos.load([0, 1, 2], 16)
    assert sorted(m.split()[4] for m, _ in seen) == sorted(str(tmp_path / f"x{k}.mp4") for k in range(3))
    assert {t for _, t in seen} == {threading.current_thread().name}
    assert len(videos.bad_files) == 3
