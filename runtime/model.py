"""The model apps use: load a file, give it a prompt, get words back."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import contract
from .backend import default_backend, open_backend
from .contract import ModelMetadata
from .decoder import Decoder
from .errors import ModelFileError, PromptError, UnknownWordError, UsageError, check_whole
from .modelfile import checked_path
from .predict import (
    DEFAULT_SUGGESTIONS,
    MAX_SUGGESTIONS,
    Suggestion,
    TextScore,
    log_softmax,
    rank,
    split_partial,
    text_score,
)
from .prompt import Lexicon, unknown_words
from .sampling import GREEDY, Sampler, Sampling, make_sampler
from .tokenizer import UNKNOWN, Detokenizer, detokenize
from .tuning import Tuned, lookup

DEFAULT_MODEL = "fable.int8.onnx"  # in `fable.exported`: the shipped default
DEFAULT_WORDS = 32  # as many as the tutorial generated
MAX_WORDS = 10_000_000
# Safe on a machine nobody measured: one thread, no spinning. fable-bench --tune finds better
# settings for a device and load() uses them (docs/design.md, "Tuning").
DEFAULT_THREADS = 1
DEFAULT_SPIN = False
MAX_THREADS = 256
MAX_BATCH = 64  # sequences decoded at once; larger batches go in turns (weight reuse is flat by then)


def default_model_path() -> Path:
    """The shipped default model, wherever fable is installed."""
    try:
        path = Path(str(resources.files("fable.exported") / DEFAULT_MODEL))
    except ModuleNotFoundError:
        raise ModelFileError("the shipped model is not installed; reinstall fable or pass a model path") from None
    return path


class Model:
    """A loaded fable model. Safe to share between threads: each call decodes with its own buffers.

    `Model(...)` runs with exactly the settings given; `load()` also applies what
    `fable-bench --tune` measured on this machine."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        threads: int = DEFAULT_THREADS,
        backend: str | None = None,
        spin: bool = DEFAULT_SPIN,
    ):
        check_whole("threads", threads, 1, MAX_THREADS)
        if not isinstance(spin, bool):
            raise UsageError(f"spin must be True or False, not {spin!r}")
        self.path = Path(path)
        self.threads = threads
        self.spin = spin
        self.settings = "given"  # why these threads and spinning: load() says more
        self._backend = open_backend(self.path, threads, spin, backend)
        self.metadata = self._backend.metadata
        self.file_bytes = self.path.stat().st_size
        self.lexicon = Lexicon(self.metadata.vocabulary, self.metadata.tokenizer_version)
        self._idle: dict[int, list[Decoder]] = {}  # by batch size
        self._lock = threading.Lock()

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.metadata.vocabulary

    @property
    def window(self) -> int:
        return self.metadata.config.window

    @property
    def backend(self) -> str:
        """What runs the model: "onnxruntime" or "numpy"."""
        return self._backend.name

    @property
    def info(self) -> dict[str, Any]:
        """The metadata as a dict, with the file's path and size, and what runs it and why."""
        return self.metadata.as_dict() | {
            "path": str(self.path),
            "file_bytes": self.file_bytes,
            "backend": self.backend,
            "threads": self.threads,
            "spin": self.spin,
            "settings": self.settings,
        }

    def encode(self, prompt: str) -> list[int]:
        """The ids of the prompt's last `window` tokens, or PromptError saying what is wrong."""
        reading = self.lexicon.read(self._text(prompt, "prompt"), last_words=self.window)
        return self.lexicon.ids(reading, "prompt", self.window, self.window, last=self.window)

    def tokens(self, text: str) -> list[str]:
        """`text` cut into this model's tokens (the rules of the tokenizer version it was trained with)."""
        return self.lexicon.tokens(self._text(text, "text"))

    def detokenize(self, words: Sequence[str], before: str = "") -> str:
        """Generated `words` as text, joined as prose is written (model files of tokenizer version 1:
        with a space between every two, as the tutorial printed them). `before`: the prompt, so
        that a quote it opened is closed."""
        return detokenize(words, self.lexicon.version, self.tokens(before) if before else ())

    def text_pieces(self, prompt: str) -> Detokenizer:
        """A joiner that gives each streamed word with the space before it, after `prompt`."""
        return Detokenizer(self.lexicon.version, self.tokens(prompt))

    def suggest(self, text: str, k: int = DEFAULT_SUGGESTIONS) -> list[Suggestion]:
        """The k likeliest next words with their probabilities, likeliest first.

        If `text` ends inside a word (no space or mark after it, and not a word the model knows),
        the candidates are the words that start with it, ranked by their probability after the
        words before it: "the old mo" gives "mouse", and "the old mouse" gives the words after
        "mouse". Text of fewer words than the window is read from the LSTM's zero state,
        the state every training window started from, so the missing words are padded exactly as
        in training; the suggestions then rest on less context. (A plain window-graph file has no
        zero state to start from and needs `window` words.) Unknown words are a PromptError, as
        in `generate`, or <unk> where the model has one; an unfinished word that no known word
        completes then has no suggestions.
        """
        check_whole("k", k, 1, MAX_SUGGESTIONS)
        text = self._text(text, "text")
        # the words of the window and the one being typed are all it reads
        reading, partial = split_partial(text, self.lexicon.read(text, last_words=self.window + 1), self.lexicon.index)
        if partial and not any(word.startswith(partial) for word in self.vocabulary if word != UNKNOWN):
            if self.lexicon.unknown_id is None:
                raise unknown_words([partial], self.vocabulary)
            return []  # no word it knows completes it, and it never suggests <unk>
        shortest = 1 if self.metadata.graph == contract.GRAPH_STEP else self.window
        ids = self.lexicon.ids(reading, "text", shortest, self.window, last=self.window)
        with self._decoder() as decoder:
            for token in ids:
                logits = decoder.feed(token)
            return rank(self.vocabulary, log_softmax(logits), partial, k, banned=self.lexicon.unknown_id)

    def score(self, text: str) -> TextScore:
        """The log-probability of each word after the first window, given the window before it,
        with their total and the perplexity."""
        reading = self.lexicon.read(self._text(text, "text"))
        ids = self.lexicon.ids(reading, "text", self.window + 1, self.window)
        tokens = reading.tokens
        scores = []
        with self._decoder() as decoder:
            for position, token in enumerate(ids[:-1]):
                logits = decoder.feed(token)
                if position >= self.window - 1:
                    scores.append(float(log_softmax(logits)[ids[position + 1]]))
        return text_score(tokens[self.window :], scores)

    def _text(self, text: str, what: str) -> str:
        if not isinstance(text, str):
            raise PromptError(f"a {what} must be text, not {type(text).__name__}")
        return text

    def stream(self, prompt: str, words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY) -> Iterator[str]:
        """The generated words, one by one as they are made."""
        ids = self.stream_ids(self.encode(prompt), words, sampling)
        vocabulary = self.vocabulary
        return (vocabulary[i] for i in ids)

    def stream_ids(
        self, context: Sequence[int], words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY
    ) -> Iterator[int]:
        """Word ids after the last `window` ids of `context`; arguments are checked before it starts."""
        context = self._check_ids(context)
        _check_run(words, sampling)
        return self._stream(context, words, self._sampler(sampling))

    def next_logits(self, context: Sequence[int]) -> np.ndarray:
        """Logits [vocab] of the word after the last `window` ids of `context` (a copy)."""
        with self._decoder() as decoder:
            for token in self._check_ids(context):
                logits = decoder.feed(token)
            return logits.copy()

    def _check_ids(self, context: Sequence[int]) -> list[int]:
        try:
            ids = [int(i) for i in context[-self.window :]]
        except (TypeError, ValueError):
            raise PromptError("a context must be a sequence of word ids (whole numbers)") from None
        if len(ids) < self.window:
            raise PromptError(f"the context has {len(ids)} ids; this model reads {self.window} at a time")
        if not all(0 <= i < len(self.vocabulary) for i in ids):
            raise PromptError(f"word ids must be from 0 to {len(self.vocabulary) - 1}, not {ids}")
        return ids

    def _stream(self, context: list[int], words: int, sample: Sampler) -> Iterator[int]:
        with self._decoder() as decoder:
            for token in context:
                logits = decoder.feed(token)
            for made in range(words):
                token = sample(logits)
                yield token
                if made + 1 < words:
                    logits = decoder.feed(token)

    def _sampler(self, sampling: Sampling) -> Sampler:
        return make_sampler(sampling, banned=self.lexicon.unknown_id)  # generation never says <unk>

    def generate(self, prompt: str, words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY) -> str:
        """The generated words only, as text (`detokenize`); `Sampling()` (the default) is greedy."""
        return self.detokenize(list(self.stream(prompt, words, sampling)), prompt)

    def generate_batch(
        self, prompts: Sequence[str], words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY
    ) -> list[str]:
        """`generate` for each prompt, with the same settings, all decoded together: one run of the
        model per word for the whole batch. Each prompt samples from its own stream, so the words
        are those of `generate` one prompt at a time. Every prompt is checked before any runs."""
        made: list[list[str]] = [[] for _ in prompts]
        for index, word in self.stream_batch(prompts, words, sampling):
            made[index].append(word)
        return [self.detokenize(words, prompt) for words, prompt in zip(made, prompts)]

    def stream_batch(
        self, prompts: Sequence[str], words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY
    ) -> Iterator[tuple[int, str]]:
        """(prompt index, word) as the batch makes them: every prompt's first word, then every
        prompt's second, and so on (files of format 1 have no batches: one prompt after another)."""
        if isinstance(prompts, str):
            raise PromptError("a batch is a list of prompts; for one prompt use generate or stream")
        contexts = []
        for number, prompt in enumerate(prompts, 1):
            try:
                contexts.append(self.encode(prompt))
            except UnknownWordError as error:
                raise UnknownWordError(f"prompt {number}: {error}", error.words, error.suggestions) from None
            except PromptError as error:
                raise PromptError(f"prompt {number}: {error}") from None
        vocabulary = self.vocabulary
        return ((index, vocabulary[i]) for index, i in self.stream_batch_ids(contexts, words, sampling))

    def stream_batch_ids(
        self, contexts: Sequence[Sequence[int]], words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY
    ) -> Iterator[tuple[int, int]]:
        """`stream_batch` on word ids: (context index, word id); arguments are checked before it starts."""
        checked = []
        for number, context in enumerate(contexts, 1):
            try:
                checked.append(self._check_ids(context))
            except PromptError as error:
                raise PromptError(f"context {number}: {error}") from None
        _check_run(words, sampling)
        return self._stream_batch(checked, words, sampling)

    def _stream_batch(self, contexts: list[list[int]], words: int, sampling: Sampling) -> Iterator[tuple[int, int]]:
        if not self._backend.batches:
            for index, context in enumerate(contexts):
                yield from ((index, i) for i in self._stream(context, words, self._sampler(sampling)))
            return
        for first in range(0, len(contexts), MAX_BATCH):
            turn = np.array(contexts[first : first + MAX_BATCH], np.int64)  # [batch, window]
            samplers = [self._sampler(sampling) for _ in turn]
            with self._decoder(len(turn)) as decoder:
                for column in range(self.window):
                    logits = decoder.feed_batch(turn[:, column : column + 1])
                tokens = np.zeros((len(turn), 1), np.int64)
                for made in range(words):
                    for row, sample in enumerate(samplers):
                        tokens[row, 0] = sample(logits[row])
                        yield first + row, int(tokens[row, 0])
                    if made + 1 < words:
                        logits = decoder.feed_batch(tokens)

    @contextlib.contextmanager
    def _decoder(self, batch: int = 1) -> Iterator[Decoder]:
        with self._lock:
            idle = self._idle.setdefault(batch, [])
            decoder = idle.pop() if idle else None
        if decoder is None:
            decoder = self._backend.decoder(batch)
        decoder.reset()
        try:
            yield decoder
        finally:
            with self._lock:
                self._idle[batch].append(decoder)


def _check_run(words: int, sampling: Sampling) -> None:
    check_whole("words", words, 0, MAX_WORDS)
    if not isinstance(sampling, Sampling):
        raise UsageError(f"sampling must be a fable.Sampling, not {type(sampling).__name__}")


def load(
    path: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    backend: str | None = None,
    spin: bool | None = None,
) -> Model:
    """Load a model file; no path loads the shipped default (int8). `backend`: "onnxruntime" or
    "numpy"; None takes onnxruntime where it is installed and numpy where it is not.

    Where `fable-bench --tune` measured this file on this machine, its threads and spinning apply
    unless given here, and without a `path` its fastest vouched-for variant of the default runs
    (the model's `settings` says which and why). Untuned: 1 thread, no spinning."""
    asked = default_model_path() if path is None else Path(path)
    tuned = None
    wanted = default_backend() if backend is None else backend
    if wanted == "onnxruntime" and (threads is None or spin is None or path is None):
        checked_path(asked)
        tuned = lookup(asked, choose_file=path is None)
    model = Model(
        tuned.file if tuned else asked,
        threads if threads is not None else tuned.setting.threads if tuned else DEFAULT_THREADS,
        backend,
        spin if spin is not None else tuned.setting.spin if tuned else DEFAULT_SPIN,
    )
    model.settings = _why(tuned, threads is not None, spin is not None, asked)
    return model


def _why(tuned: Tuned | None, threads_given: bool, spin_given: bool, asked: Path) -> str:
    """One line on where the threads, the spinning and the file came from."""
    given = [name for name, was in (("threads", threads_given), ("spinning", spin_given)) if was]
    parts = [f"{' and '.join(given)} given"] if given else []
    if tuned is not None:
        swapped = f", which runs {tuned.file.name} in place of {asked.name}" if tuned.file != asked else ""
        parts.append(f"tuned by fable-bench --tune at {tuned.tuned_at} ({tuned.cache}){swapped}")
    elif len(given) < 2:
        parts.append("defaults where not given: this file was not tuned on this machine (fable-bench --tune)")
    return "; ".join(parts)


__all__ = ["Model", "ModelMetadata", "load", "default_model_path"]
