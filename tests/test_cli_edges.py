"""The edges a newcomer meets first, through the installed commands: help, flags, Ctrl-C, the
missing train extra, JSON in the loop, fable-bench's table."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from .helpers import SHIPPED, assert_clean_failure, check_help, invoke, md_table, run_command, start_command, wait_until

RUNTIME_COMMANDS = ("fable-run", "fable-bench")


def runtime_loaded(pid: int) -> bool:
    """onnxruntime is mapped into the process: its imports are done, the work has begun."""
    maps = Path(f"/proc/{pid}/maps")
    return maps.exists() and "onnxruntime" in maps.read_text(errors="replace")


def interrupt(process, stdin: str | None = None) -> tuple[int, str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(stdin, timeout=60)
    return process.returncode, out, err


def test_fable_run_help_shows_switches_bare_and_every_default():
    check_help(
        "fable-run",
        flags={"--stream", "--json", "--info", "--version"},
        defaults={"--model", "--words", "--temperature", "--top-k", "--top-p", "--seed", "--threads"},
    )


def test_fable_bench_help_shows_switches_bare_and_every_default():
    check_help(
        "fable-bench",
        flags={"--shipped", "--tune"},
        defaults={"--model", "--threads", "--spin", "--words", "--out", "--pace"},
    )


@pytest.mark.parametrize(
    "args, flag",
    [(["--threads", "0"], "--threads"), (["--words", "5"], "--words"), (["--temperature", "-1"], "--temperature")],
)
def test_fable_bench_names_only_the_flag_that_is_wrong(args, flag):
    result = invoke("fable-bench", *args)
    assert_clean_failure(result, 2, flag)
    others = {"--threads", "--words", "--temperature"} - {flag}
    assert not any(other in result.stderr for other in others), result.stderr


def shadow_train_extra(folder: Path) -> dict:
    """An environment where `import torch` and `import onnx` fail, as after a plain install."""
    for name in ("torch", "onnx"):
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(f"raise ImportError('No module named {name}')\n")
    return {"PYTHONPATH": str(folder)}


@pytest.mark.parametrize("name", ["fable-train", "fable-export"])
def test_training_commands_without_the_train_extra_say_what_to_install(tmp_path, name):
    result = run_command(name, "--help", env=shadow_train_extra(tmp_path))
    assert_clean_failure(result, 2, f"{name} needs torch", 'pip install "fable[train]"')


def test_json_in_the_interactive_loop_is_one_object_per_line():
    result = invoke("fable-run", "--json", "-n", "4", input="the old mouse\nold mouse\nsaid he ,\n")
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 2, result
    first, second = (json.loads(line) for line in lines)
    assert first["prompt"] == "the old mouse" and first["words"] == ["said", "it", "is", "easy"]
    assert second["words"] == ["that", "our", "chief", "danger"]
    assert "has 2 words" in result.stderr  # the bad line is reported, the loop goes on


def test_ctrl_c_in_the_interactive_loop_exits_130():
    process = start_command("fable-run", "-n", "3")
    process.stdin.write("the old mouse\n")
    process.stdin.flush()
    assert process.stdout.readline() == "the old mouse said it is\n"  # answered, and waiting for more
    code, _, err = interrupt(process)
    assert (code, err.strip()) == (130, "fable-run: interrupted")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="sees onnxruntime load through /proc")
def test_ctrl_c_in_fable_bench_exits_130_with_a_word():
    process = start_command("fable-bench", "--words", "1000000")
    wait_until(lambda: runtime_loaded(process.pid), process=process)
    time.sleep(0.5)
    code, out, err = interrupt(process)
    assert (code, err.strip(), out) == (130, "fable-bench: interrupted", "")


def test_fable_bench_tells_apart_files_of_the_same_name_and_adds_the_shipped_ones(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "fable.int8.onnx").write_bytes((SHIPPED / "fable.int8.onnx").read_bytes())
    models = ["--model", str(tmp_path / "a" / "fable.int8.onnx"), "--model", str(tmp_path / "b" / "fable.int8.onnx")]
    result = invoke("fable-bench", *models, "--shipped", "--words", "10")
    assert result.returncode == 0, result.stderr
    names = [row["model"] for row in md_table(result.stdout)]
    assert names[:2] == ["a/fable.int8.onnx", "b/fable.int8.onnx"]
    assert [Path(n).name for n in names[2:]] == [
        "fable.onnx",
        "fable.int8.onnx",
        "fable.int4.onnx",
        "fable.int8-lstm.onnx",
    ]
    assert len(set(names)) == 6
