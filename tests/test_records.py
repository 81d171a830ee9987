"""The JSON of a generation (fable.records): made at once for `fable-run --json`, or a step at a
time for fable-serve, by the same rule."""

from __future__ import annotations

import fable
from fable import Sampling
from fable.records import generation_record, generation_steps


def _finish(steps) -> tuple[int, dict]:
    """How many times `steps` paused, and the record it returned."""
    pauses = 0
    while True:
        try:
            next(steps)
        except StopIteration as end:
            return pauses, end.value
        pauses += 1


def _without_timings(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "timings"}


def test_a_record_made_in_steps_is_the_record_made_at_once():
    model, sampling = fable.load(), Sampling(0.8, seed=1)
    whole = generation_record(model, "the old mouse", 150, sampling)
    pauses, stepped = _finish(generation_steps(model, "the old mouse", 150, sampling, every=64))
    assert pauses == 2  # after the 64th and the 128th word
    assert _without_timings(stepped) == _without_timings(whole) and len(whole["words"]) == 150
    assert list(stepped["timings"]) == ["first_word_ms", "total_ms", "words_per_second"]
    assert whole["text"] == model.generate("the old mouse", 150, sampling)
