"""Any prompt at all, made by hypothesis: vocabulary words back, or the runtime's own one-line error."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis", reason='property tests need hypothesis: pip install "fable[test]"')
from hypothesis import example, given
from hypothesis import strategies as st

import fable
from fable import FableError, Sampling
from fable.tokenizer import PUNCTUATION

from .helpers import SHIPPED

INT8 = SHIPPED / "fable.int8.onnx"


@pytest.fixture(scope="module")
def model():
    return fable.load(INT8)


VOCABULARY = fable.load(INT8).vocabulary
words = st.sampled_from(VOCABULARY)
separators = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u2003", "\r\n", ""])
known_prompts = st.lists(st.tuples(words, separators, st.booleans()), max_size=12).map(
    lambda parts: "".join((word.upper() if shout else word) + gap for word, gap, shout in parts)
)
any_unicode = st.text(st.characters(exclude_categories=()), max_size=60)  # every category, lone surrogates too
controls = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"]), max_size=30)
punctuation = st.text(st.sampled_from(PUNCTUATION + " "), min_size=1, max_size=10)
mixed = st.lists(st.one_of(words, any_unicode, punctuation, controls), max_size=8).map(" ".join)
long_prompts = st.tuples(st.one_of(words, any_unicode, punctuation), st.integers(1, 1_000_000)).map(
    lambda pair: ((pair[0] + " ") * (pair[1] // (len(pair[0]) + 1) + 1))[: pair[1]]
)
# Mostly prompts a user might type; about one in twenty up to a megabyte long.
prompts = st.one_of(
    *[known_prompts] * 6, *[any_unicode] * 4, *[mixed] * 4, *[controls] * 2, *[punctuation] * 2, long_prompts
)


@pytest.mark.long  # 300 examples by default, 10,000 with --long (the profiles: tests/conftest.py)
@given(prompt=prompts)
@example(prompt="long ago , " * 90_000 + "the old mouse")  # a megabyte that ends well
@example(prompt="\u0000\u202e\ud800 é" * 200_000)  # a megabyte of controls, a lone surrogate, accents
@example(prompt="x" * 1_000_000)  # one megabyte-long word
# one typed word cut into many unknown tokens that print as long escapes: once an error of 1,004 characters
@example(prompt="\u0fdb\U0001005e\U0001005e\U0001bca0" + "\U0003134b" * 4 + "\x1b\u070e\uffef\U0001d173" + "\U0003134b" * 4
         + "\U0001005e\U0001005f\U0003134b")  # fmt: skip
def test_any_prompt_gives_vocabulary_words_or_the_runtimes_own_error(model, prompt):
    try:
        words = list(model.stream(prompt, 3, Sampling(1.0, seed=0)))
    except FableError as error:
        assert "\n" not in str(error) and len(str(error)) < 1000
        return
    assert len(words) == 3 and all(word in VOCABULARY for word in words)
    assert model.tokens(model.detokenize(words, prompt)) == words  # the text reads back as the words
