"""The samplers draw from the distributions their settings define."""

from __future__ import annotations

import numpy as np
import pytest

from fable.sampling import Sampling, greedy, make_sampler

LOGITS = (np.random.default_rng(0).standard_normal(40) * 2).astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max())
    return p / p.sum()


def frequencies(sampling: Sampling, draws: int = 100_000) -> np.ndarray:
    sample = make_sampler(sampling)
    return np.bincount([sample(LOGITS) for _ in range(draws)], minlength=len(LOGITS)) / draws


def assert_matches(observed: np.ndarray, expected: np.ndarray, draws: int = 100_000) -> None:
    sigma = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(observed - expected) <= 5 * sigma + 1e-9), np.abs(observed - expected).max()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_temperature_sampling_follows_the_softmax(temperature):
    assert_matches(frequencies(Sampling(temperature=temperature, seed=1)), softmax(LOGITS / temperature))


def test_top_k_samples_the_renormalised_top_k():
    top = np.argsort(-LOGITS)[:5]
    expected = np.zeros(len(LOGITS))
    expected[top] = softmax(LOGITS[top] / 2.0)
    assert_matches(frequencies(Sampling(temperature=2.0, top_k=5, seed=2)), expected)


def test_top_p_samples_the_smallest_set_reaching_p():
    probs = softmax(LOGITS / 2.0)
    order = np.argsort(-probs)
    keep = order[: int(np.searchsorted(np.cumsum(probs[order]), 0.7)) + 1]
    expected = np.zeros(len(LOGITS))
    expected[keep] = probs[keep] / probs[keep].sum()
    assert_matches(frequencies(Sampling(temperature=2.0, top_p=0.7, seed=3)), expected)


def test_greedy_takes_the_first_of_equal_maxima():
    assert greedy(np.array([0.0, 2.0, 2.0, 1.0], np.float32)) == 1
    assert make_sampler(Sampling(temperature=5.0, top_k=1)) is greedy


def test_the_same_seed_draws_the_same_sequence():
    first, second = make_sampler(Sampling(1.0, seed=9)), make_sampler(Sampling(1.0, seed=9))
    assert [first(LOGITS) for _ in range(1000)] == [second(LOGITS) for _ in range(1000)]
