"""Keystrokes saved, by presage's rule with 3 suggestions: counted by hand on a made-up
distribution, and held against a person typing through `model.typing()` letter by letter."""

from __future__ import annotations

import random

import numpy as np
import pytest

import fable
from fable.evaluation import evaluation_of
from fable.keyboard import Keyboard
from fable.tokenizer import TOKENIZER_VERSION

from .helpers import fable_tokens, keys_typing

VOCABULARY = ["the", "then", "there", "thy", "cat", "bell", "a", "<unk>", "cot"]
SCORES = np.array([5.0, 2.0, 1.0, 1.5, 4.0, 3.0, 0.0, 9.0, 4.0])  # the word after some text
UNKNOWN = VOCABULARY.index("<unk>")

# Counted by hand. Shown first, before any letter: the (5), cat (4), cot (4, tied: after cat), never <unk>.
BY_HAND = {
    "the": 1,  # shown before any letter: one key takes it with its space
    "cot": 1,  # tied with cat, after it in the vocabulary: third
    "bell": 2,  # fourth at first; after "b" the only b-word: "b" and one key
    "then": 2,  # after "t": the, then, thy, there: second
    "thy": 2,  # after "t": third
    "there": 4,  # after "t" and "th": fourth; after "the": the, then, there (thy is gone): "the" and one key
    "a": 2,  # never among the first three before its only letter: typed, and its space
}


@pytest.mark.parametrize("word, keys", BY_HAND.items())
def test_a_words_keystrokes_counted_by_hand(word, keys):
    keyboard = Keyboard(VOCABULARY, TOKENIZER_VERSION)
    label = VOCABULARY.index(word)
    mine = SCORES[label]
    above = (SCORES > mine) | ((SCORES == mine) & (np.arange(len(SCORES)) < label))
    above[UNKNOWN] = False
    assert keyboard.keys(above, word) == keys


def test_an_evaluation_adds_them_up_against_the_keys_of_typing_every_letter():
    labels = np.array([VOCABULARY.index(w) for w in BY_HAND])
    found = evaluation_of(np.tile(SCORES, (len(labels), 1)), labels, UNKNOWN, Keyboard(VOCABULARY, TOKENIZER_VERSION))
    assert found.keys == sum(BY_HAND.values()) == 14
    assert found.keys_without == sum(len(w) + 1 for w in BY_HAND) == 30
    assert found.keystrokes_saved == pytest.approx(1 - 14 / 30)
    assert "keystrokes saved 53.3%" in found.line() and found.as_dict()["keystrokes_saved"] == found.keystrokes_saved
    assert evaluation_of(SCORES[None], labels[:1], UNKNOWN).keystrokes_saved is None  # not counted without a keyboard


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top1_and_top3_count_ranks_by_hand_with_ties_and_unk_above(dtype):
    """Ranked by hand: the (5), cat (4), cot (4, tied: after cat), bell, then, thy, there, a; <unk>
    (9) is never shown. The same with the keyboard's path and without it."""
    words = [w for w in VOCABULARY if w != "<unk>"]
    labels = np.array([VOCABULARY.index(w) for w in words])
    scores = np.tile(SCORES.astype(dtype), (len(labels), 1))
    plain = evaluation_of(scores, labels, UNKNOWN)
    typed = evaluation_of(scores, labels, UNKNOWN, Keyboard(VOCABULARY, TOKENIZER_VERSION))
    assert (plain.top1, plain.top3) == (typed.top1, typed.top3) == (1, 3)  # the; the, cat, cot
    assert plain.log_probability == pytest.approx(typed.log_probability, rel=1e-12)


def test_ranks_match_a_plain_count_where_ties_are_everywhere(monkeypatch):
    """Scores from five values over 40 words: most labels tie with others, above and below them;
    ranked 7 rows a pass, so the last pass is a short one."""
    import fable.evaluation

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, (300, 40)).astype(np.float32)
    labels = rng.integers(0, 40, 300)
    labels[labels == 7] = 8  # word 7 plays <unk>: never a label
    expected = np.array([
        sum(1 for i, x in enumerate(row) if i != 7 and (x > row[label] or (x == row[label] and i < label)))
        for row, label in zip(scores.tolist(), labels.tolist())
    ])  # fmt: skip
    mine = scores[np.arange(len(labels)), labels]
    assert fable.evaluation._ranks(scores, mine, labels, 7).tolist() == expected.tolist()  # row by row
    monkeypatch.setattr(fable.evaluation, "RANKED", 7 * 40)
    found = evaluation_of(scores, labels, 7)
    assert (found.top1, found.top3) == ((expected < 1).sum(), (expected < 3).sum())


def test_a_prefix_that_suggest_reads_as_a_word_and_a_mark_is_never_counted_as_shown():
    """After "don" the five don-words fill the screen; "don'" would leave only "don't", but the
    tokenizer reads "don'" as "don" and a mark, so `suggest` offers next words there, not
    completions: the person types the whole word, 6 keys, not 5."""
    vocabulary = ["do", "done", "donkey", "donor", "don", "don't"]
    scores = np.array([5.0, 4.0, 3.5, 3.2, 3.0, 1.0])
    label = vocabulary.index("don't")
    keyboard = Keyboard(vocabulary, TOKENIZER_VERSION)
    assert keyboard.keys(scores > scores[label], "don't") == 6
    assert [stretch is None for stretch in keyboard.stretches("don't")] == [False, False, False, False, True]


@pytest.fixture(scope="module")
def shuffled_fable() -> str:
    """80 of the fable's words in a random order: text the model predicts only in part."""
    tokens = fable_tokens()
    random.Random(3).shuffle(tokens)
    return " ".join(tokens[:80])


def test_evaluate_counts_the_keys_a_person_types_through_typing(shuffled_fable):
    """The truth is the person: before each letter, three suggestions from `typing()`; a word
    shown is taken with one key, or the next letter is typed, and every word ends with a key."""
    model = fable.load()
    tokens = shuffled_fable.split()
    window = model.window
    keys = keys_typing(model, tokens)
    found = model.evaluate(shuffled_fable)
    assert (found.keys, found.keys_without) == (keys, sum(len(w) + 1 for w in tokens[window:]))
    assert 0.2 < found.keystrokes_saved < 0.8, found.line()  # shuffled: some words predicted, not all


def test_learnt_words_the_vocabulary_lacks_are_counted_by_hand_too():
    """A learnt word (fable.learned) is shown like the vocabulary's. "thermos", scored 1.8: before
    any letter the, cat, cot and bell come first; after "t" only the and then: its second key
    takes it. "there", with "thermos" shown above it: after "the" the, then and thermos fill the
    screen; after "ther" it is second to thermos: "ther" and one key."""
    keyboard = Keyboard(VOCABULARY, TOKENIZER_VERSION)
    above = SCORES > 1.8
    above[UNKNOWN] = False
    assert keyboard.keys(above, "thermos") == 2
    label = VOCABULARY.index("there")
    mine = SCORES[label]
    above = SCORES > mine
    above[UNKNOWN] = False
    assert keyboard.keys(above, "there") == 4 and keyboard.keys(above, "there", ["thermos"]) == 5
