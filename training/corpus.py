"""Reading a corpus: any UTF-8 text file, or the fable shipped with fable."""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fable.errors import UsageError
from fable.textfile import read_text_file
from fable.tokenizer import TOKENIZER_VERSION, UNKNOWN, build_vocabulary, tokenize

from .split import UNSEEN, Split, part_windows, split, unknown_id

FABLE_NAME = "fable.txt"  # Aesop, "The Belling of the Cat", as the rnn-words tutorial used it


@dataclass(frozen=True)
class Corpus:
    name: str
    sha256: str  # of the file's bytes
    tokens: list[str]  # rare words already read as <unk>
    vocabulary: list[str]  # of the training part
    ids: np.ndarray  # int64 [tokens]; UNSEEN where a held-out word is not in the vocabulary
    rare_words: int = 0  # distinct words read as <unk>
    rare_tokens: int = 0  # and how many times they occur
    holdout: float = 0.0  # the share of the text held out of training (split.py)

    @property
    def split(self) -> Split:
        return split(len(self.ids), self.holdout)

    @property
    def unknown_id(self) -> int | None:
        return unknown_id(self.vocabulary)

    def segments(self, part: str = "train") -> list[np.ndarray]:
        """The ids of each block of one part: what an n-gram is counted on, none across blocks."""
        return [self.ids[start:end] for start, end in self.split.part(part)]

    def windows(self, window: int, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """contexts [N, window] and next-word labels [N] of the training part, or the held-out one
        (`split.part_windows`)."""
        return part_windows(self.ids, self.holdout, window, part, self.unknown_id)

    def window_count(self, window: int) -> int:
        return len(self.windows(window)[1])


@dataclass(frozen=True)
class Ceiling:
    """The most windows any model that reads `window` words can get right on a corpus."""

    correct: int
    windows: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.windows


def ceiling(contexts: np.ndarray, labels: np.ndarray) -> Ceiling:
    """A model sees only the context, so a context followed by different words in different places
    is right at most as often as its most frequent next word: the sum of those counts is the most
    any model with this window can get right on these windows, however long it trains."""
    mask = reachable(contexts, labels)
    return Ceiling(int(mask.sum()), len(mask))


def reachable(contexts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which windows [N] a model at the ceiling gets right: those whose next word is their
    context's most frequent one."""
    return best_followers(contexts, labels) == labels


def best_followers(contexts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each window (contexts [N, window], labels [N]), the most frequent next word of its
    context (ties: the first seen): what a model at the ceiling predicts."""
    followers: dict[tuple[int, ...], collections.Counter] = collections.defaultdict(collections.Counter)
    keys = list(map(tuple, contexts.tolist()))
    for context, label in zip(keys, labels.tolist()):
        followers[context][label] += 1
    best = {context: counts.most_common(1)[0][0] for context, counts in followers.items()}
    return np.array([best[context] for context in keys], np.int64)


def fable_path() -> Path:
    return Path(str(resources.files("fable.training") / FABLE_NAME))


@dataclass(frozen=True)
class Text:
    """A corpus file read and cut into tokens, before any choice of window, vocabulary or split."""

    path: Path
    sha256: str  # of the file's bytes
    tokens: list[str]


def read_corpus(path: Path | None, tokenizer_version: int = TOKENIZER_VERSION) -> Text:
    """Read and tokenize `path` (None: the fable); UsageError for a file that is not text."""
    path = fable_path() if path is None else Path(path)
    text, data = read_text_file(path, "corpus file", "pass --corpus PATH to a UTF-8 text file")
    tokens = tokenize(text, tokenizer_version)
    if not tokens:
        raise UsageError(f"corpus file {path} has no words; give it some text")
    return Text(path, hashlib.sha256(data).hexdigest(), tokens)


def load_corpus(
    path: Path | Text | None,
    window: int,
    tokenizer_version: int = TOKENIZER_VERSION,
    min_count: int = 1,
    max_vocab: int | None = None,
    holdout: float = 0.0,
) -> Corpus:
    """The corpus of `path` (None: the fable; or a Text already read), with `holdout` of it kept
    out of training (the vocabulary is the training part's), and words rarer than `min_count` or
    past the `max_vocab` most frequent read as <unk>; UsageError for anything that cannot train a
    window."""
    text = path if isinstance(path, Text) else read_corpus(path, tokenizer_version)
    tokens, name = text.tokens, f"corpus file {text.path}"
    if len(tokens) < window + 1:
        raise UsageError(
            f"{name} has {len(tokens)} tokens, but a window of {window} needs at least {window + 1}; "
            "give it more text or a smaller --window"
        )
    parts = split(len(tokens), holdout)
    training = [t for start, end in parts.train for t in tokens[start:end]]
    kept = kept_words(training, min_count, max_vocab)
    rare = collections.Counter(t for t in training if t not in kept)
    if rare and not kept:
        raise UsageError(
            f"with --min-count {min_count} no word of {name} is frequent enough to keep; lower --min-count"
        )
    vocabulary = build_vocabulary([t if t in kept else UNKNOWN for t in training])
    index = {word: i for i, word in enumerate(vocabulary)}
    unknown = index.get(UNKNOWN, UNSEEN)  # a held-out word the training part lacks: <unk>, or unseen
    corpus = Corpus(
        name=text.path.name,
        sha256=text.sha256,
        tokens=[t if t in kept or unknown == UNSEEN else UNKNOWN for t in tokens],
        vocabulary=vocabulary,
        ids=np.array([index[t] if t in kept else unknown for t in tokens], np.int64),
        rare_words=len(rare),
        rare_tokens=sum(rare.values()),
        holdout=holdout,
    )
    for part, what in (("train", "keeps no whole window"), ("heldout", "holds out no whole window")):
        if (part == "train" or holdout) and len(corpus.windows(window, part)[1]) == 0:
            raise UsageError(f"{name} {what} of {window + 1} known tokens with --holdout {holdout:g}; "
                             "give it more text, or a smaller --window or --holdout")  # fmt: skip
    return corpus


def kept_words(tokens: list[str], min_count: int, max_vocab: int | None) -> set[str]:
    """The words seen at least `min_count` times, the most frequent first, as many as fit in
    `max_vocab` beside <unk> (ties: the first seen); every word when none are left out."""
    counts = collections.Counter(tokens)
    frequent = [word for word, count in counts.most_common() if count >= min_count]
    if max_vocab is not None:
        left_out = len(frequent) < len(counts) or len(frequent) > max_vocab
        frequent = frequent[: max_vocab - left_out]  # once any word is left out, <unk> takes a place
    return set(frequent)
