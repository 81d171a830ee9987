"""Tokens, vocabulary and windows, checked against the fable text and hand-made cases."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from fable.tokenizer import build_vocabulary, make_windows, tokenize, unknown_id

from .helpers import FABLE, fable_tokens, fable_windows, unambiguous_windows

# sha256 of the tutorial's text as the project received it
FABLE_SHA256 = "6068090d961b9c71eab50ea024a7bae697e2a39ab8ac7e028189d41f2a4831cb"


def test_the_shipped_corpus_is_the_fable_byte_for_byte():
    assert hashlib.sha256(FABLE.read_bytes()).hexdigest() == FABLE_SHA256


def test_the_fable_is_the_tutorials_204_tokens_and_112_symbols():
    tokens = fable_tokens()
    assert len(tokens) == 204
    assert len(set(tokens)) == 112


def test_case_is_folded():
    assert tokenize("The CAT the Cat") == ["the", "cat", "the", "cat"]


def test_version_1_makes_each_listed_mark_a_token_and_keeps_other_runs_whole():
    assert tokenize('"Who?" said (he); well: yes! no, it\'s.', version=1) == [
        '"', "who", "?", '"', "said", "(", "he", ")", ";", "well", ":", "yes", "!", "no", ",", "it", "'", "s", ".",
    ]  # fmt: skip
    assert tokenize("...", version=1) == [".", ".", "."]
    assert tokenize("«quoted» — dash well-known 2.0", version=1) == [
        "«quoted»",
        "—",
        "dash",
        "well-known",
        "2",
        ".",
        "0",
    ]
    assert tokenize("it’s", version=1) == ["it’s"]  # curly apostrophes stuck to words: why version 2 exists


def test_the_fable_is_the_same_under_both_versions():
    text = FABLE.read_text(encoding="utf-8")
    assert tokenize(text, version=2) == tokenize(text, version=1) == text.split()


def test_any_whitespace_separates_and_extra_whitespace_vanishes():
    assert tokenize("  a \t\n b\u00a0c\u2003d\r\n") == ["a", "b", "c", "d"]  # no-break and em spaces too
    assert tokenize("") == []
    assert tokenize(" \n\t ") == []


def test_unicode_words_are_lowercased_and_kept_whole():
    assert tokenize("Ça ÉTÉ Straße ΔΈΛΤΑ") == ["ça", "été", "straße", "δέλτα"]


def test_vocabulary_is_by_frequency_with_ties_in_order_of_first_occurrence():
    assert build_vocabulary("b a c a b d".split()) == ["b", "a", "c", "d"]
    vocabulary = build_vocabulary(fable_tokens())
    assert vocabulary[:3] == [",", "the", "."]
    counts = Counter(fable_tokens())
    first = {word: fable_tokens().index(word) for word in counts}
    assert vocabulary == sorted(counts, key=lambda w: (-counts[w], first[w]))


def test_windows_pair_each_run_of_words_with_the_next():
    contexts, labels = make_windows([5, 6, 7, 8, 9], 3)
    assert contexts.tolist() == [[5, 6, 7], [6, 7, 8]]
    assert labels.tolist() == [8, 9]
    assert make_windows([1, 2, 3], 3)[0].shape == (0, 3)


def test_the_fable_has_201_windows_and_a_ceiling_of_199():
    windows = fable_windows()
    assert len(windows) == 201
    ambiguous = {c for c, _ in windows} - {c for c, _ in unambiguous_windows()}
    assert ambiguous == {("the", "cat", "."), ("up", "and", "said")}
    assert {w for c, w in windows if c == ("the", "cat", ".")} == {"some", "by"}
    assert {w for c, w in windows if c == ("up", "and", "said")} == {"he", "that"}
    assert len(unambiguous_windows()) == 197
    # The best any model can do: for each context, the count of its most frequent next word.
    followers = {}
    for context, word in windows:
        followers.setdefault(context, Counter())[word] += 1
    assert sum(max(c.values()) for c in followers.values()) == 199


def test_tokenizer_is_what_training_reads(tmp_path: Path):
    pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')
    from fable.training.corpus import load_corpus

    (tmp_path / "t.txt").write_text("One two, THREE. one", encoding="utf-8")
    corpus = load_corpus(tmp_path / "t.txt", 2)
    assert [corpus.vocabulary[i] for i in corpus.ids] == tokenize("One two, THREE. one")
    assert corpus.vocabulary == ["one", "two", ",", "three", "."]


def test_the_unknown_word_has_one_id_rule():
    assert unknown_id(["the", "<unk>", "mouse"]) == 1 and unknown_id(("the", "mouse")) is None
    assert unknown_id(["<UNK>", "unk", "<unk >"]) is None  # the token exactly, nothing like it
