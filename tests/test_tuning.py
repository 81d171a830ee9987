"""fable-bench --tune and its per-user cache: what load() and fable-run take from it, and when not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="--tune times onnxruntime's settings")

import fable
from fable import tuning
from fable.contract import FILE_NAMES, REPORT_NAME
from fable.tuning import (
    PATTERNS,
    Setting,
    cache_path,
    export_variants,
    file_sha256,
    lookup,
    remember,
    user_cache_folder,
)

from .helpers import GOLDEN, SHIPPED, assert_clean_failure, fable_tokens, invoke

INT8, FP32, INT4, LSTM = (FILE_NAMES[q] for q in ("int8", "fp32", "int4", "int8-lstm"))
BATCH, BATCH_SIZE = "batch", 8  # the cache's key for batches, and the prompts the tune decodes together
TUNED = (*PATTERNS, BATCH)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(tuning.CACHE_ENV, str(folder))
    return folder / tuning.CACHE_NAME


@pytest.fixture
def export(tmp_path):
    """A copy of the shipped export (files and report), so that tests may change it."""
    folder = tmp_path / "export"
    folder.mkdir()
    for name in (*FILE_NAMES.values(), REPORT_NAME):
        shutil.copy(SHIPPED / name, folder / name)
    return folder


def tune_in(folder, choice: str, stream: str | None = None, **settings: Setting) -> None:
    """An entry as fable-bench --tune leaves it: for int8, run `choice` (for streams `stream`, if
    given); each file's best setting, the same for both patterns."""
    best = {folder / FILE_NAMES[q]: {pattern: setting for pattern in PATTERNS} for q, setting in settings.items()}
    choices = {"paced": folder / choice, "stream": folder / (stream or choice)}
    remember(folder / INT8, choices, best, "2026-11-27T09:00:00")


FAST, SLOW = Setting(2, True, 90.0, 0.0), Setting(1, False, 170.0, 0.0)


def test_the_default_model_runs_the_tuned_variant_with_its_setting(cache, export, monkeypatch):
    monkeypatch.setattr(fable.model, "default_model_path", lambda: export / INT8)
    tune_in(export, INT4, int8=SLOW, int4=FAST)
    model = fable.load()
    assert (model.path, model.threads, model.spin) == (export / INT4, 2, True)
    assert "by fable-bench --tune at 2026-11-27T09:00:00" in model.settings and INT4 in model.settings
    assert model.generate("the old mouse", 9) == GOLDEN


def test_an_app_runs_the_paced_winner_and_a_generation_the_stream_winner(cache, export, monkeypatch):
    """load() is for an app's calls a few times a second unless told otherwise: the setting that
    burns no idle core; fable-run with a prompt makes its words back to back: the fastest."""
    monkeypatch.setattr(fable.model, "default_model_path", lambda: export / INT8)
    quiet, spinning = Setting(1, False, 1200.0, 0.001), Setting(2, True, 90.0, 0.5)
    best = {export / INT8: {"paced": quiet, "stream": spinning}, export / INT4: {"paced": quiet, "stream": quiet}}
    remember(export / INT8, {"paced": export / INT4, "stream": export / INT8}, best, "2026-12-01T09:00:00")
    app, stream = fable.load(), fable.load(pattern="stream")
    assert (app.path, app.threads, app.spin) == (export / INT4, 1, False)
    assert (stream.path, stream.threads, stream.spin) == (export / INT8, 2, True)
    assert "tuned for calls a few times a second" in app.settings and "words back to back" in stream.settings
    env = {tuning.CACHE_ENV: str(cache.parent)}
    said = json.loads(invoke("fable-run", "the old mouse", "--json", "-m", str(export / INT8), env=env).stdout)
    assert (said["settings"]["threads"], said["settings"]["spin"]) == (2, True)
    assert " 1 thread, spinning off" in invoke("fable-run", "--info", "-m", str(export / INT8), env=env).stdout
    with pytest.raises(fable.SettingError, match="pattern must be one of paced, stream"):
        fable.load(pattern="bursty")


def test_a_named_file_keeps_its_name_and_takes_its_own_tuned_setting(cache, export):
    tune_in(export, INT4, int8=SLOW, int4=FAST)
    model = fable.load(export / INT8)  # --model always wins: the file named runs
    assert (model.path, model.threads, model.spin) == (export / INT8, 1, False)
    assert (fable.load(export / INT4).threads, fable.load(export / INT4).spin) == (2, True)


def test_explicit_settings_override_the_cache(cache, export):
    tune_in(export, INT8, int8=FAST)
    assert (fable.load(export / INT8, threads=1).threads, fable.load(export / INT8, threads=1).spin) == (1, True)
    model = fable.load(export / INT8, threads=1, spin=False)
    assert (model.threads, model.spin, model.settings) == (1, False, "threads and spinning given")
    result = invoke("fable-run", "--model", str(export / INT8), "--threads", "1", "--no-spin", "--info",
                         env={tuning.CACHE_ENV: str(cache.parent)})  # fmt: skip
    assert " 1 thread, spinning off" in result.stdout and "threads and spinning given" in result.stdout
    assert fable.Model(export / INT8).threads == 1  # Model() is always exactly what it is given


@pytest.mark.parametrize("change", ["file", "onnxruntime", "cpu", "cores"])
def test_the_cache_is_ignored_when_the_file_or_the_machine_differs(cache, export, change, monkeypatch):
    tune_in(export, INT8, int8=FAST)
    assert lookup(export / INT8, choose_file=True) is not None
    if change == "file":
        (export / INT8).write_bytes((export / INT4).read_bytes())  # another model under the tuned name
    else:
        key = tuning.tune_key()
        changed = {"onnxruntime": "0.0.1", "cpu": "Another CPU", "cores": 1000}[change]
        monkeypatch.setattr(tuning, "tune_key", lambda: key | {change: changed})
    assert lookup(export / INT8, choose_file=True) is None
    model = fable.load(export / INT8)
    assert (model.threads, model.spin) == (1, False) and "not tuned on this machine" in model.settings


def test_a_chosen_variant_that_changed_since_the_tune_is_not_run(cache, export):
    tune_in(export, INT4, int8=SLOW, int4=FAST)
    (export / INT4).write_bytes((export / FP32).read_bytes())  # replaced behind the cache's back
    tuned = lookup(export / INT8, choose_file=True)
    assert tuned.file == export / INT8 and tuned.setting == SLOW


@pytest.mark.parametrize("damage", ["not json", "wrong shape", "bad entry", "a folder"])
def test_a_damaged_cache_is_ignored_with_a_one_line_notice(cache, export, damage):
    tune_in(export, INT8, int8=FAST)
    if damage == "not json":
        cache.write_text("{ half", encoding="utf-8")
    elif damage == "wrong shape":
        cache.write_text(json.dumps({"format": 1, "entries": "x"}), encoding="utf-8")
    elif damage == "bad entry":
        data = json.loads(cache.read_text())
        for measured in data["entries"][0]["files"]:
            measured["paced"]["threads"] = measured["stream"]["threads"] = "many"
        cache.write_text(json.dumps(data), encoding="utf-8")
    else:
        cache.unlink()
        cache.mkdir()
    result = invoke("fable-run", "--model", str(export / INT8), "the old mouse", "-n", "9",
                         env={tuning.CACHE_ENV: str(cache.parent)})  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == f"the old mouse {GOLDEN}"
    notice = result.stderr.strip().splitlines()
    assert len(notice) == 1 and "ignoring the tune cache" in notice[0] and "Traceback" not in result.stderr


def test_the_cache_is_written_atomically(cache, export, monkeypatch):
    tune_in(export, INT8, int8=FAST)
    before = cache.read_bytes()

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)  # the write fails at its last step
    with pytest.raises(fable.FableError, match="cannot write the tune cache .*disk full.*FABLE_CACHE_DIR"):
        tune_in(export, INT4, int8=SLOW, int4=FAST)
    assert cache.read_bytes() == before  # and no temporary file is left beside it (the lock is the lock's):
    assert {p.name for p in cache.parent.iterdir()} <= {cache.name, cache.name + ".lock"}


def test_a_new_tune_replaces_this_machines_entry_for_the_file_and_keeps_the_others(cache, export):
    tune_in(export, INT8, int8=FAST)
    remember(
        export / INT4, dict.fromkeys(PATTERNS, export / INT4), {export / INT4: dict.fromkeys(PATTERNS, SLOW)}, "then"
    )
    tune_in(export, INT4, int8=SLOW, int4=FAST)
    entries = json.loads(cache.read_text())["entries"]
    assert sorted(e["model"] for e in entries) == sorted(str(export / name) for name in (INT4, INT8))


TUNE_MANY = """
import sys
from pathlib import Path
from fable.tuning import Setting, remember
for model in map(Path, sys.argv[1:]):
    remember(model, {"paced": model, "stream": model}, {model: {p: Setting(1, False, 100.0, 0.0) for p in ("paced", "stream")}}, "now")
"""


def test_two_tunes_at_once_keep_every_entry(cache, tmp_path):
    """Two processes record tunes of 100 models each into one cache at the same time: each read,
    change and write happens under the cache's lock, so neither drops an entry of the other's."""
    models = [[tmp_path / f"model-{side}-{n}.onnx" for n in range(100)] for side in "ab"]
    for path in models[0] + models[1]:
        path.write_text(path.name)  # only hashed: a distinct file is a distinct model to the cache
    env = {**os.environ, tuning.CACHE_ENV: str(cache.parent)}
    processes = [subprocess.Popen([sys.executable, "-c", TUNE_MANY, *map(str, side)], env=env,
                                  stderr=subprocess.PIPE) for side in models]  # fmt: skip
    assert [p.wait(timeout=120) for p in processes] == [0, 0], [p.stderr.read() for p in processes]
    entries = json.loads(cache.read_text())["entries"]
    assert sorted(e["model"] for e in entries) == sorted(str(path.resolve()) for path in models[0] + models[1])


def test_only_files_that_the_report_vouches_for_may_run_in_place_of_another(export):
    assert export_variants(export / INT8) == [
        (export / INT8, True),
        (export / FP32, True),
        (export / INT4, True),
        (export / LSTM, True),
    ]
    report = json.loads((export / REPORT_NAME).read_text())
    report["files"][INT4]["clear_agreement"] = 0.5  # below the report's own guard (windows away from near-ties)
    report["files"][FP32]["sha256"] = "0" * 64  # figures of another file
    (export / REPORT_NAME).write_text(json.dumps(report))
    assert dict(export_variants(export / INT8)) == {
        export / INT8: True,
        export / FP32: False,
        export / INT4: False,
        export / LSTM: True,
    }
    (export / REPORT_NAME).unlink()
    assert dict(export_variants(export / INT4)) == {
        export / INT4: True,
        export / FP32: False,
        export / INT8: False,
        export / LSTM: False,
    }


def test_fable_bench_tune_times_every_setting_and_fable_run_uses_the_choice(cache, export):
    result = invoke("fable-bench", "--tune", "--model", str(export / INT8), "--words", "30", "--pace", "2",
                    "--calls", "3", env={tuning.CACHE_ENV: str(cache.parent)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:] if line.startswith("fable.")]
    cores = os.cpu_count()
    assert len(rows) == 4 * (2 * cores - 1)  # every file x threads 1..cores x spinning off and on (with 2 or more)
    assert {(r[0], r[2], r[3]) for r in rows} == {
        (name, str(t), spin)
        for name in (INT8, FP32, INT4, LSTM)
        for t in range(1, cores + 1)
        for spin in ("off", "on")
        if t > 1 or spin == "off"
    }
    for pattern in TUNED:  # a winner for each, and for batches
        assert sum(f"chosen for {pattern}" in line for line in result.stdout.splitlines()) == 1
    entry = json.loads(cache.read_text())["entries"][0]
    assert entry["choices"][BATCH] != str(export / LSTM) and all(BATCH in f for f in entry["files"])
    batches = next(f for f in entry["files"] if f["file"] == entry["choices"][BATCH])[BATCH]  # the batch's own figure
    said = next(line for line in result.stdout.splitlines() if line.startswith(f"{BATCH}:"))
    assert f": {batches['micros']:.1f} µs a step of {BATCH_SIZE} prompts," in said, said
    assert entry["model_sha256"] == file_sha256(export / INT8) and entry["machine"] == tuning.tune_key()
    info = invoke("fable-run", "--model", str(export / INT8), "--info", env={tuning.CACHE_ENV: str(cache.parent)})
    own = next(f for f in entry["files"] if f["file"] == str(export / INT8))["paced"]  # --info: a single call
    assert f" {own['threads']} thread" in info.stdout
    assert "tuned for calls a few times a second by fable-bench --tune" in info.stdout


def test_tune_refuses_bad_input_in_one_line(cache, tmp_path):
    (tmp_path / "file").write_text("")
    unwritable = {tuning.CACHE_ENV: str(tmp_path / "file" / "cache")}  # a folder below a file
    result = invoke("fable-bench", "--tune", "--words", "10", "-m", str(SHIPPED / INT8), env=unwritable)
    assert_clean_failure(result, 1, "cannot write the tune cache", "FABLE_CACHE_DIR")
    assert_clean_failure(invoke("fable-bench", "--tune", "-m", str(SHIPPED / INT8), "-m", str(SHIPPED / FP32)),
                         2, "--tune takes one --model")  # fmt: skip
    assert_clean_failure(invoke("fable-bench", "--tune", "-m", str(tmp_path / "none.onnx")), 1, "does not exist")
    assert_clean_failure(invoke("fable-bench", "--tune", "--batch", "1,2"), 2, "leave out --batch")


def test_the_cache_lives_in_the_platforms_cache_folder(monkeypatch, tmp_path):
    home = tmp_path / "home"
    assert user_cache_folder("linux", {}, home) == home / ".cache"
    assert user_cache_folder("linux", {"XDG_CACHE_HOME": "/x"}, home) == Path("/x")
    assert user_cache_folder("darwin", {"XDG_CACHE_HOME": "/x"}, home) == home / "Library" / "Caches"
    assert user_cache_folder("win32", {}, home) == home / "AppData" / "Local"
    assert user_cache_folder("win32", {"LOCALAPPDATA": "C:/L"}, home) == Path("C:/L")
    monkeypatch.delenv(tuning.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_path() == user_cache_folder(tuning.sys.platform, os.environ, Path.home()) / "fable" / "tune.json"


def test_fable_serve_keeps_its_own_settings_whatever_the_tune_chose(cache, export, monkeypatch):
    """The tune measures one stream on idle cores; a server's request threads share those cores."""
    import urllib.request

    pytest.importorskip("hypercorn", reason='fable-serve needs the serve extra: pip install "fable[serve]"')

    from .helpers import start_server, stop_server

    monkeypatch.setattr(fable.model, "default_model_path", lambda: export / INT8)
    tune_in(export, INT8, int8=FAST)
    process, url = start_server("--model", str(export / INT8))
    try:
        info = json.loads(urllib.request.urlopen(url + "/info", timeout=30).read())
    finally:
        stop_server(process)
    assert (info["threads"], info["spin"]) == (1, False) and "fable-serve's own" in info["settings"]


def test_fable_run_json_says_which_settings_ran_and_why(cache, export):
    tune_in(export, INT8, int8=FAST)
    env = {tuning.CACHE_ENV: str(cache.parent)}
    tuned = json.loads(invoke("fable-run", "-m", str(export / INT8), "--json", "the old mouse", env=env).stdout)
    assert (tuned["settings"]["threads"], tuned["settings"]["spin"]) == (2, True)
    assert (
        "tuned for words back to back by fable-bench --tune" in tuned["settings"]["why"]
    )  # a prompt's words: a stream
    given = invoke("fable-run", "-m", str(export / INT8), "--json", "--threads", "1", "the old mouse", env=env)
    settings = json.loads(given.stdout)["settings"]
    assert (settings["threads"], settings["spin"]) == (1, True) and settings["why"].startswith("threads given")


# --- batches: the stream's file may decode one prompt at a time (fable.int8-lstm.onnx) ---------


def test_after_a_tune_that_chose_a_row_by_row_file_batches_still_run_together(cache, export, monkeypatch):
    """On the Xeon the tune chose fable.int8-lstm.onnx for streams, whose graph takes one
    sequence: a batch of the model load(pattern="stream") gives runs on the file chosen for
    batches, once a word for all prompts; --info says so. One prompt stays on its own file."""
    monkeypatch.setattr(fable.model, "default_model_path", lambda: export / INT8)
    best = {export / name: {pattern: FAST for pattern in TUNED} for name in (INT8, LSTM)}
    remember(export / INT8, {"paced": export / LSTM, "stream": export / LSTM, BATCH: export / INT8}, best, "2026-12-02")
    model = fable.load(pattern="stream")
    assert model.path == export / LSTM and not model.metadata.batched
    assert "batches of prompts run fable.int8.onnx with 2 threads, spinning on" in model.settings
    tokens = fable_tokens()
    prompts = [" ".join(tokens[17 * i : 17 * i + 3]) for i in range(8)]
    kernel = type(fable.Model(export / INT8)._backend.kernel(8))  # the step graph's: both files use it
    runs, original = [], kernel.run
    monkeypatch.setattr(kernel, "run", lambda self, tokens: runs.append(np.shape(tokens)) or original(self, tokens))
    assert model.generate_batch(prompts, 12) == fable.Model(export / INT8).generate_batch(prompts, 12)
    assert runs[: model.window + 11] == [(8, 1)] * (model.window + 11)
    assert model.generate_batch(prompts[:1], 12) == [model.generate(prompts[0], 12)]
    info = invoke("fable-run", "--info", env={tuning.CACHE_ENV: str(cache.parent)})
    assert INT8 in info.stdout and "batches of prompts run fable.int8.onnx" in info.stdout


def test_the_tune_times_a_batch_of_8_and_chooses_a_file_that_decodes_rows_together(cache, export, monkeypatch):
    """Timed as faster at everything (as the int8-lstm file was for a word on the Xeon), a file
    that decodes one prompt at a time still is never the batches' choice."""
    from fable import benchmark

    batches = []

    def step_gaps_us(model, batch, sampling, warmup, steps):
        batches.append(batch)
        return np.full(steps, 50.0 if model.path.name == LSTM else 100.0)

    def pace(model, call, pace_ms, calls):
        return benchmark.Paced(call, pace_ms, 1.0, 1.0, 0.0)

    monkeypatch.setattr(benchmark, "step_gaps_us", step_gaps_us)
    monkeypatch.setattr(benchmark, "pace", pace)
    result = benchmark.tune(export / INT8, words=30, calls=1)
    assert set(batches) == {1, BATCH_SIZE}
    assert result.choices["stream"].file == export / LSTM and result.choices[BATCH].file != export / LSTM
    assert result.choices[BATCH].batched and result.choices[BATCH].batch_us == 100.0
    entry = json.loads(cache.read_text())["entries"][0]
    assert entry["choices"][BATCH] == str(result.choices[BATCH].file.resolve())
    assert all(f[BATCH]["micros"] == (50.0 if f["file"].endswith(LSTM) else 100.0) for f in entry["files"])
