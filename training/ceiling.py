"""The corpus's ceiling: the most windows any model that reads `window` words can get right.

A model sees only the context, so a context followed by different words in different places is
right at most as often as its most frequent next word: the sum of those counts is the most any
model with this window can get right on these windows, however long it trains. Counted with numpy
sorts, so millions of windows take seconds and no Python object per window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ceiling:
    correct: int
    windows: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.windows


def ceiling(contexts: np.ndarray, labels: np.ndarray) -> Ceiling:
    """The ceiling of windows (contexts [N, window], labels [N])."""
    mask = reachable(contexts, labels)
    return Ceiling(int(mask.sum()), len(mask))


def reachable(contexts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which windows [N] a model at the ceiling gets right: those whose next word is their
    context's most frequent one."""
    contexts = np.asarray(contexts)
    numbers = context_numbers((contexts[:, k] for k in range(contexts.shape[1])), len(contexts))
    return _best_followers(numbers, labels) == labels


def reachable_in(ids: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """`reachable` for the windows of the stream `ids` that begin at `starts` [N], read a column
    at a time: a few [N] arrays, never the windows [N, window] themselves."""
    labels = ids[starts + window]
    contexts = context_numbers((ids[starts + k] for k in range(window)), len(starts))
    return _best_followers(contexts, labels) == labels


def context_numbers(columns: Iterable[np.ndarray], windows: int) -> np.ndarray:
    """[N] int64, equal where two windows' contexts are equal: the columns (each [N] ids) folded in
    one at a time, each (contexts so far, next id) pair renumbered by rank, so numbers stay below N
    and a pair's number below N x the vocabulary."""
    numbers = np.zeros(windows, np.int64)
    for column in columns:
        column = np.asarray(column, np.int64)
        if len(column):
            _, numbers = np.unique(numbers * (int(column.max()) + 1) + column, return_inverse=True)
            numbers = numbers.reshape(-1)
    return numbers


def _best_followers(context: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The most frequent label (ties: the first seen) of each window's context number [N]."""
    labels = np.asarray(labels, np.int64)
    if not len(labels):
        return np.zeros(0, np.int64)
    pairs = context * (int(labels.max()) + 1) + labels
    _, first, counts = np.unique(pairs, return_index=True, return_counts=True)  # per distinct (context, label)
    owner = context[first]
    order = np.lexsort((first, -counts, owner))  # each context's pairs, the most frequent and first seen first
    leads = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
    best = np.empty(int(context.max()) + 1, np.int64)
    best[owner[leads]] = labels[first[leads]]
    return best[context]
