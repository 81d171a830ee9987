"""The corpus's ceiling: the most windows any model reading `window` words can get right."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')

from fable.tokenizer import make_windows, tokenize
from fable.training.ceiling import ceiling, reachable_in

from .helpers import SHIPPED, fable_windows, invoke


def ids(text: str) -> np.ndarray:
    words = tokenize(text)
    index = {w: i for i, w in enumerate(dict.fromkeys(words))}
    return np.array([index[w] for w in words], np.int64)


@pytest.mark.parametrize(
    "text, window, correct, windows",
    [
        ("a b c a b d", 2, 3, 4),  # (a, b) is followed by c once and d once: one of the two at best
        ("a b c a b c a b d", 2, 6, 7),  # (a, b) → c twice, d once: say c, right twice
        ("a a a a", 1, 3, 3),  # one context, always the same word
        ("x a b y a b z", 2, 4, 5),  # a 2-word window cannot tell the two (a, b) apart ...
        ("x a b y a b z", 3, 4, 4),  # ... a 3-word window can
        ("a b a c a d a b", 1, 5, 7),  # a → b, c, d, b: b twice; b → a, c → a, d → a: all right
    ],
)
def test_ceiling_arithmetic_on_hand_made_corpora(text, window, correct, windows):
    best = ceiling(*make_windows(ids(text), window))
    assert (best.correct, best.windows) == (correct, windows)
    assert best.accuracy == correct / windows


def test_the_fables_ceiling_is_199_of_201_as_its_text_says(fable_corpus):
    followers: dict = {}
    for context, word in fable_windows():  # counted here from the text, not by the code under test
        followers.setdefault(context, Counter())[word] += 1
    best = ceiling(*fable_corpus.windows(3))
    assert (best.correct, best.windows) == (sum(max(c.values()) for c in followers.values()), 201) == (199, 201)


def test_the_ceiling_is_in_the_checkpoint_the_metadata_and_the_model_card(tiny_run, tmp_path):
    checkpoint, run = tiny_run
    assert checkpoint.ceiling == pytest.approx(199 / 201)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(row["ceiling"] == pytest.approx(199 / 201) for row in rows)
    info = invoke("fable-run", "--info")
    assert "99.0% of next words over the training windows, of a ceiling of 99.0%" in info.stdout
    old = invoke("fable-run", "--info", "--model", str(SHIPPED.parent / "tests" / "data" / "fable.v1.int8.onnx"))
    assert old.returncode == 0 and "ceiling" not in old.stdout  # format 1 files have none, and still load


@pytest.mark.parametrize("seed, vocab, window", [(0, 3, 2), (1, 5, 3), (2, 50, 6), (3, 2, 1)])
def test_the_ceiling_read_from_the_stream_is_what_a_count_of_its_windows_gives(seed, vocab, window):
    """A column at a time from the stream (as training reads a large corpus), against windows
    counted here with a Counter: which windows a model at the ceiling gets right, ties to the first seen."""
    rng = np.random.default_rng(seed)
    stream = rng.integers(0, vocab, 3000).astype(np.int32)
    starts = np.sort(rng.choice(len(stream) - window, 1500, replace=False))
    followers: dict = {}
    for start in starts:
        context = tuple(stream[start : start + window])
        followers.setdefault(context, Counter())[int(stream[start + window])] += 1
    best = {context: counts.most_common(1)[0][0] for context, counts in followers.items()}  # first seen wins ties
    expected = [best[tuple(stream[s : s + window])] == stream[s + window] for s in starts]
    assert reachable_in(stream, starts, window).tolist() == expected
