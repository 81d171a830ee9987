"""The cache of the text so far (Grave et al. 2017, "Improving neural language models with a
continuous cache"): a stream model's top-layer output after each word read is kept with the word
that came next; the output now votes for those words by how alike the two outputs are, and the
votes are mixed into the model's distribution. A word the text repeats, a name or a term, rises
wherever its context comes back, with no training. docs/design.md, "The whole text".

    p(w) = (1 - weight) softmax(logits)(w) + weight sum_i [w_i = w] a_i,
    a = softmax_i(flatness h . h_i) over the last `size` pairs (h_i, w_i) of this sequence.

Returned as log p, so every caller reads it as logits.
"""

from __future__ import annotations

import math

import numpy as np

from .contract import CacheSettings


class TextCache:
    """The pairs of `batch` sequences, in rings of `settings.size`."""

    def __init__(self, settings: CacheSettings, batch: int, hidden: int):
        self.settings = settings
        self._keys = np.zeros((batch, settings.size, hidden), np.float32)  # h_i
        self._words = np.zeros((batch, settings.size), np.int64)  # w_i: the word read after h_i
        self._count = np.zeros(batch, np.int64)  # pairs written per sequence (the ring holds the last `size`)
        self._previous = np.zeros((batch, hidden), np.float32)  # h after the last word: its pair waits for the next
        self._started = np.zeros(batch, bool)  # whether a word was read since the reset

    def reset(self) -> None:
        self._count[:] = 0
        self._started[:] = False

    def restart(self, sequences: np.ndarray) -> None:
        self._count[sequences] = 0
        self._started[sequences] = False

    def mix(self, logits: np.ndarray, top: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """After reading `tokens` [batch]: the model's `logits` [batch, vocab] with the cache mixed
        in, as log-probabilities [batch, vocab] float32; `top` [batch, hidden], the output now."""
        self._remember(tokens)
        size, weight = self.settings.size, self.settings.weight
        out = np.empty(logits.shape, np.float32)
        for row in range(len(logits)):
            top_logit = float(logits[row].max())
            z = np.exp(logits[row] - top_logit)
            log_total = top_logit + math.log(float(z.sum(dtype=np.float64)))
            pairs = min(int(self._count[row]), size)
            if pairs == 0 or weight == 0:
                np.subtract(logits[row], log_total, out=out[row])
                continue
            np.subtract(logits[row], log_total - math.log1p(-weight), out=out[row])  # the words not in the cache
            votes = self._votes(row, top[row], pairs)  # [pairs]
            words, inverse = np.unique(self._words[row, :pairs], return_inverse=True)
            cached = np.bincount(inverse, votes, minlength=len(words))  # [distinct words]
            mine = (1 - weight) * np.exp(logits[row, words] - log_total) + weight * cached
            out[row, words] = np.log(mine)
        self._previous[...] = top
        self._started[:] = True
        return out

    def _remember(self, tokens: np.ndarray) -> None:
        """Each started sequence's last output with the word that followed it: `tokens` [batch]."""
        rows = np.flatnonzero(self._started)
        slots = self._count[rows] % self.settings.size
        self._keys[rows, slots] = self._previous[rows]
        self._words[rows, slots] = tokens[rows]
        self._count[rows] += 1

    def _votes(self, row: int, top: np.ndarray, pairs: int) -> np.ndarray:
        """softmax over the row's pairs of flatness x (h_i . h now), float64 [pairs]."""
        scores = self._keys[row, :pairs] @ top * self.settings.flatness
        scores = np.exp(scores - scores.max(), dtype=np.float64)
        return scores / scores.sum()
