import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "pmg_dali" / "version.py").read_text()).group(1)

setup(
    name="pmg_dali",
    version=VERSION,
    description="Pseudo-motion video clips from still images as batched GPU ops (PyTorch and NVIDIA DALI), "
                "for data-collection-free video pre-training",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["pmg_dali", "pmg_dali.*"]),
    python_requires=">=3.10",
    install_requires=["torch>=2.5", "torchvision", "kornia", "numpy", "pillow"],
    extras_require={
        # On CUDA 12 drivers install nvidia-dali-cuda120 instead (same version).
        "dali": ["nvidia-dali-cuda130==2.4.0"],
        "video": ["av"],                       # VideoFolder, examples/videomae/finetune.py
        "hf": ["transformers", "accelerate"],   # examples/hf_trainer.py (transformers.Trainer)
        "lightning": ["lightning"],            # examples/lightning_train.py
        "examples": ["timm", "av"],            # examples/videomae (timm's ViT blocks) and benchmarks/bench_overhead.py
        "test": ["pytest", "hypothesis", "opencv-python-headless", "pillow", "av", "transformers", "accelerate",
                 "lightning", "matplotlib", "timm", "ruff"],
    },
    entry_points={"console_scripts": ["pmg-dali=pmg_dali.__main__:main"]},
)
