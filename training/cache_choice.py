"""Choosing a stream model's cache of the text so far (`fable.cache`) on the validation part: the
size, flatness and weight of the lowest perplexity over a grid, or no cache where none lowers it.
Only the probability of the word that came matters to perplexity, so the grid is computed at once
on torch's outputs, never the runtime's whole distributions: for each word t after the first of a
block, p = (1 - weight) p_model + weight sum_j a_tj [w_j+1 = w_t+1], a_t = softmax over the last
`size` words j < t of flatness h_t . h_j (tests/test_streams.py holds it to the runtime's mix).
"""

from __future__ import annotations

import itertools

import numpy as np

from fable.contract import CacheSettings
from fable.evaluation import log_normalizer

from .model import WordLSTM
from .streams import read_whole, runs

SIZES = (100, 500, 2000)
FLATNESS = (0.3, 1.0, 3.0, 10.0)
WEIGHTS = (0.02, 0.05, 0.1, 0.2, 0.3)
ROWS = 1024  # words whose votes are computed at once: [ROWS, ROWS + largest size] scores


def choose_cache(
    model: WordLSTM, segments: list[np.ndarray], banned: int | None, limit: int | None = None
) -> tuple[CacheSettings | None, dict[CacheSettings, float]]:
    """The setting of the lowest perplexity on `segments` (None where the model alone is lower),
    and every setting's perplexity."""
    nll = {CacheSettings(*setting): 0.0 for setting in itertools.product(SIZES, FLATNESS, WEIGHTS)}
    alone, words = 0.0, 0
    for run in runs(segments, limit):
        p_model, tops, labels = [], [], []  # per word: the model's probability of the word that came
        for logits, top, label in read_whole(model, run):  # a chunk at a time: never [block, vocab]
            p_model.append(np.exp(logits[np.arange(len(label)), label].astype(np.float64) - log_normalizer(logits)))
            tops.append(top)
            labels.append(label)
        p_model, tops, labels = np.concatenate(p_model), np.concatenate(tops), np.concatenate(labels)
        rows = np.arange(len(labels))
        keep = labels != banned if banned is not None else np.ones(len(labels), bool)
        words += int(keep.sum())
        alone -= np.log(p_model[keep]).sum()
        started = rows > 0  # the first word of a block: no pairs yet, the model alone
        for size, flatness in itertools.product(SIZES, FLATNESS):
            votes = _votes(tops, labels, size, flatness)  # [n]: the cache's probability of the word that came
            for weight in WEIGHTS:
                p = np.where(started, (1 - weight) * p_model + weight * votes, p_model)
                nll[CacheSettings(size, flatness, weight)] -= np.log(p[keep]).sum()
    if not words:
        return None, {}
    figures = {setting: float(np.exp(value / words)) for setting, value in nll.items()}
    best = min(figures, key=figures.get)
    return (best if figures[best] < np.exp(alone / words) else None), figures


def _votes(tops: np.ndarray, labels: np.ndarray, size: int, flatness: float) -> np.ndarray:
    """For each word t: the share of the softmax over j in [t - size, t) of flatness h_t . h_j held
    by the j whose next word (labels[j]) is t's (labels[t]); 0 at t = 0."""
    n = len(labels)
    found = np.zeros(n)
    for first in range(1, n, ROWS):
        last = min(first + ROWS, n)
        low = max(0, first - size)
        scores = flatness * (tops[first:last] @ tops[low:last].T).astype(np.float64)  # [rows, columns]
        t = np.arange(first, last)[:, None]
        j = np.arange(low, last)[None, :]
        scores[(j >= t) | (j < t - size)] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=1, keepdims=True)
        same = labels[low:last][None, :] == labels[first:last][:, None]
        found[first:last] = (weights * same).sum(axis=1)
    return found
