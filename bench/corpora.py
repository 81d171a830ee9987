"""Training, the export and the runtime on the fable and on the two real corpora.

    OPENBLAS_NUM_THREADS=1 python bench/corpora.py [--only NAME] [--preset auto|predict|memorize] [--device ...]

For each corpus it trains from scratch with the preset fable-train would choose (or the one
named: memorize holds 10% out too, so that it can be measured on text it never saw), exports
with the default guards and times a sampled word with the runtime. Each row: windows,
vocabulary, ceiling, accuracy and its share of the ceiling, steps taken of the budget, training
wall time and the share of it spent evaluating, the export's verdict, int8's accuracy drop, µs
a word for fp32 and int8; and on the held-out part, the int8 file's top-1, top-3 and perplexity
beside those of an interpolated modified Kneser-Ney 4-gram counted on the same training part
(training/ngram.py), with the ratio of the perplexities and the difference of the top-3s, and
the keystrokes each saves typing the held-out text (presage's rule, 3 suggestions; words read as
<unk> cost all their keys), and the file's with a person's words learnt (fable.learned: the
document before each block, and the block as it is typed). The held-out blocks alternate between
validation, where the blend of a person's words is chosen among BLEND_GRID, and test, where every
figure is read. The rows also go to bench/results/local/corpora.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import fable
from fable.benchmark import word_gaps_us
from fable.cli import columns
from fable.contract import FILE_NAMES, REPORT_NAME
from fable.evaluation import NOTHING, Evaluation, evaluation_of, predictions
from fable.keyboard import Keyboard, keys_without
from fable.learned import BLEND, Blend
from fable.machine import describe as describe_machine
from fable.training.config import PRESETS, choose_preset
from fable.training.corpus import Corpus, Text, fable_path, load_corpus, read_corpus
from fable.training.export.exporter import REFUSED_NAME, ExportOptions, export_checkpoint
from fable.training.export.guards import ExportGuardError
from fable.training.ngram import KneserNey
from fable.training.streams import learnt_blocks
from fable.training.train import resolve_device, train

ROOT = Path(__file__).resolve().parents[1]
CORPORA = {
    "fable": fable_path(),
    "gpl-3": ROOT / "training" / "corpora" / "gpl-3.txt",
    "grep-manual": ROOT / "training" / "corpora" / "grep-manual.txt",
    "sed-changelog": ROOT / "training" / "corpora" / "sed-changelog.txt",
    "python-reference": ROOT / "training" / "corpora" / "python-reference.txt",
}
RESULTS = ROOT / "bench" / "results" / "local" / "corpora.json"


def measure(name: str, text: Text, preset_name: str, device: str, work: Path) -> dict:
    """Train `text` with a preset (by name, fable-train's choice resolved), export and time it."""
    preset = PRESETS[preset_name]
    if preset.preset == "memorize" and choose_preset(len(text.ids))[0] == "predict":
        preset = dataclasses.replace(preset, holdout=0.1)  # the same held-out part as predict's
    corpus = load_corpus(text, preset.model.window, preset.tokenizer_version, preset.min_count, preset.max_vocab,
                         preset.holdout)  # fmt: skip
    config = preset.for_corpus(corpus.window_count(preset.model.window))
    started = time.perf_counter()
    result = train(corpus, config, device, work / name)
    seconds = time.perf_counter() - started
    out = work / name / "exported"
    try:
        export_checkpoint(result.checkpoint, name, out, ExportOptions())
        verdict = "passed"
    except ExportGuardError as refused:
        verdict = "refused: " + str(refused).removeprefix("guard: ").split(";")[0]
    report = json.loads((out / (REPORT_NAME if verdict == "passed" else REFUSED_NAME)).read_text())
    int8 = report["files"][FILE_NAMES["int8"]]
    words, models = {}, {}
    for quantization in ("fp32", "int8"):
        file = out / FILE_NAMES[quantization]
        if verdict == "passed":
            models[quantization] = model = fable.Model(file)
            words[quantization] = float(np.median(word_gaps_us(model, fable.Sampling(1.0, seed=0), 200, 2000)))
    ev, best = result.evaluation, result.ceiling  # best: None for a stream model (no window bounds it)
    row = {
        "corpus": name, "preset": config.preset, "window": config.model.window, "hidden": config.model.hidden,
        "windows": best.windows if best is not None else None, "vocabulary": len(corpus.vocabulary),
        "ceiling": best.accuracy if best is not None else None, "accuracy": ev.accuracy,
        "of_ceiling": ev.accuracy / best.accuracy if best is not None else None, "steps": result.checkpoint.step,
        "budget": result.chosen.budget if result.chosen else result.checkpoint.config.steps,
        "refit": result.chosen is not None, "decay": result.schedule.reason or result.stopped,
        "eval_share": result.eval_seconds / result.wall_seconds,
        "train_seconds": seconds, "device": device, "export": verdict, "int8_drop_points": int8["accuracy_drop_points"],
        "fp32_word_us": words.get("fp32"), "int8_word_us": words.get("int8"),
    }  # fmt: skip
    if config.holdout and verdict == "passed" and config.sampling == "streams":
        # the yardstick counts what the file learnt from: a refit's validation part too
        learnt = KneserNey(learnt_blocks(corpus, config.refit), len(corpus.vocabulary))
        row |= whole_text_figures(text, corpus, models["int8"], learnt)
    elif config.holdout and int8.get("heldout"):
        counted = KneserNey(corpus.segments(), len(corpus.vocabulary))
        ngram = kneser_ney_heldout(counted, corpus, config.model.window)
        row |= {"heldout_words": int8["heldout"]["words"], "int8_heldout": int8["heldout"],
                "fp32_heldout": report["files"][FILE_NAMES["fp32"]]["heldout"], "ngram_heldout": ngram.as_dict(),
                "perplexity_ratio": int8["heldout"]["perplexity"] / ngram.perplexity,
                "top3_points": 100 * (int8["heldout"]["top3"] - ngram.top3_rate)}  # fmt: skip
        if verdict == "passed":
            model, window = models["int8"], config.model.window
            chosen, trials = choose_blend(text, corpus, model, window)
            typed, yardstick = keystrokes_heldout(text, corpus, model, counted, window, TEST)
            learnt = {blend: typed_learning(text, corpus, model, window, TEST, blend) for blend in {BLEND, chosen}}
            row |= {"int8_keystrokes_saved": typed.keystrokes_saved, "ngram_keystrokes_saved": yardstick.keystrokes_saved,
                    "int8_keystrokes_learning": learnt[BLEND].keystrokes_saved, "learning_heldout": learnt[BLEND].as_dict(),
                    "chosen_blend": dataclasses.asdict(chosen), "int8_keystrokes_chosen": learnt[chosen].keystrokes_saved,
                    "blend_trials": trials, "keystrokes_words": typed.words + typed.skipped}  # fmt: skip
    return row


VALIDATION, TEST = "validation", "test"  # the held-out blocks that choose, and those that report (training/split.py)
BLEND_GRID = [Blend(weight, prior) for weight in (0.05, 0.1, 0.2, 0.3) for prior in (0.5, 2.0, 8.0)]


NGRAM_READS = 3  # the words before a word the 4-gram reads: stream rows are compared from the 4th word of a block


def whole_text_figures(text: Text, corpus: Corpus, model: fable.Model, ngram: KneserNey) -> dict:
    """A stream model's figures on the test part: each block read whole, as `fable-run --score
    --file` reads it, with its cache and without, and with the person's words learnt; beside the
    4-gram's on the same words (each block's from its 4th, so that the 4-gram reads 3 words)."""
    keyboard, unknown = model.keyboard, corpus.unknown_id
    assert unknown is not None, "the stream recipe reads rare words as <unk>: no held-out id is UNSEEN"
    cached = alone = yardstick = NOTHING
    for start, end in blocks(corpus, TEST):
        ids = corpus.ids[start:end].astype(np.int64)
        if len(ids) <= NGRAM_READS:
            continue
        typed = sum(keys_without(text.words[i]) for i in text.ids[start + NGRAM_READS : end].tolist())
        for cache in (True, False):
            block, skip = NOTHING, NGRAM_READS - 1  # the predictions start at the block's 2nd word
            for logits, labels in predictions(model, ids.tolist(), cache=cache):
                block += _figures(logits[skip:], labels[skip:], unknown, keyboard)
                skip = max(0, skip - len(labels))
            block = block.typed_over(typed)
            cached, alone = (cached + block, alone) if cache else (cached, alone + block)
        starts = start + np.arange(end - start - NGRAM_READS)
        starts = starts[corpus.ids[starts + NGRAM_READS] != unknown]
        yardstick += ngram_evaluation(ngram, corpus, starts, NGRAM_READS, keyboard).typed_over(typed)
    learnt = typed_learning(text, corpus, model, 1, TEST, BLEND)
    return {"heldout_words": cached.words, "int8_heldout": cached.as_dict(), "int8_heldout_no_cache": alone.as_dict(),
            "ngram_heldout": yardstick.as_dict(), "perplexity_ratio": cached.perplexity / yardstick.perplexity,
            "cache": None if model.metadata.cache is None else dataclasses.asdict(model.metadata.cache),
            "perplexity_ratio_no_cache": alone.perplexity / yardstick.perplexity,
            "top3_points": 100 * (cached.top3_rate - yardstick.top3_rate),
            "top1_points": 100 * (cached.top1_rate - yardstick.top1_rate),
            "int8_keystrokes_saved": cached.keystrokes_saved, "ngram_keystrokes_saved": yardstick.keystrokes_saved,
            "int8_keystrokes_learning": learnt.keystrokes_saved, "learning_heldout": learnt.as_dict()}  # fmt: skip


def _figures(logits: np.ndarray, labels: np.ndarray, unknown: int | None, keyboard: Keyboard) -> Evaluation:
    keep = labels != unknown
    return evaluation_of(logits[keep], labels[keep], unknown, keyboard)


def blocks(corpus: Corpus, part: str) -> list[tuple[int, int]]:
    return list(corpus.split.part(part))


def choose_blend(text: Text, corpus: Corpus, model: fable.Model, window: int) -> tuple[Blend, list[dict]]:
    """The blend of a person's words (fable.learned) that saves the most keystrokes on the
    validation blocks, and each trial's figure: how BLEND, the runtime's default, was chosen."""
    trials = [(typed_learning(text, corpus, model, window, VALIDATION, blend), blend) for blend in BLEND_GRID]
    best = max(trials, key=lambda trial: trial[0].keystrokes_saved)[1]
    return best, [dataclasses.asdict(blend) | {"keystrokes_saved": e.keystrokes_saved} for e, blend in trials]


def typed_learning(text: Text, corpus: Corpus, model: fable.Model, window: int, part: str, blend: Blend) -> Evaluation:
    """Keystrokes saved typing one part's blocks with the person's words learnt: the document
    before each block (the person typed it: training text and earlier blocks) through
    `model.learn`, and the block's own text so far as it is typed (`model.evaluate`)."""
    model.blend, total = blend, NOTHING
    try:
        for start, end in blocks(corpus, part):
            if end - start > window:
                model.forget()
                model.learn(" ".join(text.words[i] for i in text.ids[:start].tolist()))
                total += model.evaluate(" ".join(text.words[i] for i in text.ids[start:end].tolist()))
    finally:
        model.blend = BLEND
        model.forget()
    return total


def keystrokes_heldout(
    text: Text, corpus: Corpus, model: fable.Model, ngram: KneserNey, window: int, part: str
) -> tuple[Evaluation, Evaluation]:
    """Keystrokes saved on one held-out part typed as text, each block read as `fable-run --score
    --file` reads a user's text (its words after the first `window`): by the file's `model` alone
    (no person's words), and by the 4-gram with the same keyboard (fable.keyboard). A word neither
    can offer (read as <unk>) costs all its keys for both."""
    keyboard = model.keyboard  # the file's vocabulary is the corpus's
    typed = yardstick = NOTHING
    for start, end in blocks(corpus, part):
        if end - start <= window:
            continue
        words = [text.words[i] for i in text.ids[start:end].tolist()]
        found = model.evaluate(" ".join(words), learning=False)
        assert found.words + found.skipped == len(words) - window, "the block reads back as other tokens"
        typed += found
        starts = start + np.arange(end - start - window)
        starts = starts[corpus.ids[starts + window] != corpus.unknown_id]  # <unk> is never offered
        predicted = ngram_evaluation(ngram, corpus, starts, window, keyboard)
        yardstick += predicted.typed_over(sum(keys_without(word) for word in words[window:]))
    return typed, yardstick


def kneser_ney_heldout(ngram: KneserNey, corpus: Corpus, window: int) -> Evaluation:
    """The yardstick: a 4-gram counted on the training part, on the same test windows (it reads
    their last 3 words), measured as the runtime measures a model."""
    return ngram_evaluation(ngram, corpus, corpus.starts(window, TEST), window)


def ngram_evaluation(
    ngram: KneserNey, corpus: Corpus, starts: np.ndarray, window: int, keyboard: Keyboard | None = None
) -> Evaluation:
    """The 4-gram's figures on the windows that begin at `starts`, a chunk at a time, so that no
    [windows, vocab] array is ever made, however long the part."""
    chunk = max(1, min(8192, 2**25 // len(corpus.vocabulary)))  # at most 2^25 probabilities, 128 MiB
    total = NOTHING
    for first in range(0, len(starts), chunk):
        rows = corpus.ids[starts[first : first + chunk, None] + np.arange(window + 1)]  # [chunk, window + 1]
        scores = ngram.distributions(rows[:, :window]).dense()  # float32 [chunk, vocab]
        total += evaluation_of(np.log(scores, out=scores), rows[:, window], corpus.unknown_id, keyboard)
    return total


def table(rows: list[dict]) -> str:
    header = ("corpus", "preset", "windows", "words", "ceiling", "accuracy", "of ceiling", "steps", "train s",
              "evaluating", "export", "int8 drop", "fp32 µs", "int8 µs")  # fmt: skip
    cells = [
        (r["corpus"], r["preset"], f"{r['windows']:,}" if r["windows"] is not None else "—", f"{r['vocabulary']:,}",
         f"{100 * r['ceiling']:.1f}%" if r["ceiling"] is not None else "—", f"{100 * r['accuracy']:.1f}%",
         f"{100 * r['of_ceiling']:.1f}%" if r["of_ceiling"] is not None else "—", f"{r['steps']:,} of {r['budget']:,}",
         f"{r['train_seconds']:.1f}", f"{100 * r['eval_share']:.0f}%", r["export"],
         f"{r['int8_drop_points']:+.2f} pt", f"{r['fp32_word_us']:.1f}" if r["fp32_word_us"] else "—",
         f"{r['int8_word_us']:.1f}" if r["int8_word_us"] else "—")
        for r in rows
    ]  # fmt: skip
    held = [r for r in rows if "ngram_heldout" in r]
    if not held:
        return columns(header, cells)
    held_header = ("corpus", "preset", "held-out words", "int8 top-1", "int8 top-3", "int8 perplexity",
                   "4-gram top-1", "4-gram top-3", "4-gram perplexity", "perplexity ratio", "no cache", "top-3 gain",
                   "int8 keys saved", "learning", "4-gram keys saved")  # fmt: skip
    held_cells = [
        (r["corpus"], r["preset"], f"{r['heldout_words']:,}", f"{100 * r['int8_heldout']['top1']:.1f}%",
         f"{100 * r['int8_heldout']['top3']:.1f}%", f"{r['int8_heldout']['perplexity']:.2f}",
         f"{100 * r['ngram_heldout']['top1']:.1f}%", f"{100 * r['ngram_heldout']['top3']:.1f}%",
         f"{r['ngram_heldout']['perplexity']:.2f}", f"{r['perplexity_ratio']:.3f}",
         f"{r['perplexity_ratio_no_cache']:.3f}" if "perplexity_ratio_no_cache" in r else "—", f"{r['top3_points']:+.1f} pt",
         *(f"{100 * r[k]:.1f}%" if k in r else "—"
           for k in ("int8_keystrokes_saved", "int8_keystrokes_learning", "ngram_keystrokes_saved")))
        for r in held
    ]  # fmt: skip
    return columns(header, cells) + "\n\n" + columns(held_header, held_cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(CORPORA), action="append", help="a corpus; repeat for several")
    parser.add_argument(
        "--preset",
        choices=["auto", "predict", "memorize", "stream"],
        action="append",
        help="fable-train's choice (auto), or a preset; repeat for several",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.only or list(CORPORA):
            text = read_corpus(CORPORA[name])
            chosen = choose_preset(len(text.ids))[0]
            for preset in dict.fromkeys(chosen if p == "auto" else p for p in args.preset or ["auto"]):
                rows.append(measure(name, text, preset, device, Path(work) / preset))
                print(table(rows[-1:]), flush=True)
    print()
    print(table(rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": describe_machine(), "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
