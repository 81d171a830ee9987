"""Sampling for any setting at all, made by hypothesis: a setting out of bounds is refused when made,
and for every accepted one the word comes from the set the settings define and is never banned."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason='property tests need hypothesis: pip install "fable[test]"')
from hypothesis import example, given
from hypothesis import strategies as st

from fable import SettingError
from fable.sampling import MAX_TEMPERATURE, MAX_TOP_K, Sampling, make_sampler

VOCAB = 40
DRAWS = 32  # per setting: enough that a word let in by mistake is drawn
temperatures = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 5e-324, 1e-300, MAX_TEMPERATURE])
)
top_ks = st.one_of(st.none(), st.integers(-5, 3 * VOCAB), st.sampled_from([MAX_TOP_K, MAX_TOP_K + 1, 10**100]))
top_ps = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([5e-324, 1e-12, 1.0]))
logits = st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=VOCAB, max_size=VOCAB).map(
    lambda v: np.array(v, np.float32)
)


def allowed(z: np.ndarray, sampling: Sampling, banned: int) -> set[int]:
    """The ids the settings allow, from their definitions: the top_k likeliest words other than the
    banned one, then the fewest of those whose probability at this temperature reaches top_p.
    Exactly: the weights are the float64 numbers the sampler sums (exp of the logit less the best,
    over the temperature), added one by one here, so no rounding needs a word of slack."""
    order = [i for i in sorted(range(VOCAB), key=lambda i: (-float(z[i]), i)) if i != banned]
    if sampling.greedy:
        return {order[0]}
    kept = order[: sampling.top_k] if sampling.top_k is not None else order
    if sampling.top_p is not None and sampling.top_p < 1:
        with np.errstate(over="ignore"):
            weights = np.exp((z[kept].astype(np.float64) - float(z[kept[0]])) / sampling.temperature).tolist()
        total = 0.0
        for weight in weights:
            total += weight
        running = 0.0
        for n, weight in enumerate(weights, 1):
            running += weight
            if running >= sampling.top_p * total:
                return set(kept[:n])
    return set(kept)


@pytest.mark.long  # 300 examples by default, 10,000 with --long
@given(temperature=temperatures, top_k=top_ks, top_p=top_ps, seed=st.integers(0, 2**32), z=logits,
       banned=st.integers(0, VOCAB - 1))  # fmt: skip
@example(temperature=1e308, top_k=2, top_p=None, seed=0, z=np.arange(VOCAB, dtype=np.float32), banned=VOCAB - 1)
@example(temperature=MAX_TEMPERATURE, top_k=2, top_p=None, seed=1, z=np.arange(VOCAB, dtype=np.float32), banned=0)
@example(temperature=1e-300, top_k=None, top_p=0.5, seed=2, z=np.linspace(0, 30, VOCAB, dtype=np.float32), banned=5)
# the top-p set is the likeliest word alone (73%): a sampler that lets the next one in draws it about 1 time in 4
@example(temperature=1.0, top_k=None, top_p=0.5, seed=3, z=np.array([5, 4] + [-30] * (VOCAB - 2), np.float32), banned=9)
def test_any_sampling_is_refused_when_made_or_draws_only_what_it_allows(temperature, top_k, top_p, seed, z, banned):
    try:
        sampling = Sampling(temperature, top_k, top_p, seed)
    except SettingError as error:
        assert "\n" not in str(error)
        assert not (0 <= temperature <= MAX_TEMPERATURE) or (top_k is not None and not 1 <= top_k <= MAX_TOP_K) or (
            top_p is not None and not 0 < top_p <= 1)  # fmt: skip
        return
    sample = make_sampler(sampling, banned=banned)
    for _ in range(DRAWS):
        word = sample(z)
        assert word != banned and word in allowed(z, sampling, banned), (word, sampling)
