"""fable-export: a checkpoint to fp32 and int8 ONNX files that prove themselves against PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer

from runtime import contract
from runtime.atomic import prepare_folder
from runtime.cli import run_app
from runtime.errors import UsageError

from ..checkpoint import load_checkpoint
from .exporter import FP32_NAME, INT8_NAME, REPORT_NAME, ExportOptions, export_checkpoint

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
_d = ExportOptions()


@app.command(help=f"Write OUT/{FP32_NAME}, OUT/{INT8_NAME} and OUT/{REPORT_NAME}, only if every guard passes.")
def main(
    checkpoint: Path = typer.Argument(..., help="checkpoint.pt written by fable-train"),
    out: Path = typer.Option(None, help="folder for the model files and the report  [default: beside the checkpoint, in exported/]"),
    graph: str = typer.Option(_d.graph, help="step (fast decode, what the runtime ships) or window (plain)"),
    max_fp32_logit_diff: float = typer.Option(_d.max_fp32_logit_diff, help="largest |fp32 logit - torch| allowed"),
    min_int8_agreement: float = typer.Option(_d.min_int8_agreement, help="least share of windows whose int8 next word is torch's"),
    max_int8_accuracy_drop: float = typer.Option(_d.max_int8_accuracy_drop, help="most accuracy points int8 may lose against fp32"),
    max_float_elements: int = typer.Option(_d.max_float_elements, help="no float weight this large may stay in the int8 file"),
    max_windows: int = typer.Option(_d.max_windows, help="measure at most this many windows (an even sample)"),
) -> None:  # fmt: skip
    if graph not in contract.GRAPHS:
        raise UsageError(f"--graph must be {' or '.join(contract.GRAPHS)}, not {graph!r}")
    if max_windows < 1 or max_float_elements < 1 or not 0 <= min_int8_agreement <= 1:
        raise UsageError("--max-windows and --max-float-elements must be 1 or more, --min-int8-agreement from 0 to 1")
    options = ExportOptions(
        graph=graph,
        max_fp32_logit_diff=max_fp32_logit_diff,
        min_int8_agreement=min_int8_agreement,
        max_int8_accuracy_drop=max_int8_accuracy_drop,
        max_float_elements=max_float_elements,
        max_windows=max_windows,
    )
    loaded = load_checkpoint(checkpoint)
    out = out or checkpoint.parent / "exported"
    prepare_folder(out)
    result = export_checkpoint(loaded, str(checkpoint), out, options)
    typer.echo(result.table)
    typer.echo(f"wrote {out / FP32_NAME}, {out / INT8_NAME} and {out / REPORT_NAME}")


def entry() -> None:
    run_app(app, "fable-export")


if __name__ == "__main__":
    entry()
