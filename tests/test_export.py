"""fable-export: the files are complete, proven against PyTorch, and every guard refuses its bad case."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')
onnx = pytest.importorskip("onnx", reason='needs the train extra: pip install "fable[train]"')
numpy_helper = onnx.numpy_helper

import fable
from fable import contract
from fable.quantization import int4_blocks, int4_weight
from fable.tokenizer import make_windows
from fable.training.checkpoint import CHECKPOINT_NAME
from fable.training.evaluate import greedy_continuations, logits_of
from fable.training.export import exporter
from fable.training.export.exporter import (
    FP32_NAME,
    INT4_NAME,
    INT8_NAME,
    REFUSED_NAME,
    REPORT_NAME,
    ExportOptions,
    export_checkpoint,
    metadata_for,
    with_metadata,
)
from fable.training.export.graphs import quantize_window_int8
from fable.training.export.guards import ExportGuardError, check_quantized
from fable.training.export.weights import torch_from_weights, weights_from_arrays, weights_from_torch
from fable.tuning import file_sha256

from .conftest import SHAPES
from .helpers import LENIENT, ROOT, assert_clean_failure, invoke, run_command, snapshot, streamed_runs

OPTIONS = ExportOptions(**LENIENT)


def test_every_file_is_a_complete_fable_model(tiny_export):
    checkpoint, out, _ = tiny_export
    for name, quantization in ((FP32_NAME, "fp32"), (INT8_NAME, "int8"), (INT4_NAME, "int4")):
        onnx.checker.check_model(str(out / name), full_check=True)
        model = fable.load(out / name)
        assert model.metadata == metadata_for(checkpoint, "step", quantization)
        assert list(model.vocabulary) == checkpoint.vocabulary
        assert model.metadata.provenance.corpus_sha256 == checkpoint.corpus_sha256


def test_the_int8_and_int4_files_really_hold_their_weights_in_8_and_4_bits(tiny_export):
    _, out, _ = tiny_export
    floats = {i.name: numpy_helper.to_array(i) for i in onnx.load(out / FP32_NAME).graph.initializer}
    products = {name: array.size for name, array in floats.items() if name.endswith(".weight")}
    assert len(products) == 3
    for name, op, dtype, per_byte in ((INT8_NAME, "MatMulIntegerToFloat", onnx.TensorProto.INT8, 1),
                                      (INT4_NAME, "MatMulNBits", onnx.TensorProto.UINT8, 2)):  # fmt: skip
        model = onnx.load(out / name)
        assert [n.op_type for n in model.graph.node].count(op) == 3  # two LSTM layers and the head
        assert "MatMul" not in {n.op_type for n in model.graph.node}
        stored = {i.name: i for i in model.graph.initializer}
        for weight, elements in products.items():
            assert stored[weight].data_type == dtype, (name, weight)
            assert per_byte * numpy_helper.to_array(stored[weight]).size >= elements


def test_int4_codes_unpack_to_the_weights_within_half_a_step_of_their_block():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(200, 24)).astype(np.float32)  # K not a multiple of the block: padded
    for block in (32, 128):
        packed, scales = int4_blocks(weight, block)
        assert packed.shape == (24, -(-200 // block), block // 2)
        restored = int4_weight(packed, scales, 200)
        step = np.repeat(scales.reshape(24, -1), block, axis=1)[:, :200].T  # each value's block scale
        assert np.all(np.abs(restored - weight) <= step / 2 + 1e-6)


def test_metadata_round_trips(tiny_export):
    checkpoint, _, _ = tiny_export
    meta = metadata_for(checkpoint, "step", "int8")
    props = contract.metadata_to_props(meta)
    assert all(key.startswith(contract.PREFIX) for key in props)
    assert contract.metadata_from_props(props) == meta
    assert json.loads(props[contract.KEY_VOCABULARY]) == checkpoint.vocabulary


def test_fp32_logits_equal_pytorch_within_1e4_on_every_window(tiny_export):
    checkpoint, out, _ = tiny_export
    contexts, _ = make_windows(checkpoint.ids, checkpoint.config.model.window)
    expected = logits_of(checkpoint.build_model(), contexts).numpy()
    assert np.abs(fable.load(out / FP32_NAME).window_logits(contexts) - expected).max() < 1e-4


def test_the_report_holds_measured_figures(tiny_export):
    checkpoint, out, result = tiny_export
    report = json.loads((out / REPORT_NAME).read_text())
    fp32, int8, int4 = (report["files"][name] for name in (FP32_NAME, INT8_NAME, INT4_NAME))
    for name, figures in report["files"].items():
        assert figures["bytes"] == (out / name).stat().st_size and figures["sha256"] == file_sha256(out / name)
    assert max(int8["bytes"], int4["bytes"]) < fp32["bytes"] / 2  # (a tiny model: int4 pads its blocks)
    assert report["windows_measured"] == report["windows_total"] == 201
    assert fp32["correct"] == result.files[0].correct and 0 < fp32["max_abs_logit_diff"] < 1e-4
    assert int8["accuracy_drop_points"] == pytest.approx(100 * (fp32["accuracy"] - int8["accuracy"]))
    assert {"next_word_agreement", "continuation_agreement", "accuracy"} <= set(int8)
    assert report["corpus"]["sha256"] == checkpoint.corpus_sha256
    assert "max |Δlogit|" in result.table


def test_the_batched_report_is_what_one_window_at_a_time_gives(tiny_export):
    """The report decodes its windows in batches; held here against each window decoded alone,
    as an app decodes one prompt: the same logits bit for bit, the same 32 words."""
    checkpoint, out, _ = tiny_export
    report = json.loads((out / REPORT_NAME).read_text())
    contexts, labels = make_windows(checkpoint.ids, checkpoint.config.model.window)
    torch_logits = logits_of(checkpoint.build_model(), contexts).numpy()
    torch_runs = greedy_continuations(checkpoint.build_model(), contexts, 32)
    for name in (FP32_NAME, INT8_NAME, INT4_NAME):
        model = fable.Model(out / name)
        alone = np.stack([model.next_logits(context) for context in contexts])
        runs = np.array([list(model.stream_ids(context, 32)) for context in contexts])
        figures = report["files"][name]
        assert figures["correct"] == int((alone.argmax(axis=1) == labels).sum())
        assert figures["max_abs_logit_diff"] == float(np.abs(alone - torch_logits).max())
        assert figures["continuation_agreement"] == float((runs == torch_runs).all(axis=1).mean())
        assert np.array_equal(alone, model.window_logits(contexts)) and np.array_equal(
            runs, streamed_runs(model, contexts, 32)
        )


def test_weights_go_into_the_files_layout_and_back(tiny_export, shape_export):
    """torch → the step graph's layout → torch gives the same logits; so does a file's weights read
    back (the torch baseline of bench/), for the index encoding's separate input product too."""
    checkpoint, out, _ = tiny_export
    contexts, _ = make_windows(checkpoint.ids, 3)
    model = checkpoint.build_model()
    again = torch_from_weights(weights_from_torch(model), checkpoint.config.model)
    assert torch.allclose(logits_of(model, contexts), logits_of(again, contexts), atol=1e-5)
    for folder in (out, shape_export("index encoding")):
        file = onnx.load(folder / FP32_NAME)
        meta = fable.load(folder / FP32_NAME).metadata
        arrays = {i.name: numpy_helper.to_array(i) for i in file.graph.initializer}
        baseline = torch_from_weights(weights_from_arrays(arrays, meta.config), meta.config)
        windows = contexts % len(meta.vocabulary)
        expected = fable.load(folder / FP32_NAME).window_logits(windows)
        assert np.abs(logits_of(baseline, windows).numpy() - expected).max() < 1e-4


@pytest.mark.parametrize("shape", SHAPES)
def test_other_shapes_export_too(shape_export, shape):
    out = shape_export(shape)
    model = fable.load(out / FP32_NAME)
    assert {k: getattr(model.metadata.config, k) for k in SHAPES[shape]} == SHAPES[shape]
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["files"][FP32_NAME]["max_abs_logit_diff"] < 1e-4 and set(report["files"]) == {
        FP32_NAME, INT8_NAME, INT4_NAME}  # fmt: skip


# --- guards: each bad case built on purpose, by replacing what makes the quantized files ------

real_quantized_model = exporter.quantized_model


def leave_lstm_in_fp32(weights, meta, variant, fp32, work, block_size):
    """The window graph's quantizer, told to leave the LSTMs alone."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(fp32, work, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
    return with_metadata(onnx.load(work), meta)


def keep_float_products(weights, meta, variant, fp32, work, block_size):
    """A 'quantizer' that copies the fp32 step graph: every product still float."""
    return with_metadata(onnx.load(fp32), meta)


def damage_head(weights, meta, variant, fp32, work, block_size):
    """A quantizer that gets the numbers wrong: the file then disagrees with PyTorch."""
    model = real_quantized_model(weights, meta, variant, fp32, work, block_size)
    for init in model.graph.initializer:
        if init.name == contract.HEAD_BIAS:
            bias = numpy_helper.to_array(init).copy()
            bias[: len(bias) // 2] += 50.0
            init.CopyFrom(numpy_helper.from_array(bias, init.name))
    return model


def break_graph(weights, meta, variant, fp32, work, block_size):
    model = real_quantized_model(weights, meta, variant, fp32, work, block_size)
    model.graph.node[0].input[0] = "no_such_tensor"
    return model


WINDOW = dataclasses.replace(OPTIONS, graph="window")
GUARDS = {
    "float LSTM left": (leave_lstm_in_fp32, WINDOW, "float LSTM"),
    "float products left": (keep_float_products, dataclasses.replace(OPTIONS, max_float_elements=1000), "--max-float-elements"),
    "big float matrix": (None, dataclasses.replace(OPTIONS, max_float_elements=100), "--max-float-elements"),
    "onnx.checker": (break_graph, OPTIONS, "onnx.checker"),
    "fp32 parity": (None, dataclasses.replace(OPTIONS, max_fp32_logit_diff=0.0), "--max-fp32-logit-diff"),
    "int8 agreement": (damage_head, dataclasses.replace(OPTIONS, max_int8_accuracy_drop=100), "--min-int8-agreement"),
    "int8 accuracy drop": (damage_head, dataclasses.replace(OPTIONS, min_int8_agreement=0), "--max-int8-accuracy-drop"),
}  # fmt: skip
FIGURES = {"fp32 parity", "int8 agreement", "int8 accuracy drop"}  # guards on measured figures


@pytest.mark.parametrize("case", GUARDS)
def test_a_tripped_guard_refuses_the_export_and_keeps_the_previous_files(tiny_export, tmp_path, monkeypatch, case):
    checkpoint, previous, _ = tiny_export
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    before = snapshot(out)
    quantizer, options, phrase = GUARDS[case]
    if quantizer is not None:
        monkeypatch.setattr(exporter, "quantized_model", quantizer)
    with pytest.raises(ExportGuardError, match=phrase) as refused:
        export_checkpoint(checkpoint, CHECKPOINT_NAME, out, options)
    after = snapshot(out)  # no temporary file left behind either
    refused_report = after.pop(REFUSED_NAME, None)
    assert after == before  # the models and the report that vouches for them kept
    if case in FIGURES:
        report = json.loads(refused_report)  # the refused files' figures, marked failed
        assert report["passed"] is False and phrase in report["failures"][0]
        assert "parity over 201 windows" in refused.value.table
        assert set(report["files"]) == {FP32_NAME, INT8_NAME}
        assert report["guards"]["min_int8_agreement"] == options.min_int8_agreement
    else:  # refused before anything was measured: nothing to report
        assert refused_report is None and refused.value.table is None


def test_agreement_leaves_out_near_ties_and_says_in_the_options_units(tiny_export, tmp_path, monkeypatch):
    """Near-ties are left out of the agreement; the guard's message gives the share as a fraction,
    as the option takes it."""
    checkpoint, _, result = tiny_export
    for report in result.files:
        assert report.clear_windows < 201 and report.clear_agreement >= report.next_word_agreement - 1e-9
    strict = dataclasses.replace(OPTIONS, min_int8_agreement=1.0, max_int8_accuracy_drop=100.0)
    monkeypatch.setattr(exporter, "quantized_model", damage_head)
    with pytest.raises(
        ExportGuardError, match=r"fable\.int8\.onnx greedy .* is 0\.\d{4}, below --min-int8-agreement 1;"
    ):
        export_checkpoint(checkpoint, CHECKPOINT_NAME, tmp_path / "b", strict)


def test_the_float_lstm_guard_reads_the_graph(tiny_export, tmp_path):
    checkpoint, out, _ = tiny_export
    export_checkpoint(checkpoint, CHECKPOINT_NAME, tmp_path / "window", WINDOW)
    window_meta = metadata_for(checkpoint, "window", "int8")
    half = leave_lstm_in_fp32(None, window_meta, "int8", tmp_path / "window" / FP32_NAME, tmp_path / "half.onnx", 0)
    with pytest.raises(ExportGuardError, match="2 float LSTM"):
        check_quantized(half, 512 * 512)
    quantize_window_int8(tmp_path / "window" / FP32_NAME, tmp_path / "whole.onnx")
    for passing in (tmp_path / "whole.onnx", out / INT8_NAME, out / INT4_NAME):  # the real ones pass
        check_quantized(onnx.load(passing), 512 * 512)


def test_a_guard_names_its_figure_value_and_option_on_the_command_line(tiny_run, tmp_path):
    """The one run of the installed fable-export script."""
    _, run = tiny_run
    result = run_command(
        "fable-export", str(run / CHECKPOINT_NAME), "--out", str(tmp_path), "--max-fp32-logit-diff", "0"
    )
    assert_clean_failure(
        result, 1, "fp32 largest |logit - torch|", "--max-fp32-logit-diff 0", "previous model files kept"
    )
    assert "parity over 201 windows" in result.stdout  # the whole table, before the error
    assert set(snapshot(tmp_path)) == {REFUSED_NAME}  # the figures, and no model file
    assert json.loads((tmp_path / REFUSED_NAME).read_text())["passed"] is False


# --- interruptions and bad input --------------------------------------------------------------


def test_every_file_changes_by_one_rename_models_first_and_each_target_is_whole_at_each(tiny_export, tmp_path,
                                                                                       monkeypatch):  # fmt: skip
    """At every rename of an export, every target in --out holds either the previous file or the
    finished one: nothing is written in place. The renames come models first, the report last.
    (Every way atomic_paths can stop: test_atomic.py; a real SIGKILL: the next test.)"""
    checkpoint, _, _ = tiny_export
    out = tmp_path / "out"
    export_checkpoint(checkpoint, CHECKPOINT_NAME, out, dataclasses.replace(OPTIONS, graph="window"))
    old = snapshot(out)
    finished = tmp_path / "finished"
    export_checkpoint(checkpoint, CHECKPOINT_NAME, finished, OPTIONS)
    new = snapshot(finished)
    assert set(new) == set(old) and all(new[name] != old[name] for name in new)
    renamed, real_replace = [], os.replace

    def replace(source, target):
        for name, data in snapshot(out).items():
            if not name.startswith("."):
                assert data in (old[name], new[name]), (renamed, name)
        renamed.append(os.path.basename(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    export_checkpoint(checkpoint, CHECKPOINT_NAME, out, OPTIONS)
    assert renamed == [FP32_NAME, INT8_NAME, REPORT_NAME]
    assert snapshot(out) == new


# Runs fable-export's module and SIGKILLs it as it renames the report into place (the audit hook
# sees each rename): the models are new by then, the report still the old one.
KILL_AT_REPORT = """
import os, runpy, signal, sys
def hook(event, args):
    if event == "os.rename" and os.path.basename(os.fsdecode(args[1])) == "report.json":
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
sys.argv = ["fable-export", *sys.argv[1:]]
runpy.run_module("fable.training.export.cli", run_name="__main__")
"""


@pytest.mark.slow
def test_an_export_killed_leaves_whole_files_and_no_report_for_models_it_does_not_describe(tiny_run, tmp_path):
    checkpoint, run = tiny_run
    out = tmp_path / "out"
    export_checkpoint(checkpoint, CHECKPOINT_NAME, out, dataclasses.replace(OPTIONS, graph="window"))
    old = snapshot(out)
    flags = ["--min-int8-agreement", "0.9", "--max-int8-accuracy-drop", "5", "--out", str(out)]
    command = [sys.executable, "-c", KILL_AT_REPORT, str(run / CHECKPOINT_NAME), *flags]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    files = {name: data for name, data in snapshot(out).items() if not name.startswith(".")}
    assert files[REPORT_NAME] == old[REPORT_NAME]  # the old report, and it vouches for none of the new files:
    report = json.loads(files[REPORT_NAME])
    for name in (FP32_NAME, INT8_NAME):
        assert files[name] != old[name] and report["files"][name]["sha256"] != file_sha256(out / name)
        assert fable.load(out / name).generate("the old mouse", 3)  # whole, and new


@pytest.mark.parametrize("damage", ["missing", "truncated", "foreign", "onnx file", "random bytes"])
def test_a_bad_checkpoint_is_one_clear_line(tiny_run, tiny_export, tmp_path, damage):
    _, run = tiny_run
    _, previous, _ = tiny_export
    path = tmp_path / "checkpoint.pt"
    good = (run / CHECKPOINT_NAME).read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 3])
    elif damage == "foreign":
        torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    elif damage == "onnx file":
        shutil.copy(previous / FP32_NAME, path)
    elif damage == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    result = invoke("fable-export", str(path), "--out", str(tmp_path / "out"))
    assert_clean_failure(result, 2, str(path))
    assert not (tmp_path / "out").exists()


def test_an_unwritable_out_is_one_clear_line(tiny_run, tmp_path):
    _, run = tiny_run
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("fable-export", str(run / CHECKPOINT_NAME), "--out", str(blocker / "sub"))
    assert_clean_failure(result, 2, "cannot create --out")
    result = invoke("fable-export", str(run / CHECKPOINT_NAME), "--out", str(blocker))
    assert_clean_failure(result, 2, "is a file")


def test_without_out_the_files_go_beside_the_checkpoint_never_over_the_shipped_ones(tiny_run, tmp_path):
    _, run = tiny_run
    shutil.copy(run / CHECKPOINT_NAME, tmp_path / CHECKPOINT_NAME)
    shipped = snapshot(ROOT / "exported")
    result = invoke("fable-export", str(tmp_path / CHECKPOINT_NAME), "--min-int8-agreement", "0.9",
                    "--max-int8-accuracy-drop", "5")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {FP32_NAME, INT8_NAME, REPORT_NAME} <= set(snapshot(tmp_path / "exported"))
    assert snapshot(ROOT / "exported") == shipped


@pytest.mark.slow
def test_the_default_recipe_exports_int8_and_int4_within_the_default_guards(default_run, tmp_path):
    """The fable's real model, every guard at its default: int8 and int4 keep its 199/201."""
    checkpoint, _ = default_run
    result = export_checkpoint(checkpoint, CHECKPOINT_NAME, tmp_path, ExportOptions(int4=True))
    for report in result.files:
        assert report.correct == 199 and report.windows == 201, report
        assert report.next_word_agreement >= ExportOptions().min_int8_agreement
    int4 = fable.Model(tmp_path / INT4_NAME)
    assert int4.generate("the old mouse", 9) == "said it is easy to propose impossible remedies."
