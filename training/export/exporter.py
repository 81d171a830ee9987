"""fable-export's work: checkpoint → fp32 and int8 model files → proof → files in place.

Everything is written to temporary files beside the targets and checked there; only when every
guard passes do the temporary files replace the targets, each by one rename, in this order:
fable.onnx, fable.int8.onnx, report.json. A failed guard, an error or a kill leaves the previous
files as they were; a kill between renames can leave new model files beside the old report, never
a new report beside an old model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import onnx

from fable import __version__, contract
from fable.atomic import atomic_paths
from fable.contract import ModelMetadata, Provenance

from ..checkpoint import Checkpoint
from .graphs import build_step_graph, build_window_graph, weights_from_onnx
from .quantize import ExportGuardError, check_quantized, quantize_int8
from .report import FileReport, format_table, measure_file, select_windows, torch_reference
from .weights import Weights, weights_from_torch

FP32_NAME = "fable.onnx"
INT8_NAME = "fable.int8.onnx"
REPORT_NAME = "report.json"


@dataclass(frozen=True)
class ExportOptions:
    """What the export must prove before it replaces any file. Every threshold is a CLI option."""

    graph: str = contract.GRAPH_STEP
    max_fp32_logit_diff: float = 1e-4
    min_int8_agreement: float = 0.99  # share of windows whose greedy next word is PyTorch's
    max_int8_accuracy_drop: float = 0.5  # points of accuracy lost against fp32
    max_float_elements: int = 512 * 512  # no float matrix this big may survive quantization
    continuation_words: int = 32
    max_windows: int = 5000  # a larger corpus is measured on an even sample of its windows


@dataclass(frozen=True)
class ExportResult:
    fp32: FileReport
    int8: FileReport
    table: str
    report: dict


BUILDERS = {contract.GRAPH_STEP: build_step_graph, contract.GRAPH_WINDOW: build_window_graph}


def metadata_for(checkpoint: Checkpoint, graph: str, quantization: str) -> ModelMetadata:
    return ModelMetadata(
        graph=graph,
        vocabulary=tuple(checkpoint.vocabulary),
        config=checkpoint.config.model,
        quantization=quantization,
        provenance=Provenance(
            corpus_sha256=checkpoint.corpus_sha256,
            corpus_name=checkpoint.corpus_name,
            preset=checkpoint.config.preset,
            steps=checkpoint.step,
            accuracy=checkpoint.accuracy,
            device=checkpoint.device,
            seed=checkpoint.config.seed,
        ),
        producer=f"fable {__version__}",
    )


def with_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> onnx.ModelProto:
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, contract.metadata_to_props(meta))
    return model


def build_files(
    weights: Weights,
    meta: ModelMetadata,
    fp32_path: Path,
    int8_path: Path,
    max_float_elements: int,
    quantize: Callable[[Path, Path], None] = quantize_int8,
) -> None:
    """Write the fp32 and int8 files of `meta.graph` and check their structure (not their numbers)."""
    model = with_metadata(BUILDERS[meta.graph](weights, meta.config), replace(meta, quantization="fp32"))
    onnx.save(model, fp32_path)
    _check(fp32_path)
    quantize(fp32_path, int8_path)
    quantized = with_metadata(onnx.load(int8_path), replace(meta, quantization="int8"))
    check_quantized(quantized, max_float_elements)
    onnx.save(quantized, int8_path)
    _check(int8_path)


def export_checkpoint(
    checkpoint: Checkpoint,
    checkpoint_name: str,
    out: Path,
    options: ExportOptions = ExportOptions(),
    quantize: Callable[[Path, Path], None] = quantize_int8,
) -> ExportResult:
    """Export, prove, and only then put the files in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    torch_model = checkpoint.build_model()
    meta = metadata_for(checkpoint, options.graph, "fp32")
    contexts, labels, total = select_windows(checkpoint.ids, meta.config.window, options.max_windows)
    reference = torch_reference(torch_model, contexts, labels, options.continuation_words)
    with atomic_paths(out / FP32_NAME, out / INT8_NAME, out / REPORT_NAME) as (fp32_tmp, int8_tmp, report_tmp):
        build_files(weights_from_torch(torch_model), meta, fp32_tmp, int8_tmp, options.max_float_elements, quantize)
        fp32 = measure_file(fp32_tmp, reference, FP32_NAME)
        int8 = measure_file(int8_tmp, reference, INT8_NAME)
        int8 = replace(int8, accuracy_drop_points=100 * (fp32.accuracy - int8.accuracy))
        _guard_numbers(fp32, int8, options)
        report = {
            "producer": f"fable {__version__}",
            "checkpoint": checkpoint_name,
            "corpus": {"name": checkpoint.corpus_name, "sha256": checkpoint.corpus_sha256},
            "windows_measured": len(labels),
            "windows_total": total,
            "torch": {"correct": reference.correct, "accuracy": reference.correct / len(labels)},
            "files": {r.file: r.as_dict() for r in (fp32, int8)},
            "guards": asdict(options),
        }
        report_tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        # Leaving the block renames each temporary file over its target, in the order opened.
    return ExportResult(fp32, int8, format_table([fp32, int8], reference, total), report)


def window_baseline(fp32_step_file: Path, out_dir: Path) -> tuple[Path, Path]:
    """The plain window graphs (fp32, int8) with the weights and metadata of a shipped step file,
    built by this exporter: the baseline the fast decode is measured against."""
    model = onnx.load(fp32_step_file)
    meta = contract.metadata_from_props({p.key: p.value for p in model.metadata_props}, str(fp32_step_file))
    paths = out_dir / "window.onnx", out_dir / "window.int8.onnx"
    limit = ExportOptions().max_float_elements
    build_files(weights_from_onnx(model), replace(meta, graph=contract.GRAPH_WINDOW), *paths, limit)
    return paths


def _check(path: Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # the checker raises several types
        raise ExportGuardError(f"guard: onnx.checker refuses {path.name}: {str(error).splitlines()[0]}") from None


def _guard_numbers(fp32: FileReport, int8: FileReport, options: ExportOptions) -> None:
    checks = [
        (fp32.max_abs_logit_diff > options.max_fp32_logit_diff, "fp32 largest |logit - torch|",
         f"{fp32.max_abs_logit_diff:.3g}", f"above --max-fp32-logit-diff {options.max_fp32_logit_diff:g}"),
        (int8.next_word_agreement < options.min_int8_agreement, "int8 greedy next-word agreement with torch",
         f"{100 * int8.next_word_agreement:.2f}%", f"below --min-int8-agreement {options.min_int8_agreement:g}"),
        (int8.accuracy_drop_points > options.max_int8_accuracy_drop, "int8 accuracy drop against fp32",
         f"{int8.accuracy_drop_points:.2f} points", f"above --max-int8-accuracy-drop {options.max_int8_accuracy_drop:g}"),
    ]  # fmt: skip
    for tripped, figure, value, limit in checks:
        if tripped:
            raise ExportGuardError(f"guard: {figure} is {value}, {limit}; previous files kept")
