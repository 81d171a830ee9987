"""What `fable-bench --tune` chose on this device, kept in a small per-user cache.

An entry holds, for one machine (CPU model, core count, onnxruntime version) and one model file
(its sha256), the fastest setting measured for each file of its export (threads, spinning) and
the file to run in its place: the fastest variant that its export's report vouches for. `load()`
reads it; nothing else does. A cache for another CPU, another onnxruntime or a changed file never
matches, and a damaged one is ignored with a notice: a machine nobody tuned runs the safe defaults.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import contract
from .atomic import write_text
from .backend import backend_version
from .errors import FableError, log

CACHE_ENV = "FABLE_CACHE_DIR"  # where the cache lives, instead of the platform's cache folder
CACHE_NAME = "tune.json"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Setting:
    threads: int
    spin: bool
    word_us: float  # the median per-word time measured with it


@dataclass(frozen=True)
class Tuned:
    """The cache's answer for one file: run `file` with `setting`."""

    file: Path
    setting: Setting
    tuned_at: str
    cache: Path


def cache_path() -> Path:
    """$FABLE_CACHE_DIR/tune.json, or tune.json in the platform's per-user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / CACHE_NAME
    home = Path.home()
    if sys.platform == "darwin":
        folder = home / "Library" / "Caches"
    elif os.name == "nt":
        folder = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    return folder / "fable" / CACHE_NAME


def cpu_model() -> str:
    """The CPU's model name as the system reports it (Linux: /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith(("model name", "Model"))]
    except OSError:
        names = []
    return names[0] if names else (platform.processor() or platform.machine())


def machine_key() -> dict[str, Any]:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "onnxruntime": backend_version("onnxruntime")}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entries(cache: Path) -> list[dict[str, Any]]:
    """The cache's entries; [] if there is none, with a notice if it cannot be read."""
    if not cache.exists():
        return []
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data.get("format") != CACHE_FORMAT or not isinstance(data.get("entries"), list):
            raise ValueError(f"not a fable tune cache of format {CACHE_FORMAT}")
        return [entry for entry in data["entries"] if isinstance(entry, dict)]
    except (OSError, ValueError, AttributeError) as error:
        log.warning("fable: ignoring the tune cache %s (%s); rerun fable-bench --tune", cache, error)
        return []


def lookup(path: Path, choose_file: bool) -> Tuned | None:
    """The tuned setting for `path` on this machine, or None. `choose_file`: `path` was not named by
    the user, so the tune's choice of variant may replace it."""
    cache = cache_path()
    entries = _entries(cache)
    if not entries:
        return None
    machine, sha = machine_key(), file_sha256(path)
    try:
        mine = [e for e in entries if e.get("machine") == machine]
        for entry in mine:
            choice = entry["choice"]
            if choose_file and entry["model_sha256"] == sha and _unchanged(Path(choice["file"]), choice["sha256"]):
                return Tuned(Path(choice["file"]), _setting(choice), entry["tuned_at"], cache)
        for entry in mine:
            for measured in entry["files"]:
                if measured["sha256"] == sha:
                    return Tuned(path, _setting(measured), entry["tuned_at"], cache)
    except (KeyError, TypeError, ValueError) as error:
        log.warning("fable: ignoring the tune cache %s (an entry lacks %s); rerun fable-bench --tune", cache, error)
    return None


def _setting(record: dict[str, Any]) -> Setting:
    threads, spin = record["threads"], record["spin"]
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1 or not isinstance(spin, bool):
        raise ValueError("threads or spin")
    return Setting(threads, spin, float(record["word_us"]))


def _unchanged(path: Path, sha: str) -> bool:
    return path.is_file() and file_sha256(path) == sha


def check_writable() -> Path:
    """The cache's path, once its folder exists and can be written: a tune that takes minutes
    should not find out at its end that it cannot keep its answer."""
    cache = cache_path()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(cache.parent, os.W_OK):
            raise PermissionError(13, "not writable")
    except OSError as error:
        raise _unwritable(cache, error) from None
    return cache


def _unwritable(cache: Path, error: OSError) -> FableError:
    return FableError(
        f"cannot write the tune cache {cache} ({error.strerror or error}); set {CACHE_ENV} to a writable folder"
    )


def remember(model: Path, choice: Path, best: dict[Path, Setting], tuned_at: str) -> Path:
    """Record a tune of `model`: `choice` runs in its place, each file with its best setting.
    Replaces this machine's entry for the same model; written atomically."""
    cache = cache_path()
    hashes = {path: file_sha256(path) for path in best}  # `model` is one of them: each file read once
    machine, sha = machine_key(), hashes.get(model) or file_sha256(model)
    files = [{"file": str(path.resolve()), "sha256": hashes[path], **asdict(best[path])} for path in best]
    entry = {
        "machine": machine,
        "model": str(model.resolve()),
        "model_sha256": sha,
        "tuned_at": tuned_at,
        "choice": next(f for f in files if f["file"] == str(choice.resolve())),
        "files": files,
    }
    kept = [e for e in _entries(cache) if not (e.get("machine") == machine and e.get("model_sha256") == sha)]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_text(cache, json.dumps({"format": CACHE_FORMAT, "entries": [*kept, entry]}, indent=2) + "\n")
    except OSError as error:
        raise _unwritable(cache, error) from None
    return cache


def export_variants(path: Path) -> list[tuple[Path, bool]]:
    """`path` first, then the other files of its export (fp32, int8, int4 beside it), each with
    whether it may run in `path`'s place: its export's report.json passed, and holds its sha256 and
    figures within the report's own guards. `path` itself is always a candidate: the user chose it."""
    folder = path.resolve().parent
    variants = [(path, True)]
    try:
        report = json.loads((folder / contract.REPORT_NAME).read_text(encoding="utf-8"))
        files, guards = (report["files"], report["guards"]) if report.get("passed", True) else ({}, {})
    except (OSError, ValueError, KeyError, TypeError):  # no report, or not one of ours: nothing vouched for
        files, guards = {}, {}
    for name in contract.FILE_NAMES.values():
        other = folder / name
        if other.resolve() == path.resolve() or not other.is_file():
            continue
        variants.append((other, _vouched(files.get(name), guards, other)))
    return variants


def _vouched(figures: object, guards: dict[str, Any], path: Path) -> bool:
    """Whether a report's figures are for this very file and within the report's guards."""
    try:
        if figures["sha256"] != file_sha256(path):
            return False
        if figures["quantization"] == "fp32":
            return figures["max_abs_logit_diff"] <= guards["max_fp32_logit_diff"]
        agreement = figures.get("clear_agreement", figures["next_word_agreement"])  # the first without near-ties
        return (
            agreement >= guards["min_int8_agreement"]
            and figures["accuracy_drop_points"] <= guards["max_int8_accuracy_drop"]
        )
    except (KeyError, TypeError):
        return False
