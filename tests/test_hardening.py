"""Hostile prompts, threads and long runs: a clear error or a correct result. (Damaged files:
test_damaged_files.py; kills and hostile checkpoints: test_interrupted.py.)"""

from __future__ import annotations

import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fable
from fable import FableError, Sampling
from fable.tokenizer import PUNCTUATION

from .helpers import ROOT, SHIPPED, run_command

INT8 = SHIPPED / "fable.int8.onnx"
FP32 = SHIPPED / "fable.onnx"


@pytest.fixture(scope="module")
def model():
    return fable.load(INT8)


# --- 1. prompts ---------------------------------------------------------------------------------

VOCABULARY = fable.load(INT8).vocabulary
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
        words = model.generate(prompt, 3, Sampling(1.0, seed=0)).split(" ")
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


# --- 4. threads ---------------------------------------------------------------------------------

THREAD_PROMPTS = ["the old mouse", "long ago ,", "said he ,", "the cat .", "who is to", "a young mouse", "until an old"]


def test_one_model_shared_by_8_threads_gives_the_sequential_results(model):
    jobs = [(p, seed) for p in THREAD_PROMPTS for seed in (None, 1, 2, 3)] * 4

    def run(job: tuple[str, int | None]) -> str:
        prompt, seed = job
        return model.generate(prompt, 48, Sampling(0.0 if seed is None else 1.3, seed=seed))

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
    words = model.stream("the old mouse", 1_000_000, Sampling(1.0, seed=0))
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
    fable.load(FP32).generate("the old mouse", 5, Sampling(1.0, seed=0))
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "runtime").rglob("*.py"))
    assert "pickle" not in sources and "np.load" not in sources and "allow_pickle" not in sources
