"""examples/lightning_train.py: Lightning trains on a PseudoMotionLoader returned by a LightningDataModule --
one process with exact resume through Lightning's own checkpoint, and two DDP processes (gloo) that
get disjoint indices and equal numbers of batches."""
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import lightning_train  # noqa: E402



def test_one_process_epochs_and_exact_resume(tmp_path):
    straight = lightning_train.main(["--max_epochs=3"]).seen
    assert len(straight) == 24                                       # 16 images, batch 2: 8 steps an epoch
    orders = [[i for epoch, idx, _ in straight if epoch == e for i in idx] for e in range(3)]
    assert all(sorted(order) == list(range(16)) for order in orders) and orders[0] != orders[1]
    cut = lightning_train.main(["--max_epochs=3", "--max_steps=7", f"--checkpoint_dir={tmp_path}", "--save_every=5"])
    assert cut.seen == straight[:7]
    resumed = lightning_train.main(["--max_epochs=3", f"--ckpt_path={tmp_path / 'epoch=0-step=5.ckpt'}"]).seen
    assert resumed == straight[5:]                                   # the next batch, and every one after


def free_port() -> str:
    """A port nothing listens on now (loopback), for the two processes' rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def ddp(tmp_path, name: str, *flags: str) -> list:
    """Two gloo processes of examples/lightning_train.py; each rank's (epoch, indices, mean) rows."""
    result = subprocess.run([sys.executable, str(EXAMPLES / "lightning_train.py"), "--devices=2", "--strategy=ddp",
                             "--accelerator=cpu", f"--out={tmp_path / name}", *flags], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": free_port()})
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((tmp_path / f"{name}.{rank}").read_text()) for rank in (0, 1)]


@pytest.mark.slow     # Lightning runs
def test_two_ddp_processes_get_disjoint_equal_shares_and_resume(tmp_path):
    """Two epochs (saving at step 2 on the way), then a run resumed from that checkpoint: each rank goes
    on with its next batch (the one-process test above also stops a run before resuming it)."""
    ranks = ddp(tmp_path, "straight", f"--checkpoint_dir={tmp_path / 'ckpt'}", "--save_every=2")
    assert len(ranks[0]) == len(ranks[1]) == 8                        # 4 batches an epoch on each rank
    for epoch in (0, 1):
        shares = [[i for e, idx, _ in seen if e == epoch for i in idx] for seen in ranks]
        assert not set(shares[0]) & set(shares[1]) and sorted(shares[0] + shares[1]) == list(range(16))
    resumed = ddp(tmp_path, "resumed", f"--ckpt_path={tmp_path / 'ckpt' / 'epoch=0-step=2.ckpt'}")
    assert resumed[0] == ranks[0][2:] and resumed[1] == ranks[1][2:]     # each rank goes on with its next batch


@pytest.mark.parametrize("argv, message", [
    # --save_every 0 would save nothing without a word
    (["--save_every=0"], "argument --save_every: must be an int >= 1, but got 0"),
    (["--save_every=-1"], "argument --save_every: must be an int >= 1, but got -1"),
    (["--save_every=five"], "argument --save_every: must be an int >= 1, but got 'five'"),
    (["--devices=0"], "error: `Trainer(devices=0)`"),        # then Lightning's own words
    (["--devices=-2"], "argument --devices: must be -1 (every device) or a device count, but got -2"),
    (["--checkpoint_dir", __file__], f"argument --checkpoint_dir: must be a folder, but {__file__!r} is a file"),
    (["--max_epochs=-3"], "error: `max_epochs`"),
    (["--ckpt_path=no/such.ckpt"], "argument --ckpt_path: no such checkpoint file: 'no/such.ckpt'"),
    (["--ckpt_path", __file__], f"argument --ckpt_path: not a checkpoint (not a zip archive): {__file__!r}"),
])
def test_bad_flags_are_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        lightning_train.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


def test_ckpt_path_must_be_a_lightning_checkpoint(tmp_path, capsys):
    """A zip archive that is no Lightning checkpoint (pretrain.py's ckpt.pt, any zip, a damaged checkpoint)
    is one usage line, not a traceback inside trainer.fit."""
    torch.save({"model": {"weight": torch.zeros(2)}, "step": 3}, tmp_path / "ckpt.pt")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")
    with zipfile.ZipFile(tmp_path / "ckpt.pt") as good, zipfile.ZipFile(tmp_path / "damaged.ckpt", "w") as damaged:
        for item in good.infolist():                 # the pickle emptied, the rest intact
            damaged.writestr(item, b"" if item.filename.endswith("data.pkl") else good.read(item))
    cases = {"ckpt.pt": "not a Lightning checkpoint (no 'pytorch-lightning_version')",
             "other.zip": "cannot read the checkpoint (RuntimeError: ",
             "damaged.ckpt": "cannot read the checkpoint (EOFError: empty)"}
    for name, why in cases.items():
        with pytest.raises(SystemExit) as exit_:
            lightning_train.main([f"--ckpt_path={tmp_path / name}"])
        last = capsys.readouterr().err.strip().splitlines()[-1]      # the error, on one line after the usage
        assert exit_.value.code == 2 and f": error: argument --ckpt_path: {why}" in last, last
        assert last.endswith(f"{str(tmp_path / name)!r}"), last
