"""The default preset, the export and the runtime on the fable and on the two real corpora.

    OPENBLAS_NUM_THREADS=1 python bench/corpora.py [--only NAME] [--device auto|cpu|cuda]

For each corpus it trains the default preset from scratch, exports with the default guards and
times a sampled word with the runtime, then prints one row: windows, vocabulary, ceiling,
accuracy and its share of the ceiling, steps taken of the budget, training wall time and the
share of it spent evaluating, the export's verdict, int8's accuracy drop, and per-word µs for fp32 and int8. The rows also go to bench/results/local/corpora.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import fable
from fable.benchmark import word_gaps_us
from fable.cli import columns
from fable.contract import FILE_NAMES, REPORT_NAME
from fable.machine import describe as describe_machine
from fable.training.config import PRESETS
from fable.training.corpus import fable_path, load_corpus
from fable.training.export.exporter import ExportOptions, export_checkpoint
from fable.training.export.guards import ExportGuardError
from fable.training.train import resolve_device, train

ROOT = Path(__file__).resolve().parents[1]
CORPORA = {
    "fable": fable_path(),
    "gpl-3": ROOT / "training" / "corpora" / "gpl-3.txt",
    "python-reference": ROOT / "training" / "corpora" / "python-reference.txt",
}
RESULTS = ROOT / "bench" / "results" / "local" / "corpora.json"


def measure(name: str, path: Path, device: str, work: Path) -> dict:
    preset = PRESETS["default"]
    corpus = load_corpus(path, preset.model.window)
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
    report = json.loads((out / REPORT_NAME).read_text())
    int8 = report["files"][FILE_NAMES["int8"]]
    words = {}
    for quantization in ("fp32", "int8"):
        file = out / FILE_NAMES[quantization]
        if verdict == "passed":
            model = fable.Model(file)
            words[quantization] = float(np.median(word_gaps_us(model, fable.Sampling(1.0, seed=0), 200, 2000)))
    ev, best = result.evaluation, result.ceiling
    return {
        "corpus": name, "windows": ev.windows, "vocabulary": len(corpus.vocabulary), "ceiling": best.accuracy,
        "accuracy": ev.accuracy, "of_ceiling": ev.correct / best.correct, "steps": result.checkpoint.step,
        "budget": result.checkpoint.config.steps, "decay": result.schedule.reason,
        "eval_share": result.eval_seconds / result.wall_seconds,
        "train_seconds": seconds, "device": device, "export": verdict, "int8_drop_points": int8["accuracy_drop_points"],
        "fp32_word_us": words.get("fp32"), "int8_word_us": words.get("int8"),
    }  # fmt: skip


def table(rows: list[dict]) -> str:
    header = ("corpus", "windows", "words", "ceiling", "accuracy", "of ceiling", "steps", "train s", "evaluating",
              "export", "int8 drop", "fp32 µs", "int8 µs")  # fmt: skip
    cells = [
        (r["corpus"], f"{r['windows']:,}", f"{r['vocabulary']:,}", f"{100 * r['ceiling']:.1f}%",
         f"{100 * r['accuracy']:.1f}%", f"{100 * r['of_ceiling']:.1f}%", f"{r['steps']:,} of {r['budget']:,}",
         f"{r['train_seconds']:.1f}", f"{100 * r['eval_share']:.0f}%", r["export"],
         f"{r['int8_drop_points']:+.2f} pt", f"{r['fp32_word_us']:.1f}" if r["fp32_word_us"] else "—",
         f"{r['int8_word_us']:.1f}" if r["int8_word_us"] else "—")
        for r in rows
    ]  # fmt: skip
    return columns(header, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(CORPORA), action="append", help="a corpus; repeat for several")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.only or list(CORPORA):
            rows.append(measure(name, CORPORA[name], device, Path(work)))
            print(table(rows[-1:]), flush=True)
    print()
    print(table(rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": describe_machine(), "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
