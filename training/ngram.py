"""An interpolated modified Kneser-Ney n-gram model (Chen and Goodman, "An Empirical Study of
Smoothing Techniques for Language Modeling", 1998, section 3).

Two jobs, both on the training part only: the yardstick that held-out figures are read against
(bench/corpora.py), and the teacher whose distributions the `predict` preset mixes into each
step's targets (training/data.py). Counted on the same training part and vocabulary as the LSTM,
it reads the same context as a 4-gram: the 3 words before. Never a runtime part.

    p(w | h) = max(c(h w) - D(c(h w)), 0) / c(h) + gamma(h) p(w | h')

with h' the context without its first word, three discounts D1, D2, D3+ per order from that
order's counts of counts, gamma(h) = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c(h), and, below
the highest order, continuation counts (how many different words came before) in place of counts;
an n-gram never preceded (only at a segment's start) counts once. The lowest order is
interpolated with the uniform distribution over the vocabulary, so every word has a probability,
and each distribution sums to 1.

Counted with numpy for corpora of millions of tokens: an n-gram is the int64 key
`rank of its first n-1 words among the distinct (n-1)-grams * vocab + its last word`, so sorting
the keys sorts the n-grams word by word and the n-grams of one context lie next to each other.
Asked for a batch of contexts, the model looks each context up by binary searches and hands back
spans of its own arrays; `Distributions.dense` turns them into rows, one batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

ORDER = 4


@dataclass(frozen=True)
class Spans:
    """Rows of sparse values, each a span of one order's n-grams (the words after one context):
    row r holds `scale[r] * values[lo[r]:hi[r]]` at the words `keys[lo[r]:hi[r]] % vocab`."""

    lo: np.ndarray  # int64 [rows]
    hi: np.ndarray  # int64 [rows]
    scale: np.ndarray  # float64 [rows]
    keys: np.ndarray  # int64 [the order's n-grams], the model's own (not copied)
    values: np.ndarray  # float64 [the order's n-grams], the model's own

    def add_to(self, out: np.ndarray, rows: np.ndarray) -> None:
        """out[i] += row rows[i], for a C-contiguous out [len(rows), vocab]; a row's words are distinct."""
        owner, flat = _spread(self.lo[rows], self.hi[rows])  # [entries]
        vocab = out.shape[1]
        out.reshape(-1)[owner * vocab + self.keys[flat] % vocab] += self.scale[rows][owner] * self.values[flat]


@dataclass(frozen=True)
class Distributions:
    """The n-gram's distributions for N contexts, kept sparse. Rows whose contexts end in the same
    word share its bigram distribution, the order 2 interpolated with the lowest (the bulk of a row):
    row r is `scale[r] * (gamma[g] * base + shared row g)` with g = lower[r], plus, for each order
    above 2 (highest first), row r of `own[...]`: that order's discounted counts after the row's
    context, scaled by the gammas of the orders above it (none where the context was never seen)."""

    base: np.ndarray  # float64 [vocab]: the lowest order, p(w)
    lower: np.ndarray  # int64 [N]: the row's shared distribution
    scale: np.ndarray  # float64 [N]: its weight, the product of the gammas of the orders above 2
    gamma: np.ndarray  # float64 [G]: each shared distribution's weight on base (1 where order 2 is unseen)
    shared: Spans  # [G] rows: the order 2's discounted counts
    own: tuple[Spans, ...]  # [N] rows each: the orders above 2

    def dense(self, rows: np.ndarray | None = None, dtype: type = np.float32) -> np.ndarray:
        """[len(rows), vocab] (every row when None)."""
        rows = np.arange(len(self.lower)) if rows is None else np.asarray(rows)
        used, where = np.unique(self.lower[rows], return_inverse=True)
        # in dtype throughout: each pass over [rows, vocab] costs about as much as filling it
        block = self.gamma[used, None].astype(dtype) * self.base.astype(dtype)[None, :]  # [used, vocab]
        self.shared.add_to(block, used)
        out = block[where.reshape(-1)]  # [rows, vocab]
        out *= self.scale[rows, None].astype(dtype)
        for spans in self.own:
            spans.add_to(out, rows)
        return out


class KneserNey:
    """Per order n: `keys[n]` (int64, sorted) and `values[n]` (float64) for each distinct n-gram,
    `gammas[n]` (float64) for each distinct (n-1)-gram by its rank; about 16 bytes an n-gram."""

    def __init__(self, segments: Iterable[Sequence[int]], vocab_size: int, order: int = ORDER):
        """Count n-grams of up to `order` words within each segment of ids (none across segments)."""
        self.order, self.vocab_size = order, vocab_size
        parts = [np.asarray(s, np.int64).reshape(-1) for s in segments]
        lengths = np.array([len(p) for p in parts], np.int64)
        ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)  # [tokens]
        del parts
        if len(ids) and not 0 <= ids.min() <= ids.max() < vocab_size:
            raise ValueError(f"ids must lie in [0, {vocab_size})")
        # room[i]: tokens from i to its segment's end, so the n-gram at i exists when room[i] >= n
        room = (np.repeat(np.cumsum(lengths), lengths) - np.arange(len(ids))).astype(np.int32)
        # keys[n]: the distinct n-grams' keys, sorted; counts of each, continuation below the top order
        self.keys: dict[int, np.ndarray] = {}
        counts: dict[int, np.ndarray] = {}
        rank = np.zeros(len(ids), np.int64)  # [tokens]: of the (n-1)-gram at each position (-1: none)
        for n in range(1, order + 1):
            at = np.flatnonzero(room >= n)  # positions of the n-grams
            keys, inverse, plain, one = _unique(rank[at] * vocab_size + ids[at + n - 1])
            if n > 1:  # each distinct n-gram adds one to its suffix (n-1)-gram, the one at the next position
                before = np.bincount(rank[at[one] + 1], minlength=len(self.keys[n - 1]))
                counts[n - 1] = np.where(before > 0, before, 1)  # never preceded: counts once
            self.keys[n], counts[n] = keys, plain
            rank.fill(-1)
            rank[at] = inverse
            del at, inverse, one
        del ids, room, rank
        self.discounts = {n: _discounts(counts[n]) for n in counts}
        # per order: each n-gram's discounted count / c(h), and gamma(h) for each (n-1)-gram h by its rank, 1 where h
        # was never a context, and a last 1 for the rank -1 of a context never seen
        self.values: dict[int, np.ndarray] = {}
        self.gammas: dict[int, np.ndarray] = {}
        for n in range(1, order + 1):
            count, contexts = counts.pop(n), self.keys[n] // vocab_size
            self.values[n], self.gammas[n] = self._level(n, count, contexts, len(self.keys[n - 1]) + 1 if n > 1 else 1)
        self.base = np.full(vocab_size, self.gammas[1][0] / vocab_size)  # float64 [vocab]: p(w), the lowest order
        self.base[self.keys[1]] += self.values[1]

    def _level(self, n: int, count: np.ndarray, context: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Discounted values [grams] and gamma [size] of an order, from each gram's count and context rank."""
        d1, d2, d3 = self.discounts[n]
        total = np.bincount(context, weights=count, minlength=size)  # c(h), exact: sums of integers
        n1, n2, n3 = (np.bincount(context[mask], minlength=size) for mask in (count == 1, count == 2, count >= 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            gamma = np.where(total > 0, (d1 * n1 + d2 * n2 + d3 * n3) / total, 1.0)
        counts = count.astype(float)
        discount = np.where(counts >= 3, d3, np.where(counts == 2, d2, d1))
        return np.maximum(counts - discount, 0) / total[context], gamma

    def _ranks(self, words: np.ndarray) -> np.ndarray:
        """The rank among the distinct n-grams of each row of words [N, n], -1 where never seen."""
        rank = np.zeros(len(words), np.int64)
        for n in range(1, words.shape[1] + 1):
            keys, word = self.keys[n], words[:, n - 1]
            key = rank * self.vocab_size + word
            where = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            found = (rank >= 0) & (word >= 0) & (word < self.vocab_size) & (keys[where] == key) if len(keys) else False
            rank = np.where(found, where, -1)
        return rank

    def distributions(self, contexts: np.ndarray) -> Distributions:
        """p(w | the last order-1 ids of each context) for contexts [N, >= order-1]: only looks the
        contexts up (a few binary searches each); `dense` gathers the n-grams."""
        contexts = np.asarray(contexts, np.int64)
        history = contexts[:, max(0, contexts.shape[1] - (self.order - 1)) :]
        width, count = history.shape[1], len(history)
        scale, own = np.ones(count), []
        for n in range(min(self.order, width + 1), 2, -1):  # the orders above 2, highest first
            rank = self._ranks(history[:, width - (n - 1) :])  # of each context's last n-1 words, -1: unseen
            own.append(self._spans(n, rank, scale.copy()))
            scale *= self.gammas[n][rank]  # 1 where unseen: the order passes the one below on unchanged
        if self.order < 2 or width < 1:  # the lowest order alone
            nothing = np.zeros(1, np.int64)
            shared = Spans(nothing, nothing, np.ones(1), nothing, np.zeros(1))
            return Distributions(self.base, np.zeros(count, np.int64), scale, np.ones(1), shared, tuple(own))
        rank, lower = np.unique(self._ranks(history[:, -1:]), return_inverse=True)  # by the last word
        shared = self._spans(2, rank, np.ones(len(rank)))
        return Distributions(self.base, lower.reshape(-1), scale, self.gammas[2][rank], shared, tuple(own))

    def _spans(self, n: int, rank: np.ndarray, scale: np.ndarray) -> Spans:
        """The n-grams after each of the (n-1)-grams of these ranks (none for -1): keys[n][lo:hi]."""
        lo = np.searchsorted(self.keys[n], rank * self.vocab_size)
        hi = np.where(rank >= 0, np.searchsorted(self.keys[n], (rank + 1) * self.vocab_size), lo)
        return Spans(lo, hi, scale, self.keys[n], self.values[n])

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """p(w | context) for every word of the vocabulary, float64 [vocab]."""
        return self.distributions(np.array(list(context), np.int64).reshape(1, -1)).dense(dtype=np.float64)[0]


def _spread(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For spans [lo, hi) of N rows: each entry's row and its index in the spanned array."""
    lengths = hi - lo
    rows = np.repeat(np.arange(len(lo)), lengths)
    return rows, np.arange(lengths.sum()) + np.repeat(lo - np.cumsum(lengths) + lengths, lengths)


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """np.unique's values, inverse and counts, sorted by the twice faster unstable argsort, and
    where in `values` one occurrence of each distinct value lies."""
    order = np.argsort(values)
    ordered = values[order]
    new = np.empty(len(values), bool)  # where a distinct value starts in `ordered`
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    distinct = ordered[starts]
    del ordered
    inverse = np.empty(len(values), np.int64)
    inverse[order] = np.cumsum(new) - 1
    return distinct, inverse, np.diff(np.append(starts, len(values))), order[starts]


def _discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """D1, D2, D3+ of Chen and Goodman (their equation 26), from how many n-grams were seen 1 to 4 times."""
    n1, n2, n3, n4 = (int(k) for k in np.bincount(np.minimum(counts, 5), minlength=6)[1:5])
    if not (n1 and n2 and n3 and n4):  # too few counts to estimate them: the common fixed discount
        return 0.75, 0.75, 0.75
    y = n1 / (n1 + 2 * n2)
    return 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3
