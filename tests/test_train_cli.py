"""fable-train as a command: every bad input is one line, exit 2, and --out is left as it was."""

from __future__ import annotations

import shutil

import pytest

torch = pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')

from fable.training.checkpoint import CHECKPOINT_NAME
from fable.training.metrics import read_metrics

from .helpers import invoke, run_command, snapshot


def fable_train(*args: str) -> tuple[int, str, str]:
    """The command in this process (torch loads once): exit code, stdout, stderr."""
    result = invoke("fable-train", *args)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def out(tmp_path):
    """An --out folder that already holds something to protect."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("earlier work")
    return folder


def corpus(tmp_path, data: bytes):
    path = tmp_path / "corpus.txt"
    path.write_bytes(data)
    return str(path)


BAD_CORPORA = {
    "empty": (b"", "has no words"),
    "whitespace only": (b" \n\t\n", "has no words"),
    "fewer than window + 1 tokens": (b"the old mouse", "needs at least 4"),
    "invalid UTF-8": (b"the old \xff\xfe mouse said", "not UTF-8"),
}


@pytest.mark.parametrize("case", BAD_CORPORA)
def test_a_corpus_that_cannot_train_is_refused(tmp_path, out, case):
    data, phrase = BAD_CORPORA[case]
    before = snapshot(out)
    code, _, err = fable_train("--corpus", corpus(tmp_path, data), "--out", str(out))
    assert (code, len(err.strip().splitlines())) == (2, 1) and phrase in err
    assert snapshot(out) == before


BAD_FLAGS = {
    "missing corpus": (["--corpus", "/nonexistent/corpus.txt"], "does not exist"),
    "corpus is a folder": (["--corpus", "/"], "not a file"),
    "zero steps": (["--steps", "0"], "'--steps'"),
    "negative steps": (["--steps", "-5"], "'--steps'"),
    "absurd steps": (["--steps", "1000000000000"], "'--steps'"),
    "zero hidden": (["--hidden", "0"], "'--hidden'"),
    "absurd hidden": (["--hidden", "1000000"], "'--hidden'"),
    "zero window": (["--window", "0"], "'--window'"),
    "absurd window": (["--window", "100000"], "'--window'"),
    "zero layers": (["--layers", "0"], "'--layers'"),
    "non-numeric steps": (["--steps", "many"], "--steps"),
    "unknown preset": (["--preset", "fastest"], "'--preset'"),
    "unknown device": (["--device", "tpu"], "'--device'"),
    "window longer than the corpus": (["--window", "64", "--corpus", "SMALL"], "needs at least 65"),
    "a refit of windows": (["--refit", "--preset", "predict", "--corpus", "SMALL"], "refit must be used with streams"),
}


@pytest.mark.parametrize("case", BAD_FLAGS)
def test_a_bad_flag_is_refused(tmp_path, out, case):
    args, phrase = BAD_FLAGS[case]
    small = corpus(tmp_path, b"one two three four five six seven")
    args = [small if a == "SMALL" else a for a in args]
    before = snapshot(out)
    code, _, err = fable_train(*args, "--out", str(out))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and phrase in err, err
    assert snapshot(out) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")
def test_cuda_without_cuda_is_refused(out):
    before = snapshot(out)
    code, _, err = fable_train("--device", "cuda", "--out", str(out))
    assert code == 2 and "no CUDA GPU" in err
    assert snapshot(out) == before


def test_resume_without_a_checkpoint_is_refused(out):
    before = snapshot(out)
    code, _, err = fable_train("--resume", "--out", str(out))
    assert code == 2 and f"no {CHECKPOINT_NAME}" in err
    assert snapshot(out) == before


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_resume_from_a_damaged_checkpoint_is_refused(tiny_run, out, damage):
    _, run = tiny_run
    good = (run / CHECKPOINT_NAME).read_bytes()
    if damage == "garbage":
        (out / CHECKPOINT_NAME).write_bytes(b"\x00not a checkpoint" * 100)
    elif damage == "truncated":
        (out / CHECKPOINT_NAME).write_bytes(good[: len(good) // 2])
    else:
        torch.save({"model": {"weight": torch.zeros(3)}}, out / CHECKPOINT_NAME)
    before = snapshot(out)
    code, _, err = fable_train("--resume", "--out", str(out))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and ("damaged" in err or "not a fable checkpoint" in err), err
    assert snapshot(out) == before


def test_a_fresh_run_never_overwrites_an_earlier_one(tiny_run, out):
    _, run = tiny_run
    shutil.copy(run / CHECKPOINT_NAME, out / CHECKPOINT_NAME)
    before = snapshot(out)
    code, _, err = fable_train("--out", str(out))
    assert code == 2 and "--resume" in err
    assert snapshot(out) == before


def test_resume_refuses_flags_that_contradict_the_checkpoint(tiny_run, out):
    _, run = tiny_run
    shutil.copy(run / CHECKPOINT_NAME, out / CHECKPOINT_NAME)
    before = snapshot(out)
    code, _, err = fable_train("--resume", "--hidden", "64", "--out", str(out))
    assert code == 2 and "--hidden 64" in err
    code, _, err = fable_train("--resume", "--steps", "10", "--out", str(out))
    assert code == 2 and "fewer than" in err
    assert snapshot(out) == before


def test_resume_with_another_corpus_is_refused(tmp_path, tiny_run, out):
    _, run = tiny_run
    shutil.copy(run / CHECKPOINT_NAME, out / CHECKPOINT_NAME)
    before = snapshot(out)
    code, _, err = fable_train("--resume", "--corpus", corpus(tmp_path, b"a b c d e f g h"), "--out", str(out))
    assert code == 2 and "not the one the checkpoint" in err
    assert snapshot(out) == before


def test_a_run_on_your_own_text_end_to_end(tmp_path):
    """Through a real process: a text file in, checkpoint, metrics, curves and summary out."""
    text = tmp_path / "mine.txt"
    text.write_text("the quick brown fox jumps over the lazy dog . " * 5, encoding="utf-8")
    out = tmp_path / "run"
    result = run_command("fable-train", "--corpus", str(text), "--steps", "30", "--hidden", "32",
                         "--eval-every", "10", "--out", str(out), "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {"checkpoint.pt", "metrics.jsonl", "curves.png"} <= set(snapshot(out))
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "of windows, ceiling 100.0%" in result.stdout and "on cpu" in result.stdout  # no context repeats
    assert all(row["ceiling"] == 1.0 for row in read_metrics(out / "metrics.jsonl"))
    assert "Traceback" not in result.stderr
    resumed = invoke(
        "fable-train", "--resume", "--corpus", str(text), "--steps", "40", "--out", str(out), "--no-progress"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step 30" in resumed.stdout and "step 40 of at most 40" in resumed.stdout


def test_evaluations_read_a_sample_along_the_way_and_every_window_at_the_end(tmp_path):
    out = tmp_path / "run"
    code, stdout, err = fable_train("--steps", "30", "--hidden", "32", "--eval-every", "10",
                                    "--eval-windows", "50", "--threads", "1", "--out", str(out), "--no-progress")  # fmt: skip
    assert code == 0, err
    rows = read_metrics(out / "metrics.jsonl")
    assert [(r["step"], r["windows"], r["sampled"]) for r in rows] == [(10, 50, True), (20, 50, True), (30, 201, False)]
    assert rows[-1]["eval_seconds"] > 0 and "evaluating took" in stdout
    assert f"{rows[-1]['correct']}/201" in stdout  # the summary's accuracy is over every window


def test_resume_may_change_how_often_it_evaluates_and_saves(tmp_path):
    out = tmp_path / "run"
    assert fable_train("--steps", "20", "--hidden", "32", "--eval-every", "10", "--out", str(out),
                       "--no-progress")[0] == 0  # fmt: skip
    code, stdout, err = fable_train("--resume", "--steps", "32", "--eval-every", "4", "--checkpoint-every",
                                    "8", "--out", str(out), "--no-progress")  # fmt: skip
    assert code == 0, err
    assert "this run had finished its schedule" in err and "holds the rate at 0.003 again" in err  # said plainly
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [10, 20, 24, 28, 32]
    assert torch.load(out / CHECKPOINT_NAME, weights_only=True)["config"]["eval_every"] == 4


def test_help_shows_each_presets_defaults_and_the_rule_that_picks_one():
    code, page, _ = fable_train("--help")
    assert code == 0
    flat = " ".join(page.split())
    assert "predict for a corpus of 2,000 tokens or more, else memorize" in flat
    assert "(predict 6, stream 64, memorize 3, tutorial 3)" in flat  # --window: the one that runs, not memorize's alone
    assert "(predict 256 or 512 by the corpus's size, stream 256 or 512 by the corpus's size, memorize 512, " \
           "tutorial 512)" in flat  # fmt: skip
    assert "(predict 2, stream 2, memorize 1, tutorial 1)" in flat
    assert "(predict 0.1, stream 0.1, memorize 0, tutorial 0)" in flat
    # --eval-every names where a size changes it, once: predict's millions keep 200
    assert "(predict 100, 200 from 200,000 windows, stream 50, 100 from 40,000 windows, memorize 10, " \
           "tutorial 1000)" in flat  # fmt: skip
    assert "(predict 2,500 or 3,400 or 5,000 by the corpus's size, stream 5,000 or 4,000 by the corpus's size" in flat


def test_the_tutorials_walk_trains_on_a_corpus_too_short_to_restart_anywhere(tmp_path):
    # 7 tokens, window 3: a restart at offset 4 would leave a window without a next word.
    code, stdout, stderr = fable_train("--corpus", corpus(tmp_path, b"a b c d e f g"), "--preset", "tutorial",
                                       "--steps", "40", "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 0, stderr
    assert "done: step 40" in stdout


def test_default_is_memorizes_old_name(tmp_path):
    code, stdout, stderr = fable_train("--preset", "default", "--steps", "2", "--hidden", "8", "--out",
                                       str(tmp_path / "run"))  # fmt: skip
    assert code == 0, stderr
    assert "memorize preset" in stdout
