"""Helpers for the tests: truths read from the fable, small recipes, running the commands for real."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

from fable.tokenizer import tokenize

ROOT = Path(__file__).resolve().parents[1]
FABLE = ROOT / "training" / "fable.txt"
SHIPPED = ROOT / "exported"


def fable_tokens() -> list[str]:
    return tokenize(FABLE.read_text(encoding="utf-8"))


def fable_continuation(prompt: str, words: int) -> str:
    """What the fable itself says after the first place it says `prompt`."""
    tokens, wanted = fable_tokens(), tokenize(prompt)
    start = next(i for i in range(len(tokens)) if tokens[i : i + len(wanted)] == wanted) + len(wanted)
    return " ".join(tokens[start : start + words])


# The golden words: the corpus's own continuation of the tutorial's prompt, as the tutorial's
# tokens, and as the text fable gives back (the words, not the detokenizer's).
GOLDEN_TOKENS = fable_continuation("the old mouse", 9)  # "said it is easy to propose impossible remedies ."
GOLDEN = "said it is easy to propose impossible remedies."


def fable_windows(window: int = 3) -> list[tuple[tuple[str, ...], str]]:
    """(context, next word) for every window of the fable, read from the text itself."""
    tokens = fable_tokens()
    return [(tuple(tokens[i : i + window]), tokens[i + window]) for i in range(len(tokens) - window)]


def unambiguous_windows(window: int = 3) -> list[tuple[tuple[str, ...], str]]:
    """The windows whose context is always followed by the same word in the fable."""
    followers = defaultdict(set)
    for context, word in fable_windows(window):
        followers[context].add(word)
    return [(c, w) for c, w in fable_windows(window) if len(followers[c]) == 1]


# Export guards for tiny models, which are less sure of themselves than the shipped one: int8 may
# flip a near tie there. ExportOptions(**LENIENT).
LENIENT = {"min_int8_agreement": 0.9, "max_int8_accuracy_drop": 5.0}


def streamed_runs(model, contexts, words: int):
    """Each context's greedy continuation [N, words] as the runtime streams it: every context
    decoded together (`stream_batch_ids`, the loop `generate` runs for one prompt)."""
    import numpy as np

    runs: list[list[int]] = [[] for _ in contexts]
    for index, token in model.stream_batch_ids(contexts, words):
        runs[index].append(token)
    return np.array(runs, np.int64).reshape(len(contexts), words)


def tiny_config(preset: str = "memorize", steps: int = 60, **model: object):
    """A recipe that trains in about a second: what tests need to exercise the machinery."""
    from fable.training.config import PRESETS

    base = PRESETS[preset]
    model_config = dataclasses.replace(base.model, **{"hidden": 32, "embedding_dim": 16, **model})
    learning_rate = 1e-2 if base.optimizer == "adam" else base.learning_rate
    return dataclasses.replace(base, model=model_config, steps=steps, eval_every=10, checkpoint_every=20,
                               learning_rate=learning_rate, warmup=min(base.warmup, 5))  # fmt: skip


def command_line(name: str) -> list[str]:
    """How to start one of fable's installed commands from this Python's environment."""
    script = Path(sys.executable).parent / name
    if not script.exists():
        found = shutil.which(name)
        assert found, f"{name} is not installed; pip install -e . first"
        script = Path(found)
    return [str(script)]


def command_env(env: dict | None = None) -> dict:
    environment = {**os.environ, **(env or {})}
    environment.pop("FABLE_DEBUG", None)
    return environment


def run_command(name: str, *args: str, input: str | None = None, cwd: Path | None = None, timeout: float = 300,
                env: dict | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run one of fable's commands as a user would: its installed script in a new process, its real
    exit code and output."""
    return subprocess.run(
        [*command_line(name), *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=timeout,
        env=command_env(env),
    )


# Where each command's typer app lives: `invoke` runs it in this process.
APPS = {
    "fable-run": "fable.cli.run",
    "fable-bench": "fable.cli.bench",
    "fable-serve": "fable.cli.serve",
    "fable-train": "fable.training.cli",
    "fable-export": "fable.training.export.cli",
}


def invoke(name: str, *args: str, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run one of fable's commands in this process: the code its script runs (`run_app` with its
    exit codes and one-line errors), without starting an interpreter and importing torch again.
    Each command also has one test through its real installed script (`run_command`)."""
    from fable.cli import run_app
    from fable.errors import log

    app = importlib.import_module(APPS[name]).app
    out, err = io.StringIO(), io.StringIO()
    environment = {key: value for key, value in command_env(env).items() if key != "FABLE_DEBUG"}
    level = log.level
    with (
        mock.patch.dict(os.environ, environment, clear=True),
        mock.patch.object(sys, "stdin", io.StringIO(input or "")),
        mock.patch.object(log, "handlers", []),  # run_app adds the commands' own, printing on `err`
        mock.patch.object(log, "propagate", False),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            run_app(app, name, list(args))
        except SystemExit as exit_:
            code = exit_.code
        finally:
            log.setLevel(level)  # run_app's INFO stays with the command
    return subprocess.CompletedProcess([name, *args], code, out.getvalue(), err.getvalue())


def start_command(name: str, *args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start a command with pipes on all three streams, for tests that talk to it or interrupt it."""
    return subprocess.Popen(
        [*command_line(name), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd or ROOT,
        env=command_env(env),
    )


def assert_clean_failure(result: subprocess.CompletedProcess, code: int, *phrases: str) -> None:
    """Exit `code`, one line on stderr that names the problem, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


def md_table(text: str) -> list[dict[str, str]]:
    """The rows of the Markdown table in a command's output, each a dict by the header's names."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row)) for row in cells[2:]] if len(cells) > 2 else []


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def wait_until(condition, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Poll `condition` until it holds; fail on timeout, or if `process` ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """fable-serve on a free port of 127.0.0.1: the process and its URL. Its standard error is read
    as it comes (a server that logs into a full pipe would stop); `stop_server` returns it."""
    process = start_command("fable-serve", "--port", "0", *args)
    line = process.stdout.readline()  # "fable-serve: fable.int8.onnx (onnxruntime) on http://127.0.0.1:PORT  (...)"
    assert " on http://127.0.0.1:" in line, (line, process.poll() is not None and process.communicate())
    logged: list[str] = []
    reader = threading.Thread(target=lambda: logged.extend(process.stderr), daemon=True)
    reader.start()
    process.logged, process.log_reader = logged, reader  # type: ignore[attr-defined]
    return process, line.split(" on ")[1].split()[0]


def stop_server(process: subprocess.Popen) -> tuple[int, str]:
    """Ctrl-C the server: its exit code and everything it wrote on standard error."""
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    process.log_reader.join(timeout=30)  # type: ignore[attr-defined]
    process.stdout.close()
    return process.returncode, "".join(process.logged)  # type: ignore[attr-defined]


def help_options(text: str) -> dict[str, str]:
    """Each option of a plain --help page and the text that describes it."""
    options, current = {}, None
    for line in text.splitlines():
        match = re.match(r"\s{2}(?:-\w, )?(--[\w-]+)", line)
        if match:
            current = match.group(1)
            options[current] = line
        elif current and line.startswith("    "):
            options[current] += " " + line.strip()
    return options


def check_help(name: str, flags: set[str], defaults: set[str]) -> None:
    """`name --help`: switches show no value placeholder, the other options show their defaults."""
    result = invoke(name, "--help")
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout
    options = help_options(result.stdout)
    for flag in flags:
        assert re.match(rf"\s+(-\w, )?{flag}\s{{2,}}\w", options[flag]), options[flag]
    for option in defaults:
        assert "[default:" in options[option], options[option]


def keys_typing(model, tokens: list[str]) -> int:
    """The keys a person presses typing `tokens` (those after the first window) with a keyboard
    that shows 3 suggestions from `model.typing()` before each letter: a word shown is taken with
    one key, or the next letter is typed, and every word ends with a key (presage's rule)."""
    keys = 0
    with model.typing() as typing:
        for i in range(model.window, len(tokens)):
            before, word = " ".join(tokens[:i]) + " ", tokens[i]
            for typed in range(len(word) + 1):
                if typed == len(word) or word in [s.word for s in typing.suggest(before + word[:typed], 3)]:
                    keys += typed + 1
                    break
    return keys


def fable_with_words(invented: list[str], words: int, first: int, every: int) -> list[str]:
    """The fable's words in order, again and again, `words` of them, with the `invented` words in
    turn at `first`, `first + every`, ...: words no model of the fable knows, each coming back."""
    tokens = fable_tokens()
    text = [tokens[i % len(tokens)] for i in range(words)]
    for n, i in enumerate(range(first, words, every)):
        text[i] = invented[n % len(invented)]
    return text
