"""Mixed pre-training: PseudoMotionLoader(..., videos=...) draws real clips and pseudo-motion clips of
images at a ratio. The plan against a literal loop, the ratio (exact per epoch, binomial tolerance over
batches), sampler orders and rank disjointness for both sources, the documented batch composition,
determinism and exact resume, pass-through, errors, a real PyAV video folder, the DALI backend and a
pretrain.py smoke run."""
import math
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

import pmg_dali
from pmg_dali.loader import batch_generators
from pmg_dali.real_videos import plan_epoch, plan_generator, slots_per_epoch
from pmg_dali.sampling import sample_program
from pmg_dali.sources import check_indices
from test_loader import CFG, make_source, reference_order

KEYS = ["video", "mask", "index", "is_real"]


def assert_batches_equal(a, b, keys=KEYS):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert list(x) == list(y) == keys
        for key in keys:
            assert torch.equal(x[key], y[key]), key


class TensorVideos:
    """In-memory (N, 3, T, 32, 32) uint8 clips plus noise from the load generator (so that generator
    takes part in every determinism check)."""

    def __init__(self, n, frames=4, seed=7):
        g = torch.Generator().manual_seed(seed)
        self.videos = torch.randint(0, 256, (n, 3, frames, 32, 32), dtype=torch.uint8, generator=g)
        self.num_frames = frames

    def __len__(self):
        return len(self.videos)

    def load(self, indices, size, device=None, generator=None):
        assert isinstance(generator, torch.Generator) and tuple(pmg_dali.config.parse_size(size)) == (32, 32)
        clips = self.videos[check_indices(indices, len(self))]
        noise = torch.randint(0, 8, clips.shape, generator=generator, dtype=torch.uint8)
        return (clips.int() - noise).clamp(0, 255).to(torch.uint8).to(device)


def mixed(images=13, videos=7, **kwargs):
    kwargs = {"batch_size": 3, "config": CFG, "device": "cpu", "patch_size": 8, "seed": 11,
              "pmg_ratio": 0.5, **kwargs}
    source = make_source(images) if isinstance(images, int) else images
    return pmg_dali.PseudoMotionLoader(source, videos=TensorVideos(videos) if isinstance(videos, int) else videos,
                                       **kwargs)


def literal_plan(image_order, video_order, num_slots, batch_size, pmg_ratio, mix_per, generator):
    """plan_epoch written out slot by slot: choose the real units, then walk both orders."""
    units = num_slots if mix_per == "sample" else -(-num_slots // batch_size)
    perm = torch.randperm(units, generator=generator).tolist()
    pseudo_units = set(perm[:math.floor(pmg_ratio * units + 0.5)])
    index, real, next_image, next_video = [], [], 0, 0
    for slot in range(num_slots):
        is_real = (slot if mix_per == "sample" else slot // batch_size) not in pseudo_units
        if is_real:
            index.append(video_order[next_video % len(video_order)])
            next_video += 1
        else:
            index.append(image_order[next_image % len(image_order)])
            next_image += 1
        real.append(is_real)
    return index, real


@pytest.mark.parametrize("mix_per", ["sample", "batch"])
@pytest.mark.parametrize("ratio, slots", [(0.0, 11), (0.3, 15), (0.5, 22), (0.7, 36), (1.0, 30)])
def test_plan_matches_a_literal_loop(mix_per, ratio, slots):
    """30 images and 11 videos: min(30 / p, 11 / (1 - p)) slots, e.g. 0.7 -> min(42.9, 36.7) = 36."""
    images, videos = torch.randperm(30) + 100, torch.randperm(11)
    n = slots_per_epoch(30, 11, ratio)
    assert n == slots
    index, real = plan_epoch(images, videos, n, 4, ratio, mix_per, plan_generator(1, 2, 3))
    ref_index, ref_real = literal_plan(images.tolist(), videos.tolist(), n, 4, ratio, mix_per, plan_generator(1, 2, 3))
    assert index.tolist() == ref_index and real.tolist() == ref_real


def test_plan_generator_depends_on_seed_epoch_rank_and_not_on_batch_generators():
    draws = {args: torch.rand(4, generator=plan_generator(*args))
             for args in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]}
    assert len({tuple(v.tolist()) for v in draws.values()}) == 4
    batch = {name: torch.rand(4, generator=g) for name, g in batch_generators(0, 0, 0, 0).items()}
    assert all(not torch.equal(draws[(0, 0, 0)], v) for v in batch.values())


def test_batch_is_the_documented_composition():
    loader, source, videos = mixed(), make_source(13), TensorVideos(7)
    gen = pmg_dali.PseudoMotion(CFG)
    plan = plan_epoch(torch.tensor(reference_order(13, 11, 0, 0, 1, True)),
                      torch.tensor(reference_order(7, 11, 0, 0, 1, True)), 14, 3, 0.5, "sample",
                      plan_generator(11, 0, 0))
    assert len(loader) == 4 and torch.equal(loader.indices(), plan[0]) and torch.equal(loader.is_real(), plan[1])
    kinds = set()
    for step in range(4):
        batch, gens = loader.batch(step), batch_generators(11, 0, 0, step)
        index, real = (x[3 * step:3 * step + 3] for x in plan)
        pseudo_pos, real_pos = (~real).nonzero().flatten(), real.nonzero().flatten()
        expect = torch.empty_like(batch["video"])
        if len(pseudo_pos):                               # a part without clips draws nothing
            images = source.load(index[pseudo_pos], 32, "cpu", generator=gens["load"])
            expect[pseudo_pos] = gen(images, program=sample_program(CFG, len(pseudo_pos), generator=gens["program"]))
        if len(real_pos):
            clips = videos.load(index[real_pos], 32, "cpu", generator=gens["load"])
            expect[real_pos] = gen.augment(clips, program=sample_program(CFG, len(real_pos),
                                                                         generator=gens["program"]))
        assert list(batch) == KEYS and batch["video"].shape == (3, 4, 3, 32, 32)
        assert torch.equal(batch["video"], expect)
        assert torch.equal(batch["index"], index) and torch.equal(batch["is_real"], real)
        assert torch.equal(batch["mask"], pmg_dali.tube_mask(3, 4, 32, 8, 2, 0.75, generator=gens["mask"]))
        kinds.add(tuple(real.tolist()))
    assert any(len(set(k)) == 2 for k in kinds)           # some batches hold both kinds


@pytest.mark.parametrize("mix_per", ["sample", "batch"])
def test_ratio_is_exact_per_epoch_and_within_binomial_tolerance_over_batches(mix_per):
    p = 0.3
    loader = mixed(images=400, videos=300, batch_size=8, pmg_ratio=p, mix_per=mix_per, mask_ratio=None)
    n = loader.num_slots
    assert n == 428 and len(loader) == 53                 # min(400 / 0.3, 300 / 0.7) slots
    units = n if mix_per == "sample" else math.ceil(n / 8)
    for epoch in range(4):
        real = loader.is_real(epoch)
        pseudo = ~real if mix_per == "sample" else ~real[::8]
        assert int(pseudo.sum()) == round(p * units)      # exact over the epoch
        for first in (10, 25):                            # the first batches of the epoch
            k = first * 8 if mix_per == "sample" else first
            count = int(pseudo[:k].sum())
            assert abs(count - p * k) <= 4 * math.sqrt(k * p * (1 - p)), (epoch, first, count)
        if mix_per == "batch":
            assert all(len(set(real[s:s + 8].tolist())) == 1 for s in range(0, n, 8))
        else:
            counts = real[:len(loader) * 8].view(-1, 8).sum(1)
            assert counts.min() < counts.max()            # batches differ in their mix
    assert not torch.equal(loader.is_real(0), loader.is_real(1))


@pytest.mark.parametrize("world_size", [1, 3])
def test_sources_follow_their_sampler_orders_once_and_ranks_are_disjoint(world_size):
    images, videos = [], []
    for rank in range(world_size):
        loader = mixed(images=40, videos=25, batch_size=2, rank=rank, world_size=world_size, seed=4,
                       mask_ratio=None, pmg_ratio=0.4)
        index, real = loader.indices(2), loader.is_real(2)
        image_order = reference_order(40, 4, 2, rank, world_size, True)
        video_order = reference_order(25, 4, 2, rank, world_size, True)
        assert index[~real].tolist() == image_order[:int((~real).sum())]
        assert index[real].tolist() == video_order[:int(real.sum())]
        assert int(real.sum()) <= len(video_order) and int((~real).sum()) <= len(image_order)   # no wrap
        images.append(index[~real].tolist())
        videos.append(index[real].tolist())
    for kind in (images, videos):
        flat = [i for shard in kind for i in shard]
        assert len(flat) == len(set(flat))                # no repeats, ranks disjoint


def test_ratio_one_is_the_image_only_loader_and_ratio_zero_one_pass_over_the_videos():
    pure = pmg_dali.PseudoMotionLoader(make_source(13), batch_size=3, config=CFG, device="cpu", patch_size=8,
                                       seed=11)
    ones = mixed(pmg_ratio=1.0)
    assert len(ones) == len(pure) == 4
    for a, b in zip(pure, ones):
        assert not b.pop("is_real").any()
        assert_batches_equal([a], [b], keys=["video", "mask", "index"])

    class NoImages(pmg_dali.TensorImages):
        def load(self, *args, **kwargs):
            raise AssertionError("images are never needed at pmg_ratio=0")

    zeros = mixed(images=NoImages(torch.zeros(13, 3, 8, 8, dtype=torch.uint8)), videos=8, batch_size=2,
                  pmg_ratio=0.0, drop_last=False)
    assert len(zeros) == 4
    batches = list(zeros)
    assert all(b["is_real"].all() for b in batches)
    assert torch.cat([b["index"] for b in batches]).tolist() == reference_order(8, 11, 0, 0, 1, False)


def test_determinism_random_access_and_resume_across_epochs():
    loader, full = mixed(drop_last=False), []
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        full += list(loader)
    assert len(full) == 10
    again = mixed(drop_last=False)
    assert_batches_equal(list(again), full[:5])
    assert_batches_equal([again.batch(3, epoch=1)], [full[8]])
    crashed = mixed(drop_last=False)
    crashed.set_epoch(1)
    batches = iter(crashed)
    next(batches), next(batches)
    state = crashed.state_dict()
    assert (state["epoch"], state["step"], state["num_videos"], state["pmg_ratio"]) == (1, 2, 7, 0.5)
    resumed = mixed(drop_last=False)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)                                  # a trainer's loop calls this again: kept
    assert_batches_equal(list(resumed), full[7:])
    assert_batches_equal(list(resumed), full[5:])         # the next pass is a whole epoch again


@pytest.mark.slow
@pytest.mark.parametrize("augment_videos", [True, False])
def test_worker_processes_give_the_same_mixed_batches(augment_videos):
    """Both programs of a mixed batch (pseudo clips, then real clips) are drawn in the workers in the
    order the single-process loader draws them."""
    inline, workers = (mixed(drop_last=False, augment_videos=augment_videos, num_workers=n) for n in (0, 2))
    for loader in (inline, workers):
        loader.set_epoch(1)
    assert_batches_equal(list(workers), list(inline))


def test_real_clips_pass_through_unaugmented():
    cfg = pmg_dali.PMGConfig(num_frames=4, size=32, transforms=("zoom",), dtype=torch.uint8, layout="BTCHW")
    loader, videos = mixed(config=cfg, augment_videos=False, pmg_ratio=0.3), TensorVideos(7)
    for step in range(len(loader)):
        batch, gens = loader.batch(step), batch_generators(11, 0, 0, step)
        real = batch["is_real"]
        if (~real).any():   # the images draw from the load generator first
            make_source(13).load(batch["index"][~real], 32, "cpu", generator=gens["load"])
        clips = videos.load(batch["index"][real], 32, "cpu", generator=gens["load"])
        assert torch.equal(batch["video"][real], clips.transpose(1, 2))


def test_dataset_view_keys_and_state_mismatches():
    view = DataLoader(mixed().as_dataset(keys={"video": "pixel_values", "is_real": "real"}), batch_size=None)
    batch = next(iter(view))
    assert list(batch) == ["pixel_values", "real"] and batch["real"].dtype == torch.bool
    pure = pmg_dali.PseudoMotionLoader(make_source(13), batch_size=3, config=CFG, device="cpu", patch_size=8, seed=11)
    with pytest.raises(ValueError, match="`keys` names 'is_real', but the loader has no `videos`"):
        pure.as_dataset(keys={"is_real": "r"})
    state = mixed().state_dict()
    with pytest.raises(ValueError, match="`state` was taken with num_videos=7, but this loader has num_videos=0"):
        pure.load_state_dict(state)
    with pytest.raises(ValueError, match="`state` was taken with pmg_ratio=0.5, but this loader has pmg_ratio=0.25"):
        mixed(pmg_ratio=0.25).load_state_dict(state)
    with pytest.raises(ValueError, match="`state` was taken with mix_per='sample'"):
        mixed(mix_per="batch").load_state_dict(state)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(videos=None), ValueError, "`pmg_ratio`, `mix_per` and `augment_videos` need `videos` to mix with, "
                                    "but got pmg_ratio=0.5, mix_per='sample', augment_videos=True and videos=None"),
    (dict(videos=None, pmg_ratio=None, mix_per="batch"), ValueError, "need `videos`.*mix_per='batch'"),
    (dict(pmg_ratio=1.5), ValueError, r"`pmg_ratio` must be in \[0, 1\], but got 1.5"),
    (dict(pmg_ratio="half"), TypeError, "`pmg_ratio` must be a number, but got 'half'"),
    (dict(mix_per="clip"), ValueError, r"`mix_per` must be one of \('sample', 'batch'\), but got 'clip'"),
    (dict(videos=[1, 2]), TypeError, "`videos` must have len"),
    (dict(videos=TensorVideos(3, frames=8)), ValueError, "`videos` must decode config.num_frames = 4 frames "
                                                         "per clip, but has num_frames = 8"),
    (dict(augment_videos=1), TypeError, "`augment_videos` must be a bool, but got 1"),
    (dict(config=pmg_dali.PMGConfig(num_frames=4, size=32, recursion="iterative")), ValueError,
     "`config.recursion` must be 'composed' to augment real clips"),
    (dict(batch_size=15), ValueError, "`batch_size` must be at most the 14 clips each rank gets per epoch"),
])
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        mixed(**kwargs)


def test_unaugmented_videos_allow_iterative_recursion():
    cfg = pmg_dali.PMGConfig(num_frames=4, size=32, transforms=("zoom",), recursion="iterative")
    batch = mixed(config=cfg, augment_videos=False, pmg_ratio=0.5, patch_size=16).batch(0)
    assert batch["video"].shape == (3, 3, 4, 32, 32)


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    write_video = pytest.importorskip("test_video").write_video
    root = tmp_path_factory.mktemp("clips")
    for k in range(3):
        write_video(root / f"v{k}.mp4", num_frames=8, height=24, width=28, tag=30 * k)
    (root / "broken.mp4").write_bytes(b"\x00\x01" * 300)
    return root


def test_video_folder_end_to_end(video_root):
    cfg = pmg_dali.PMGConfig(num_frames=4, size=16, transforms=("zoom", "affine"), mixup="frame")

    def loader():
        return pmg_dali.PseudoMotionLoader(make_source(8), batch_size=2, config=cfg, device="cpu", patch_size=8,
                                           videos=pmg_dali.VideoFolder(video_root, num_frames=4), pmg_ratio=0.5)
    with pytest.warns(RuntimeWarning, match=r"unreadable video .*broken\.mp4"):
        first = list(loader())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_batches_equal(first, list(loader()))
    real = torch.cat([b["is_real"] for b in first])
    assert len(first) == 4 and 0 < int(real.sum()) < len(real)
    assert all(b["video"].shape == (2, 3, 4, 16, 16) and torch.isfinite(b["video"]).all() for b in first)


@pytest.mark.dali
def test_dali_backend_renders_images_and_torch_the_videos():
    torch_loader, dali_loader = mixed(drop_last=False), mixed(drop_last=False, renderer="dali")
    std = torch.tensor(CFG.std).view(1, 1, 3, 1, 1)
    for a, b in zip(torch_loader, dali_loader):
        for key in ("index", "mask", "is_real"):
            assert torch.equal(a[key], b[key])
        real = a["is_real"]
        assert torch.equal(a["video"][real], b["video"][real])        # both: torch augment
        if (~real).any():
            assert ((a["video"][~real] - b["video"][~real]).abs() * std).max() < 2 / 255


@pytest.mark.gpu
def test_cuda_matches_cpu_with_prefetch():
    cpu = list(mixed(drop_last=False))
    ahead = mixed(drop_last=False, device="cuda", prefetch=True)
    for c, g in zip(cpu, ahead):
        assert g["video"].is_cuda and g["is_real"].is_cuda
        for key in ("index", "mask", "is_real"):
            assert torch.equal(c[key], g[key].cpu())
        assert (c["video"] - g["video"].cpu()).abs().amax() < 0.05


@pytest.mark.slow
def test_pretrain_mixed_smoke(video_root, tmp_path):
    """examples/videomae/pretrain.py --source=videos:<folder> --pmg_ratio=0.5: 2 iterations, a
    checkpoint whose loader state names the videos, and the data line."""
    from test_examples import TINY_FLAGS, losses, run

    result = run("pretrain.py", *TINY_FLAGS, "--batch_size=2", "--num_images=4", "--log_interval=1",
                 "--warmup_iters=1", f"--source=videos:{video_root}", "--pmg_ratio=0.5",
                 "--pmg_source=synthetic:shader", f"--out_dir={tmp_path}", "--max_iters=2")
    assert "data: 4 videos from" in result.stdout and "50% pseudo-motion clips of synthetic:shader" in result.stdout
    assert "iter 2/2: loss" in result.stdout and "broken.mp4" in result.stderr
    assert sorted(losses(tmp_path)) == [1, 2] and all(math.isfinite(float(v)) for v in losses(tmp_path).values())
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)["loader"]
    assert state["num_videos"] == 4 and state["pmg_ratio"] == 0.5 and state["step"] == 2


def test_torchvision_r3d_18_fine_tunes_on_labelled_videos_moved_by_pseudo_motion(tmp_path):
    """Labelled real videos (class sub-folders) through the loader with pseudo-motion as augmentation
    (pmg_ratio=0, augment_videos=True, no Mixup: one label per clip) in torchvision's layout (B, C, T, H,
    W), labels from VideoFolder.labels; torchvision's r3d_18 (weights=None) fits them."""
    models = pytest.importorskip("torchvision.models.video")
    av = pytest.importorskip("av")
    g = torch.Generator().manual_seed(0)
    for label, channel in (("red", 0), ("blue", 2)):          # a class is the colour of its videos
        (tmp_path / label).mkdir()
        for k in range(4):
            with av.open(str(tmp_path / label / f"{k}.mp4"), "w") as container:
                stream = container.add_stream("mpeg4", rate=10)
                stream.width, stream.height, stream.pix_fmt, stream.bit_rate = 28, 24, "yuv420p", 4_000_000
                for _ in range(8):
                    frame = torch.randint(0, 60, (24, 28, 3), generator=g, dtype=torch.uint8)
                    frame[..., channel] += 150
                    for packet in stream.encode(av.VideoFrame.from_ndarray(frame.numpy(), format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
    videos = pmg_dali.VideoFolder(tmp_path, num_frames=4)
    assert videos.classes == ["blue", "red"]
    cfg = pmg_dali.PMGConfig(num_frames=4, size=32, transforms=("zoom", "affine"), mixup=None, layout="BCTHW")
    loader = pmg_dali.PseudoMotionLoader(make_source(8), batch_size=4, config=cfg, device="cpu", mask_ratio=None,
                                         videos=videos, pmg_ratio=0.0, augment_videos=True, seed=3)
    labels = torch.tensor(videos.labels)
    torch.manual_seed(0)
    net = models.r3d_18(weights=None, num_classes=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    losses = []
    for epoch in range(6):
        loader.set_epoch(epoch)
        for batch in loader:
            assert batch["is_real"].all() and batch["video"].shape == (4, 3, 4, 32, 32)
            loss = torch.nn.functional.cross_entropy(net(batch["video"]), labels[batch["index"]])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses) and sum(losses[-4:]) < 0.5 * sum(losses[:4]), losses   # 2 epochs
