"""fable-export keeps what it vouches for, and accepts a healthy model with its defaults (issue 28).

- The fp32 guard scales with the logits: float32 rounding in another order of the same sums grows
  with them, so a model with larger logits differs from PyTorch by more in absolute terms.
- A refused export leaves the previous model files and the report that vouches for them.
- After an export, report.json lists exactly the model files in the folder.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

torch = pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')
pytest.importorskip("onnx", reason='needs the train extra: pip install "fable[train]"')

from fable.contract import FILE_NAMES
from fable.training.checkpoint import CHECKPOINT_NAME
from fable.training.export import exporter
from fable.training.export.exporter import (
    FP32_NAME,
    INT4_NAME,
    INT8_NAME,
    LSTM_NAME,
    REPORT_NAME,
    ExportOptions,
    export_checkpoint,
)
from fable.training.export.guards import ExportGuardError
from fable.tuning import export_variants

from .helpers import LENIENT, SHIPPED, invoke, snapshot

REFUSED_NAME = "report.refused.json"  # a refused export's figures, beside the previous export's report
OPTIONS = ExportOptions(**LENIENT)  # quantized files held loosely: a tiny model; fp32 at its default


def louder(checkpoint, factor: float):
    """The checkpoint with every logit `factor` times larger: the head's weights and bias scaled."""
    state = {name: value * factor if name.startswith("head.") else value for name, value in checkpoint.model_state.items()}  # fmt: skip
    return dataclasses.replace(checkpoint, model_state=state)


def test_the_fp32_guard_scales_with_the_logits(tiny_export, tmp_path):
    """Logits 300 times larger differ from PyTorch's by more than fable 0.3's fixed 1e-4 (as a
    healthy 19k-token model's did: 1.07e-4), and so does torch's own float32 error: accepted."""
    checkpoint, _, quiet = tiny_export
    loud = export_checkpoint(louder(checkpoint, 300.0), CHECKPOINT_NAME, tmp_path, OPTIONS).files[0]
    assert loud.max_abs_logit_diff > 1e-4 > quiet.files[0].max_abs_logit_diff
    assert loud.error_ratio <= ExportOptions().max_fp32_error_ratio
    assert loud.correct == quiet.files[0].correct  # the same next words


def test_the_fp32_guard_still_refuses_weights_rounded_to_16_bits(tiny_export, tmp_path, monkeypatch):
    """A real fault does not hide under the relative bound: fp32 files of float16 weights."""
    checkpoint, _, _ = tiny_export
    real = exporter.weights_from_torch

    def half(model):
        weights = real(model)
        rounded = lambda array: array.astype("float16").astype("float32")  # noqa: E731
        layers = tuple(dataclasses.replace(layer, input=rounded(layer.input), recurrent=rounded(layer.recurrent))
                       for layer in weights.layers)  # fmt: skip
        return dataclasses.replace(weights, layers=layers, head_w=rounded(weights.head_w))

    monkeypatch.setattr(exporter, "weights_from_torch", half)
    with pytest.raises(ExportGuardError, match="times torch's own float32 error, above --max-fp32-error-ratio 20"):
        export_checkpoint(checkpoint, CHECKPOINT_NAME, tmp_path, OPTIONS)


def test_a_refused_export_keeps_the_previous_files_and_their_report(tiny_export, tmp_path):
    checkpoint, previous, _ = tiny_export
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    before = snapshot(out)
    impossible = dataclasses.replace(OPTIONS, min_int8_agreement=1.5)  # in fable 0.3's options too
    with pytest.raises(ExportGuardError, match="min-int8-agreement"):
        export_checkpoint(checkpoint, CHECKPOINT_NAME, out, impossible)
    after = snapshot(out)
    assert after[REPORT_NAME] == before[REPORT_NAME]  # still vouching for the files beside it
    refused = json.loads(after.pop(REFUSED_NAME))
    assert after == before
    assert refused["passed"] is False and "min-int8-agreement" in refused["failures"][0]
    assert all(vouched for _, vouched in export_variants(out / INT8_NAME))


def test_the_report_lists_exactly_the_model_files_in_the_folder(tiny_run, tiny_export, tmp_path):
    """The README's re-export over an earlier export's folder: the earlier int4 file, and another
    model's int8-lstm file, go; the output says so, and a later success drops a refusal's figures."""
    _, run = tiny_run
    _, previous, _ = tiny_export
    out = tmp_path / "out"
    shutil.copytree(previous, out)
    shutil.copy(SHIPPED / LSTM_NAME, out / LSTM_NAME)
    (out / REFUSED_NAME).write_text("{}")
    result = invoke("fable-export", str(run / CHECKPOINT_NAME), "--out", str(out), "--min-int8-agreement", "0.9",
                    "--max-int8-accuracy-drop", "5")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"removed {INT4_NAME}, {LSTM_NAME}: of an earlier export, not written by this one" in result.stdout
    report = json.loads((out / REPORT_NAME).read_text())
    models = {path.name for path in out.iterdir() if path.name in FILE_NAMES.values()}
    assert models == set(report["files"]) == {FP32_NAME, INT8_NAME}
    assert set(snapshot(out)) == {FP32_NAME, INT8_NAME, REPORT_NAME}
