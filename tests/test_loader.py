"""PseudoMotionLoader: determinism, exact resume, DistributedSampler order and sharding (simulated
ranks and a real 2-process gloo run), the IterableDataset view, and Hugging Face VideoMAE interop."""
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

import pmg_dali
from pmg_dali.loader import batch_generators
from pmg_dali.sampling import sample_program

CFG = pmg_dali.PMGConfig(num_frames=4, size=32, transforms=pmg_dali.TRANSFORMS, layout="BTCHW")


class NoisySource(pmg_dali.TensorImages):
    """TensorImages plus noise drawn from the generator ``load`` receives, so the load generator
    takes part in every determinism check."""

    def load(self, indices, size, device=None, generator=None):
        assert isinstance(generator, torch.Generator) and generator.device.type == "cpu"
        images = super().load(indices, size, device)
        noise = torch.randint(0, 8, images.shape, generator=generator, dtype=torch.uint8)
        return images.sub(noise.to(images.device)).clamp(0, 255)


def make_source(n=13):
    g = torch.Generator().manual_seed(5)
    return NoisySource(torch.randint(0, 256, (n, 3, 40, 40), dtype=torch.uint8, generator=g))


def make_loader(source=None, **kwargs):
    kwargs = {"batch_size": 3, "config": CFG, "device": "cpu", "patch_size": 8, "seed": 11, **kwargs}
    return pmg_dali.PseudoMotionLoader(make_source() if source is None else source, **kwargs)


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert list(x) == list(y) == ["video", "mask", "index"]
        for key in x:
            assert torch.equal(x[key], y[key]), key


def reference_order(n, seed, epoch, rank, world_size, drop_last):
    """DistributedSampler's rule written out: seed+epoch permutation, drop or wrap, slice by rank."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    if drop_last:
        order = order[:n // world_size * world_size]
    else:
        total = -(-n // world_size) * world_size
        order = (order * total)[:total]
    return order[rank::world_size]


def test_two_loaders_give_bit_identical_batches_and_batch_is_random_access():
    a, b = list(make_loader()), list(make_loader())
    assert len(a) == 4
    assert_batches_equal(a, b)
    assert_batches_equal([make_loader().batch(2)], [a[2]])
    assert not torch.equal(a[0]["video"][0], a[1]["video"][0])


def test_batch_is_the_documented_composition_of_source_program_and_mask():
    source, loader = make_source(), make_loader()
    batch = loader.batch(1)
    gens = batch_generators(11, 0, 0, 1)
    index = torch.tensor(reference_order(13, 11, 0, 0, 1, True)[3:6])
    images = source.load(index, CFG.size, "cpu", generator=gens["load"])
    program = sample_program(CFG, 3, generator=gens["program"])
    assert torch.equal(batch["index"], index)
    assert torch.equal(batch["video"], pmg_dali.PseudoMotion(CFG)(images, program=program))
    assert torch.equal(batch["mask"], pmg_dali.tube_mask(3, 4, 32, 8, 2, 0.75, generator=gens["mask"]))
    assert batch["video"].shape == (3, 4, 3, 32, 32) and batch["mask"].sum(1).tolist() == [24] * 3


@pytest.mark.parametrize("epoch, k", [(0, 0), (0, 1), (0, 3), (1, 2), (1, 4)])
def test_resume_after_k_batches_continues_exactly(epoch, k):
    original = make_loader(drop_last=False)
    original.set_epoch(epoch)
    batches, states = [], []
    for batch in original:
        batches.append(batch)
        states.append(original.state_dict())
    assert len(batches) == 5 and [s["step"] for s in states] == [1, 2, 3, 4, 5]
    resumed = make_loader(drop_last=False)
    resumed.load_state_dict(states[k - 1] if k else {"epoch": epoch, "step": 0})
    assert resumed.state_dict()["step"] == k
    resumed.set_epoch(epoch)                       # a trainer's loop calls this again: kept
    assert_batches_equal(list(resumed), batches[k:])
    assert_batches_equal(list(resumed), batches)   # the next pass is a whole epoch again


@pytest.mark.slow
@pytest.mark.parametrize("options", [dict(), dict(targets=("flow", "tracks"), mask_ratio=None)])
def test_worker_processes_give_the_same_batches_and_resume(options):
    """num_workers only moves where the host part (programs, masks) is drawn: the batches, with
    targets or without a mask too, and a resumed pass are those of the single-process loader."""
    inline = make_loader(drop_last=False, **options)
    inline.set_epoch(1)
    expect = list(inline)
    workers = make_loader(drop_last=False, num_workers=2, **options)
    workers.set_epoch(1)
    got = []
    for batch in workers:
        got.append(batch)
        if len(got) == 2:
            state = workers.state_dict()
    assert len(got) == len(expect) == 5
    for x, y in zip(got, expect):
        assert list(x) == list(y) and all(torch.equal(x[k], y[k]) for k in x)
    resumed = make_loader(drop_last=False, num_workers=1, **options)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == 3 and all(torch.equal(x[k], y[k]) for x, y in zip(rest, expect[2:]) for k in x)
    assert "num_workers=2" in repr(workers)


def test_renderer_names_and_the_deprecated_backend():
    """The loader takes PseudoMotion's renderer names; backend= (and a positional "torch") still works,
    warns, and gives the same batches as the renderer it names."""
    expect = list(make_loader(renderer="auto"))
    assert_batches_equal(list(make_loader(renderer="reference")), expect)       # the same bits on this size
    with pytest.warns(DeprecationWarning, match=r"backend='torch'\) is deprecated: use renderer='auto'"):
        old = make_loader(backend="torch")
    assert old.renderer == "auto" and "renderer='auto'" in repr(old)
    assert_batches_equal(list(old), expect)
    with pytest.warns(DeprecationWarning, match="use renderer='auto'"):
        positional = pmg_dali.PseudoMotionLoader(make_source(), 3, CFG, "cpu", "torch", 11, patch_size=8)
    assert_batches_equal(list(positional), expect)


def test_tuple_batches_feed_a_loop_shaped_like_official_videomae():
    """keys=("video", "mask") yields tuples for `videos, bool_masked_pos = batch`; the official
    pre-training step's own target recipe (un-normalise, tubelet patches, per-patch normalisation,
    the masked rows) runs on them and matches the example model's target."""
    from test_examples import tiny_model                           # the example's VideoMAE, 4x32², patches 2x8x8

    cfg = pmg_dali.PMGConfig(num_frames=4, size=32)                 # BCTHW, ImageNet-normalised, as official
    loader = make_loader(config=cfg, batch_size=2, mask_ratio=0.75, patch_size=8, tubelet_size=2)
    net = tiny_model()
    mean, std = torch.tensor(cfg.mean).view(1, 3, 1, 1, 1), torch.tensor(cfg.std).view(1, 3, 1, 1, 1)
    for step, batch in enumerate(DataLoader(loader.as_dataset(keys=("video", "mask")), batch_size=None)):
        videos, bool_masked_pos = batch                             # the official loop's unpacking
        assert videos.shape == (2, 3, 4, 32, 32) and videos.dtype == torch.float32
        bool_masked_pos = bool_masked_pos.flatten(1).to(torch.bool)
        assert bool_masked_pos.shape == (2, 2 * 4 * 4) and bool_masked_pos.sum(1).tolist() == [24, 24]
        unnorm = videos * std + mean                                # official: labels from the pixels
        b, c, t, h, w = unnorm.shape
        patches = (unnorm.reshape(b, c, t // 2, 2, h // 8, 8, w // 8, 8).permute(0, 2, 4, 6, 3, 5, 7, 1)
                   .reshape(b, (t // 2) * (h // 8) * (w // 8), 2 * 8 * 8, c))
        patches = (patches - patches.mean(dim=-2, keepdim=True)) / (
            patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
        labels = patches.flatten(2)[bool_masked_pos].reshape(b, -1, 2 * 8 * 8 * c)
        torch.testing.assert_close(labels, net.target(videos, bool_masked_pos))
        loss, pred = net(videos, bool_masked_pos)
        assert pred.shape == labels.shape and torch.isfinite(loss)
        if step == 1:
            break


def test_dataset_view_resumed_at_an_epoch_end_moves_on_and_sampler_stays_a_sampler():
    """A state taken after a plain loop finished epoch 0 is (0, len): a view resumed there yields nothing
    for it and then makes epoch 1, not epoch 0 again. loader.sampler keeps the DistributedSampler's
    attributes; its set_epoch sets the loader's epoch (what Lightning calls)."""
    first = make_loader()
    list(first)
    state = first.state_dict()
    assert (state["epoch"], state["step"]) == (0, 4)
    resumed = make_loader()
    resumed.load_state_dict(state)
    view = resumed.as_dataset()
    assert list(view) == []
    expect = make_loader()
    expect.set_epoch(1)
    assert_batches_equal(list(view), list(expect))
    sampler = make_loader().sampler
    assert sampler.num_samples == 13 == len(sampler) and sorted(sampler) == list(range(13))
    sampler.set_epoch(3)
    assert sampler.loader.epoch == 3


@pytest.mark.slow
def test_worker_processes_leave_the_global_rng_and_ignore_stop_signals():
    """A trainer's own random stream does not depend on num_workers; the host workers survive the
    SIGINT / SIGTERM a scheduler sends to the process group (the training process stops them)."""
    draws = []
    for workers in (0, 2):
        torch.manual_seed(0)
        list(make_loader(num_workers=workers))
        draws.append(torch.rand(3))
    assert torch.equal(*draws)
    code = ("import os, signal; from pmg_dali.loader import _ignore_stop_signals; _ignore_stop_signals(0); "
            "os.kill(os.getpid(), signal.SIGTERM); os.kill(os.getpid(), signal.SIGINT); print('alive')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "alive", result.stderr


def test_resume_inside_a_training_loop_across_epochs():
    def run(loader, start_epoch, crash_at=None):
        seen = []
        for epoch in range(start_epoch, 3):
            loader.set_epoch(epoch)
            for batch in loader:
                seen.append(batch)
                if (epoch, loader.state_dict()["step"]) == crash_at:
                    return seen, loader.state_dict()
        return seen, loader.state_dict()

    full, _ = run(make_loader(), 0)
    head, state = run(make_loader(), 0, crash_at=(1, 2))
    resumed = make_loader()
    resumed.load_state_dict(state)
    tail, _ = run(resumed, state["epoch"])
    assert len(full) == 12 and len(head) == 6
    assert_batches_equal(head + tail, full)


def test_state_after_a_finished_epoch_and_mismatched_states():
    loader = make_loader()
    list(loader)
    state = loader.state_dict()
    assert state["epoch"] == 0 and state["step"] == len(loader) == 4
    restored = make_loader()
    restored.load_state_dict(state)
    assert list(restored) == []                                 # epoch 0 was finished
    restored.set_epoch(1)
    assert len(list(restored)) == 4
    rank0, rank1 = make_loader(rank=0, world_size=2), make_loader(rank=1, world_size=2)
    next(iter(rank0))
    rank1.load_state_dict(rank0.state_dict())                   # rank 0's state loads on rank 1
    assert_batches_equal(list(rank1), [make_loader(rank=1, world_size=2).batch(1)])
    with pytest.raises(ValueError, match="`state` was taken with seed=11, but this loader has seed=12"):
        make_loader(seed=12).load_state_dict(state)
    with pytest.raises(ValueError, match="`state` was taken with world_size=1"):
        make_loader(world_size=2, rank=0).load_state_dict(state)
    with pytest.raises(ValueError, match=r"`step` must be <= 4"):
        make_loader().load_state_dict(dict(state, step=5))
    with pytest.raises(ValueError, match="must be a dict from state_dict"):
        make_loader().load_state_dict({"step": 1})


def test_set_epoch_changes_order_and_clips_and_iterating_again_repeats_the_epoch():
    loader = make_loader()
    first = list(loader)
    assert_batches_equal(list(loader), first)        # no set_epoch: the same epoch again
    loader.set_epoch(1)
    second = list(loader)
    assert not torch.equal(torch.cat([b["index"] for b in first]), torch.cat([b["index"] for b in second]))
    assert not torch.equal(first[0]["mask"], second[0]["mask"])
    loader.set_epoch(0)
    assert_batches_equal(list(loader), first)


@pytest.mark.parametrize("n, world_size, batch_size", [(13, 1, 3), (13, 2, 2), (13, 3, 2), (12, 4, 1), (5, 2, 2)])
@pytest.mark.parametrize("drop_last", [True, False])
def test_order_lengths_and_sharding_are_distributed_samplers(n, world_size, batch_size, drop_last):
    source = make_source(n)
    shards = []
    for rank in range(world_size):
        loader = make_loader(source, rank=rank, world_size=world_size, batch_size=batch_size,
                             drop_last=drop_last, mask_ratio=None, seed=4)
        loader.set_epoch(3)
        indices = torch.cat([b["index"] for b in loader]).tolist()
        sampler = DistributedSampler(source, world_size, rank, seed=4, drop_last=drop_last)
        sampler.set_epoch(3)
        per_rank = reference_order(n, 4, 3, rank, world_size, drop_last)
        assert per_rank == list(sampler) == loader.indices().tolist()
        expected_batches = len(per_rank) // batch_size if drop_last else -(-len(per_rank) // batch_size)
        assert len(loader) == expected_batches
        assert indices == per_rank[:expected_batches * batch_size]    # drop_last also drops the partial batch
        shards.append(indices)
    flat = [i for s in shards for i in s]
    if drop_last:
        assert len(set(flat)) == len(flat)                                 # disjoint
        assert len({len(s) for s in shards}) == 1                          # equal shares
    else:
        assert set(flat) == set(range(n))                                  # covering, padded by wrapping
        assert len(flat) == len(set(flat)) + (-n) % world_size


@pytest.mark.slow
def test_real_two_process_gloo_run(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent("""
        import sys, torch, torch.distributed as dist, pmg_dali
        dist.init_process_group("gloo")
        images = torch.arange(11, dtype=torch.uint8).view(11, 1, 1, 1).expand(11, 3, 8, 8).contiguous()
        cfg = pmg_dali.PMGConfig(num_frames=2, size=8, mixup=None)
        loader = pmg_dali.PseudoMotionLoader(pmg_dali.TensorImages(images), batch_size=2, config=cfg,
                                             device="cpu", patch_size=4, drop_last=False, seed=3)
        loader.set_epoch(1)
        batches = list(loader)
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, torch.cat([b["index"] for b in batches]).tolist())
        torch.save({"rank": loader.rank, "world_size": loader.world_size, "gathered": gathered,
                    "batches": batches}, f"{sys.argv[1]}/rank{dist.get_rank()}.pt")
        dist.destroy_process_group()
    """))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [(o["rank"], o["world_size"]) for o in out] == [(0, 2), (1, 2)]
    images = torch.arange(11, dtype=torch.uint8).view(11, 1, 1, 1).expand(11, 3, 8, 8).contiguous()
    cfg = pmg_dali.PMGConfig(num_frames=2, size=8, mixup=None)
    for rank in range(2):
        sim = pmg_dali.PseudoMotionLoader(pmg_dali.TensorImages(images), batch_size=2, config=cfg, device="cpu",
                                          patch_size=4, drop_last=False, seed=3, rank=rank, world_size=2)
        sim.set_epoch(1)
        assert out[0]["gathered"][rank] == reference_order(11, 3, 1, rank, 2, False)
        for real, simulated in zip(out[rank]["batches"], sim):
            assert all(torch.equal(real[k], simulated[k]) for k in ("video", "mask", "index"))
    assert set(out[0]["gathered"][0]) | set(out[0]["gathered"][1]) == set(range(11))


def test_mask_ratio_none_leaves_out_the_mask():
    batch = make_loader(mask_ratio=None).batch(0)
    assert list(batch) == ["video", "index"]


@pytest.mark.dali
def test_dali_backend_gives_the_same_batches_within_interpolation_tolerance():
    """Same (seed, epoch, rank, step) -> same indices, masks and programs; pixels from DALI's
    operators equal the torch renderer's within interpolation tolerance (2/255 in [0, 1] units)."""
    torch_loader, dali_loader = make_loader(drop_last=False), make_loader(drop_last=False, renderer="dali")
    assert len(torch_loader) == len(dali_loader)
    std = torch.tensor(CFG.std).view(1, 1, 3, 1, 1)
    for a, b in zip(torch_loader, dali_loader):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["mask"], b["mask"])
        assert b["video"].shape == a["video"].shape and b["video"].dtype == a["video"].dtype
        assert ((a["video"] - b["video"]).abs() * std).max() < 2 / 255


def test_iterable_dataset_view_for_frameworks(monkeypatch):
    loader = make_loader()
    expected = [make_loader().batch(s, epoch=e) for e in (0, 1) for s in range(4)]
    view = loader.as_dataset()
    dl = DataLoader(view, batch_size=None, num_workers=0)
    assert len(dl) == 4
    got = list(dl) + list(dl)                       # a complete pass moves on to the next epoch
    assert_batches_equal(got, expected)
    assert loader.epoch == 2
    renamed = make_loader().as_dataset(keys={"video": "pixel_values", "mask": "bool_masked_pos"})
    batch = next(iter(DataLoader(renamed, batch_size=None)))
    assert list(batch) == ["pixel_values", "bool_masked_pos"]
    assert torch.equal(batch["pixel_values"], expected[0]["video"])
    with pytest.raises(ValueError, match="`keys` must name entries among"):
        make_loader().as_dataset(keys={"clips": "x"})
    for bad in (("video", "video"), (), "video", (["video"],)):
        with pytest.raises(ValueError, match="`keys` must be a dict .* or a tuple of distinct names"):
            make_loader().as_dataset(keys=bad)
    with pytest.raises(ValueError, match="`keys` names 'mask', but the loader has mask_ratio=None"):
        make_loader(mask_ratio=None).as_dataset(keys={"mask": "m"})
    monkeypatch.setattr(pmg_dali.loader, "get_worker_info", lambda: object())
    with pytest.raises(RuntimeError, match="num_workers=0"):
        next(iter(view))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=0), ValueError, "`batch_size` must be >= 1"),
    (dict(batch_size=2.5), TypeError, "`batch_size` must be an int"),
    (dict(batch_size=7, world_size=2, rank=0), ValueError, "`batch_size` must be at most the 6 images each rank gets"),
    (dict(backend="jax"), ValueError, r"`backend` must be one of \('torch', 'dali'\)"),
    (dict(renderer="jax"), ValueError, r"`renderer` must be one of \('auto', 'reference', 'cpu', 'fused', 'dali'\)"),
    (dict(renderer="cpu", backend="torch"), ValueError, "give `renderer` only"),
    (dict(renderer="torch", backend="dali"), ValueError, "give `renderer` only"),     # the positional 'torch'
    (dict(mask_ratio=1.0), ValueError, r"`mask_ratio` must be in \[0, 1\)"),
    (dict(mask_ratio=-0.5), ValueError, r"`mask_ratio` must be in \[0, 1\)"),
    (dict(world_size=0), ValueError, "`world_size` must be >= 1"),
    (dict(rank=2, world_size=2), ValueError, r"`rank` must be in \[0, 1\] \(world_size 2\)"),
    (dict(rank=-1, world_size=2), ValueError, "`rank` must be >= 0"),
    (dict(rank=1), ValueError, r"`rank` must be in \[0, 0\]"),
    (dict(seed=-1), ValueError, r"`seed` must be in \[0, 9223372036854775807\], but got -1"),
    (dict(patch_size=5), ValueError, "`size` must be divisible by `patch_size`"),
    (dict(tubelet_size=3), ValueError, "`num_frames` must be divisible by `tubelet_size`"),
    (dict(config="default"), TypeError, "`config` must be a PMGConfig"),
    (dict(drop_last=1), TypeError, "`drop_last` must be a bool"),
    (dict(patch_size=0, mask_ratio=None), ValueError, "`patch_size` must be >= 1, but got 0"),
    (dict(tubelet_size=1.5, mask_ratio=None), TypeError, "`tubelet_size` must be an int, but got 1.5"),
    (dict(shuffle="yes"), TypeError, "`shuffle` must be a bool, but got 'yes'"),
    (dict(prefetch=True), ValueError, "`prefetch` needs a CUDA `device`"),
    (dict(source=[1, 2]), TypeError, "`source` must have len"),
    (dict(num_workers=-1), ValueError, "`num_workers` must be >= 0, but got -1"),
    (dict(num_workers=1.0), TypeError, "`num_workers` must be an int"),
])
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_loader(**kwargs)


def test_renderer_that_cannot_render_on_the_device(monkeypatch):
    """A named engine is checked against the loader's device at construction, not at the first batch."""
    pytest.importorskip("triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="renderer='fused' cannot render on device 'cpu': it needs a CUDA device"):
        make_loader(renderer="fused")
    monkeypatch.setenv("TRITON_INTERPRET", "1")        # Triton's interpreter renders on the CPU
    assert make_loader(renderer="fused").renderer == "fused"


def test_invalid_step_epoch_and_missing_cuda():
    loader = make_loader()
    with pytest.raises(ValueError, match=r"`step` must be < 4 \(batches per epoch\)"):
        loader.batch(4)
    with pytest.raises(ValueError, match="`epoch` must be >= 0"):
        loader.set_epoch(-1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="`device` is 'cuda' but CUDA is not available"):
            make_loader(device="cuda")


def test_hugging_face_videomae_pretraining_trains_on_loader_batches():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2, decoder_intermediate_size=64)
    torch.manual_seed(0)                                  # the model's own initialisation
    model = transformers.VideoMAEForPreTraining(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = make_loader(batch_size=4, source=make_source(16))
    view = DataLoader(loader.as_dataset(keys={"video": "pixel_values", "mask": "bool_masked_pos"}),
                      batch_size=None)
    batch = next(iter(view))                              # BTCHW, (B, N) bool
    assert batch["pixel_values"].shape == (4, 4, 3, 32, 32) and batch["bool_masked_pos"].shape == (4, 32)
    losses = []
    for _ in range(10):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-2:]) < 0.99 * sum(losses[:2]), losses
    for batch in view:                                    # and every other batch of the epoch is accepted
        assert torch.isfinite(model(**batch).loss)


@pytest.mark.gpu
def test_cuda_batches_match_cpu_and_prefetch_matches_inline():
    cpu = list(make_loader(drop_last=False))
    source = make_source()
    source.images = source.images.cuda()
    inline = list(make_loader(source, drop_last=False, device="cuda"))
    ahead = make_loader(source, drop_last=False, device="cuda", prefetch=True)
    prefetched = []
    for batch in ahead:
        prefetched.append({k: v.clone() for k, v in batch.items()})
        torch.cuda._sleep(1_000_000)                      # a slow training step on the main stream
    assert ahead.state_dict()["step"] == len(cpu)
    assert_batches_equal(prefetched, inline)
    for c, g in zip(cpu, inline):
        assert g["video"].is_cuda and g["mask"].is_cuda and g["index"].is_cuda
        assert torch.equal(c["index"], g["index"].cpu()) and torch.equal(c["mask"], g["mask"].cpu())
        assert (c["video"] - g["video"].cpu()).abs().amax() < 0.05    # interpolation rounding only
