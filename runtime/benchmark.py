"""Latency of a model file on this machine, with the runtime alone (what fable-bench prints)."""

from __future__ import annotations

import functools
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .backend import BACKENDS, backend_version
from .model import MAX_WORDS, Model
from .sampling import Sampling

MIN_BENCH_WORDS = 10
MAX_BENCH_WORDS = 1_000_000  # leaves room below MAX_WORDS for the warm-up


@dataclass(frozen=True)
class BenchSettings:
    threads: int = 1
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
    words: int
    temperature: float
    load_ms: float  # median
    first_word_ms: float  # median, prompt to first word
    word_p50_us: float
    word_p90_us: float
    word_p99_us: float
    words_per_second: float  # from the median word
    peak_rss_mb: float  # of this process so far

    def as_dict(self) -> dict:
        return asdict(self)


def machine() -> dict[str, str | int | None]:
    """What a reader needs to compare figures between machines."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith(("model name", "Model"))]
            cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        **{name: backend_version(name) for name in BACKENDS if name != "numpy"},
        "fable": __version__,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def bench_model(path: Path, settings: BenchSettings, report: Callable[[str], None] = lambda _: None) -> BenchResult:
    load_times = []
    for _ in range(settings.loads):
        started = time.perf_counter()
        model = Model(path, settings.threads, settings.backend)
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

    gaps = np.empty(settings.words, np.int64)
    made = model.stream_ids(context, settings.warmup + settings.words + 1, sampling)
    for _ in range(settings.warmup):
        next(made)
    last = time.perf_counter_ns()
    next(made)
    for i in range(settings.words):
        next(made)
        now = time.perf_counter_ns()
        gaps[i], last = now - last, now
        if i % 500 == 0:
            report(f"word {i}/{settings.words}")
    made.close()
    micros = gaps / 1000
    p50, p90, p99 = (float(np.percentile(micros, q)) for q in (50, 90, 99))
    return BenchResult(
        model=str(path),
        backend=model.backend,
        quantization=model.metadata.quantization,
        graph=model.metadata.graph,
        threads=settings.threads,
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
