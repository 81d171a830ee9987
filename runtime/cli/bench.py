"""fable-bench: latency of fable models on this machine, with the runtime's dependencies only.

fable-bench                              the shipped files, 5 repetitions each
fable-bench --threads 1,2 --spin off,on  a sweep: every combination, one row each
fable-bench --pace 200                   also calls at an app's pace: latency and idle CPU
fable-bench --tune                       the sweep that load() and fable-run then use here
fable-bench compare a.json b.json        runs of two devices or builds, side by side
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from .. import contract
from ..atomic import write_text
from ..backend import BACKENDS, default_backend
from ..bench_report import FORMATS, check_plotting, compare, payload, plot, render
from ..benchmark import (
    MAX_BENCH_WORDS,
    MIN_BENCH_WORDS,
    PACE_CALLS,
    BenchSettings,
    Combination,
    TuneResult,
    combinations,
    memory_bandwidth,
    sweep,
    tune,
)
from ..engine import MAX_BATCH
from ..errors import UsageError
from ..machine import describe as describe_machine
from ..model import MAX_THREADS, Model, default_model_path, load
from ..sampling import MAX_TEMPERATURE, MIN_TEMPERATURE
from ..tuning import BATCH, BATCH_SIZE, PATTERNS, check_writable, micros_of
from . import choices, columns, new_app, run_app

app = new_app()
_d = BenchSettings()
SHIPPED = tuple(contract.FILE_NAMES.values())  # those of them that are installed
Format = choices("Format", FORMATS)
Call = choices("Call", PACE_CALLS)
DEFAULT_FORMAT, DEFAULT_CALL = Format("md"), Call(_d.call)
MAX_REPETITIONS = 1000
MAX_PACE_MS = 60_000.0
T = TypeVar("T")


@app.callback(
    invoke_without_command=True, help="Time models on this machine: load, first word, every step, and calls at a pace."
)
def main(
    ctx: typer.Context,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", metavar="FILES", help="a .onnx file, or several separated by commas; repeat for more", show_default="the shipped files")] = None,
    shipped: Annotated[bool, typer.Option("--shipped", help="time the shipped files too, after the --model ones")] = False,
    threads: Annotated[str, typer.Option(metavar="LIST", help="intra-op threads, e.g. 1,2,4")] = "1",
    spin: Annotated[str, typer.Option(metavar="LIST", help="onnxruntime's threads spin between runs: off, on, or off,on")] = "off",
    backend: Annotated[str | None, typer.Option(metavar="LIST", help=f"what runs the model: {', '.join(BACKENDS)}, or both", show_default="onnxruntime if installed, else numpy")] = None,
    batch: Annotated[str, typer.Option(metavar="LIST", help="prompts decoded together, e.g. 1,8: a step makes a word for each")] = "1",
    repetitions: Annotated[int, typer.Option("--repetitions", "-r", min=1, max=MAX_REPETITIONS, help="timed repetitions after the warm-up: median, mean ± sd")] = _d.repetitions,
    words: Annotated[int, typer.Option(min=MIN_BENCH_WORDS, max=MAX_BENCH_WORDS, help="steps timed per repetition (--tune: per setting)")] = _d.words,
    temperature: Annotated[float, typer.Option(min=MIN_TEMPERATURE, max=MAX_TEMPERATURE, help="sampling temperature while timing; 0 is greedy")] = _d.temperature,
    pace: Annotated[float | None, typer.Option(metavar="MS", min=1.0, max=MAX_PACE_MS, help="also make --calls calls MS ms apart, as an app does (--tune: 200)", show_default="no paced calls")] = None,
    calls: Annotated[int, typer.Option(min=1, max=100_000, help="calls made at the --pace")] = _d.calls,
    call: Annotated[Call, typer.Option(help="the paced call: suggest afresh, suggest as a person types, or one more word")] = DEFAULT_CALL,
    tuned: Annotated[bool, typer.Option("--tuned", help="add rows for the files and settings fable.load() runs here, for each pattern of use")] = False,
    tune_: Annotated[bool, typer.Option("--tune", help="time every file of the model's export x threads x spinning, streamed and paced, and remember the best for fable-run and fable.load()")] = False,
    output: Annotated[Format, typer.Option("--output", "-o", help="what to print: a Markdown table, CSV, JSON (every sample) or JSON lines")] = DEFAULT_FORMAT,
    out: Annotated[Path | None, typer.Option(metavar="FILE", help="also write the run as JSON here, for `fable-bench compare`", show_default="no file")] = None,
    bandwidth: Annotated[bool, typer.Option("--bandwidth/--no-bandwidth", help="measure the copy bandwidth first, for each row's floor")] = True,
    plot_to: Annotated[Path | None, typer.Option("--plot", metavar="FILE.png", help="draw µs a step against threads (needs matplotlib)", show_default="no plot")] = None,
) -> None:  # fmt: skip
    if ctx.invoked_subcommand is not None:
        return
    for path in (out, plot_to):
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            raise UsageError(f"{path} is a folder or in a missing one; give a file path in an existing folder")
    if plot_to is not None:
        check_plotting()
    machine = describe_machine()
    if tune_:
        if batch != "1":
            raise UsageError("--tune times single streams; leave out --batch")
        typer.echo(tuned_run(model, words, temperature, pace or 200.0, calls))
        return
    settings = BenchSettings(repetitions=repetitions, words=words, temperature=temperature, pace_ms=pace,
                             calls=calls, call=call.value)  # fmt: skip
    combos = combinations(
        model_paths(model, shipped), parse_list("--backend", backend, _backend, None, None) if backend else [None],
        parse_list("--threads", threads, int, 1, MAX_THREADS), parse_list("--spin", spin, _switch, None, None),
        parse_list("--batch", batch, int, 1, MAX_BATCH),
    )  # fmt: skip
    probe = memory_bandwidth() if bandwidth else None
    rows = sweep(combos, settings, probe, progress)
    if tuned:
        rows += tuned_rows(model, settings, probe)
    clear_progress()
    said = asdict(settings)
    typer.echo(render(output.value, machine, rows, probe, said))
    if out is not None:
        write_text(out, json.dumps(payload(machine, rows, probe, said), indent=2) + "\n")
        typer.echo(f"wrote {out}", err=True)
    if plot_to is not None:
        plot(rows, plot_to, machine)
        typer.echo(f"drew {plot_to}", err=True)


@app.command(
    name="compare", help="Compare runs that --out wrote: each row's µs a step, and its speed against the first run's."
)
def compare_runs(
    files: Annotated[list[Path], typer.Argument(help="two or more JSON files of fable-bench --out", show_default=False)],
) -> None:  # fmt: skip
    typer.echo(compare(files))


def parse_list(flag: str, text: str, kind: Callable[[str], T], low: int | None, high: int | None) -> list[T]:
    """ "1,2,4" → [1, 2, 4]: each value once, in the order given; a UsageError naming `flag` else."""
    values: list[T] = []
    for part in (p.strip() for p in text.split(",")):
        try:
            value = kind(part)
        except ValueError as error:
            raise UsageError(f"{flag} takes values separated by commas; {part!r} is not one ({error})") from None
        if low is not None and not low <= value <= high:  # type: ignore[operator]
            raise UsageError(f"{flag} values must be from {low} to {high}, not {value}")
        if value not in values:
            values.append(value)
    return values


def _switch(text: str) -> bool:
    if text not in ("off", "on"):
        raise ValueError("say off or on")
    return text == "on"


def _backend(text: str) -> str:
    if text not in BACKENDS:
        raise ValueError(f"say {' or '.join(BACKENDS)}")
    return text


def model_paths(given: Sequence[str] | None, shipped: bool) -> list[Path]:
    """The --model files (each may list several), then the shipped ones when asked or when none given."""
    paths = [Path(part.strip()) for value in given or [] for part in value.split(",") if part.strip()]
    folder = default_model_path().parent
    if shipped or not paths:
        paths += [folder / name for name in SHIPPED if (folder / name).is_file()]
    return paths


def tuned_rows(given: Sequence[str] | None, settings: BenchSettings, probe) -> list:
    """Rows for what `fable.load()` runs here (without --threads or --spin), a row per pattern."""
    asked = model_paths(given, False)[0] if given else None
    loaded = {pattern: load(asked, pattern=pattern) for pattern in PATTERNS}
    rows = []
    for pattern, model in loaded.items():
        combo = Combination(model.path, model.backend, model.threads, model.spin, 1)
        row = sweep([combo], settings, probe, progress, loader=lambda _, p=pattern: load(asked, pattern=p))[0]
        rows.append(row)
        typer.echo(f"load(pattern={pattern!r}): {model.settings}", err=True)
    return rows


def tuned_run(models: Sequence[str] | None, words: int, temperature: float, pace_ms: float, calls: int) -> str:
    """fable-bench --tune: of one model (default: the shipped default), its export's files."""
    if default_backend() != "onnxruntime":
        raise UsageError("--tune times onnxruntime's settings, and onnxruntime is not installed here")
    paths = model_paths(models, False) if models else [default_model_path()]
    if len(paths) > 1:
        raise UsageError("--tune takes one --model: the file you run (its export's other files are timed too)")
    Model(paths[0])  # a damaged or missing file, or a cache that cannot be written: one line before minutes of timing
    check_writable()
    result = tune(paths[0], words, temperature=temperature, pace_ms=pace_ms, calls=calls, report=progress)
    clear_progress()
    lines = [tune_table(result)]
    for pattern, row in result.choices.items():
        unit = {"stream": "a word", "paced": f"a call {pace_ms:g} ms apart", BATCH: f"a step of {BATCH_SIZE} prompts"}
        lines.append(f"{pattern}: {row.file.name} with {row.threads} thread{'s' if row.threads > 1 else ''}, spinning "
                     f"{'on' if row.spin else 'off'}: {micros_of(pattern, row):.1f} µs {unit[pattern]}, "
                     f"{row.idle_cpu:.3f} CPU s/s idle")  # fmt: skip
    lines.append(f"remembered in {result.cache}: fable-run and fable.load() use it on this machine")
    return "\n".join(lines)


def tune_table(result: TuneResult) -> str:
    header = ("file", "quant", "threads", "spin", "word p50 µs", "call p50 µs", f"{BATCH_SIZE}-batch step p50 µs",
              "idle CPU s/s", "note")  # fmt: skip
    rows = []
    for r in result.rows:
        notes = [f"chosen for {p}" for p, row in result.choices.items() if _setting(row) == _setting(r)]
        notes += [f"the file's best for {p}" for p, files in result.best.items()
                  if _setting(files[r.file]) == _setting(r) != _setting(result.choices[p])]  # fmt: skip
        if not r.vouched:
            notes.append("not vouched for by a report")
        rows.append((r.file.name, r.quantization, str(r.threads), "on" if r.spin else "off", f"{r.word_us:.1f}",
                     f"{r.call_us:.1f}", f"{r.batch_us:.1f}", f"{r.idle_cpu:.3f}", ", ".join(notes)))  # fmt: skip
    return columns(header, rows)


def _setting(row) -> tuple:
    return row.file, row.threads, row.spin


def progress(stage: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{stage}\033[K", end="", file=sys.stderr, flush=True)


def clear_progress() -> None:
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr)


def entry() -> None:
    run_app(app, "fable-bench")


if __name__ == "__main__":
    entry()
