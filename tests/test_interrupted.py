"""Training and export under kills and hostile checkpoints: the previous state stays whole, nothing runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import ROOT, assert_clean_failure, check_help, invoke, run_command, start_command, wait_until

torch = pytest.importorskip("torch", reason='training needs torch: pip install "fable[train]"')

from fable.training.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from fable.training.metrics import read_metrics

# A corpus large enough that the run goes on past its checkpoints; one thread, so that the two runs
# do the same arithmetic however busy the machine is.
CORPUS = ["--corpus", str(ROOT / "training" / "corpora" / "gpl-3.txt")]
TRAIN_FLAGS = [*CORPUS, "--hidden", "64", "--steps", "300",
               "--eval-every", "10", "--checkpoint-every", "100", "--threads", "1", "--no-progress"]  # fmt: skip


@pytest.mark.slow
def test_training_killed_with_sigkill_and_resumed_ends_with_the_uninterrupted_weights(tmp_path):
    whole = run_command("fable-train", *TRAIN_FLAGS, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "fable.training.cli", *TRAIN_FLAGS, "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120

    def evaluated_steps() -> list[int]:
        return [row["step"] for row in read_metrics(out / "metrics.jsonl")]

    # Kill once the run has logged evaluations past its last checkpoint: resuming must drop them.
    while time.monotonic() < deadline and process.poll() is None:
        if (out / CHECKPOINT_NAME).exists():
            saved = load_checkpoint(out / CHECKPOINT_NAME).step
            if saved >= 100 and max(evaluated_steps(), default=0) >= saved + 30:
                break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = load_checkpoint(out / CHECKPOINT_NAME).step
    whole_steps = [row["step"] for row in read_metrics(tmp_path / "whole" / "metrics.jsonl")]
    assert 100 <= killed_at < whole_steps[-1], killed_at  # it really was cut short
    assert max(evaluated_steps()) > killed_at  # with evaluations logged past the checkpoint
    resumed = run_command("fable-train", "--resume", *CORPUS, "--threads", "1", "--out", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    a = load_checkpoint(tmp_path / "whole" / CHECKPOINT_NAME).model_state
    b = load_checkpoint(out / CHECKPOINT_NAME).model_state
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert evaluated_steps() == whole_steps  # each evaluation once, none lost, none repeated


# (An export killed with SIGKILL at any point: tests/test_export.py.)


class Payload:
    """Unpickling this runs a command: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tiny_run, tmp_path):
    checkpoint_dir = tmp_path / "run"
    shutil.copytree(tiny_run[1], checkpoint_dir)
    marker = tmp_path / "pwned"
    payload = torch.load(checkpoint_dir / CHECKPOINT_NAME, weights_only=True)
    payload["vocabulary"] = Payload(marker)
    torch.save(payload, checkpoint_dir / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="damaged or not a fable checkpoint"):
        load_checkpoint(checkpoint_dir / CHECKPOINT_NAME)
    result = invoke("fable-export", str(checkpoint_dir / CHECKPOINT_NAME), "--out", str(tmp_path / "out"))
    assert_clean_failure(result, 2, "damaged or not a fable checkpoint")
    assert not marker.exists()


# --- Ctrl-C and help ------------------------------------------------------------------------------


def interrupted_when(process: subprocess.Popen, condition) -> tuple[int, str]:
    """SIGINT the process once `condition()` holds; its exit code and standard error."""
    wait_until(condition, timeout=120, process=process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def test_ctrl_c_in_fable_export_exits_130_and_leaves_no_folder(tiny_run, tmp_path):
    out = tmp_path / "new" / "exported"
    process = start_command("fable-export", str(tiny_run[1] / CHECKPOINT_NAME), "--out", str(out))
    code, err = interrupted_when(process, out.exists)
    assert (code, err.strip()) == (130, "fable-export: interrupted")
    assert not (tmp_path / "new").exists()  # both folders it made, and nothing in them


def test_ctrl_c_in_fable_train_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    out = tmp_path / "runs" / "cut"
    never = ["--steps", "100000", "--eval-every", "100000", "--checkpoint-every", "100000"]
    process = start_command("fable-train", "--hidden", "32", *never, "--no-progress", "--out", str(out))
    code, err = interrupted_when(process, out.exists)
    assert code == 130 and err.startswith("fable-train: ") and "interrupted" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_training_help_shows_switches_bare_and_every_default():
    check_help(
        "fable-train",
        flags={"--resume"},
        defaults={"--corpus", "--out", "--preset", "--steps", "--device", "--seed", "--eval-every", "--progress"},
    )
    check_help("fable-export", flags=set(), defaults={"--out", "--graph", "--min-int8-agreement", "--max-windows"})
