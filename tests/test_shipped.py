"""The shipped files are what the model card and the report say, checked against the shipped corpus."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import fable
from fable.tokenizer import build_vocabulary

from .helpers import FABLE, SHIPPED, fable_tokens, fable_windows

FP32, INT8 = SHIPPED / "fable.onnx", SHIPPED / "fable.int8.onnx"


def correct_windows(model: fable.Model) -> int:
    return sum(model.generate(" ".join(context), 1) == word for context, word in fable_windows())


def test_vocabulary_and_corpus_hash_match_the_shipped_corpus():
    sha256 = hashlib.sha256(FABLE.read_bytes()).hexdigest()
    for path in (FP32, INT8):
        model = fable.load(path)
        assert list(model.vocabulary) == build_vocabulary(fable_tokens())
        assert model.metadata.provenance.corpus_sha256 == sha256
        assert model.metadata.provenance.preset == "memorize"


def test_fp32_reaches_the_ceiling_and_int8_stays_within_one_window_of_it():
    assert correct_windows(fable.load(FP32)) == 199
    assert correct_windows(fable.load(INT8)) >= 198


def test_the_int8_file_is_at_most_a_third_of_the_fp32_file():
    assert INT8.stat().st_size <= FP32.stat().st_size / 3


def test_both_files_pass_the_onnx_checker():
    onnx = pytest.importorskip("onnx", reason='needs the train extra: pip install "fable[train]"')
    for path in (FP32, INT8):
        onnx.checker.check_model(str(path), full_check=True)


def test_the_report_describes_the_shipped_files():
    report = json.loads((SHIPPED / "report.json").read_text())
    for path in (FP32, INT8):
        entry = report["files"][path.name]
        assert entry["bytes"] == path.stat().st_size
        assert entry["correct"] == correct_windows(fable.load(path))
    assert report["corpus"]["sha256"] == hashlib.sha256(FABLE.read_bytes()).hexdigest()
    assert np.isclose(report["files"][INT8.name]["accuracy_drop_points"], 0.0)


def test_the_model_cards_keystrokes_are_the_shipped_files_typing_the_fable():
    found = fable.load().evaluate(FABLE.read_text(encoding="utf-8"))
    card = " ".join((SHIPPED / "MODEL_CARD.md").read_text(encoding="utf-8").split())
    assert (
        f"{100 * found.keystrokes_saved:.1f}% of the keystrokes saved ({found.keys} keys instead of {found.keys_without})"
        in card
    )
