"""suggest and score on the shipped model, held against next_logits and a softmax computed here."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fable
from fable import PromptError, UnknownWordError

from .helpers import SHIPPED, assert_clean_failure, fable_tokens, invoke


@pytest.fixture(scope="module")
def model():
    return fable.load()


def probabilities(model, words: list[str]) -> np.ndarray:
    """softmax(next_logits) in float64, computed here rather than by the code under test."""
    logits = model.next_logits([model.vocabulary.index(w) for w in words]).astype(np.float64)
    e = np.exp(logits - logits.max())
    return e / e.sum()


def test_the_old_mouse_suggests_said_first_and_the_whole_vocabulary_sums_to_1(model):
    best = model.suggest("the old mouse ")
    assert [s.word for s in best][:1] == ["said"] and best[0].probability > 0.9
    everything = model.suggest("the old mouse ", k=len(model.vocabulary) + 50)
    assert len(everything) == len(model.vocabulary)
    assert abs(sum(s.probability for s in everything) - 1) < 1e-5
    assert [s.probability for s in everything] == sorted((s.probability for s in everything), reverse=True)


def test_suggestions_are_the_models_probabilities(model):
    expected = probabilities(model, ["said", "he", ","])
    for suggestion in model.suggest("said he , ", 10):
        assert suggestion.probability == pytest.approx(expected[model.vocabulary.index(suggestion.word)], abs=1e-7)


def test_an_unfinished_word_is_completed_by_the_words_that_start_with_it(model):
    assert [s.word for s in model.suggest("the old mo")] == ["mouse"]
    expected = probabilities(model, ["said", "he", ","])
    starting = sorted(
        (w for w in model.vocabulary if w.startswith("t")), key=lambda w: -expected[model.vocabulary.index(w)]
    )
    got = model.suggest("said he , t", 5)
    assert [s.word for s in got] == starting[:5]
    assert all(s.word.startswith("t") for s in got)


def test_a_word_is_completed_until_a_space_or_a_mark_ends_it(model):
    """A known word with nothing after it is still being typed: it is among its own completions,
    ranked by their probability after the words before it; a space or a mark asks for the next word."""
    expected = probabilities(model, ["said", "the", "old"])
    starting = sorted(
        (w for w in model.vocabulary if w.startswith("mouse")), key=lambda w: -expected[model.vocabulary.index(w)]
    )
    assert [s.word for s in model.suggest("said the old mouse", 3)] == starting[:3] and "mouse" in starting
    assert [s.word for s in model.suggest("the old mouse ")][0] == "said"
    assert model.suggest("the old mouse ,") == model.suggest("the old mouse , ")  # a mark ends a word too
    assert model.suggest("the") == model.suggest("the ")  # nothing before it to rank its completions by
    assert model.suggest("mo") == [] and model.suggest("  mo") == []  # and nothing to offer for it


def test_typing_a_word_that_is_itself_a_word_offers_the_longer_word_that_comes(model):
    """Wherever the fable's next word starts with a shorter word the model knows ("a" of "agreed"),
    typing that shorter word offers the word that comes: 0.3.0 took "a" as finished."""
    tokens = fable_tokens()
    typed = 0
    for i in range(3, len(tokens)):
        word, before = tokens[i], " ".join(tokens[i - 3 : i]) + " "
        for prefix in (word[:cut] for cut in range(1, len(word)) if word[:cut] in model.vocabulary):
            assert word in [s.word for s in model.suggest(before + prefix)], (before, prefix)
            typed += 1
    assert typed >= 10, typed


def test_text_shorter_than_the_window_is_read_from_the_zero_state(model):
    # every word the model knows can start a text; the answer is deterministic and a distribution
    one = model.suggest("who ", k=len(model.vocabulary))
    assert abs(sum(s.probability for s in one) - 1) < 1e-5
    assert one == model.suggest("who ", k=len(model.vocabulary))


def test_a_window_graph_file_needs_a_whole_window(tmp_path):
    pytest.importorskip("onnx", reason='building a window graph needs onnx: pip install "fable[train]"')
    from fable.training.export.exporter import window_baseline

    fp32, _ = window_baseline(SHIPPED / "fable.onnx", tmp_path)
    window_model = fable.load(fp32)
    with pytest.raises(PromptError, match="give at least 3"):
        window_model.suggest("the old ")
    # the word being typed is not counted among the words read
    with pytest.raises(PromptError, match="the text has 2 words; this model reads 3 words at a time"):
        window_model.suggest("the old mo")
    assert window_model.suggest("the old mouse ")[0].word == "said"


@pytest.mark.parametrize("text", ["the old zebra ", "the old zebr", "the zebra mo"])
def test_unknown_words_get_the_same_error_as_generate(model, text):
    with pytest.raises(UnknownWordError, match="zebr"):
        model.suggest(text)


# Format 2 computes each row on its own (int8 rounds its inputs on the file's fixed scale), so a
# word's logits are the same bits whether score reads on or next_logits starts afresh: the two
# log-softmaxes differ in rounding alone, score's terms rounded in float32 (log_normalizer).
@pytest.mark.parametrize("name", ["fable.onnx", "fable.int8.onnx"])
def test_score_agrees_with_next_logits_and_a_softmax_computed_here(name):
    model = fable.load(SHIPPED / name)
    tokens = fable_tokens()[40:52]
    scored = model.score(" ".join(tokens))
    assert [w.word for w in scored.words] == tokens[3:]
    for position, word in enumerate(scored.words, 3):
        expected = np.log(probabilities(model, tokens[position - 3 : position])[model.vocabulary.index(word.word)])
        assert word.log_probability == pytest.approx(expected, abs=3e-7)
    assert scored.total == pytest.approx(sum(w.log_probability for w in scored.words))
    assert scored.perplexity == pytest.approx(np.exp(-scored.total / len(scored.words)))


def test_score_needs_more_than_a_window_and_known_words(model):
    with pytest.raises(PromptError, match="at least 4"):
        model.score("the old mouse")
    with pytest.raises(UnknownWordError, match="zebra"):
        model.score("the old mouse zebra")


def test_fable_run_suggest_and_score_print_tables_and_json():
    table = invoke("fable-run", "--suggest", "the old mo").stdout.splitlines()
    assert table[0].split() == ["word", "probability"] and table[2].split()[0] == "mouse"
    record = json.loads(invoke("fable-run", "--suggest", "the old mouse ", "--suggestions", "5", "--json").stdout)
    assert record["suggestions"][0]["word"] == "said" and len(record["suggestions"]) == 5
    scored = invoke("fable-run", "--score", "long ago , the mice had").stdout.splitlines()
    assert [line.split()[0] for line in scored[2:-1]] == ["the", "mice", "had"]
    assert scored[-1].startswith("3 words: total log-probability")
    record = json.loads(invoke("fable-run", "--score", "long ago , the mice had", "--json").stdout)
    assert [w["word"] for w in record["words"]] == ["the", "mice", "had"] and record["perplexity"] >= 1


def test_fable_run_suggest_and_score_errors_are_one_line():
    assert_clean_failure(invoke("fable-run", "--suggest"), 2, "need a PROMPT")
    assert_clean_failure(invoke("fable-run", "--suggest", "--score", "the old mouse"), 2, "one at a time")
    assert_clean_failure(invoke("fable-run", "--score", "the old zebra mouse"), 2, "'zebra'")
    assert_clean_failure(invoke("fable-run", "--suggest", "the old", "--suggestions", "0"), 2, "--suggestions")


def test_evaluate_counts_what_suggest_and_score_say(model):
    """Top-1 and top-3 are how often the word that came is suggest's first, or among its three;
    the perplexity is score's: three public calls that do not share the evaluation's code."""
    tokens = fable_tokens()[:80]
    found = model.evaluate(" ".join(tokens))
    window = model.window
    shown = [
        [s.word for s in model.suggest(" ".join(tokens[i - window : i]) + " ", 3)] for i in range(window, len(tokens))
    ]
    nexts = tokens[window:]
    assert found.words == len(nexts) and found.skipped == 0
    assert found.top1 == sum(words[0] == word for words, word in zip(shown, nexts))
    assert found.top3 == sum(word in words for words, word in zip(shown, nexts))
    assert found.perplexity == pytest.approx(model.score(" ".join(tokens)).perplexity, rel=1e-9)


def readable(model, tokens: list[str]) -> tuple[int, int]:
    """(words predicted, words skipped), counted here by the rule: a word after the first window
    is predicted when it and the `window` words before it are all words the model knows."""
    window, known = model.window, [token in model.vocabulary for token in tokens]
    predicted = sum(all(known[i - window : i + 1]) for i in range(window, len(tokens)))
    return predicted, len(tokens) - window - predicted


@pytest.mark.parametrize("places", [(0,), (2,), (3,), (6,), (11,), (4, 6), (2, 10)])
def test_evaluate_skips_the_words_it_cannot_read_and_no_others(model, places):
    tokens = fable_tokens()[100:112]  # words the model knows
    broken = list(tokens)
    for place in sorted(places, reverse=True):
        broken.insert(place, "zebra")
    whole, found = model.evaluate(" ".join(tokens)), model.evaluate(" ".join(broken))
    assert (whole.words, whole.skipped) == (9, 0)
    assert (found.words, found.skipped) == readable(model, broken)


def test_evaluate_says_when_nothing_is_left(model):
    with pytest.raises(PromptError, match="no word of the text could be predicted"):
        model.evaluate("the old zebra mouse")


def test_fable_run_scores_a_file(tmp_path):
    text = tmp_path / "held-out.txt"
    text.write_text(" ".join(fable_tokens()[:80]), encoding="utf-8")
    line = invoke("fable-run", "--score", "--file", str(text)).stdout.strip()
    assert line.startswith(f"{text}: 77 words: top-1 ") and "perplexity" in line
    record = json.loads(invoke("fable-run", "--score", "--file", str(text), "--json").stdout)
    assert record["words"] == 77 and 0 <= record["top3"] <= 1 and record["perplexity"] >= 1
    saved = fable.load().evaluate(text.read_text()).keystrokes_saved  # by presage's rule: tests/test_keyboard.py
    assert record["keystrokes_saved"] == saved and f"keystrokes saved {100 * saved:.1f}%" in line
    assert_clean_failure(invoke("fable-run", "--score", "--file", str(tmp_path / "none.txt")), 2, "does not exist")
    (tmp_path / "bytes.txt").write_bytes(b"\xff\xfe the old")
    assert_clean_failure(invoke("fable-run", "--score", "--file", str(tmp_path / "bytes.txt")), 2, "not UTF-8")
    assert_clean_failure(invoke("fable-run", "--file", str(text)), 2, "--file goes with --score")
    assert_clean_failure(invoke("fable-run", "--score", "--file", str(text), "the old mouse"), 2, "no PROMPT")


def typed(tokens: list[str]) -> list[str]:
    """Every text a person makes typing `tokens` a character at a time, with a word deleted and
    typed again now and then, and a few words pasted at once."""
    texts, text = [], ""
    for n, token in enumerate(tokens):
        piece = (" " if text else "") + token
        if n % 17 == 5:  # pasted: all at once
            text += piece
            texts.append(text)
            continue
        for character in piece:
            text += character
            texts.append(text)
        if n % 23 == 11:  # deleted back to the last space, and typed again
            kept = text.rsplit(" ", 1)[0]
            texts += [kept, text]
    return texts


@pytest.mark.parametrize("name", ["fable.int8.onnx", "fable.onnx"])
def test_typing_gives_the_suggestions_of_fresh_calls_over_the_whole_fable(name):
    """The incremental suggest, held against a fresh `suggest` of every text typed on the way
    through the fable: the same words, the same probabilities to the last bit, the same errors."""
    model = fable.Model(SHIPPED / name)

    def answer(call, text):
        try:
            return call(text, 5)
        except fable.FableError as error:
            return type(error), str(error)

    with model.typing() as typing:
        for text in typed(fable_tokens()):
            assert answer(typing.suggest, text) == answer(model.suggest, text), text[-40:]


def test_a_closed_typing_refuses_to_suggest_and_gives_its_decoder_back_once(model):
    typing = model.typing()
    assert typing.suggest("the old mo")[0].word == "mouse"
    typing.close()
    typing.close()  # closing twice is closing once
    with pytest.raises(fable.UsageError, match="this Typing is closed"):
        typing.suggest("the old mouse")  # its decoder may be another caller's by now
    with model.decoder(1) as first, model.decoder(1) as second:  # the pool lent it out once, not twice
        assert first is not second
    with model.typing() as fresh:
        assert fresh.suggest("the old mo") == model.suggest("the old mo")


def test_the_one_log_softmax_holds_logits_far_past_exps_range():
    from fable.evaluation import log_normalizer

    exact = [1000 + np.log1p(np.exp(-1.0)), np.log(3.0)]
    logits = np.array([[1000.0, 999.0, -1000.0], [0.0, 0.0, 0.0]], np.float64)
    assert log_normalizer(logits).tolist() == pytest.approx(exact, rel=1e-15)
    # float32 logits: each term exp(logit - largest) rounded in float32, summed in float64
    assert log_normalizer(logits.astype(np.float32)).tolist() == pytest.approx(exact, abs=3e-7)
    assert float(log_normalizer(logits[0].astype(np.float32))) == pytest.approx(exact[0], abs=3e-7)
    assert float(log_normalizer(np.array([3, 1, 2]))) == pytest.approx(np.log(np.exp([3.0, 1.0, 2.0]).sum()), rel=1e-15)
