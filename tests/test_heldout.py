"""Text the model has not seen: the split never leaks, the held-out figures are what an independent
count gives, a resumed run keeps its split, and the export holds int8 to fp32 there."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')

import fable
from fable.errors import UsageError
from fable.tokenizer import UNKNOWN, tokenize
from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from fable.training.cli import _fresh_config, _summary
from fable.training.config import PRESETS, choose_preset
from fable.training.corpus import load_corpus
from fable.training.evaluate import logits_of
from fable.training.export.exporter import ExportOptions, export_checkpoint, metadata_for
from fable.training.export.guards import ExportGuardError
from fable.training.metrics import read_metrics
from fable.training.schedule import KeepBest
from fable.training.split import UNSEEN, part_windows, split
from fable.training.train import TrainingInterrupted, train

from .helpers import ROOT, tiny_config
from .ngram_reference import KneserNey as Reference
from .test_training import StopAt, same_weights, weights

GPL = ROOT / "training" / "corpora" / "gpl-3.txt"


def checkpoint_split(checkpoint):
    return split(len(checkpoint.ids), checkpoint.config.holdout)


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("window", [1, 3, 6])
def test_the_split_never_leaks_a_window(share, window):
    ids = np.arange(1003)  # each id is its own position in the text
    train_contexts, train_labels = part_windows(ids, share, window, "train", None)
    held_contexts, held_labels = part_windows(ids, share, window, "heldout", None)
    seen = set(train_contexts.ravel()) | set(train_labels)
    held = set(held_contexts.ravel()) | set(held_labels)
    assert not seen & held  # no held-out word is ever a training window's context or label
    for contexts, labels in ((train_contexts, train_labels), (held_contexts, held_labels)):
        whole = np.concatenate([contexts, labels[:, None]], axis=1)
        assert (np.diff(whole, axis=1) == 1).all()  # each window is one stretch of text: none straddles
    ranges = split(len(ids), share)
    assert sum(end - start for start, end in ranges.heldout) == pytest.approx(share * len(ids), abs=10)
    assert len(ranges.heldout) == 10  # the end of each tenth, so it samples the whole text
    # its blocks alternate between validation and test: every block in one part, no token in two
    assert ranges.validation == ranges.heldout[0::2] and ranges.test == ranges.heldout[1::2]
    covered = np.zeros(len(ids), int)
    for start, end in ranges.train + ranges.validation + ranges.test:
        covered[start:end] += 1
    assert (covered == 1).all()
    validation = part_windows(ids, share, window, "validation", None)
    test = part_windows(ids, share, window, "test", None)
    assert not (set(validation[0].ravel()) | set(validation[1])) & (set(test[0].ravel()) | set(test[1]))
    assert len(validation[1]) + len(test[1]) == len(held_labels)


@pytest.mark.parametrize("tokens, share", [(1003, 0.1), (98_765, 0.1), (5000, 0.37)])
def test_validation_and_test_alternate_over_the_blocks_held_out_before(tokens, share):
    """The blocks fable 0.4 held out, worked out here from its rule (the last `share` of each tenth),
    are now validation (first, third, ...) and test (second, fourth, ...), and training keeps
    exactly the text it kept: a model trains on the same words as before."""
    edges = [round(tokens * tenth / 10) for tenth in range(11)]
    before = [(end - round(share * (end - start)), end) for start, end in zip(edges, edges[1:])]
    parts = split(tokens, share)
    assert list(parts.validation) == before[0::2] and list(parts.test) == before[1::2]
    assert list(parts.train) == [(start, cut) for start, (cut, _) in zip(edges, before)]
    held = sum(end - start for start, end in before) / tokens
    assert parts.share("validation") + parts.share("test") == pytest.approx(held) == parts.share("heldout")


@pytest.mark.parametrize("part, says", [("validation", "to validate on"), ("test", "to test on")])
def test_a_text_whose_part_holds_no_whole_window_says_which(tmp_path, part, says):
    """Each held-out block of one part is all words training never saw (none is kept as <unk>):
    that part holds no window, and the one-line error names it."""
    tokens = ["the", "cat", "sat", "on", "a", "mat"] * 400  # [2400]
    for start, end in split(len(tokens), 0.1).part(part):
        tokens[start:end] = ["z" + "".join(chr(97 + int(d)) for d in f"{i:04d}") for i in range(start, end)]
    path = tmp_path / "short.txt"
    path.write_text(" ".join(tokens), encoding="utf-8")
    with pytest.raises(UsageError, match=f"short.txt holds out no whole window {says} .*a larger --holdout$") as raised:
        load_corpus(path, 3, holdout=0.1)
    assert "\n" not in str(raised.value)
    load_corpus(path, 3, holdout=0.0)  # the same text trains with nothing held out


def test_the_vocabulary_is_the_training_parts():
    corpus = load_corpus(GPL, 3, holdout=0.1)  # every word kept: no <unk>
    tokens = tokenize(GPL.read_text(encoding="utf-8"))  # read here, not by the code under test
    training = {t for start, end in corpus.split.train for t in tokens[start:end]}
    assert set(corpus.vocabulary) == training
    assert [corpus.vocabulary[i] if i != UNSEEN else t for t, i in zip(tokens, corpus.ids)] == tokens
    unseen = {t for t, i in zip(tokens, corpus.ids) if i == UNSEEN}
    assert unseen and not unseen & training
    contexts, labels = corpus.windows(3, "heldout")
    assert (contexts != UNSEEN).all() and (labels != UNSEEN).all()
    rare = load_corpus(GPL, 3, min_count=2, holdout=0.1)  # held-out words it lacks are read as <unk>
    assert UNSEEN not in rare.ids and (rare.windows(3, "heldout")[1] != rare.unknown_id).all()


def test_a_corpus_that_can_spare_a_part_trains_with_predict():
    assert choose_preset(204)[0] == "memorize"  # the fable
    preset, why = choose_preset(6470)
    assert preset == "predict" and "6,470 tokens" in why
    with pytest.raises(Exception, match="holds out no whole window"):
        load_corpus(None, 3, holdout=0.1)  # the fable's tenths are too short to hold out a window


def test_predict_sizes_its_model_by_the_corpus_and_keeps_a_width_asked_for():
    small, large = (PRESETS["predict"].for_corpus(windows) for windows in (5_760, 68_305))
    assert (small.model.hidden, small.dropout, small.steps) == (256, 0.65, 2500)
    assert (large.model.hidden, large.dropout, large.steps) == (512, 0.1, 3400)
    assert large.model.embedding_dim == 512 and large.sizes == ()
    asked = _fresh_config(PRESETS["predict"], {"steps": None}, {"hidden": 32}).for_corpus(68_305)
    assert (asked.model.hidden, asked.model.embedding_dim, asked.dropout, asked.steps) == (32, 32, 0.1, 3400)
    asked.validate()
    below, huge = (PRESETS["predict"].for_corpus(windows) for windows in (999_999, 1_000_000))  # millions of words
    assert (below.steps, below.eval_every, below.distill) == (3400, 200, PRESETS["predict"].distill)
    assert huge.distill > below.distill and huge.steps > below.steps  # the teacher weighs more, the budget longer
    assert PRESETS["stream"].for_corpus(1_000_000).distill == PRESETS["stream"].distill  # a size sets only its own


def predict_config(steps: int = 40, **changes):
    """The predict recipe, narrow and short: seconds on two cores."""
    config = tiny_config("predict", steps=steps, window=4, hidden=16, embedding_dim=16)
    return dataclasses.replace(config, batch_size=64, eval_every=10, checkpoint_every=10, **changes)


@pytest.fixture(scope="module")
def gpl_corpus():
    config = predict_config()
    return load_corpus(GPL, config.model.window, min_count=config.min_count, holdout=config.holdout)


@pytest.fixture(scope="module")
def predict_run(gpl_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict")
    return train(gpl_corpus, predict_config(), "cpu", out), out


def independent_figures(model, contexts, labels, banned):
    """Top-1, top-3 and perplexity one window at a time, in plain Python."""
    logits = logits_of(model, contexts).double().numpy()
    top1 = top3 = 0
    log_probability = 0.0
    for row, label in zip(logits, labels.tolist()):
        biggest = max(row)
        log_total = biggest + math.log(sum(math.exp(x - biggest) for x in row))
        log_probability += row[label] - log_total
        ranked = sorted((i for i in range(len(row)) if i != banned), key=lambda i: (-row[i], i))
        top1 += ranked[0] == label
        top3 += label in ranked[:3]
    return top1, top3, math.exp(-log_probability / len(labels))


@pytest.mark.parametrize("part", ["validation", "test"])
def test_the_held_out_figures_equal_an_independent_count(predict_run, gpl_corpus, part):
    """The reported figures (`heldout`) are the test part's; the validation part's chose the weights."""
    result, out = predict_run
    checkpoint = load_checkpoint(out / CHECKPOINT_NAME)
    contexts, labels = gpl_corpus.windows(4, part)
    top1, top3, perplexity = independent_figures(checkpoint.build_model(), contexts, labels, gpl_corpus.unknown_id)
    found = result.heldout if part == "test" else result.validation
    assert (found.words, found.top1, found.top3) == (len(labels), top1, top3)
    assert found.perplexity == pytest.approx(perplexity, rel=1e-6)
    assert (checkpoint.heldout if part == "test" else checkpoint.validation)["perplexity"] == pytest.approx(
        perplexity, rel=1e-6
    )
    rows = read_metrics(out / "metrics.jsonl")
    assert all({"validation_top1", "validation_top3", "validation_perplexity"} <= set(row) for row in rows)


def test_the_summary_gives_validation_then_test_each_with_its_role(predict_run):
    result, out = predict_run
    lines = _summary(result, out).splitlines()
    validation = f"  validation, 5% of the text (chose the step): {result.validation.line()}"
    assert lines[lines.index(validation) + 1] == f"  test, 5% of the text (read once): {result.heldout.line()}"
    config = dataclasses.replace(result.checkpoint.config, stop="schedule")  # --holdout without early stopping
    measured = dataclasses.replace(result, checkpoint=dataclasses.replace(result.checkpoint, config=config))
    assert "  validation, 5% of the text (measured along the way): " in _summary(measured, out)


def test_the_summary_gives_a_sampled_fit_s_share_of_the_ceiling(predict_run):
    """On a corpus of millions of words the last fit reads a sample of the windows, the ceiling
    all of them: the share compares their rates (a 2.2M-token run once printed 0.6% for 59.5%)."""
    result, out = predict_run
    half = dataclasses.replace(result.evaluation, correct=result.evaluation.correct // 2,
                               windows=result.evaluation.windows // 2)  # fmt: skip
    sampled = dataclasses.replace(result, evaluation=half)
    share = 100 * half.correct / half.windows / (result.ceiling.correct / result.ceiling.windows)
    assert f"({share:.1f}% of it; " in _summary(sampled, out)
    assert f"more than {result.ceiling.correct:,} of {result.ceiling.windows:,} right" in _summary(sampled, out)


def test_the_weights_kept_are_those_of_the_best_validation_perplexity(predict_run):
    result, out = predict_run
    best = min(row["validation_perplexity"] for row in read_metrics(out / "metrics.jsonl"))
    assert result.validation.perplexity == pytest.approx(best, rel=1e-6)


def with_rare_words(corpus, part: str):
    """`corpus` with every token of one held-out part drawn at random from its 50 rarest words:
    text whose perplexity rises from the first evaluation on, as training learns those words are
    rare. A run that read this part along the way would stop at once and keep its first weights."""
    ids = corpus.ids.copy()
    rare = [i for i in range(len(corpus.vocabulary) - 50, len(corpus.vocabulary)) if i != corpus.unknown_id]
    rng = np.random.default_rng(0)
    for start, end in corpus.split.part(part):
        ids[start:end] = rng.choice(rare, end - start)
    return dataclasses.replace(corpus, ids=ids)


def test_the_stop_reads_the_validation_part_only(gpl_corpus, tmp_path):
    """With the test part made text the model predicts worse the longer it trains, the run keeps
    training, stops and keeps its weights exactly as on the true text: the test part chose nothing."""
    config = predict_config(steps=80, patience=2)
    honest = train(gpl_corpus, config, "cpu", tmp_path / "honest")
    garbled = train(with_rare_words(gpl_corpus, "test"), config, "cpu", tmp_path / "garbled")
    assert garbled.heldout.perplexity > 3 * honest.heldout.perplexity  # the test part is unlike validation
    assert (garbled.checkpoint.step, garbled.stopped) == (honest.checkpoint.step, honest.stopped)
    assert same_weights(weights(tmp_path / "honest"), weights(tmp_path / "garbled"))
    assert garbled.validation == honest.validation


def test_the_reported_figures_are_the_kept_weights_on_the_test_part(gpl_corpus, tmp_path):
    """A run stopped early by its validation part keeps weights of an earlier step than the last;
    the figures it reports are those weights' on the test windows, counted here independently."""
    corpus = with_rare_words(gpl_corpus, "validation")
    result = train(corpus, predict_config(steps=80, patience=2), "cpu", tmp_path)
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    kept = checkpoint.schedule_state["keep_best"]["best_step"]
    assert kept < checkpoint.step and f"kept the weights of step {kept}" in result.stopped
    contexts, labels = corpus.windows(4, "test")
    top1, top3, perplexity = independent_figures(checkpoint.build_model(), contexts, labels, corpus.unknown_id)
    assert (result.heldout.words, result.heldout.top1, result.heldout.top3) == (len(labels), top1, top3)
    assert result.heldout.perplexity == pytest.approx(perplexity, rel=1e-6)
    assert checkpoint.heldout == result.heldout.as_dict()


def test_keep_best_cuts_the_rate_then_stops():
    keeper = KeepBest(patience=2, cuts=1)
    assert keeper.observe(10, 50.0) and keeper.scale == 1
    assert not keeper.observe(20, 51.0) and not keeper.observe(30, 52.0)
    assert keeper.scale == 0.25 and not keeper.stopped  # the rate cut once, patience anew
    assert not keeper.observe(40, 50.5) and not keeper.observe(50, 50.1)
    assert keeper.stopped_at == 50 and "kept the weights of step 10" in keeper.reason(50)
    ended = KeepBest(patience=5)
    ended.observe(10, 50.0)
    ended.observe(20, 51.0)
    assert (
        ended.reason(20)
        == "the budget ended at step 20; it kept the weights of step 10, the best validation perplexity"
    )
    assert KeepBest(patience=5).reason(20) == "" and ended.reason(10) == ""  # the last weights are the best


def test_a_resumed_run_keeps_its_split_and_ends_as_an_uninterrupted_one(gpl_corpus, tmp_path):
    config = predict_config(steps=60, patience=100)
    whole = train(gpl_corpus, config, "cpu", tmp_path / "whole")
    with pytest.raises(TrainingInterrupted, match="step 30"):
        train(gpl_corpus, config, "cpu", tmp_path / "cut", progress=StopAt(config.steps, stop=35))
    checkpoint = load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)
    assert checkpoint.best_state is not None  # the best held-out weights so far travel with it
    from bench.heldout_figures import figures

    with pytest.raises(UsageError, match="not over"):  # its checkpoint's weights are not those it keeps
        figures(tmp_path / "cut", GPL, "test")
    for part in ("train", "validation", "test"):
        for a, b in zip(checkpoint.windows(part), gpl_corpus.windows(4, part)):
            assert np.array_equal(a, b)
    resumed = train(gpl_corpus, config, "cpu", tmp_path / "cut", resume=checkpoint)
    assert same_weights(weights(tmp_path / "whole"), weights(tmp_path / "cut"))
    assert (resumed.heldout, resumed.validation) == (whole.heldout, whole.validation)


def test_the_export_measures_each_file_on_the_test_part(predict_run, tmp_path):
    _, out = predict_run
    checkpoint = load_checkpoint(out / CHECKPOINT_NAME)
    options = ExportOptions(min_int8_agreement=0.0, max_int8_accuracy_drop=100.0)
    result = export_checkpoint(checkpoint, "predict", tmp_path / "exported", options)
    fp32, int8 = result.files
    assert fp32.heldout["perplexity"] == pytest.approx(checkpoint.heldout["perplexity"], rel=1e-4)
    assert int8.heldout_perplexity_rise == pytest.approx(int8.heldout["perplexity"] / fp32.heldout["perplexity"] - 1)
    assert abs(int8.heldout_perplexity_rise) <= 0.02
    provenance = fable.Model(tmp_path / "exported" / "fable.int8.onnx").metadata.provenance
    test_share = sum(end - start for start, end in checkpoint_split(checkpoint).test) / len(checkpoint.ids)
    assert provenance.heldout == pytest.approx(test_share) and 0.04 < test_share < 0.06
    assert provenance.heldout_words == fp32.heldout["words"] == len(checkpoint.windows("test")[1])
    assert provenance.heldout_perplexity == pytest.approx(checkpoint.heldout["perplexity"])
    strict = dataclasses.replace(options, max_heldout_perplexity_rise=-1.0)  # no file can pass
    with pytest.raises(ExportGuardError, match="perplexity on the held-out part"):
        export_checkpoint(checkpoint, "predict", tmp_path / "refused", strict)


def test_a_checkpoint_of_fable_0_4_reads_as_before_and_a_resumed_run_measures_both_parts(
    predict_run, gpl_corpus, tmp_path
):
    """0.4 saved no validation figures, and its `heldout` figures were of the whole held-out part:
    the model file's provenance gives them with that share, and resuming the finished run reads
    validation and test for the figures the new run gives."""
    result, out = predict_run
    payload = torch.load(out / CHECKPOINT_NAME, weights_only=True)
    del payload["validation"]
    whole = {"words": 496, "top1": 0.07, "top3": 0.17, "perplexity": 170.0}  # a 0.4 run's, over both parts
    payload["heldout"] = whole
    torch.save(payload, tmp_path / CHECKPOINT_NAME)
    old = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert (old.validation, old.heldout) == (None, whole)
    provenance = metadata_for(old, "window", "fp32").provenance
    assert (provenance.heldout, provenance.heldout_perplexity) == (split(len(old.ids), 0.1).share("heldout"), 170.0)
    assert provenance.heldout == pytest.approx(0.1, abs=0.001)
    resumed = train(gpl_corpus, predict_config(), "cpu", tmp_path, resume=old)
    assert (resumed.validation, resumed.heldout) == (result.validation, result.heldout)
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME).validation == result.validation.as_dict()


def test_tied_weights_are_one_matrix_and_dropout_is_training_only(gpl_corpus, predict_run):
    result, out = predict_run
    model_state = load_checkpoint(out / CHECKPOINT_NAME).model_state
    assert torch.equal(model_state["embedding.weight"], model_state["head.weight"])
    model = load_checkpoint(out / CHECKPOINT_NAME).build_model()
    contexts = torch.from_numpy(gpl_corpus.windows(4, "test")[0][:8])
    assert torch.equal(model(contexts), model(contexts))  # eval mode: no dropout in the numbers
    predict = PRESETS["predict"]
    assert predict.tie and all(size.dropout > 0 for size in predict.sizes) and UNKNOWN in gpl_corpus.vocabulary


def test_the_recipe_bench_reads_a_run_s_part_as_counted_independently(predict_run, gpl_corpus):
    """bench/heldout_figures.py, which chose and reported the recipe for millions of words: the
    run's model and the 4-gram on the same test windows, each counted here another way (windows
    one at a time in plain Python; the dict-based Kneser-Ney of tests/ngram_reference.py)."""
    from bench.heldout_figures import figures

    _, out = predict_run
    row = figures(out, GPL, "test")
    checkpoint = load_checkpoint(out / CHECKPOINT_NAME)
    contexts, labels = gpl_corpus.windows(4, "test")  # fewer than final_windows: every one is read
    words, banned = len(labels), gpl_corpus.unknown_id
    top1, top3, perplexity = independent_figures(checkpoint.build_model(), contexts, labels, banned)
    assert (row["words"], row["model"]["top1"], row["model"]["top3"]) == (words, top1 / words, top3 / words)
    assert row["model"]["perplexity"] == pytest.approx(perplexity, rel=1e-6)
    reference = Reference(gpl_corpus.segments(), len(gpl_corpus.vocabulary))
    scores = np.log(reference.distributions(contexts[:, -3:]).dense())  # float32 [windows, vocab], as counted
    chosen = scores[np.arange(words), labels] - np.log(np.exp(scores.astype(np.float64)).sum(axis=1))
    assert row["ngram"]["perplexity"] == pytest.approx(math.exp(-chosen.mean()), rel=1e-5)
    scores[:, banned] = -np.inf  # <unk> is never offered; ties go to the lower id
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :3]
    assert row["ngram"]["top1"] == (ranked[:, 0] == labels).mean()
    assert row["ngram"]["top3"] == (ranked == labels[:, None]).any(axis=1).mean()
    with pytest.raises(UsageError, match="another text"):
        figures(out, ROOT / "training" / "corpora" / "grep-manual.txt", "test")


def test_the_recipe_bench_reads_the_windows_and_weights_the_run_reported_on(gpl_corpus, tmp_path):
    """Where a part holds more windows than the run's last evaluation reads, the bench reads the
    same even sample, with the weights of the step the run kept: here not its last, because a
    rate this high overshoots and the run stops on validation."""
    from bench.heldout_figures import figures

    config = predict_config(steps=30, eval_windows=16, stop_windows=16, final_windows=48, learning_rate=0.3)
    train(gpl_corpus, dataclasses.replace(config, eval_every=2), "cpu", tmp_path)
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    kept, stopped = (checkpoint.schedule_state["keep_best"][key] for key in ("best_step", "stopped_at"))
    assert kept < stopped == checkpoint.step < config.steps and len(gpl_corpus.starts(4, "test")) > 48
    row = figures(tmp_path, GPL, "test")
    assert (row["step"], row["steps"]) == (kept, checkpoint.step)
    assert row["model"] == pytest.approx(checkpoint.heldout, rel=1e-9) and row["words"] == 48


def test_early_stopping_judges_every_step_on_the_same_validation_words(gpl_corpus, tmp_path):
    """The last evaluation reads a larger sample of the validation part (final_windows) than those
    along the way (stop_windows); the step to keep is still judged on the smaller one, so the
    best perplexity the run holds is its kept weights' on the 16 windows every step was read on."""
    config = predict_config(steps=30, eval_windows=16, stop_windows=16, final_windows=48)
    train(gpl_corpus, config, "cpu", tmp_path)
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    keeper = checkpoint.schedule_state["keep_best"]
    starts = gpl_corpus.starts(4, "validation")
    assert len(starts) > 48 and keeper["best_step"] == checkpoint.step == 30  # the last step is both kept and judged
    chosen = starts[np.unique(np.linspace(0, len(starts) - 1, 16).round().astype(int))]
    contexts, labels = gpl_corpus.ids[chosen[:, None] + np.arange(4)], gpl_corpus.ids[chosen + 4]
    *_, perplexity = independent_figures(checkpoint.build_model().eval(), contexts, labels, gpl_corpus.unknown_id)
    assert keeper["best"] == pytest.approx(perplexity, rel=1e-6)
    assert checkpoint.validation["perplexity"] != pytest.approx(perplexity, rel=1e-6)  # the 48 windows' figure differs
    last = read_metrics(tmp_path / "metrics.jsonl")[-1]  # the log gives both: what reports, and what judged
    assert last["validation_words"] == 48 and last["validation_judged_perplexity"] == pytest.approx(
        perplexity, rel=1e-6
    )


@pytest.mark.parametrize("preset", ["predict", "stream"])
@pytest.mark.parametrize(("along", "last", "larger"), [(16, 48, True), (48, 48, False), (5_000, 20_000, False)])
def test_the_measures_know_when_the_last_evaluation_reads_more_validation(gpl_corpus, preset, along, last, larger):
    """Whether the last step is judged apart: the validation part holds a few hundred windows (a
    stream model: words), so 16 of them along the way are fewer than 48 at the end, while 5,000
    and 20,000 both read all of it."""
    from fable.training.train import Measures

    config = dataclasses.replace(tiny_config(preset, steps=10, window=4, hidden=16, embedding_dim=16),
                                 eval_windows=along, stop_windows=along, final_windows=last)  # fmt: skip
    assert 48 < len(gpl_corpus.starts(4, "validation")) < 5_000
    measures = Measures(gpl_corpus, config, "cpu", gpl_corpus.segments())
    assert measures.final_validation_larger is larger
