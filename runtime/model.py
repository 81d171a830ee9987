"""The model apps use: load a file, give it text, get words back."""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from . import evaluation, predict, tuning
from .backend import open_backend
from .contract import ModelMetadata
from .engine import DEFAULT_WORDS, Engine
from .errors import ModelFileError, PromptError, SettingError, UnknownWordError, check_whole
from .evaluation import Evaluation
from .keyboard import Keyboard
from .learned import BLEND, Blend, TextCounts, WordCounts
from .predict import DEFAULT_SUGGESTIONS, Suggestion, TextScore
from .prompt import Lexicon
from .sampling import GREEDY, Sampling
from .tokenizer import Detokenizer, detokenize

DEFAULT_MODEL = "fable.int8.onnx"  # in `fable.exported`: the shipped default
MAX_THREADS = 256


def default_model_path() -> Path:
    """The shipped default model, wherever fable is installed."""
    try:
        path = Path(str(resources.files("fable.exported") / DEFAULT_MODEL))
    except ModuleNotFoundError:
        raise ModelFileError("the shipped model is not installed; reinstall fable or pass a model path") from None
    return path


class Model(Engine):
    """A loaded fable model: text in, words out. Safe to share between threads.

    `Model(...)` runs with exactly the settings given; `load()` also applies what
    `fable-bench --tune` measured on this machine. `why` says where the settings came from.
    `batches`: where the tune chose another file for batches of prompts, it runs `generate_batch`
    and `stream_batch` of more than one prompt, if this file decodes one prompt at a time.
    `cache`: False runs a stream model without the cache of the text so far its file holds."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        threads: int = tuning.DEFAULT_THREADS,
        backend: str | None = None,
        spin: bool = tuning.DEFAULT_SPIN,
        why: str = tuning.GIVEN,
        batches: tuning.Tuned | None = None,
        cache: bool = True,
    ):
        threads = check_whole("threads", threads, 1, MAX_THREADS)
        if not isinstance(spin, bool):
            raise SettingError("spin", "True or False", spin)
        if not isinstance(cache, bool):
            raise SettingError("cache", "True or False", cache)
        self.path = Path(path)
        self.threads = threads
        self.spin = spin
        self.settings = why  # one line: why these threads, spinning and file
        super().__init__(open_backend(self.path, threads, spin, backend), cache)
        self.file_bytes = self.path.stat().st_size
        self.lexicon = Lexicon(self.metadata.vocabulary, self.metadata.tokenizer_version)
        self._batches = None if self.metadata.batched else batches
        if self._batches is not None:
            self.settings += "; " + tuning.batches_said(self._batches, self.path)
        self._batch_engine: Engine | None = None
        self._batch_lock = threading.Lock()
        # A person's words (`fable.learned`): counted from the text so far where the model reads
        # words it lacks (it has <unk>: made for open text), and from what the app gives `learn`.
        self.learns_text = self.unknown_id is not None
        self.blend: Blend = BLEND
        self.learned = WordCounts(self.lexicon.index)

    @functools.cached_property
    def keyboard(self) -> Keyboard:
        """How many keys typing with this model's suggestions takes (`fable.keyboard`): its
        vocabulary sorted once, when first asked."""
        return Keyboard(self.vocabulary, self.lexicon.version)

    @property
    def info(self) -> dict[str, Any]:
        """The metadata as a dict, with the file's path and size, and what runs it (`runs`: read
        from the library) and why."""
        return self.metadata.as_dict() | {
            "path": str(self.path),
            "file_bytes": self.file_bytes,
            "backend": self.backend,
            "runs": self.runs,
            "threads": self.threads,
            "spin": self.spin,
            "settings": self.settings,
        }

    def encode(self, prompt: str) -> list[int]:
        """The ids of the prompt's last `window` tokens, or PromptError saying what is wrong."""
        reading = self.lexicon.read(self._text(prompt, "prompt"), last_words=self.window)
        return self.lexicon.ids(reading, "prompt", self.least_words, self.window, last=self.window)

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
        """The k likeliest next words with their probabilities, likeliest first, or completions of
        the word `text` ends inside (`fable.predict.suggest`)."""
        return predict.suggest(self, self._text(text, "text"), k)

    def typing(self) -> predict.Typing:
        """`suggest` for a text that grows as a person types, a step a word instead of a whole
        window a call, with the same suggestions (`fable.predict.Typing`):
        `with model.typing() as typing: typing.suggest("the old mo")`."""
        return predict.Typing(self)

    def learn(self, text: str) -> None:
        """Learn a person's words from `text`: each word and the word after it, counted in memory
        (nothing is written unless `save_learned` is called) and mixed into `suggest`, `typing()`
        and `evaluate` by `fable.learned`'s rule. Words the vocabulary lacks are learnt where the
        model reads them as <unk>; a model without one cannot read them and skips them."""
        tokens = self.tokens(self._text(text, "text"))
        if self.unknown_id is not None:
            self.learned.add(tokens, continues=False)
            return
        for readable, run in itertools.groupby(tokens, key=self.lexicon.index.__contains__):
            if readable:  # each stretch of words it knows, as a text of its own
                self.learned.add(run, continues=False)

    def forget(self) -> None:
        """Forget every word `learn` and `load_learned` gave."""
        self.learned.clear()

    def save_learned(self, path: str | os.PathLike[str]) -> None:
        """Write the learnt words to `path` (JSON, `fable.learned.WordCounts.as_json`), whole or not at all."""
        self.learned.save(Path(path))

    def load_learned(self, path: str | os.PathLike[str]) -> None:
        """Add the words of a file `save_learned` wrote; UsageError, one line, for any other file."""
        self.learned.load(Path(path))

    def counts(self, text: str, text_counts: TextCounts | None = None) -> list[WordCounts]:
        """What `suggest` mixes in after `text` (`counts_with`): the text's own counts are
        `text_counts` brought up to date with it, or fresh ones."""
        if not self.learns_text:
            return [self.learned]
        return self.counts_with((text_counts or TextCounts(self.lexicon.index, self.lexicon.version)).update(text))

    def counts_with(self, text_counts: WordCounts) -> list[WordCounts]:
        """The counts mixed into a suggestion (`fable.learned`): the learnt words, and the text so
        far's (`text_counts`) where the model learns from it."""
        return [self.learned, text_counts] if self.learns_text else [self.learned]

    def score(self, text: str) -> TextScore:
        """The log-probability of each word after the first window, given the window before it,
        with their total and the perplexity (`fable.predict.score`)."""
        return predict.score(self, self._text(text, "text"))

    def evaluate(self, text: str, learning: bool = True, cache: bool = True) -> Evaluation:
        """How well the model predicts `text`: top-1, top-3, perplexity and keystrokes saved over
        its words, each from the window before it (`fable.evaluation`): to measure it on text it
        was not trained on. `learning`: with the person's words mixed in, as `suggest` has them;
        False: the model alone. `cache` False: a stream model without its cache of the text."""
        return evaluation.evaluate(self, self._text(text, "text"), learning, cache)

    def stream(self, prompt: str, words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY) -> Iterator[str]:
        """The generated words, one by one as they are made."""
        ids = self.stream_ids(self.encode(prompt), words, sampling)
        vocabulary = self.vocabulary
        return (vocabulary[i] for i in ids)

    def generate(self, prompt: str, words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY) -> str:
        """The generated words only, as text (`detokenize`); `Sampling()` (the default) is greedy."""
        return self.detokenize(list(self.stream(prompt, words, sampling)), prompt)

    def generate_batch(
        self, prompts: Iterable[str], words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY
    ) -> list[str]:
        """`generate` for each prompt, with the same settings, all decoded together: one run of the
        model per word for the whole batch. Each prompt samples from its own stream, so the words
        are those of `generate` one prompt at a time. Every prompt is checked before any runs."""
        prompts = self._prompts(prompts)
        made: list[list[str]] = [[] for _ in prompts]
        for index, word in self.stream_batch(prompts, words, sampling):
            made[index].append(word)
        return [self.detokenize(words, prompt) for words, prompt in zip(made, prompts)]

    def stream_batch(
        self, prompts: Iterable[str], words: int = DEFAULT_WORDS, sampling: Sampling = GREEDY
    ) -> Iterator[tuple[int, str]]:
        """(prompt index, word) as the batch makes them: every prompt's first word, then every
        prompt's second, and so on."""
        contexts = []
        for number, prompt in enumerate(self._prompts(prompts), 1):
            try:
                contexts.append(self.encode(prompt))
            except UnknownWordError as error:
                raise UnknownWordError(f"prompt {number}: {error}", error.words, error.suggestions) from None
            except PromptError as error:
                raise PromptError(f"prompt {number}: {error}") from None
        vocabulary = self.vocabulary
        engine = self._engine_for_batches() if len(contexts) > 1 else self
        return ((index, vocabulary[i]) for index, i in engine.stream_batch_ids(contexts, words, sampling))

    def _engine_for_batches(self) -> Engine:
        """This model, or where its file decodes one prompt at a time and the tune chose a file
        for batches (`batches`), that file with its setting: loaded on the first batch."""
        if self._batches is None:
            return self
        with self._batch_lock:
            if self._batch_engine is None:
                tuned = self._batches
                self._batch_engine = Model(tuned.file, tuned.setting.threads, self.backend, tuned.setting.spin,
                                           cache=self.cache is not None)  # fmt: skip
            return self._batch_engine

    def _prompts(self, prompts: Iterable[str]) -> list[str]:
        if isinstance(prompts, str):
            raise PromptError("a batch is a list of prompts; for one prompt use generate or stream")
        return list(prompts)  # a generator is read once, here, and not used up by the checks

    def _text(self, text: str, what: str) -> str:
        if not isinstance(text, str):
            raise PromptError(f"a {what} must be text, not {type(text).__name__}")
        return text


def load(
    path: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    backend: str | None = None,
    spin: bool | None = None,
    pattern: str = "paced",
    cache: bool = True,
) -> Model:
    """Load a model file; no path loads the shipped default (int8). `backend`: "onnxruntime" or
    "numpy"; None takes onnxruntime where it is installed and numpy where it is not.

    Where `fable-bench --tune` measured this file on this machine, its threads and spinning apply
    unless given here, and without a `path` its best vouched-for variant of the default runs (the
    model's `settings` says which and why): for `pattern` "paced", an app's calls a few times a
    second, the fastest setting that burns no idle core; for "stream", words back to back (a
    generation to print), the fastest. Untuned: 1 thread, no spinning. `cache`: as `Model`'s."""
    asked = default_model_path() if path is None else Path(path)
    chosen = tuning.resolve(asked, path is not None, threads, spin, backend, pattern)
    return Model(chosen.file, chosen.threads, backend, chosen.spin, chosen.why, chosen.tuned and chosen.tuned.batches,
                 cache)  # fmt: skip


__all__ = ["Model", "ModelMetadata", "load", "default_model_path"]
