"""A stored model that reads the whole text (tests/data/stream.onnx), held to what PyTorch and the
cache's formula said of it when tools/make_stream_test_model.py wrote it: without torch, so that
the runtime-only environments (CI's steps 2 and 2b, a Raspberry Pi) run the stream graph and
its cache too."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fable
from fable.backend import BACKENDS
from fable.errors import PromptError
from fable.evaluation import log_normalizer

from .helpers import ROOT

DATA = ROOT / "tests" / "data"
TRUTH = json.loads((DATA / "stream.json").read_text(encoding="utf-8"))


def log_p(model: fable.Model, cache: bool) -> tuple[np.ndarray, np.ndarray]:
    """The file's log-probability of each next word of the stored text, and its greedy choices."""
    ids = TRUTH["ids"]
    rows = np.stack([row.astype(np.float64) for row in model.logits_along(ids[:-1], cache)])
    return rows[np.arange(len(rows)), ids[1:]] - log_normalizer(rows), rows.argmax(axis=1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cache", [False, True], ids=["alone", "cache"])
def test_the_stored_stream_model_reads_as_pytorch_and_the_formula_said(backend, cache):
    try:
        model = fable.Model(DATA / "stream.onnx", backend=backend)
    except fable.UsageError as missing:  # onnxruntime not installed: the numpy backend alone
        pytest.skip(str(missing))
    assert model.metadata.whole_text and model.metadata.cache is not None
    found, greedy = log_p(model, cache)
    which = "cached" if cache else "alone"
    assert np.abs(found - TRUTH[f"log_p_{which}"]).max() < 1e-4
    assert greedy.tolist() == TRUTH[f"greedy_{which}"]


def test_a_stream_model_asks_for_one_word_not_a_window():
    model = fable.Model(DATA / "stream.onnx")
    with pytest.raises(PromptError, match=r"^the prompt is empty; give at least 1 word$"):
        model.generate("", 3)
    with pytest.raises(PromptError, match=r"the model needs a word it knows before a word"):
        model.evaluate("")
