"""The learning rate of each step, and when a run of the default preset has learned what it can.

The default preset warms up, holds its rate, and decays to zero once accuracy reaches the
corpus's ceiling or stops improving, or when its step budget is running out (a "warm-up, stable,
decay" schedule). The decay is what turns a model that is nearly right into one that is right:
on python-reference read with tokenizer version 1 (65,919 windows), holding 3e-3 reached 96% of
the ceiling, and decaying from there 99% (bench/results/preset-choice-intel-xeon.txt, docs/design.md
"Training until it is done"). When the decay began is the one thing
a resumed run must know beyond the step, so it lives in the checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .config import TrainConfig


@dataclass
class Schedule:
    config: TrainConfig
    decay_from: int | None = None  # the step the decay began after; None while holding
    reason: str = ""  # why it began
    best: int = -1  # the most sample windows right so far
    best_step: int = 0  # and when

    @property
    def decays(self) -> bool:
        return self.config.schedule == "plateau"

    def decay_steps(self, start: int) -> int:
        return max(self.config.min_decay, round(self.config.decay_fraction * start))

    def _end_for(self, start: int) -> int:
        return min(self.config.steps, start + self.decay_steps(start))

    @property
    def end(self) -> int:
        """The last step: where the decay ends, or the step budget."""
        if self.decays and self.decay_from is not None:
            return self._end_for(self.decay_from)
        return self.config.steps

    def latest_start(self) -> int:
        """The last step the decay may begin after and still end within the budget."""
        steps, c = self.config.steps, self.config
        return max(0, min(steps - c.min_decay, math.floor(steps / (1 + c.decay_fraction))))

    def rate(self, step: int) -> float:
        """The rate for step `step` (1-based)."""
        c = self.config
        if c.schedule == "constant":
            return c.learning_rate
        if step <= c.warmup:
            return c.learning_rate * step / c.warmup
        start = self.decay_from if self.decay_from is not None else self.latest_start()
        if step <= start:
            return c.learning_rate
        return _half_cosine(c.learning_rate, step - start, self._end_for(start) - start)

    def observe(self, step: int, correct: int, reachable: int) -> None:
        """After an evaluation of the fixed sample: `correct` of its windows right, `reachable` the
        most any model gets right there. Begins the decay when the sample is at `decay_from_ceiling`
        of that, or has not improved for `patience_fraction` of the steps so far, or the budget
        runs out."""
        if not self.decays or self.decay_from is not None:
            return
        if correct > self.best:
            self.best, self.best_step = correct, step
        patience = max(self.config.min_patience, round(self.config.patience_fraction * step))
        if correct >= self.config.decay_from_ceiling * reachable:
            self._begin(step, f"at step {step} accuracy reached {self.config.decay_from_ceiling:.1%} of the ceiling")
        elif step - self.best_step >= patience:
            self._begin(step, f"at step {step} accuracy had not improved for {step - self.best_step} steps")
        elif step >= self.latest_start():  # the rate has been decaying since then (`rate`)
            latest = self.latest_start()
            self._begin(latest, f"at step {latest} the budget of {self.config.steps} steps ran low")

    def reopen(self, step: int) -> str:
        """A finished run given more steps: hold the full rate again from `step`, and decay anew.
        Says so, since it is not the schedule the run began with."""
        done = self.reason
        self.decay_from, self.reason, self.best, self.best_step = None, "", -1, step
        return (
            f"this run had finished its schedule ({done}, then decayed to step {step}); with --steps "
            f"{self.config.steps} it holds the rate at {self.config.learning_rate:g} again and decays anew"
        )

    def _begin(self, step: int, reason: str) -> None:
        self.decay_from, self.reason = step, reason

    def state(self) -> dict[str, Any]:
        return {"decay_from": self.decay_from, "reason": self.reason, "best": self.best, "best_step": self.best_step}

    def load_state(self, state: dict[str, Any]) -> None:
        self.decay_from = state.get("decay_from")
        self.reason = str(state.get("reason", ""))
        self.best = int(state.get("best", -1))
        self.best_step = int(state.get("best_step", 0))


def _half_cosine(rate: float, done: int, length: int) -> float:
    """`rate` after `done` of `length` steps of a half cosine down to zero (zero past its end)."""
    return rate * 0.5 * (1 + math.cos(math.pi * min(1.0, done / max(1, length))))


@dataclass
class KeepBest:
    """Early stopping for text the model has not seen (the predict preset): the weights of the
    best validation perplexity so far are kept (never the test part's: training/split.py). Once
    `patience` evaluations in a row have not beaten it, the rate is cut to `cut` of itself, up to
    `cuts` times, and then training stops. The weights go back to the best ones at the end."""

    patience: int
    cuts: int = 0
    cut: float = 0.25
    best: float = math.inf
    best_step: int = 0
    since: int = 0  # evaluations without a new best
    made: int = 0  # cuts made so far
    stopped_at: int | None = None

    @property
    def scale(self) -> float:
        """What the rate is multiplied by now."""
        return self.cut**self.made

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def observe(self, step: int, perplexity: float) -> bool:
        """After an evaluation of the validation part: True when it is a new best (keep these weights)."""
        if perplexity < self.best:
            self.best, self.best_step, self.since = perplexity, step, 0
            return True
        self.since += 1
        if self.since >= self.patience and self.made < self.cuts:
            self.made, self.since = self.made + 1, 0
        elif self.since >= self.patience:
            self.stopped_at = step
        return False

    def reason(self, step: int) -> str:
        """Why a run that ended at `step` holds the weights it holds."""
        if not self.stopped:
            if not self.best_step or self.best_step == step:
                return ""
            return (f"the budget ended at step {step}; it kept the weights of step {self.best_step}, "
                    f"the best validation perplexity")  # fmt: skip
        cuts = f" (after cutting the rate {self.made} times)" if self.made else ""
        return (f"validation perplexity had not improved for {self.since} evaluations since step {self.best_step}{cuts}, "
                f"so it stopped at step {self.stopped_at} and kept the weights of step {self.best_step}")  # fmt: skip

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "since": self.since, "made": self.made,
                "stopped_at": self.stopped_at}  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        self.best = float(state.get("best", math.inf))
        self.best_step = int(state.get("best_step", 0))
        self.since = int(state.get("since", 0))
        self.made = int(state.get("made", 0))
        self.stopped_at = state.get("stopped_at")
