"""fable-bench writes what it promises: sweeps, repetitions, every output format, the machine it ran
on, comparisons, the bandwidth floor, paced calls, the tune's two winners. (The timings themselves
belong to bench/, not to tests.)"""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import pytest

from fable.bench_report import compare, flatten
from fable.benchmark import Bandwidth, copy_rate, floor_us
from fable.cli.bench import parse_list
from fable.errors import UsageError
from fable.machine import describe
from fable.tuning import MAX_IDLE_CPU

from .helpers import ROOT, SHIPPED, assert_clean_failure, invoke, md_table, run_command

INT8, FP32 = str(SHIPPED / "fable.int8.onnx"), str(SHIPPED / "fable.onnx")
QUICK = ["-r", "2", "--words", "10", "--no-bandwidth"]


def test_lists_are_parsed_in_order_once_each_and_refused_with_the_flag():
    assert parse_list("--threads", "1, 2,4,2", int, 1, 8) == [1, 2, 4]
    with pytest.raises(UsageError, match="--threads values must be from 1 to 8, not 9"):
        parse_list("--threads", "1,9", int, 1, 8)
    with pytest.raises(UsageError, match="--batch takes values separated by commas; 'x' is not one"):
        parse_list("--batch", "1,x", int, 1, 64)
    assert_clean_failure(invoke("fable-bench", "--spin", "off,maybe"), 2, "--spin", "'maybe'")
    assert_clean_failure(invoke("fable-bench", "--backend", "tensorflow"), 2, "--backend")


def test_a_sweep_has_one_row_per_combination_with_its_repetitions(tmp_path):
    out = tmp_path / "run.json"
    result = invoke("fable-bench", *QUICK, "-m", f"{INT8},{FP32}", "--threads", "1,2", "--spin", "off,on",
                    "--batch", "1,2", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = md_table(result.stdout)
    combinations = {(r["model"], r["threads"], r["spin"], r["batch"]) for r in rows}
    assert len(rows) == len(combinations) == 2 * 2 * 2 * 2
    saved = json.loads(out.read_text())
    for row in saved["rows"]:
        assert len(row["samples"]) == 2 and all(len(s) == 10 for s in row["samples"])  # every sample kept
        medians = [statistics.median(s) for s in row["samples"]]  # the spread is the repetitions'
        assert row["step_us_mean"] == pytest.approx(statistics.fmean(medians), abs=0.01)
        assert row["step_us_sd"] == pytest.approx(statistics.stdev(medians), abs=0.01)
        assert row["step_us"] == pytest.approx(statistics.median(row["samples"][0] + row["samples"][1]), abs=0.01)
        assert row["words_per_second"] == pytest.approx(row["batch"] * 1e6 / row["step_us"])


def test_every_output_format_reads_back_and_says_what_it_ran_on(tmp_path):
    outputs = {form: invoke("fable-bench", *QUICK, "-m", INT8, "-o", form) for form in ("md", "csv", "json", "jsonl")}
    assert all(r.returncode == 0 for r in outputs.values()), {f: r.stderr for f, r in outputs.items()}
    assert [r["variant"] for r in md_table(outputs["md"].stdout)] == ["int8 step"]
    assert " cores, " in outputs["md"].stdout and "fable " in outputs["md"].stdout  # the machine heads the table
    (row,) = list(csv.DictReader(io.StringIO(outputs["csv"].stdout)))
    assert row["file.name"] == "fable.int8.onnx" and row["machine.fable"] and row["machine.cpu"]
    run = json.loads(outputs["json"].stdout)
    (line,) = [json.loads(text) for text in outputs["jsonl"].stdout.splitlines()]
    for record in (row, line):
        assert {"machine.cpu", "machine.cpu_flags", "machine.onnxruntime", "file.sha256", "backend", "step_us"} <= set(
            record
        )
    assert run["machine"]["cpu"] == line["machine.cpu"] and run["rows"][0]["file"]["sha256"] == line["file.sha256"]
    assert len(line["file.sha256"]) == 12 and line["file.bytes"] == Path(INT8).stat().st_size
    assert line["load_before"] is not None and line["load_after"] is not None


def fake_pi(root: Path) -> Path:
    """/proc and /sys as a Raspberry Pi 5 shows them."""
    (root / "proc" / "device-tree").mkdir(parents=True)
    (root / "proc" / "device-tree" / "model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    (root / "proc" / "cpuinfo").write_text(
        "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp "
        "asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
    )
    cpufreq = root / "sys" / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    cpufreq.mkdir(parents=True)
    (cpufreq / "scaling_governor").write_text("ondemand\n")
    (cpufreq / "scaling_cur_freq").write_text("2400000\n")
    return root


def test_the_fingerprint_of_a_raspberry_pi_from_its_proc_and_sys_files(tmp_path):
    commands = {"vcgencmd": "throttled=0x50000", "git": None}
    machine = describe(fake_pi(tmp_path), run=lambda command: commands.get(command[0]))
    assert machine["cpu"] == "Raspberry Pi 5 Model B Rev 1.0" and machine["cpu_flags"] == ["asimd", "asimddp"]
    assert (machine["governor"], machine["clock_mhz"]) == ("ondemand", 2400.0)
    assert machine["raspberry_pi"] == {"model": "Raspberry Pi 5 Model B Rev 1.0", "throttled": "0x50000"}
    assert machine["userland_bits"] in (32, 64) and machine["commit"] is None
    elsewhere = describe(tmp_path / "nothing", run=lambda command: None)  # no /proc at all: None, never an error
    assert elsewhere["raspberry_pi"] is None and elsewhere["governor"] is None and elsewhere["cpu_flags"] == []


def test_compare_shows_the_fields_that_differ_and_each_rows_speed(tmp_path):
    first = tmp_path / "xeon.json"
    assert invoke("fable-bench", *QUICK, "-m", INT8, "--threads", "1,2", "--out", str(first)).returncode == 0
    data = json.loads(first.read_text())
    data["machine"] |= {"cpu": "Cortex-A76", "cores": 4}
    for row in data["rows"]:
        row["step_us"] *= 4
    second = tmp_path / "pi5.json"
    second.write_text(json.dumps(data))
    table = compare([first, second])
    assert "| cpu |" in table and "Cortex-A76" in table and "| numpy |" not in table  # only what differs
    assert table.count("0.25x") == 2  # each row: the Pi's time against the first run's
    assert invoke("fable-bench", "compare", str(first), str(second)).stdout.strip() == table
    assert_clean_failure(invoke("fable-bench", "compare", str(first), str(tmp_path)), 2, "cannot read")


def test_compare_reads_the_runs_fable_bench_0_1_wrote(tmp_path):
    """bench/results keeps an AMD EPYC run of 0.1 ("results", no format): its rows are of format 1
    files, a step graph of one sequence, so they meet today's rows of such a file."""
    old = ROOT / "bench" / "results" / "fable-bench-amd-epyc.json"
    shutil.copy(ROOT / "tests" / "data" / "fable.v1.int8.onnx", tmp_path / "fable.int8.onnx")
    now = tmp_path / "now.json"
    assert invoke("fable-bench", *QUICK, "-m", str(tmp_path / "fable.int8.onnx"), "--out", str(now)).returncode == 0
    table = compare([old, now])
    assert "| fable | 0.1.0 | " in table  # the machine fields that differ, 0.1 naming fewer
    assert "| fable.int8.onnx | int8 step (one sequence) | onnxruntime | 1 | off | 1 | 60.4 | " in table
    assert invoke("fable-bench", "compare", str(old), str(now)).stdout.strip() == table


def test_the_floor_is_the_weights_read_at_the_bandwidth_of_the_level_they_fit_in():
    assert copy_rate(1_000_000, 0.001) == 2.0  # read and written: 2 GB in a second
    bandwidth = Bandwidth({1: 60.0, 4: 30.0, 64: 15.0})
    assert bandwidth.at(3_200_000) == 30.0 and bandwidth.at(500_000) == 60.0 and bandwidth.at(10**9) == 15.0
    assert floor_us(3_000_000, 30.0) == pytest.approx(100.0)  # 3 MB at 30 GB/s: 100 µs a step at the least
    result = invoke("fable-bench", "-r", "1", "--words", "10", "-m", INT8, "-o", "json")
    row = json.loads(result.stdout)["rows"][0]
    assert 3_000_000 < row["file"]["weight_bytes"] < Path(INT8).stat().st_size  # the embedding is gathered, not read
    assert row["of_floor"] == pytest.approx(row["floor_us"] / row["step_us"])


def test_paced_calls_report_their_latency_and_the_cpu_burnt_between_them():
    for call in ("suggest", "typing", "letter", "word"):
        result = invoke("fable-bench", *QUICK, "-m", INT8, "--pace", "5", "--calls", "4", "--call", call, "-o", "json")
        paced = json.loads(result.stdout)["rows"][0]["paced"]
        assert paced["call"] == call and len(paced["samples"]) == 4 and 0 < paced["p50_us"] <= paced["p90_us"]
        assert 0 <= paced["idle_cpu"] <= MAX_IDLE_CPU  # one thread, no spinning: the tune's own bound


def test_a_plain_sweep_leaves_the_tune_cache_alone_and_the_tune_records_a_winner_for_each_pattern(tmp_path):
    cache = tmp_path / "cache"
    env = {"FABLE_CACHE_DIR": str(cache)}
    assert invoke("fable-bench", *QUICK, "-m", INT8, "--threads", "1,2", "--spin", "off,on", env=env).returncode == 0
    assert not cache.exists()
    export = tmp_path / "export"
    shutil.copytree(SHIPPED, export, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
    tuned = invoke("fable-bench", "--tune", "-m", str(export / "fable.int8.onnx"), "--words", "30", "--pace", "2",
                   "--calls", "3", env=env)  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr
    entry = json.loads((cache / "tune.json").read_text())["entries"][0]
    assert set(entry["choices"]) == {"paced", "stream", "batch"}
    for measured in entry["files"]:
        assert measured["paced"]["idle_cpu"] >= 0 and measured["stream"]["micros"] > 0
    paced = next(f for f in entry["files"] if f["file"] == entry["choices"]["paced"])["paced"]
    assert paced["idle_cpu"] <= 0.1 or all(f["paced"]["idle_cpu"] > 0.1 for f in entry["files"])


def test_the_one_run_of_the_installed_fable_bench_script(tmp_path):
    result = run_command("fable-bench", *QUICK, "-m", INT8, "--plot", str(tmp_path / "plot.png"))
    if result.returncode == 2 and "matplotlib" in result.stderr:  # a runtime-only install: said in one line
        assert_clean_failure(result, 2, "--plot draws with matplotlib")
        return
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert md_table(result.stdout)[0]["model"] == "fable.int8.onnx"


def test_fable_bench_refuses_bad_flags(tmp_path):
    assert_clean_failure(invoke("fable-bench", "--words", "1"), 2, "--words")
    assert_clean_failure(invoke("fable-bench", "--out", str(tmp_path)), 2, "is a folder")
    assert_clean_failure(invoke("fable-bench", "-m", str(tmp_path / "no.onnx")), 1, "does not exist")
    assert_clean_failure(invoke("fable-bench", "--tune", "--batch", "1,2"), 2, "leave out --batch")


def test_flatten_keeps_every_field_once():
    machine = {"cpu": "x", "cpu_flags": ["avx2"]}
    assert flatten(machine, _row())["machine.cpu_flags"] == '["avx2"]'


def _row():
    from fable.benchmark import FileFacts, Row

    facts = FileFacts("f.onnx", "0" * 12, 1, 2, "int8 step", 1)
    return Row("f.onnx", "numpy", 1, False, 1, facts, 1, 10, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1e6, None, None,
               None, None, None)  # fmt: skip
