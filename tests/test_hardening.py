"""Hostile input, damaged files, kills, threads and long runs: a clear error or a correct result."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from onnx import helper

import runtime
from runtime import FableError, ModelFileError, contract
from runtime.tokenizer import PUNCTUATION
from training.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from training.metrics import read_metrics

from .helpers import ROOT, SHIPPED, assert_clean_failure, run_command

INT8 = SHIPPED / "fable.int8.onnx"
FP32 = SHIPPED / "fable.onnx"


@pytest.fixture(scope="module")
def model():
    return runtime.load(INT8)


# --- 1. prompts ---------------------------------------------------------------------------------

VOCABULARY = runtime.load(INT8).vocabulary
words = st.sampled_from(VOCABULARY)
separators = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u2003", "\r\n", ""])
known_prompts = st.lists(st.tuples(words, separators, st.booleans()), max_size=12).map(
    lambda parts: "".join((word.upper() if shout else word) + gap for word, gap, shout in parts)
)
any_unicode = st.text(st.characters(exclude_categories=()), max_size=60)  # every category, lone surrogates too
controls = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"]), max_size=30)
punctuation = st.text(st.sampled_from(PUNCTUATION + " "), min_size=1, max_size=10)
mixed = st.lists(st.one_of(words, any_unicode, punctuation, controls), max_size=8).map(" ".join)
long_prompts = st.tuples(st.one_of(words, any_unicode, punctuation), st.integers(1, 1_000_000)).map(
    lambda pair: ((pair[0] + " ") * (pair[1] // (len(pair[0]) + 1) + 1))[: pair[1]]
)
# Mostly prompts a user might type; about one in twenty up to a megabyte long.
prompts = st.one_of(
    *[known_prompts] * 6, *[any_unicode] * 4, *[mixed] * 4, *[controls] * 2, *[punctuation] * 2, long_prompts
)


@settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(prompt=prompts)
@example(prompt="long ago , " * 90_000 + "the old mouse")  # a megabyte that ends well
@example(prompt="\u0000\u202e\ud800 é" * 200_000)  # a megabyte of controls, a lone surrogate, accents
@example(prompt="x" * 1_000_000)  # one megabyte-long word
def test_any_prompt_gives_vocabulary_words_or_the_runtimes_own_error(model, prompt):
    try:
        words = model.generate(prompt, words=3, temperature=1.0, seed=0).split(" ")
    except FableError as error:
        assert "\n" not in str(error) and len(str(error)) < 1000
        return
    assert len(words) == 3 and all(word in VOCABULARY for word in words)


def cli_sample() -> list[str]:
    rng = np.random.default_rng(6)
    sample = ["", " ", "\t\n", "...", "?!", "the old mouse", "THE OLD MOUSE", "the old mouse\u0000", "\u202e\u200b",
              "mice 🐭 cat", "the  old\u00a0mouse", "ünïcödé wörds", "the cat .", "a" * 100_000, "the old mouse " * 5000]  # fmt: skip
    for _ in range(10):
        codes = rng.integers(1, 0x10FFFF, size=int(rng.integers(1, 40)))
        sample.append("".join(chr(c) for c in codes if not 0xD800 <= c <= 0xDFFF))
    return sample


def test_fable_run_on_hostile_prompts_exits_0_1_or_2_without_a_traceback():
    for prompt in cli_sample():
        if "\x00" in prompt:  # an argument cannot hold NUL: it comes through standard input instead
            result = run_command("fable-run", "-n", "3", input=prompt + "\n")
        else:
            result = run_command("fable-run", prompt, "-n", "3")
        assert result.returncode in (0, 1, 2), (prompt[:50], result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
        if result.returncode:
            assert len(result.stderr.strip().splitlines()) == 1
    # a megabyte at once, and every sample line, through the interactive loop
    many = "\n".join(p.replace("\n", " ") for p in cli_sample()) + "\n" + "the old mouse " * 75_000 + "\n"
    result = run_command("fable-run", "-n", "3", input=many)
    assert result.returncode == 0 and "Traceback" not in result.stderr


# --- 2. damaged model files ---------------------------------------------------------------------


def with_props(source: Path, target: Path, **changes: str | None) -> Path:
    model = onnx.load(source)
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        key = contract.PREFIX + key
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    onnx.save(model, target)
    return target


def damaged(kind: str, folder: Path) -> Path:
    path = folder / f"{kind.replace(' ', '-')}.onnx"
    data = INT8.read_bytes()
    if kind.startswith("truncated"):
        path.write_bytes(data[: {"truncated 10": 10, "truncated 1000": 1000, "truncated half": len(data) // 2,
                                 "truncated end": len(data) - 16}[kind]])  # fmt: skip
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(1).bytes(100_000))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "foreign onnx":
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])  # fmt: skip
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    elif kind == "vocabulary shorter than the graph":
        with_props(INT8, path, vocabulary=json.dumps(list(VOCABULARY[:-1])))
    elif kind == "malformed vocabulary JSON":
        with_props(INT8, path, vocabulary='[",", "the", ')
    elif kind == "malformed model JSON":
        with_props(INT8, path, model="{layers: 2}")
    elif kind == "newer format":
        with_props(INT8, path, format_version=str(contract.FORMAT_VERSION + 1))
    elif kind == "newer tokenizer":
        with_props(INT8, path, tokenizer_version="99")
    elif kind == "window disagrees with the graph":
        with_props(INT8, path, window="4")
    elif kind == "missing metadata":
        with_props(INT8, path, graph=None)
    return path


DAMAGE = {
    "truncated 10": "not a readable ONNX model",
    "truncated 1000": "not a readable ONNX model",
    "truncated half": "not a readable ONNX model",
    "truncated end": "not a readable ONNX model",
    "random bytes": "not a readable ONNX model",
    "empty": "is empty",
    "directory": "not a file",
    "foreign onnx": "not a fable model",
    "vocabulary shorter than the graph": "vocabulary of 111",
    "malformed vocabulary JSON": "malformed JSON in fable.vocabulary",
    "malformed model JSON": "malformed JSON in fable.model",
    "newer format": f"model format {contract.FORMAT_VERSION + 1}, newer than this fable reads",
    "newer tokenizer": "tokenizer version 99",
    "window disagrees with the graph": "needs tensor(int64) [1, 4]",
    "missing metadata": "no value in fable.graph",
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_model_file_is_refused_at_load_with_one_line(tmp_path, kind):
    path = damaged(kind, tmp_path)
    with pytest.raises(ModelFileError) as error:
        runtime.load(path)
    message = str(error.value)
    assert DAMAGE[kind] in message and "\n" not in message, message
    assert_clean_failure(run_command("fable-run", "the old mouse", "--model", str(path)), 1, DAMAGE[kind])


# --- 3. interrupted work --------------------------------------------------------------------------

TRAIN_FLAGS = ["--hidden", "64", "--steps", "600", "--eval-every", "10", "--checkpoint-every", "100", "--no-progress"]


@pytest.mark.slow
def test_training_killed_with_sigkill_and_resumed_ends_with_the_uninterrupted_weights(tmp_path):
    whole = run_command("fable-train", *TRAIN_FLAGS, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "training.cli", *TRAIN_FLAGS, "--out", str(out)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120

    def evaluated_steps() -> list[int]:
        return [row["step"] for row in read_metrics(out / "metrics.jsonl")]

    # Kill once the run has logged evaluations past its last checkpoint: resuming must drop them.
    while time.monotonic() < deadline and process.poll() is None:
        if (out / CHECKPOINT_NAME).exists():
            saved = load_checkpoint(out / CHECKPOINT_NAME).step
            if saved >= 100 and max(evaluated_steps(), default=0) >= saved + 30:
                break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = load_checkpoint(out / CHECKPOINT_NAME).step
    assert 100 <= killed_at < 600, killed_at  # it really was cut short
    assert max(evaluated_steps()) > killed_at  # with evaluations logged past the checkpoint
    resumed = run_command("fable-train", "--resume", "--out", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    a = load_checkpoint(tmp_path / "whole" / CHECKPOINT_NAME).model_state
    b = load_checkpoint(out / CHECKPOINT_NAME).model_state
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert evaluated_steps() == list(range(10, 601, 10))  # each evaluation once, none lost, none repeated


# (An export killed with SIGKILL at any point: tests/test_export.py.)


# --- 4. threads ---------------------------------------------------------------------------------

THREAD_PROMPTS = ["the old mouse", "long ago ,", "said he ,", "the cat .", "who is to", "a young mouse", "until an old"]


def test_one_model_shared_by_8_threads_gives_the_sequential_results(model):
    jobs = [(p, seed) for p in THREAD_PROMPTS for seed in (None, 1, 2, 3)] * 4

    def run(job: tuple[str, int | None]) -> str:
        prompt, seed = job
        return model.generate(prompt, 48, temperature=0.0 if seed is None else 1.3, seed=seed)

    sequential = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            assert list(pool.map(run, jobs)) == sequential


def test_streams_interleaved_on_one_thread_do_not_disturb_each_other(model):
    streams = [model.stream(p, 30) for p in THREAD_PROMPTS]
    interleaved = [[] for _ in streams]
    for _ in range(30):
        for words, stream in zip(interleaved, streams):
            words.append(next(stream))
    assert [" ".join(w) for w in interleaved] == [model.generate(p, 30) for p in THREAD_PROMPTS]


# --- 5. long runs -------------------------------------------------------------------------------


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**2


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc")
def test_streaming_a_million_words_does_not_grow_memory(model):
    words = model.stream("the old mouse", 1_000_000, temperature=1.0, seed=0)
    for _ in range(50_000):  # warm-up: arenas, caches, the sampler's noise blocks
        next(words)
    before = resident_mb()
    count = 50_000
    for _ in words:
        count += 1
    assert count == 1_000_000
    assert resident_mb() - before < 5.0, (before, resident_mb())


# --- 6. no code from files ----------------------------------------------------------------------


def test_the_runtime_never_unpickles(monkeypatch, model):
    def refuse(*args, **kwargs):
        raise AssertionError("the runtime unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
    runtime.load(FP32).generate("the old mouse", 5, temperature=1.0, seed=0)
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "runtime").rglob("*.py"))
    assert "pickle" not in sources and "np.load" not in sources and "allow_pickle" not in sources


class Payload:
    """Unpickling this runs a command: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tiny_run, tmp_path):
    checkpoint_dir = tmp_path / "run"
    shutil.copytree(tiny_run[1], checkpoint_dir)
    marker = tmp_path / "pwned"
    payload = torch.load(checkpoint_dir / CHECKPOINT_NAME, weights_only=True)
    payload["vocabulary"] = Payload(marker)
    torch.save(payload, checkpoint_dir / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="damaged or not a fable checkpoint"):
        load_checkpoint(checkpoint_dir / CHECKPOINT_NAME)
    result = run_command("fable-export", str(checkpoint_dir / CHECKPOINT_NAME), "--out", str(tmp_path / "out"))
    assert_clean_failure(result, 2, "damaged or not a fable checkpoint")
    assert not marker.exists()


@pytest.mark.slow
def test_a_100_mb_vocabulary_is_refused_not_parsed(tmp_path, monkeypatch):
    path = with_props(INT8, tmp_path / "huge.onnx", vocabulary='["' + "x" * (100 * 1024**2) + '"]')
    parsed = []
    real_loads = json.loads
    monkeypatch.setattr(
        contract.json, "loads", lambda text, *a, **k: parsed.append(len(text)) or real_loads(text, *a, **k)
    )
    with pytest.raises(ModelFileError, match="oversized value"):
        runtime.load(path)
    assert all(size <= contract.MAX_VALUE_BYTES for size in parsed)  # the vocabulary never reached the parser
