"""What apps ask of a word model besides continuing a prompt: the next word's likeliest candidates,
and how likely a text is. The rules, the numbers and the JSON, in one place; `Model.suggest` and
`Model.score` call these."""

from __future__ import annotations

import itertools
import math
from collections.abc import Container, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .contract import GRAPH_STEP
from .errors import check_whole
from .prompt import Reading, unknown_words
from .tokenizer import UNKNOWN

if TYPE_CHECKING:
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

    If `text` ends inside a word (no space or mark after it, and not a word the model knows), the
    candidates are the words that start with it, ranked by their probability after the words
    before it: "the old mo" gives "mouse", and "the old mouse" gives the words after "mouse". Text
    of fewer words than the window is read from the LSTM's zero state, the state every training
    window started from, so the missing words are padded exactly as in training; the suggestions
    then rest on less context. (A plain window-graph file has no zero state to start from and
    needs `window` words.) Unknown words are a PromptError, as in `generate`, or <unk> where the
    model has one; an unfinished word that no known word completes then has no suggestions.
    """
    check_whole("k", k, 1, MAX_SUGGESTIONS)
    lexicon, window = model.lexicon, model.window
    # the words of the window and the one being typed are all it reads
    reading, partial = split_partial(text, lexicon.read(text, last_words=window + 1), lexicon.index)
    if partial and not any(word.startswith(partial) for word in model.vocabulary if word != UNKNOWN):
        if lexicon.unknown_id is None:
            raise unknown_words([partial], model.vocabulary)
        return []  # no word it knows completes it, and it never suggests <unk>
    shortest = 1 if model.metadata.graph == GRAPH_STEP else window
    ids = lexicon.ids(reading, "text", shortest, window, last=window)
    *_, logits = model.logits_along(ids)  # after the last word
    return rank(model.vocabulary, log_softmax(logits), partial, k, banned=lexicon.unknown_id)


def score(model: Model, text: str) -> TextScore:
    """The log-probability of each word after the first window, given the window before it, with
    their total and the perplexity."""
    window = model.window
    reading = model.lexicon.read(text)
    ids = model.lexicon.ids(reading, "text", window + 1, window)
    scores = []
    for position, logits in enumerate(model.logits_along(ids[:-1])):
        if position >= window - 1:
            scores.append(float(log_softmax(logits)[ids[position + 1]]))
    return text_score(reading.tokens[window:], scores)


def suggestion_record(model: Model, text: str, k: int) -> dict[str, Any]:
    """`suggest` as JSON (`fable-run --suggest --json`, `fable-serve`'s /suggest)."""
    return {"text": text, "suggestions": [asdict(s) for s in model.suggest(text, k)]}


def score_record(model: Model, text: str) -> dict[str, Any]:
    """`score` as JSON (`fable-run --score --json`, `fable-serve`'s /score)."""
    return {"text": text, **model.score(text).as_dict()}


def split_partial(text: str, reading: Reading, known: Container[str]) -> tuple[Reading, str]:
    """The text's finished tokens, and the word still being typed: '' after a space or a mark, or
    when the last word is one the model knows (then it is taken as finished)."""
    tokens = reading.tokens
    if tokens and not text[-1].isspace() and tokens[-1][-1].isalnum() and tokens[-1] not in known:
        return reading.without_last(), tokens[-1]
    return reading, ""


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """float64 log-probabilities [vocab] from logits [vocab]."""
    z = logits.astype(np.float64)
    z = z - z.max()
    return z - math.log(np.exp(z).sum())


def rank(
    vocabulary: Sequence[str], log_probabilities: np.ndarray, partial: str, k: int, banned: int | None = None
) -> list[Suggestion]:
    """The k likeliest words that start with `partial`, likeliest first (ties: vocabulary order),
    never the id `banned` (a model's <unk>)."""
    ranked = np.argsort(-log_probabilities, kind="stable")
    shown = (i for i in ranked if i != banned and vocabulary[i].startswith(partial))  # read up to the k-th only
    return [Suggestion(vocabulary[i], float(np.exp(log_probabilities[i]))) for i in itertools.islice(shown, k)]


def text_score(words: Sequence[str], log_probabilities: Sequence[float]) -> TextScore:
    total = float(sum(log_probabilities))
    scores = tuple(WordScore(w, float(p)) for w, p in zip(words, log_probabilities))
    return TextScore(scores, total, math.exp(-total / len(scores)))
