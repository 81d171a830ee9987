"""A share of a corpus kept out of training, to measure what a model predicts of text it never saw.

The held-out part is `HOLDOUT_BLOCKS` contiguous blocks, the end of each tenth of the text, so it
samples the whole document (its end is often unlike its beginning) and each block is long enough
to hold whole windows. A window lies inside one block of one part: none straddles the two, and no
held-out word is ever a training window's context or label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fable.tokenizer import UNKNOWN, make_windows

HOLDOUT_BLOCKS = 10
UNSEEN = -1  # the id of a held-out word that the training part's vocabulary lacks (and has no <unk> for)
MAX_HOLDOUT = 0.5

Ranges = tuple[tuple[int, int], ...]  # [start, end) of tokens


def unknown_id(vocabulary: Sequence[str]) -> int | None:
    """The id of <unk> in a training vocabulary; None where every word was kept."""
    return vocabulary.index(UNKNOWN) if UNKNOWN in vocabulary else None


@dataclass(frozen=True)
class Split:
    train: Ranges
    heldout: Ranges

    def part(self, name: str) -> Ranges:
        return {"train": self.train, "heldout": self.heldout}[name]


def split(tokens: int, share: float, blocks: int = HOLDOUT_BLOCKS) -> Split:
    """The last `share` of each of `blocks` equal stretches of `tokens` tokens held out (none for 0)."""
    if not 0 <= share <= MAX_HOLDOUT:
        raise ValueError(f"a held-out share is from 0 to {MAX_HOLDOUT}, not {share}")
    if share == 0:
        return Split(((0, tokens),), ())
    edges = np.linspace(0, tokens, blocks + 1).round().astype(int)
    train, heldout = [], []
    for start, end in zip(edges[:-1], edges[1:]):
        cut = end - int(round(share * (end - start)))
        if cut > start:
            train.append((int(start), int(cut)))
        if end > cut:
            heldout.append((int(cut), int(end)))
    return Split(tuple(train), tuple(heldout))


def part_windows(
    ids: np.ndarray, holdout: float, window: int, part: str, unknown: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """contexts [N, window] and labels [N] of one part ("train" or "heldout") of a text of `ids`
    split by `holdout`: every window inside one of the part's blocks, but those with an UNSEEN
    word (a model cannot read it, nor be asked for it), and in the held-out part those whose next
    word is <unk> (`unknown`), which no app is ever offered."""
    contexts, labels = [], []
    for start, end in split(len(ids), holdout).part(part):
        if end - start > window:
            c, y = make_windows(ids[start:end], window)
            contexts.append(c)
            labels.append(y)
    if not contexts:
        return np.zeros((0, window), np.int64), np.zeros(0, np.int64)
    contexts_all, labels_all = np.concatenate(contexts), np.concatenate(labels)
    keep = (contexts_all != UNSEEN).all(axis=1) & (labels_all != UNSEEN)
    if part == "heldout" and unknown is not None:
        keep &= labels_all != unknown
    return contexts_all[keep], labels_all[keep]
