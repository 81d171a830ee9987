"""Reading what a user typed into a model's word ids, and saying plainly what went wrong.

Counts in errors are of words as typed (runs of non-space), and when the tokenizer cut a typed
word into several tokens, the error shows how."""

from __future__ import annotations

import bisect
import difflib
import itertools
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from .errors import PromptError, UnknownWordError, log
from .tokenizer import UNKNOWN, normalize, token_pattern, tokenize

_TYPED = re.compile(r"\S+")


@dataclass(frozen=True)
class Reading:
    """A text cut into tokens. Which typed word each token came from is worked out only when asked
    (for an error): reading runs on every keystroke."""

    text: str  # normalized
    tokens: list[str]
    version: int  # of the tokenizer

    @property
    def typed(self) -> list[str]:
        """The text's words as typed (runs of non-space), normalized, up to the last token's."""
        return self._layout[0]

    @property
    def origin(self) -> list[int]:
        """For each token, the index of its word in `typed`."""
        return self._layout[1]

    @cached_property
    def _layout(self) -> tuple[list[str], list[int]]:
        spans = [m.span() for m in _TYPED.finditer(self.text)]
        starts = [start for start, _ in spans]
        found = itertools.islice(token_pattern(self.version).finditer(self.text), len(self.tokens))
        origin = [bisect.bisect_right(starts, m.start()) - 1 for m in found]
        return [self.text[start:end] for start, end in spans[: origin[-1] + 1 if origin else 0]], origin

    def split(self, token_index: int) -> str:
        """How the typed word of a token was cut, or '' when the token is the whole word."""
        word = self.origin[token_index]
        parts = [t for t, w in zip(self.tokens, self.origin) if w == word]
        if len(parts) == 1:
            return ""
        return f"{show(self.typed[word], 30)} is read as {_tokens(parts)}"

    def without_last(self) -> Reading:
        """The reading without its last token (and without its typed word when that was all of it)."""
        return Reading(self.text, self.tokens[:-1], self.version)


def read(text: str, version: int) -> Reading:
    """`text` cut into tokens by the rules of tokenizer `version`."""
    normalized = normalize(text, version)
    return Reading(normalized, token_pattern(version).findall(normalized), version)


def split_partial(text: str, reading: Reading) -> tuple[Reading, str]:
    """The text's finished tokens, and the word still being typed: the last word when nothing
    follows it (a word the model knows too: "a" may yet be "approach"), '' after a space or a mark."""
    tokens = reading.tokens
    if tokens and not text[-1].isspace() and tokens[-1][-1].isalnum():
        return reading.without_last(), tokens[-1]
    return reading, ""


def tail_words(text: str, count: int) -> str:
    """The last `count` runs of non-space in `text`, joined by spaces, without copying the text
    before them (an editor may ask on every keystroke of a long document)."""
    size = 32 * count
    while True:
        start = max(0, len(text) - size)
        words = text[start:].split()
        if start == 0 or len(words) > count:  # the first may be cut at `start`: more than `count`
            return " ".join(words[-count:]) if count else ""
        size *= 4


class Lexicon:
    """A model's vocabulary and tokenizer: from typed text to ids and back."""

    def __init__(self, vocabulary: Sequence[str], version: int):
        self.vocabulary = tuple(vocabulary)
        self.version = version  # of the tokenizer the model was trained with
        self.index = {word: i for i, word in enumerate(self.vocabulary)}
        self.unknown_id = self.index.get(UNKNOWN)  # None: a model that refuses unknown words
        # The hashes of the unknown words named so far (see `notice`): a hash, not the word, so a
        # word of megabytes costs what a short one does; a collision only leaves a word unnamed.
        self.noticed: set[int] = set()
        self._noticing = threading.Lock()

    def read(self, text: str, last_words: int | None = None) -> Reading:
        """`text` read by this model's tokenizer; only its `last_words` typed words when given (each
        typed word makes at least one token, so that many words hold as many tokens)."""
        return read(text if last_words is None else tail_words(text, last_words), self.version)

    def tokens(self, text: str) -> list[str]:
        return tokenize(text, self.version)

    def lookup(self, tokens: Sequence[str]) -> list[int | None]:
        """Each token's id; <unk>'s for a word not in the vocabulary, or None without one."""
        return [self.index.get(token, self.unknown_id) for token in tokens]

    def ids(self, reading: Reading, what: str, least: int, window: int, last: int | None = None) -> list[int]:
        """The ids of the reading's tokens (of its `last` ones, when given); PromptError if it has
        fewer than `least`. Unknown words are refused, or read as <unk> where the model has one,
        with a notice of those not named before."""
        if len(reading.tokens) < least:
            unit = "words" if len(reading.tokens) == len(reading.typed) else "tokens"
            if least < window:  # a stream model: it reads as few words as it is given
                raise PromptError(
                    f"the {what} {_size(reading)}; give at least {least} {unit[:-1] if least == 1 else unit}"
                )
            raise PromptError(
                f"the {what} {_size(reading)}; this model reads {window} {unit} at a time, give at least {least}"
            )
        first = max(0, len(reading.tokens) - last) if last is not None else 0
        unknown = [i for i in range(first, len(reading.tokens)) if reading.tokens[i] not in self.index]
        if unknown and self.unknown_id is None:
            raise self.unknown_error(reading, unknown)
        if unknown:
            self.notice(reading.tokens[i] for i in unknown)
        return self.lookup(reading.tokens[first:])  # type: ignore[return-value]  # None only where refused above

    def notice(self, words: Iterable[str]) -> None:
        """Say on the `fable` logger, at INFO, which of `words` it reads as <unk>, naming only those
        it has not named before: an app that suggests on every keystroke reads a word many times,
        and its log should get one line for it, not one a keystroke."""
        if len(self.noticed) >= NOTICED:
            return
        with self._noticing:  # one model serves many threads: each word named once among them
            new = [w for w in dict.fromkeys(words) if hash(w) not in self.noticed]
            room = NOTICED - len(self.noticed)
            if not new or room <= 0:
                return
            last = "; no more unknown words will be named" if len(new) >= room else ""
            new = new[:room]  # named once, so never more than it remembers
            self.noticed.update(hash(w) for w in new)
        log.info("fable: %s not in the model's vocabulary, read as %s%s", _list(new), UNKNOWN, last)

    def unknown_error(self, reading: Reading, positions: list[int]) -> UnknownWordError:
        first: dict[str, int] = {}  # each unknown token once, at its first place
        for i in positions:
            first.setdefault(reading.tokens[i], i)
        shown = itertools.islice(first.values(), SHOWN)  # how a word was cut reads the whole text: only for these
        return unknown_words(list(first), self.vocabulary, [reading.split(i) for i in shown])


# Unknown words a Lexicon remembers having named. A server's clients can send any number of
# distinct words: remembering them all would grow without end, and naming each new one after the
# memory is full would let them fill the log again, so past this many it names no more.
NOTICED = 10_000
SHOWN = 5  # unknown words an error names, with how each was cut and its closest words; the rest are counted
CANDIDATES = 5_000  # known words compared with each word shown, the most frequent first: a bound on difflib


def unknown_words(unknown: list[str], vocabulary: Sequence[str], splits: Sequence[str] = ()) -> UnknownWordError:
    """The error for words a model does not know, with the closest words of those it names (the
    first SHOWN), and how each typed word was cut when it was (`splits`, one per word named, ''
    when whole). Its work is bounded by what it shows, however many unknown words a text holds."""
    splits = list(splits) or [""] * SHOWN
    suggestions = {word: closest(word, vocabulary) for word in unknown[:SHOWN]}
    parts = []
    for word, split in zip(unknown[:SHOWN], splits):
        notes = [split] if split else []
        notes += [f"closest: {', '.join(suggestions[word])}"] if suggestions[word] else []
        parts.append(f"{show(word)} ({'; '.join(notes)})" if notes else show(word))
    more = f" and {len(unknown) - SHOWN} more" if len(unknown) > SHOWN else ""
    noun = "word" if len(unknown) == 1 else "words"
    return UnknownWordError(
        f"unknown {noun} {'; '.join(parts)}{more}: the model knows only the {len(vocabulary)} words of its corpus",
        unknown,
        suggestions,
    )


def closest(word: str, vocabulary: Sequence[str]) -> list[str]:
    """Up to 3 known words like `word` (difflib's ratio of 0.6 or more), among the CANDIDATES most
    frequent of a length that can reach 0.6: the ratio is at most 2·shorter / (both lengths), so
    only lengths from 3/7 to 7/3 of the word's can, and a word of thousands of characters costs nothing."""
    low, high = 3 * len(word) / 7, 7 * len(word) / 3
    candidates = itertools.islice((known for known in vocabulary if low <= len(known) <= high), CANDIDATES)
    return difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)


def show(word: str, limit: int = 40) -> str:
    """A word quoted on one line, control characters escaped, cut to at most `limit` characters
    shown (escapes count: one odd character can take ten)."""
    shown = repr(word)
    cut = word[:limit]
    while len(shown) > limit + 2:  # the quotes are extra
        cut = cut[:-1]
        shown = repr(cut + "…")
    return shown


def _size(reading: Reading) -> str:
    if not reading.tokens:
        return "is empty"
    typed = len(reading.typed)
    said = f"has {typed} word{'s' if typed != 1 else ''}"
    if typed != len(reading.tokens):
        said += f", read as {len(reading.tokens)} tokens ({_tokens(reading.tokens)})"
    return said


def _tokens(tokens: list[str], budget: int = 60) -> str:
    """Tokens with a space between them, as they read, within about `budget` characters; ones that
    would not print plainly on one line are quoted and escaped."""
    shown: list[str] = []
    for token in tokens:
        piece = token if token.isprintable() and len(token) <= 20 else show(token, 20)
        if shown and sum(len(p) + 1 for p in shown) + len(piece) > budget:
            return " ".join(shown) + f" and {len(tokens) - len(shown)} more"
        shown.append(piece)
    return " ".join(shown)


def _list(words: list[str]) -> str:
    more = f" and {len(words) - SHOWN} more" if len(words) > SHOWN else ""
    return ", ".join(show(w) for w in words[:SHOWN]) + more + (" is" if len(words) == 1 else " are")
