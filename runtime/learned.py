"""The words a person has typed: how often each word came and which word came after which, counted
from the text so far and from whatever text the app gives `Model.learn`, and mixed with the
model's next-word distribution so that a person's own words (names, terms, words the vocabulary
lacks) are suggested once they have been typed.

The rule (`Blend`), for the word w after the word v, where n counts the words and pairs seen:

    counts(w | v) = (n(v w) + PRIOR · n(w) / N) / (n(v) + PRIOR)   a pair's share, smoothed by the word's
    model'(w)     = model(w)                                        a word of the vocabulary
                  = model(<unk>) · n(w) / n(words the vocabulary lacks)   a learnt word it lacks
    p(w)          = (1 - WEIGHT) · model'(w) + WEIGHT · counts(w | v)

so <unk>'s probability is shared among the learnt words it stands for, and the counts add what
this person tends to type next (a cache of the text, as Kuhn and De Mori's). With nothing counted
p is the model's. The weights are set by measurement on held-out text (`bench/corpora.py`).
Nothing here touches a disk unless the app calls `save`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import write_text
from .errors import SettingError, UsageError
from .tokenizer import UNKNOWN, tokenize

LEARNED_FORMAT = 1  # of the file `WordCounts.save` writes
MAX_LEARNED_BYTES = 256 << 20  # a learnt-words file larger than this is refused unread
MAX_COUNT = 1 << 31  # a count in such a file: far past any person's typing, and no sum of them wraps int64


@dataclass(frozen=True)
class Blend:
    """How the counts are mixed with the model (see the module's rule)."""

    # Chosen on the validation blocks of training/corpora (bench/corpora.py's BLEND_GRID; the run
    # and its trials: bench/results/learned-blend-validation-amd-epyc-zen4.txt): keystrokes saved
    # moved by at most 0.6 points across the grid on either corpus, and a weight of 0.1 kept
    # validation perplexity within 1% of the grid's lowest on both.
    weight: float = 0.1  # the counts' share of each next word's probability
    prior: float = 2.0  # how many pairs the word's own frequency weighs as, after a word seen rarely

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 1:
            raise SettingError("weight", "from 0 to 1", self.weight)
        if not self.prior > 0:
            raise SettingError("prior", "above 0", self.prior)


BLEND = Blend()


class WordCounts:
    """Counts of the words a person typed and of each word's followers, over one vocabulary: words
    it holds as an array [vocab], the others (the person's own) by name. Safe to share between
    threads: adding takes a lock, and `Distribution.of` reads a consistent copy."""

    def __init__(self, vocabulary: Sequence[str] | Mapping[str, int]):
        # word -> id: a model's lexicon shares its own (a vocabulary's worth of work a text saved)
        self.index = vocabulary if isinstance(vocabulary, Mapping) else {w: i for i, w in enumerate(vocabulary)}
        self.known = np.zeros(len(self.index), np.int64)  # [vocab]: how often each word came
        self.unknown: dict[str, int] = {}  # words the vocabulary lacks, in order of first appearance
        self.pairs: dict[str, dict[str, int]] = {}  # word -> the words after it -> how often
        self.last: str | None = None  # the last word counted: the pair the next `add` continues
        self.size = 0  # words counted
        self.version = 0  # changed by every change: what a blend computed from these counts was computed from
        self._lock = threading.Lock()

    def add(self, tokens: Iterable[str], continues: bool = True) -> None:
        """Count `tokens` (the tokenizer's), continuing the text counted so far (`continues`: the
        first token follows the last one counted) or as a text of their own."""
        with self._lock:
            before = self.last if continues else None
            for token in tokens:
                if token == UNKNOWN:  # no text spells it; a model's own symbol is never a person's word
                    continue
                self._count(token, 1)
                if before is not None:
                    followers = self.pairs.setdefault(before, {})
                    followers[token] = followers.get(token, 0) + 1
                before = token
            self.last = before

    def _count(self, word: str, n: int) -> None:
        self.size += n
        self.version += 1
        i = self.index.get(word)
        if i is None:
            self.unknown[word] = self.unknown.get(word, 0) + n
        else:
            self.known[i] += n

    def clear(self) -> None:
        with self._lock:
            self.known[:] = 0
            self.unknown.clear()
            self.pairs.clear()
            self.last = None
            self.size = 0
            self.version += 1

    def save(self, path: Path) -> None:
        """Write the counts to `path` as JSON (see `as_json`), whole or not at all; UsageError, one
        line, where it cannot be written (the file as it was stays)."""
        try:
            write_text(Path(path), json.dumps(self.as_json(), ensure_ascii=False, separators=(",", ":")))
        except OSError as error:
            raise UsageError(f"cannot write learnt words to {path}: {error.strerror or error}") from None

    def as_json(self) -> dict:
        """{"fable_learned": 1, "words": {word: count}, "pairs": {word: {next word: count}}}: the
        words as the tokenizer cut them, so that another model reads them too."""
        with self._lock:
            words = {w: int(self.known[i]) for w, i in self.index.items() if self.known[i]} | self.unknown
            pairs = {word: dict(after) for word, after in self.pairs.items()}
        return {"fable_learned": LEARNED_FORMAT, "words": words, "pairs": pairs}

    def load(self, path: Path) -> None:
        """Add the counts of a file `save` wrote; UsageError, one line, for anything else."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_LEARNED_BYTES:
                raise UsageError(f"{path} is over {MAX_LEARNED_BYTES >> 20} MB; not a file of learnt words")
            found = json.loads(path.read_bytes().decode("utf-8"))
        except OSError as error:
            raise UsageError(f"cannot read learnt words from {path}: {error.strerror}") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise UsageError(f"{path} is not a file of learnt words (not JSON)") from None
        words, pairs = _checked(found, path)  # every value checked before any is counted
        with self._lock:
            for word, n in words.items():
                self._count(word, n)
            self.version += 1
            for word, after in pairs.items():
                followers = self.pairs.setdefault(word, {})
                for follower, n in after.items():
                    followers[follower] = followers.get(follower, 0) + n


class TextCounts:
    """The counts of a text that grows as a person types it: the words before its last space (the
    word after it may still change), added as the text grows, counted afresh when it changed
    some other way. `suggest` counts each text afresh with one; `Typing` keeps one."""

    def __init__(self, vocabulary: Sequence[str] | Mapping[str, int], tokenizer_version: int):
        self.counts = WordCounts(vocabulary)
        self.version = tokenizer_version
        self.counted = ""  # the text counted: up to and with a space (no token spans one)

    def update(self, text: str) -> WordCounts:
        cut = len(text)
        while cut and not text[cut - 1].isspace():
            cut -= 1
        if cut >= len(self.counted) and text.startswith(self.counted):
            self.counts.add(tokenize(text[len(self.counted) : cut], self.version))
        else:
            self.counts.clear()
            self.counts.add(tokenize(text[:cut], self.version))
        self.counted = text[:cut]
        return self.counts


def _checked(found: object, path: Path) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    if not isinstance(found, dict) or "fable_learned" not in found:
        raise UsageError(f"{path} is not a file of learnt words (no fable_learned key)")
    version = found["fable_learned"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1 or version > LEARNED_FORMAT:
        raise UsageError(f"{path} holds learnt words of format {version!r}; this fable reads format "
                         f"{LEARNED_FORMAT}: upgrade fable")  # fmt: skip
    words, pairs = found.get("words"), found.get("pairs")
    if (
        not _counts(words)
        or not _counts({w: 1 for w in pairs} if isinstance(pairs, dict) else None)
        or not all(_counts(after) for after in pairs.values())
    ):
        raise UsageError(f"{path}: words and pairs must map single tokens to counts from 1 to {MAX_COUNT:,}")
    return words, pairs  # type: ignore[return-value]


def _counts(found: object) -> bool:
    return isinstance(found, dict) and all(
        isinstance(w, str) and w and w != UNKNOWN and not any(c.isspace() for c in w)
        and isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_COUNT
        for w, n in found.items()
    )  # fmt: skip


@dataclass(frozen=True)
class Distribution:
    """The next word's probabilities: the vocabulary's [vocab] (a model's <unk> at 0: never
    offered), and the words it lacks that the person typed, with theirs."""

    known: np.ndarray  # [vocab] float64
    words: tuple[str, ...]  # learnt words the vocabulary lacks, in order of first appearance
    unknown: np.ndarray  # [len(words)] float64
    position: Mapping[str, int]  # each of `words` -> its index there

    @staticmethod
    def of(
        probabilities: np.ndarray,
        counts: Sequence[WordCounts],
        previous: str | None,
        unknown_id: int | None,
        blend: Blend = BLEND,
    ) -> Distribution:
        """The model's `probabilities` [vocab] (float64, changed in place) mixed with what `counts`
        saw (all of them added up), after the word `previous` (None: the text's first). It runs once
        a word as a person types, so it makes few arrays: a handful of numpy calls over the vocabulary."""
        model = probabilities
        unknown: dict[str, int] = {}
        followers: dict[str, int] = {}
        known: np.ndarray | None = None
        for c in counts:
            if not c.size:
                continue
            with c._lock:
                following = c.pairs.get(previous, {}) if previous is not None else {}
                if known is None:  # the first: copied whole, in C
                    known, unknown, followers = c.known.astype(np.float64), dict(c.unknown), dict(following)
                    continue
                known += c.known
                for word, n in c.unknown.items():
                    unknown[word] = unknown.get(word, 0) + n
                for word, n in following.items():
                    followers[word] = followers.get(word, 0) + n
        model_unk = 0.0
        if unknown_id is not None:
            model_unk, model[unknown_id] = float(model[unknown_id]), 0.0
        else:  # a model that cannot read a word it lacks: it is never typed after
            unknown.clear()
            followers = {w: n for w, n in followers.items() if w in counts[0].index}
        total = (0 if known is None else known.sum()) + sum(unknown.values())
        if total == 0:
            return Distribution(model, (), np.zeros(0), {})
        words = tuple(unknown)
        lacked = np.fromiter(unknown.values(), np.float64, len(words))
        after = sum(followers.values())
        share = blend.weight / (after + blend.prior)
        # (1 - WEIGHT) model + WEIGHT counts(w | v), the pairs' part added word by word below
        mixed_known = known * (share * blend.prior / total)
        mixed_known += model * (1 - blend.weight)
        # the model's share of a learnt word it lacks is <unk>'s, by the word's count among them
        unknown_model = (1 - blend.weight) * model_unk / lacked.sum() if words else 0.0
        mixed_unknown = lacked * (unknown_model + share * blend.prior / total)
        position = {w: i for i, w in enumerate(words)}
        index = counts[0].index
        for word, n in followers.items():
            if word in index:
                mixed_known[index[word]] += share * n
            else:
                mixed_unknown[position[word]] += share * n
        return Distribution(mixed_known, words, mixed_unknown, position)

    def probability(self, word: str, index: Mapping[str, int]) -> float:
        i = index.get(word)
        if i is not None:
            return float(self.known[i])
        j = self.position.get(word)
        return 0.0 if j is None else float(self.unknown[j])
