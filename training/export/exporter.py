"""fable-export's work: checkpoint → fp32, int8 (and int4) model files → proof → files in place.

Everything is written to temporary files beside the targets and checked there; only when every
guard passes do the files of earlier exports that this one does not write go, and the temporary
files replace the targets, each by one rename, in this order: fable.onnx, fable.int8.onnx,
fable.int4.onnx, fable.int8-lstm.onnx, report.json. So report.json lists exactly the model files
beside it. A failed guard, an error or a kill leaves the previous files and report as they were
(a refusal writes its figures to report.refused.json); a kill between renames can leave new model
files beside the old report, never a new report beside an old model.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from fable import __version__, contract
from fable.atomic import atomic_paths, write_text
from fable.contract import FILE_NAMES, REPORT_NAME, CacheSettings, ModelMetadata, Provenance
from fable.quantization import DEFAULT_INT4_BLOCK

from ..cache_choice import choose_cache
from ..checkpoint import Checkpoint
from ..split import split
from ..streams import runs
from .graphs import build_lstm_step_graph, build_step_graph, build_window_graph, quantize_window_int8
from .guards import ExportGuardError, check_onnx, check_quantized, failed_guards
from .report import FileReport, HeldOutWindows, TorchReference, Windows, measure_file, select_windows, torch_reference
from .table import format_table
from .weights import Weights, weights_from_arrays, weights_from_torch

FP32_NAME, INT8_NAME, INT4_NAME, LSTM_NAME = (FILE_NAMES[v] for v in ("fp32", "int8", "int4", contract.LSTM_VARIANT))
REFUSED_NAME = "report.refused.json"  # a refused export's figures; report.json stays the previous export's


@dataclass(frozen=True)
class ExportOptions:
    """What the export must prove before it replaces any file. Every threshold is a CLI option."""

    graph: str = contract.GRAPH_STEP
    int4: bool = False  # also write fable.int4.onnx (step graph only)
    int4_block_size: int = DEFAULT_INT4_BLOCK
    # also write fable.int8-lstm.onnx: one sequence on onnxruntime's LSTM operators (step graph only)
    lstm: bool = False
    # fp32's largest |logit - torch's| in units of torch's own float32 error (its largest |logit -
    # the same model's in float64|): rounding the same sums in another order grows with a model's
    # logits, and so does the unit. Measured with every default: 1.55 on the fable, 3.24 on GPL-3,
    # 1.66 on python-reference; a real fault is far above (weights rounded to 16 bits: 385 on GPL-3).
    max_fp32_error_ratio: float = 20.0
    max_fp32_logit_diff: float | None = None  # an absolute bound as well, where given (fable 0.3's only guard)
    # Share of the windows not near a tie (PyTorch's top two logits more than `near_tie_margin`
    # apart) whose int8 (and int4) greedy next word is PyTorch's. At a near-tie the two words are
    # about as likely, and a quantized model choosing the other loses the user nothing.
    min_int8_agreement: float = 0.99
    near_tie_margin: float = 0.5  # logits: the top word at most e^0.5 = 1.65 times as likely as the next
    max_int8_accuracy_drop: float = 0.5  # points of accuracy lost against fp32 (int8 and int4)
    # How much higher than fp32's a quantized file's perplexity on the held-out part may be, as a
    # share (0.02: 2%); checked where the checkpoint's corpus has a held-out part.
    max_heldout_perplexity_rise: float = 0.02
    max_float_elements: int = 512 * 512  # no float matrix this big may survive quantization
    continuation_words: int = 32
    # A larger corpus is measured on an even sample of the windows trained on and of the held-out
    # ones: the export's time and memory stay bounded (on 2.2M tokens: bench/test_export_memory.py).
    max_windows: int = 5000
    max_heldout_windows: int = 10_000
    text_words: int = 1000  # a stream model's files read this many words whole against torch

    @property
    def variants(self) -> tuple[str, ...]:
        """The files to write, by their contract.FILE_NAMES keys, fp32 first."""
        return ("fp32", "int8") + ("int4",) * self.int4 + (contract.LSTM_VARIANT,) * self.lstm


@dataclass(frozen=True)
class ExportResult:
    files: list[FileReport]  # fp32 first
    table: str
    report: dict
    removed: list[str]  # model files of an earlier export in the folder that this one did not write


def graph_of(checkpoint: Checkpoint, asked: str) -> str:
    """The graph a checkpoint's files get: a model trained on streams reads the whole text (the
    stream graph) unless the plain window graph is asked for."""
    return contract.GRAPH_STREAM if checkpoint.streams and asked == contract.GRAPH_STEP else asked


def cache_of(checkpoint: Checkpoint) -> CacheSettings | None:
    """A stream model's cache: the one its run chose on the validation part, or, for a checkpoint
    of a run not over (interrupted, or saved along the way), the one chosen there now."""
    if checkpoint.cache is not None:
        return CacheSettings(**checkpoint.cache) if checkpoint.cache else None
    if not checkpoint.config.holdout:
        return None
    ids = checkpoint.ids
    validation = [ids[start:end] for start, end in split(len(ids), checkpoint.config.holdout).validation]
    return choose_cache(checkpoint.build_model(), validation, checkpoint.unknown_id, checkpoint.config.final_windows)[0]


def metadata_for(checkpoint: Checkpoint, graph: str, quantization: str) -> ModelMetadata:
    cache = cache_of(checkpoint) if graph == contract.GRAPH_STREAM else None
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
            ceiling=None if checkpoint.streams else checkpoint.ceiling,  # a stream model reads more than a window
            # a stream model's figures are its whole-text reading with its cache: not a window graph's
            **(_heldout_provenance(checkpoint) if checkpoint.streams == (graph == contract.GRAPH_STREAM) else {}),
        ),
        producer=f"fable {__version__}",
        tokenizer_version=checkpoint.config.tokenizer_version,
        format_version=contract.lowest_version(graph),
        cache=cache,
    )


def _heldout_provenance(checkpoint: Checkpoint) -> dict:
    """The trained weights' figures on the test part (the share of the text it is), read once when
    the run ended; checkpoints of fable 0.4 measured the whole held-out part."""
    figures = checkpoint.heldout
    if not checkpoint.config.holdout or not figures:
        return {}
    parts = split(len(checkpoint.ids), checkpoint.config.holdout)
    share = parts.share("heldout" if checkpoint.validation is None else "test")
    return {"heldout": share, "heldout_words": int(figures["words"]), "heldout_top1": figures["top1"],
            "heldout_top3": figures["top3"], "heldout_perplexity": figures["perplexity"]}  # fmt: skip


def with_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> onnx.ModelProto:
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, contract.metadata_to_props(meta))
    return model


def build_graph(weights: Weights, meta: ModelMetadata, int4_block_size: int = DEFAULT_INT4_BLOCK) -> onnx.ModelProto:
    """The graph of `meta.graph` in `meta.quantization`, with its metadata (window graphs: fp32 only)."""
    if meta.graph != contract.GRAPH_WINDOW:
        model = build_step_graph(weights, meta.config, meta.quantization, int4_block_size, meta.graph)
    elif meta.quantization == "fp32":
        model = build_window_graph(weights, meta.config)
    else:
        raise ValueError("the window graph is quantized from its fp32 file by quantize_window_int8")
    return with_metadata(model, meta)


def variant_metadata(meta: ModelMetadata, variant: str) -> ModelMetadata:
    """The metadata of one file of an export: its quantization; the LSTM variant is format 1's."""
    if variant == contract.LSTM_VARIANT:
        return replace(meta, quantization="int8", format_version=contract.LSTM_FORMAT_VERSION)
    return replace(meta, quantization=variant)


def quantized_model(
    weights: Weights, meta: ModelMetadata, variant: str, fp32_path: Path, work: Path, block_size: int
) -> onnx.ModelProto:
    """The file of a quantized `variant`: step graphs are built quantized; the window graph, and the
    LSTM variant's graph, are quantized from an fp32 file by onnxruntime's quantizer (which writes
    to `work`)."""
    if variant == contract.LSTM_VARIANT:
        with tempfile.TemporaryDirectory() as folder:
            fp32_path = Path(folder) / "lstm.onnx"
            onnx.save(with_metadata(build_lstm_step_graph(weights, meta.config), meta), fp32_path)
            quantize_window_int8(fp32_path, work)
        return with_metadata(onnx.load(work), meta)
    if meta.graph != contract.GRAPH_WINDOW:
        return build_graph(weights, meta, block_size)
    quantize_window_int8(fp32_path, work)
    return with_metadata(onnx.load(work), meta)


def write_files(weights: Weights, meta: ModelMetadata, paths: dict[str, Path], options: ExportOptions) -> None:
    """Write a file per variant in `paths` (fp32 first) and check their structure (not their numbers)."""
    fp32_path = paths["fp32"]
    onnx.save(build_graph(weights, replace(meta, quantization="fp32")), fp32_path)
    check_onnx(fp32_path)
    for variant, path in paths.items():
        if variant == "fp32":
            continue
        model = quantized_model(
            weights, variant_metadata(meta, variant), variant, fp32_path, path, options.int4_block_size
        )
        check_quantized(model, options.max_float_elements)
        onnx.save(model, path)
        check_onnx(path)


def export_checkpoint(
    checkpoint: Checkpoint, checkpoint_name: str, out: Path, options: ExportOptions = ExportOptions()
) -> ExportResult:
    """Export, prove, and only then put the files in `out`, removing the model files of an earlier
    export that this one did not write. A file whose figures fail a guard leaves the previous
    model files and report in place, and the refused figures in report.refused.json."""
    graph = graph_of(checkpoint, options.graph)
    if graph == contract.GRAPH_STREAM and not checkpoint.streams:
        raise ExportGuardError("--graph stream needs a model trained on streams (--preset stream); this one read "
                               "windows: export it as step or window")  # fmt: skip
    if (options.int4 or options.lstm) and graph == contract.GRAPH_WINDOW:
        raise ExportGuardError("int4 and int8-lstm files are made of the step graph only; drop --int4 and --lstm, "
                               "or --graph window")  # fmt: skip
    if options.lstm and graph == contract.GRAPH_STREAM:
        raise ExportGuardError("the int8-lstm file reads windows; a model trained on streams has no such file: "
                               "drop --lstm")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    torch_model = checkpoint.build_model()
    meta = metadata_for(checkpoint, graph, "fp32")
    reference = torch_reference(torch_model, Windows(*select_windows(*checkpoint.windows(), options.max_windows)),
                                options.continuation_words, options.near_tie_margin, _heldout(checkpoint, options),
                                _whole_text(checkpoint, options) if graph == contract.GRAPH_STREAM else None)  # fmt: skip
    names = [FILE_NAMES[v] for v in options.variants]
    with atomic_paths(*(out / name for name in names), out / REPORT_NAME) as temporary:
        paths = dict(zip(options.variants, temporary))
        write_files(weights_from_torch(torch_model), meta, paths, options)
        measured = [measure_file(paths[v], reference, FILE_NAMES[v], options.near_tie_margin) for v in options.variants]
        fp32 = measured[0]
        files = [fp32] + [replace(f, accuracy_drop_points=100 * (fp32.accuracy - f.accuracy),
                                  heldout_perplexity_rise=_rise(fp32, f)) for f in measured[1:]]  # fmt: skip
        table = format_table(files, reference)
        failures = failed_guards(files, options)
        report = _report(checkpoint, checkpoint_name, reference, files, options, failures)
        if failures:  # leaving by an exception removes the temporary files, the targets untouched
            write_text(out / REFUSED_NAME, json.dumps(report, indent=2) + "\n")
            raise ExportGuardError(f"guard: {failures[0]}; previous model files kept with their {REPORT_NAME}, the "
                                   f"refused figures are in {out / REFUSED_NAME}", table)  # fmt: skip
        temporary[-1].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        removed = remove_stale(out, names)
        # Leaving the block renames each temporary file over its target, in the order opened.
    return ExportResult(files, table, report, removed)


def _whole_text(checkpoint: Checkpoint, options: ExportOptions) -> np.ndarray:
    """What a stream model's files read whole against torch: the training part's first stretch of
    words it can read (no UNSEEN word), of at most `text_words`."""
    longest = np.zeros(0, np.int64)
    for run in runs(
        [checkpoint.ids[start:end] for start, end in split(len(checkpoint.ids), checkpoint.config.holdout).train]
    ):
        run = run[: options.text_words]
        if len(run) > len(longest):
            longest = run
        if len(longest) == options.text_words:
            return longest
    return longest


def _heldout(checkpoint: Checkpoint, options: ExportOptions) -> HeldOutWindows | None:
    """An even sample of at most `max_heldout_windows` of the test part, where there is one."""
    if not checkpoint.config.holdout:
        return None
    contexts, labels = checkpoint.windows("test")
    return HeldOutWindows(*select_windows(contexts, labels, options.max_heldout_windows), checkpoint.unknown_id)


def _report(checkpoint: Checkpoint, checkpoint_name: str, reference: TorchReference, files: list[FileReport],
            options: ExportOptions, failures: list[str]) -> dict:  # fmt: skip
    held = reference.heldout
    return {
        "producer": f"fable {__version__}",
        "checkpoint": checkpoint_name,
        "corpus": {"name": checkpoint.corpus_name, "sha256": checkpoint.corpus_sha256},
        "windows_measured": len(reference.labels),
        "windows_total": reference.windows.total,
        "heldout_windows_measured": None if held is None else len(held.labels),
        "heldout_windows_total": None if held is None else held.total,
        "torch": {
            "correct": reference.correct,
            "accuracy": reference.correct / len(reference.labels),
            "float_error": reference.float_error,
            "heldout": reference.heldout_figures,
        },
        "heldout_share": checkpoint.config.holdout,
        "files": {r.file: r.as_dict() for r in files},
        "guards": asdict(options),
        "passed": not failures,
        "failures": failures,
    }


def remove_stale(out: Path, written: list[str]) -> list[str]:
    """Remove the model files an export may write (contract.FILE_NAMES) that this one does not,
    and an earlier refusal's figures: the new report then lists every model file in `out`."""
    stale = [name for name in FILE_NAMES.values() if name not in written and (out / name).is_file()]
    for name in [*stale, REFUSED_NAME]:
        (out / name).unlink(missing_ok=True)
    return stale


def _rise(fp32: FileReport, quantized: FileReport) -> float | None:
    if fp32.heldout is None or quantized.heldout is None:
        return None
    return quantized.heldout["perplexity"] / fp32.heldout["perplexity"] - 1


def window_baseline(fp32_step_file: Path, out_dir: Path) -> tuple[Path, Path]:
    """The plain window graphs (fp32, int8) with the weights and metadata of a shipped fp32 step
    file, built by this exporter: the baseline the fast decode is measured against."""
    model = onnx.load(fp32_step_file)
    meta = contract.metadata_from_props({p.key: p.value for p in model.metadata_props}, str(fp32_step_file))
    weights = weights_from_arrays({i.name: numpy_helper.to_array(i) for i in model.graph.initializer}, meta.config)
    paths = {"fp32": out_dir / "window.onnx", "int8": out_dir / "window.int8.onnx"}
    write_files(weights, replace(meta, graph=contract.GRAPH_WINDOW, format_version=contract.lowest_version(contract.GRAPH_WINDOW), cache=None), paths,
                ExportOptions(graph=contract.GRAPH_WINDOW))  # fmt: skip
    return paths["fp32"], paths["int8"]
