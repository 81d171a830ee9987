"""Keystrokes saved: what a keyboard that shows a model's suggestions spares the person typing.

The rule of presage's simulator, the measure of the field's predictive keyboards: before each
letter of a word the keyboard shows the SHOWN likeliest words that start with the letters typed so
far (none typed: the next word), ranked as `suggest` ranks them. When the word is among them, one
key takes it with the space after it; otherwise the person types the next letter. Without
suggestions a word costs its letters and a space (a mark too: each token is typed with one key
after it). Keystrokes saved = 1 - keys with suggestions / keys without. A word the model cannot
offer (unknown, <unk>) costs all its keys.

The suggestions before each letter all come from the one distribution of the word after the text
so far (the letters typed only filter it), so a word's cost is read off that distribution:
a word's rank among the words that share each of its prefixes.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from .prompt import read, split_partial

SHOWN = 3  # suggestions on screen before each letter, as in presage's simulator


def keys_without(word: str) -> int:
    """A word typed letter by letter, then the key that ends it."""
    return len(word) + 1


class Keyboard:
    """Keystrokes of words typed with a model's suggestions, over one vocabulary: the words in
    alphabetical order, so that the words that start with a prefix are one stretch of it."""

    def __init__(self, vocabulary: Sequence[str], tokenizer_version: int):
        self.vocabulary = list(vocabulary)
        self.tokenizer_version = tokenizer_version  # of the model: which prefixes `suggest` completes
        self.order = np.array(sorted(range(len(vocabulary)), key=self.vocabulary.__getitem__), np.int64)  # [vocab]
        self.sorted = [self.vocabulary[i] for i in self.order.tolist()]
        self.index = set(self.vocabulary)
        self._stretches: dict[str, list[tuple[int, int] | None]] = {}

    def keys(self, above: np.ndarray, word: str, learnt_above: Sequence[str] = ()) -> int:
        """Keystrokes of `word` where `above` [vocab] marks the vocabulary's words shown before it
        (scored higher, or tied and earlier in the vocabulary; never a model's <unk>) and
        `learnt_above` the learnt words the vocabulary lacks that are (`fable.learned`)."""
        shown_before = np.concatenate([[0], np.cumsum(above[self.order])])  # [vocab + 1], alphabetical
        for typed, stretch in enumerate(self.stretches(word)):
            if stretch is None:
                continue
            prefix = word[:typed]
            learnt = sum(1 for w in learnt_above if w.startswith(prefix)) if learnt_above else 0
            if shown_before[stretch[1]] - shown_before[stretch[0]] + learnt < SHOWN:
                return typed + 1  # the letters typed, and the key that takes the word
        return keys_without(word)

    def stretches(self, word: str) -> list[tuple[int, int] | None]:
        """For each prefix of `word` short of the whole word (none typed first): the stretch
        [first, last) of the alphabetical vocabulary that starts with it, or None where `suggest`
        cannot take the prefix for the word being typed ("don'" reads as "don" and a mark):
        nothing is counted as shown there."""
        found = self._stretches.get(word)
        if found is None:
            found = [
                self.stretch(word[:typed]) if self._completes(word[:typed]) else None for typed in range(len(word))
            ]
            if word in self.index:  # a learnt word's are worked out each time: text brings any number
                self._stretches[word] = found  # a race only computes the same list twice
        return found

    def _completes(self, prefix: str) -> bool:
        """Whether `suggest` reads `prefix`, typed after a space, as one word being typed."""
        if not prefix:
            return True
        before, partial = split_partial(prefix, read(prefix, self.tokenizer_version))
        return partial == prefix and not before.tokens

    def stretch(self, prefix: str) -> tuple[int, int]:
        """[first, last) of the words in alphabetical order (`order`) that start with `prefix`."""
        first = bisect.bisect_left(self.sorted, prefix)
        return first, bisect.bisect_left(self.sorted, prefix + "\U0010ffff", first)
