"""The JSON of a generation, one shape for `fable-run --json` and `fable-serve` (suggestions and
scores: `fable.predict`)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from .model import Model
from .sampling import Sampling


def generation_record(model: Model, prompt: str, words: int, sampling: Sampling) -> dict[str, Any]:
    """Generate, and say what was made, with which settings, how fast."""
    started = time.perf_counter()
    made, first_ms = [], None
    for word in model.stream(prompt, words, sampling):
        made.append(word)
        first_ms = first_ms if first_ms is not None else 1000 * (time.perf_counter() - started)
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
