"""Shared test setup: markers that skip cleanly where the hardware or the optional extra is missing.

- ``@pytest.mark.gpu``: needs CUDA; skipped without a GPU (run them on a GPU machine).
- ``@pytest.mark.dali``: needs NVIDIA DALI (the ``dali`` extra); skipped without it.
- ``@pytest.mark.slow``: starts processes (scripts, DDP, DataLoader workers, Triton's interpreter);
  ``make test`` runs them, ``pytest -m "not slow" tests`` leaves them out for a quick loop.
"""
import dataclasses
import importlib.util
import json
import subprocess
import sys

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
HAS_DALI = importlib.util.find_spec("nvidia") is not None and importlib.util.find_spec("nvidia.dali") is not None


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")
    config.addinivalue_line("markers", "dali: needs NVIDIA DALI, the `dali` extra (skipped without it)")
    config.addinivalue_line("markers", "slow: starts processes; deselect with -m 'not slow' for a quick loop")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_dali = pytest.mark.skip(reason="needs NVIDIA DALI (pip install pmg_dali[dali])")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)
        if "dali" in item.keywords and not HAS_DALI:
            item.add_marker(skip_dali)


def boxes_past_pixel_centres(program):
    """``program`` (with a cutmix paste and a VideoMix box) with both boxes in float64, each left edge just
    past a pixel centre, where rounding to float32 would put it on the centre (a hand-made program may)."""
    def nudge(box):
        return torch.cat([torch.ceil(box[..., :1]).double() + 1e-9, box[..., 1:].double()], -1)
    return dataclasses.replace(program, paste_box=nudge(program.paste_box), mix_box=nudge(program.mix_box))


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


ONE_PROCESS = r'''
import contextlib, io, json, os, runpy, sys, traceback

out = []
for argv in json.loads(sys.argv[1]):
    std, err, code = io.StringIO(), io.StringIO(), 0
    try:
        with contextlib.redirect_stdout(std), contextlib.redirect_stderr(err):
            if argv[0] == "-m":
                sys.argv = argv[1:]
                runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
            else:                      # as `python script.py`: the script's folder first on the path
                sys.argv, sys.path[0] = list(argv), os.path.dirname(os.path.abspath(argv[0]))
                runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:          # as the interpreter does: a message is printed, status 1
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if not isinstance(exc.code, (int, type(None))):
            err.write(str(exc.code) + "\n")
    except BaseException:
        code = 1
        err.write(traceback.format_exc())
    out.append([code, std.getvalue(), err.getvalue()])
print(json.dumps(out))
'''


def run_in_one_process(argvs: list, cwd, env=None, timeout: float = 900) -> list:
    """``[exit status, stdout, stderr]`` of each command line of ``argvs`` (``["script.py", *args]`` or
    ``["-m", "module", *args]``), run one after the other in one Python process started in ``cwd``, so
    torch and the rest are imported once instead of once per run. An exception a run raises is its
    traceback on its stderr and status 1, as the interpreter would print it."""
    proc = subprocess.run([sys.executable, "-c", ONE_PROCESS, json.dumps(argvs)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def one_process():
    """:func:`run_in_one_process`, for module fixtures that run many short scripts."""
    return run_in_one_process
