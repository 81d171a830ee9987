"""The cache of the text so far (Grave et al. 2017, "Improving neural language models with a
continuous cache"): a stream model's top-layer output after each word read is kept with the word
that came next; the output now votes for those words by how alike the two outputs are, and the
votes are mixed into the model's distribution. A word the text repeats, a name or a term, rises
wherever its context comes back, with no training. docs/design.md, "The whole text".

    p(w) = (1 - weight) softmax(logits)(w) + weight sum_i [w_i = w] a_i,
    a = softmax_i(flatness h . h_i) over the last `size` pairs (h_i, w_i) of this sequence.

Returned as log p up to a constant per row: logits, as every caller reads them (each normalizes).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .contract import CacheSettings

TINY = np.finfo(np.float64).tiny


class TextCache:
    """The pairs of `batch` sequences, in rings of `settings.size`."""

    def __init__(self, settings: CacheSettings, batch: int, hidden: int):
        self.settings = settings
        self._keys = np.zeros((batch, settings.size, hidden), np.float32)  # h_i
        # w_i: the word read after h_i; intp, the index type bincount takes (int32 on 32-bit ARM)
        self._words = np.zeros((batch, settings.size), np.intp)
        self._previous = np.zeros((batch, hidden), np.float32)  # h after the last word: its pair waits for the next
        # Per sequence, plain ints (a word's bookkeeping is a few scalars): pairs written (the ring
        # holds the last `size`), and whether a word was read since the reset.
        self._count = [0] * batch
        self._started = [False] * batch
        self._scratch = np.empty(0, np.float32)  # exp(logits - their largest) of one row [vocab]

    def reset(self) -> None:
        self.restart(range(len(self._count)))

    def restart(self, sequences: Iterable[int]) -> None:
        for row in np.asarray(sequences, np.int64).tolist():
            self._count[row], self._started[row] = 0, False

    def mix(self, logits: np.ndarray, top: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """After reading `tokens` [batch]: the model's `logits` [batch, vocab] with the cache mixed
        in [batch, vocab] float32, log p up to a constant per row (logits, as every caller reads
        them); `top` [batch, hidden], the output now."""
        size, weight = self.settings.size, self.settings.weight
        out = np.array(logits, np.float32)  # a copy: the kernel's buffer stays the model's own
        if len(self._scratch) != logits.shape[1]:
            self._scratch = np.empty(logits.shape[1], np.float32)
        for row in range(len(logits)):
            if self._started[row]:  # the last output's pair: it was followed by this token
                slot = self._count[row] % size
                self._keys[row, slot] = self._previous[row]
                self._words[row, slot] = tokens[row]
                self._count[row] += 1
            self._started[row] = True
            pairs = min(self._count[row], size)
            if not (pairs and weight):
                continue  # the model alone
            # p(w) = (1 - weight) exp(l_w) / Z + weight c_w: less log((1 - weight) / Z), every word the
            # cache holds no vote for keeps its logit l_w, and only the voted-for words are rewritten
            # (a word voted for twice is written twice, the same value): one pass over the vocabulary, for Z.
            top_logit = float(logits[row].max())
            np.subtract(logits[row], top_logit, out=self._scratch)
            total = float(np.exp(self._scratch, out=self._scratch).sum())  # Z / exp(top_logit)
            words = self._words[row, :pairs]
            mixed = np.bincount(
                words, self._votes(row, top[row], pairs, weight * total / (1 - weight)), logits.shape[1]
            )
            mixed = mixed[words]  # [pairs]: each pair's word's votes, the vocabulary's scale
            mixed += self._scratch[words]
            np.maximum(mixed, TINY, out=mixed)  # a vote and a float32 exp(l - top) may both be 0: never log(0)
            np.log(mixed, out=mixed)
            mixed += top_logit
            out[row, words] = mixed
        self._previous[...] = top
        return out

    def _votes(self, row: int, top: np.ndarray, pairs: int, scale: float) -> np.ndarray:
        """scale x softmax over the row's pairs of flatness x (h_i . h now) [pairs]."""
        scores = self._keys[row, :pairs] @ top
        scores -= scores.max()
        scores *= self.settings.flatness
        np.exp(scores, out=scores)
        scores *= scale / scores.sum()
        return scores
