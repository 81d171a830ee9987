"""fable-bench: latency of fable models on this machine, with the runtime's dependencies only."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import typer

from ..atomic import write_text
from ..benchmark import BenchResult, BenchSettings, bench_model, machine
from ..errors import UsageError
from ..model import default_model_path
from . import run_app

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
_d = BenchSettings()


@app.command(help="Time load, first word and per-word decode of each model (default: the shipped ones).")
def main(
    model: list[Path] = typer.Option(None, "--model", "-m", help="a .onnx file; repeat for several  [default: the shipped fp32 and int8]"),
    threads: int = typer.Option(_d.threads, help="intra-op threads"),
    words: int = typer.Option(_d.words, help="words timed per model, after warm-up"),
    temperature: float = typer.Option(_d.temperature, help="sampling temperature while timing; 0 is greedy"),
    json_path: Path = typer.Option(None, "--json", help="also write the results, with the machine's description, here"),
) -> None:  # fmt: skip
    if not 1 <= threads <= 256 or not 10 <= words <= 10_000_000 or temperature < 0:
        raise UsageError("--threads must be 1 to 256, --words 10 to 10,000,000, --temperature 0 or more")
    if json_path is not None and (json_path.is_dir() or not json_path.parent.is_dir()):
        raise UsageError(f"--json {json_path} is a folder or in a missing one; give a file path in an existing folder")
    shipped = default_model_path().parent
    paths = model or [shipped / "fable.onnx", shipped / "fable.int8.onnx"]
    settings = BenchSettings(threads=threads, words=words, temperature=temperature)
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


def table(results: list[BenchResult]) -> str:
    header = ("model", "quant", "load ms", "first word ms", "word p50 µs", "p90 µs", "p99 µs", "words/s", "peak RSS MB")
    rows = [header] + [
        (Path(r.model).name, r.quantization, f"{r.load_ms:.1f}", f"{r.first_word_ms:.3f}", f"{r.word_p50_us:.1f}",
         f"{r.word_p90_us:.1f}", f"{r.word_p99_us:.1f}", f"{r.words_per_second:,.0f}", f"{r.peak_rss_mb:.0f}")
        for r in results
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join(lines[:1] + ["  ".join("-" * w for w in widths)] + lines[1:])


def entry() -> None:
    run_app(app, "fable-bench")


if __name__ == "__main__":
    entry()
