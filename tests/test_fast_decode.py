"""The fast decode (one batched step per word) equals the plain decode (the whole window per word).

The plain decode is written here, straight on onnxruntime's session: the window graph run on each
whole window, greedy, a word at a time."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')
onnx = pytest.importorskip("onnx", reason='needs the train extra: pip install "fable[train]"')
ort = pytest.importorskip("onnxruntime", reason="the plain reference decode runs on onnxruntime")

import fable
from fable import contract
from fable.tokenizer import make_windows
from fable.training.export.exporter import build_graph, metadata_for, window_baseline
from fable.training.export.weights import weights_from_torch
from fable.training.train import train

from .helpers import SHIPPED, streamed_runs, tiny_config

WORDS = 32


def plain_decode(path, contexts: np.ndarray, words: int, one_at_a_time: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The window graph's next-word logits [N, vocab] of each context and its greedy continuation
    [N, words]: all contexts in lockstep, or one at a time (int8's dynamic quantization takes one
    scale over all the rows of a run, so its rows must run alone)."""
    if one_at_a_time:
        decoded = [plain_decode(path, contexts[i : i + 1], words) for i in range(len(contexts))]
        return np.concatenate([d[0] for d in decoded]), np.concatenate([d[1] for d in decoded])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    window = contexts.shape[1]
    sequences, first = np.array(contexts, np.int64), None
    for _ in range(words):
        (logits,) = session.run([contract.OUTPUT_LOGITS], {contract.INPUT_WINDOW: sequences[:, -window:]})
        first = logits if first is None else first
        sequences = np.concatenate([sequences, logits.argmax(axis=1)[:, None]], axis=1)
    return first, sequences[:, window:]


def build(checkpoint, graph: str, path):
    meta = metadata_for(checkpoint, graph, "fp32")
    onnx.save(build_graph(weights_from_torch(checkpoint.build_model()), meta), path)
    return path


@pytest.mark.parametrize("window", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("encoding", ["embedding", "index"])
@pytest.mark.parametrize("layers", [1, 2])
def test_fast_equals_plain_word_for_word_on_every_fable_window(fable_corpus, tmp_path, layers, encoding, window):
    config = tiny_config(steps=60, layers=layers, window=window, encoding=encoding)
    checkpoint = train(fable_corpus, config, "cpu", tmp_path / "run").checkpoint
    fast = fable.load(build(checkpoint, contract.GRAPH_STEP, tmp_path / "step.onnx"))
    contexts, _ = make_windows(checkpoint.ids, window)
    plain_logits, plain_words = plain_decode(
        build(checkpoint, contract.GRAPH_WINDOW, tmp_path / "w.onnx"), contexts, WORDS
    )
    assert np.abs(fast.window_logits(contexts) - plain_logits).max() < 1e-5
    assert np.array_equal(streamed_runs(fast, contexts, WORDS), plain_words)


@pytest.fixture(scope="module")
def shipped_pairs(tmp_path_factory):
    """The shipped step files beside window graphs the exporter builds from the same weights."""
    fp32_window, int8_window = window_baseline(SHIPPED / "fable.onnx", tmp_path_factory.mktemp("plain"))
    return {
        "fp32": (fable.load(SHIPPED / "fable.onnx"), fp32_window),
        "int8": (fable.load(SHIPPED / "fable.int8.onnx"), int8_window),
    }


def test_the_shipped_fp32_file_decodes_exactly_like_the_plain_graph(shipped_pairs, fable_corpus):
    fast, plain = shipped_pairs["fp32"]
    contexts, _ = make_windows(fable_corpus.ids, 3)
    assert np.array_equal(streamed_runs(fast, contexts, WORDS), plain_decode(plain, contexts, WORDS)[1])


def test_the_shipped_int8_file_agrees_with_the_plain_int8_graph_on_99_percent_of_windows(shipped_pairs, fable_corpus):
    fast, plain = shipped_pairs["int8"]
    contexts, _ = make_windows(fable_corpus.ids, 3)
    same = (streamed_runs(fast, contexts, WORDS) == plain_decode(plain, contexts, WORDS, one_at_a_time=True)[1]).all(
        axis=1
    )
    assert same.mean() >= 0.99, f"{same.sum()} of {len(same)} windows identical"


def test_the_plain_window_graph_runs_in_the_runtime_too(shipped_pairs):
    """The runtime decodes window-graph files (a batch one sequence after another) with the plain
    decode's words."""
    fast, plain = shipped_pairs["fp32"]
    prompts = ["the old mouse", "said he ,", "long ago ,"]
    for backend in ("onnxruntime", "numpy"):
        model = fable.load(plain, backend=backend)
        assert model.metadata.graph == contract.GRAPH_WINDOW and not model.metadata.batched
        assert model.generate_batch(prompts, 12) == [fast.generate(p, 12) for p in prompts]
