"""Training: it learns, it is reproducible, it resumes bit for bit, and the default recipe fits the fable."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')

from fable.errors import SettingError
from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from fable.training.config import PRESETS
from fable.training.evaluate import greedy_continuations
from fable.training.metrics import read_metrics
from fable.training.progress import Progress
from fable.training.schedule import Schedule
from fable.training.train import TrainingInterrupted, train

from .helpers import tiny_config


def weights(out) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / CHECKPOINT_NAME).model_state


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_tiny_model_learns(fable_corpus, tmp_path):
    result = train(fable_corpus, tiny_config(steps=80), "cpu", tmp_path)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [row["step"] for row in rows] == list(range(10, 81, 10))
    assert rows[-1]["loss"] < rows[0]["loss"] / 2
    assert rows[-1]["accuracy"] > rows[0]["accuracy"]
    assert set(rows[0]) >= {"step", "loss", "accuracy", "perplexity", "elapsed"}
    assert rows[-1]["perplexity"] == pytest.approx(np.exp(rows[-1]["loss"]))
    assert result.evaluation.windows == 201


def test_the_same_seed_gives_identical_weights(fable_corpus, tmp_path):
    config = tiny_config(steps=20)
    train(fable_corpus, config, "cpu", tmp_path / "a")
    train(fable_corpus, config, "cpu", tmp_path / "b")
    train(fable_corpus, dataclasses.replace(config, seed=1), "cpu", tmp_path / "c")
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert not same_weights(weights(tmp_path / "a"), weights(tmp_path / "c"))


class StopAt(Progress):
    """Presses Ctrl-C at a given step."""

    def __init__(self, total: int, stop: int):
        super().__init__(total, bar=False)
        self.stop = stop

    def update(self, step, loss, accuracy):
        if step == self.stop:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    "config",
    [
        tiny_config(steps=60),  # every window each step
        dataclasses.replace(tiny_config(steps=60), batch_size=16),  # random batches: the sampler's RNG must resume
        tiny_config("tutorial", steps=60),  # the stride walk: its position must resume too
        # the decay begins at step 10 (at 1% of the ceiling) and is cut midway:
        # when it began must resume, or the rates after step 40 differ
        dataclasses.replace(tiny_config(steps=200), decay_from_ceiling=0.01, decay_fraction=5.0, min_decay=1),
    ],
    ids=["full-batch", "random-batches", "tutorial-walk", "mid-decay"],
)
def test_an_interrupted_run_resumed_ends_with_the_weights_of_an_uninterrupted_one(fable_corpus, tmp_path, config):
    whole = train(fable_corpus, config, "cpu", tmp_path / "whole")
    if config.decay_from_ceiling == 0.01:
        assert whole.schedule.decay_from == 10 and whole.checkpoint.step == 60  # 10 held, then 50 decaying
    with pytest.raises(TrainingInterrupted, match="step 40"):
        train(fable_corpus, config, "cpu", tmp_path / "cut", progress=StopAt(config.steps, stop=47))
    checkpoint = load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)
    assert checkpoint.step == 40
    train(fable_corpus, config, "cpu", tmp_path / "cut", resume=checkpoint)
    assert same_weights(weights(tmp_path / "whole"), weights(tmp_path / "cut"))
    # metrics.jsonl holds each evaluation once, as if the run had not stopped
    steps = [row["step"] for row in read_metrics(tmp_path / "cut" / "metrics.jsonl")]
    assert steps == [row["step"] for row in read_metrics(tmp_path / "whole" / "metrics.jsonl")]


def test_the_tutorial_holds_its_rate_and_a_recipe_names_a_known_schedule():
    assert {Schedule(PRESETS["tutorial"]).rate(step) for step in (1, 12345, 50_000)} == {1e-3}
    with pytest.raises(SettingError, match="schedule must be"):
        dataclasses.replace(PRESETS["memorize"], schedule="cosine").validate()


def test_checkpoints_hold_only_plain_data(tiny_run):
    checkpoint, out = tiny_run
    payload = torch.load(out / CHECKPOINT_NAME, weights_only=True)  # would raise on any pickled object
    assert payload["format"] == "fable-checkpoint"
    assert checkpoint.vocabulary[:3] == [",", "the", "."]
    assert len(checkpoint.ids) == 204


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_training_runs_on_cuda(fable_corpus, tmp_path):
    result = train(fable_corpus, tiny_config(steps=60), "cuda", tmp_path)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert result.checkpoint.device == "cuda"
    assert rows[-1]["loss"] < rows[0]["loss"] / 2


@pytest.mark.slow
def test_the_default_recipe_reaches_the_ceiling_and_continues_the_old_mouse(default_run):
    checkpoint, result = default_run
    assert result.evaluation.correct == 199 and result.evaluation.windows == 201
    vocabulary = checkpoint.vocabulary
    context = np.array([[vocabulary.index(w) for w in "the old mouse".split()]])
    words = [vocabulary[i] for i in greedy_continuations(checkpoint.build_model(), context, 32)[0]]
    assert len(words) == 32
    # the corpus's own continuation of "the old mouse", read from the text
    assert " ".join(words[:9]) == "said it is easy to propose impossible remedies ."


def test_the_metrics_file_is_json_lines(tiny_run):
    _, out = tiny_run
    for line in (out / "metrics.jsonl").read_text().splitlines():
        assert isinstance(json.loads(line)["step"], int)


def test_a_checkpoint_keeps_the_gpus_random_state_for_dropout_on_resume(monkeypatch):
    from fable.training.train import random_state, restore_random_state

    gpu = {"state": torch.tensor([7, 1, 3], dtype=torch.uint8)}
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: gpu["state"].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state: gpu.update(state=state))
    data = torch.Generator().manual_seed(5)
    saved = random_state("cuda:0", data)
    assert torch.equal(saved["cuda"], torch.tensor([7, 1, 3], dtype=torch.uint8))
    assert "cuda" not in random_state("cpu", data)
    gpu["state"] = torch.tensor([0, 0, 0], dtype=torch.uint8)  # the generator moves on
    torch.rand(3, generator=data)
    restore_random_state(saved, "cuda:0", data)
    assert torch.equal(gpu["state"], torch.tensor([7, 1, 3], dtype=torch.uint8))
    assert torch.equal(data.get_state(), saved["data"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_a_run_with_dropout_resumed_on_cuda_ends_with_the_same_weights(fable_corpus, tmp_path):
    config = dataclasses.replace(tiny_config(steps=60), dropout=0.3)
    whole = train(fable_corpus, config, "cuda", tmp_path / "whole").checkpoint
    with pytest.raises(TrainingInterrupted, match="step 40"):
        train(fable_corpus, config, "cuda", tmp_path / "cut", progress=StopAt(config.steps, stop=47))
    resumed = train(
        fable_corpus, config, "cuda", tmp_path / "cut", resume=load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)
    )
    assert all(
        torch.allclose(resumed.checkpoint.model_state[k].cpu(), v.cpu(), atol=1e-6)
        for k, v in whole.model_state.items()
    )


@pytest.mark.parametrize("name", ["eval_windows", "stop_windows"])
def test_no_evaluation_along_the_way_reads_more_than_the_last_one(name):
    config = PRESETS["predict"]
    dataclasses.replace(config, **{name: config.final_windows}).validate()
    with pytest.raises(SettingError, match=f"{name} must be a whole number from 1 to {config.final_windows:,}"):
        dataclasses.replace(config, **{name: config.final_windows + 1}).validate()
