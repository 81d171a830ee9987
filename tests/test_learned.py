"""A person's words (`fable.learned`): the rule held against a computation written here, words
typed once offered when they come back, `learn`, `forget` and the file they are kept in."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

import fable
from fable.errors import UsageError
from fable.learned import LEARNED_FORMAT, Blend, Distribution, WordCounts

from .helpers import ROOT, fable_with_words, invoke, keys_typing, start_server, stop_server

VOCABULARY = ["<unk>", "the", "cat", "sat", "."]
MODEL = np.array([0.3, 0.2, 0.1, 0.25, 0.15])  # the model's next-word probabilities after some text


def test_the_blend_is_the_rule_computed_by_hand():
    counts = WordCounts(VOCABULARY)
    counts.add("the cat sat . the zebra sat . the zebra".split())
    found = Distribution.of(MODEL.copy(), [counts], "the", unknown_id=0, blend=Blend(weight=0.2, prior=2.0))
    # Counted: the 3, cat 1, sat 2, . 2, zebra 2 (the one word the vocabulary lacks): 10 words.
    # After "the": cat once, zebra twice. counts(w | the) = (n(the w) + 2 n(w) / 10) / (3 + 2).
    counts_after_the = {"the": 0.6 / 5, "cat": 1.2 / 5, "sat": 0.4 / 5, ".": 0.4 / 5, "zebra": 2.4 / 5}
    model = {"the": 0.2, "cat": 0.1, "sat": 0.25, ".": 0.15, "zebra": 0.3}  # zebra: all of <unk>'s share
    expected = {w: 0.8 * model[w] + 0.2 * counts_after_the[w] for w in model}
    assert found.words == ("zebra",)
    assert found.known[0] == 0  # <unk> itself is never offered
    assert dict(zip(VOCABULARY[1:], found.known[1:].tolist())) == pytest.approx(
        {w: expected[w] for w in VOCABULARY[1:]}
    )
    assert found.unknown.tolist() == pytest.approx([expected["zebra"]])
    assert sum(expected.values()) == pytest.approx(1.0)  # <unk>'s probability went to the words it stood for


def test_with_nothing_counted_the_model_is_unchanged_and_two_counts_add_up():
    assert Distribution.of(MODEL.copy(), [WordCounts(VOCABULARY)], None, 0).known.tolist() == [0.0, *MODEL[1:]]
    one, other, both = WordCounts(VOCABULARY), WordCounts(VOCABULARY), WordCounts(VOCABULARY)
    one.add(["the", "cat"])
    other.add(["sat", "zebra"])
    both.add(["the", "cat"])
    both.add(["sat", "zebra"], continues=False)  # as two texts: no pair across them
    apart, together = (Distribution.of(MODEL.copy(), c, "cat", 0) for c in ([one, other], [both]))
    assert apart.known.tolist() == together.known.tolist() and apart.unknown.tolist() == together.unknown.tolist()


@pytest.fixture
def learner(unk_model) -> fable.Model:
    return fable.Model(unk_model.path)  # its own: the tests teach it words


INVENTED = ["thermos", "mousetrap", "quokka", "bellows", "axolotl", "catnip"]  # "th", "mo", "be", "ca": common starts


def text_with_new_words(words: int = 400) -> list[str]:
    """The fable's words in order, again and again, with an invented word every 25th."""
    return fable_with_words(INVENTED, words, 12, 25)


def test_a_new_word_once_typed_is_offered_within_its_first_two_letters(learner):
    """Each invented word, every time it comes back, is among the 3 suggestions before its first,
    second or third letter; "thermos" may need its third: after "th" the fable's own the, that and
    this, far more frequent, come first, as they should."""
    text = text_with_new_words(500)
    seen: set[str] = set()
    letters: dict[str, list[int | None]] = {word: [] for word in INVENTED}
    with learner.typing() as typing:
        for i, word in enumerate(text):
            if word in INVENTED and word in seen:
                before = " ".join(text[:i]) + " "
                shown = (typed for typed in range(4) if word in [s.word for s in typing.suggest(before + word[:typed])])
                letters[word].append(next(shown, None))
            seen.add(word)
    assert all(len(typed) >= 2 for typed in letters.values())  # each came back at least twice
    most = {word: 2 for word in INVENTED} | {"thermos": 3}
    late = {word: typed for word, typed in letters.items() if None in typed or max(typed) > most[word]}
    assert late == {}, letters


def test_without_the_text_so_far_a_new_word_is_never_offered(learner):
    learner.learns_text = False
    text = text_with_new_words(100)
    assert learner.suggest(" ".join(text) + " thermo") == []


def test_typing_gives_the_suggestions_of_fresh_calls_with_the_words_learnt(learner):
    learner.learn("the bellows and the catnip were sure")
    text = " ".join(text_with_new_words(150))
    with learner.typing() as typing:
        for end in range(1, len(text) + 1, 3):
            assert typing.suggest(text[:end]) == learner.suggest(text[:end]), text[:end]


def test_evaluate_counts_the_keys_a_person_types_through_typing_with_the_text_learnt(learner):
    tokens = text_with_new_words(200)
    found = learner.evaluate(" ".join(tokens))
    assert found.keys == keys_typing(learner, tokens)
    alone = learner.evaluate(" ".join(tokens), learning=False)
    assert alone.words == found.words  # the same words measured
    assert found.keys < alone.keys  # the invented words come back, and the text's own words saved keys


def test_learn_forget_save_and_load(learner, tmp_path):
    assert learner.suggest("the old mouse said ax") == []  # a word it never saw
    learner.learn("a shy axolotl, the axolotl of the pond")
    assert [s.word for s in learner.suggest("the old mouse said ax")] == ["axolotl"]
    path = tmp_path / "learnt.json"
    learner.save_learned(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["fable_learned"] == LEARNED_FORMAT
    assert saved["words"]["axolotl"] == 2 and saved["words"]["the"] == 2
    assert saved["pairs"]["shy"] == {"axolotl": 1} and saved["pairs"]["axolotl"] == {",": 1, "of": 1}
    other = fable.Model(learner.path)
    other.load_learned(path)
    assert other.suggest("the old mouse said ax") == learner.suggest("the old mouse said ax")
    learner.forget()
    assert learner.suggest("the old mouse said ax") == []


def test_a_failed_save_leaves_the_old_file_whole_and_says_so_in_one_line(learner, tmp_path, monkeypatch):
    path = tmp_path / "learnt.json"
    learner.learn("the axolotl")
    learner.save_learned(path)
    before = path.read_bytes()
    learner.learn("the quokka")

    def full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("fable.atomic.os.replace", full)  # the rename that would put the new file in place
    with pytest.raises(UsageError, match="cannot write learnt words to .*No space left on device") as raised:
        learner.save_learned(path)
    assert "\n" not in str(raised.value)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["learnt.json"]
    monkeypatch.undo()
    with pytest.raises(UsageError, match="cannot write learnt words to .*No such file or directory"):
        learner.save_learned(tmp_path / "missing" / "learnt.json")


@pytest.mark.parametrize(
    "content, says",
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "no fable_learned key"),
        (json.dumps({"fable_learned": LEARNED_FORMAT + 1, "words": {}, "pairs": {}}).encode(), "upgrade fable"),
        (json.dumps({"fable_learned": 1, "words": {"a": 0}, "pairs": {}}).encode(), "counts from 1"),
        (json.dumps({"fable_learned": 1, "words": {"a": 1}, "pairs": {"a": {"b": "x"}}}).encode(), "counts from 1"),
        (json.dumps({"fable_learned": 1, "words": {"the": 10**20}, "pairs": {}}).encode(), "counts from 1"),
        (json.dumps({"fable_learned": 1, "words": {"<unk>": 3}, "pairs": {}}).encode(), "single tokens"),
        (json.dumps({"fable_learned": 1, "words": {"two words": 3}, "pairs": {}}).encode(), "single tokens"),
        (json.dumps({"fable_learned": 1, "words": {}, "pairs": {"": {"a": 1}}}).encode(), "single tokens"),
        (json.dumps({"fable_learned": True, "words": {}, "pairs": {}}).encode(), "format True"),
    ],
)
def test_a_file_that_is_not_learnt_words_is_one_line(tmp_path, content, says):
    path = tmp_path / "learnt.json"
    path.write_bytes(content)
    counts = WordCounts(VOCABULARY)
    with pytest.raises(UsageError, match=says) as raised:
        counts.load(path)
    assert "\n" not in str(raised.value) and counts.size == 0 and counts.unknown == {} and counts.pairs == {}
    with pytest.raises(UsageError, match="cannot read"):
        counts.load(tmp_path / "missing.json")


def test_a_model_without_unk_learns_only_the_words_it_can_read():
    model = fable.load()
    model.learn("the old zebra mouse said")  # 'zebra' cannot be read by this model: never offered
    assert model.learned.unknown == {} and model.learned.pairs.get("old") is None
    assert model.learned.pairs["mouse"] == {"said": 1}
    model.forget()


def test_fable_run_scores_a_file_with_and_without_the_texts_own_words(unk_model, tmp_path):
    path = tmp_path / "typed.txt"
    path.write_text(" ".join(text_with_new_words(120)), encoding="utf-8")
    lines = invoke("fable-run", "--score", "--file", str(path), "--model", str(unk_model.path)).stdout.splitlines()
    model = fable.Model(unk_model.path)
    learnt, alone = model.evaluate(path.read_text()), model.evaluate(path.read_text(), learning=False)
    assert lines[0].startswith(f"{path}: {learnt.line()} (") and len(lines) == 2
    assert lines[1] == f"  with the text's own words learnt as typed; the model alone: {alone.line()}"


def post(url: str, body: dict) -> list[str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return [s["word"] for s in json.loads(response.read())["suggestions"]]


def test_the_server_suggests_the_words_of_the_text_it_is_sent_and_keeps_none(unk_model, tmp_path):
    pytest.importorskip("starlette", reason='fable-serve needs the serve extra: pip install "fable[serve]"')
    operators = fable.Model(unk_model.path)
    operators.learn("the quokka and the quokka")
    operators.save_learned(tmp_path / "learnt.json")
    process, url = start_server("--model", str(unk_model.path), "--learned", str(tmp_path / "learnt.json"))
    try:
        assert "axolotl" in post(url + "/suggest", {"text": "the old mouse said the axolotl , the ax"})
        assert post(url + "/suggest", {"text": "the old mouse said the ax"}) == []  # nothing kept from the last
        assert post(url + "/suggest", {"text": "the old mouse said the qu"})[0] == "quokka"  # the operator's file
    finally:
        assert stop_server(process)[0] in (0, 130)


def test_the_terminal_autocomplete_learns_each_finished_text_and_keeps_it_where_asked(unk_model, tmp_path):
    kept = tmp_path / "mine.json"
    typed = "the old mouse said the axolotl ,\n!\nthe ax\n\n"
    run = [sys.executable, str(ROOT / "examples" / "autocomplete.py"), str(unk_model.path), "--learned", str(kept)]
    result = subprocess.run(run, input=typed, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1. axolotl" in result.stdout  # "the ax", learnt from the first text
    assert json.loads(kept.read_text(encoding="utf-8"))["words"]["axolotl"] == 1
    kept.write_text("not json", encoding="utf-8")
    refused = subprocess.run(run, input="\n", capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
        f"autocomplete: {kept} is not a file of learnt words (not JSON)"
    ]


@pytest.mark.parametrize("weight, prior, name", [(1.5, 2.0, "weight"), (-0.1, 2.0, "weight"), (0.1, 0.0, "prior")])
def test_a_blend_outside_its_range_is_refused(weight, prior, name):
    with pytest.raises(fable.SettingError, match=name):
        Blend(weight, prior)
