"""Tokens, vocabulary and windows: the rules that training and the runtime share."""

from __future__ import annotations

import collections
import re
from collections.abc import Sequence

import numpy as np

# Bump when tokenize() changes what it returns: models record the version they were trained with.
TOKENIZER_VERSION = 1
PUNCTUATION = ",.?!;:\"'()"

_punct = re.escape(PUNCTUATION)
# A punctuation mark alone, or a run of anything that is neither whitespace nor punctuation.
_TOKEN = re.compile(rf"[{_punct}]|[^\s{_punct}]+")


def tokenize(text: str) -> list[str]:
    """Lowercase `text`; each punctuation mark is a token, whitespace separates the rest."""
    return _TOKEN.findall(text.lower())


def build_vocabulary(tokens: Sequence[str]) -> list[str]:
    """Symbols by frequency, ties in order of first occurrence (index = token id)."""
    return [word for word, _ in collections.Counter(tokens).most_common()]


def make_windows(ids: Sequence[int] | np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every run of `window` ids and the id after it: contexts [N, window], labels [N] (int64)."""
    ids = np.asarray(ids, dtype=np.int64)
    count = len(ids) - window
    if count <= 0:
        return np.zeros((0, window), np.int64), np.zeros(0, np.int64)
    contexts = np.lib.stride_tricks.sliding_window_view(ids, window)[:count]
    return contexts.copy(), ids[window:].copy()  # owned and writable, not views of `ids`
