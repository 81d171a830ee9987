"""The JSON of a generation, one shape for `fable-run --json` and `fable-serve` (suggestions and
scores: `fable.predict`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator
from dataclasses import asdict
from typing import Any

from .model import Model
from .sampling import Sampling


def generation_record(model: Model, prompt: str, words: int, sampling: Sampling) -> dict[str, Any]:
    """Generate, and say what was made, with which settings, how fast."""
    steps = generation_steps(model, prompt, words, sampling, every=words)
    while True:
        try:
            next(steps)
        except StopIteration as end:
            return end.value


def generation_steps(
    model: Model, prompt: str, words: int, sampling: Sampling, every: int
) -> Generator[None, None, dict[str, Any]]:
    """`generation_record` a step at a time: a yield after every `every` words made, and the record
    as the generator's value (fable-serve takes turns at its slots between steps). Its time runs
    from the first step to the last, pauses between steps included. Closing it midway closes the
    model's stream, so its decoder goes back to the model's pool."""
    started = time.perf_counter()
    made: list[str] = []
    first_ms = None
    with contextlib.closing(model.stream(prompt, words, sampling)) as stream:
        for word in stream:
            made.append(word)
            first_ms = first_ms if first_ms is not None else 1000 * (time.perf_counter() - started)
            if len(made) % every == 0:
                yield
    total_ms = 1000 * (time.perf_counter() - started)
    return {
        "prompt": prompt,
        "words": made,
        "text": model.detokenize(made, prompt),
        "model": str(model.path),
        "settings": {"words": words, **asdict(sampling), **run_settings(model)},
        "timings": {"first_word_ms": round(first_ms or 0.0, 3), "total_ms": round(total_ms, 3),
                    "words_per_second": round(len(made) / (total_ms / 1000), 1) if made else 0.0},
    }  # fmt: skip


def run_settings(model: Model) -> dict[str, Any]:
    """What runs the model, and why those settings (given, tuned on this machine, or the defaults)."""
    return {"backend": model.backend, "threads": model.threads, "spin": model.spin, "why": model.settings}
