"""Word ids in, word ids out: a model file's decoders and the one loop that decodes every batch.

A single prompt is a batch of one; more than `MAX_BATCH` prompts go in turns. Each prompt samples
from its own stream, so a batch gives every prompt the words it would get alone (rows are
computed on their own: docs/design.md, "Batches"). `Model` adds text on top of this.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from .backend import Backend
from .decoder import Decoder, DecoderPool
from .errors import PromptError, UsageError, check_whole
from .sampling import GREEDY, Sampling, make_sampler
from .tokenizer import unknown_id

DEFAULT_WORDS = 32  # as many as the tutorial generated
MAX_WORDS = 10_000_000
MAX_BATCH = 64  # sequences decoded at once; larger batches go in turns (weight reuse is flat by then)


class Engine:
    """Decodes word ids with one backend. Safe to share between threads: each call borrows its
    own decoder from the pool."""

    def __init__(self, backend: Backend, cache: bool = True):
        self._backend = backend
        self.metadata = backend.metadata
        # A stream model's cache of the text so far, where its file has one and `cache` asks for it.
        self.cache = self.metadata.cache if cache else None
        self._pool = DecoderPool(self.metadata, backend.kernel, self.cache)
        self._plain = DecoderPool(self.metadata, backend.kernel) if self.cache else self._pool  # the model alone
        self.unknown_id = unknown_id(self.metadata.vocabulary)  # <unk>: read where a model has one, never generated

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.metadata.vocabulary

    @property
    def window(self) -> int:
        """How many of a context's last ids a read feeds: the window, or a stream model's bound."""
        return self.metadata.config.window

    @property
    def least_words(self) -> int:
        return self.metadata.least_words

    @property
    def backend(self) -> str:
        """What runs the model: "onnxruntime" or "numpy"."""
        return self._backend.name

    @property
    def runs(self) -> str:
        """What computes the model, read from its library now: the version, threads and spinning
        of onnxruntime, or numpy's and its BLAS's threads."""
        return self._backend.describe()

    def stream_ids(
        self, context: Sequence[int], words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY
    ) -> Iterator[int]:
        """Word ids after the last `window` ids of `context`; arguments are checked before it starts."""
        checked = self._check_ids(context)
        return (token for _, token in self._decode([checked], _check_run(words, sampling), sampling))

    def stream_batch_ids(
        self, contexts: Sequence[Sequence[int]], words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY
    ) -> Iterator[tuple[int, int]]:
        """(context index, word id) for every context at once: every context's first word, then
        every context's second; arguments are checked before it starts."""
        checked = self._check_contexts(contexts)
        return self._decode(checked, _check_run(words, sampling), sampling)

    def next_logits(self, context: Sequence[int]) -> np.ndarray:
        """Logits [vocab] of the word after the last `window` ids of `context` (a copy)."""
        return self.window_logits([context])[0]

    def window_logits(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits [N, vocab] of the word after each context's last `window` ids, in batches."""
        checked = self._check_contexts(contexts)
        logits = np.empty((len(checked), len(self.vocabulary)), np.float32)
        for first in range(0, len(checked), MAX_BATCH):
            turn = checked[first : first + MAX_BATCH]
            with self._pool.decoder(len(turn)) as decoder:
                logits[first : first + len(turn)] = _read(decoder, turn)
        return logits

    def decoder(self, batch: int = 1) -> contextlib.AbstractContextManager[Decoder]:
        """A decoder of `batch` sequences lent for a `with` block (each call of the API borrows
        its own; `fable.predict.Typing` keeps one while a person types)."""
        return self._pool.decoder(batch)

    def logits_along(self, ids: Sequence[int], cache: bool = True) -> Iterator[np.ndarray]:
        """After each id of `ids` in turn, logits [vocab] of the next word given the last `window`
        ids so far (fewer at the start: read from the zero state), or a stream model's given all
        of them (`cache` False: without its cache). Views the next one overwrites."""
        with (self._pool if cache else self._plain).decoder(1) as decoder:
            token = np.zeros((1, 1), np.int64)
            for word in ids:
                token[0, 0] = word
                yield decoder.feed(token)[0]

    def _decode(self, contexts: list[list[int]], words: int, sampling: Sampling) -> Iterator[tuple[int, int]]:
        """The one decode loop. Per turn of contexts: read their windows, then one run of the
        model per word for all of them."""
        for first in range(0, len(contexts), MAX_BATCH):
            turn = contexts[first : first + MAX_BATCH]
            samplers = [make_sampler(sampling, banned=self.unknown_id) for _ in turn]
            with self._pool.decoder(len(turn)) as decoder:
                logits = _read(decoder, turn)
                tokens = np.zeros((len(turn), 1), np.int64)
                for made in range(words):
                    for row, sample in enumerate(samplers):
                        token = sample(logits[row])
                        tokens[row, 0] = token
                        yield first + row, token
                    if made + 1 < words:
                        logits = decoder.feed(tokens)

    def _check_contexts(self, contexts: Sequence[Sequence[int]]) -> list[list[int]]:
        checked = []
        for number, context in enumerate(contexts, 1):
            try:
                checked.append(self._check_ids(context))
            except PromptError as error:
                raise PromptError(f"context {number}: {error}") from None
        return checked

    def _check_ids(self, context: Sequence[int]) -> list[int]:
        try:
            ids = [int(i) for i in context[-self.window :]]
        except (TypeError, ValueError):
            raise PromptError("a context must be a sequence of word ids (whole numbers)") from None
        if len(ids) < self.least_words:
            needs = "at least one" if self.least_words == 1 else f"{self.window} at a time"
            raise PromptError(f"the context has {len(ids)} ids; this model reads {needs}")
        if not all(0 <= i < len(self.vocabulary) for i in ids):
            raise PromptError(f"word ids must be from 0 to {len(self.vocabulary) - 1}, not {ids}")
        return ids


def _read(decoder: Decoder, contexts: list[list[int]]) -> np.ndarray:
    """Feed each context's ids a column at a time, the shorter ones (a stream model's) aligned at
    the end and restarted until their first id; the logits [batch, vocab] after the last."""
    longest = max(len(context) for context in contexts)
    columns = np.zeros((len(contexts), longest), np.int64)  # [batch, longest]
    begins = np.array([longest - len(context) for context in contexts])  # the column of each first id
    for row, context in enumerate(contexts):
        columns[row, begins[row] :] = context
    for column in range(longest):
        logits = decoder.feed(columns[:, column : column + 1])
        if column + 1 < longest:
            decoder.restart(np.flatnonzero(begins > column))  # not yet begun: still no words read
    return logits


def _check_run(words: int, sampling: Sampling) -> int:
    """`words` as an int, once both are checked."""
    words = check_whole("words", words, 0, MAX_WORDS)
    if not isinstance(sampling, Sampling):
        raise UsageError(f"sampling must be a fable.Sampling, not {type(sampling).__name__}")
    return words
