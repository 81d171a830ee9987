"""What apps ask of a word model besides continuing a prompt: the next word's likeliest candidates,
and how likely a text is. The rules, the numbers and the JSON, in one place; `Model.suggest` and
`Model.score` call these."""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .contract import GRAPH_WINDOW
from .errors import UsageError, check_whole
from .evaluation import CHUNK, log_normalizer, predictions, softmax
from .keyboard import Keyboard
from .learned import Distribution, TextCounts, WordCounts
from .prompt import Reading, split_partial, unknown_words
from .tokenizer import UNKNOWN

if TYPE_CHECKING:
    from .decoder import Decoder
    from .model import Model

DEFAULT_SUGGESTIONS = 3
MAX_SUGGESTIONS = 100_000  # a sanity bound: k past the vocabulary returns all of it


@dataclass(frozen=True)
class Suggestion:
    word: str
    probability: float  # under the model, over the whole vocabulary


@dataclass(frozen=True)
class WordScore:
    word: str
    log_probability: float  # natural log, given the `window` words before it


@dataclass(frozen=True)
class TextScore:
    words: tuple[WordScore, ...]  # every word after the first window
    total: float  # the sum of their log-probabilities
    perplexity: float  # exp(-total / len(words))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"words": [asdict(w) for w in self.words]}


def suggest(model: Model, text: str, k: int = DEFAULT_SUGGESTIONS) -> list[Suggestion]:
    """The k likeliest next words after `text` with their probabilities, likeliest first.

    If `text` ends inside a word (no space or mark after it), the candidates are the words that
    start with it, the word itself among them when the model knows it, ranked by their probability
    after the words before it: "the old mo" and "the old mouse" give "mouse", and "the old mouse "
    gives the words after "mouse". A known word with too few words before it to rank its
    completions (the first word of a text) is taken as finished: "the" gives the words after it;
    an unfinished first word ("mo") has no suggestions. Text
    of fewer words than the window is read from the LSTM's zero state, the state every training
    window started from, so the missing words are padded exactly as in training; the suggestions
    then rest on less context. (A plain window-graph file has no zero state to start from and
    needs `window` words.) Unknown words are a PromptError, as in `generate`, or <unk> where the
    model has one; an unfinished word that no known or learnt word completes then has no suggestions.

    The words of the text itself (where `model.learns_text`) and those the model learnt
    (`Model.learn`) are mixed in by `fable.learned`'s rule: a word the vocabulary lacks is offered
    once it has been typed, and the words this person types after a word rise after it.
    """
    query = _Query.of(model, text, k)
    if query is None:
        return []
    *_, logits = model.logits_along(query.ids)  # after the last word
    return query.ranked(model, logits, query.blend(model, logits, model.counts(text)))


class Typing:
    """`suggest` for a text that grows as a person types: each call advances the model by the
    words finished since the last one (one LSTM step a word) instead of reading the whole window
    from the zero state, and gives exactly the suggestions of `suggest` (a stream model's: on
    texts of up to its `window` words; past them it reads on where `suggest` reads the last
    `window` afresh). A text that changed some other way is read afresh. It holds one of the model's decoders: use it in a `with` block, or
    `close()` it; closed, it gives the decoder back and refuses to suggest. One typist at a time
    (not shared by threads)."""

    LOOKBACK = 3  # words finished between two calls that are fed on (more: read afresh, as a paste is)

    def __init__(self, model: Model):
        self._model = model
        self._lease = model.decoder(1)
        self._decoder: Decoder | None = self._lease.__enter__()
        self._fed: list[int] = []  # the last `window` ids fed since the decoder was reset
        self._count = 0  # how many were fed since then
        self._logits: np.ndarray | None = None  # after the last of them
        self._token = np.zeros((1, 1), np.int64)  # [batch 1, 1]: the word fed
        self._text = TextCounts(model.lexicon.index, model.lexicon.version)  # kept up to date as the text grows
        self._step = 0  # words fed in all: which logits the last blend was made from
        self._blended: tuple[tuple, Distribution | None] | None = None  # and that blend, with what it read
        self._stem = ""  # the last text up to its unfinished word: what a stream model's state has read

    def suggest(self, text: str, k: int = DEFAULT_SUGGESTIONS) -> list[Suggestion]:
        self._live()  # before any work
        query = _Query.of(self._model, text, k, lookback=self.LOOKBACK)
        if query is None:
            return []
        logits = self._advance(query, text)
        counts = self._model.counts(text, self._text)
        # Within a word nothing the blend reads changes (the model fed no word, no word was
        # counted): the blend of the last keystroke serves again.
        key = (self._step, query.previous, tuple(c.version for c in counts))
        if self._blended is None or self._blended[0] != key:
            self._blended = (key, query.blend(self._model, logits, counts))
        return query.ranked(self._model, logits, self._blended[1])

    def close(self) -> None:
        """Give the decoder back to the model (once: closing again does nothing)."""
        if self._decoder is not None:
            self._decoder = None
            self._lease.__exit__(None, None, None)

    def _live(self) -> Decoder:
        if self._decoder is None:
            raise UsageError(
                "this Typing is closed, its decoder back with the model; start another with model.typing()"
            )
        return self._decoder

    def __enter__(self) -> Typing:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _advance(self, query: _Query, text: str) -> np.ndarray:
        """The logits after the query's words: fed on from where the last call left off when the
        text only grew, else afresh. A window model's row that answers has read the same last
        `window` words from the zero state either way, so the numbers are the same as `suggest`'s.
        A stream model's state holds every word fed, so it goes on only where the text before the
        last call's unfinished word is unchanged: the same as `suggest`'s on texts of at most its
        `window` words, and on longer ones what it read before them too."""
        recent = query.recent
        whole = self._model.metadata.whole_text
        if whole:  # only a stream model's state depends on more than the last window
            stem, self._stem = self._stem, _finished(text)
        if not whole or text.startswith(stem):
            for added in range(min(self.LOOKBACK, len(recent)) + 1):
                before, new = recent[: len(recent) - added], recent[len(recent) - added :]
                if self._continues(before) and None not in new and (new or self._logits is not None):
                    return self._feed(new) if new else self._logits  # type: ignore[return-value]
        self._live().reset()
        self._fed, self._count = [], 0
        return self._feed(query.ids)

    def _continues(self, before: list[int | None]) -> bool:
        window = self._model.window
        if self._count < window:
            return self._count > 0 and before == self._fed
        return before[-window:] == self._fed

    def _feed(self, ids: list[int]) -> np.ndarray:
        for word in ids:
            self._token[0, 0] = word
            logits = self._live().feed(self._token)
        self._fed = (self._fed + list(ids))[-self._model.window :]
        self._count += len(ids)
        self._step += len(ids)
        self._logits = logits[0].copy()
        return self._logits


def _finished(text: str) -> str:
    """`text` without the word it ends inside, if it does."""
    end = len(text)
    while end and (text[end - 1].isalnum() or text[end - 1] == "_"):
        end -= 1
    return text[:end]


@dataclass(frozen=True)
class _Query:
    """What a suggestion reads of a text: the word being typed, the ids of the window before it,
    and (for `Typing`) the ids of the finished words before that, None for ones it does not know."""

    partial: str
    ids: list[int]
    recent: list[int | None]
    previous: str | None  # the last finished token: what the learnt pairs follow
    k: int

    @staticmethod
    def of(model: Model, text: str, k: int, lookback: int = 0) -> _Query | None:
        """None when no word can be suggested; the errors of `suggest` otherwise."""
        k = check_whole("k", k, 1, MAX_SUGGESTIONS)
        lexicon, window = model.lexicon, model.window
        # the words of the window and the one being typed are all it reads (and `lookback` more)
        whole = lexicon.read(text, last_words=window + 1 + lookback)
        reading, partial = split_partial(text, whole)
        shortest = 1 if model.metadata.graph != GRAPH_WINDOW else window  # the others read from the zero state
        if partial in lexicon.index and len(reading.tokens) < shortest:
            reading, partial = whole, ""  # too few words before it to rank its completions: finished
        if partial and not reading.tokens:
            return None  # the first word, unfinished: no word before it to rank its completions by
        known = partial in lexicon.index and partial != UNKNOWN
        if partial and not known and model.unknown_id is None:
            first, last = model.keyboard.stretch(partial)
            if first == last:  # no word it knows starts so
                raise unknown_words([partial], model.vocabulary)
        ids = lexicon.ids(reading, "text", shortest, window, last=window)
        recent = lexicon.lookup(reading.tokens)
        return _Query(partial, ids, recent, reading.tokens[-1] if reading.tokens else None, k)

    def blend(self, model: Model, logits: np.ndarray, counts: list[WordCounts]) -> Distribution | None:
        """The model's `logits` [vocab] mixed with the learnt words' `counts`; None where nothing was counted."""
        if not any(c.size for c in counts):
            return None
        return Distribution.of(softmax(logits), counts, self.previous, model.unknown_id, model.blend)

    def ranked(self, model: Model, logits: np.ndarray, blended: Distribution | None) -> list[Suggestion]:
        """The suggestions: from the model's `logits` [vocab] alone, or from their `blended` distribution."""
        scores = logits if blended is None else blended.known
        return rank(model.vocabulary, scores, self.partial, self.k, model.unknown_id, model.keyboard, blended)


def score(model: Model, text: str) -> TextScore:
    """The log-probability of each word after the first window, given the window before it (a
    stream model's: after the first word, given all the words before it), with their total and
    the perplexity."""
    steps = score_steps(model, model.lexicon.read(text))
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def score_steps(model: Model, reading: Reading, chunk: int = CHUNK) -> Generator[None, None, TextScore]:
    """`score` of a text read, paused after every `chunk` words (fable-serve's requests take
    turns so): the one decode of the whole text, a stream model's state carried across pauses."""
    least = model.least_words
    ids = model.lexicon.ids(reading, "text", least + 1, model.window)
    scores: list[float] = []
    for logits, labels in predictions(model, ids, chunk=chunk):
        scores += (logits[np.arange(len(labels)), labels] - log_normalizer(logits)).tolist()
        yield
    return text_score(reading.tokens[least:], scores)


def suggestion_record(model: Model, text: str, k: int) -> dict[str, Any]:
    """`suggest` as JSON (`fable-run --suggest --json`, `fable-serve`'s /suggest)."""
    return {"text": text, "suggestions": [asdict(s) for s in model.suggest(text, k)]}


def score_record(model: Model, text: str) -> dict[str, Any]:
    """`score` as JSON (`fable-run --score --json`, `fable-serve`'s /score)."""
    return {"text": text, **model.score(text).as_dict()}


def rank(
    vocabulary: Sequence[str],
    scores: np.ndarray,
    partial: str,
    k: int,
    banned: int | None,
    keyboard: Keyboard,
    learnt: Distribution | None = None,
) -> list[Suggestion]:
    """The k likeliest words that start with `partial`, likeliest first, never the id `banned` (a
    model's <unk>). `scores` [vocab]: the model's logits, each word's probability over the whole
    vocabulary computed for the words shown only (this runs on every keystroke); or, with
    `learnt`, its probabilities [vocab] mixed with the learnt words', which compete too. Ties: the
    vocabulary's order, then the learnt words' order. The words that start with `partial` are one
    stretch of the vocabulary sorted alphabetically (`keyboard`), so a keystroke reads only them."""
    if partial:
        first, last = keyboard.stretch(partial)
        ids = np.sort(keyboard.order[first:last])
    else:
        ids = highest(scores, k + 1)  # k words even when one of them is `banned`
    order = ids[np.argsort(-scores[ids], kind="stable")]
    shown = [i for i in order[: k + 1].tolist() if i != banned][:k]
    if learnt is None:
        log_total = float(log_normalizer(scores))
        return [Suggestion(vocabulary[i], math.exp(float(scores[i]) - log_total)) for i in shown]
    found = [(vocabulary[i], float(scores[i])) for i in shown]
    if partial:
        found += [
            (w, float(p)) for w, p in zip(learnt.words, learnt.unknown.tolist()) if p > 0 and w.startswith(partial)
        ]
    else:
        found += [(learnt.words[i], float(learnt.unknown[i])) for i in highest(learnt.unknown, k).tolist()]
    found.sort(key=lambda pair: -pair[1])  # stable: on ties the vocabulary's words first
    return [Suggestion(word, p) for word, p in found[:k]]


def highest(scores: np.ndarray, n: int) -> np.ndarray:
    """The ids of the `n` highest of `scores` [vocab] and of every word tied with the n-th, in id
    order: the few a ranking sorts, found in linear time."""
    if len(scores) <= n:
        return np.arange(len(scores))
    edge = np.partition(scores, len(scores) - n)[len(scores) - n]
    return np.flatnonzero(scores >= edge)


def text_score(words: Sequence[str], log_probabilities: Sequence[float]) -> TextScore:
    total = float(sum(log_probabilities))
    scores = tuple(WordScore(w, float(p)) for w, p in zip(words, log_probabilities))
    return TextScore(scores, total, math.exp(-total / len(scores)))
