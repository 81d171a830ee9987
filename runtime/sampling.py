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
    """A function from logits [vocab] to a word id; one per generation, it owns its random state."""
    sampling.validate()
    if sampling.greedy:
        return greedy
    rng = np.random.default_rng(sampling.seed)
    inverse_t = 1.0 / sampling.temperature
    top_k, top_p = sampling.top_k, sampling.top_p
    if top_k is None and top_p is None:
        return _temperature_sampler(rng, sampling.temperature)

    def sample(logits: np.ndarray) -> int:
        scaled = logits.astype(np.float64) * inverse_t
        candidates = None  # ids allowed, most likely first; None: all of them
        if top_k is not None and top_k < len(scaled):
            candidates = np.argpartition(-scaled, top_k - 1)[:top_k]
        if top_p is not None and top_p < 1:
            ids = candidates if candidates is not None else np.arange(len(scaled))
            ids = ids[np.argsort(-scaled[ids], kind="stable")]
            probs = np.exp(scaled[ids] - scaled[ids[0]])
            cumulative = np.cumsum(probs)
            # The smallest prefix whose probability reaches top_p (at least one word).
            keep = int(np.searchsorted(cumulative, top_p * cumulative[-1], side="left")) + 1
            candidates = ids[:keep]
        pool = scaled if candidates is None else scaled[candidates]
        weights = np.exp(pool - pool.max())
        cumulative = np.cumsum(weights)
        pick = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), len(pool) - 1)
        return int(pick if candidates is None else candidates[pick])

    return sample


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
