"""What apps ask of a word model besides continuing a prompt: the next word's likeliest candidates,
and how likely a text is. The numbers here; the model's calls are in `Model.suggest` and `Model.score`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Container, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .prompt import Reading

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

    def as_dict(self) -> dict:
        return asdict(self) | {"words": [asdict(w) for w in self.words]}


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
