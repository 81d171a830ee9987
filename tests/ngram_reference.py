"""The test's independent reference for training/ngram.py: its former dict-based implementation
(Python Counters of tuples), kept verbatim so that the numpy one is checked against it.

An interpolated modified Kneser-Ney n-gram model (Chen and Goodman, "An Empirical Study of
Smoothing Techniques for Language Modeling", 1998, section 3).

Two jobs, both on the training part only: the yardstick that held-out figures are read against
(bench/corpora.py), and the teacher whose distributions the `predict` preset mixes into its
targets (training/train.py). Counted on the same training part and vocabulary as the LSTM, it
reads the same context as a 4-gram: the 3 words before. Never a runtime part.

    p(w | h) = max(c(h w) - D(c(h w)), 0) / c(h) + gamma(h) p(w | h')

with h' the context without its first word, three discounts D1, D2, D3+ per order from that
order's counts of counts, gamma(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c(h), and, below
the highest order, continuation counts (how many different words came before) in place of counts.
The lowest order is interpolated with the uniform distribution over the vocabulary, so every word
has a probability, and each distribution sums to 1.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

Context = tuple[int, ...]
ORDER = 4


@dataclass(frozen=True)
class Distributions:
    """The n-gram's distributions for N contexts, kept sparse: row r is
    `weight[r] * base` plus the values `values[indptr[r]:indptr[r + 1]]` at `indices[...]`
    (the discounted counts of every order above the lowest whose context was seen)."""

    base: np.ndarray  # float64 [vocab]: the lowest order, p(w)
    weight: np.ndarray  # float64 [N]
    indptr: np.ndarray  # int64 [N + 1]
    indices: np.ndarray  # int64
    values: np.ndarray  # float64

    def dense(self, rows: np.ndarray | None = None, dtype: type = np.float32) -> np.ndarray:
        """[len(rows), vocab] (every row when None)."""
        rows = np.arange(len(self.weight)) if rows is None else np.asarray(rows)
        out = (self.weight[rows, None] * self.base[None, :]).astype(dtype)
        starts, lengths = self.indptr[rows], self.indptr[rows + 1] - self.indptr[rows]
        owner = np.repeat(np.arange(len(rows)), lengths)
        flat = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        out[owner, self.indices[flat]] += self.values[flat]  # a row's indices are distinct
        return out


class KneserNey:
    def __init__(self, segments: Iterable[Sequence[int]], vocab_size: int, order: int = ORDER):
        """Count n-grams of up to `order` words within each segment of ids (none across segments)."""
        self.order, self.vocab_size = order, vocab_size
        every: Counter[tuple[int, ...]] = Counter()
        for ids in segments:
            ids = list(ids)
            for n in range(1, order + 1):
                every.update(tuple(ids[i : i + n]) for i in range(len(ids) - n + 1))
        # counts[n]: of n-grams, plain at the highest order, continuation counts (distinct words
        # before) below it; an n-gram never preceded (at a segment's start) counts once.
        self.counts: dict[int, Counter[tuple[int, ...]]] = {
            order: Counter({g: c for g, c in every.items() if len(g) == order})
        }
        for n in range(order - 1, 0, -1):
            continuation: Counter[tuple[int, ...]] = Counter(g[1:] for g in every if len(g) == n + 1)
            continuation.update(dict.fromkeys({g for g in every if len(g) == n} - set(continuation), 1))
            self.counts[n] = continuation
        self.discounts = {n: _discounts(self.counts[n]) for n in self.counts}
        # per context of each order: the ids that followed it, their discounted counts / c(h), gamma(h)
        self.contexts: dict[int, dict[Context, tuple[np.ndarray, np.ndarray, float]]] = {}
        for n, counts in self.counts.items():
            followers: dict[Context, list[tuple[int, int]]] = defaultdict(list)
            for gram, count in counts.items():
                followers[gram[:-1]].append((gram[-1], count))
            self.contexts[n] = {context: self._level(n, pairs) for context, pairs in followers.items()}
        words, values, gamma = self.contexts[1].get((), (np.zeros(0, np.int64), np.zeros(0), 1.0))
        self.base = np.full(vocab_size, gamma / vocab_size)
        self.base[words] += values

    def _level(self, n: int, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, float]:
        counts = np.array([c for _, c in pairs], float)
        d1, d2, d3 = self.discounts[n]
        discount = np.where(counts >= 3, d3, np.where(counts == 2, d2, d1))
        gamma = (d1 * (counts == 1).sum() + d2 * (counts == 2).sum() + d3 * (counts >= 3).sum()) / counts.sum()
        return np.array([w for w, _ in pairs], np.int64), np.maximum(counts - discount, 0) / counts.sum(), float(gamma)

    def distributions(self, contexts: np.ndarray) -> Distributions:
        """p(w | the last order-1 ids of each context) for contexts [N, >= order-1]."""
        contexts = np.asarray(contexts)
        history = contexts[:, max(0, contexts.shape[1] - (self.order - 1)) :]
        weight, indptr, indices, values = np.empty(len(history)), [0], [], []
        made: dict[Context, tuple[np.ndarray, np.ndarray, float]] = {}
        for row, context in enumerate(map(tuple, history.tolist())):
            if context not in made:
                made[context] = self._sparse(context)
            words, probabilities, weight[row] = made[context]
            indices.append(words)
            values.append(probabilities)
            indptr.append(indptr[-1] + len(words))
        empty = [np.zeros(0, np.int64)]
        return Distributions(self.base, weight, np.array(indptr, np.int64), np.concatenate(indices or empty),
                             np.concatenate(values or [np.zeros(0)]))  # fmt: skip

    def _sparse(self, context: Context) -> tuple[np.ndarray, np.ndarray, float]:
        """The orders above the lowest, highest first: p = s_n + gamma_n (s_n-1 + gamma_n-1 (... p_1));
        an order whose context was never seen passes the one below it on unchanged."""
        words, values, weight = [], [], 1.0
        for n in range(min(self.order, len(context) + 1), 1, -1):
            level = self.contexts[n].get(context[len(context) - (n - 1) :])
            if level is not None:
                words.append(level[0])
                values.append(weight * level[1])
                weight *= level[2]
        if not words:
            return np.zeros(0, np.int64), np.zeros(0), weight
        unique, where = np.unique(np.concatenate(words), return_inverse=True)
        return unique, np.bincount(where, weights=np.concatenate(values)), weight

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """p(w | context) for every word of the vocabulary, float64 [vocab]."""
        return self.distributions(np.array(list(context), np.int64).reshape(1, -1)).dense(dtype=np.float64)[0]


def _discounts(counts: Counter) -> tuple[float, float, float]:
    """D1, D2, D3+ of Chen and Goodman (their equation 26), from how many n-grams were seen 1 to 4 times."""
    n1, n2, n3, n4 = (sum(1 for c in counts.values() if c == k) for k in (1, 2, 3, 4))
    if not (n1 and n2 and n3 and n4):  # too few counts to estimate them: the common fixed discount
        return 0.75, 0.75, 0.75
    y = n1 / (n1 + 2 * n2)
    return 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3
