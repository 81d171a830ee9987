"""fable-export: the files are complete, proven against PyTorch, and every guard refuses its bad case."""

from __future__ import annotations

import dataclasses
import json
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
from fable.tokenizer import make_windows
from fable.training.checkpoint import CHECKPOINT_NAME
from fable.training.evaluate import logits_of
from fable.training.export.exporter import (
    FP32_NAME,
    INT4_NAME,
    INT8_NAME,
    REPORT_NAME,
    ExportOptions,
    export_checkpoint,
    metadata_for,
    quantized_file,
)
from fable.training.export.quantize import ExportGuardError, check_quantized, int4_blocks, quantize_window_int8
from fable.training.train import train
from fable.tuning import file_sha256

from .helpers import ROOT, assert_clean_failure, run_command, snapshot, tiny_config

# Tiny models are less sure of themselves than the shipped one; int8 may flip a near tie there.
LENIENT = ExportOptions(min_int8_agreement=0.9, max_int8_accuracy_drop=5.0)


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    checkpoint, _ = tiny_run
    out = tmp_path_factory.mktemp("exported")
    result = export_checkpoint(checkpoint, CHECKPOINT_NAME, out, dataclasses.replace(LENIENT, int4=True))
    return checkpoint, out, result


def test_every_file_is_a_complete_fable_model(exported):
    checkpoint, out, _ = exported
    for name, quantization in ((FP32_NAME, "fp32"), (INT8_NAME, "int8"), (INT4_NAME, "int4")):
        onnx.checker.check_model(str(out / name), full_check=True)
        model = fable.load(out / name)
        assert model.metadata == metadata_for(checkpoint, "step", quantization)
        assert list(model.vocabulary) == checkpoint.vocabulary
        assert model.metadata.provenance.corpus_sha256 == checkpoint.corpus_sha256


def test_the_int8_and_int4_files_really_hold_their_weights_in_8_and_4_bits(exported):
    _, out, _ = exported
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
    from fable.numpy_weights import _int4_weight

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(200, 24)).astype(np.float32)  # K not a multiple of the block: padded
    for block in (32, 128):
        packed, scales = int4_blocks(weight, block)
        assert packed.shape == (24, -(-200 // block), block // 2)
        restored = _int4_weight(packed, scales, 200)
        step = np.repeat(scales.reshape(24, -1), block, axis=1)[:, :200].T  # each value's block scale
        assert np.all(np.abs(restored - weight) <= step / 2 + 1e-6)


def test_metadata_round_trips(exported):
    checkpoint, _, _ = exported
    meta = metadata_for(checkpoint, "step", "int8")
    props = contract.metadata_to_props(meta)
    assert all(key.startswith(contract.PREFIX) for key in props)
    assert contract.metadata_from_props(props) == meta
    assert json.loads(props[contract.KEY_VOCABULARY]) == checkpoint.vocabulary


def test_fp32_logits_equal_pytorch_within_1e4_on_every_window(exported):
    checkpoint, out, _ = exported
    contexts, _ = make_windows(checkpoint.ids, checkpoint.config.model.window)
    expected = logits_of(checkpoint.build_model(), contexts).numpy()
    model = fable.load(out / FP32_NAME)
    got = np.stack([model.next_logits(c) for c in contexts])
    assert np.abs(got - expected).max() < 1e-4


def test_the_report_holds_measured_figures(exported):
    checkpoint, out, result = exported
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


@pytest.mark.parametrize(
    "config",
    [tiny_config("tutorial", steps=60), tiny_config(steps=60, layers=1), tiny_config(steps=60, window=5)],
    ids=["tutorial-preset-index-encoding", "one-layer", "window-5"],
)
def test_other_recipes_export_too(fable_corpus, tmp_path, config):
    result = train(fable_corpus, config, "cpu", tmp_path / "run")
    export_checkpoint(
        result.checkpoint,
        CHECKPOINT_NAME,
        tmp_path / "out",
        ExportOptions(min_int8_agreement=0, max_int8_accuracy_drop=100),
    )
    model = fable.load(tmp_path / "out" / FP32_NAME)
    assert model.metadata.config == config.model
    report = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert report["files"][FP32_NAME]["max_abs_logit_diff"] < 1e-4


# --- guards: each bad case built on purpose ---------------------------------------------------


def leave_lstm_in_fp32(weights, meta, fp32, quantized):
    """The window graph's quantizer, told to leave the LSTMs alone."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(fp32, quantized, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)


def keep_float_products(weights, meta, fp32, quantized):
    """A 'quantizer' that copies the fp32 step graph: every product still float."""
    quantized.write_bytes(fp32.read_bytes())


def quantize_then_damage_head(weights, meta, fp32, quantized):
    """A quantizer that gets the numbers wrong: the file then disagrees with PyTorch."""
    quantized_file(weights, meta, fp32, quantized, 128)
    model = onnx.load(quantized)
    for init in model.graph.initializer:
        if init.name == contract.HEAD_BIAS:
            bias = numpy_helper.to_array(init).copy()
            bias[: len(bias) // 2] += 50.0
            init.CopyFrom(numpy_helper.from_array(bias, init.name))
    onnx.save(model, quantized)


def quantize_then_break_graph(weights, meta, fp32, quantized):
    quantized_file(weights, meta, fp32, quantized, 128)
    model = onnx.load(quantized)
    model.graph.node[0].input[0] = "no_such_tensor"
    onnx.save(model, quantized)


WINDOW = dataclasses.replace(LENIENT, graph="window")
GUARDS = {
    "float LSTM left": (dict(quantize=leave_lstm_in_fp32), WINDOW, "float LSTM"),
    "float products left": (dict(quantize=keep_float_products), dataclasses.replace(LENIENT, max_float_elements=1000), "--max-float-elements"),
    "big float matrix": ({}, dataclasses.replace(LENIENT, max_float_elements=100), "--max-float-elements"),
    "onnx.checker": (dict(quantize=quantize_then_break_graph), LENIENT, "onnx.checker"),
    "fp32 parity": ({}, dataclasses.replace(LENIENT, max_fp32_logit_diff=0.0), "--max-fp32-logit-diff"),
    "int8 agreement": (dict(quantize=quantize_then_damage_head), dataclasses.replace(LENIENT, max_int8_accuracy_drop=100), "--min-int8-agreement"),
    "int8 accuracy drop": (dict(quantize=quantize_then_damage_head), dataclasses.replace(LENIENT, min_int8_agreement=0), "--max-int8-accuracy-drop"),
}  # fmt: skip


FIGURES = {"fp32 parity", "int8 agreement", "int8 accuracy drop"}  # guards on measured figures


@pytest.mark.parametrize("case", GUARDS)
def test_a_tripped_guard_refuses_the_export_and_keeps_the_previous_files(exported, tmp_path, case):
    checkpoint, previous, _ = exported
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    before = snapshot(out)
    kwargs, options, phrase = GUARDS[case]
    with pytest.raises(ExportGuardError, match=phrase) as refused:
        export_checkpoint(checkpoint, CHECKPOINT_NAME, out, options, **kwargs)
    after = snapshot(out)  # no temporary file left behind either
    assert set(after) == set(before)
    assert all(after[name] == before[name] for name in before if name != REPORT_NAME)  # the models kept
    if case not in FIGURES:  # refused before anything was measured: nothing to report
        assert after[REPORT_NAME] == before[REPORT_NAME] and refused.value.table is None
        return
    report = json.loads(after[REPORT_NAME])  # the refused files' figures, marked failed
    assert report["passed"] is False and phrase in report["failures"][0]
    assert "parity over 201 windows" in refused.value.table
    assert set(report["files"]) == {FP32_NAME, INT8_NAME}
    assert report["guards"]["min_int8_agreement"] == options.min_int8_agreement


def test_agreement_leaves_out_near_ties_and_says_in_the_options_units(exported, tmp_path):
    """Near-ties are left out of the agreement; the guard's message gives the share as a fraction,
    as the option takes it."""
    checkpoint, _, _ = exported
    result = export_checkpoint(checkpoint, CHECKPOINT_NAME, tmp_path / "a", dataclasses.replace(LENIENT, int4=True))
    for report in result.files:
        assert report.clear_windows < 201 and report.clear_agreement >= report.next_word_agreement - 1e-9
    strict = dataclasses.replace(LENIENT, min_int8_agreement=1.0, max_int8_accuracy_drop=100.0)
    with pytest.raises(ExportGuardError, match=r"int8 .* is 0\.\d{4}, below --min-int8-agreement 1;"):
        export_checkpoint(checkpoint, CHECKPOINT_NAME, tmp_path / "b", strict, quantize=quantize_then_damage_head)


def test_the_float_lstm_guard_reads_the_graph(exported, tmp_path):
    checkpoint, out, _ = exported
    export_checkpoint(checkpoint, CHECKPOINT_NAME, tmp_path / "window", WINDOW)
    leave_lstm_in_fp32(None, None, tmp_path / "window" / FP32_NAME, tmp_path / "half.onnx")
    with pytest.raises(ExportGuardError, match="2 float LSTM"):
        check_quantized(onnx.load(tmp_path / "half.onnx"), 512 * 512)
    quantize_window_int8(tmp_path / "window" / FP32_NAME, tmp_path / "whole.onnx")
    for passing in (tmp_path / "whole.onnx", out / INT8_NAME, out / INT4_NAME):  # the real ones pass
        check_quantized(onnx.load(passing), 512 * 512)


def test_a_guard_names_its_figure_value_and_option_on_the_command_line(tiny_run, tmp_path):
    _, run = tiny_run
    result = run_command(
        "fable-export", str(run / CHECKPOINT_NAME), "--out", str(tmp_path), "--max-fp32-logit-diff", "0"
    )
    assert_clean_failure(
        result, 1, "fp32 largest |logit - torch|", "--max-fp32-logit-diff 0", "previous model files kept"
    )
    assert "parity over 201 windows" in result.stdout  # the whole table, before the error
    assert set(snapshot(tmp_path)) == {REPORT_NAME}  # the figures, and no model file
    assert json.loads((tmp_path / REPORT_NAME).read_text())["passed"] is False


# --- interruptions and bad input --------------------------------------------------------------


# Runs the export and SIGKILLs it at the k-th point where the file system in --out changes: just
# before each open for writing, rename or removal (an audit hook), and just after each open for
# writing (a wrapped open(), which lands between a truncation and the writes that follow it).
KILL_AT = """
import builtins, os, runpy, signal, sys
out, target = os.path.realpath(sys.argv[1]), int(sys.argv[2])
seen = 0
def point(path):
    global seen
    if isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(path)).startswith(out + os.sep):
        seen += 1
        if seen == target:
            os.kill(os.getpid(), signal.SIGKILL)
def writes(mode, flags=0):
    return bool(mode and any(c in str(mode) for c in "wax+")) or bool(isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
def hook(event, args):
    if event == "open" and writes(args[1], args[2]) or event in ("os.rename", "os.remove", "os.truncate"):
        point(args[0])
real_open = builtins.open
def open_then_point(file, mode="r", *args, **kwargs):
    handle = real_open(file, mode, *args, **kwargs)
    if writes(mode):
        point(file)
    return handle
builtins.open = open_then_point
sys.addaudithook(hook)
sys.argv = ["fable-export", *sys.argv[3:]]
runpy.run_module("fable.training.export.cli", run_name="__main__")
"""


@pytest.mark.slow
def test_an_export_killed_at_any_point_leaves_the_previous_files_intact(tiny_run, tmp_path):
    checkpoint, run = tiny_run
    previous = tmp_path / "previous"  # the window graph: every file differs from what the export writes
    export_checkpoint(checkpoint, CHECKPOINT_NAME, previous, dataclasses.replace(LENIENT, graph="window"))
    flags = [str(run / CHECKPOINT_NAME), "--min-int8-agreement", "0.9", "--max-int8-accuracy-drop", "5"]

    def export(out, kill_at: int):
        shutil.copytree(previous, out)
        command = [sys.executable, "-c", KILL_AT, str(out), str(kill_at), *flags, "--out", str(out)]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        return result, {name: data for name, data in snapshot(out).items() if not name.startswith(".")}

    old = snapshot(previous)
    finished, new = export(tmp_path / "whole", 10**9)  # never killed: what a finished export leaves
    assert finished.returncode == 0 and set(new) == set(old) and all(new[name] != old[name] for name in new)
    for kill_at in range(1, 100):
        result, files = export(tmp_path / f"kill{kill_at}", kill_at)
        if result.returncode == 0:  # fewer changes than kill_at: every one of them was a kill point
            break
        assert result.returncode == -signal.SIGKILL, result.stderr
        for name, data in files.items():  # each file whole: the previous one or the finished one
            assert data in (old[name], new[name]), (kill_at, name)
        if files[REPORT_NAME] == new[REPORT_NAME]:  # the report lands last: a new one vouches for new models
            assert all(files[name] == new[name] for name in (FP32_NAME, INT8_NAME)), kill_at
        for name in (FP32_NAME, INT8_NAME):
            fable.load(tmp_path / f"kill{kill_at}" / name).generate("the old mouse", 3)
        shutil.rmtree(tmp_path / f"kill{kill_at}")
    assert files == new and kill_at > 10, kill_at


@pytest.mark.parametrize("damage", ["missing", "truncated", "foreign", "onnx file", "random bytes"])
def test_a_bad_checkpoint_is_one_clear_line(tiny_run, exported, tmp_path, damage):
    _, run = tiny_run
    _, previous, _ = exported
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
    result = run_command("fable-export", str(path), "--out", str(tmp_path / "out"))
    assert_clean_failure(result, 2, str(path))
    assert not (tmp_path / "out").exists()


def test_an_unwritable_out_is_one_clear_line(tiny_run, tmp_path):
    _, run = tiny_run
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_command("fable-export", str(run / CHECKPOINT_NAME), "--out", str(blocker / "sub"))
    assert_clean_failure(result, 2, "cannot create --out")
    result = run_command("fable-export", str(run / CHECKPOINT_NAME), "--out", str(blocker))
    assert_clean_failure(result, 2, "is a file")


def test_without_out_the_files_go_beside_the_checkpoint_never_over_the_shipped_ones(tiny_run, tmp_path):
    _, run = tiny_run
    shutil.copy(run / CHECKPOINT_NAME, tmp_path / CHECKPOINT_NAME)
    shipped = snapshot(ROOT / "exported")
    result = run_command("fable-export", str(tmp_path / CHECKPOINT_NAME), "--min-int8-agreement", "0.9",
                         "--max-int8-accuracy-drop", "5", cwd=ROOT)  # fmt: skip
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
