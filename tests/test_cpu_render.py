"""The CPU renderer's own mechanism: time steps on a thread pool. Its clips are checked against the
reference renderer by the conformance suite (tests/test_conformance.py), its renderer selection by
tests/test_engines.py.
"""
import torch

from pmg_dali import TRANSFORMS, PMGConfig, PseudoMotion
from pmg_dali.cpu_render import render_cpu


def test_time_steps_run_in_the_pool_on_one_intra_op_thread_each(monkeypatch):
    """The threading mechanism (not a timing): with N torch threads the steps run on the renderer's
    pool, each with torch on one thread; the process's thread count is restored; every N gives the
    same bits."""
    import threading

    from pmg_dali import cpu_render
    cfg = PMGConfig(num_frames=6, size=(12, 16), transforms=TRANSFORMS, mixup="frame")
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (4, 3, 12, 16), dtype=torch.uint8, generator=g)
    program = PseudoMotion(cfg).sample(4, generator=g)
    seen, frame = [], cpu_render._frame

    def spy(src, i, t, plan):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return frame(src, i, t, plan)
    monkeypatch.setattr(cpu_render, "_frame", spy)
    before = torch.get_num_threads()
    try:
        outs = {}
        for n in (1, 3):
            torch.set_num_threads(n)
            seen.clear()
            outs[n] = render_cpu(images, program, cfg)
            assert torch.get_num_threads() == n
            names = {name for name, _ in seen}
            if n == 1:
                assert names == {threading.current_thread().name}
            else:
                assert names and all(name.startswith("pmg_dali_cpu") for name in names)
                assert {threads for _, threads in seen} == {1}
        assert torch.equal(outs[1], outs[3])
        jitter = PMGConfig(num_frames=6, size=(12, 16), transforms=("color_jitter", "affine"), mixup=None)
        for modes in (torch.inference_mode, lambda: torch.autocast("cpu", dtype=torch.bfloat16)):
            per_count = []
            for n in (1, 3):       # the pool threads run in the caller's inference / autocast mode
                torch.set_num_threads(n)
                with modes():
                    per_count.append(render_cpu(images, PseudoMotion(jitter).sample(4, generator=torch.Generator()
                                                                                    .manual_seed(1)), jitter))
            assert torch.equal(*per_count)
    finally:
        torch.set_num_threads(before)
