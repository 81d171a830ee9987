"""Real batches: one run of the model per word for every prompt, and the words of one prompt at a time."""

from __future__ import annotations

import numpy as np
import pytest

import fable
from fable import Sampling
from fable.backend import default_backend

from .helpers import SHIPPED, fable_tokens

FILES = ["fable.int8.onnx", "fable.onnx", "fable.int4.onnx"]
BACKENDS = [default_backend(), "numpy"] if default_backend() != "numpy" else ["numpy"]
SAMPLINGS = {"greedy": Sampling(), "seeded": Sampling(temperature=1.0, seed=7), "top-k": Sampling(0.8, top_k=5, seed=1)}


def prompts(count: int) -> list[str]:
    """Prompts from the fable of 3 to 9 words: each batch row starts from a different context."""
    tokens = fable_tokens()
    return [" ".join(tokens[17 * i : 17 * i + 3 + i % 7]) for i in range(count)]


@pytest.fixture(scope="module", params=[(f, b) for f in FILES for b in BACKENDS], ids=lambda p: f"{p[0]}-{p[1]}")
def model(request) -> fable.Model:
    name, backend = request.param
    return fable.Model(SHIPPED / name, backend=backend)


@pytest.mark.parametrize("size", [1, 2, 3, 8])
@pytest.mark.parametrize("mode", SAMPLINGS)
def test_a_batch_gives_the_words_of_one_prompt_at_a_time(model, size, mode):
    batch = prompts(size)
    sampling = SAMPLINGS[mode]
    assert model.generate_batch(batch, 32, sampling) == [model.generate(p, 32, sampling) for p in batch]


def test_a_batch_runs_the_model_once_a_word_for_all_prompts(model, monkeypatch):
    """Counted at the kernel: 8 prompts x 32 words is 3 + 31 runs (the window, then a word each),
    as for one prompt; one prompt at a time would be 8 x 34."""
    kernel_class = type(model._backend.kernel(8))
    runs = []
    original = kernel_class.run
    monkeypatch.setattr(
        kernel_class, "run", lambda self, tokens: runs.append(np.shape(tokens)) or original(self, tokens)
    )
    model.generate_batch(prompts(8), 32)
    assert runs == [(8, 1)] * (model.window + 31)


def test_the_stream_yields_each_prompts_word_in_turn(model):
    batch = prompts(3)
    streamed = list(model.stream_batch(batch, 4, Sampling(temperature=1.0, seed=2)))
    assert [index for index, _ in streamed] == [0, 1, 2] * 4
    assert [model.detokenize([w for i, w in streamed if i == n], batch[n]) for n in range(3)] == model.generate_batch(
        batch, 4, Sampling(temperature=1.0, seed=2)
    )


def test_more_prompts_than_one_turn_holds_still_match(monkeypatch):
    import fable.engine

    monkeypatch.setattr(fable.engine, "MAX_BATCH", 3)  # 8 prompts in turns of 3, 3 and 2
    model = fable.Model(SHIPPED / "fable.int8.onnx")
    batch = prompts(8)
    assert model.generate_batch(batch, 12) == [model.generate(p, 12) for p in batch]
    assert [i for i, _ in model.stream_batch(batch, 2)] == [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 6, 7]


def test_a_format_1_file_decodes_a_batch_one_sequence_after_another_with_the_same_words():
    """Format 1's step graph takes one sequence: a batch runs it once per prompt and word, through
    the same decode loop, and streams in the same order as a batched file."""
    model = fable.Model(SHIPPED.parent / "tests" / "data" / "fable.v1.int8.onnx")
    assert model.metadata.format_version == 1 and not model.metadata.batched
    batch = prompts(3)
    assert model.generate_batch(batch, 8) == [model.generate(p, 8) for p in batch]
    assert [i for i, _ in model.stream_batch(batch, 2)] == [0, 1, 2, 0, 1, 2]


def test_edges_empty_batch_no_words_and_bad_prompts():
    model = fable.Model(SHIPPED / "fable.int8.onnx")
    assert model.generate_batch([], 5) == []
    assert model.generate_batch(prompts(2), 0) == ["", ""]
    with pytest.raises(fable.UnknownWordError, match="^prompt 2: unknown word 'zebra'"):
        model.generate_batch(["the old mouse", "the old zebra"])
    with pytest.raises(fable.PromptError, match="^prompt 1: the prompt has 1 word"):
        model.generate_batch(["mouse"])
    with pytest.raises(fable.PromptError, match="a list of prompts"):
        model.generate_batch("the old mouse")
    with pytest.raises(fable.PromptError, match="^context 1: word ids"):
        list(model.stream_batch_ids([[0, 1, 10_000]]))
    with pytest.raises(fable.PromptError, match="^context 2: the context has 2 ids"):
        model.stream_batch_ids([[0, 1, 2], [0, 1]])
    with pytest.raises(fable.PromptError, match="whole numbers"):
        model.stream_ids(["the", "old", "mouse"])
    with pytest.raises(fable.PromptError, match="must be text, not int"):
        model.generate_batch([3])
    assert model.generate_batch(p for p in prompts(2)) == [model.generate(p) for p in prompts(2)]  # any iterable
    with pytest.raises(fable.SettingError, match="spin must be"):
        fable.Model(SHIPPED / "fable.int8.onnx", spin="yes")


def test_the_decoders_kept_idle_are_bounded_whatever_batch_sizes_an_app_meets():
    """Each idle decoder holds logits [batch, window, vocab]: an app that batches whatever arrives
    (sizes 1 to 40 here) keeps decoders for the few sizes it returned last, not one for every size."""
    model = fable.Model(SHIPPED / "fable.int8.onnx")
    pool = model._pool  # noqa: SLF001 - the pool under test
    for size in range(1, 41):
        model.generate_batch((prompts(8) * 5)[:size], 2)
    kept = pool.idle_sizes()
    assert len(kept) <= pool.KEEP_SIZES and kept[-1] == 40, kept
    assert model.generate_batch(prompts(3), 32) == [model.generate(p, 32) for p in prompts(3)]  # made anew, same words
