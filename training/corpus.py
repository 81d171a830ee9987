"""Reading a corpus: any UTF-8 text file, or the fable shipped with fable."""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fable.errors import UsageError
from fable.tokenizer import TOKENIZER_VERSION, UNKNOWN, build_vocabulary, make_windows, tokenize

FABLE_NAME = "fable.txt"  # Aesop, "The Belling of the Cat", as the rnn-words tutorial used it
MAX_CORPUS_BYTES = 1024**3


@dataclass(frozen=True)
class Corpus:
    name: str
    sha256: str  # of the file's bytes
    tokens: list[str]  # rare words already read as <unk>
    vocabulary: list[str]
    ids: np.ndarray  # int64 [tokens]
    rare_words: int = 0  # distinct words read as <unk>
    rare_tokens: int = 0  # and how many times they occur

    def windows(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """contexts [N, window] and next-word labels [N]."""
        return make_windows(self.ids, window)

    def window_count(self, window: int) -> int:
        return len(self.ids) - window


@dataclass(frozen=True)
class Ceiling:
    """The most windows any model that reads `window` words can get right on a corpus."""

    correct: int
    windows: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.windows


def ceiling(ids: np.ndarray, window: int) -> Ceiling:
    """A model sees only the context, so a context followed by different words in different places
    is right at most as often as its most frequent next word: the sum of those counts is the most
    any model with this window can get right, however long it trains."""
    mask = reachable(ids, window)
    return Ceiling(int(mask.sum()), len(mask))


def reachable(ids: np.ndarray, window: int) -> np.ndarray:
    """Which windows [N] a model at the ceiling gets right: those whose next word is their
    context's most frequent one."""
    _, labels = make_windows(ids, window)
    return best_followers(ids, window) == labels


def best_followers(ids: np.ndarray, window: int) -> np.ndarray:
    """For each window [N], the most frequent next word of its context (ties: the first seen):
    what a model at the ceiling predicts."""
    contexts, labels = make_windows(ids, window)
    followers: dict[tuple[int, ...], collections.Counter] = collections.defaultdict(collections.Counter)
    keys = list(map(tuple, contexts.tolist()))
    for context, label in zip(keys, labels.tolist()):
        followers[context][label] += 1
    best = {context: counts.most_common(1)[0][0] for context, counts in followers.items()}
    return np.array([best[context] for context in keys], np.int64)


def fable_path() -> Path:
    return Path(str(resources.files("fable.training") / FABLE_NAME))


def load_corpus(
    path: Path | None,
    window: int,
    tokenizer_version: int = TOKENIZER_VERSION,
    min_count: int = 1,
    max_vocab: int | None = None,
) -> Corpus:
    """Read and tokenize `path` (None: the fable), with words rarer than `min_count` or past the
    `max_vocab` most frequent read as <unk>; UsageError for anything that cannot train a window."""
    path = fable_path() if path is None else Path(path)
    if not path.exists():
        raise UsageError(f"corpus file {path} does not exist; pass --corpus PATH to a UTF-8 text file")
    if not path.is_file():
        raise UsageError(f"corpus path {path} is not a file; pass --corpus PATH to a UTF-8 text file")
    if path.stat().st_size > MAX_CORPUS_BYTES:
        raise UsageError(f"corpus file {path} is larger than {MAX_CORPUS_BYTES:,} bytes; split it")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"corpus file {path} is not UTF-8 text (invalid byte at offset {error.start}); convert it to UTF-8"
        ) from None
    tokens = tokenize(text, tokenizer_version)
    if not tokens:
        raise UsageError(f"corpus file {path} has no words; give it some text")
    if len(tokens) < window + 1:
        raise UsageError(
            f"corpus file {path} has {len(tokens)} tokens, but a window of {window} needs at least {window + 1}; "
            "give it more text or a smaller --window"
        )
    kept = kept_words(tokens, min_count, max_vocab)
    rare = collections.Counter(t for t in tokens if t not in kept)
    if rare and not kept:
        raise UsageError(
            f"with --min-count {min_count} no word of {path} is frequent enough to keep; lower --min-count"
        )
    tokens = [t if t in kept else UNKNOWN for t in tokens] if rare else tokens
    vocabulary = build_vocabulary(tokens)
    index = {word: i for i, word in enumerate(vocabulary)}
    return Corpus(
        name=path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        tokens=tokens,
        vocabulary=vocabulary,
        ids=np.array([index[t] for t in tokens], np.int64),
        rare_words=len(rare),
        rare_tokens=sum(rare.values()),
    )


def kept_words(tokens: list[str], min_count: int, max_vocab: int | None) -> set[str]:
    """The words seen at least `min_count` times, the most frequent first, as many as fit in
    `max_vocab` beside <unk> (ties: the first seen); every word when none are left out."""
    counts = collections.Counter(tokens)
    frequent = [word for word, count in counts.most_common() if count >= min_count]
    if max_vocab is not None:
        left_out = len(frequent) < len(counts) or len(frequent) > max_vocab
        frequent = frequent[: max_vocab - left_out]  # once any word is left out, <unk> takes a place
    return set(frequent)
