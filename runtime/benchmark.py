"""Latency of model files on this machine, with the runtime alone: what fable-bench measures.

A sweep times every combination of models × backends × threads × spinning × batch sizes: model
loads, prompt to first word, then after a warm-up `repetitions` repetitions of `words` steps (a
step: one word for every prompt of the batch), and, with a pace, calls as an app makes them a few
times a second. Each row holds every sample, so its spread can be read as well as its median.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backend import default_backend
from .contract import KEY_FORMAT_VERSION
from .engine import MAX_WORDS
from .machine import load_average
from .model import Model
from .onnxfile import read_onnx
from .sampling import Sampling
from .tuning import BATCH, BATCH_SIZE, PATTERNS, TUNED, best_of, export_variants, file_sha256, remember, setting_of

Report = Callable[[str], None]
MIN_BENCH_WORDS = 10
MAX_BENCH_WORDS = 1_000_000  # leaves room below MAX_WORDS for the warm-up
# An app's calls: suggest afresh, a typist's next word, a typist's next letter (the suggestions a
# keyboard shows before each letter, as keystrokes saved counts them), one more word of a stream.
PACE_CALLS = ("suggest", "typing", "letter", "word")
BANDWIDTH_SIZES_MB = (1, 4, 16, 64)  # copies of these sizes: the caches' and the memory's bandwidth


@dataclass(frozen=True)
class BenchSettings:
    repetitions: int = 5
    words: int = 1000  # timed steps per repetition, after the warm-up
    warmup: int = 200
    loads: int = 5  # model loads timed
    first_words: int = 30  # prompt-to-first-word runs timed
    temperature: float = 1.0  # sampled, so that no repeating greedy cycle flatters the figure
    seed: int = 0
    pace_ms: float | None = None  # also time calls this far apart
    calls: int = 20  # calls at the pace
    call: str = "suggest"  # which call, of PACE_CALLS


@dataclass(frozen=True)
class Combination:
    model: Path
    backend: str
    threads: int
    spin: bool
    batch: int


def combinations(
    models: Sequence[Path], backends: Sequence[str | None], threads: Sequence[int], spins: Sequence[bool],
    batches: Sequence[int],
) -> list[Combination]:  # fmt: skip
    """Every combination, the models' order first (a backend of None: the default here)."""
    named = [backend or default_backend() for backend in backends]
    return [Combination(*values) for values in itertools.product(models, named, threads, spins, batches)]


@dataclass(frozen=True)
class Bandwidth:
    """Copy bandwidth in GB/s (bytes read plus bytes written) at each size copied."""

    gb_per_s: dict[int, float]  # by size in MB

    def at(self, nbytes: int) -> float:
        """The bandwidth a working set of `nbytes` streams at: that of the smallest size copied that
        holds it (the cache level it fits in), or of the largest."""
        fitting = [size for size in sorted(self.gb_per_s) if size * 2**20 >= nbytes]
        return self.gb_per_s[fitting[0] if fitting else max(self.gb_per_s)]


def memory_bandwidth(sizes_mb: Sequence[int] = BANDWIDTH_SIZES_MB, repeats: int = 7) -> Bandwidth:
    """numpy copies of each size, the median of `repeats` after one to warm: a few seconds at most."""
    rates = {}
    for size in sizes_mb:
        source = np.ones(size * 2**20 // 8)
        target = np.empty_like(source)
        np.copyto(target, source)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            np.copyto(target, source)
            times.append(time.perf_counter() - started)
        rates[size] = copy_rate(source.nbytes, statistics.median(times))
    return Bandwidth(rates)


def copy_rate(nbytes: int, seconds: float) -> float:
    """GB/s of copying `nbytes` in `seconds`: it reads them and writes them."""
    return 2 * nbytes / seconds / 1e9


def floor_us(weight_bytes: int, gb_per_s: float) -> float:
    """The least time a step can take when it must read `weight_bytes` at `gb_per_s`."""
    return weight_bytes / (gb_per_s * 1e9) * 1e6


@dataclass(frozen=True)
class FileFacts:
    name: str
    sha256: str  # a prefix: enough to tell files apart in a table
    bytes: int
    format: int
    variant: str  # quantization and graph: "int8 step"
    weight_bytes: int  # what one step reads: every weight but the embedding, whose rows are gathered


def file_facts(path: Path, model: Model) -> FileFacts:
    parsed = read_onnx(path.read_bytes())
    gathered = {node.inputs[0] for node in parsed.nodes if node.op_type == "Gather"}
    weights = sum(array.nbytes for name, array in parsed.initializers.items() if name not in gathered)
    meta, version = model.metadata, int(parsed.metadata[KEY_FORMAT_VERSION])
    variant = f"{meta.quantization} {meta.graph}" + ("" if meta.batched or meta.graph != "step" else " (one sequence)")
    return FileFacts(path.name, file_sha256(path)[:12], path.stat().st_size, version, variant, weights)


@dataclass(frozen=True)
class Paced:
    """Calls made `pace_ms` apart, as an app makes them: each one's latency after the idle gap, and
    the CPU the process burns between calls (threads that spin), in CPU seconds a wall second."""

    call: str
    pace_ms: float
    p50_us: float
    p90_us: float
    idle_cpu: float
    samples: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    model: str  # the path as given
    backend: str
    threads: int
    spin: bool
    batch: int
    file: FileFacts
    repetitions: int
    words: int
    load_ms: float  # median
    first_word_ms: float  # median, prompt to first word
    step_us: float  # median of every sample: one step, a word for each prompt of the batch
    step_us_mean: float  # of the repetitions' medians
    step_us_sd: float  # of the repetitions' medians (0 for one repetition)
    step_p90_us: float
    step_p99_us: float
    words_per_second: float  # all prompts, from the median step
    floor_us: float | None  # the step's weights read at the measured bandwidth
    of_floor: float | None  # floor / median: 1 is as fast as memory allows
    peak_rss_mb: float | None
    load_before: float | None
    load_after: float | None
    paced: Paced | None = None
    samples: list[list[float]] = field(default_factory=list)  # µs a step, by repetition

    def as_dict(self, samples: bool = True) -> dict[str, Any]:
        record = asdict(self)
        if not samples:
            record.pop("samples")
            if record["paced"]:
                record["paced"].pop("samples")
        return record


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far; None where the system does not say (Windows)."""
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def sweep(
    combos: Sequence[Combination], settings: BenchSettings, bandwidth: Bandwidth | None = None,
    report: Report = lambda _: None, loader: Callable[[Combination], Model] | None = None,
) -> list[Row]:  # fmt: skip
    """A row for each combination. `loader` opens a model (default: exactly its settings)."""
    load = loader or (lambda c: Model(c.model, c.threads, c.backend, c.spin))
    return [bench_row(c, settings, bandwidth, functools.partial(_said, report, n, len(combos)), load)
            for n, c in enumerate(combos, 1)]  # fmt: skip


def _said(report: Report, number: int, total: int, stage: str) -> None:
    report(f"[{number}/{total}] {stage}")


def bench_row(
    combo: Combination, settings: BenchSettings, bandwidth: Bandwidth | None, report: Report,
    load: Callable[[Combination], Model],
) -> Row:  # fmt: skip
    before = load_average()
    load_times = []
    for _ in range(settings.loads):
        started = time.perf_counter()
        model = load(combo)
        load_times.append(1000 * (time.perf_counter() - started))
    report(f"{combo.model.name}: loaded")
    sampling = Sampling(settings.temperature, seed=settings.seed)
    first = []
    for _ in range(settings.first_words):
        started = time.perf_counter()
        next(model.stream_ids(range(model.window), 1, sampling))  # the most frequent words: every vocabulary has them
        first.append(1000 * (time.perf_counter() - started))
    samples = []
    for repetition in range(settings.repetitions):
        report(f"{combo.model.name}: repetition {repetition + 1}/{settings.repetitions}")
        warmup = settings.warmup if repetition == 0 else settings.warmup // 10
        samples.append(step_gaps_us(model, combo.batch, sampling, warmup, settings.words).round(2).tolist())
    every = np.concatenate([np.asarray(s) for s in samples])
    medians = [float(np.median(s)) for s in samples]
    step = float(np.median(every))
    facts = file_facts(combo.model, model)
    floor = floor_us(facts.weight_bytes, bandwidth.at(facts.weight_bytes)) if bandwidth else None
    paced = None
    if settings.pace_ms is not None:
        report(f"{combo.model.name}: {settings.calls} calls, {settings.pace_ms:g} ms apart")
        paced = pace(model, settings.call, settings.pace_ms, settings.calls)
    return Row(
        model=str(combo.model), backend=model.backend, threads=model.threads, spin=model.spin, batch=combo.batch,
        file=facts, repetitions=settings.repetitions, words=settings.words,
        load_ms=statistics.median(load_times), first_word_ms=statistics.median(first),
        step_us=step, step_us_mean=statistics.fmean(medians),
        step_us_sd=statistics.stdev(medians) if len(medians) > 1 else 0.0,
        step_p90_us=float(np.percentile(every, 90)), step_p99_us=float(np.percentile(every, 99)),
        words_per_second=combo.batch * 1e6 / step, floor_us=floor, of_floor=floor / step if floor else None,
        peak_rss_mb=peak_rss_mb(), load_before=before, load_after=load_average(), paced=paced, samples=samples,
    )  # fmt: skip


def batch_contexts(model: Model, batch: int) -> list[list[int]]:
    """`batch` different contexts of the model's own words, the same on every run."""
    vocabulary = len(model.vocabulary)
    return [[(7 * prompt + k) % vocabulary for k in range(model.window)] for prompt in range(batch)]


def step_gaps_us(model: Model, batch: int, sampling: Sampling, warmup: int, steps: int) -> np.ndarray:
    """Microseconds between consecutive steps of one batched stream (a step: a word for every
    prompt), `steps` of them after `warmup`."""
    gaps = np.empty(steps, np.int64)
    made = model.stream_batch_ids(batch_contexts(model, batch), warmup + steps + 1, sampling)
    words = (token for n, (_, token) in enumerate(made, 1) if n % batch == 0)  # the last prompt's: a step done
    for _ in range(warmup + 1):
        next(words)
    last = time.perf_counter_ns()
    for i in range(steps):
        next(words)
        now = time.perf_counter_ns()
        gaps[i], last = now - last, now
    made.close()
    return gaps / 1000


def word_gaps_us(model: Model, sampling: Sampling, warmup: int, words: int) -> np.ndarray:
    """Microseconds between consecutive words of one stream, `words` of them after `warmup`."""
    return step_gaps_us(model, 1, sampling, warmup, words)


def word_stepper(model: Model, sampling: Sampling) -> Callable[[], int]:
    """One more generated word per call, from a stream that does not end: what per-word benchmarks time."""
    return functools.partial(next, model.stream_ids(range(model.window), MAX_WORDS, sampling))


def pace(model: Model, call: str, pace_ms: float, calls: int) -> Paced:
    """`calls` of `call` made `pace_ms` apart: their latencies, and the CPU burnt between them."""
    make = _caller(model, call)
    make()  # the first call's costs (buffers, caches) are not the pace's
    latencies, cpu_in, wall_in = [], 0.0, 0.0
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    tick = started_wall
    for _ in range(calls):
        tick += pace_ms / 1000
        time.sleep(max(0.0, tick - time.perf_counter()))
        cpu, wall = time.process_time(), time.perf_counter()
        make()
        cpu_in, wall_in = cpu_in + time.process_time() - cpu, wall_in + time.perf_counter() - wall
        latencies.append(1e6 * (time.perf_counter() - wall))
    idle_wall = time.perf_counter() - started_wall - wall_in
    idle_cpu = (time.process_time() - started_cpu - cpu_in) / idle_wall if idle_wall > 0 else 0.0
    return Paced(call, pace_ms, float(np.median(latencies)), float(np.percentile(latencies, 90)),
                 round(idle_cpu, 4), [round(x, 2) for x in latencies])  # fmt: skip


def _caller(model: Model, call: str) -> Callable[[], object]:
    """A call of an app: `suggest` after a text of the model's own words, a typist's next word
    (`typing`: the text grows by the word it suggested), a typist's next letter (`letter`: the
    suggestions before each letter of the model's words, a space after each word), or one more
    word of a stream."""
    if call == "word":
        return word_stepper(model, Sampling(1.0, seed=0))
    words = itertools.cycle(model.vocabulary[: 4 * model.window])
    if call == "suggest":
        return lambda: model.suggest(" ".join(itertools.islice(words, model.window)) + " ")
    typist = model.typing()
    text = [" ".join(itertools.islice(words, model.window))]

    def type_a_word() -> object:
        found = typist.suggest(text[0] + " ")
        text[0] += " " + (found[0].word if found else next(words))
        return found

    if call == "typing":
        return type_a_word
    letters = iter(())

    def type_a_letter() -> object:
        nonlocal letters
        typed = next(letters, None)
        if typed is None:  # a word is done: its space, then the next one's letters
            word, typed = next(words), text[0] + " "
            letters = iter([typed + word[:count] for count in range(1, len(word) + 1)])
            text[0] = typed + word
        return typist.suggest(typed)

    return type_a_letter


# --- fable-bench --tune ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TuneRow:
    file: Path
    quantization: str
    threads: int
    spin: bool
    word_us: float  # median over every round of a stream
    call_us: float  # median latency of `suggest` calls at the pace
    idle_cpu: float  # CPU seconds a wall second between those calls
    vouched: bool  # the named file, or a file its export's report vouches for: a candidate
    batch_us: float = 0.0  # median µs a step of a batch of BATCH_SIZE prompts (a word for each)
    batched: bool = True  # the file decodes a batch's rows together (else one prompt after another)


@dataclass(frozen=True)
class TuneResult:
    rows: list[TuneRow]
    choices: dict[str, TuneRow]  # by pattern, and for batches (BATCH): the file and setting each runs
    best: dict[str, dict[Path, TuneRow]]  # by pattern and for batches, the best setting of each file
    cache: Path


def tune(
    path: Path, words: int = 1500, rounds: int = 3, temperature: float = 1.0, pace_ms: float = 200.0,
    calls: int = 20, report: Report = lambda _: None,
) -> TuneResult:  # fmt: skip
    """Time each file of `path`'s export × threads 1..cores × spinning off and on (with more than
    one thread): a stream, sampled, in `rounds` interleaved rounds (so that a slow spell of the
    machine hits every setting alike), a batch of BATCH_SIZE prompts as well, and `suggest` calls
    `pace_ms` apart with the CPU burnt between them. Remember, for each pattern, the fastest
    vouched-for file and each file's best setting: for streams the fastest; for paced calls the
    fastest of those that burn at most MAX_IDLE_CPU between calls; for batches the fastest of the
    files that decode a batch's rows together."""
    variants = export_variants(path)
    # One thread has no pool of workers to spin: (1, spinning) would only time (1, not spinning) again.
    here = [(t, spin) for t in range(1, (os.cpu_count() or 1) + 1) for spin in (False, True) if t > 1 or not spin]
    grid = [(file, t, spin) for file, _ in variants for t, spin in here]
    gaps: dict[tuple[Path, int, bool], list[np.ndarray]] = {key: [] for key in grid}
    batch_gaps: dict[tuple[Path, int, bool], list[np.ndarray]] = {key: [] for key in grid}
    batched: dict[Path, bool] = {}
    paced: dict[tuple[Path, int, bool], Paced] = {}
    quantization: dict[Path, str] = {}
    sampling = Sampling(temperature, seed=0)
    for number in range(rounds):
        for done, (file, t, spin) in enumerate(grid):
            report(f"round {number + 1}/{rounds}: {file.name}, {t} thread{'s' if t > 1 else ''}, spin {spin} "
                   f"({done + 1}/{len(grid)})")  # fmt: skip
            model = Model(file, t, "onnxruntime", spin)  # loaded per round: one model in memory at a time
            quantization[file], batched[file] = model.metadata.quantization, model.metadata.batched
            gaps[file, t, spin].append(word_gaps_us(model, sampling, max(words // 10, 20), max(words // rounds, 1)))
            steps = max(words // (rounds * BATCH_SIZE), 3)  # as many words as the stream's
            batch_gaps[file, t, spin].append(step_gaps_us(model, BATCH_SIZE, sampling, max(steps // 10, 2), steps))
            if number == rounds - 1:
                paced[file, t, spin] = pace(model, "suggest", pace_ms, calls)
            del model
    vouched = dict(variants)
    median = lambda samples: float(np.median(np.concatenate(samples)))  # noqa: E731
    rows = [TuneRow(file, quantization[file], t, spin, median(gaps[file, t, spin]), paced[file, t, spin].p50_us,
                    paced[file, t, spin].idle_cpu, vouched[file], median(batch_gaps[file, t, spin]), batched[file])
            for file, t, spin in grid]  # fmt: skip
    best = {pattern: {file: best_of(pattern, [r for r in rows if r.file == file]) for file, _ in variants}
            for pattern in TUNED}  # fmt: skip
    choices = {pattern: best_of(pattern, [r for r in best[pattern].values() if r.vouched]) for pattern in PATTERNS}
    together = [r for r in best[BATCH].values() if r.vouched and r.batched]  # the named file may be row by row
    choices[BATCH] = best_of(BATCH, together or [r for r in best[BATCH].values() if r.vouched])
    settings = {file: {p: setting_of(p, best[p][file]) for p in TUNED} for file, _ in variants}
    when = datetime.datetime.now().isoformat(timespec="seconds")
    cache = remember(path, {p: row.file for p, row in choices.items()}, settings, when)
    return TuneResult(rows, choices, best, cache)
