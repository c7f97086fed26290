"""Hugging Face ``transformers.Trainer`` pre-training ``VideoMAEForPreTraining`` on pmg_dali clips, with
exact resume (the tests run this file).

    pip install -e ".[hf]"                                   # transformers + accelerate
    python examples/hf_trainer.py --output_dir out/hf --max_steps 400
    python examples/hf_trainer.py --output_dir out/hf --max_steps 400 --resume out/hf/checkpoint-200   # after a stop

Two pieces make the loader a Trainer's train data:

- ``PMGTrainer.get_train_dataloader`` wraps ``loader.as_dataset(keys=...)`` (the model's argument names) in
  a ``DataLoader(..., batch_size=None)``: batches are made whole, on the loader's device;
- ``LoaderPosition`` writes ``pmg_loader.json`` into every Trainer checkpoint: the loader's state at
  the batches the Trainer has consumed (``global_step x gradient_accumulation_steps``, not the loader's
  own count: accelerate reads one batch ahead). ``resume_loader`` puts it back before
  ``trainer.train(resume_from_checkpoint=...)``, and ``ignore_data_skip=True`` keeps the Trainer from
  skipping batches a second time, so the run continues on exactly the batch it would have seen next.
  ``gradient_accumulation_steps`` must divide the loader's batches per epoch (checked). Under torchrun,
  build the loader with the process's ``rank`` / ``world_size`` (``main`` reads them from the
  environment): the Trainer starts ``torch.distributed`` only after the loader exists.
"""
from __future__ import annotations

import argparse
import json
import os

import torch
import transformers
from torch.utils.data import DataLoader

import pmg_dali
from pmg_dali.__main__ import default_device, device_arg, int_arg, out_dir_arg

STATE_FILE = "pmg_loader.json"


class LoaderPosition(transformers.TrainerCallback):
    """Writes the loader's position into each Trainer checkpoint (``checkpoint-<step>/pmg_loader.json``)."""

    def __init__(self, loader: pmg_dali.PseudoMotionLoader):
        self.loader = loader

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:        # the position is the same on every rank: rank 0 writes it
            return
        consumed, per_epoch = state.global_step * args.gradient_accumulation_steps, len(self.loader)
        position = {**self.loader.state_dict(), "epoch": consumed // per_epoch, "step": consumed % per_epoch}
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        with open(os.path.join(folder, STATE_FILE), "w") as f:
            json.dump(position, f)


def resume_loader(loader: pmg_dali.PseudoMotionLoader, checkpoint: str) -> None:
    """Put ``loader`` where it was when the Trainer wrote ``checkpoint``."""
    with open(os.path.join(checkpoint, STATE_FILE)) as f:
        loader.load_state_dict(json.load(f))


class PMGTrainer(transformers.Trainer):
    """A Trainer whose train data is ``loader``'s batches, with the keys ``VideoMAEForPreTraining`` takes."""

    def __init__(self, loader: pmg_dali.PseudoMotionLoader, **kwargs):
        super().__init__(**kwargs)
        accumulate = self.args.gradient_accumulation_steps
        if len(loader) % accumulate:           # else the Trainer's last update of an epoch takes fewer batches
            raise ValueError(f"`gradient_accumulation_steps` ({accumulate}) must divide the loader's "
                             f"{len(loader)} batches per epoch, for LoaderPosition to know where a checkpoint is")
        self.loader = loader
        self.add_callback(LoaderPosition(loader))

    def get_train_dataloader(self) -> DataLoader:
        view = self.loader.as_dataset(keys={"video": "pixel_values", "mask": "bool_masked_pos"})
        return DataLoader(view, batch_size=None, num_workers=0)


def tiny_model(image_size: int = 32, num_frames: int = 4, patch_size: int = 8) -> transformers.VideoMAEForPreTraining:
    """A small VideoMAE for a quick run (Hugging Face's class, random weights)."""
    cfg = transformers.VideoMAEConfig(
        image_size=image_size, patch_size=patch_size, num_frames=num_frames, tubelet_size=2, hidden_size=32,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, decoder_hidden_size=32,
        decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=64)
    return transformers.VideoMAEForPreTraining(cfg)


def make_trainer(loader: pmg_dali.PseudoMotionLoader, model, output_dir: str, max_steps: int, save_steps: int,
                 **arguments) -> PMGTrainer:
    args = transformers.TrainingArguments(
        output_dir=output_dir, max_steps=max_steps, save_steps=save_steps, save_strategy="steps",
        per_device_train_batch_size=loader.batch_size, ignore_data_skip=True, report_to=[], logging_steps=1,
        disable_tqdm=True, **{"learning_rate": 1e-3, "seed": 0, **arguments})
    return PMGTrainer(loader, model=model, args=args)


def main(argv=None) -> PMGTrainer:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", type=out_dir_arg, default="out/hf")
    parser.add_argument("--max_steps", type=int_arg(1), default=200)
    parser.add_argument("--save_steps", type=int_arg(1), default=100)
    parser.add_argument("--resume", default=None, help="a checkpoint-<step> folder of --output_dir")
    parser.add_argument("--device", type=device_arg, default=str(default_device(None)))
    args = parser.parse_args(argv)
    cfg = pmg_dali.PMGConfig(num_frames=4, size=32, layout="BTCHW")      # Hugging Face VideoMAE: (B, T, C, H, W)
    # under torchrun each process takes its share: the Trainer starts torch.distributed later, so say it here
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = f"cuda:{os.environ['LOCAL_RANK']}" if args.device == "cuda" and "LOCAL_RANK" in os.environ else args.device
    loader = pmg_dali.PseudoMotionLoader(pmg_dali.SyntheticImages("mixed", num_images=1024), batch_size=8,
                                         config=cfg, device=device, seed=0, patch_size=8, rank=rank, world_size=world)
    if args.resume:
        try:
            resume_loader(loader, args.resume)
        except (OSError, ValueError) as err:       # not a checkpoint folder of this script, or of other settings
            parser.error(f"argument --resume: {err}")
    torch.manual_seed(0)
    trainer = make_trainer(loader, tiny_model(), args.output_dir, args.max_steps, args.save_steps,
                           use_cpu=args.device == "cpu")
    trainer.train(resume_from_checkpoint=args.resume)
    return trainer


if __name__ == "__main__":
    main()
    # The Trainer leaves the process group open: closing it while the interpreter is still alive keeps
    # gloo's threads from aborting the exit ("terminate called without an active exception")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
