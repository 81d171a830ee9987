"""A share of a corpus kept out of training, to measure what a model predicts of text it never saw,
and the windows of each part as positions in the corpus's id stream.

The held-out part is `HOLDOUT_BLOCKS` contiguous blocks, the end of each tenth of the text, so it
samples the whole document (its end is often unlike its beginning) and each block is long enough
to hold whole windows. Its blocks alternate between two parts: the first, third, fifth, ... are
the validation part, on which training makes its choices (when to stop, which weights to keep,
settings), and the others the test part, read once at the end for the figures a user reads: a
figure from the part that chose is tuned to it. A window lies inside one block of one part: none
straddles two, and no held-out word is ever a training window's context or label.

Windows are never stored: a window is the position of its first word (`window_starts`), and the
ids of any set of them are gathered when needed (`gather`), so a corpus of millions of tokens
costs 4 bytes a token and 8 a window start, not a row of ids per window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOLDOUT_BLOCKS = 10
UNSEEN = -1  # the id of a held-out word that the training part's vocabulary lacks (and has no <unk> for)
MAX_HOLDOUT = 0.5

Ranges = tuple[tuple[int, int], ...]  # [start, end) of tokens


@dataclass(frozen=True)
class Split:
    train: Ranges
    validation: Ranges
    test: Ranges

    @property
    def heldout(self) -> Ranges:
        return tuple(sorted(self.validation + self.test))

    def part(self, name: str) -> Ranges:
        return {"train": self.train, "validation": self.validation, "test": self.test, "heldout": self.heldout}[name]

    def share(self, name: str) -> float:
        """How much of the text one part is: the test part is about half of `--holdout`."""
        tokens = sum(end - start for start, end in self.train + self.heldout)
        return sum(end - start for start, end in self.part(name)) / tokens if tokens else 0.0


def split(tokens: int, share: float, blocks: int = HOLDOUT_BLOCKS) -> Split:
    """The last `share` of each of `blocks` equal stretches of `tokens` tokens held out (none for 0)."""
    if not 0 <= share <= MAX_HOLDOUT:
        raise ValueError(f"a held-out share is from 0 to {MAX_HOLDOUT}, not {share}")
    if share == 0:
        return Split(((0, tokens),), (), ())
    edges = np.linspace(0, tokens, blocks + 1).round().astype(int)
    train, heldout = [], []
    for start, end in zip(edges[:-1], edges[1:]):
        cut = end - int(round(share * (end - start)))
        if cut > start:
            train.append((int(start), int(cut)))
        if end > cut:
            heldout.append((int(cut), int(end)))
    return Split(tuple(train), tuple(heldout[0::2]), tuple(heldout[1::2]))


def window_starts(ids: np.ndarray, holdout: float, window: int, part: str, unknown: int | None) -> np.ndarray:
    """int64 [N]: where each window of one part ("train", "validation", "test", or "heldout": the
    last two together) of a text of `ids` split by `holdout` begins: every window of `window` ids and the one after them inside one of the part's
    blocks, but those with an UNSEEN word (a model cannot read it, nor be asked for it), and in a
    held-out part those whose next word is <unk> (`unknown`), which no app is ever offered."""
    ranges = [
        np.arange(start, end - window) for start, end in split(len(ids), holdout).part(part) if end - start > window
    ]
    starts = np.concatenate(ranges) if ranges else np.zeros(0, np.int64)
    unseen = np.concatenate([[0], np.cumsum(ids == UNSEEN)])  # [tokens + 1]: UNSEEN ids before each position
    keep = unseen[starts + window + 1] == unseen[starts]
    if part != "train" and unknown is not None:
        keep &= ids[starts + window] != unknown
    return starts[keep]


def gather(ids: np.ndarray, starts: np.ndarray, window: int, dtype: type = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """The windows that begin at `starts` [N]: contexts [N, window] and next-word labels [N]."""
    rows = ids[np.asarray(starts)[:, None] + np.arange(window + 1)].astype(dtype, copy=False)
    return np.ascontiguousarray(rows[:, :window]), np.ascontiguousarray(rows[:, window])


def part_windows(
    ids: np.ndarray, holdout: float, window: int, part: str, unknown: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """contexts [N, window] and labels [N] of every window of one part (`window_starts`), gathered."""
    return gather(ids, window_starts(ids, holdout, window, part, unknown), window)


def even(count: int, most: int) -> np.ndarray:
    """Indices of an even sample of at most `most` of `count` items (all of them when they fit)."""
    return np.unique(np.linspace(0, count - 1, min(most, count)).round().astype(np.int64))


def even_sample(starts: np.ndarray, most: int) -> np.ndarray:
    """The windows an evaluation reads of a part: an even sample of at most `most` of its `starts`."""
    return starts[even(len(starts), most)]
