"""A model that reads the whole text so far (the stream graph) and its cache of the text, held to
truths outside the code under test: PyTorch reading the same text, a cache computed here by its
formula, and `suggest` read afresh."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')
onnx = pytest.importorskip("onnx")

import fable  # noqa: E402
from fable import contract  # noqa: E402
from fable.contract import CacheSettings  # noqa: E402
from fable.errors import ModelFileError, SettingError  # noqa: E402

from .helpers import ROOT  # noqa: E402

TEXT = (ROOT / "training" / "corpora" / "gpl-3.txt").read_text(encoding="utf-8")[20_000:22_000]


def with_props(source, target, **props: str):
    """A copy of the model file `source` at `target` with these metadata values set (or removed: None)."""
    model = onnx.load(source)
    kept = {p.key: p.value for p in model.metadata_props}
    kept.update({key: value for key, value in props.items() if value is not None})
    for key in [k for k, v in props.items() if v is None]:
        kept.pop(key, None)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, kept)
    onnx.save(model, target)
    return target


def torch_reading(checkpoint, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch reading `ids` from the zero state: logits [n, vocab] and top outputs [n, hidden]."""
    model = checkpoint.build_model()
    with torch.no_grad():
        logits, top, _ = model.read(torch.tensor([ids]))
    return logits[0].numpy().astype(np.float64), top[0].numpy().astype(np.float64)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def text_ids(stream_export):
    _, folder, _ = stream_export
    model = fable.Model(folder / "fable.onnx")
    return [i for i in model.lexicon.lookup(model.tokens(TEXT)) if i is not None][:150]


def test_a_stream_file_says_what_it_is(stream_export):
    checkpoint, folder, _ = stream_export
    model = fable.Model(folder / "fable.int8.onnx")
    meta = model.metadata
    assert (meta.graph, meta.format_version, meta.whole_text, meta.least_words) == ("stream", 3, True, 1)
    assert model.window == checkpoint.config.model.window  # how many last words a fresh read feeds
    assert meta.cache == (CacheSettings(**checkpoint.cache) if checkpoint.cache else None)  # {}: none chosen


def test_the_export_proves_each_file_reading_a_whole_text(stream_export):
    """The report holds each file reading a stretch of text whole against PyTorch, beside the windows."""
    _, folder, _ = stream_export
    report = json.loads((folder / "report.json").read_text())
    fp32, int8 = report["files"]["fable.onnx"], report["files"]["fable.int8.onnx"]
    assert fp32["text"]["words"] >= 500 and fp32["text"]["error_ratio"] < 20
    assert int8["text"]["words"] == fp32["text"]["words"] and int8["text"]["clear_agreement"] >= 0.9


@pytest.mark.parametrize("backend", ["onnxruntime", "numpy"])
def test_the_runtime_reads_a_whole_text_as_pytorch_does(stream_export, text_ids, backend):
    """150 words, each predicted from all the words before it: the state is never zeroed."""
    checkpoint, folder, _ = stream_export
    expected, _ = torch_reading(checkpoint, text_ids)
    model = fable.Model(folder / "fable.onnx", backend=backend, cache=False)
    found = np.stack([row.copy() for row in model.logits_along(text_ids)])
    assert np.abs(found - expected).max() < 1e-4
    # and a window of the last 3 words would differ: the words before them still move the logits
    assert np.abs(found[60] - torch_reading(checkpoint, text_ids[58:61])[0][-1]).max() > 1e-2


@pytest.mark.parametrize("backend", ["onnxruntime", "numpy"])
def test_the_cache_is_its_formula(stream_export, text_ids, tmp_path, backend):
    """p = (1 - weight) softmax(logits) + weight sum_j a_j [w_j+1 = w], a = softmax of flatness
    h_t . h_j over the last `size` words j before t, computed here from PyTorch's numbers."""
    checkpoint, folder, _ = stream_export
    settings = CacheSettings(size=7, flatness=0.8, weight=0.3)
    path = with_props(folder / "fable.onnx", tmp_path / "cached.onnx",
                      **{contract.KEY_CACHE: json.dumps(dataclasses.asdict(settings))})  # fmt: skip
    model = fable.Model(path, backend=backend)
    found = np.stack([softmax(row.astype(np.float64)) for row in model.logits_along(text_ids)])
    logits, top = torch_reading(checkpoint, text_ids)
    for t in range(len(text_ids)):
        expected = softmax(logits[t])
        pairs = list(range(max(0, t - settings.size), t))
        if pairs:
            votes = softmax(np.array([settings.flatness * top[t] @ top[j] for j in pairs]))
            cache = np.zeros_like(expected)
            for j, vote in zip(pairs, votes):
                cache[text_ids[j + 1]] += vote
            expected = (1 - settings.weight) * expected + settings.weight * cache
        assert np.abs(found[t] - expected).max() < 1e-5, t
    # the cache moves the text's own words: off, the same file gives the model alone
    alone = np.stack([softmax(row.astype(np.float64)) for row in fable.Model(path, cache=False).logits_along(text_ids)])
    assert np.abs(alone - softmax(logits)).max() < 1e-5
    assert np.abs(found - alone).max() > 0.01


def test_the_choice_of_cache_computes_what_the_runtime_mixes(stream_export):
    """The grid's perplexities (computed at once, on the word that came only) equal the runtime's
    mix read a word at a time, for every setting."""
    from fable.training.cache_choice import FLATNESS, SIZES, WEIGHTS, choose_cache
    from fable.training.streams import stream_evaluation

    checkpoint, _, corpus = stream_export
    model = checkpoint.build_model()
    validation = corpus.segments("validation")
    best, figures = choose_cache(model, validation, corpus.unknown_id)
    assert len(figures) == len(SIZES) * len(FLATNESS) * len(WEIGHTS)
    for setting in list(figures)[::7] + ([best] if best else []):
        by_runtime = stream_evaluation(model, validation, corpus.unknown_id, cache=setting).perplexity
        assert figures[setting] == pytest.approx(by_runtime, rel=1e-6)
    alone = stream_evaluation(model, validation, corpus.unknown_id).perplexity
    assert (best is None) == (min(figures.values()) >= alone)


def test_typing_gives_what_suggest_gives_afresh(stream_export):
    """Letter by letter over a text shorter than the model's fresh read: the state and the cache
    carried by `typing()` give exactly the suggestions of `suggest` on the whole text so far."""
    _, folder, _ = stream_export
    model = fable.Model(folder / "fable.int8.onnx")
    text = "you may convey a work based on the program"
    assert len(model.tokens(text)) < model.window
    with model.typing() as typing:
        for end in range(1, len(text) + 1):
            assert typing.suggest(text[:end]) == model.suggest(text[:end]), text[:end]


def test_typing_reads_afresh_a_text_changed_before_the_word_typed(stream_export):
    """A stream model's state holds every word it read: a text changed further back than its
    window is read afresh, not fed on from a state that read the old words."""
    _, folder, _ = stream_export
    model = fable.Model(folder / "fable.int8.onnx")
    words = "you may convey a covered work in object code form under the terms of sections four and five".split()
    assert len(words) > model.window
    with model.typing() as typing:
        for end in range(1, len(words) + 1):  # a word at a time: the state reads all of them
            typing.suggest(" ".join(words[:end]) + " ")
        changed = " ".join(["this", "license"] + words[2:]) + " "
        assert typing.suggest(changed) == model.suggest(changed)
        assert typing.suggest(changed + "of") == model.suggest(changed + "of")


def test_window_files_stay_format_2(tiny_export):
    """A file is written at the lowest format that holds it: fable 0.5 still opens a window model's."""
    _, folder, _ = tiny_export
    for name in ("fable.onnx", "fable.int8.onnx", "fable.int4.onnx"):
        assert fable.Model(folder / name).metadata.format_version == 2


@pytest.mark.parametrize("backend", ["onnxruntime", "numpy"])
def test_prompts_of_different_lengths_decode_together_as_alone(stream_export, tmp_path, backend):
    """With a cache forced on, so that a row restarted until its first word restarts its cache too."""
    _, folder, _ = stream_export
    path = with_props(folder / "fable.int8.onnx", tmp_path / "cached.onnx",
                      **{contract.KEY_CACHE: json.dumps({"size": 9, "flatness": 1.0, "weight": 0.4})})  # fmt: skip
    model = fable.Model(path, backend=backend)
    prompts = ["the", "you may convey a covered work", "this license", "the program"]
    assert model.generate_batch(prompts, 12) == [model.generate(prompt, 12) for prompt in prompts]
    assert model.generate("the") and model.suggest("the ")  # one word is enough: no window to fill


def test_evaluate_predicts_every_word_after_the_first(stream_export):
    _, folder, _ = stream_export
    model = fable.Model(folder / "fable.int8.onnx")
    text = "you may convey a covered work in object code form under the terms of sections 4 and 5"
    tokens = model.tokens(text)
    unknown = [t for t in tokens[1:] if model.lexicon.index.get(t, model.unknown_id) == model.unknown_id]
    assert model.evaluate(text, learning=False).words == len(tokens) - 1 - len(unknown)
    assert len(model.score(text).words) == len(tokens) - 1


def test_a_stream_graph_in_an_older_format_is_refused(stream_export, tmp_path):
    _, folder, _ = stream_export
    path = with_props(folder / "fable.onnx", tmp_path / "old.onnx", **{contract.KEY_FORMAT_VERSION: "2"})
    with pytest.raises(ModelFileError, match="stream graph in a file of format 2"):
        fable.Model(path)


@pytest.mark.parametrize("cache", ['{"size": 0, "flatness": 1, "weight": 0.1}', '{"size": 5, "flatness": 1, "weight": 1}',
                                   '{"size": 5, "weight": 0.1}', "[1, 2]"])  # fmt: skip
def test_a_damaged_cache_setting_is_one_line(stream_export, tmp_path, cache):
    _, folder, _ = stream_export
    path = with_props(folder / "fable.onnx", tmp_path / "bad.onnx", **{contract.KEY_CACHE: cache})
    with pytest.raises(ModelFileError) as error:
        fable.Model(path)
    assert "fable.cache" in str(error.value) and "\n" not in str(error.value)


def test_cache_is_true_or_false(stream_export):
    _, folder, _ = stream_export
    with pytest.raises(SettingError, match="cache"):
        fable.Model(folder / "fable.onnx", cache="off")


def test_the_streams_cover_the_training_text_in_order(stream_export):
    """Each row's words and labels are the training part's own, read on from where the last step
    ended; a checkpoint's sampler state resumes the very next batch and carried state."""
    from fable.training.streams import StreamBatches

    _, _, corpus = stream_export
    joined = np.concatenate(corpus.segments())
    batches = StreamBatches(corpus.segments(), 4, 9, "cpu")
    length = len(joined) // 4
    x, y, _ = batches.next()
    for row in range(4):
        start = row * length
        assert x[row].tolist() == joined[start : start + 9].tolist()
        assert y.reshape(4, 9)[row].tolist() == joined[start + 1 : start + 10].tolist()
    batches.carry((torch.ones(2, 4, 3), torch.full((2, 4, 3), 2.0)))
    saved = batches.state()
    again = StreamBatches(corpus.segments(), 4, 9, "cpu")
    again.load_state(saved)
    assert torch.equal(batches.next()[0], again.next()[0])
    assert all(torch.equal(a, b) for a, b in zip(batches.carried, again.carried))


def test_a_resumed_process_takes_its_own_rows_of_the_carried_state(stream_export):
    """A checkpoint holds the state of every row ([layers, streams, hidden]); under torchrun each
    process takes back the rows it reads (World.share), whatever the number of processes."""
    from fable.training.distributed import World
    from fable.training.streams import StreamBatches

    _, _, corpus = stream_export
    whole = torch.arange(2 * 7 * 3, dtype=torch.float32).reshape(2, 7, 3)  # row r's values differ from every other's
    saved = {"offset": 5, "carried": [whole, -whole]}
    one = StreamBatches(corpus.segments(), 7, 9, "cpu")
    one.load_state(saved)
    assert torch.equal(one.state()["carried"][0], whole)  # one process: every row, back as it was
    second = StreamBatches(corpus.segments(), 7, 9, "cpu", World(rank=1, size=3))
    second.load_state(saved)
    assert torch.equal(second.carried[0], whole[:, 1::3]) and torch.equal(second.carried[1], -whole[:, 1::3])
    assert torch.equal(second.data, StreamBatches(corpus.segments(), 7, 9, "cpu").data[1::3])


def test_a_cache_on_a_window_models_file_is_refused(tiny_export, tmp_path):
    _, folder, _ = tiny_export
    path = with_props(folder / "fable.int8.onnx", tmp_path / "step.onnx",
                      **{contract.KEY_CACHE: '{"size": 5, "flatness": 1, "weight": 0.1}'})  # fmt: skip
    with pytest.raises(ModelFileError, match="only stream graphs have one"):
        fable.Model(path)


def test_a_window_model_is_not_exported_as_a_stream(tiny_export, tmp_path):
    from fable.training.export.exporter import ExportOptions, export_checkpoint
    from fable.training.export.guards import ExportGuardError

    checkpoint, _, _ = tiny_export
    with pytest.raises(ExportGuardError, match="needs a model trained on streams"):
        export_checkpoint(checkpoint, "run", tmp_path / "out", ExportOptions(graph=contract.GRAPH_STREAM))
    assert not (tmp_path / "out" / "fable.onnx").exists()


def test_a_stream_models_window_file_claims_no_whole_text_figures(stream_export):
    """A stream checkpoint's test figures are its whole-text reading with the cache: its window
    graph (the plain decode) reads neither, so its file does not carry them."""
    from fable.training.export.exporter import metadata_for

    checkpoint, _, _ = stream_export
    assert checkpoint.heldout is not None
    stream = metadata_for(checkpoint, contract.GRAPH_STREAM, "int8").provenance
    window = metadata_for(checkpoint, contract.GRAPH_WINDOW, "fp32").provenance
    assert stream.heldout_perplexity == checkpoint.heldout["perplexity"] and window.heldout_perplexity is None


def test_an_interrupted_runs_checkpoint_gets_its_cache_chosen_at_export(stream_export):
    """A checkpoint saved before the run ended holds no choice (None): the export makes it, on the
    same validation part and by the same rule as the end of a run."""
    from fable.training.cache_choice import choose_cache
    from fable.training.export.exporter import cache_of

    checkpoint, _, corpus = stream_export
    unfinished = dataclasses.replace(checkpoint, cache=None)
    chosen = choose_cache(checkpoint.build_model(), corpus.segments("validation"), corpus.unknown_id,
                          checkpoint.config.final_windows)[0]  # fmt: skip
    assert chosen is not None and cache_of(unfinished) == chosen  # a choice made, not None against None
    assert cache_of(dataclasses.replace(checkpoint, cache={})) is None  # chosen: none


def test_the_training_fit_reads_each_block_whole(stream_export, monkeypatch):
    """The training figures of a stream model: the first words of each training block read in one
    pass from the zero state, however many passes the reader cuts them into."""
    from torch.nn import functional as F

    from fable.training import streams
    from fable.training.split import UNSEEN

    checkpoint, _, corpus = stream_export
    model = checkpoint.build_model().eval()
    monkeypatch.setattr(streams, "READ_CHUNK", 7)  # a state carried across many passes
    fit = streams.stream_fit(model, corpus.segments(), 300)
    blocks = corpus.segments()
    share = 300 / sum(len(block) for block in blocks)
    losses, right = [], 0
    for block in blocks:
        words = torch.from_numpy(block[: int(len(block) * share)].astype(np.int64))
        assert not (words == UNSEEN).any()  # the training part holds no unseen-word marker to split at
        with torch.no_grad():
            logits, _, _ = model.read(words[None, :-1])
        losses.append(F.cross_entropy(logits[0], words[1:], reduction="none"))
        right += int((logits[0].argmax(dim=1) == words[1:]).sum())
    losses = torch.cat(losses)
    assert fit.windows == len(losses) == streams.stream_fit_size(blocks, 300)
    assert (
        streams.stream_fit_size(blocks, 10**9)
        == streams.stream_fit_size(blocks, None)
        == sum(len(b) - 1 for b in blocks)
    )
    assert fit.correct == right
    assert fit.loss == pytest.approx(float(losses.mean()), rel=1e-5)


class CtrlCAfter:
    """Presses Ctrl-C at the `stop`-th step of a whole run, its refit's steps counted after the first's."""

    def __init__(self, total: int, stop: int):
        from fable.training.progress import Progress

        self.progress, self.stop, self.steps = Progress(total, bar=False), stop, 0
        self.total, self.bar = total, False

    def __getattr__(self, name):
        return getattr(self.progress, name)

    def update(self, step, loss, accuracy):
        self.steps += 1
        if self.steps == self.stop:
            raise KeyboardInterrupt


def test_a_refit_learns_the_validation_part_too_and_resumes_as_one_run(tmp_path):
    """Once validation has chosen, the file is a second model trained from the start on training
    + validation for the chosen steps, which the test part alone measures; cut inside the refit,
    the run resumes to the weights and metrics of an uncut one."""
    from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from fable.training.corpus import load_corpus
    from fable.training.metrics import read_metrics
    from fable.training.split import UNSEEN
    from fable.training.streams import learnt_blocks
    from fable.training.train import TrainingInterrupted, train

    from .helpers import tiny_config

    config = dataclasses.replace(tiny_config("stream", steps=200, window=8, hidden=16, embedding_dim=16),
                                 batch_size=4, bptt=10, patience=2, distill=0.5, learning_rate=3e-2)  # fmt: skip
    gpl = ROOT / "training" / "corpora" / "gpl-3.txt"
    # every word kept (--min-count 1): the validation part holds words the vocabulary lacks (UNSEEN)
    corpus = load_corpus(gpl, 8, config.tokenizer_version, 1, None, config.holdout)
    whole = train(corpus, config, "cpu", tmp_path / "whole")
    chosen = whole.chosen
    assert chosen is not None and 20 < chosen.step < chosen.budget == 200  # validation stopped the first run early
    assert whole.checkpoint.step == chosen.step and whole.checkpoint.config.steps == chosen.step
    assert whole.checkpoint.cache == (dataclasses.asdict(chosen.cache) if chosen.cache else {})
    rows = read_metrics(tmp_path / "whole" / "metrics.jsonl")
    first = [row["step"] for row in rows if not row.get("refit")]
    assert [row["step"] for row in rows if row.get("refit")] == sorted({*range(10, chosen.step + 1, 10), chosen.step})
    assert "validation_perplexity" not in rows[-1]  # the refit has learnt the validation part

    # the run that chose is the run without a refit: the same step, weights kept and figures on
    # validation; the test part measures the refit's weights, not those
    alone = train(corpus, dataclasses.replace(config, refit=False), "cpu", tmp_path / "alone")
    assert alone.checkpoint.step == first[-1] and alone.stopped == chosen.stopped
    assert alone.validation == chosen.validation and alone.cache == chosen.cache
    assert whole.heldout.words == alone.heldout.words and whole.heldout != alone.heldout
    differs = [
        k for k, v in alone.checkpoint.model_state.items() if not torch.equal(v, whole.checkpoint.model_state[k])
    ]
    assert differs

    # what the refit learns from: the training and validation blocks in the text's order, cut at UNSEEN words
    blocks = sorted(corpus.split.train + corpus.split.validation)
    expected = corpus.ids[np.concatenate([np.arange(start, end) for start, end in blocks])]
    assert (expected == UNSEEN).any()
    pieces = []  # block by block, cut at each unseen word; a lone word between two of them is no pair
    for start, end in blocks:
        words = corpus.ids[start:end].tolist()
        cuts = [-1] + [i for i, w in enumerate(words) if w == UNSEEN] + [len(words)]
        pieces += [words[a + 1 : b] for a, b in zip(cuts, cuts[1:]) if b - a - 1 >= 2]
    assert [block.tolist() for block in learnt_blocks(corpus, refit=True)] == pieces

    def seen(path):  # each evaluation once, as if the run had not stopped; seconds aside
        return [(row["step"], row.get("refit"), round(row["loss"], 5)) for row in read_metrics(path / "metrics.jsonl")]

    # cut before the refit's first checkpoint (the chosen run's is kept: it refits again), and after
    for refit_steps, kept in ((13, f"step {first[-1]}"), (27, "step 20")):
        cut = tmp_path / f"cut{refit_steps}"
        with pytest.raises(TrainingInterrupted, match=kept):
            train(corpus, config, "cpu", cut, progress=CtrlCAfter(config.steps, stop=first[-1] + refit_steps))
        resumed = train(corpus, config, "cpu", cut, resume=load_checkpoint(cut / CHECKPOINT_NAME))
        assert resumed.chosen.step == chosen.step and resumed.chosen.validation == chosen.validation
        assert all(torch.equal(resumed.checkpoint.model_state[k], v) for k, v in whole.checkpoint.model_state.items())
        assert seen(cut) == seen(tmp_path / "whole")


def test_a_refits_resume_keeps_the_steps_validation_chose(stream_export, tmp_path):
    from fable.training.checkpoint import CHECKPOINT_NAME

    from .helpers import invoke, snapshot

    _, folder, _ = stream_export
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(folder.parent / "run" / CHECKPOINT_NAME, out / CHECKPOINT_NAME)
    before = snapshot(out)
    result = invoke("fable-train", "--resume", "--steps", "999", "--out", str(out))
    assert result.returncode == 2 and "refit of the" in result.stderr and "drop --steps" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and snapshot(out) == before


def test_the_cache_rewrites_only_the_words_it_votes_for():
    """What the cache returns is log p up to a constant per row: a word with no vote keeps its
    logit exactly, a row with no pair yet is the model's logits, and the voted-for words hold the
    formula's mix once normalized."""
    from fable.cache import TextCache

    rng = np.random.default_rng(3)
    cache = TextCache(CacheSettings(size=4, flatness=2.0, weight=0.25), batch=2, hidden=5)
    logits = rng.standard_normal((6, 2, 9)).astype(np.float32)
    tops = rng.standard_normal((6, 2, 5)).astype(np.float32)
    tokens = np.array([[1, 2], [3, 3], [1, 4], [5, 6], [3, 7], [8, 0]])
    cache.restart([1])  # row 1 starts afresh at every step below: never a pair
    for t in range(6):
        cache.restart([1])
        out = cache.mix(logits[t], tops[t], tokens[t])
        assert out.dtype == np.float32 and np.array_equal(out[1], logits[t, 1])
        pairs = list(range(max(0, t - 4), t))  # row 0's last 4 outputs, each followed by the next token
        voted = {int(tokens[j + 1, 0]) for j in pairs}
        kept = [w for w in range(9) if w not in voted]
        assert np.array_equal(out[0, kept], logits[t, 0, kept])
        expected = softmax(logits[t, 0].astype(np.float64))
        if pairs:
            votes = softmax(np.array([2.0 * float(tops[t, 0] @ tops[j, 0]) for j in pairs]))
            mixed = np.zeros(9)
            for j, vote in zip(pairs, votes):
                mixed[tokens[j + 1, 0]] += vote
            expected = 0.75 * expected + 0.25 * mixed
        assert np.abs(softmax(out[0].astype(np.float64)) - expected).max() < 1e-6
