"""Rare words read as <unk>: in the corpus (--min-count, --max-vocab), in prompts, never generated."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')

import fable  # noqa: E402
from fable.errors import UsageError  # noqa: E402
from fable.tokenizer import UNKNOWN, tokenize  # noqa: E402
from fable.training.ceiling import ceiling  # noqa: E402
from fable.training.corpus import load_corpus  # noqa: E402

from .helpers import FABLE, fable_tokens, invoke, tiny_config  # noqa: E402

TEXT = "a b a c a b d e a b"  # a: 4, b: 3, c d e: 1


def corpus_of(tmp_path: Path, text: str = TEXT, **options):
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    return load_corpus(tmp_path / "t.txt", 2, **options)


def test_words_seen_fewer_than_min_count_times_are_read_as_unk(tmp_path: Path):
    corpus = corpus_of(tmp_path, min_count=2)
    assert [corpus.vocabulary[i] for i in corpus.ids] == ["a", "b", "a", UNKNOWN, "a", "b", UNKNOWN, UNKNOWN, "a", "b"]
    assert corpus.vocabulary == ["a", "b", UNKNOWN]  # by frequency, <unk> among them
    assert (corpus.rare_words, corpus.rare_tokens) == (3, 3)


def test_max_vocab_keeps_the_most_frequent_words_and_counts_unk_among_them(tmp_path: Path):
    corpus = corpus_of(tmp_path, max_vocab=3)
    assert set(corpus.vocabulary) == {"a", "b", UNKNOWN} and len(corpus.vocabulary) == 3
    assert corpus_of(tmp_path, max_vocab=5).vocabulary == ["a", "b", "c", "d", "e"]  # all fit: no <unk>
    four = corpus_of(tmp_path, max_vocab=4)
    assert set(four.vocabulary) == {"a", "b", "c", UNKNOWN}  # ties: the first seen stays


def test_without_options_every_word_is_kept(tmp_path: Path):
    corpus = corpus_of(tmp_path)
    assert UNKNOWN not in corpus.vocabulary and corpus.rare_words == 0


def test_a_min_count_that_keeps_nothing_is_refused(tmp_path: Path):
    with pytest.raises(UsageError, match="--min-count 9"):
        corpus_of(tmp_path, min_count=9)


def test_the_ceiling_is_of_the_text_the_model_sees(tmp_path: Path):
    corpus = corpus_of(tmp_path, min_count=2)
    # windows of 2 over a b a <unk> a b <unk> <unk> a b, counted by hand:
    # (a b)->a, (b a)-><unk>, (a <unk>)->a, (<unk> a)->b, (a b)-><unk>, (b <unk>)-><unk>, (<unk> <unk>)->a, (<unk> a)->b
    # (a b) is followed by a and <unk>: one of the two; every other context has one next word.
    best = ceiling(*corpus.windows(2))
    assert (best.correct, best.windows) == (7, 8)


@pytest.fixture(scope="module")
def unk_model(tmp_path_factory) -> fable.Model:
    """A tiny model of the fable with its words seen once read as <unk> (the most frequent token)."""
    from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from fable.training.export.exporter import ExportOptions, export_checkpoint
    from fable.training.train import train

    out = tmp_path_factory.mktemp("unk")
    corpus = load_corpus(None, 3, min_count=2)
    train(corpus, dataclasses.replace(tiny_config(steps=120), min_count=2), "cpu", out)
    loose = ExportOptions(min_int8_agreement=0, max_int8_accuracy_drop=100)
    export_checkpoint(load_checkpoint(out / CHECKPOINT_NAME), CHECKPOINT_NAME, out / "exported", loose)
    return fable.Model(out / "exported" / "fable.onnx")


def test_the_fable_with_min_count_2_has_unk_as_its_most_frequent_token(unk_model: fable.Model):
    counts = Counter(fable_tokens())
    assert unk_model.vocabulary[0] == UNKNOWN
    assert set(unk_model.vocabulary) == {w for w, n in counts.items() if n >= 2} | {UNKNOWN}


def test_generation_never_emits_unk_though_the_model_predicts_it(unk_model: fable.Model):
    unk = unk_model.vocabulary.index(UNKNOWN)
    tokens = fable_tokens()
    prompts = [" ".join(tokens[i : i + 3]) for i in range(len(tokens) - 3)]
    # the truth the rule is held against: the raw logits put <unk> first after many of these prompts
    with_unk_first = [p for p in prompts if np.argmax(unk_model.next_logits(unk_model.encode(p))) == unk]
    assert len(with_unk_first) >= 5
    for prompt in with_unk_first:
        assert UNKNOWN not in list(unk_model.stream(prompt, 8))
        for seed in range(3):
            assert UNKNOWN not in list(unk_model.stream(prompt, 8, fable.Sampling(2.0, seed=seed)))
        assert UNKNOWN not in [s.word for s in unk_model.suggest(prompt + " ", k=len(unk_model.vocabulary))]
    assert all(UNKNOWN not in text for text in unk_model.generate_batch(with_unk_first[:8], 8))


def test_an_unknown_prompt_word_is_read_as_unk_with_a_notice(unk_model: fable.Model, caplog):
    with caplog.at_level(logging.WARNING, logger="fable"):
        ids = unk_model.encode("the zebra mouse")
    assert [unk_model.vocabulary[i] for i in ids] == ["the", UNKNOWN, "mouse"]
    assert "'zebra' is not in the model's vocabulary, read as <unk>" in caplog.text
    unk = unk_model.vocabulary.index(UNKNOWN)
    # typed "<unk>" is "<", "unk", ">" (each unknown), not the token: read as the token, it would
    # leave "the old" before it
    assert unk_model.encode("the old <unk>") == [unk, unk, unk]
    assert unk_model.score("the zebra mouse said it").words[0].word == "said"
    assert unk_model.suggest("the old zebr") == []  # nothing it knows completes the word


def test_a_model_without_unk_still_refuses_unknown_words():
    model = fable.load()
    assert UNKNOWN not in model.vocabulary
    with pytest.raises(fable.UnknownWordError, match="'zebra'"):
        model.generate("the old zebra")


def test_fable_run_reads_an_unknown_word_as_unk_and_says_so(unk_model: fable.Model):
    result = invoke("fable-run", "the zebra mouse", "-n", "5", "--model", str(unk_model.path))
    assert result.returncode == 0, result.stderr
    assert "'zebra' is not in the model's vocabulary, read as <unk>" in result.stderr
    assert result.stdout.startswith("the zebra mouse ") and UNKNOWN not in result.stdout


def test_fable_train_says_how_many_rare_words_it_reads_as_unk(tmp_path: Path):
    result = invoke("fable-train", "--min-count", "2", "--steps", "2", "--hidden", "16", "--out",
                         str(tmp_path / "run"), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rare = Counter(tokenize(FABLE.read_text(encoding="utf-8")))
    once = [w for w, n in rare.items() if n == 1]
    assert f"{len(once)} rare words ({len(once)} tokens) read as {UNKNOWN}" in result.stdout
    bad = invoke("fable-train", "--max-vocab", "1", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "--max-vocab" in bad.stderr and "Traceback" not in bad.stderr
