"""The memorize preset's schedule: hold, then decay once accuracy reaches the ceiling or stops
improving, or the budget runs low; its budget follows the corpus; a resumed run keeps it."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')

from fable.training.config import PRESETS  # noqa: E402
from fable.training.schedule import Schedule  # noqa: E402

DEFAULT = PRESETS["memorize"]


def plateau(steps: int = 1000, **changes) -> Schedule:
    return Schedule(dataclasses.replace(DEFAULT, steps=steps, **changes))


def test_the_budget_is_passes_over_the_windows_with_a_floor():
    assert DEFAULT.steps is None
    assert DEFAULT.for_corpus(201).steps == DEFAULT.min_steps  # the fable: every window each step
    windows = 100_000
    assert DEFAULT.for_corpus(windows).steps == -(-DEFAULT.epochs * windows // DEFAULT.batch_size)
    assert dataclasses.replace(DEFAULT, steps=77).for_corpus(windows).steps == 77  # --steps caps it


def test_the_rate_warms_up_and_holds_while_accuracy_improves():
    schedule = plateau()
    rates = [schedule.rate(step) for step in range(1, 101)]
    assert rates[0] < rates[DEFAULT.warmup - 1] == pytest.approx(DEFAULT.learning_rate)
    assert set(rates[DEFAULT.warmup :]) == {DEFAULT.learning_rate}
    for step in range(10, 400, 10):
        schedule.observe(step, correct=step, reachable=1000)  # a new best at every evaluation
    assert schedule.decay_from is None and schedule.end == 1000


def test_reaching_the_ceiling_begins_a_decay_to_zero_and_ends_the_run():
    schedule = plateau()
    schedule.observe(90, correct=994, reachable=1000)  # 99.4%: not yet
    assert schedule.decay_from is None
    schedule.observe(100, correct=995, reachable=1000)
    assert schedule.decay_from == 100 and "99.5% of the ceiling" in schedule.reason
    assert schedule.end == 100 + DEFAULT.min_decay  # half of 100 is less than the least decay
    rates = [schedule.rate(step) for step in range(100, schedule.end + 1)]
    assert rates[0] == DEFAULT.learning_rate and rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_no_improvement_for_a_quarter_of_the_run_begins_the_decay():
    schedule = plateau(steps=10_000)
    schedule.observe(1000, correct=500, reachable=1000)
    for step in range(1010, 1250, 10):
        schedule.observe(step, correct=499, reachable=1000)
    assert schedule.decay_from is None  # 240 steps without a best: less than 25% of 1,240
    schedule.observe(1260, correct=500, reachable=1000)  # equal is not better
    assert schedule.decay_from is None
    schedule.observe(1340, correct=480, reachable=1000)
    assert schedule.decay_from == 1340 and "not improved for 340 steps" in schedule.reason
    assert schedule.end == 1340 + round(DEFAULT.decay_fraction * 1340)


def test_when_the_budget_runs_low_the_decay_ends_on_the_last_step():
    schedule = plateau(steps=1500)
    latest = schedule.latest_start()
    assert latest == 1000  # 1,000 + half of it is the budget
    rates = [schedule.rate(step) for step in range(1, 1501)]  # before any evaluation says so
    for step in range(10, 1501, 10):
        schedule.observe(step, correct=step, reachable=10_000)
    assert schedule.decay_from == latest and "budget" in schedule.reason and schedule.end == 1500
    assert [schedule.rate(step) for step in range(1, 1501)] == rates  # what was used is what it says
    assert rates[-1] == pytest.approx(0.0, abs=1e-12) and rates[latest - 1] == DEFAULT.learning_rate


def test_its_state_round_trips_and_a_finished_run_given_more_steps_says_what_changes():
    schedule = plateau()
    schedule.observe(100, correct=1000, reachable=1000)
    again = plateau(steps=5000)
    again.load_state(schedule.state())
    assert again.decay_from == 100 and again.end == schedule.end
    note = again.reopen(schedule.end)
    assert "holds the rate at 0.003 again" in note and "ceiling" in note
    assert again.decay_from is None and again.rate(schedule.end + 1) == DEFAULT.learning_rate
