"""Peak memory and time against corpus size (issue 27): does memory grow linearly, and do 10M
tokens tokenize and count within 3 GB?

    python bench/scale.py --sizes 0.25,1,2.2,10 --out bench/results/scale-MACHINE

For each size, in millions of tokens, a text of the machine's own documentation
(tools/make_big_corpus.py, kept under --cache) is measured by processes of their own, so that
each peak resident memory (the kernel's high-water mark) is that of one stage:
- read + count: read_corpus, load_corpus as `predict` loads it (window 6, min-count 2, 10% held
  out), and the Kneser-Ney 4-gram counted on its training part; the high-water mark is reset
  between the parts, so each part's peak is its own (with what the parts before it still hold).
- train (sizes up to --train-max): fable-train with every default but --steps, twice. With
  `--steps 2 --eval-every 1` it is stopped as its first metrics line appears: seconds from the
  process's start to its first step (less the evaluation before that line) and the peak so far.
  With `--steps K --eval-every K/2` it runs to the end: the whole process's peak, seconds a step,
  a sampled evaluation (step K/2) and the final one (step K), and from them the share of a run of
  the preset's whole budget that would be spent evaluating.
Writes OUT.md (the tables), OUT.json (every figure, and the machine) and OUT.png (peak memory
against tokens, with least-squares lines).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20
LIMIT_GB = 3.0
CHILD_ENV = os.environ | {"OPENBLAS_NUM_THREADS": "1"}
STAGES = (("read + count", "count"), ("fable-train", "train"))  # a line of the plot each, and the rows' key


# -- in the child: one stage, reported as a JSON line ----------------------------------------------


def _status(field: str) -> int:
    """A /proc/self/status figure (VmHWM: the peak resident memory, VmRSS: now), in bytes."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def _reset_peak() -> None:
    """Start the high-water mark again from the memory held now (Linux 4.0 and later)."""
    Path("/proc/self/clear_refs").write_text("5")


def count_stage(path: Path) -> dict[str, Any]:
    """read_corpus, load_corpus and KneserNey on `path`, as fable-train's predict preset does them,
    each part's seconds and peak resident bytes."""
    from fable.training.corpus import load_corpus, read_corpus
    from fable.training.ngram import KneserNey

    figures: dict[str, Any] = {"baseline_bytes": _status("VmRSS")}  # the interpreter, numpy and fable

    def part(name: str, started: float) -> None:
        figures[f"{name}_seconds"] = time.perf_counter() - started
        figures[f"{name}_peak_bytes"] = _status("VmHWM")
        _reset_peak()

    _reset_peak()
    started = time.perf_counter()
    text = read_corpus(path)
    part("read", started)
    started = time.perf_counter()
    corpus = load_corpus(text, window=6, min_count=2, holdout=0.1)
    part("load", started)
    figures |= {"tokens": len(text.ids), "words": len(text.words), "vocabulary": len(corpus.vocabulary),
                "windows": len(corpus.starts(6)), "heldout_windows": len(corpus.starts(6, "heldout"))}  # fmt: skip
    del text  # fable-train lets go of the text before it counts (training/cli.py)
    started = time.perf_counter()
    teacher = KneserNey(corpus.segments(), len(corpus.vocabulary))
    part("count", started)
    figures["ngrams"] = {n: len(keys) for n, keys in teacher.keys.items()}
    return figures


# -- in the parent ---------------------------------------------------------------------------------


def measured(command: list[str], log: Path, until: Path | None = None) -> dict[str, float]:
    """Run `command` (output to `log`): its seconds, CPU seconds and peak resident bytes (wait4),
    and with `until`, the seconds at which that file first held a whole line (`seen`), the process
    then killed. CPU seconds beside wall seconds tell a busy machine from a slow program."""
    seen = None
    with open(log, "w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=CHILD_ENV, cwd=ROOT)
        while True:
            pid, status, usage = os.wait4(process.pid, 0 if until is None else os.WNOHANG)
            if pid:
                break
            if seen is None and until.exists() and until.read_text().endswith("\n"):
                seen = time.perf_counter() - started
                process.kill()
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 and seen is None:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{log.read_text()[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_bytes": usage.ru_maxrss * 1024, "seen": seen}  # KiB


def make_corpus(tokens: int, cache: Path) -> tuple[Path, str]:
    """The documentation text of `tokens` tokens, made once per size under `cache`, and what
    tools/make_big_corpus.py said of it (files, bytes, tokens, and whether it repeated)."""
    path, about = cache / f"docs-{tokens}.txt", cache / f"docs-{tokens}.about"
    if not (path.exists() and about.exists()):
        made = subprocess.run([sys.executable, str(ROOT / "tools" / "make_big_corpus.py"), "--tokens", str(tokens),
                               "--out", str(path)], check=True, env=CHILD_ENV, capture_output=True, text=True)  # fmt: skip
        about.write_text(made.stdout)
    print(about.read_text(), end="", flush=True)
    return path, about.read_text().strip()


def measure_count(path: Path, work: Path) -> dict[str, Any]:
    process = measured([sys.executable, str(Path(__file__).resolve()), "--count-stage", str(path)], work / "count.log")
    figures = json.loads((work / "count.log").read_text().splitlines()[-1])
    return count_peak(figures | {"process_seconds": process["seconds"], "cpu_seconds": process["cpu_seconds"],
                                 "peak_bytes": process["peak_bytes"]})  # fmt: skip


def count_peak(figures: dict[str, Any]) -> dict[str, Any]:
    """The stage's peak: the largest of its parts'. The high-water mark is reset between the parts,
    so the process's own peak (`peak_bytes` as measured) is only that of the last part."""
    parts = max(figures[f"{part}_peak_bytes"] for part in ("read", "load", "count"))
    return figures | {"peak_bytes": max(parts, figures["peak_bytes"])}


def measure_train(path: Path, work: Path, steps: int, windows: int) -> dict[str, Any]:
    """fable-train to its first step, then for `steps` steps; see the module's docstring."""
    from fable.training.config import PRESETS
    from fable.training.metrics import read_metrics

    train = str(Path(sys.executable).parent / "fable-train")
    first, whole = work / "first", work / "whole"
    to_first = measured([train, "--corpus", str(path), "--out", str(first), "--steps", "2", "--eval-every", "1",
                         "--no-progress"], work / "first.log", until=first / "metrics.jsonl")  # fmt: skip
    first_row = read_metrics(first / "metrics.jsonl")[0]
    half = steps // 2
    run = measured([train, "--corpus", str(path), "--out", str(whole), "--steps", str(steps),
                    "--eval-every", str(half), "--no-progress"], work / "whole.log")  # fmt: skip
    sampled, last = read_metrics(whole / "metrics.jsonl")
    step_seconds = ((last["elapsed"] - last["eval_seconds"]) - (sampled["elapsed"] - sampled["eval_seconds"])) / (steps - half)  # fmt: skip
    setup = sampled["elapsed"] - sampled["eval_seconds"] - half * step_seconds  # the model, the teacher, the measures
    final_eval = last["eval_seconds"] - sampled["eval_seconds"]
    preset = PRESETS["predict"].for_corpus(windows)  # the budget a run with every default would have
    evaluating = preset.steps // preset.eval_every * sampled["eval_seconds"] + final_eval
    return {
        "first_step_seconds": to_first["seen"] - first_row["eval_seconds"],
        "first_step_peak_bytes": to_first["peak_bytes"], "first_step_cpu_seconds": to_first["cpu_seconds"],
        "steps": steps, "seconds": run["seconds"], "cpu_seconds": run["cpu_seconds"], "peak_bytes": run["peak_bytes"],
        "step_seconds": step_seconds,
        "setup_seconds": setup, "sampled_eval_seconds": sampled["eval_seconds"], "final_eval_seconds": final_eval,
        "eval_share": last["eval_seconds"] / last["elapsed"],
        "budget_steps": preset.steps, "budget_eval_every": preset.eval_every,
        "budget_eval_share": evaluating / (setup + preset.steps * step_seconds + evaluating),
    }  # fmt: skip


def points(rows: list[dict[str, Any]], stage: str) -> tuple[list[int], list[int]]:
    """Tokens and the peak resident bytes of one stage ("count" or "train"), where it was measured."""
    measured_rows = [row for row in rows if stage in row]
    return [row["count"]["tokens"] for row in measured_rows], [row[stage]["peak_bytes"] for row in measured_rows]


def fit(tokens: list[int], peaks: list[int]) -> dict[str, float] | None:
    """The least-squares line of peak bytes against tokens: slope (bytes a token), intercept, R²."""
    if len(tokens) < 2:
        return None
    x, y = np.array(tokens, float), np.array(peaks, float)
    slope, intercept = np.polyfit(x, y, 1)
    residual, total = ((y - (slope * x + intercept)) ** 2).sum(), ((y - y.mean()) ** 2).sum()
    return {"bytes_per_token": slope, "intercept_bytes": intercept, "r2": 1 - residual / total if total else 1.0}


def machine() -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    memory = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    return {"cpu": model.group(1) if model else None, "cores": os.cpu_count(),
            "memory_gb": round(int(memory.group(1)) / 2**20, 1), "system": os.uname().release}  # fmt: skip


def table(rows: list[dict[str, Any]], fits: dict[str, Any], about: dict[str, Any]) -> str:
    def mb(value: float) -> str:
        return f"{value / MB:,.0f}"

    lines = [f"# Peak memory and time against corpus size: {about['machine']['cpu']}, {about['machine']['cores']} cores",
             "", f"`{about['command']}`; text: tools/make_big_corpus.py (this machine's /usr/share/doc). "
             f"Load average before and after: {about['load_average'][0]:.1f}, {about['load_average'][1]:.1f} "
             "(seconds are those of a quiet machine only when both are well under the cores).", "",
             "## Read + count (read_corpus, load_corpus, KneserNey), one process", "",
             "| tokens | vocabulary | text MB | read s | read MB | load s | load MB | count s | count MB | peak MB | MB per M tokens |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for row in rows:
        c = row["count"]
        per = (c["peak_bytes"] - c["baseline_bytes"]) / MB / (c["tokens"] / 1e6)
        lines.append(f"| {c['tokens']:,} | {c['vocabulary']:,} | {row['text_bytes'] / MB:.1f} "
                     + "".join(f"| {c[p + '_seconds']:.1f} | {mb(c[p + '_peak_bytes'])} " for p in ("read", "load", "count"))
                     + f"| {mb(c['peak_bytes'])} | {per:,.0f} |")  # fmt: skip
    lines += ["", "MB per M tokens: (peak − the process's memory before reading) / millions of tokens."]
    trained = [row for row in rows if "train" in row]
    if trained:
        steps = trained[0]["train"]["steps"]
        lines += ["", "## fable-train, every default but --steps", "",
                  f"| tokens | first step s | peak MB by then | peak MB, {steps} steps | s a step | sampled eval s "
                  f"| final eval s | eval share, {steps} steps | eval share, whole budget |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for row in trained:
            t = row["train"]
            lines.append(f"| {row['count']['tokens']:,} | {t['first_step_seconds']:.1f} | {mb(t['first_step_peak_bytes'])} "
                         f"| {mb(t['peak_bytes'])} | {t['step_seconds']:.2f} | {t['sampled_eval_seconds']:.1f} "
                         f"| {t['final_eval_seconds']:.1f} | {t['eval_share']:.0%} "
                         f"| {t['budget_eval_share']:.0%} of {t['budget_steps']:,} steps |")  # fmt: skip
        lines += ["", "Whole budget: the preset's steps for the corpus, a sampled evaluation every "
                  f"{trained[0]['train']['budget_eval_every']} and the final one, from the figures measured here."]  # fmt: skip
    largest = rows[-1]["count"]
    within = "within" if largest["peak_bytes"] <= LIMIT_GB * 2**30 else "over"
    lines += ["", f"{largest['tokens']:,} tokens read and counted in a peak of {mb(largest['peak_bytes'])} MB: "
              f"{within} {LIMIT_GB:g} GB (of 2³⁰ bytes).", "", "## Least-squares lines of peak memory against tokens", ""]  # fmt: skip
    for name, line in fits.items():
        lines.append(f"- {name}: " + (f"{line['bytes_per_token']:.1f} bytes a token + {mb(line['intercept_bytes'])} MB, "
                                      f"R² {line['r2']:.4f}" if line else "one size only"))  # fmt: skip
    lines += ["", "## The texts", "", *(f"- {row['text']}" for row in rows)]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], fits: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for (name, key), marker in zip(STAGES, "os"):
        tokens, peaks = points(rows, key)
        if not tokens:
            continue
        x = np.array(tokens, float)
        axes.plot(x / 1e6, np.array(peaks) / 2**30, marker, label=name)
        if line := fits[name]:
            ends = np.array([0, x.max()])
            axes.plot(ends / 1e6, (line["bytes_per_token"] * ends + line["intercept_bytes"]) / 2**30, "--",
                      label=f"{line['bytes_per_token']:.0f} bytes/token, R² {line['r2']:.3f}")  # fmt: skip
    axes.axhline(LIMIT_GB, color="grey", lw=0.8, ls=":", label=f"{LIMIT_GB:g} GB")
    axes.set(
        xlabel="corpus tokens (millions)",
        ylabel="peak resident memory (GB of 2³⁰ bytes)",
        title="fable: memory against corpus size",
    )
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.25,1,2.2,10", help="millions of tokens, comma-separated")
    parser.add_argument("--out", type=Path, help="OUT.md, OUT.json and OUT.png (default: bench/results/scale-local)")
    parser.add_argument("--train-max", type=float, default=2.2, help="train at sizes up to this many millions")
    parser.add_argument("--steps", type=int, default=20, help="steps of the measured training run")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "fable-scale", help="the texts")
    parser.add_argument("--render", action="store_true", help="write OUT.md and OUT.png again from OUT.json")
    parser.add_argument("--count-stage", type=Path, help=argparse.SUPPRESS)  # in the child
    args = parser.parse_args()
    if args.count_stage:
        print(json.dumps(count_stage(args.count_stage)))
        return
    out = args.out or ROOT / "bench" / "results" / "scale-local"
    if args.render:
        recorded = json.loads(Path(f"{out}.json").read_text())
        for row in recorded["rows"]:
            row["count"] = count_peak(row["count"])
        write(out, recorded["rows"], {key: recorded[key] for key in ("command", "machine", "load_average")})
        return
    sizes = [float(size) for size in args.sizes.split(",")]
    rows, started_load = [], os.getloadavg()[0]
    for size in sizes:
        path, made = make_corpus(round(size * 1e6), args.cache.resolve())
        work = Path(tempfile.mkdtemp(prefix="fable-scale-"))
        try:
            row = {"millions": size, "text": made, "text_bytes": path.stat().st_size}
            row["count"] = measure_count(path, work)
            print(f"{size}M: read + count peak {row['count']['peak_bytes'] / MB:,.0f} MB", flush=True)
            if size <= args.train_max:
                row["train"] = measure_train(path, work, args.steps, row["count"]["windows"])
                print(f"{size}M: first step after {row['train']['first_step_seconds']:.1f} s, "
                      f"train peak {row['train']['peak_bytes'] / MB:,.0f} MB", flush=True)  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)
        rows.append(row)
    about = {
        "command": " ".join(["python", "bench/scale.py", *sys.argv[1:]]),
        "machine": machine(),
        "load_average": [started_load, os.getloadavg()[0]],  # 1-minute, before and after: was it quiet?
    }
    write(out, rows, about)


def write(out: Path, rows: list[dict[str, Any]], about: dict[str, Any]) -> None:
    """OUT.json, OUT.md and OUT.png of the measured rows, with the least-squares lines."""
    fits = {name: fit(*points(rows, key)) for name, key in STAGES}
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(about | {"fits": fits, "rows": rows}, indent=2) + "\n")
    Path(f"{out}.md").write_text(table(rows, fits, about))
    plot(rows, fits, Path(f"{out}.png"))
    print(Path(f"{out}.md").read_text())


if __name__ == "__main__":
    main()
