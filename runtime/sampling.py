"""Choosing the next word from logits: greedy, or sampled with temperature, top-k and top-p."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import UsageError

Sampler = Callable[[np.ndarray], int]


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0  # 0: greedy, the most likely word every time
    top_k: int | None = None  # sample among the k most likely words only
    top_p: float | None = None  # sample among the most likely words whose probabilities reach p
    seed: int | None = None  # the same seed gives the same words

    def validate(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)) or self.temperature < 0:
            raise UsageError(f"temperature must be a finite number of 0 or more, not {self.temperature!r}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise UsageError(f"top_k must be a whole number of 1 or more, not {self.top_k!r}")
        if self.top_p is not None and not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise UsageError(f"top_p must be more than 0 and at most 1, not {self.top_p!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise UsageError(f"seed must be a whole number of 0 or more, not {self.seed!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


def greedy(logits: np.ndarray) -> int:
    return int(logits.argmax())  # the first of equal maxima: deterministic


def make_sampler(sampling: Sampling) -> Sampler:
    """A function from logits [vocab] to a word id; one per generation, it owns its random state.

    Top-k and top-p only choose which words may be drawn; the draw is always the same Gumbel-max
    sampler, over the others set to -inf.
    """
    sampling.validate()
    if sampling.greedy:
        return greedy
    draw = _temperature_sampler(np.random.default_rng(sampling.seed), sampling.temperature)
    if sampling.top_k is None and sampling.top_p is None:
        return draw
    top_k, top_p, temperature = sampling.top_k, sampling.top_p, sampling.temperature

    def sample(logits: np.ndarray) -> int:
        allowed = _allowed(logits, top_k, top_p, temperature)
        masked = np.full(len(logits), -np.inf)
        masked[allowed] = logits[allowed]
        return draw(masked)

    return sample


def _allowed(logits: np.ndarray, top_k: int | None, top_p: float | None, temperature: float) -> np.ndarray:
    """The ids top-k keeps, then the smallest prefix of them whose probability reaches top-p."""
    ids = np.argsort(-logits, kind="stable")
    if top_k is not None:
        ids = ids[:top_k]
    if top_p is not None and top_p < 1:
        scaled = logits[ids].astype(np.float64) / temperature
        cumulative = np.cumsum(np.exp(scaled - scaled[0]))
        ids = ids[: int(np.searchsorted(cumulative, top_p * cumulative[-1], side="left")) + 1]
    return ids


def _temperature_sampler(rng: np.random.Generator, temperature: float, most: int = 256) -> Sampler:
    """Plain temperature sampling by the Gumbel-max trick: argmax(logits + T * G), G ~ Gumbel(0, 1),
    is an exact draw from softmax(logits / T). It runs once per word, on the hot path: one add and
    one argmax. The noise comes from the seeded generator in blocks of words that start small (a
    short generation pays for little) and double up to `most`."""
    noise = np.empty((0, 0))
    row = 0
    scratch = np.empty(0)

    def sample(logits: np.ndarray) -> int:
        nonlocal noise, row, scratch
        if row == len(noise) or noise.shape[1] != len(logits):
            rows = min(most, max(8, 2 * len(noise)))
            noise, row = rng.gumbel(0.0, temperature, size=(rows, len(logits))), 0
            scratch = np.empty(len(logits))
        np.add(logits, noise[row], out=scratch)
        row += 1
        return int(scratch.argmax())

    return sample
