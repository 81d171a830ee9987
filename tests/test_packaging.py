"""What `pip install` puts on a machine: one import package, `fable`, mapped from the repository's
folders, with the shipped models inside it; and a repository that stands on its own."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fable

from .helpers import ROOT

BUILD_LEFTOVERS = shutil.ignore_patterns(
    ".git", ".venv", "runs", "build", "dist", "*.egg-info", "__pycache__", ".*cache"
)


@pytest.mark.slow
def test_a_plain_install_puts_only_fable_at_the_top_level_and_runs_from_anywhere(tmp_path):
    source, site, elsewhere = tmp_path / "clean-copy", tmp_path / "site", tmp_path / "elsewhere"
    shutil.copytree(ROOT, source, ignore=BUILD_LEFTOVERS)
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(source)]
    result = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (info,) = site.glob("fable-*.dist-info")
    assert (info / "top_level.txt").read_text().split() == ["fable"]
    assert sorted(p.name for p in site.iterdir() if p != info) == ["bin", "fable"]  # bin: the four commands
    assert (site / "fable" / "exported" / "fable.int8.onnx").is_file()  # the shipped models are package data
    assert (site / "fable" / "training" / "fable.txt").is_file()

    elsewhere.mkdir()
    probe = "import fable; print(fable.__file__); print(fable.load().generate('the old mouse', 9))"
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert result.returncode == 0, result.stderr
    where, words = result.stdout.splitlines()
    assert Path(where).is_relative_to(site)
    assert words == "said it is easy to propose impossible remedies."


def test_an_editable_install_maps_the_repositorys_folders():
    if not Path(fable.__file__).is_relative_to(ROOT):
        pytest.skip("fable is installed from a copy here, not editable from this checkout")
    exported, training = importlib.import_module("fable.exported"), importlib.import_module("fable.training")
    assert Path(fable.__file__).parent == ROOT / "runtime"
    assert Path(training.__file__).parent == ROOT / "training"
    assert Path(exported.__file__).parent == ROOT / "exported"
    assert fable.default_model_path() == ROOT / "exported" / "fable.int8.onnx"


def repository_text_files() -> list[Path]:
    if (ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
        paths = [ROOT / name for name in listed.stdout.splitlines()]
    else:
        paths = [p for p in ROOT.rglob("*") if p.is_file() and not {".venv", ".git"} & set(p.parts)]
    return [p for p in paths if p.suffix in {".py", ".md", ".toml", ".txt", ".json", ""} and p.is_file()]


def test_nothing_in_the_repository_points_outside_it():
    outside = ["../" + "shared", "shared/" + "DESIGN"]  # spelled in pieces, so this file is no hit
    for path in repository_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not any(pointer in text for pointer in outside), path.relative_to(ROOT)


def test_every_dependency_ci_installs_at_its_floor_names_one():
    """.ci/run step 2b installs each floor of the runtime, serve and test lists exactly: each must
    have one, and the step must read them from here rather than keep its own copy."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in Python 3.11 and later")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    for requirement in project["dependencies"] + extras["serve"] + extras["test"]:
        assert ">=" in requirement and "<" not in requirement.split(";")[0], requirement
    assert 'extras["serve"] + extras["test"]' in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
