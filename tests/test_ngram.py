"""The n-gram yardstick (training/ngram.py): a distribution for every context, Kneser-Ney's by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fable.training.ngram import KneserNey

from .helpers import fable_tokens
from .ngram_reference import KneserNey as Reference


@pytest.fixture(scope="module")
def fable_ids():
    tokens = fable_tokens()
    index = {word: i for i, word in enumerate(dict.fromkeys(tokens))}
    return [index[t] for t in tokens], len(index)


def test_every_distribution_sums_to_1_and_gives_every_word_a_chance(fable_ids):
    ids, vocab = fable_ids
    model = KneserNey([ids[:120], ids[130:]], vocab, order=4)
    rng = np.random.default_rng(0)
    contexts = [ids[i : i + 3] for i in range(0, len(ids) - 3, 7)] + [
        list(rng.integers(0, vocab, 3)) for _ in range(20)
    ]
    for context in contexts:  # seen contexts and never-seen ones
        p = model.distribution(context)
        assert p.shape == (vocab,) and abs(p.sum() - 1) < 1e-9 and (p > 0).all()


def test_the_probabilities_are_kneser_neys_worked_by_hand():
    """A corpus of three words, order 2, where every discount is the fixed 0.75 (too few counts to
    estimate them): p(b | a) = (c(a b) - D) / c(a) + gamma(a) p_cont(b), with the continuation
    unigram itself interpolated with the uniform distribution."""
    a, b, c = 0, 1, 2
    model = KneserNey([[a, b, a, b, a, c]], 3, order=2)
    # bigrams: (a b) x2, (b a) x2, (a c) x1; continuation counts: b after 1 word type, a after 1
    # (b), c after 1 (a); plus a at the segment's start counts once: a 1, b 1, c 1 (a already seen after b)
    unigram_total = 3
    p_cont = {
        w: (1 - 0.75) / unigram_total + 0.75 * 3 / unigram_total / 3 for w in (a, b, c)
    }  # discounted, then gamma x uniform
    gamma_a = 0.75 * 2 / 3  # two word types followed a, three times in all
    expected_b = (2 - 0.75) / 3 + gamma_a * p_cont[b]
    assert model.distribution([a])[b] == pytest.approx(expected_b)
    assert model.distribution([a]).sum() == pytest.approx(1.0)
    assert model.distribution([c]) == pytest.approx(
        np.array([p_cont[a], p_cont[b], p_cont[c]])
    )  # c was never a context


def test_the_sparse_distributions_are_the_dense_ones(fable_ids):
    """The teacher's form (a base times a weight, plus the higher orders' values) gives each
    context's distribution: row for row the same as `distribution`, and each sums to 1."""
    ids, vocab = fable_ids
    model = KneserNey([ids], vocab, order=4)
    contexts = np.array([ids[i : i + 5] for i in range(0, len(ids) - 5, 3)] + [[0, 1, 2, 3, 4]])
    dense = model.distributions(contexts).dense()
    assert dense.shape == (len(contexts), vocab)
    assert np.allclose(dense.sum(axis=1), 1, atol=1e-5)
    for row, context in zip(dense, contexts):
        assert np.allclose(row, model.distribution(context), atol=1e-6)


def _zipf_corpus(seed: int, vocab: int, dtype: type) -> list[np.ndarray]:
    """Segments of Zipf-like ids over the lower part of a vocabulary (its top ids never occur),
    with short ones (shorter than an n-gram, empty) among them, so contexts repeat and end early."""
    rng = np.random.default_rng(seed)
    lengths = [0, 1, 2, 3, *rng.integers(5, 600, 6)]
    return [((rng.zipf(1.6, length) - 1) % (vocab - 5)).astype(dtype) for length in rng.permutation(lengths)]


@pytest.mark.parametrize("seed, vocab, order", [(0, 30, 4), (1, 12, 4), (2, 60, 3), (3, 25, 2), (4, 40, 5), (5, 20, 1)])
def test_the_counted_model_is_the_reference_one(seed, vocab, order):
    """The numpy counting gives the dict-based implementation's discounts, lowest order and every
    distribution: for contexts seen, never seen, holding ids that never occur, and of several widths."""
    segments = _zipf_corpus(seed, vocab, np.int32 if seed % 2 else np.int64)
    model, reference = KneserNey(segments, vocab, order), Reference(segments, vocab, order)
    assert model.discounts == reference.discounts
    assert np.abs(model.base - reference.base).max() < 1e-12
    rng = np.random.default_rng(seed)
    ids = np.concatenate(segments)
    width = max(order - 1, 1) + 2
    seen = np.stack([ids[i : i + width] for i in rng.integers(0, len(ids) - width, 300)])
    unseen = rng.integers(0, vocab, (100, width))  # mostly never seen, ids that never occur among them
    mixed = np.concatenate([seen, unseen])
    for contexts in (mixed, seen[:, -(order - 1) or None :], unseen[:, -1:]):
        ours = model.distributions(contexts).dense(dtype=np.float64)
        theirs = reference.distributions(contexts).dense(dtype=np.float64)
        assert ours.shape == theirs.shape == (len(contexts), vocab)
        assert np.abs(ours - theirs).max() < 1e-12
        assert np.allclose(ours.sum(axis=1), 1, atol=1e-12)
    assert np.abs(model.distribution(ids[:2]) - reference.distribution(ids[:2])).max() < 1e-12
    distributions, rows = model.distributions(mixed), np.array([3, 0, 3, len(mixed) - 1])
    assert np.array_equal(distributions.dense(rows), distributions.dense()[rows])  # some rows, repeated


def test_ids_outside_the_vocabulary_are_refused():
    with pytest.raises(ValueError):
        KneserNey([np.array([0, 1, 5])], 5)


def test_a_model_of_nothing_is_the_uniform_distribution():
    model = KneserNey([np.zeros(0, np.int64)], 7)
    assert np.allclose(model.distributions(np.zeros((3, 3), np.int64)).dense(dtype=np.float64), 1 / 7)
