"""The fast decode (one batched step per word) equals the plain decode (the whole window per word)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')
onnx = pytest.importorskip("onnx", reason='needs the train extra: pip install "fable[train]"')

import fable
from fable import contract
from fable.tokenizer import make_windows
from fable.training.export.exporter import build_graph, metadata_for, window_baseline
from fable.training.export.weights import weights_from_torch
from fable.training.train import train

from .helpers import SHIPPED, tiny_config

WORDS = 32


def greedy_runs(model: fable.Model, contexts: np.ndarray) -> np.ndarray:
    return np.array([list(model.stream_ids(c, WORDS)) for c in contexts])


def build(checkpoint, graph: str, path) -> fable.Model:
    weights = weights_from_torch(checkpoint.build_model())
    meta = metadata_for(checkpoint, graph, "fp32")
    onnx.save(build_graph(weights, meta), path)
    return fable.load(path)


@pytest.mark.parametrize("window", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("encoding", ["embedding", "index"])
@pytest.mark.parametrize("layers", [1, 2])
def test_fast_equals_plain_word_for_word_on_every_fable_window(fable_corpus, tmp_path, layers, encoding, window):
    preset = "default" if encoding == "embedding" else "tutorial"
    config = tiny_config(preset, steps=60, layers=layers, window=window)
    if encoding == "index":  # a batch per step, so the index model learns something in 60 steps
        config = dataclasses.replace(config, batch_size=64, sampling="windows", optimizer="adam", learning_rate=1e-2)
    checkpoint = train(fable_corpus, config, "cpu", tmp_path / "run").checkpoint
    fast = build(checkpoint, contract.GRAPH_STEP, tmp_path / "step.onnx")
    plain = build(checkpoint, contract.GRAPH_WINDOW, tmp_path / "window.onnx")
    contexts, _ = make_windows(checkpoint.ids, window)

    fast_logits = np.stack([fast.next_logits(c) for c in contexts])
    plain_logits = np.stack([plain.next_logits(c) for c in contexts])
    assert np.abs(fast_logits - plain_logits).max() < 1e-5
    assert np.array_equal(greedy_runs(fast, contexts), greedy_runs(plain, contexts))


@pytest.fixture(scope="module")
def shipped_pairs(tmp_path_factory):
    """The shipped step files beside window graphs the exporter builds from the same weights."""
    fp32_window, int8_window = window_baseline(SHIPPED / "fable.onnx", tmp_path_factory.mktemp("plain"))
    return {
        "fp32": (fable.load(SHIPPED / "fable.onnx"), fable.load(fp32_window)),
        "int8": (fable.load(SHIPPED / "fable.int8.onnx"), fable.load(int8_window)),
    }


def test_the_shipped_fp32_file_decodes_exactly_like_the_plain_graph(shipped_pairs, fable_corpus):
    fast, plain = shipped_pairs["fp32"]
    contexts, _ = make_windows(fable_corpus.ids, 3)
    assert np.array_equal(greedy_runs(fast, contexts), greedy_runs(plain, contexts))


def test_the_shipped_int8_file_agrees_with_the_plain_int8_graph_on_99_percent_of_windows(shipped_pairs, fable_corpus):
    fast, plain = shipped_pairs["int8"]
    contexts, _ = make_windows(fable_corpus.ids, 3)
    same = (greedy_runs(fast, contexts) == greedy_runs(plain, contexts)).all(axis=1)
    assert same.mean() >= 0.99, f"{same.sum()} of {len(same)} windows identical"
