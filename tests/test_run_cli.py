"""fable-run: each flag, the interactive loop, each error with its exit code. One test runs the
installed script in a real process; the others run the same command in this one (`invoke`)."""

from __future__ import annotations

import json
import shutil

import pytest

import fable
from fable import Sampling

from .helpers import GOLDEN as CONTINUATION
from .helpers import GOLDEN_TOKENS, SHIPPED, assert_clean_failure, invoke, run_command

GOLDEN = "the old mouse " + CONTINUATION  # the prompt, then the fable's own next words


def fable_run(*args: str, input: str | None = None):
    return invoke("fable-run", *args, input=input)


def test_the_tutorial_line():
    result = run_command("fable-run", "the old mouse")  # the installed script, in a process of its own
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert "\n" not in line and line.startswith(GOLDEN)
    assert line == "the old mouse " + fable.load().generate("the old mouse")


def test_tokens_prints_the_tutorials_spaced_tokens():
    result = fable_run("the old mouse", "--tokens")
    line = result.stdout.strip()
    assert line.startswith("the old mouse " + GOLDEN_TOKENS) and len(line.split()) == 3 + 32
    assert fable_run("the old mouse", "--tokens", "--stream").stdout == result.stdout


def test_words_model_and_threads():
    result = fable_run("the old mouse", "-n", "9", "--model", str(SHIPPED / "fable.onnx"), "--threads", "2")
    assert result.stdout.strip() == GOLDEN
    assert fable_run("the old mouse", "--words", "4").stdout.strip() == "the old mouse said it is easy"


def test_sampling_flags_are_reproducible_and_match_the_library():
    model = fable.load()
    for flags, sampling in [
        (["--temperature", "1.5", "--seed", "4"], Sampling(1.5, seed=4)),
        (["--temperature", "2", "--top-k", "3", "--seed", "9"], Sampling(2.0, top_k=3, seed=9)),
        (["--temperature", "2", "--top-p", "0.8", "--seed", "1"], Sampling(2.0, top_p=0.8, seed=1)),
    ]:
        first, second = fable_run("the old mouse", *flags), fable_run("the old mouse", *flags)
        assert first.stdout == second.stdout
        assert first.stdout.strip() == "the old mouse " + model.generate("the old mouse", sampling=sampling)


def test_stream_prints_the_same_line():
    assert fable_run("the old mouse", "--stream").stdout == fable_run("the old mouse").stdout


def test_json():
    result = fable_run("the old mouse", "--json", "-n", "9")
    payload = json.loads(result.stdout)
    assert payload["prompt"] == "the old mouse"
    assert " ".join(payload["words"]) == GOLDEN_TOKENS and payload["text"] == CONTINUATION
    assert payload["model"].endswith("fable.int8.onnx")
    assert set(payload["timings"]) == {"load_ms", "first_word_ms", "total_ms", "words_per_second"}
    assert all(value >= 0 for value in payload["timings"].values())


def test_info_is_the_model_card():
    card = fable_run("--info").stdout
    for phrase in ("112 words", "3 words", "2 LSTM x 512", "int8", "fable.txt", "memorize preset", "MB", "99.0%"):
        assert phrase in card


def test_version():
    assert fable_run("--version").stdout.strip() == f"fable-run {fable.__version__}"


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
    "unknown flag": (["the old mouse", "--colour"], "--colour"),
}
# Each bad value is named by the flag the user typed, never by a Python parameter.
FLAG_ERRORS = {
    "negative temperature": (["--temperature", "-1"], "--temperature"),
    "zero top-k": (["--top-k", "0"], "--top-k"),
    "fractional top-k": (["--top-k", "2.5"], "--top-k"),
    "zero top-p": (["--top-p", "0"], "--top-p must be more than 0"),
    "top-p above 1": (["--top-p", "1.5"], "--top-p"),
    "negative seed": (["--seed", "-3"], "--seed"),
    "zero words": (["-n", "0"], "--words"),
    "non-numeric words": (["-n", "many"], "--words"),
    "zero threads": (["--threads", "0"], "--threads"),
    "too many threads": (["--threads", "100000"], "--threads"),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_usage_errors_exit_2(case):
    args, phrase = USAGE_ERRORS[case]
    assert_clean_failure(fable_run(*args), 2, phrase)


@pytest.mark.parametrize("case", FLAG_ERRORS)
def test_a_bad_value_is_named_by_its_flag(case):
    args, phrase = FLAG_ERRORS[case]
    result = fable_run("the old mouse", *args)
    assert_clean_failure(result, 2, phrase)
    assert "_" not in result.stderr.split("error:", 1)[1].split(",")[0]  # no top_k, no python names


def test_model_errors_exit_1(tmp_path):
    assert_clean_failure(fable_run("the old mouse", "--model", str(tmp_path / "none.onnx")), 1, "does not exist")
    assert_clean_failure(fable_run("the old mouse", "--model", str(tmp_path)), 1, "not a file")
    (tmp_path / "cut.onnx").write_bytes((SHIPPED / "fable.int8.onnx").read_bytes()[:5000])
    assert_clean_failure(
        fable_run("the old mouse", "--model", str(tmp_path / "cut.onnx")), 1, "not a readable ONNX model"
    )
    shutil.copy(SHIPPED / "report.json", tmp_path / "report.onnx")
    assert_clean_failure(fable_run("--info", "--model", str(tmp_path / "report.onnx")), 1, "report.onnx")


# Flags that contradict each other, or that the use asked for would silently ignore: each refused in
# one line, before the model is loaded (the model named here does not exist: loading would exit 1).
IDLE_FLAGS = {
    "suggestions alone": (["the old mouse", "--suggestions", "5"], "--suggestions does nothing with a PROMPT"),
    "spin on numpy": (["the old mouse", "--spin", "--backend", "numpy"], "the numpy backend has no such setting"),
    "no-spin on numpy": (["--info", "--no-spin", "--backend", "numpy"], "the numpy backend has no such setting"),
    "words with --suggest": (["--suggest", "the old mo", "-n", "4"], "--words does nothing with --suggest"),
    "sampling with --score": (["--score", "the old mouse said", "--top-k", "2", "--seed", "1"], "--top-k, --seed do"),
    "a prompt with --info": (["--info", "the old mouse"], "PROMPT does nothing with --info"),
    "json with --info": (["--info", "--json"], "--json does nothing with --info"),
    "stream with --json": (["the old mouse", "--json", "--stream"], "--stream does nothing with --json"),
    "tokens with --json in the loop": (["--json", "--tokens"], "--tokens does nothing with --json"),
    "stream in the loop": (["--stream"], "--stream does nothing with the loop"),
    "suggestions with --score --file": (["--score", "--file", "x.txt", "--suggestions", "3"], "with --score --file"),
    "file without --score": (["--file", "x.txt"], "--file goes with --score"),
    "suggest and score": (["--suggest", "--score", "the old mouse"], "one at a time"),
}


@pytest.mark.parametrize("case", IDLE_FLAGS)
def test_flags_that_would_do_nothing_are_refused_before_the_model_loads(case, tmp_path):
    args, phrase = IDLE_FLAGS[case]
    assert_clean_failure(fable_run(*args, "--model", str(tmp_path / "none.onnx")), 2, phrase)
