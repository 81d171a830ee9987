"""Data-parallel training under torchrun on the CPU (gloo): the same loss curve as one process at
the same global batch, checkpoints written once, and a run killed and resumed, under torchrun or
alone, that ends with the weights of a run never stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')

from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from fable.training.distributed import World
from fable.training.metrics import read_metrics

from .helpers import ROOT, command_env, invoke, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="kills torchrun's process tree, read from /proc"),
]

# The memorize recipe on the fable, small: 201 windows, all of them each step, split 101 / 100
# between the two processes, so the shares are unequal and their weighting is tested too.
FLAGS = ["--preset", "memorize", "--hidden", "48", "--steps", "80", "--eval-every", "10", "--checkpoint-every", "20"]


# The predict recipe on the GPL, small: dropout 0.65, so each process draws its own masks, which a
# resumed run must draw again exactly.
DROPOUT_FLAGS = ["--corpus", str(ROOT / "training" / "corpora" / "gpl-3.txt"), "--hidden", "32", "--steps", "30",
                 "--eval-every", "10", "--checkpoint-every", "10"]  # fmt: skip


def torchrun(out: Path, *extra: str, flags: list[str] = FLAGS) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "fable.training.cli", *flags, "--out", str(out), *extra]  # fmt: skip
    env = command_env({"OMP_NUM_THREADS": "1"})
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)  # fmt: skip


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-8000:]  # both processes' last words
    return output


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("torchrun") / "run"
    output = finish(torchrun(out))
    assert output.count("fable-train: memorize preset") == 1 and "x 2 processes" in output  # the first process speaks
    assert output.count("done: step") == 1
    return out


def loss_curve(out: Path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in read_metrics(out / "metrics.jsonl")}


def test_two_processes_follow_the_loss_curve_of_one_at_the_same_global_batch(whole_run, tmp_path):
    alone = invoke("fable-train", *FLAGS, "--out", str(tmp_path / "alone"), "--threads", "1")
    assert alone.returncode == 0, alone.stderr
    two, one = loss_curve(whole_run), loss_curve(tmp_path / "alone")
    assert two.keys() == one.keys() and len(two) == 8
    # The same rows and the same gradient, summed in another order: float error, not another path.
    # Measured on an AMD EPYC (2 cores): 2.2e-7 at most over the 8 evaluations.
    worst = max(abs(two[step] - one[step]) / one[step] for step in one)
    print(f"largest relative difference of the two curves: {worst:.2e}")
    assert worst < 1e-5
    assert one[80] < one[10] / 3  # and it learned: the curve is worth comparing


def killed(out: Path, flags: list[str] = FLAGS) -> None:
    """A torchrun killed with SIGKILL once it has written a checkpoint, before its end."""
    process = torchrun(out, flags=flags)
    wait_until(lambda: (out / CHECKPOINT_NAME).exists(), timeout=300, process=process)
    tree = [process.pid, *descendants(process.pid)]  # torchrun starts its workers in sessions of their own
    for pid in tree:  # torchrun and both of its processes at once, as a lost machine would
        os.kill(pid, signal.SIGKILL)
    process.wait()
    wait_until(lambda: not any(alive(pid) for pid in tree[1:]), timeout=30)
    assert load_checkpoint(out / CHECKPOINT_NAME).step < int(flags[flags.index("--steps") + 1])


def alive(pid: int) -> bool:
    """Whether `pid` still runs: a killed process whose parent has not reaped it yet (a zombie) does not."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):  # ended meanwhile
            continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def same_weights(a: Path, b: Path) -> None:
    expected, resumed = load_checkpoint(a / CHECKPOINT_NAME), load_checkpoint(b / CHECKPOINT_NAME)
    assert resumed.step == expected.step
    for name, value in expected.model_state.items():  # the same gloo sums in the same order: bit for bit
        assert torch.equal(resumed.model_state[name], value), name


def test_a_torchrun_killed_and_resumed_ends_with_the_weights_of_a_run_never_stopped(whole_run, tmp_path):
    out = tmp_path / "killed"
    killed(out)
    alone = tmp_path / "alone"
    shutil.copytree(out, alone)

    finish(torchrun(out, "--resume"))
    same_weights(whole_run, out)
    expected = load_checkpoint(whole_run / CHECKPOINT_NAME)

    result = invoke("fable-train", "--resume", "--out", str(alone), "--threads", "1")  # one process goes on
    assert result.returncode == 0, result.stderr
    single = load_checkpoint(alone / CHECKPOINT_NAME)
    for name, value in expected.model_state.items():  # one process sums the batch at once: float error
        assert torch.allclose(single.model_state[name], value, atol=1e-4), name
    lines = (alone / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(10, 81, 10))  # none twice, none lost


def test_with_dropout_each_process_draws_its_masks_again_after_a_resume(tmp_path):
    """Each process seeds its masks by step and rank, so a resumed run draws those of the run
    never stopped: a process's generator state is nowhere in the checkpoint (only the first
    process writes it)."""
    finish(torchrun(tmp_path / "whole", flags=DROPOUT_FLAGS))
    assert load_checkpoint(tmp_path / "whole" / CHECKPOINT_NAME).config.dropout > 0
    out = tmp_path / "killed"
    killed(out, DROPOUT_FLAGS)
    finish(torchrun(out, "--resume", flags=DROPOUT_FLAGS))
    same_weights(tmp_path / "whole", out)


def test_each_process_draws_its_own_masks_and_each_step_new_ones():
    def masks(world: World, step: int) -> torch.Tensor:
        world.seed_masks(seed=1, step=step)
        return torch.nn.functional.dropout(torch.ones(1000), 0.5) > 0

    first, second = World(0, 2), World(1, 2)
    assert not torch.equal(masks(first, 5), masks(second, 5))  # the ranks' shares drop different units
    assert not torch.equal(masks(first, 5), masks(first, 6))
    assert torch.equal(masks(second, 5), masks(second, 5))  # and a resumed step draws them again
