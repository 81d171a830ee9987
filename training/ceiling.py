"""The corpus's ceiling: the most windows any model that reads `window` words can get right.

A model sees only the context, so a context followed by different words in different places is
right at most as often as its most frequent next word: the sum of those counts is the most any
model with this window can get right on these windows, however long it trains. Counted with numpy
sorts, so millions of windows take seconds and no Python object per window.
"""

from __future__ import annotations

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
    return best_followers(contexts, labels) == labels


def best_followers(contexts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each window (contexts [N, window], labels [N] of ids >= 0), the most frequent next word
    of its context (ties: the one seen first): what a model at the ceiling predicts."""
    labels = np.asarray(labels, np.int64)
    if not len(labels):
        return np.zeros(0, np.int64)
    _, context = np.unique(np.asarray(contexts), axis=0, return_inverse=True)
    context = context.reshape(-1).astype(np.int64)  # [N]: which distinct context each window has
    pairs = context * (int(labels.max()) + 1) + labels
    _, first, counts = np.unique(pairs, return_index=True, return_counts=True)  # per distinct (context, label)
    owner = context[first]
    order = np.lexsort((first, -counts, owner))  # each context's pairs, the most frequent and first seen first
    leads = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
    best = np.empty(int(context.max()) + 1, np.int64)
    best[owner[leads]] = labels[first[leads]]
    return best[context]
