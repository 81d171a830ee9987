"""Tokens, vocabulary and windows: the rules that training and the runtime share.

Two versions of the rules exist; a model file records the one it was trained with, and the runtime
reads and writes its text with that one (docs/design.md, "Tokens and text").

- Version 1, the rnn-words tutorial's: lowercase; each of , . ? ! ; : " ' ( ) is a token; any
  other run of non-space characters is one. Text out is the tokens joined by spaces.
- Version 2: lowercase, curly quotes and apostrophes made straight, then a token is
  - a word of letters, digits and underscores, kept whole across inner apostrophes and hyphens
    ("don't", "recipient's", "well-known", "__init__");
  - a number with decimal points or thousands commas ("2.0", "3.12.1", "1,000");
  - an abbreviation of single letters and periods ("e.g.", "u.s.a.");
  - or any other single character (". , ; ( ) [ ] " ' - / = ..."), so "..." is three tokens.
  Text out is joined as prose is written (see `Detokenizer`).
The fable's 204 tokens are the same under both.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Sequence

import numpy as np

# Bump when tokenize() changes what it returns: models record the version they were trained with.
TOKENIZER_VERSION = 2
TOKENIZER_VERSIONS = (1, 2)  # what this runtime reads
# The token that stands for every word too rare to keep (fable-train --min-count/--max-vocab).
# Neither version can make it from text: version 2 splits "<" and ">" off, and version-1 models
# never had one.
UNKNOWN = "<unk>"


def unknown_id(vocabulary: Sequence[str]) -> int | None:
    """The id of <unk> in `vocabulary`, or None: a model without one refuses unknown words."""
    try:
        return vocabulary.index(UNKNOWN)
    except ValueError:
        return None


PUNCTUATION = ",.?!;:\"'()"  # version 1's marks
_V1_PUNCT = re.escape(PUNCTUATION)
_V1_TOKEN = re.compile(rf"[{_V1_PUNCT}]|[^\s{_V1_PUNCT}]+")  # a mark alone, or a run of anything else

_STRAIGHT = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",  # ‘ ’ ‚ ‛ ′
     "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',  # “ ” „ ‟ ″
     "\u00ab": '"', "\u00bb": '"'}  # « »
)  # fmt: skip
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)*|\d+(?:\.\d+)+"
_ABBREVIATION = r"(?:[^\W\d_]\.){2,}"  # e.g. i.e. u.s.a.
_PART = rf"(?:{_NUMBER}|\w+)"
_V2_TOKEN = re.compile(rf"{_ABBREVIATION}|{_PART}(?:['-]{_PART})*|[^\w\s]")

# Text out, version 2: marks that hug the word before them, and those that hug the word after.
CLOSING = frozenset(",.;:?!%)]}")
OPENING = frozenset("([{")
QUOTES = frozenset("\"'")  # the first of a pair opens, the next closes


def normalize(text: str, version: int = TOKENIZER_VERSION) -> str:
    """The text the tokens are cut from: lowercased, and from version 2 with straight quotes."""
    text = text.lower()
    return text.translate(_STRAIGHT) if version >= 2 else text


def token_pattern(version: int = TOKENIZER_VERSION) -> re.Pattern[str]:
    """What one token of `normalize(text, version)` matches."""
    return _V2_TOKEN if version >= 2 else _V1_TOKEN


def tokenize(text: str, version: int = TOKENIZER_VERSION) -> list[str]:
    """The tokens of `text` under the rules of `version` (see the module's docstring)."""
    return token_pattern(version).findall(normalize(text, version))


class Detokenizer:
    """Joins tokens back into text one at a time, so that streamed words read as the whole text.

    Version 2: no space before , . ; : ? ! % ) ] } or a closing quote, none after ( [ { or an
    opening quote; quotes alternate between opening and closing. Version 1: a space between every
    two tokens, as the tutorial printed them. `before`: the tokens already shown (the prompt), so
    that a quote opened there is closed here."""

    def __init__(self, version: int = TOKENIZER_VERSION, before: Iterable[str] = ()):
        self.version = version
        self.open_quotes: set[str] = set()
        self.started = False
        self.after_opening = False  # the last token was ( [ { or an opening quote
        for token in before:
            self.piece(token)

    def piece(self, token: str) -> str:
        """`token` with the space that goes before it, if any."""
        if self.version < 2:
            space = self.started
        else:
            opens = token in OPENING
            closes = token in CLOSING
            if token in QUOTES:
                closes = token in self.open_quotes
                opens = not closes
                (self.open_quotes.discard if closes else self.open_quotes.add)(token)
            space = self.started and not closes and not self.after_opening
            self.after_opening = opens
        self.started = True
        return " " + token if space else token


def detokenize(tokens: Sequence[str], version: int = TOKENIZER_VERSION, before: Iterable[str] = ()) -> str:
    """`tokens` as text (`Detokenizer`), without a leading space."""
    joiner = Detokenizer(version, before)
    return "".join(joiner.piece(token) for token in tokens).lstrip(" ")


def build_vocabulary(tokens: Sequence[str]) -> list[str]:
    """Symbols by frequency, ties in order of first occurrence (index = token id)."""
    return [word for word, _ in collections.Counter(tokens).most_common()]


def make_windows(ids: Sequence[int] | np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every run of `window` ids and the id after it: contexts [N, window], labels [N] (int64)."""
    ids = np.asarray(ids, dtype=np.int64)
    count = len(ids) - window
    if count <= 0:
        return np.zeros((0, window), np.int64), np.zeros(0, np.int64)
    contexts = np.lib.stride_tricks.sliding_window_view(ids, window)[:count]
    return contexts.copy(), ids[window:].copy()  # owned and writable, not views of `ids`
