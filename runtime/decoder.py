"""Decoders: feed words one at a time, get the next-word logits back. The same for every backend.

A backend supplies the kernel that does the arithmetic (onnxruntime's session, or numpy); the
decoder owns the bookkeeping of the windows in flight. Each decoder belongs to one thread at a
time; the kernel's buffers are its own, the weights and session underneath may be shared.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from . import contract
from .contract import ModelMetadata


def batches(meta: ModelMetadata) -> bool:
    """Whether the file's graph decodes a batch of sequences at once: step graphs from format 2."""
    return meta.graph == contract.GRAPH_STEP and meta.format_version >= contract.BATCHED_SINCE


class StepKernel(Protocol):
    """One LSTM step of the step graph for a batch of sequences (docs/design.md, "Fast decoding")."""

    logits: np.ndarray  # [batch, window, vocab]: a row per window in flight, written by `run`

    def run(self, tokens: int | np.ndarray) -> None:
        """Advance every row's state by the newest word (one id, or [batch, 1]) and write the logits."""

    def zero_row(self, row: int) -> None:
        """Put `row` of every sequence's state back to the zero state, for the next `run`."""

    def reset(self) -> None:
        """Every row to the zero state."""


class WindowKernel(Protocol):
    def run(self, ids: np.ndarray) -> np.ndarray:
        """Logits [vocab] of the word after the window `ids` [window], from the zero state."""


class StepDecoder:
    """One batched LSTM step per word: after the n-th word (from 1), row n mod window has read the
    last `window` words; its logits are the answer and it starts the next window from zero."""

    def __init__(self, kernel: StepKernel, window: int):
        self.window = window
        self._kernel = kernel
        self._fed = 0

    def reset(self) -> None:
        self._kernel.reset()
        self._fed = 0

    def feed(self, token: int) -> np.ndarray:
        """Logits [vocab] for the window that ends with `token`, valid once `window` words were fed
        (fewer: the words fed so far, read from the zero state). A view the next feed overwrites."""
        return self.feed_batch(token)[0]

    def feed_batch(self, tokens: int | np.ndarray) -> np.ndarray:
        """`feed` for every sequence of the batch at once: tokens [batch, 1] → logits [batch, vocab]."""
        self._kernel.run(tokens)
        self._fed += 1
        row = self._fed % self.window
        self._kernel.zero_row(row)  # the completed window's row starts the next window
        return self._kernel.logits[:, row]


class WindowDecoder:
    """The plain decode: the whole window from the zero state per word. Reference and baseline."""

    def __init__(self, kernel: WindowKernel, window: int):
        self.window = window
        self._kernel = kernel
        self._ids = np.zeros(window, np.int64)

    def reset(self) -> None:
        self._ids[:] = 0

    def feed(self, token: int) -> np.ndarray:
        """Logits [vocab] for the last `window` words fed (a view the next feed overwrites)."""
        self._ids[:-1] = self._ids[1:]
        self._ids[-1] = token
        return self._kernel.run(self._ids)


Decoder = StepDecoder | WindowDecoder
