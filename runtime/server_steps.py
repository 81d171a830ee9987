"""The model work of fable-serve's answers as generators, a step (from one yield to the next) of
at most CHUNK model steps each, so that requests take turns at the slots and one whose client has
gone, or whose deadline has passed, stops after the step under way (fable/server_work.py)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Generator, Iterator
from typing import Any

from . import predict, records
from .model import Model
from .predict import TextScore
from .prompt import Reading
from .sampling import Sampling

# Model steps (words read or made) a request runs before it waits its turn again: about 20 ms on
# a laptop's core, so a short request waits a few of these behind long ones, never a whole one.
CHUNK = 64


def score_steps(model: Model, reading: Reading) -> Generator[None, None, TextScore]:
    """`fable.predict.score` of `reading`, CHUNK words a step."""
    return predict.score_steps(model, reading, CHUNK)


def generation_steps(
    model: Model, prompt: str, words: int, sampling: Sampling
) -> Generator[None, None, dict[str, Any]]:
    """`fable.records.generation_record`, CHUNK words a step (its timings count the turns waited)."""
    return records.generation_steps(model, prompt, words, sampling, every=CHUNK)


def stream_turn(stream: Iterator[str]) -> tuple[list[tuple[str, float]], Exception | None]:
    """The next CHUNK words of a stream (fewer at its end), each with the time it was made, and
    the error that stopped it midway, if one did: the words made before it are still sent."""
    made: list[tuple[str, float]] = []
    try:
        for word in itertools.islice(stream, CHUNK):
            made.append((word, time.perf_counter()))
    except Exception as problem:  # noqa: BLE001 - told after the words made before it
        return made, problem
    return made, None
