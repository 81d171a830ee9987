"""fable-bench: latency of fable models on this machine, with the runtime's dependencies only."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ..atomic import write_text
from ..benchmark import MAX_BENCH_WORDS, MIN_BENCH_WORDS, BenchResult, BenchSettings, bench_model, machine
from ..errors import UsageError
from ..model import MAX_THREADS, default_model_path
from ..sampling import MIN_TEMPERATURE
from . import BACKEND_DEFAULT, BACKEND_HELP, Backend, columns, new_app, run_app

app = new_app()
_d = BenchSettings()
SHIPPED = ("fable.onnx", "fable.int8.onnx")


@app.command(help="Time load, first word and per-word decode of each model (default: the shipped ones).")
def main(
    model: Annotated[list[Path] | None, typer.Option("--model", "-m", metavar="FILE", help="a .onnx file; repeat for several", show_default="the shipped fp32 and int8")] = None,
    shipped: Annotated[bool, typer.Option("--shipped", help="time the shipped fp32 and int8 files too, after the --model ones")] = False,
    threads: Annotated[int, typer.Option(min=1, max=MAX_THREADS, help="intra-op threads")] = _d.threads,
    backend: Annotated[Backend | None, typer.Option(help=BACKEND_HELP, show_default=BACKEND_DEFAULT)] = None,
    words: Annotated[int, typer.Option(min=MIN_BENCH_WORDS, max=MAX_BENCH_WORDS, help="words timed per model, after warm-up")] = _d.words,
    temperature: Annotated[float, typer.Option(min=MIN_TEMPERATURE, help="sampling temperature while timing; 0 is greedy")] = _d.temperature,
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the results, with the machine's description, here", show_default="no file")] = None,
) -> None:  # fmt: skip
    if json_path is not None and (json_path.is_dir() or not json_path.parent.is_dir()):
        raise UsageError(f"--json {json_path} is a folder or in a missing one; give a file path in an existing folder")
    shipped_paths = [default_model_path().parent / name for name in SHIPPED]
    paths = [*(model or []), *(shipped_paths if shipped or not model else [])]
    settings = BenchSettings(
        threads=threads, backend=backend.value if backend else None, words=words, temperature=temperature
    )
    results = []
    for number, path in enumerate(paths, 1):

        def progress(stage: str, name: str = path.name, number: int = number) -> None:
            if sys.stderr.isatty():
                print(f"\r[{number}/{len(paths)}] {name}: {stage}\033[K", end="", file=sys.stderr, flush=True)

        results.append(bench_model(path, settings, progress))
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr)
    typer.echo(table(results))
    if json_path is not None:
        payload = {"machine": machine(), "settings": asdict(settings), "results": [r.as_dict() for r in results]}
        write_text(json_path, json.dumps(payload, indent=2) + "\n")
        typer.echo(f"wrote {json_path}")


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
        (label, r.backend, r.quantization, f"{r.load_ms:.1f}", f"{r.first_word_ms:.3f}", f"{r.word_p50_us:.1f}",
         f"{r.word_p90_us:.1f}", f"{r.word_p99_us:.1f}", f"{r.words_per_second:,.0f}", f"{r.peak_rss_mb:.0f}")
        for label, r in zip(labels, results)
    ]  # fmt: skip
    return columns(header, rows)


def entry() -> None:
    run_app(app, "fable-bench")


if __name__ == "__main__":
    entry()
