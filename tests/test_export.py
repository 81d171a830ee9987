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
    INT8_NAME,
    REPORT_NAME,
    ExportOptions,
    export_checkpoint,
    metadata_for,
)
from fable.training.export.quantize import ExportGuardError, check_quantized, quantize_int8
from fable.training.train import train

from .helpers import ROOT, assert_clean_failure, run_command, snapshot, tiny_config

# Tiny models are less sure of themselves than the shipped one; int8 may flip a near tie there.
LENIENT = ExportOptions(min_int8_agreement=0.9, max_int8_accuracy_drop=5.0)


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    checkpoint, _ = tiny_run
    out = tmp_path_factory.mktemp("exported")
    result = export_checkpoint(checkpoint, CHECKPOINT_NAME, out, LENIENT)
    return checkpoint, out, result


def test_both_files_are_complete_fable_models(exported):
    checkpoint, out, _ = exported
    for name, quantization in ((FP32_NAME, "fp32"), (INT8_NAME, "int8")):
        onnx.checker.check_model(str(out / name), full_check=True)
        model = fable.load(out / name)
        assert model.metadata == metadata_for(checkpoint, "step", quantization)
        assert list(model.vocabulary) == checkpoint.vocabulary
        assert model.metadata.provenance.corpus_sha256 == checkpoint.corpus_sha256


def test_the_int8_file_really_is_int8(exported):
    _, out, _ = exported
    model = onnx.load(out / INT8_NAME)
    ops = {node.op_type for node in model.graph.node}
    assert "LSTM" not in ops and "DynamicQuantizeLSTM" in ops
    int8_elements = sum(
        numpy_helper.to_array(i).size for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8
    )
    lstm_elements = sum(
        numpy_helper.to_array(i).size for i in onnx.load(out / FP32_NAME).graph.initializer if i.name.startswith("lstm")
    )
    assert int8_elements > 0.95 * lstm_elements  # the LSTM weights (and the head) went to int8


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
    fp32, int8 = report["files"][FP32_NAME], report["files"][INT8_NAME]
    assert fp32["bytes"] == (out / FP32_NAME).stat().st_size and int8["bytes"] == (out / INT8_NAME).stat().st_size
    assert int8["bytes"] < fp32["bytes"] / 2
    assert report["windows_measured"] == report["windows_total"] == 201
    assert fp32["correct"] == result.fp32.correct and 0 < fp32["max_abs_logit_diff"] < 1e-4
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


def leave_lstm_in_fp32(fp32, int8):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(fp32, int8, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)


def quantize_then_damage_head(fp32, int8):
    """A quantizer that gets the numbers wrong: int8 then disagrees with PyTorch."""
    quantize_int8(fp32, int8)
    model = onnx.load(int8)
    for init in model.graph.initializer:
        if init.name == "head.bias":
            bias = numpy_helper.to_array(init).copy()
            bias[: len(bias) // 2] += 50.0
            init.CopyFrom(numpy_helper.from_array(bias, init.name))
    onnx.save(model, int8)


def quantize_then_break_graph(fp32, int8):
    quantize_int8(fp32, int8)
    model = onnx.load(int8)
    model.graph.node[0].input[0] = "no_such_tensor"
    onnx.save(model, int8)


GUARDS = {
    "float LSTM left": (dict(quantize=leave_lstm_in_fp32), LENIENT, "float LSTM"),
    "big float matrix": ({}, dataclasses.replace(LENIENT, max_float_elements=1000), "--max-float-elements"),
    "onnx.checker": (dict(quantize=quantize_then_break_graph), LENIENT, "onnx.checker"),
    "fp32 parity": ({}, dataclasses.replace(LENIENT, max_fp32_logit_diff=0.0), "--max-fp32-logit-diff"),
    "int8 agreement": (dict(quantize=quantize_then_damage_head), dataclasses.replace(LENIENT, max_int8_accuracy_drop=100), "--min-int8-agreement"),
    "int8 accuracy drop": (dict(quantize=quantize_then_damage_head), dataclasses.replace(LENIENT, min_int8_agreement=0), "--max-int8-accuracy-drop"),
}  # fmt: skip


@pytest.mark.parametrize("case", GUARDS)
def test_a_tripped_guard_refuses_the_export_and_keeps_the_previous_files(exported, tmp_path, case):
    checkpoint, previous, _ = exported
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    before = snapshot(out)
    kwargs, options, phrase = GUARDS[case]
    with pytest.raises(ExportGuardError, match=phrase):
        export_checkpoint(checkpoint, CHECKPOINT_NAME, out, options, **kwargs)
    assert snapshot(out) == before  # no temporary file left behind either


def test_the_float_lstm_guard_reads_the_graph(exported, tmp_path):
    _, out, _ = exported
    leave_lstm_in_fp32(out / FP32_NAME, tmp_path / "half.onnx")
    with pytest.raises(ExportGuardError, match="2 float LSTM"):
        check_quantized(onnx.load(tmp_path / "half.onnx"), 512 * 512)
    check_quantized(onnx.load(out / INT8_NAME), 512 * 512)  # the real one passes


def test_a_guard_names_its_figure_value_and_option_on_the_command_line(tiny_run, tmp_path):
    _, run = tiny_run
    result = run_command(
        "fable-export", str(run / CHECKPOINT_NAME), "--out", str(tmp_path), "--max-fp32-logit-diff", "0"
    )
    assert_clean_failure(result, 1, "fp32 largest |logit - torch|", "--max-fp32-logit-diff 0", "previous files kept")
    assert snapshot(tmp_path) == {}


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
