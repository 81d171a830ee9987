"""What a person's words cost a keyboard (`fable.learned`): a `typing()` suggestion a word with
learning on and off, beside a generated word of the same file, on the shipped fable and on a
`predict` model of a real corpus (which reads words it lacks as <unk>, so it learns the text so
far). The target: a learning suggestion costs at most 1.5x a generated word (see conftest's ratios).
"""

from __future__ import annotations

import dataclasses
import itertools
from itertools import cycle
from pathlib import Path

import pytest

from fable import Model
from fable.benchmark import word_stepper
from fable.sampling import Sampling

from .test_latency import PER_WORD

MESSAGE = 200  # words a person types before starting another text
CORPUS = Path(__file__).resolve().parents[1] / "training" / "corpora" / "gpl-3.txt"


@pytest.fixture(scope="session")
def corpus_model(tmp_path_factory) -> Path:
    """The int8 file of gpl-3 with the `predict` recipe's shape (256 units, window 6, <unk>),
    trained 50 steps: its speed is measured, not its words."""
    pytest.importorskip("torch", reason="the corpus model is trained here (pip install '.[train]')")
    from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from fable.training.config import PRESETS
    from fable.training.corpus import load_corpus
    from fable.training.export.exporter import ExportOptions, export_checkpoint
    from fable.training.train import train

    preset = PRESETS["predict"]
    corpus = load_corpus(CORPUS, preset.model.window, preset.tokenizer_version, preset.min_count, None, preset.holdout)
    config = dataclasses.replace(preset.for_corpus(corpus.window_count(preset.model.window)), steps=50)
    out = tmp_path_factory.mktemp("gpl-3")
    train(corpus, config, "cpu", out)
    loose = ExportOptions(min_int8_agreement=0, max_int8_accuracy_drop=100, max_heldout_perplexity_rise=10)
    export_checkpoint(load_checkpoint(out / CHECKPOINT_NAME), "gpl-3", out / "exported", loose)
    return out / "exported" / "fable.int8.onnx"


def model_and_words(which: str, shipped: dict[str, Path], corpus_model: Path) -> tuple[Model, list[str]]:
    """The model, and its corpus's tokens: each adds one model step, as a generated word does."""
    model = Model(shipped["int8"] if which == "fable" else corpus_model)
    text = (Path(__file__).resolve().parents[1] / "training" / "fable.txt") if which == "fable" else CORPUS
    return model, model.tokens(text.read_text(encoding="utf-8"))[:5000]


@pytest.mark.benchmark(**PER_WORD)
@pytest.mark.parametrize("which", ["fable", "gpl-3"])
def test_learning_word(benchmark, shipped, corpus_model, which):
    """A generated word (sampled) of the file the suggestions below read."""
    model, _ = model_and_words(which, shipped, corpus_model)
    benchmark(word_stepper(model, Sampling(1.0, seed=0)))


@pytest.mark.benchmark(**PER_WORD)
@pytest.mark.parametrize("learning", [False, True], ids=["alone", "learning"])
@pytest.mark.parametrize("which", ["fable", "gpl-3"])
def test_learning_typing(benchmark, shipped, corpus_model, which, learning):
    """Top-3 suggestions while the text grows a word a call, the text being the corpus's own
    words. Learning: the fable's model learns the fable first (it has no <unk>, so the text so far
    is not counted); the corpus model counts the text so far, and its words the vocabulary lacks."""
    model, words = model_and_words(which, shipped, corpus_model)
    model.learns_text = learning and model.unknown_id is not None
    if learning and not model.learns_text:
        model.learn(" ".join(words))
    assert not learning or model.learns_text or model.learned.size == len(words)
    coming = cycle(words)
    text: list[str] = []
    with model.typing() as typing:

        def next_word() -> None:
            if len(text) == MESSAGE:  # a new message: read afresh, its words counted anew
                text.clear()
            text.append(next(coming))
            typing.suggest(" ".join(text) + " ", 3)

        benchmark(next_word)


@pytest.mark.benchmark(**PER_WORD)
@pytest.mark.parametrize("learning", [False, True], ids=["alone", "learning"])
@pytest.mark.parametrize("which", ["fable", "gpl-3"])
def test_learning_letter(benchmark, shipped, corpus_model, which, learning):
    """The same text typed a letter a call, as a keyboard asks before each letter (and after each
    space): most calls complete the word being typed, and only a word's first asks the model."""
    model, words = model_and_words(which, shipped, corpus_model)
    model.learns_text = learning and model.unknown_id is not None
    if learning and not model.learns_text:
        model.learn(" ".join(words))
    message = " ".join(words[:MESSAGE]) + " "
    position = itertools.cycle(range(1, len(message) + 1))
    with model.typing() as typing:
        benchmark(lambda: typing.suggest(message[: next(position)], 3))
