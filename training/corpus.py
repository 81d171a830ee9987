"""Reading a corpus: any UTF-8 text file, or the fable shipped with fable."""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fable.errors import UsageError
from fable.tokenizer import build_vocabulary, make_windows, tokenize

FABLE_NAME = "fable.txt"  # Aesop, "The Belling of the Cat", as the rnn-words tutorial used it
MAX_CORPUS_BYTES = 1024**3


@dataclass(frozen=True)
class Corpus:
    name: str
    sha256: str  # of the file's bytes
    tokens: list[str]
    vocabulary: list[str]
    ids: np.ndarray  # int64 [tokens]

    def windows(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """contexts [N, window] and next-word labels [N]."""
        return make_windows(self.ids, window)


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
    contexts, labels = make_windows(ids, window)
    followers: dict[tuple[int, ...], collections.Counter] = collections.defaultdict(collections.Counter)
    for context, label in zip(map(tuple, contexts.tolist()), labels.tolist()):
        followers[context][label] += 1
    return Ceiling(sum(max(counts.values()) for counts in followers.values()), len(labels))


def fable_path() -> Path:
    return Path(str(resources.files("fable.training") / FABLE_NAME))


def load_corpus(path: Path | None, window: int) -> Corpus:
    """Read and tokenize `path` (None: the fable); UsageError for anything that cannot train a window."""
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
    tokens = tokenize(text)
    if not tokens:
        raise UsageError(f"corpus file {path} has no words; give it some text")
    if len(tokens) < window + 1:
        raise UsageError(
            f"corpus file {path} has {len(tokens)} tokens, but a window of {window} needs at least {window + 1}; "
            "give it more text or a smaller --window"
        )
    vocabulary = build_vocabulary(tokens)
    index = {word: i for i, word in enumerate(vocabulary)}
    return Corpus(
        name=path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        tokens=tokens,
        vocabulary=vocabulary,
        ids=np.array([index[t] for t in tokens], np.int64),
    )
