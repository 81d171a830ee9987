"""Fixtures for the latency suite, and the summary it leaves in bench/results/local/.

Run: OPENBLAS_NUM_THREADS=1 pytest bench --benchmark-only
Every figure is the median of its benchmark; ratios compare benchmarks of the same run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import fable
from fable.benchmark import tune
from fable.contract import FILE_NAMES
from fable.machine import describe as describe_machine
from fable.tuning import CACHE_ENV

# Each run's summary goes here, untracked (see .gitignore); results worth keeping are copied to
# bench/results/ under a name that says which machine made them.
LATEST = Path(__file__).parent / "results" / "local" / "latency.json"

# (faster, slower, what the ratio compares): each a ratio of medians from the same run.
COMPARISONS = [
    ("test_word[int8-sampled-step]", "test_word[int8-sampled-window]", "int8 fast decode vs plain window graph"),
    ("test_word[fp32-sampled-step]", "test_word[fp32-sampled-window]", "fp32 fast decode vs plain window graph"),
    ("test_word[int8-sampled-step]", "test_torch_word[onednn-sampled]", "int8 fast decode vs torch, oneDNN on"),
    ("test_word[int8-sampled-step]", "test_torch_word[no-onednn-sampled]", "int8 fast decode vs torch, oneDNN off"),
    ("test_tuned_word", "test_word[int8-sampled-step]", "after fable-bench --tune vs default settings (int8 file)"),
    ("test_word[int4-sampled-step]", "test_word[int8-sampled-step]", "int4 vs int8, default settings"),
    *(
        (
            f"test_word[{q}-sampled-step]",
            f"test_typing_suggest[{q}]",
            f"{q}: a generated word vs a typing suggest (the target: at most 1.5x)",
        )
        for q in ("int8", "fp32", "int4")
    ),
    *(
        (
            f"test_learning_word[{which}]",
            f"test_learning_typing[{which}-{learning}]",
            f"{which}, int8: a generated word vs a typing suggest, {learning} (the target: at most 1.5x)",
        )
        for which in ("fable", "gpl-3")
        for learning in ("alone", "learning")
    ),
    *(
        (
            f"test_learning_word[{which}]",
            f"test_learning_letter[{which}-{learning}]",
            f"{which}, int8: a generated word vs a typing suggest before each letter, {learning}",
        )
        for which in ("fable", "gpl-3")
        for learning in ("alone", "learning")
    ),
    *(
        (
            f"test_serve_suggest[hypercorn-{n}]",
            f"test_serve_suggest[http.server-{n}]",
            f"fable-serve /suggest, {n} client(s) kept alive: hypercorn vs the http.server it replaced",
        )
        for n in (1, 8)
    ),
    *(
        (
            f"test_stream_{call}[window-6]",
            f"test_stream_{call}[{kind}]",
            f"{what}: whole-text model, {said}, vs window-6",
        )
        for call, what in (("word", "a generated word"), ("typing", "a typing suggestion"))
        for kind, said in (("stream-cache", "cache on"), ("stream-alone", "cache off"))
    ),
    *(
        (
            f"test_eight_prompts[{q}-batch]",
            f"test_eight_prompts[{q}-one-by-one]",
            f"{q}: 8 prompts batched vs one by one",
        )
        for q in ("int8", "fp32", "int4")
    ),
]


@pytest.fixture(scope="session")
def shipped() -> dict[str, Path]:
    folder = fable.default_model_path().parent
    return {quantization: folder / name for quantization, name in FILE_NAMES.items()}


@pytest.fixture(scope="session")
def tune_cache(tmp_path_factory) -> Path:
    """fable-bench --tune of the shipped default on this machine, into a cache folder of this run
    only: the tests that want it point FABLE_CACHE_DIR there, no other test sees it."""
    pytest.importorskip("onnxruntime", reason="--tune times onnxruntime's settings")
    cache = tmp_path_factory.mktemp("tune-cache")
    saved = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(cache)
    try:
        tune(fable.default_model_path())
    finally:
        if saved is None:
            os.environ.pop(CACHE_ENV)
        else:
            os.environ[CACHE_ENV] = saved
    return cache


@pytest.fixture(scope="session")
def window_files(shipped, tmp_path_factory) -> dict[str, Path]:
    """The plain window graphs, built by the exporter from the shipped fp32 file's weights."""
    pytest.importorskip("onnx", reason="the window-graph baseline needs the exporter (pip install '.[train]')")
    from fable.training.export.exporter import window_baseline

    fp32, int8 = window_baseline(shipped["fp32"], tmp_path_factory.mktemp("window"))
    return {"fp32": fp32, "int8": int8}


def pytest_sessionfinish(session: pytest.Session) -> None:
    bench = getattr(session.config, "_benchmarksession", None)
    if bench is None or not bench.benchmarks:
        return
    medians = {b.name: b.stats.median for b in bench.benchmarks if b.stats}
    ratios = [
        {"what": what, "faster": fast, "slower": slow, "ratio": medians[slow] / medians[fast]}
        for fast, slow, what in COMPARISONS
        if fast in medians and slow in medians
    ]
    window = {name: median for name, median in medians.items() if name.startswith("test_window_setting[")}
    if window and "test_tuned_word" in medians:  # the plain decode at its own best setting, as the tune would pick
        best = min(window, key=window.get)
        ratios.append({"what": "tuned int8 fast decode vs the plain int8 window graph at its best setting",
                       "faster": "test_tuned_word", "slower": best, "ratio": window[best] / medians["test_tuned_word"]})  # fmt: skip
    throughput = {  # benchmarks whose round is a batch of requests
        b.name: b.extra_info["requests"] / b.stats.median
        for b in bench.benchmarks
        if b.stats and "requests" in b.extra_info
    }
    settings = {b.name: b.extra_info["setting"] for b in bench.benchmarks if "setting" in b.extra_info}
    summary = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "machine": describe_machine(),
        "median_us": {name: 1e6 * value for name, value in sorted(medians.items())},
        "requests_per_second": throughput,
        "ratios": ratios,
    }
    LATEST.parent.mkdir(parents=True, exist_ok=True)
    LATEST.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    session.config._fable_summary = summary


def pytest_terminal_summary(terminalreporter, config) -> None:
    summary = getattr(config, "_fable_summary", None)
    if not summary:
        return
    write = terminalreporter.write_line
    write("")
    write(f"fable latency, medians of this run ({LATEST}):")
    for name, micros in summary["median_us"].items():
        write(f"  {name:45s} {micros:10.1f} µs")
    for name, rate in summary["requests_per_second"].items():
        write(f"  {name:45s} {rate:10.1f} requests/s")
    for name, setting in summary["settings"].items():
        write(f"  {name}: {setting}")
    for ratio in summary["ratios"]:
        write(f"  {ratio['what']}: {ratio['ratio']:.2f}x")
