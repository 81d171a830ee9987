"""How well a model predicts a text: top-1, top-3, perplexity and keystrokes saved over the words
it reads there.

One computation for every place that reports them: a user's own text (`Model.evaluate`,
`fable-run --score --file`), the held-out part in training, each exported file, and the n-gram
yardstick in bench/. A word counts when the model can read the `window` words before it and it
is a word the model could suggest: never <unk>, which `suggest` never shows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import PromptError
from .keyboard import Keyboard, keys_without
from .learned import Distribution, WordCounts

if TYPE_CHECKING:
    from .model import Model

CHUNK = 1024  # words predicted a pass (`predictions`): bounds the [words, vocab] logits kept
# Scores ranked a pass: [rows, vocab] arrays of at most 32 MB of float32, which the allocator
# reuses from one pass to the next (fresh ones of 120 MB cost as much again in page faults).
RANKED = 1 << 23


@dataclass(frozen=True)
class Evaluation:
    words: int  # words predicted, each from the window before it
    top1: int  # of them, the model's likeliest word
    top3: int  # among its three likeliest
    log_probability: float  # their total, natural log
    skipped: int = 0  # words of the text not predicted: unknown, <unk>, or too near an unknown word
    keys: int = 0  # keystrokes typing the words with suggestions shown (fable.keyboard); 0: not counted
    keys_without: int = 0  # and without: each word's letters and a space

    @property
    def top1_rate(self) -> float:
        return self.top1 / self.words if self.words else 0.0

    @property
    def top3_rate(self) -> float:
        return self.top3 / self.words if self.words else 0.0

    @property
    def perplexity(self) -> float:
        return math.exp(-self.log_probability / self.words) if self.words else math.inf

    @property
    def keystrokes_saved(self) -> float | None:
        """1 - keys / keys_without, by presage's rule with 3 suggestions; None where not counted."""
        return 1 - self.keys / self.keys_without if self.keys_without else None

    def typed_over(self, keys_without: int) -> Evaluation:
        """These figures, with the keystrokes counted over a whole text whose words, typed without
        suggestions, cost `keys_without`: those not predicted here cost all their keys."""
        return dataclasses.replace(self, keys=self.keys + keys_without - self.keys_without, keys_without=keys_without)

    def __add__(self, other: Evaluation) -> Evaluation:
        return Evaluation(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def as_dict(self) -> dict[str, Any]:
        counted = {} if self.keystrokes_saved is None else {"keystrokes_saved": self.keystrokes_saved}
        return {"words": self.words, "top1": self.top1_rate, "top3": self.top3_rate,
                "perplexity": self.perplexity, "skipped": self.skipped} | counted  # fmt: skip

    def line(self) -> str:
        saved = "" if self.keystrokes_saved is None else f", keystrokes saved {100 * self.keystrokes_saved:.1f}%"
        return (f"{self.words:,} words: top-1 {100 * self.top1_rate:.1f}%, top-3 {100 * self.top3_rate:.1f}%, "
                f"perplexity {self.perplexity:.2f}{saved}")  # fmt: skip


NOTHING = Evaluation(0, 0, 0, 0.0)


def evaluation_of(
    scores: np.ndarray, labels: np.ndarray, banned: int | None = None, keyboard: Keyboard | None = None
) -> Evaluation:
    """Scores [N, vocab] (logits, or log-probabilities: the ranks are the same) of the words that
    came, labels [N] (none of them `banned`). A word's rank counts the words scored above it and
    those tied with it that come first in the vocabulary (the order `suggest` shows), never
    `banned` (a model's <unk>); its probability is over the whole vocabulary. With a `keyboard`
    (of the same vocabulary and `banned`), the keystrokes of typing each word with suggestions."""
    total, rows_a_pass = NOTHING, max(1, RANKED // max(1, scores.shape[-1]))
    for start in range(0, len(labels), rows_a_pass):
        z = np.asarray(scores[start : start + rows_a_pass])  # [n, vocab], compared in its own precision: the same order
        label = np.asarray(labels[start : start + rows_a_pass])
        rows = np.arange(len(label))
        log_total = log_normalizer(z)
        mine = z[rows, label]  # [n]
        keys = without = 0
        if keyboard is None:
            rank = _ranks(z, mine, label, banned)
        else:
            above = (z > mine[:, None]) | ((z == mine[:, None]) & (np.arange(z.shape[1]) < label[:, None]))
            if banned is not None:
                above[:, banned] = False
            rank = above.sum(axis=1)
            words = [keyboard.vocabulary[i] for i in label.tolist()]
            keys = sum(keyboard.keys(row, word) for row, word in zip(above, words))
            without = sum(keys_without(word) for word in words)
        total += Evaluation(len(label), int((rank < 1).sum()), int((rank < 3).sum()), float((mine - log_total).sum()),
                            keys=keys, keys_without=without)  # fmt: skip
    return total


def _ranks(scores: np.ndarray, mine: np.ndarray, labels: np.ndarray, banned: int | None) -> np.ndarray:
    """Each label's rank [n]: the words of `scores` [n, vocab] above its score `mine` [n], and those
    tied with it earlier in the vocabulary, never `banned` (an id, not negative). Two passes over
    the scores; a row where another word ties with the label (rare in trained logits, common in an
    n-gram's backed-off scores) is counted apart, at most one more pass over it."""
    rank = np.count_nonzero(scores > mine[:, None], axis=1)
    for row in np.flatnonzero(np.count_nonzero(scores == mine[:, None], axis=1) > 1):
        rank[row] += np.count_nonzero(scores[row, : labels[row]] == mine[row])
    if banned is not None:
        theirs = scores[:, banned]
        rank -= (theirs > mine) | ((theirs == mine) & (banned < labels))
    return rank


def evaluate(model: Model, text: str, learning: bool = True, cache: bool = True) -> Evaluation:
    """Each word of `text` predicted from the `window` words before it, read as `suggest` reads
    them. Unknown words are read as <unk> where the model has one, and are never a word to
    predict; without <unk>, the windows that hold one are skipped. Keystrokes are counted over
    every word after the first `window`: one the model does not offer costs all its keys.

    `learning`: with the person's words mixed in as `suggest` mixes them (`fable.learned`: what
    the model learnt, and each word of the text before the one predicted where the model learns
    from the text so far), so a word the vocabulary lacks saves keys once it has been typed; the
    figures are over the same words either way. False: the model alone. `cache` False: a stream
    model without its cache of the text so far."""
    lexicon, window = model.lexicon, model.least_words
    tokens = lexicon.read(text).tokens
    unknown = model.unknown_id
    ids = lexicon.lookup(tokens)
    keyboard = model.keyboard
    total = NOTHING
    learnt = learning and (model.learns_text or model.learned.size > 0)
    so_far = WordCounts(lexicon.index)
    counts = model.counts_with(so_far)
    start = counted = 0  # where the run starts in `tokens`; how many of them were counted
    for run in _readable_runs(ids):
        position = start + window  # of the next label in `tokens`
        for logits, labels in predictions(model, run, cache=cache):
            if not learnt:
                keep = labels != unknown if unknown is not None else slice(None)
                total += evaluation_of(logits[keep], labels[keep], unknown, keyboard)
                continue
            for row in logits:
                if model.learns_text:
                    so_far.add(tokens[counted:position])  # the words before this one: typed
                    counted = position
                total += _learnt_word(model, row, counts, tokens[position - 1], tokens[position])
                position += 1
        start += len(run) + 1  # past the unknown word that ended the run
    if not total.words:
        words = "a word" if window == 1 else f"{window} words"
        raise PromptError(f"no word of the text could be predicted: the model needs {words} it knows "
                          f"before a word to predict it, and the text has {len(tokens)} tokens")  # fmt: skip
    typed = sum(keys_without(token) for token in tokens[window:])
    return dataclasses.replace(total.typed_over(typed), skipped=max(0, len(ids) - window) - total.words)


def _learnt_word(model: Model, logits: np.ndarray, counts: list[WordCounts], previous: str, word: str) -> Evaluation:
    """The figures of one `word` after `previous`, from the model's `logits` [vocab] and the
    learnt `counts` mixed in: keystrokes for any word, the rest for one the model could suggest."""
    blended = Distribution.of(softmax(logits), counts, previous, model.unknown_id, model.blend)
    index, unknown = model.lexicon.index, model.unknown_id
    p = blended.probability(word, index)
    label = index.get(word)
    measured = label is not None and label != unknown
    if p <= 0 and not measured:
        return Evaluation(0, 0, 0, 0.0, keys=keys_without(word), keys_without=keys_without(word))
    known = blended.known
    above = (known > p) | ((known == p) & (np.arange(len(known)) < (label if measured else len(known))))
    if unknown is not None:
        above[unknown] = False
    learnt = blended.unknown
    ahead = learnt > p
    if not measured:  # ties among the learnt words: the first learnt first
        ahead |= (learnt == p) & (np.arange(len(learnt)) < blended.position[word])
    learnt_above = [blended.words[i] for i in np.flatnonzero(ahead).tolist()]
    keys = model.keyboard.keys(above, word, learnt_above)
    if not measured:
        return Evaluation(0, 0, 0, 0.0, keys=keys, keys_without=keys_without(word))
    rank = int(above.sum()) + len(learnt_above)
    return Evaluation(1, int(rank < 1), int(rank < 3), math.log(p), keys=keys, keys_without=keys_without(word))


def _readable_runs(ids: Sequence[int | None]) -> Iterator[list[int]]:
    """The longest stretches of ids without an unknown word (None)."""
    run: list[int] = []
    for i in ids:
        if i is None:
            yield run
            run = []
        else:
            run.append(i)
    yield run


def log_normalizer(logits: np.ndarray) -> np.ndarray:
    """log(sum(exp(logits))) over the last axis, without overflow: a word's log-probability is its
    logit less this (the one log-softmax of fable). Each term exp(logit - largest), in (0, 1], is
    rounded in the logits' own precision (at least float32) and summed in float64: float32 logits
    stay within a few 1e-7 of the float64 sum, at a third of its cost, where a large vocabulary's
    evaluation spends it."""
    top = np.max(logits, axis=-1, keepdims=True)
    terms = np.subtract(logits, top, dtype=np.promote_types(logits.dtype, np.float32))  # ints: float64
    np.exp(terms, out=terms)
    return np.log(terms.sum(axis=-1, dtype=np.float64)) + top[..., 0]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities [..., vocab] in float64 from logits, without overflow: each less the row's largest."""
    z = np.subtract(logits, np.max(logits, axis=-1, keepdims=True), dtype=np.float64)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def predictions(
    model: Model, ids: Sequence[int], chunk: int = CHUNK, cache: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(logits [n, vocab], labels [n]) for each id of `ids` after the first `window` (a stream
    model's: after the first), each read from the `window` ids before it (a stream model's: all of
    them; `cache` False: without a stream model's cache), in chunks: the one loop of `evaluate`
    and `predict.score`."""
    window = model.least_words
    if len(ids) <= window:
        return
    logits, labels = [], []
    for position, row in enumerate(model.logits_along(ids[:-1], cache)):
        if position >= window - 1:
            logits.append(row.copy())
            labels.append(ids[position + 1])
            if len(labels) == chunk:
                yield np.stack(logits), np.array(labels)
                logits, labels = [], []
    if labels:
        yield np.stack(logits), np.array(labels)
