"""Which file, threads and spinning a model runs with, and the cache `fable-bench --tune` keeps.

An entry holds, for one machine (CPU model, core count, onnxruntime version) and one model file
(its sha256), for each pattern of use, the best setting measured for each file of its export
(threads, spinning) and the file to run in its place: the best variant that its export's report
vouches for. The patterns: "stream", words back to back (a generation), where the fastest wins;
and "paced", calls a few times a second (an app that suggests as a person types), where the
fastest of the settings that burn no idle core wins (spinning threads spin between calls too).
For batches of prompts the tune also chooses the fastest file whose rows are decoded together: a
model whose own file decodes one prompt at a time (fable.int8-lstm.onnx) runs its batches there.
`resolve` (for `load()`) reads it; nothing else does. A cache for another CPU, another
onnxruntime or a changed file never matches, and a damaged one is ignored with a notice: a
machine nobody tuned runs the safe defaults.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from filelock import FileLock, Timeout

from . import contract
from .atomic import write_text
from .backend import default_backend
from .errors import FableError, SettingError, log
from .machine import tune_key
from .modelfile import checked_path

# Safe on a machine nobody measured: one thread, no spinning. fable-bench --tune finds better
# settings for a device and load() uses them (docs/design.md, "Tuning").
DEFAULT_THREADS = 1
DEFAULT_SPIN = False
GIVEN = "given"  # why a Model(...) runs as it does: exactly what its caller gave

CACHE_ENV = "FABLE_CACHE_DIR"  # where the cache lives, instead of the platform's cache folder
CACHE_NAME = "tune.json"
CACHE_FORMAT = 2  # 2: a setting for each pattern; a cache of format 1 is ignored with a notice (tune again)
PATTERNS = ("paced", "stream")
# The tune's third choice: the fastest file, of those that decode a batch's rows together, for
# `generate_batch` of BATCH_SIZE prompts; it runs the batches of a model whose own file cannot.
BATCH, BATCH_SIZE = "batch", 8
TUNED = (*PATTERNS, BATCH)
PATTERN_SAID = {"paced": "for calls a few times a second", "stream": "for words back to back"}
# CPU seconds a wall second a paced setting may burn between calls: threads that spin use cores the
# app and the rest of the machine want, and a battery pays for them.
MAX_IDLE_CPU = 0.1
LOCK_SECONDS = 60  # a tune writes for well under a second; longer means a stuck one


@dataclass(frozen=True)
class Setting:
    threads: int
    spin: bool
    micros: float  # the median measured with it: µs a word (stream), µs a call (paced), µs a step of a batch
    idle_cpu: float  # CPU seconds a wall second it burnt between paced calls


@dataclass(frozen=True)
class Tuned:
    """The cache's answer for one file: run `file` with `setting`, tuned for `pattern`."""

    file: Path
    setting: Setting
    tuned_at: str
    cache: Path
    pattern: str
    batches: Tuned | None = None  # where the tune chose another file for batches of prompts (BATCH)


@dataclass(frozen=True)
class RunSettings:
    """What `load()` runs: a file with threads and spinning, and where they came from."""

    file: Path
    threads: int
    spin: bool
    asked: Path  # the file asked for; `file` differs where the tune chose a variant in its place
    given: tuple[str, ...]  # of "threads" and "spinning": those the caller gave
    tuned: Tuned | None  # the cache's entry, where it had one

    @property
    def why(self) -> str:
        """One line on where the threads, the spinning and the file came from."""
        parts = [f"{' and '.join(self.given)} given"] if self.given else []
        if self.tuned is not None:
            swapped = f", which runs {self.file.name} in place of {self.asked.name}" if self.file != self.asked else ""
            parts.append(f"tuned {PATTERN_SAID[self.tuned.pattern]} by fable-bench --tune at {self.tuned.tuned_at} "
                         f"({self.tuned.cache}){swapped}")  # fmt: skip
        elif len(self.given) < 2:
            parts.append("defaults where not given: this file was not tuned on this machine (fable-bench --tune)")
        return "; ".join(parts)


def resolve(
    asked: Path, named: bool, threads: int | None, spin: bool | None, backend: str | None, pattern: str = "paced"
) -> RunSettings:
    """The file and settings to run `asked` with: `threads` and `spin` where given, else what the
    tune cache holds for this machine and `pattern` (onnxruntime only), else the defaults. `named`:
    the caller named `asked`, so it runs; otherwise the tune's choice of variant may run in its place."""
    if pattern not in PATTERNS:
        raise SettingError("pattern", f"one of {', '.join(PATTERNS)}", pattern)
    tuned = None
    if (default_backend() if backend is None else backend) == "onnxruntime" and (
        threads is None or spin is None or not named
    ):
        checked_path(asked)
        tuned = lookup(asked, choose_file=not named, pattern=pattern)
    given = tuple(name for name, value in (("threads", threads), ("spinning", spin)) if value is not None)
    return RunSettings(
        file=tuned.file if tuned else asked,
        threads=threads if threads is not None else tuned.setting.threads if tuned else DEFAULT_THREADS,
        spin=spin if spin is not None else tuned.setting.spin if tuned else DEFAULT_SPIN,
        asked=asked,
        given=given,
        tuned=tuned,
    )


class Measured(Protocol):
    """What the tune measured of a file with a setting (`fable.benchmark.TuneRow`)."""

    threads: int
    spin: bool
    word_us: float  # a stream's word
    call_us: float  # a paced call
    batch_us: float  # a step of BATCH_SIZE prompts
    idle_cpu: float  # CPU seconds a wall second between paced calls


M = TypeVar("M", bound=Measured)
# A call after an idle gap varies by about this much from one measurement to the next (200 ms
# apart on the Xeon of docs/performance.md: 1,582 and 1,749 µs for the same setting), so more
# threads must win by more than that to be worth waking up for each call.
PACED_NOISE = 0.10


def best_of(pattern: str, rows: list[M]) -> M:
    """The winner for `pattern` (or BATCH): the fastest; for paced calls, of those that burn at
    most MAX_IDLE_CPU between calls, the fewest threads within PACED_NOISE of the fastest."""
    if pattern != "paced":
        return min(rows, key=lambda r: micros_of(pattern, r))
    quiet = [r for r in rows if r.idle_cpu <= MAX_IDLE_CPU] or [min(rows, key=lambda r: r.idle_cpu)]
    fastest = min(quiet, key=lambda r: r.call_us)
    fewest = min(quiet, key=lambda r: (r.threads, r.call_us))
    return fewest if fewest.call_us <= fastest.call_us * (1 + PACED_NOISE) else fastest


def micros_of(pattern: str, row: Measured) -> float:
    """The figure that chooses for `pattern`: µs a word (stream), a call (paced), a step of a batch."""
    return {"stream": row.word_us, "paced": row.call_us, BATCH: row.batch_us}[pattern]


def setting_of(pattern: str, row: Measured) -> Setting:
    return Setting(row.threads, row.spin, micros_of(pattern, row), row.idle_cpu)


def cache_path() -> Path:
    """$FABLE_CACHE_DIR/tune.json, or fable/tune.json in the platform's per-user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / CACHE_NAME
    return user_cache_folder(sys.platform, os.environ, Path.home()) / "fable" / CACHE_NAME


def user_cache_folder(platform: str, environ: Mapping[str, str], home: Path) -> Path:
    """Where `platform` (sys.platform's name) keeps a user's caches."""
    if platform == "darwin":
        return home / "Library" / "Caches"
    if platform == "win32":
        return Path(environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    return Path(environ.get("XDG_CACHE_HOME") or home / ".cache")


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
        _ignoring(cache, str(error))
        return []


_IGNORED: set[Path] = set()  # caches said to be ignored in this process (a few places at most)


def _ignoring(cache: Path, why: str) -> None:
    """Say that `cache` is ignored, at INFO and once a process: every `fable.load()` reads it."""
    if cache not in _IGNORED:
        _IGNORED.add(cache)
        log.info("fable: ignoring the tune cache %s (%s); rerun fable-bench --tune", cache, why)


def lookup(path: Path, choose_file: bool, pattern: str = "paced") -> Tuned | None:
    """The setting tuned for `path` and `pattern` on this machine, or None. `choose_file`: `path`
    was not named by the user, so the tune's choice of variant may replace it."""
    cache = cache_path()
    entries = _entries(cache)
    if not entries:
        return None
    machine, sha = tune_key(), file_sha256(path)
    try:
        mine = [e for e in entries if e.get("machine") == machine]
        for entry in mine:
            choice = _chosen(entry, pattern)
            if choose_file and entry["model_sha256"] == sha and _unchanged(Path(choice["file"]), choice["sha256"]):
                file, batches = Path(choice["file"]), _batches(entry, choice["file"], cache)
                return Tuned(file, _setting(choice[pattern]), entry["tuned_at"], cache, pattern, batches)
        for entry in mine:
            for measured in entry["files"]:
                if measured["sha256"] == sha:
                    return Tuned(path, _setting(measured[pattern]), entry["tuned_at"], cache, pattern)
    except (KeyError, TypeError, ValueError, StopIteration) as error:
        _ignoring(cache, f"an entry lacks {error}")
    return None


def _chosen(entry: dict[str, Any], pattern: str) -> dict[str, Any] | None:
    """The entry's record of the file chosen for `pattern`; None for BATCH in an entry from before
    the tune timed batches."""
    if pattern == BATCH and BATCH not in entry["choices"]:
        return None
    return next(f for f in entry["files"] if f["file"] == entry["choices"][pattern])


def _batches(entry: dict[str, Any], chosen: str, cache: Path) -> Tuned | None:
    """The file and setting the entry chose for batches, where it is another file than `chosen`."""
    batch = _chosen(entry, BATCH)
    if batch is None or batch["file"] == chosen or not _unchanged(Path(batch["file"]), batch["sha256"]):
        return None
    return Tuned(Path(batch["file"]), _setting(batch[BATCH]), entry["tuned_at"], cache, BATCH)


def batches_said(batches: Tuned, own: Path) -> str:
    """Why a model's batches run another file than its own."""
    setting = batches.setting
    return (f"batches of prompts run {batches.file.name} with {setting.threads} thread{'s' * (setting.threads > 1)}, "
            f"spinning {'on' if setting.spin else 'off'} ({own.name} decodes one prompt at a time; the fastest of "
            f"the files that decode a batch's rows together, for {BATCH_SIZE} prompts)")  # fmt: skip


def _setting(record: dict[str, Any]) -> Setting:
    threads, spin = record["threads"], record["spin"]
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1 or not isinstance(spin, bool):
        raise ValueError("threads or spin")
    return Setting(threads, spin, float(record["micros"]), float(record["idle_cpu"]))


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


def remember(model: Path, choices: dict[str, Path], best: dict[Path, dict[str, Setting]], tuned_at: str) -> Path:
    """Record a tune of `model`: for each pattern, the file `choices` runs in its place, and each
    file's best setting. Replaces this machine's entry for the same model; written atomically."""
    cache = cache_path()
    hashes = {path: file_sha256(path) for path in best}  # `model` is one of them: each file read once
    machine, sha = tune_key(), hashes.get(model) or file_sha256(model)
    files = [{"file": str(path.resolve()), "sha256": hashes[path], **{p: asdict(s) for p, s in best[path].items()}}
             for path in best]  # fmt: skip
    entry = {
        "machine": machine,
        "model": str(model.resolve()),
        "model_sha256": sha,
        "tuned_at": tuned_at,
        "choices": {pattern: str(path.resolve()) for pattern, path in choices.items()},
        "files": files,
    }
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # Read, change and write under one lock: two tunes at once (of two models, say) keep both
        # entries, where the later write would otherwise drop the earlier one's.
        with FileLock(f"{cache}.lock", timeout=LOCK_SECONDS):
            kept = [e for e in _entries(cache) if not (e.get("machine") == machine and e.get("model_sha256") == sha)]
            write_text(cache, json.dumps({"format": CACHE_FORMAT, "entries": [*kept, entry]}, indent=2) + "\n")
        _IGNORED.discard(cache)  # a healthy cache now: damage to come is news again
    except Timeout:
        raise FableError(f"the tune cache {cache} stayed locked for {LOCK_SECONDS} s; is another fable-bench "
                         f"--tune stuck? Remove {cache}.lock if not") from None  # fmt: skip
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
        if figures["quantization"] == "fp32":  # reports before fable 0.4 hold the absolute bound only
            absolute, ratio = guards["max_fp32_logit_diff"], guards.get("max_fp32_error_ratio")
            return (absolute is None or figures["max_abs_logit_diff"] <= absolute) and (
                ratio is None or figures["error_ratio"] <= ratio
            )
        agreement = figures.get("clear_agreement", figures["next_word_agreement"])  # the first without near-ties
        return (
            agreement >= guards["min_int8_agreement"]
            and figures["accuracy_drop_points"] <= guards["max_int8_accuracy_drop"]
        )
    except (KeyError, TypeError):
        return False
