"""Fixtures for the latency suite, and the summary it leaves in bench/results/.

Run: OPENBLAS_NUM_THREADS=1 pytest bench --benchmark-only
Every figure is the median of its benchmark; ratios compare benchmarks of the same run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import runtime
from runtime.benchmark import machine

RESULTS = Path(__file__).parent / "results"

# (faster, slower, target): the claims, each a ratio of medians from this run.
CLAIMS = [
    ("test_word[int8-sampled-step]", "test_word[int8-sampled-window]", 2.0),
    ("test_word[int8-greedy-step]", "test_word[int8-greedy-window]", 2.0),
    ("test_word[fp32-sampled-step]", "test_word[fp32-sampled-window]", 1.7),
    ("test_word[fp32-greedy-step]", "test_word[fp32-greedy-window]", 1.7),
    ("test_word[int8-sampled-step]", "test_torch_word[onednn-sampled]", 50.0),
    ("test_word[int8-sampled-step]", "test_torch_word[no-onednn-sampled]", 5.0),
    ("test_word[int8-greedy-step]", "test_torch_word[onednn-greedy]", 50.0),
    ("test_word[int8-greedy-step]", "test_torch_word[no-onednn-greedy]", 5.0),
]


@pytest.fixture(scope="session")
def shipped() -> dict[str, Path]:
    folder = runtime.default_model_path().parent
    return {"fp32": folder / "fable.onnx", "int8": folder / "fable.int8.onnx"}


@pytest.fixture(scope="session")
def window_files(shipped, tmp_path_factory) -> dict[str, Path]:
    """The plain window graphs, built by the exporter from the shipped fp32 file's weights."""
    pytest.importorskip("onnx", reason="the window-graph baseline needs the exporter (pip install '.[train]')")
    from training.export.exporter import window_baseline

    fp32, int8 = window_baseline(shipped["fp32"], tmp_path_factory.mktemp("window"))
    return {"fp32": fp32, "int8": int8}


def pytest_sessionfinish(session: pytest.Session) -> None:
    bench = getattr(session.config, "_benchmarksession", None)
    if bench is None or not bench.benchmarks:
        return
    medians = {b.name: b.stats.median for b in bench.benchmarks if b.stats}
    claims = [
        {"faster": fast, "slower": slow, "ratio": medians[slow] / medians[fast], "target": target,
         "met": medians[slow] / medians[fast] >= target}
        for fast, slow, target in CLAIMS
        if fast in medians and slow in medians
    ]  # fmt: skip
    summary = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "median_us": {name: 1e6 * value for name, value in sorted(medians.items())},
        "claims": claims,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    session.config._fable_summary = summary


def pytest_terminal_summary(terminalreporter, config) -> None:
    summary = getattr(config, "_fable_summary", None)
    if not summary:
        return
    write = terminalreporter.write_line
    write("")
    write("fable latency, medians of this run (bench/results/latest.json):")
    for name, micros in summary["median_us"].items():
        write(f"  {name:45s} {micros:10.1f} µs")
    for claim in summary["claims"]:
        mark = "met" if claim["met"] else "NOT MET"
        write(f"  {claim['slower']} / {claim['faster']} = {claim['ratio']:.2f}x (target {claim['target']}x: {mark})")
