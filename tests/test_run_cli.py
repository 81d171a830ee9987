"""fable-run through real processes: each flag, the interactive loop, each error with its exit code."""

from __future__ import annotations

import json
import shutil

import pytest

import runtime

from .helpers import SHIPPED, assert_clean_failure, run_command

GOLDEN = "the old mouse said it is easy to propose impossible remedies ."


def fable_run(*args: str, input: str | None = None):
    return run_command("fable-run", *args, input=input)


def test_the_tutorial_line():
    result = fable_run("the old mouse")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert "\n" not in line and line.startswith(GOLDEN)
    assert len(line.split()) == 3 + 32


def test_words_model_and_threads():
    result = fable_run("the old mouse", "-n", "9", "--model", str(SHIPPED / "fable.onnx"), "--threads", "2")
    assert result.stdout.strip() == GOLDEN
    assert fable_run("the old mouse", "--words", "4").stdout.strip() == "the old mouse said it is easy"


def test_sampling_flags_are_reproducible_and_match_the_library():
    model = runtime.load()
    for flags, kwargs in [
        (["--temperature", "1.5", "--seed", "4"], {"temperature": 1.5, "seed": 4}),
        (["--temperature", "2", "--top-k", "3", "--seed", "9"], {"temperature": 2.0, "top_k": 3, "seed": 9}),
        (["--temperature", "2", "--top-p", "0.8", "--seed", "1"], {"temperature": 2.0, "top_p": 0.8, "seed": 1}),
    ]:
        first, second = fable_run("the old mouse", *flags), fable_run("the old mouse", *flags)
        assert first.stdout == second.stdout
        assert first.stdout.strip() == "the old mouse " + model.generate("the old mouse", **kwargs)


def test_stream_prints_the_same_line():
    assert fable_run("the old mouse", "--stream").stdout == fable_run("the old mouse").stdout


def test_json():
    result = fable_run("the old mouse", "--json", "-n", "9")
    payload = json.loads(result.stdout)
    assert payload["prompt"] == "the old mouse"
    assert " ".join(payload["words"]) == payload["text"] == GOLDEN[len("the old mouse ") :]
    assert payload["model"].endswith("fable.int8.onnx")
    assert set(payload["timings"]) == {"load_ms", "first_word_ms", "total_ms", "words_per_second"}
    assert all(value >= 0 for value in payload["timings"].values())


def test_info_is_the_model_card():
    card = fable_run("--info").stdout
    for phrase in ("112 words", "3 words", "2 LSTM x 512", "int8", "fable.txt", "default preset", "MB", "99.0%"):
        assert phrase in card


def test_version():
    assert fable_run("--version").stdout.strip() == f"fable-run {runtime.__version__}"


def test_the_interactive_loop_answers_each_line_and_says_what_was_wrong():
    result = fable_run("-n", "4", input="the old mouse\nold mouse\n\nthe zebra said\nsaid he ,\n")
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["the old mouse said it is easy", "said he , that our chief danger"]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "has 2 words" in errors[0] and "'zebra'" in errors[1]
    assert "Traceback" not in result.stderr


def test_the_interactive_loop_ends_cleanly_on_empty_input():
    result = fable_run(input="")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


USAGE_ERRORS = {
    "unknown word": (["the old zebra"], "'zebra'"),
    "short prompt": (["old mouse"], "at least 3"),
    "empty prompt": ([""], "is empty"),
    "negative temperature": (["the old mouse", "--temperature", "-1"], "temperature"),
    "zero top-k": (["the old mouse", "--top-k", "0"], "top_k"),
    "top-p above 1": (["the old mouse", "--top-p", "1.5"], "top_p"),
    "negative seed": (["the old mouse", "--seed", "-3"], "seed"),
    "zero words": (["the old mouse", "-n", "0"], "--words"),
    "non-numeric words": (["the old mouse", "-n", "many"], "--words"),
    "zero threads": (["the old mouse", "--threads", "0"], "threads"),
    "unknown flag": (["the old mouse", "--colour"], "--colour"),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_usage_errors_exit_2(case):
    args, phrase = USAGE_ERRORS[case]
    assert_clean_failure(fable_run(*args), 2, phrase)


def test_model_errors_exit_1(tmp_path):
    assert_clean_failure(fable_run("the old mouse", "--model", str(tmp_path / "none.onnx")), 1, "does not exist")
    assert_clean_failure(fable_run("the old mouse", "--model", str(tmp_path)), 1, "not a file")
    (tmp_path / "cut.onnx").write_bytes((SHIPPED / "fable.int8.onnx").read_bytes()[:5000])
    assert_clean_failure(
        fable_run("the old mouse", "--model", str(tmp_path / "cut.onnx")), 1, "not a readable ONNX model"
    )
    shutil.copy(SHIPPED / "report.json", tmp_path / "report.onnx")
    assert_clean_failure(fable_run("--info", "--model", str(tmp_path / "report.onnx")), 1, "report.onnx")
