"""Tokenizer version 2 and text out: each rule on hand-made cases, and round trips on real text."""

from __future__ import annotations

from pathlib import Path

import pytest

from fable.tokenizer import Detokenizer, detokenize, tokenize

from .helpers import FABLE, ROOT

CORPORA = ROOT / "training" / "corpora"


@pytest.mark.parametrize(
    "text, tokens",
    [
        # curly quotes and apostrophes are straightened first
        ("it’s ‘so’ “said”", ["it's", "'", "so", "'", '"', "said", '"']),
        ("«guillemets» „low”", ['"', "guillemets", '"', '"', "low", '"']),
        # contractions and possessives are one word
        ("don't, won't, o'clock", ["don't", ",", "won't", ",", "o'clock"]),
        ("the recipient's rights", ["the", "recipient's", "rights"]),
        # an apostrophe at a word's edge is a quote mark
        ("'tis the cats' toys", ["'", "tis", "the", "cats", "'", "toys"]),
        # hyphenated words are one word; a lone or doubled hyphen is a mark each
        ("well-known state-of-the-art", ["well-known", "state-of-the-art"]),
        ("a - b -- c -d", ["a", "-", "b", "-", "-", "c", "-", "d"]),
        # numbers with points and thousands commas stay whole; the sentence's full stop does not
        ("version 2.0 of 3.12.1.", ["version", "2.0", "of", "3.12.1", "."]),
        ("1,000 or 12,345.67 but 1,2", ["1,000", "or", "12,345.67", "but", "1", ",", "2"]),
        ("20-year and 2.0-compatible", ["20-year", "and", "2.0-compatible"]),
        # abbreviations of single letters
        ("e.g. the u.s.a. i.e.", ["e.g.", "the", "u.s.a.", "i.e."]),
        # underscores belong to words: identifiers stay whole
        ("__init__ and foo_bar()", ["__init__", "and", "foo_bar", "(", ")"]),
        # every other character is a token on its own
        ("x=[1]; y/z...", ["x", "=", "[", "1", "]", ";", "y", "/", "z", ".", ".", "."]),
        ("«<unk>»", ['"', "<", "unk", ">", '"']),  # no text can make the <unk> token
        ("Ça — ÉTÉ!", ["ça", "—", "été", "!"]),
    ],
)
def test_version_2_rules(text: str, tokens: list[str]):
    assert tokenize(text, version=2) == tokens


@pytest.mark.parametrize(
    "tokens, text",
    [
        (["remedies", ".", "now", ",", "if"], "remedies. now, if"),
        (["version", "2.1", "(", "b", ")", "of"], "version 2.1 (b) of"),
        (["who", "?", "yes", "!", "a", ";", "b", ":", "c"], "who? yes! a; b: c"),
        (["he", "said", '"', "go", '"', "."], 'he said "go".'),
        (["'", "so", "'", "and", "[", "x", "]", "{", "y", "}", "50", "%"], "'so' and [x] {y} 50%"),
        (['"', "(", "a", ")", '"'], '"(a)"'),
        (["the", "recipient's", "rights"], "the recipient's rights"),
    ],
)
def test_text_out_has_no_space_before_closing_marks_or_after_opening_ones(tokens: list[str], text: str):
    assert detokenize(tokens) == text


def test_version_1_text_out_is_the_tokens_spaced():
    assert detokenize(["remedies", ".", "now"], version=1) == "remedies . now"


def test_a_quote_the_prompt_opened_is_closed_in_the_continuation():
    assert detokenize(["go", '"', "."], before=["he", "said", '"']) == 'go".'
    assert detokenize(["go", '"', "."]) == 'go ".'  # alone, the quote opens


def test_streamed_pieces_add_up_to_the_text():
    tokens = tokenize('he said: "don\'t (ever) go," and left... 2.0!')
    joiner = Detokenizer()
    assert "".join(joiner.piece(t) for t in tokens) == detokenize(tokens)


def _round_trip(text: str) -> None:
    tokens = tokenize(text)
    assert tokenize(detokenize(tokens)) == tokens


@pytest.mark.parametrize(
    "text",
    [
        'He said, "It\'s 2.0 (or 3.1)!" — and left.',
        "Version 3, 29 June 2007; see <https://fsf.org/>.",
        "x = f(a, [1, 2]) ... 1,000 e.g. __init__",
    ],
)
def test_detokenized_text_reads_back_as_the_same_tokens(text: str):
    _round_trip(text)


@pytest.mark.parametrize("path", [FABLE, CORPORA / "gpl-3.txt", CORPORA / "python-reference.txt"])
def test_round_trip_on_every_corpus(path: Path):
    _round_trip(path.read_text(encoding="utf-8"))


V1_FILE = ROOT / "tests" / "data" / "fable.v1.int8.onnx"  # exported before tokenizer version 2


def test_a_version_1_file_reads_and_writes_text_as_before():
    import fable

    from .helpers import GOLDEN_TOKENS

    model = fable.Model(V1_FILE)
    assert model.metadata.tokenizer_version == 1
    assert model.generate("the old mouse", 9) == GOLDEN_TOKENS  # spaced, as the tutorial printed
    assert model.tokens("It’s well-known") == ["it’s", "well-known"]  # version 1's rules
    with pytest.raises(fable.UnknownWordError, match=r"'t' \(\"don't\" is read as don ' t"):
        model.generate("said he don't")


def test_errors_count_words_as_typed_and_say_how_a_word_was_cut():
    import fable

    model = fable.load()
    assert model.metadata.tokenizer_version == 2
    with pytest.raises(
        fable.PromptError,
        match=r"has 1 word, read as 2 tokens \(mouse \.\); this model reads 3 tokens at a time, give at least 3",
    ):
        model.generate("mouse.")
    with pytest.raises(fable.PromptError, match="has 2 words; this model reads 3"):
        model.generate("old mouse")
    with pytest.raises(fable.UnknownWordError, match=r"unknown word \"don't\"") as raised:
        model.generate("said he don't")
    assert raised.value.words == ["don't"]  # one word, as typed, not its pieces
    with pytest.raises(fable.UnknownWordError, match=r"'zebra' \('zebra!' is read as zebra !\)"):
        model.generate("the old zebra!")


def test_curly_quotes_in_a_prompt_read_as_straight_ones():
    import fable

    model = fable.load()
    assert model.tokens("“The old mouse’s”") == ['"', "the", "old", "mouse's", '"']
    with pytest.raises(fable.UnknownWordError) as curly:
        model.generate("the “old” mouse’s")
    with pytest.raises(fable.UnknownWordError) as straight:
        model.generate('the "old" mouse\'s')
    assert curly.value.words == straight.value.words == ['"', "mouse's"]
