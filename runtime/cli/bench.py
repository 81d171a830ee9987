"""fable-bench: latency of fable models on this machine, with the runtime's dependencies only."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from .. import contract
from ..atomic import write_text
from ..backend import default_backend
from ..benchmark import (
    MAX_BENCH_WORDS,
    MIN_BENCH_WORDS,
    BatchResult,
    BenchResult,
    BenchSettings,
    TuneResult,
    bench_batches,
    bench_model,
    tune,
)
from ..engine import MAX_BATCH
from ..errors import UsageError
from ..machine import describe as describe_machine
from ..model import MAX_THREADS, Model, default_model_path
from ..sampling import MAX_TEMPERATURE, MIN_TEMPERATURE
from ..tuning import check_writable
from . import BACKEND_DEFAULT, BACKEND_HELP, Backend, columns, new_app, run_app

app = new_app()
_d = BenchSettings()
SHIPPED = tuple(contract.FILE_NAMES.values())  # those of them that are installed


@app.command(help="Time load, first word and per-word decode of each model (default: the shipped ones).")
def main(
    model: Annotated[list[Path] | None, typer.Option("--model", "-m", metavar="FILE", help="a .onnx file; repeat for several", show_default="the shipped files")] = None,
    shipped: Annotated[bool, typer.Option("--shipped", help="time the shipped files too, after the --model ones")] = False,
    threads: Annotated[int, typer.Option(min=1, max=MAX_THREADS, help="intra-op threads")] = _d.threads,
    spin: Annotated[bool, typer.Option("--spin/--no-spin", help="let onnxruntime's threads spin between runs")] = _d.spin,
    backend: Annotated[Backend | None, typer.Option(help=BACKEND_HELP, show_default=BACKEND_DEFAULT)] = None,
    words: Annotated[int, typer.Option(min=MIN_BENCH_WORDS, max=MAX_BENCH_WORDS, help="words timed per model (--tune: per setting), after warm-up")] = _d.words,
    temperature: Annotated[float, typer.Option(min=MIN_TEMPERATURE, max=MAX_TEMPERATURE, help="sampling temperature while timing; 0 is greedy")] = _d.temperature,
    tune_: Annotated[bool, typer.Option("--tune", help="time every file of the model's export x threads x spinning, and remember the fastest for fable-run and fable.load()")] = False,
    batch: Annotated[str | None, typer.Option(metavar="SIZES", help="time batches of these sizes instead, e.g. 1,4,8,16: per-word latency and words/s of all prompts", show_default="no batches")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the results, with the machine's description, here", show_default="no file")] = None,
) -> None:  # fmt: skip
    if json_path is not None and (json_path.is_dir() or not json_path.parent.is_dir()):
        raise UsageError(f"--json {json_path} is a folder or in a missing one; give a file path in an existing folder")
    if tune_ and batch is not None:
        raise UsageError("--tune and --batch each time something else; give one of them")
    folder = default_model_path().parent
    shipped_paths = [folder / name for name in SHIPPED if (folder / name).is_file()]
    paths = [*(model or []), *(shipped_paths if shipped or not model else [])]
    payload: dict = {"machine": describe_machine()}
    if tune_:
        payload |= tuned(model, words, temperature)
    elif batch is not None:
        sizes = batch_sizes(batch)
        results = [r for path in paths for r in bench_batches(Model(path, threads, _name(backend), spin), sizes)]
        typer.echo(batch_table(results))
        payload |= {"threads": threads, "spin": spin, "batches": [r.as_dict() for r in results]}
    else:
        settings = BenchSettings(
            threads=threads, spin=spin, backend=_name(backend), words=words, temperature=temperature
        )
        results = [
            bench_model(path, settings, progress(number, len(paths), path.name)) for number, path in enumerate(paths, 1)
        ]
        clear_progress()
        typer.echo(table(results))
        payload |= {"settings": asdict(settings), "results": [r.as_dict() for r in results]}
    if json_path is not None:
        write_text(json_path, json.dumps(payload, indent=2, default=str) + "\n")
        typer.echo(f"wrote {json_path}")


def _name(backend: Backend | None) -> str | None:
    return backend.value if backend else None


def progress(number: int, total: int, name: str):
    def show(stage: str) -> None:
        if sys.stderr.isatty():
            print(f"\r[{number}/{total}] {name}: {stage}\033[K", end="", file=sys.stderr, flush=True)

    return show


def clear_progress() -> None:
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr)


def batch_sizes(text: str) -> list[int]:
    """ "1,4,8,16" → [1, 4, 8, 16], or a UsageError naming --batch."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or not all(1 <= size <= MAX_BATCH for size in sizes):
        raise UsageError(
            f"--batch takes batch sizes from 1 to {MAX_BATCH} separated by commas, like 1,4,8,16; not {text!r}"
        )
    return sizes


def tuned(models: list[Path] | None, words: int, temperature: float) -> dict:
    """fable-bench --tune: of one model (default: the shipped default), its export's files."""
    if default_backend() != "onnxruntime":
        raise UsageError("--tune times onnxruntime's settings, and onnxruntime is not installed here")
    if models and len(models) > 1:
        raise UsageError("--tune takes one --model: the file you run (its export's other files are timed too)")
    path = models[0] if models else default_model_path()
    Model(path)  # a damaged or missing file, or a cache that cannot be written: one line before minutes of timing
    check_writable()
    result = tune(path, words, temperature=temperature, report=progress(1, 1, "tune"))
    clear_progress()
    typer.echo(tune_table(result))
    choice = result.choice
    typer.echo(
        f"fastest: {choice.file.name} with {choice.threads} thread{'s' if choice.threads > 1 else ''}, "
        f"spinning {'on' if choice.spin else 'off'}: {choice.word_us:.1f} µs a word"
    )
    typer.echo(f"remembered in {result.cache}: fable-run and fable.load() use it on this machine")
    return {"tune": {"model": str(path), "choice": asdict(choice), "rows": [asdict(r) for r in result.rows]}}


def tune_table(result: TuneResult) -> str:
    fastest = {(r.file, r.threads, r.spin) for r in result.best.values()}
    header = ("file", "quant", "threads", "spin", "word p50 µs", "vs default", "note")
    first = result.rows[0].word_us  # the named file, 1 thread, no spinning: the defaults
    rows = []
    for r in result.rows:
        mark = "chosen" if r == result.choice else "fastest for file" if (r.file, r.threads, r.spin) in fastest else ""
        if not r.vouched:
            mark = (mark + ", " if mark else "") + "not vouched for by a report"
        rows.append((r.file.name, r.quantization, str(r.threads), "on" if r.spin else "off", f"{r.word_us:.1f}",
                     f"{first / r.word_us:.2f}x", mark))  # fmt: skip
    return columns(header, rows)


def batch_table(results: list[BatchResult]) -> str:
    header = ("model", "batch", "per-word latency µs", "words/s (all prompts)", "vs batch 1")
    labels = model_labels([r.model for r in results])
    single = {r.model: r.words_per_second for r in results if r.batch == 1}
    rows = [
        (label, str(r.batch), f"{r.step_us:.1f}", f"{r.words_per_second:,.0f}",
         f"{r.words_per_second / single[r.model]:.2f}x" if r.model in single else "")
        for label, r in zip(labels, results)
    ]  # fmt: skip
    return columns(header, rows)


def model_labels(paths: list[str]) -> list[str]:
    """File names, with as many parent folders as it takes to tell apart files of the same name."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = 1
    while depth < max(len(p) for p in parts) and len({p[-depth:] for p in parts}) < len(set(parts)):
        depth += 1
    return [str(Path(*p[-depth:])) for p in parts]


def table(results: list[BenchResult]) -> str:
    header = (
        "model",
        "backend",
        "quant",
        "threads",
        "load ms",
        "first word ms",
        "word p50 µs",
        "p90 µs",
        "p99 µs",
        "words/s",
        "peak RSS MB",
    )
    labels = model_labels([r.model for r in results])
    rows = [
        (label, r.backend, r.quantization, f"{r.threads}{' spin' if r.spin else ''}", f"{r.load_ms:.1f}", f"{r.first_word_ms:.3f}", f"{r.word_p50_us:.1f}",
         f"{r.word_p90_us:.1f}", f"{r.word_p99_us:.1f}", f"{r.words_per_second:,.0f}", "—" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}")
        for label, r in zip(labels, results)
    ]  # fmt: skip
    return columns(header, rows)


def entry() -> None:
    run_app(app, "fable-bench")


if __name__ == "__main__":
    entry()
