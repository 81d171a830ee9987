"""Reading a corpus: any UTF-8 text file, or the fable shipped with fable, as a stream of ids.

The file is read a piece at a time and each token becomes an int32 id at once: memory follows the
corpus at 4 bytes a token, plus one string per distinct word, and never a Python object per token.
Windows are positions in that stream (`split.window_starts`). A large corpus's ids are kept beside
its run (`save_cache`), so `--resume` maps them from disk instead of reading the text again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fable.atomic import atomic_paths
from fable.errors import UsageError
from fable.textfile import text_pieces
from fable.tokenizer import TOKENIZER_VERSION, UNKNOWN, tokenize, unknown_id

from .split import UNSEEN, Split, gather, split, window_starts

FABLE_NAME = "fable.txt"  # Aesop, "The Belling of the Cat", as the rnn-words tutorial used it
CACHE_FROM_TOKENS = 1_000_000  # a smaller corpus is read again in a few seconds
CACHE_IDS, CACHE_WORDS = "corpus-ids.npy", "corpus-words.json"


@dataclass(frozen=True)
class Text:
    """A corpus file read and cut into tokens, before any choice of window, vocabulary or split."""

    path: Path
    sha256: str  # of the file's bytes
    words: list[str]  # each distinct token, in the order of its first appearance
    ids: np.ndarray  # int32 [tokens]: each token's index in `words`
    tokenizer_version: int = TOKENIZER_VERSION

    def tokens(self) -> list[str]:
        """The tokens as strings: for small texts and tests; a corpus is its ids."""
        return [self.words[i] for i in self.ids.tolist()]


@dataclass(frozen=True)
class Corpus:
    name: str
    sha256: str  # of the file's bytes
    vocabulary: list[str]  # of the training part
    ids: np.ndarray  # int32 [tokens]; rare words as <unk>, UNSEEN where a held-out word is not in the vocabulary
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

    def starts(self, window: int, part: str = "train") -> np.ndarray:
        """int64 [N]: where each window of one part (train, validation, test or heldout) begins."""
        return window_starts(self.ids, self.holdout, window, part, self.unknown_id)

    def windows(self, window: int, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """contexts [N, window] and next-word labels [N] of every window of one part, gathered:
        for small corpora and tests; training gathers a batch at a time."""
        return gather(self.ids, self.starts(window, part), window)

    def window_count(self, window: int) -> int:
        return len(self.starts(window))


def fable_path() -> Path:
    return Path(str(resources.files("fable.training") / FABLE_NAME))


def read_corpus(path: Path | None, tokenizer_version: int = TOKENIZER_VERSION, cache: Path | None = None) -> Text:
    """Read and tokenize `path` (None: the fable), or map its ids from `cache` (a run's folder) when
    `save_cache` left them there for this very file; UsageError for a file that is not text."""
    path = fable_path() if path is None else Path(path)
    if cache is not None and (cached := _cached(cache, path, tokenizer_version)):
        return cached
    digest = hashlib.sha256()
    index: dict[str, int] = {}
    pieces = []
    for piece in text_pieces(path, "corpus file", "pass --corpus PATH to a UTF-8 text file", digest):
        tokens = tokenize(piece, tokenizer_version)
        pieces.append(np.fromiter((index.setdefault(t, len(index)) for t in tokens), np.int32, len(tokens)))
    ids = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    if not len(ids):
        raise UsageError(f"corpus file {path} has no words; give it some text")
    return Text(path, digest.hexdigest(), list(index), ids, tokenizer_version)


def save_cache(text: Text, folder: Path) -> None:
    """Keep a large corpus's ids in `folder`, to be mapped by `read_corpus(..., cache=folder)`."""
    if len(text.ids) < CACHE_FROM_TOKENS:
        return
    about = {"sha256": text.sha256, "tokenizer_version": text.tokenizer_version, "tokens": len(text.ids),
             "words": text.words}  # fmt: skip
    with atomic_paths(folder / CACHE_IDS, folder / CACHE_WORDS) as (ids, words):  # the words vouch for the ids
        with open(ids, "wb") as file:
            np.save(file, text.ids.astype(np.int32, copy=False))
        words.write_text(json.dumps(about), encoding="utf-8")


def _cached(folder: Path, path: Path, tokenizer_version: int) -> Text | None:
    """The cached Text of `path` in `folder`, if the cache is whole and of this file and tokenizer."""
    try:
        about = json.loads((folder / CACHE_WORDS).read_text(encoding="utf-8"))
        ids = np.load(folder / CACHE_IDS, mmap_mode="r")
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            while data := file.read(1 << 20):
                digest.update(data)
        expected = (digest.hexdigest(), tokenizer_version, len(ids), np.dtype(np.int32))
        if (about["sha256"], about["tokenizer_version"], about["tokens"], ids.dtype) != expected:
            return None
        return Text(path, about["sha256"], [str(word) for word in about["words"]], ids, tokenizer_version)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no cache, a damaged one, or no file: read the text, which says what is wrong


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
    if text.tokenizer_version != tokenizer_version:
        raise ValueError(f"{text.path} was read with tokenizer {text.tokenizer_version}, not {tokenizer_version}")
    name = f"corpus file {text.path}"
    if len(text.ids) < window + 1:
        raise UsageError(
            f"{name} has {len(text.ids)} tokens, but a window of {window} needs at least {window + 1}; "
            "give it more text or a smaller --window"
        )
    parts = split(len(text.ids), holdout)
    training = np.concatenate([text.ids[start:end] for start, end in parts.train])
    counts = np.bincount(training, minlength=len(text.words))  # [words]
    first = np.full(len(text.words), len(training))  # [words]: where each is first seen in the training part
    seen, where = np.unique(training, return_index=True)
    first[seen] = where
    del training
    kept = kept_words(counts, first, min_count, max_vocab)
    rare = np.setdiff1d(seen, kept)
    if len(rare) and not len(kept):
        raise UsageError(
            f"with --min-count {min_count} no word of {name} is frequent enough to keep; lower --min-count"
        )
    # The vocabulary: the kept words and, where any was left out, <unk> counted as all of them, by
    # frequency, ties in order of first appearance (tokenizer.build_vocabulary's order).
    entries = np.append(kept, len(text.words)) if len(rare) else kept  # len(words) stands for <unk>
    entry_counts = np.append(counts[kept], counts[rare].sum()) if len(rare) else counts[kept]
    entry_first = np.append(first[kept], first[rare].min()) if len(rare) else first[kept]
    entries = entries[np.lexsort((entry_first, -entry_counts))]
    vocabulary = [text.words[i] if i < len(text.words) else UNKNOWN for i in entries.tolist()]
    unknown = unknown_id(vocabulary)
    final = np.full(len(text.words), UNSEEN if unknown is None else unknown, np.int32)  # old id → new id
    final[entries[entries < len(text.words)]] = np.flatnonzero(entries < len(text.words))
    corpus = Corpus(
        name=text.path.name,
        sha256=text.sha256,
        vocabulary=vocabulary,
        ids=final[text.ids],
        rare_words=len(rare),
        rare_tokens=int(counts[rare].sum()),
        holdout=holdout,
    )
    for part, what, holdout_hint in (("train", "keeps no whole window", "smaller"),
                                     ("validation", "holds out no whole window to validate on", "larger"),
                                     ("test", "holds out no whole window to test on", "larger")):  # fmt: skip
        if (part == "train" or holdout) and len(corpus.starts(window, part)) == 0:
            raise UsageError(f"{name} {what} ({window + 1} known tokens in a row) with --holdout {holdout:g}; "
                             f"give it more text, a smaller --window or a {holdout_hint} --holdout")  # fmt: skip
    return corpus


def kept_words(counts: np.ndarray, first: np.ndarray, min_count: int, max_vocab: int | None) -> np.ndarray:
    """The ids of the words seen at least `min_count` times (`counts` [words]), the most frequent
    first, as many as fit in `max_vocab` beside <unk> (ties: the first seen, `first` [words]);
    every word seen when none are left out."""
    order = np.lexsort((first, -counts))
    seen = order[counts[order] > 0]
    frequent = seen[counts[seen] >= min_count]
    if max_vocab is not None:
        left_out = len(frequent) < len(seen) or len(frequent) > max_vocab
        frequent = frequent[: max_vocab - left_out]  # once any word is left out, <unk> takes a place
    return frequent
