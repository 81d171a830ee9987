"""Decoders: feed each sequence of a batch its next word, get every sequence's next-word logits.

A backend supplies kernels, the arithmetic (onnxruntime's session, or numpy); a decoder owns the
bookkeeping of the windows in flight, the same for every backend and file. Every decoder takes a
batch: a file whose rows are computed on their own (`ModelMetadata.batched`) runs the whole batch
in one kernel call; older files run one kernel per sequence, one after the other. A decoder
belongs to one thread at a time; the pool hands them out.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from .cache import TextCache
from .contract import GRAPH_STEP, GRAPH_STREAM, CacheSettings, ModelMetadata


class StepKernel(Protocol):
    """One LSTM step of the step graph for a batch of sequences (docs/design.md, "Fast decoding")."""

    logits: np.ndarray  # [batch, window, vocab]: a row per window in flight, written by `run`

    def run(self, tokens: np.ndarray) -> None:
        """Advance every row's state by its sequence's newest word (ids [batch, 1]) and write the logits."""

    def zero_row(self, row: int) -> None:
        """Put `row` of every sequence's state back to the zero state, for the next `run`."""

    def reset(self) -> None:
        """Every row to the zero state."""

    def zero_sequences(self, sequences: np.ndarray) -> None:
        """Every row of these sequences (batch indices) back to the zero state."""

    def top(self) -> np.ndarray:
        """The top layer's output after the last `run`: a view [batch, rows, hidden]."""


class WindowKernel(Protocol):
    def run(self, ids: np.ndarray) -> np.ndarray:
        """Logits [batch, vocab] of the word after each window of `ids` [batch, window], from the zero state."""


class Decoder(Protocol):
    def reset(self) -> None:
        """Every sequence back to no words read."""

    def feed(self, tokens: np.ndarray) -> np.ndarray:
        """Each sequence's next word, ids [batch, 1] → logits [batch, vocab] of the word after the
        last `window` words fed (fewer at the start: the step graph reads them from the zero state),
        or after all of them (a stream graph). A view that the next feed overwrites."""

    def restart(self, sequences: np.ndarray) -> None:
        """These sequences (batch indices) back to no words read, the others as they are: a
        shorter context in a batch starts once the longer ones reach its first word."""


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

    def feed(self, tokens: np.ndarray) -> np.ndarray:
        self._kernel.run(tokens)
        self._fed += 1
        row = self._fed % self.window
        self._kernel.zero_row(row)  # the completed window's row starts the next window
        return self._kernel.logits[:, row]

    def restart(self, sequences: np.ndarray) -> None:
        _whole_windows(sequences)


class StreamDecoder:
    """One LSTM step per word on one row of state per sequence, never zeroed: the logits rest on
    every word fed since the reset. With `cache`, they are mixed with what followed similar
    states earlier (`fable.cache`), as logits (log p up to a constant per row)."""

    def __init__(self, kernel: StepKernel, cache: TextCache | None):
        self._kernel = kernel
        self._cache = cache

    def reset(self) -> None:
        self._kernel.reset()
        if self._cache is not None:
            self._cache.reset()

    def restart(self, sequences: np.ndarray) -> None:
        self._kernel.zero_sequences(sequences)
        if self._cache is not None:
            self._cache.restart(sequences)

    def feed(self, tokens: np.ndarray) -> np.ndarray:
        self._kernel.run(tokens)
        logits = self._kernel.logits[:, 0]  # [batch, vocab]
        if self._cache is None:
            return logits
        return self._cache.mix(logits, self._kernel.top()[:, 0], tokens[:, 0])


class WindowDecoder:
    """The plain decode: the whole window from the zero state per word. Reference and baseline."""

    def __init__(self, kernel: WindowKernel, window: int, batch: int):
        self._kernel = kernel
        self._ids = np.zeros((batch, window), np.int64)

    def reset(self) -> None:
        self._ids[:] = 0

    def feed(self, tokens: np.ndarray) -> np.ndarray:
        self._ids[:, :-1] = self._ids[:, 1:]
        self._ids[:, -1:] = tokens
        return self._kernel.run(self._ids)

    def restart(self, sequences: np.ndarray) -> None:
        _whole_windows(sequences)


class RowByRow:
    """A batch for a file whose rows may not be computed together: a decoder of one per sequence."""

    def __init__(self, decoders: list[Decoder], vocab: int):
        self._decoders = decoders
        self._logits = np.zeros((len(decoders), vocab), np.float32)

    def reset(self) -> None:
        for decoder in self._decoders:
            decoder.reset()

    def feed(self, tokens: np.ndarray) -> np.ndarray:
        for row, decoder in enumerate(self._decoders):
            self._logits[row] = decoder.feed(tokens[row : row + 1])[0]
        return self._logits

    def restart(self, sequences: np.ndarray) -> None:
        for row in sequences.tolist():
            self._decoders[row].reset()


def _whole_windows(sequences: np.ndarray) -> None:
    if len(sequences):  # the engine gives a window model's contexts all its window of words
        raise ValueError("a window model restarts whole batches only")


def make_decoder(
    meta: ModelMetadata,
    kernel: Callable[[int], StepKernel | WindowKernel],
    batch: int,
    cache: CacheSettings | None = None,
) -> Decoder:
    """A decoder of `batch` sequences over kernels made by `kernel(rows)`; `cache`: a stream
    model's cache of the text so far, None for none."""
    window = meta.config.window

    def of(rows: int) -> Decoder:
        if meta.graph == GRAPH_STREAM:
            texts = None if cache is None else TextCache(cache, rows, meta.config.hidden)
            return StreamDecoder(kernel(rows), texts)
        if meta.graph == GRAPH_STEP:
            return StepDecoder(kernel(rows), window)
        return WindowDecoder(kernel(rows), window, rows)

    if meta.batched or batch == 1:
        return of(batch)
    return RowByRow([of(1) for _ in range(batch)], len(meta.vocabulary))


class DecoderPool:
    """Decoders kept for reuse by batch size, so a generation allocates nothing once warm; each is
    lent to one caller at a time, which makes a model safe to share between threads. Only the
    KEEP_SIZES batch sizes returned most recently keep their idle decoders: each holds logits
    [batch, window, vocab], and an app that batches whatever arrives would otherwise keep one
    for every size it ever met."""

    KEEP_SIZES = 4

    def __init__(
        self,
        meta: ModelMetadata,
        kernel: Callable[[int], StepKernel | WindowKernel],
        cache: CacheSettings | None = None,
    ):
        self._meta = meta
        self._kernel = kernel
        self.cache = cache
        self._idle: OrderedDict[int, list[Decoder]] = OrderedDict()  # least recently returned size first
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def decoder(self, batch: int) -> Iterator[Decoder]:
        """A decoder of `batch` sequences, reset, for the block."""
        with self._lock:
            idle = self._idle.get(batch)
            decoder = idle.pop() if idle else None
        if decoder is None:
            decoder = make_decoder(self._meta, self._kernel, batch, self.cache)
        decoder.reset()
        try:
            yield decoder
        finally:
            with self._lock:
                self._idle.setdefault(batch, []).append(decoder)
                self._idle.move_to_end(batch)
                while len(self._idle) > self.KEEP_SIZES:
                    self._idle.popitem(last=False)

    def idle_sizes(self) -> list[int]:
        """The batch sizes with idle decoders kept, least recently returned first."""
        with self._lock:
            return [size for size, idle in self._idle.items() if idle]
