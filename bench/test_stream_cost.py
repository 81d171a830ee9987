"""What a model that reads the whole text costs a word, against today's window-6 file.

Both files hold the same weights, of `predict`'s size with a corpus's vocabulary (2 x 256, 5,000
words; random: a word's cost does not depend on their values): the window-6 step graph runs 6
rows a word, the stream graph one row and, with its cache of the last 500 words, their votes.
Per generated word and per typing suggestion (a word a call); the ratios are in
bench/results/local/latency.json ("stream" in their names).
"""

from __future__ import annotations

import json
import time
from itertools import cycle
from pathlib import Path

import numpy as np
import pytest

from fable import Model
from fable.benchmark import word_stepper
from fable.contract import (
    GRAPH_STEP,
    GRAPH_STREAM,
    CacheSettings,
    ModelConfig,
    ModelMetadata,
    Provenance,
    lowest_version,
)
from fable.machine import describe as describe_machine
from fable.sampling import Sampling

onnx = pytest.importorskip("onnx", reason="the files are built by the exporter (pip install '.[train]')")

VOCAB, HIDDEN = 5000, 256
CACHE = CacheSettings(size=500, flatness=0.3, weight=0.1)
PER_WORD = {"group": "stream per word", "min_rounds": 1000, "max_time": 2.0, "warmup": True}
KINDS = ["window-6", "stream-cache", "stream-alone"]
ROUNDS = 5000  # interleaved rounds: one word of each kind
ROOT_RESULTS = Path(__file__).parent / "results" / "local"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple]:
    from fable.training.export.exporter import build_graph
    from fable.training.export.weights import LayerWeights, Weights

    rng = np.random.default_rng(0)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    layers = tuple(LayerWeights(normal(HIDDEN, 4 * HIDDEN), normal(HIDDEN, 4 * HIDDEN), normal(4 * HIDDEN))
                   for _ in range(2))  # fmt: skip
    weights = Weights(normal(VOCAB, HIDDEN), layers, normal(HIDDEN, VOCAB), normal(VOCAB))
    provenance = Provenance("0" * 64, "synthetic", "predict", 0, 0.0, "cpu", 0)
    vocabulary = tuple(f"w{i}" for i in range(VOCAB))
    folder = tmp_path_factory.mktemp("stream-cost")
    made = {}
    for name, graph, window, cache in (("window-6", GRAPH_STEP, 6, None), ("stream", GRAPH_STREAM, 64, CACHE)):
        config = ModelConfig(window=window, layers=2, hidden=HIDDEN, embedding_dim=HIDDEN)
        meta = ModelMetadata(graph, vocabulary, config, "int8", provenance, "bench", format_version=lowest_version(graph),
                             cache=cache)  # fmt: skip
        path = folder / f"{name}.int8.onnx"
        onnx.save(build_graph(weights, meta), path)
        made[name] = path
    return {"window-6": (made["window-6"], True), "stream-cache": (made["stream"], True),
            "stream-alone": (made["stream"], False)}  # fmt: skip


@pytest.mark.benchmark(**PER_WORD)
@pytest.mark.parametrize("kind", KINDS)
def test_stream_word(benchmark, files, kind):
    """One more sampled word of an endless generation."""
    path, cache = files[kind]
    benchmark(word_stepper(Model(path, cache=cache), Sampling(temperature=1.0, seed=0)))


@pytest.mark.benchmark(**PER_WORD)
@pytest.mark.parametrize("kind", KINDS)
def test_stream_typing(benchmark, files, kind):
    """Top-3 suggestions as the text grows a word a call (`model.typing()`): the text only grows,
    as a person's does, so each call feeds exactly one word (held below)."""
    path, cache = files[kind]
    model = Model(path, cache=cache)
    words = cycle(model.vocabulary[:40])
    text = [" ".join(next(words) for _ in range(10)) + " "]
    with model.typing() as typing:
        typing.suggest(text[0], 3)
        fed = typing._step  # words the decoder has read

        def next_word() -> None:
            text[0] += next(words) + " "
            typing.suggest(text[0], 3)

        benchmark(next_word)
        calls = len(text[0].split()) - 10
        assert typing._step - fed == calls, "a call read the text afresh: the benchmark would not time typing"


INTERLEAVED = ROOT_RESULTS / "stream-word-interleaved.json"


def test_stream_word_interleaved(benchmark, files):
    """The three kinds' generated words timed in turn, one word of each a round in a shuffled
    order, so that a busy neighbour or a clock change weighs on all three alike (pytest-benchmark
    times one kind after another, and its medians of these ~100 µs calls moved by a third between
    runs). Medians, p10 and p90, and the medians' ratios to the window-6 file go to
    bench/results/local/stream-word-interleaved.json."""
    steppers = {kind: word_stepper(Model(path, cache=cache), Sampling(temperature=1.0, seed=0))
                for kind, (path, cache) in files.items()}  # fmt: skip
    for step in steppers.values():  # past the cache's 500 words: every later word reads a full cache
        for _ in range(CACHE.size + 100):
            step()
    times: dict[str, list[float]] = {kind: [] for kind in steppers}
    order = np.random.default_rng(0)

    def rounds() -> None:
        for _ in range(ROUNDS):
            for kind in order.permutation(list(steppers)).tolist():
                started = time.perf_counter()
                steppers[kind]()
                times[kind].append(time.perf_counter() - started)

    benchmark.pedantic(rounds, rounds=1, iterations=1)  # one pass of all rounds: run under --benchmark-only too
    spread = {kind: {q: 1e6 * float(np.percentile(spent, q)) for q in (10, 50, 90)} for kind, spent in times.items()}
    ratios = {kind: spread[kind][50] / spread["window-6"][50] for kind in spread}
    INTERLEAVED.parent.mkdir(parents=True, exist_ok=True)
    INTERLEAVED.write_text(json.dumps({"machine": describe_machine(), "rounds": ROUNDS, "percentiles_us": spread,
                                       "median_vs_window_6": ratios}, indent=2) + "\n", encoding="utf-8")  # fmt: skip
    print("\n" + ", ".join(f"{kind} {spread[kind][50]:.1f} µs ({ratios[kind]:.2f}x)" for kind in spread))
    assert ratios["stream-alone"] < 1, "one row a word should cost less than six"
    assert ratios["stream-cache"] > ratios["stream-alone"], "the cache was not on: it costs its votes"
