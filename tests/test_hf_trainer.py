"""examples/hf_trainer.py: transformers.Trainer trains Hugging Face VideoMAEForPreTraining on the
loader's batches; a run stopped at a checkpoint and resumed through the Trainer sees, batch for batch,
what the straight run saw."""
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import hf_trainer  # noqa: E402

import pmg_dali  # noqa: E402


def loader():
    g = torch.Generator().manual_seed(5)
    images = pmg_dali.TensorImages(torch.randint(0, 256, (16, 3, 40, 40), dtype=torch.uint8, generator=g))
    return pmg_dali.PseudoMotionLoader(images, batch_size=4, config=pmg_dali.PMGConfig(num_frames=4, size=32,
                                       layout="BTCHW"), device="cpu", seed=11, patch_size=8)   # 4 batches an epoch


class Seen:
    """Records the pixel batches the model is trained on (a callback's on_step_begin sees no inputs: the
    model's forward is wrapped instead)."""

    def __init__(self, model):
        self.batches, forward = [], model.forward

        def recording(pixel_values, bool_masked_pos, **kwargs):
            self.batches.append(pixel_values.clone())
            return forward(pixel_values=pixel_values, bool_masked_pos=bool_masked_pos, **kwargs)
        model.forward = recording


class StopAt(transformers.TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def run(output_dir, data, max_steps, *callbacks, resume=None, **arguments):
    torch.manual_seed(0)
    model = hf_trainer.tiny_model()
    seen = Seen(model)
    trainer = hf_trainer.make_trainer(data, model, str(output_dir), max_steps, save_steps=3, use_cpu=True, **arguments)
    for callback in callbacks:
        trainer.add_callback(callback)
    trainer.train(resume_from_checkpoint=resume)
    return trainer, seen.batches


def test_trainer_trains_on_loader_batches_and_resumes_on_the_next_batch(tmp_path):
    straight, batches = run(tmp_path / "straight", loader(), 10)
    losses = [row["loss"] for row in straight.state.log_history if "loss" in row]
    assert len(batches) == 10 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) < sum(losses[:3]), losses                     # it learns something
    assert not torch.equal(batches[0], batches[4])                       # epoch 1 is not epoch 0 again
    assert batches[0].shape == (4, 4, 3, 32, 32)

    _, first = run(tmp_path / "cut", loader(), 10, StopAt(6))            # stopped after checkpoint-6
    assert len(first) == 6 and all(torch.equal(a, b) for a, b in zip(first, batches))
    resumed_loader = loader()
    hf_trainer.resume_loader(resumed_loader, str(tmp_path / "cut" / "checkpoint-6"))
    assert (resumed_loader.epoch, resumed_loader.state_dict()["step"]) == (1, 2)
    _, rest = run(tmp_path / "cut", resumed_loader, 10, resume=str(tmp_path / "cut" / "checkpoint-6"))
    assert len(rest) == 4 and all(torch.equal(a, b) for a, b in zip(rest, batches[6:]))


def test_gradient_accumulation_resumes_exactly_and_must_divide_the_epoch(tmp_path):
    """With 2 micro-batches an update (4 batches an epoch), checkpoint-3 is 6 batches in: epoch 1, step 2."""
    _, batches = run(tmp_path / "straight", loader(), 5, gradient_accumulation_steps=2)
    assert len(batches) == 10
    run(tmp_path / "cut", loader(), 5, StopAt(3), gradient_accumulation_steps=2)
    resumed_loader = loader()
    hf_trainer.resume_loader(resumed_loader, str(tmp_path / "cut" / "checkpoint-3"))
    assert (resumed_loader.epoch, resumed_loader.state_dict()["step"]) == (1, 2)
    _, rest = run(tmp_path / "cut", resumed_loader, 5, resume=str(tmp_path / "cut" / "checkpoint-3"),
                  gradient_accumulation_steps=2)
    assert len(rest) == 4 and all(torch.equal(a, b) for a, b in zip(rest, batches[6:]))
    with pytest.raises(ValueError, match=r"`gradient_accumulation_steps` \(3\) must divide the loader's 4 batches"):
        run(tmp_path / "three", loader(), 5, gradient_accumulation_steps=3)


@pytest.mark.parametrize("argv, message", [
    # --max_steps <= 0 is not a step count to the Trainer (it trains its epoch count), nor is 0 an interval
    (["--max_steps=0"], "argument --max_steps: must be an int >= 1, but got 0"),
    (["--max_steps=-3"], "argument --max_steps: must be an int >= 1, but got -3"),
    (["--save_steps=0"], "argument --save_steps: must be an int >= 1, but got 0"),
    (["--save_steps=x"], "argument --save_steps: must be an int >= 1, but got 'x'"),
    (["--device=foo"], "argument --device: must be cpu, cuda or cuda:N, but got 'foo'"),
    (["--device=meta"], "argument --device: must be cpu, cuda or cuda:N, but got 'meta'"),
    (["--output_dir", __file__], f"argument --output_dir: must be a folder, but {__file__!r} is a file"),
    (["--device=cpu", "--resume=no/such/checkpoint-3"], "argument --resume: [Errno 2] No such file or directory"),
])
def test_bad_flags_are_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        hf_trainer.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err
