"""Shared test setup: markers that skip cleanly where the hardware or the optional extra is missing.

- ``@pytest.mark.gpu``: needs CUDA; skipped without a GPU (run them on a GPU machine).
- ``@pytest.mark.dali``: needs NVIDIA DALI (the ``dali`` extra); skipped without it.
- ``@pytest.mark.slow``: starts processes (scripts, DDP, DataLoader workers, Triton's interpreter);
  ``make test`` runs them, ``pytest -m "not slow" tests`` leaves them out for a quick loop.
"""
import importlib.util

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


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)
