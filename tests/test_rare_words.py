"""Rare words read as <unk>: in the corpus (--min-count, --max-vocab), in prompts (each named once, at
INFO: an app hears nothing unless it asks, the commands print it), never generated."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')

import fable  # noqa: E402
from fable.errors import UsageError, log  # noqa: E402
from fable.tokenizer import UNKNOWN, tokenize  # noqa: E402
from fable.training.ceiling import ceiling  # noqa: E402
from fable.training.corpus import load_corpus  # noqa: E402

from .helpers import FABLE, command_env, fable_tokens, fable_with_words, invoke  # noqa: E402

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
    with caplog.at_level(logging.INFO, logger="fable"):
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


INVENTED = ["zebra", "quokka", "narwhal", "axolotl", "okapi"]  # words no model of the fable knows


def keyboard_text(words: int = 1_000) -> list[str]:
    """The fable's words again and again, an invented word every 40 (each invented word comes back)."""
    return fable_with_words(INVENTED, words, 20, 40)


def test_typing_a_text_with_unknown_words_names_each_once_below_warning(unk_model: fable.Model, caplog):
    model = fable.Model(unk_model.path)  # its own, which has named no words yet
    words = keyboard_text()
    unknown = {w for w in words if w not in model.vocabulary}
    assert set(INVENTED) <= unknown and len(unknown) > len(INVENTED)  # the fable's rare words too
    with caplog.at_level(logging.INFO, logger="fable"), model.typing() as typing:
        text = ""
        for word in words:  # a keyboard asks at each word's first letter, midway and at its end
            for cut in sorted({1, (len(word) + 1) // 2, len(word)}):
                typing.suggest(text + word[:cut])
            text += word + " "
            typing.suggest(text)
    fable_records = [r for r in caplog.records if r.name == "fable"]
    assert [r.getMessage() for r in fable_records if r.levelno >= logging.WARNING] == []
    notices = [r.getMessage() for r in fable_records]
    assert all("not in the model's vocabulary, read as <unk>" in n for n in notices)
    named = {w: sum(f"'{w}'" in n for n in notices) for w in unknown}
    assert named == dict.fromkeys(unknown, 1), named  # each once, though each was read many times
    assert len(notices) == len(unknown)  # each arrived alone, as typed


def test_a_lexicon_remembers_a_bounded_number_of_words(unk_model: fable.Model, caplog, monkeypatch):
    from fable import prompt

    lexicon = prompt.Lexicon(unk_model.vocabulary, unk_model.metadata.tokenizer_version)
    monkeypatch.setattr(prompt, "NOTICED", 3)
    with caplog.at_level(logging.INFO, logger="fable"):
        for text in ["the zebra mouse", "the quokka narwhal", "the axolotl okapi", "the zebra okapi"]:
            lexicon.ids(lexicon.read(text), "text", 1, 3)
    notices = [r.getMessage() for r in caplog.records if r.name == "fable"]
    assert len(notices) == 2 and "'zebra'" in notices[0] and "'quokka', 'narwhal'" in notices[1]
    assert "no more unknown words will be named" in notices[1]
    assert len(lexicon.noticed) == 3


def test_a_program_that_never_set_up_logging_prints_nothing(unk_model: fable.Model):
    program = f"""
import fable
model = fable.Model({str(unk_model.path)!r})
model.suggest("the zebra ")
model.generate("the zebra mouse", 3)
model.score("the zebra mouse said it")
with model.typing() as typing:
    for text in ["the zebra", "the zebra ", "the zebra m", "the zebra mouse ", "the quokka zebra "]:
        typing.suggest(text)
print("done")
"""
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=command_env(), timeout=120
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")


def test_the_commands_print_notices_through_one_handler_however_often_they_run(unk_model: fable.Model, capsys):
    from fable.cli import run_app
    from fable.cli.run import app

    level = log.level
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(log, "handlers", [])
            patch.setattr(log, "propagate", False)
            for _ in range(2):
                with pytest.raises(SystemExit) as done:
                    run_app(app, "fable-run", ["the zebra mouse", "-n", "2", "--model", str(unk_model.path)])
                assert done.value.code == 0
            shown = [h for h in log.handlers if not isinstance(h, logging.NullHandler)]
            assert len(shown) == 1 and shown[0].level == logging.INFO
            assert shown[0].format(logging.makeLogRecord({"msg": "said"})) == "said"
    finally:
        log.setLevel(level)
    said = capsys.readouterr().err.splitlines()  # once a run (each loads the model): a second handler would make 3
    assert said == ["fable: 'zebra' is not in the model's vocabulary, read as <unk>"] * 2


def test_python_m_fable_in_a_process_of_its_own_says_an_unknown_word_once(unk_model: fable.Model):
    prompts = "the zebra mouse\nthe zebra cat\nthe quokka zebra\n"  # the loop: one model, three prompts
    result = subprocess.run([sys.executable, "-m", "fable", "-n", "3", "--model", str(unk_model.path)], input=prompts,
                            capture_output=True, text=True, env=command_env(), timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "fable: 'zebra' is not in the model's vocabulary, read as <unk>",
        "fable: 'quokka' is not in the model's vocabulary, read as <unk>",
    ]


def test_fable_train_says_how_many_rare_words_it_reads_as_unk(tmp_path: Path):
    result = invoke("fable-train", "--min-count", "2", "--steps", "2", "--hidden", "16", "--out",
                         str(tmp_path / "run"), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rare = Counter(tokenize(FABLE.read_text(encoding="utf-8")))
    once = [w for w, n in rare.items() if n == 1]
    assert f"{len(once)} rare words ({len(once)} tokens) read as {UNKNOWN}" in result.stdout
    bad = invoke("fable-train", "--max-vocab", "1", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "--max-vocab" in bad.stderr and "Traceback" not in bad.stderr
