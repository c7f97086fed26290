"""Lightning: a ``LightningDataModule`` whose train data is a ``PseudoMotionLoader`` (the tests run this file).

    pip install -e ".[lightning]"
    python examples/lightning_train.py --max_epochs 2 --out runs.json --checkpoint_dir checkpoints  # one process
    python examples/lightning_train.py --devices 2 --strategy ddp --accelerator cpu      # two (gloo on CPU)
    python examples/lightning_train.py --max_epochs 4 --ckpt_path checkpoints/epoch=0-step=5.ckpt   # resumed

``train_dataloader`` returns the loader itself, built there, after Lightning has started the processes
(so it takes its rank and world size from ``torch.distributed``). Lightning then does the rest:
``loader.sampler.set_epoch(epoch)`` at each epoch, ``loader.state_dict()`` in every checkpoint (the loader
is a stateful iterable), ``loader.load_state_dict(...)`` on ``fit(ckpt_path=...)``: a resumed run goes on
with exactly the batch an uninterrupted one would have made next.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import zipfile

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException

import pmg_dali
from pmg_dali.__main__ import int_arg, out_dir_arg


class PMGDataModule(L.LightningDataModule):
    def __init__(self, source, batch_size: int = 2, config: pmg_dali.PMGConfig | None = None, device: str = "cpu",
                 seed: int = 0, **loader_args):
        super().__init__()
        self.source, self.batch_size, self.config, self.device, self.seed = source, batch_size, config, device, seed
        self.loader_args = loader_args

    def train_dataloader(self) -> pmg_dali.PseudoMotionLoader:
        return pmg_dali.PseudoMotionLoader(self.source, batch_size=self.batch_size, config=self.config,
                                           device=self.device, seed=self.seed, **self.loader_args)


class ClipRegression(L.LightningModule):
    """A stand-in model (one linear layer on each clip's mean colour) that records what it was fed."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(3, 1)
        self.seen = []            # (epoch, source indices, mean of the clips) per training step

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch["index"].tolist(), float(batch["video"].mean())))
        return self.net(batch["video"].mean(dim=(2, 3, 4))).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def images(count: int = 16) -> pmg_dali.TensorImages:
    g = torch.Generator().manual_seed(5)
    return pmg_dali.TensorImages(torch.randint(0, 256, (count, 3, 40, 40), dtype=torch.uint8, generator=g))


def checkpoint_problem(path: str) -> str:
    """Why ``path`` is not a Lightning checkpoint to resume from, or ``""``: it is read with
    ``weights_only=True`` (no code runs) and memory-mapped (its tensors are not read)."""
    if not os.path.isfile(path):
        return "no such checkpoint file"
    if not zipfile.is_zipfile(path):                       # torch.save writes a zip archive
        return "not a checkpoint (not a zip archive)"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        return "refusing to read it: it holds more than tensors and plain Python values (unpickling could run code)"
    except Exception as err:    # a damaged archive fails in many ways: EOFError, IndexError, UnicodeDecodeError, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else "empty"
        return f"cannot read the checkpoint ({type(err).__name__}: {first})"
    if not (isinstance(checkpoint, dict) and "pytorch-lightning_version" in checkpoint):
        return "not a Lightning checkpoint (no 'pytorch-lightning_version')"    # e.g. pretrain.py's ckpt.pt
    return ""


def checkpoint_arg(path: str) -> str:
    """``--ckpt_path``'s type: ``path``, or an argparse error saying why it is not a checkpoint to resume from."""
    why = checkpoint_problem(path)
    if why:
        raise argparse.ArgumentTypeError(f"{why}: {path!r}")
    return path


def main(argv=None) -> ClipRegression:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_epochs", type=int, default=2)
    parser.add_argument("--max_steps", type=int, default=-1)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--checkpoint_dir", type=out_dir_arg, default=None,
                        help="save a checkpoint every --save_every steps here")
    parser.add_argument("--save_every", type=int_arg(1), default=5)
    parser.add_argument("--ckpt_path", type=checkpoint_arg, default=None, help="resume from this checkpoint")
    parser.add_argument("--out", default=None, help="write each rank's (epoch, indices, mean) rows to OUT.<rank>")
    args = parser.parse_args(argv)
    if args.devices < -1:                  # Lightning: -1 (every device), 0 (its own error) or a count
        parser.error(f"argument --devices: must be -1 (every device) or a device count, but got {args.devices}")
    data = PMGDataModule(images(), batch_size=2, config=pmg_dali.PMGConfig(num_frames=4, size=32), seed=11,
                         patch_size=8)
    callbacks = ([L.pytorch.callbacks.ModelCheckpoint(dirpath=args.checkpoint_dir, every_n_train_steps=args.save_every,
                                                      save_top_k=-1)] if args.checkpoint_dir else [])
    try:                                   # Lightning's messages name the argument: one line, exit 2
        trainer = L.Trainer(max_epochs=args.max_epochs, max_steps=args.max_steps, devices=args.devices,
                            strategy=args.strategy, accelerator=args.accelerator, logger=False, callbacks=callbacks,
                            enable_checkpointing=bool(callbacks), enable_progress_bar=False,
                            enable_model_summary=False)
    except (ValueError, MisconfigurationException) as err:
        parser.error(str(err))
    model = ClipRegression()
    trainer.fit(model, datamodule=data, ckpt_path=args.ckpt_path)
    if args.out:
        with open(f"{args.out}.{trainer.global_rank}", "w") as f:
            json.dump(model.seen, f)
    return model


if __name__ == "__main__":
    main()
    # Lightning leaves the process group open: closing it while the interpreter is still alive keeps
    # gloo's threads from aborting the exit ("terminate called without an active exception")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
