"""fable-export: a checkpoint to fp32 and int8 ONNX files that prove themselves against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fable import contract
from fable.atomic import output_folder
from fable.cli import choices, new_app, run_app
from fable.quantization import INT4_BLOCK_SIZES

from ..checkpoint import load_checkpoint
from .exporter import FP32_NAME, INT4_NAME, INT8_NAME, LSTM_NAME, REPORT_NAME, ExportOptions, export_checkpoint
from .guards import ExportGuardError

app = new_app()
_d = ExportOptions()
Graph = choices("Graph", contract.GRAPHS)
DEFAULT_GRAPH = Graph(_d.graph)
BlockSize = choices("BlockSize", [str(size) for size in INT4_BLOCK_SIZES])
DEFAULT_BLOCK_SIZE = BlockSize(str(_d.int4_block_size))


@app.command(
    help=f"Write OUT/{FP32_NAME}, OUT/{INT8_NAME} (with --int4, OUT/{INT4_NAME}) and OUT/{REPORT_NAME}, only if every guard passes; "
    f"model files of an earlier export that this one does not write are removed.",
)
def main(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint.pt written by fable-train", show_default=False)],
    out: Annotated[Path | None, typer.Option(help="folder for the model files and the report", show_default="exported/ beside the checkpoint")] = None,
    graph: Annotated[Graph, typer.Option(help="step (fast decode, what the runtime ships; a model trained on streams gets its stream graph), window (plain), or stream (a model trained on streams)")] = DEFAULT_GRAPH,
    int4: Annotated[bool, typer.Option("--int4", help=f"also write {INT4_NAME}: 4-bit weights (onnxruntime's MatMulNBits), held to the int8 guards")] = _d.int4,
    int4_block_size: Annotated[BlockSize, typer.Option(help="weights per int4 scale, along each column")] = DEFAULT_BLOCK_SIZE,
    lstm: Annotated[bool, typer.Option("--lstm", help=f"also write {LSTM_NAME}: one sequence on onnxruntime's LSTM operators, for CPUs without fast integer dot products (the tune picks)")] = _d.lstm,
    max_fp32_error_ratio: Annotated[float, typer.Option(min=0.0, help="largest |fp32 logit - torch| allowed, in units of torch's own float32 error (against the model in float64)")] = _d.max_fp32_error_ratio,
    max_fp32_logit_diff: Annotated[float | None, typer.Option(min=0.0, help="largest |fp32 logit - torch| allowed, in logits", show_default="no bound")] = _d.max_fp32_logit_diff,
    min_int8_agreement: Annotated[float, typer.Option(min=0.0, max=1.0, help="least share (a fraction) of the windows away from near-ties whose int8 (and int4) next word is torch's")] = _d.min_int8_agreement,
    near_tie_margin: Annotated[float, typer.Option(min=0.0, help="torch's top two logits closer than this are a near-tie, left out of that share")] = _d.near_tie_margin,
    max_int8_accuracy_drop: Annotated[float, typer.Option(min=0.0, help="most accuracy points int8 (and int4) may lose against fp32")] = _d.max_int8_accuracy_drop,
    max_heldout_perplexity_rise: Annotated[float, typer.Option(min=0.0, help="most int8 (and int4) perplexity on the held-out part may rise above fp32's, as a share (0.02 is 2%)")] = _d.max_heldout_perplexity_rise,
    max_float_elements: Annotated[int, typer.Option(min=1, help="no float weight this large may stay in the int8 file")] = _d.max_float_elements,
    max_windows: Annotated[int, typer.Option(min=1, help="measure at most this many windows trained on (an even sample)")] = _d.max_windows,
    max_heldout_windows: Annotated[int, typer.Option(min=1, help="measure at most this many held-out windows (an even sample)")] = _d.max_heldout_windows,
) -> None:  # fmt: skip
    options = ExportOptions(
        graph=graph.value,
        int4=int4,
        int4_block_size=int(int4_block_size.value),
        lstm=lstm,
        max_fp32_error_ratio=max_fp32_error_ratio,
        max_fp32_logit_diff=max_fp32_logit_diff,
        min_int8_agreement=min_int8_agreement,
        near_tie_margin=near_tie_margin,
        max_int8_accuracy_drop=max_int8_accuracy_drop,
        max_heldout_perplexity_rise=max_heldout_perplexity_rise,
        max_float_elements=max_float_elements,
        max_windows=max_windows,
        max_heldout_windows=max_heldout_windows,
    )
    loaded = load_checkpoint(checkpoint)
    out = out or checkpoint.parent / "exported"
    with output_folder(out):
        try:
            result = export_checkpoint(loaded, str(checkpoint), out, options)
        except ExportGuardError as refused:
            if refused.table:  # the figures that failed, before the one-line error
                typer.echo(refused.table)
            raise
    typer.echo(result.table)
    if result.removed:
        typer.echo(f"removed {', '.join(result.removed)}: of an earlier export, not written by this one "
                   f"({REPORT_NAME} lists every model file in {out})")  # fmt: skip
    written = [out / f.file for f in result.files] + [out / REPORT_NAME]
    typer.echo(f"wrote {', '.join(map(str, written[:-1]))} and {written[-1]}")


def entry() -> None:
    run_app(app, "fable-export")


if __name__ == "__main__":
    entry()
