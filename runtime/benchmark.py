"""Latency of a model file on this machine, with the runtime alone (what fable-bench prints)."""

from __future__ import annotations

import datetime
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .engine import MAX_WORDS
from .model import Model
from .sampling import Sampling
from .tuning import DEFAULT_SPIN, DEFAULT_THREADS, Setting, export_variants, remember

MIN_BENCH_WORDS = 10
MAX_BENCH_WORDS = 1_000_000  # leaves room below MAX_WORDS for the warm-up


@dataclass(frozen=True)
class BenchSettings:
    threads: int = DEFAULT_THREADS
    spin: bool = DEFAULT_SPIN
    backend: str | None = None  # None: the default here
    words: int = 2000  # timed words per model, after warm-up
    warmup: int = 200
    loads: int = 5  # model loads timed
    first_words: int = 30  # prompt-to-first-word runs timed
    temperature: float = 1.0  # sampled, so that no repeating greedy cycle flatters the figure
    seed: int = 0


@dataclass(frozen=True)
class BenchResult:
    model: str
    backend: str
    quantization: str
    graph: str
    threads: int
    spin: bool
    words: int
    temperature: float
    load_ms: float  # median
    first_word_ms: float  # median, prompt to first word
    word_p50_us: float
    word_p90_us: float
    word_p99_us: float
    words_per_second: float  # from the median word
    peak_rss_mb: float | None  # of this process so far; None where the system does not say

    def as_dict(self) -> dict:
        return asdict(self)


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far; None where the system does not say (Windows)."""
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def bench_model(path: Path, settings: BenchSettings, report: Callable[[str], None] = lambda _: None) -> BenchResult:
    load_times = []
    for _ in range(settings.loads):
        started = time.perf_counter()
        model = Model(path, settings.threads, settings.backend, settings.spin)
        load_times.append(1000 * (time.perf_counter() - started))
        report(f"load {len(load_times)}/{settings.loads}")
    context = range(model.window)  # the most frequent words, as ids: every vocabulary has them
    sampling = Sampling(settings.temperature, seed=settings.seed)

    first = []
    for _ in range(settings.first_words):
        started = time.perf_counter()
        next(model.stream_ids(context, 1, sampling))
        first.append(1000 * (time.perf_counter() - started))
    report("first word")

    micros = word_gaps_us(model, sampling, settings.warmup, settings.words, report)
    p50, p90, p99 = (float(np.percentile(micros, q)) for q in (50, 90, 99))
    return BenchResult(
        model=str(path),
        backend=model.backend,
        quantization=model.metadata.quantization,
        graph=model.metadata.graph,
        threads=settings.threads,
        spin=settings.spin,
        words=settings.words,
        temperature=settings.temperature,
        load_ms=statistics.median(load_times),
        first_word_ms=statistics.median(first),
        word_p50_us=p50,
        word_p90_us=p90,
        word_p99_us=p99,
        words_per_second=1e6 / p50,
        peak_rss_mb=peak_rss_mb(),
    )


def word_stepper(model: Model, sampling: Sampling) -> Callable[[], int]:
    """One more generated word per call, from a stream that does not end: what per-word benchmarks time."""
    return functools.partial(next, model.stream_ids(range(model.window), MAX_WORDS, sampling))


def word_gaps_us(
    model: Model, sampling: Sampling, warmup: int, words: int, report: Callable[[str], None] = lambda _: None
) -> np.ndarray:
    """Microseconds between consecutive words of one stream, `words` of them after `warmup`."""
    gaps = np.empty(words, np.int64)
    made = model.stream_ids(range(model.window), warmup + words + 1, sampling)
    for _ in range(warmup):
        next(made)
    last = time.perf_counter_ns()
    next(made)
    for i in range(words):
        next(made)
        now = time.perf_counter_ns()
        gaps[i], last = now - last, now
        if i % 500 == 0:
            report(f"word {i}/{words}")
    made.close()
    return gaps / 1000


# --- fable-bench --tune ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TuneRow:
    file: Path
    quantization: str
    threads: int
    spin: bool
    word_us: float  # median over every round
    vouched: bool  # the named file, or a file its export's report vouches for: a candidate


@dataclass(frozen=True)
class TuneResult:
    rows: list[TuneRow]
    choice: TuneRow
    best: dict[Path, TuneRow]  # the fastest setting of each file
    cache: Path


def tune(
    path: Path,
    words: int = 1500,
    rounds: int = 3,
    temperature: float = 1.0,
    report: Callable[[str], None] = lambda _: None,
) -> TuneResult:
    """Time each file of `path`'s export × threads 1..cores × spinning off and on, sampled, in
    `rounds` interleaved rounds (so that a slow spell of the machine hits every setting alike),
    and remember the fastest vouched-for file and each file's fastest setting in the tune cache."""
    variants = export_variants(path)
    threads = range(1, (os.cpu_count() or 1) + 1)
    grid = [(file, t, spin) for file, _ in variants for t in threads for spin in (False, True)]
    gaps: dict[tuple[Path, int, bool], list[np.ndarray]] = {key: [] for key in grid}
    quantization: dict[Path, str] = {}
    sampling = Sampling(temperature, seed=0)
    for number in range(rounds):
        for done, (file, t, spin) in enumerate(grid):
            report(f"round {number + 1}/{rounds}: {file.name}, {t} thread{'s' if t > 1 else ''}, spin {spin} "
                   f"({done + 1}/{len(grid)})")  # fmt: skip
            model = Model(file, t, "onnxruntime", spin)  # loaded per round: one model in memory at a time
            quantization[file] = model.metadata.quantization
            gaps[file, t, spin].append(word_gaps_us(model, sampling, max(words // 10, 20), max(words // rounds, 1)))
            del model
    vouched = dict(variants)
    rows = [
        TuneRow(file, quantization[file], t, spin, float(np.median(np.concatenate(gaps[file, t, spin]))), vouched[file])
        for file, t, spin in grid
    ]
    best = {file: min((r for r in rows if r.file == file), key=lambda r: r.word_us) for file, _ in variants}
    choice = min((r for r in best.values() if r.vouched), key=lambda r: r.word_us)
    settings = {file: Setting(r.threads, r.spin, r.word_us) for file, r in best.items()}
    cache = remember(path, choice.file, settings, datetime.datetime.now().isoformat(timespec="seconds"))
    return TuneResult(rows, choice, best, cache)


# --- fable-bench --batch --------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    model: str
    batch: int
    steps: int  # words made per prompt
    step_us: float  # median time of one step of the whole batch: each prompt's per-word latency
    words_per_second: float  # all prompts together, from the median step

    def as_dict(self) -> dict:
        return asdict(self)


def bench_batches(model: Model, sizes: Sequence[int], steps: int = 200, temperature: float = 1.0) -> list[BatchResult]:
    """Per-word latency and aggregate words per second of `stream_batch_ids` at each batch size."""
    results = []
    vocabulary = len(model.vocabulary)
    for size in sizes:
        contexts = [[(7 * prompt + k) % vocabulary for k in range(model.window)] for prompt in range(size)]
        sampling = Sampling(temperature, seed=0)
        for _ in model.stream_batch_ids(contexts, 5, sampling):  # warm-up: buffers made, caches filled
            pass
        marks = [time.perf_counter_ns()]
        for made, _ in enumerate(model.stream_batch_ids(contexts, steps, sampling), 1):
            if made % size == 0:  # every prompt has its next word: one step of the batch
                marks.append(time.perf_counter_ns())
        step_us = float(np.median(np.diff(marks))) / 1000
        results.append(BatchResult(str(model.path), size, steps, step_us, size * 1e6 / step_us))
    return results
