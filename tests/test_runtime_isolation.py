"""The runtime stands alone: no torch, no onnx, no training code."""

from __future__ import annotations

import ast
import subprocess
import sys

from .helpers import ROOT

FORBIDDEN = ("torch", "onnx")
TRAINING = "fable.training"

PROBE = f"""
import importlib, importlib.util, pkgutil, sys

class Forbid:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {FORBIDDEN!r} or (name + ".").startswith({TRAINING!r} + "."):
            raise ImportError(name + " is not allowed in the runtime")
        return None

sys.meta_path.insert(0, Forbid())
import fable
serve_extra = all(importlib.util.find_spec(name) for name in ("starlette", "hypercorn"))
names = [m.name for m in pkgutil.walk_packages(fable.__path__, "fable.")
         if not (m.name + ".").startswith({TRAINING!r} + ".") and (serve_extra or not m.name.startswith("fable.server") or m.name == "fable.server_settings")]
for name in names:
    importlib.import_module(name)
model = fable.load()
print(len(names), model.generate("the old mouse", 9))
"""


def test_every_runtime_module_imports_and_generates_without_torch_onnx_or_training():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    count, text = result.stdout.strip().split(" ", 1)
    assert int(count) >= 10  # every module of the package was imported
    assert text == "said it is easy to propose impossible remedies."


def test_no_runtime_source_names_a_forbidden_module():
    for path in (ROOT / "runtime").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.relative_to(ROOT)} imports {name}"
                assert not name.startswith(TRAINING), f"{path.relative_to(ROOT)} imports {name}"
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                assert "training" not in (node.module or ""), f"{path.relative_to(ROOT)} imports training code"


def test_typer_is_only_in_the_cli_package():
    for path in (ROOT / "runtime").rglob("*.py"):
        if "cli" in path.relative_to(ROOT).parts:
            continue
        assert "import typer" not in path.read_text(encoding="utf-8"), path


def test_the_commands_use_only_typers_public_api():
    for path in (ROOT / "runtime").rglob("*.py"):
        assert "_click" not in path.read_text(encoding="utf-8"), path
