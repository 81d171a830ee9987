"""Choosing the next word from logits: greedy, or sampled with temperature, top-k and top-p."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import check_number, check_whole

Sampler = Callable[[np.ndarray], int]


# The range of each setting, once: Sampling checks them, the CLI's flags declare them.
MIN_TEMPERATURE = 0.0
# Past this the draw is as good as uniform over the allowed words, and the noise's scale stays far
# from overflowing float64 (1e308 made it inf, and NaN won the argmax).
MAX_TEMPERATURE = 1000.0
MIN_TOP_K = 1
MAX_TOP_K = 10_000_000  # past any vocabulary: it means all of it
MAX_TOP_P = 1.0  # and more than 0
MIN_SEED = 0
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Sampling:
    """How the next word is chosen; checked when it is made, so a Sampling in hand is valid. Numpy
    scalars are taken, and kept as Python's own numbers."""

    temperature: float = 0.0  # 0: greedy, the most likely word every time
    top_k: int | None = None  # sample among the k most likely words only
    top_p: float | None = None  # sample among the most likely words whose probabilities reach p
    seed: int | None = None  # the same seed gives the same words

    def __post_init__(self) -> None:
        t, k, p, seed = self.temperature, self.top_k, self.top_p, self.seed
        checked = {
            "temperature": check_number("temperature", t, MIN_TEMPERATURE, MAX_TEMPERATURE),
            "top_k": None if k is None else check_whole("top_k", k, MIN_TOP_K, MAX_TOP_K),
            "top_p": None if p is None else check_number("top_p", p, 0, MAX_TOP_P, above_low=True),
            "seed": None if seed is None else check_whole("seed", seed, MIN_SEED, MAX_SEED),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


GREEDY = Sampling()


def greedy(logits: np.ndarray) -> int:
    return int(logits.argmax())  # the first of equal maxima: deterministic


def make_sampler(sampling: Sampling, banned: int | None = None) -> Sampler:
    """A function from logits [vocab] to a word id; one per generation, it owns its random state.
    `banned`: an id it never returns (a model's <unk>).

    Top-k and top-p only choose which words may be drawn; the draw is always the same Gumbel-max
    sampler, over the others set to -inf.
    """
    sample = _sampler(sampling)
    if banned is None:
        return sample

    def without_banned(logits: np.ndarray) -> int:
        logits = logits.copy()  # the decoder's buffer stays as it was
        logits[banned] = -np.inf
        return sample(logits)

    return without_banned


def _sampler(sampling: Sampling) -> Sampler:
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
        # relative to the best, then scaled: a tiny temperature gives -inf (probability 0), never inf - inf
        with np.errstate(over="ignore"):
            scaled = (logits[ids].astype(np.float64) - float(logits[ids[0]])) / temperature
        cumulative = np.cumsum(np.exp(scaled))
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
