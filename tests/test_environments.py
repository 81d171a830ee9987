"""The runtime where its environment is not what the package asks for: an onnxruntime that is
broken or too old, a Python without the `resource` module (Windows), a plain install without the
serve extra. Each says what it does in one line, and what works still works."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fable

from .helpers import GOLDEN, ROOT, SHIPPED, assert_clean_failure, command_env, command_line, md_table

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("No module named " + name)
sys.meta_path.insert(0, Block())
sys.argv = {argv!r}
from fable.cli import {module}
{module}.entry()
"""


def run_without(blocked: set[str], module: str, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A command's entry point in a Python where the modules `blocked` cannot be imported."""
    code = BLOCK.format(blocked=blocked, argv=["fable", *argv], module=module)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=command_env(env))  # fmt: skip


def test_fable_bench_starts_where_python_has_no_resource_module():
    result = run_without({"resource"}, "bench", "--words", "10", "-m", str(SHIPPED / "fable.int8.onnx"))
    assert result.returncode == 0, result.stderr
    (row,) = md_table(result.stdout)
    assert row["model"] == "fable.int8.onnx" and row["RSS MB"] == "—"  # peak RSS: not known there, and said so


def test_a_broken_onnxruntime_is_said_in_one_line_and_numpy_runs(tmp_path):
    broken = tmp_path / "onnxruntime"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('libonnxruntime.so.1: cannot open shared object file')\n")
    result = subprocess.run([*command_line("fable-run"), "the old mouse", "-n", "9"], capture_output=True, text=True,
                            cwd=ROOT, timeout=300, env=command_env({"PYTHONPATH": str(tmp_path)}))  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == f"the old mouse {GOLDEN}", result.stderr
    (notice,) = result.stderr.strip().splitlines()
    assert "onnxruntime is installed but does not import (libonnxruntime.so.1: cannot open" in notice
    assert "running on numpy" in notice


def test_an_absent_onnxruntime_is_numpy_without_a_word():
    result = run_without({"onnxruntime"}, "run", "the old mouse", "-n", "9")
    assert result.returncode == 0 and result.stdout.strip() == f"the old mouse {GOLDEN}" and result.stderr == ""


def test_an_int4_file_on_an_onnxruntime_older_than_1_19_says_so(monkeypatch):
    ort_backend = pytest.importorskip("fable.ort_backend", reason="needs onnxruntime")

    def refuse(*args, **kwargs):  # what 1.18.1 says of the int4 file (measured)
        raise RuntimeError(
            '[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model. In Node, ("MatMulNBits_3", MatMul)'
        )

    monkeypatch.setattr(ort_backend.ort, "InferenceSession", refuse)
    monkeypatch.setattr(ort_backend.ort, "__version__", "1.18.1")
    with pytest.raises(
        fable.ModelFileError, match=r"is int4, which needs onnxruntime 1\.19 or newer; this is 1\.18\.1"
    ):
        fable.Model(SHIPPED / "fable.int4.onnx", backend="onnxruntime")
    with pytest.raises(fable.ModelFileError, match="not a readable ONNX model"):  # other files: the file's fault
        fable.Model(SHIPPED / "fable.int8.onnx", backend="onnxruntime")


def test_fable_serve_without_the_serve_extra_says_which_to_install():
    result = run_without({"starlette", "hypercorn"}, "serve", "--port", "0")
    assert_clean_failure(result, 2, "fable-serve needs starlette and hypercorn", 'pip install "fable[serve]"')
