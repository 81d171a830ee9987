"""Trained window-model checkpoints on one held-out part, beside the 4-gram's, without exporting:
how a recipe for a corpus of millions of words is chosen (validation) and reported (test).

    OPENBLAS_NUM_THREADS=1 python -m bench.heldout_figures --corpus TEXT --part validation RUN [RUN ...]

Each RUN is a fable-train output folder (its checkpoint.pt). The corpus is read again as that run
read it (its settings; the file must be the one it trained on), and its model (fp32, torch) reads
the windows the run's last evaluation reads: of the part, all of them up to the run's
final_windows, an even sample beyond (training.train.Measures). A run that stops on validation
holds the weights of its best step; one not yet over is refused. Beside it, an interpolated
modified Kneser-Ney 4-gram counted on the same training part reads the same windows (their last
3 words). Read the test part once, for the recipe that the validation part chose: a figure from
the part that chose is tuned to it. An exported file's figures (fable-export, bench/corpora.py)
are int8's; these are the checkpoint's.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from fable.errors import FableError, UsageError
from fable.machine import describe as describe_machine
from fable.training.checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint
from fable.training.corpus import Corpus, load_corpus, read_corpus
from fable.training.evaluate import held_out
from fable.training.ngram import KneserNey
from fable.training.split import gather
from fable.training.train import final_starts

from .corpora import ngram_evaluation

PARTS = ("validation", "test")


def figures(run: Path, text_path: Path, part: str) -> dict:
    """One finished run's kept weights and the 4-gram on the same windows of `part`."""
    checkpoint = load_checkpoint(run / CHECKPOINT_NAME)
    config = checkpoint.config
    if checkpoint.streams:
        raise UsageError(f"{run}: a stream model reads blocks whole; its run's summary gives its held-out figures")
    if checkpoint.best_state is not None:  # a run that keeps its best weights holds them aside until it ends
        raise UsageError(f"{run}: the run is not over, so its checkpoint's weights are not the ones it keeps")
    window = config.model.window
    corpus, ngram = counted(text_path, config.tokenizer_version, window, config.min_count, config.max_vocab,
                            config.holdout)  # fmt: skip
    if corpus.sha256 != checkpoint.corpus_sha256:
        raise UsageError(f"{run} trained on another text than {text_path}")
    starts = final_starts(corpus, config, part)  # what the run's last evaluation read
    model = checkpoint.build_model()
    found = held_out(model, *gather(corpus.ids, starts, window), corpus.unknown_id)
    ngram = ngram_evaluation(ngram, corpus, starts, window)
    return {
        "run": str(run), "part": part, "step": kept_step(checkpoint), "steps": checkpoint.step, "hidden": config.model.hidden,
        "dropout": config.dropout, "seconds": checkpoint.elapsed, "words": found.words,
        "model": found.as_dict(), "ngram": ngram.as_dict(), "perplexity_ratio": found.perplexity / ngram.perplexity,
        "top1_points": 100 * (found.top1_rate - ngram.top1_rate), "top3_points": 100 * (found.top3_rate - ngram.top3_rate),
    }  # fmt: skip


@functools.cache  # runs of trials on one text read and count it once
def counted(text_path: Path, tokenizer_version: int, window: int, min_count: int, max_vocab: int | None,
            holdout: float) -> tuple[Corpus, KneserNey]:  # fmt: skip
    """The corpus as a run with these settings read it, and the 4-gram counted on its training part."""
    corpus = load_corpus(read_corpus(text_path, tokenizer_version), window, tokenizer_version, min_count, max_vocab,
                         holdout)  # fmt: skip
    return corpus, KneserNey(corpus.segments(), len(corpus.vocabulary))


def kept_step(checkpoint: Checkpoint) -> int:
    """The step whose weights a run kept: its best on validation where it stops on it (KeepBest)."""
    return checkpoint.schedule_state.get("keep_best", {}).get("best_step") or checkpoint.step


def line(row: dict) -> str:
    model, ngram = row["model"], row["ngram"]
    return (f"{row['run']}: {row['part']}, step {row['step']:,} of {row['steps']:,} ({row['seconds']:.0f} s), 2x{row['hidden']}, "
            f"dropout {row['dropout']:g}, {row['words']:,} words: top-1 {100 * model['top1']:.1f}%, "
            f"top-3 {100 * model['top3']:.1f}%, perplexity {model['perplexity']:.2f}; 4-gram {100 * ngram['top1']:.1f}%, "
            f"{100 * ngram['top3']:.1f}%, {ngram['perplexity']:.2f}; ratio {row['perplexity_ratio']:.3f}, "
            f"top-1 {row['top1_points']:+.1f} pt, top-3 {row['top3_points']:+.1f} pt")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="fable-train output folders")
    parser.add_argument("--corpus", type=Path, required=True, help="the text the runs trained on")
    parser.add_argument("--part", choices=PARTS, required=True)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        try:
            rows.append(figures(run, args.corpus, args.part))
        except FableError as error:
            parser.exit(2, f"heldout_figures: error: {error}\n")
        print(line(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": describe_machine(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
