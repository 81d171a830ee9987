"""fable-bench writes what it promises (the timings themselves belong to bench/, not to tests)."""

from __future__ import annotations

import json

from fable.benchmark import BenchResult

from .helpers import SHIPPED, assert_clean_failure, invoke, run_command


def test_fable_bench_json_holds_every_field(tmp_path):
    """The one run of the installed fable-bench script."""
    path = tmp_path / "bench.json"
    result = run_command("fable-bench", "--words", "50", "--json", str(path),
                         "-m", str(SHIPPED / "fable.int8.onnx"), "-m", str(SHIPPED / "fable.onnx"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(path.read_text())
    assert set(payload) == {"machine", "settings", "results"}
    assert {"cpu", "arch", "cores", "onnxruntime", "numpy", "python"} <= set(payload["machine"])
    assert [r["quantization"] for r in payload["results"]] == ["int8", "fp32"]
    for row in payload["results"]:
        assert set(row) == set(BenchResult.__dataclass_fields__)
        assert row["words"] == 50 and row["threads"] == 1
        assert 0 < row["word_p50_us"] <= row["word_p90_us"] <= row["word_p99_us"]
        assert row["load_ms"] > 0 and row["first_word_ms"] > 0 and row["peak_rss_mb"] > 0
        assert row["words_per_second"] == 1e6 / row["word_p50_us"]
    for header in ("load ms", "first word ms", "word p50 µs", "p90 µs", "p99 µs", "words/s", "peak RSS MB"):
        assert header in result.stdout


def test_fable_bench_refuses_bad_flags(tmp_path):
    assert_clean_failure(invoke("fable-bench", "--words", "1"), 2, "--words")
    assert_clean_failure(invoke("fable-bench", "--json", str(tmp_path)), 2, "--json")
    assert_clean_failure(invoke("fable-bench", "-m", str(tmp_path / "no.onnx")), 1, "does not exist")
