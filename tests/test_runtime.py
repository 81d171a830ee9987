"""The runtime API on the shipped models, held against the fable text and against itself."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import fable
from fable import PromptError, Sampling, SettingError, UnknownWordError, UsageError

from .helpers import SHIPPED, invoke, unambiguous_windows

FILES = ["fable.onnx", "fable.int8.onnx"]


@pytest.fixture(scope="module", params=FILES)
def model(request):
    return fable.load(SHIPPED / request.param)


@pytest.fixture(scope="module")
def default():
    return fable.load()


def test_the_default_is_the_shipped_int8_model(default):
    assert default.path.name == "fable.int8.onnx"  # installed as package data, or this checkout's file
    assert default.path.read_bytes() == (SHIPPED / "fable.int8.onnx").read_bytes()
    assert default.metadata.quantization == "int8"


def test_the_old_mouse(model):
    words = list(model.stream("the old mouse"))
    assert len(words) == 32
    assert words[:9] == "said it is easy to propose impossible remedies .".split()
    assert model.generate("the old mouse").startswith("said it is easy to propose impossible remedies. ")


@pytest.mark.parametrize(
    "context, expected", unambiguous_windows(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else v
)
def test_every_unambiguous_window_continues_as_the_fable_does(model, context, expected):
    assert model.generate(" ".join(context), words=1) == expected


def test_top_k_1_is_greedy_at_any_temperature(model):
    for prompt in ("the old mouse", "long ago ,", "who is to"):
        greedy = model.generate(prompt)
        assert model.generate(prompt, sampling=Sampling(top_k=1)) == greedy
        for temperature in (0.5, 1.0, 3.0, 100.0):
            assert model.generate(prompt, sampling=Sampling(temperature, top_k=1, seed=7)) == greedy


def test_the_same_seed_gives_the_same_words(model):
    runs = [model.generate("the mice looked", sampling=Sampling(1.5, seed=s)) for s in (1, 1, 2, 3, 4)]
    assert runs[0] == runs[1]
    assert len(set(runs[1:])) > 1  # and other seeds other words


def test_stream_equals_generate(model):
    for sampling in (Sampling(), Sampling(1.2, seed=5), Sampling(2.0, top_p=0.9, seed=1)):
        streamed = list(model.stream("the old mouse", 40, sampling))
        assert model.detokenize(streamed) == model.generate("the old mouse", 40, sampling)


def test_generate_batch_equals_generate_one_by_one(model):
    prompts = ["the old mouse", "long ago , the mice", "said he ,", "the old mouse"]
    for sampling in (Sampling(), Sampling(1.0, seed=3)):
        assert model.generate_batch(prompts, 20, sampling) == [model.generate(p, 20, sampling) for p in prompts]


def softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    return p / p.sum()


@pytest.mark.parametrize("prompt", ["the old mouse", "the cat .", "up and said", "a young mouse"])
def test_top_k_and_top_p_never_leave_their_set(model, prompt):
    """The allowed sets come from the logits and the definitions, not from the sampler."""
    temperature = 4.0  # flat enough that an escape would show
    probs = softmax(model.next_logits(model.encode(prompt)), temperature)
    order = np.argsort(-probs, kind="stable")
    cumulative = np.cumsum(probs[order])
    top_k, top_p = order[:5], order[: int(np.searchsorted(cumulative, 0.6)) + 1]
    seen_k, seen_p = set(), set()
    for seed in range(300):
        seen_k.add(model.generate(prompt, 1, Sampling(temperature, top_k=5, seed=seed)))
        seen_p.add(model.generate(prompt, 1, Sampling(temperature, top_p=0.6, seed=seed)))
    for allowed, seen in ((top_k, seen_k), (top_p, seen_p)):
        # every word of the set that 300 draws miss with a chance under 1e-4 is seen, and no other
        likely = {model.vocabulary[i] for i in allowed if probs[i] / probs[allowed].sum() > 0.031}
        assert likely <= seen <= {model.vocabulary[i] for i in allowed}, (likely, seen)
    assert len(seen_k) > 1


def test_vocabulary_window_and_info(model):
    assert model.vocabulary[:3] == (",", "the", ".")
    assert len(model.vocabulary) == 112 and model.window == 3
    info = model.info
    assert info["config"]["layers"] == 2 and info["config"]["hidden"] == 512
    assert info["file_bytes"] == model.path.stat().st_size
    assert info["provenance"]["corpus_name"] == "fable.txt"


def test_a_prompt_longer_than_the_window_uses_its_last_words(model):
    assert model.generate("long ago , the mice had a general council . the old mouse", 5) == model.generate(
        "the old mouse", 5
    )


@pytest.mark.parametrize(
    "prompt, phrase", [("", "is empty"), ("   ", "is empty"), ("old mouse", "has 2 words"), (".", "has 1 word")]
)
def test_a_short_prompt_states_the_window(model, prompt, phrase):
    with pytest.raises(PromptError, match=phrase) as error:
        model.generate(prompt)
    assert "at least 3" in str(error.value)


def test_unknown_words_are_each_named_with_the_closest_words(model):
    with pytest.raises(UnknownWordError) as error:
        model.generate("the olde mousse")
    assert error.value.words == ["olde", "mousse"]
    assert "mouse" in error.value.suggestions["mousse"] and "old" in error.value.suggestions["olde"]
    assert "'olde'" in str(error.value) and "'mousse'" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "settings",
    [{"temperature": -1}, {"temperature": float("nan")}, {"temperature": 1e308}, {"top_k": 0}, {"top_k": 2.5},
     {"top_k": 10**100}, {"top_p": 0.0}, {"top_p": 1.5}, {"seed": -1}, {"seed": True}, {"seed": 2**64}],
)  # fmt: skip
def test_bad_sampling_is_refused_when_made_naming_the_parameter(settings):
    (name,) = settings
    with pytest.raises(SettingError, match=f"^{name} must be") as error:
        Sampling(**settings)
    assert error.value.for_flag().startswith("--" + name.replace("_", "-") + " must be")


@pytest.mark.parametrize("words", [-1, 1.5, True, 10**9])
def test_bad_word_counts_are_usage_errors_naming_the_parameter(model, words):
    with pytest.raises(SettingError, match="^words must be"):
        model.generate("the old mouse", words)


def test_numpy_scalars_are_taken_wherever_a_number_is_and_go_on_as_python_numbers(default):
    """An app that computes a setting with numpy passes numpy scalars: each is the number it holds."""
    assert default.generate("the old mouse", np.int64(5)) == default.generate("the old mouse", 5)
    assert default.generate_batch(["the old mouse"], np.uint16(3)) == [default.generate("the old mouse", 3)]
    assert default.suggest("the old mouse ", k=np.int32(3)) == default.suggest("the old mouse ", k=3)
    sampling = Sampling(np.float32(0.5), np.int32(3), np.float64(0.9), np.int64(4))
    plain = Sampling(0.5, 3, 0.9, 4)
    assert sampling == plain and [type(value) for value in vars(sampling).values()] == [float, int, float, int]
    assert default.generate("the old mouse", 8, sampling) == default.generate("the old mouse", 8, plain)
    assert fable.Model(SHIPPED / "fable.int8.onnx", threads=np.int8(1)).threads == 1
    for refused in ({"seed": np.bool_(True)}, {"top_k": np.float64(3.0)}, {"temperature": np.float32("nan")}):
        with pytest.raises(SettingError):
            Sampling(**refused)


def test_sampling_must_be_a_sampling(model):
    with pytest.raises(UsageError, match="fable.Sampling"):
        model.generate("the old mouse", 3, {"temperature": 1.0})


def test_a_batch_names_its_bad_prompt(model):
    with pytest.raises(UnknownWordError, match="prompt 2: unknown word 'zebra'"):
        model.generate_batch(["the old mouse", "the old zebra"])


def test_the_default_model_loads_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("fable-run", "the old mouse", "-n", "9")
    assert result.stdout.strip() == "the old mouse said it is easy to propose impossible remedies."


def test_the_fable_logger_has_a_null_handler_so_an_app_that_set_up_no_logging_hears_nothing():
    assert any(isinstance(handler, logging.NullHandler) for handler in logging.getLogger("fable").handlers)
