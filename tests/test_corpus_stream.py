"""A corpus read as a stream of ids: the same tokens as the whole text, whatever the pieces; the
same vocabulary as counting the tokens; windows as positions; a large corpus's ids mapped from
the cache beside its run, and never from a cache of another file."""

from __future__ import annotations

import collections
import hashlib

import numpy as np
import pytest

pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')

from fable import textfile
from fable.errors import UsageError
from fable.tokenizer import UNKNOWN, build_vocabulary, tokenize
from fable.training import corpus as corpus_module
from fable.training.corpus import load_corpus, read_corpus, save_cache
from fable.training.split import split

from .helpers import ROOT

# Words across lines, marks, a byte-order mark, and characters of 2, 3 and 4 bytes, so that small
# pieces cut through every kind of character and every kind of token.
TEXT = "\ufeffThe old Mouse said: «it is easy» — naïve ΣΑΣ café 😀 to propose, impossible remedies.\n" * 40


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("space", [" ", "\t", "\r"])
def test_pieces_of_any_size_read_the_tokens_and_hash_of_the_whole_file(tmp_path, monkeypatch, piece, space):
    path = tmp_path / "t.txt"
    path.write_bytes((TEXT + "the last line has no line break").replace(" ", space).replace("\n", space).encode())
    monkeypatch.setattr(textfile, "PIECE_BYTES", piece)
    text = read_corpus(path)
    assert text.tokens() == tokenize(path.read_bytes().decode("utf-8-sig"))
    assert text.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert text.ids.dtype == np.int32


def test_a_byte_that_is_not_utf8_is_named_where_it_is(tmp_path, monkeypatch):
    path = tmp_path / "t.txt"
    good = ("é" * 10 + " word ").encode() * 5  # 130 bytes
    path.write_bytes(good + b"\xff rest")
    monkeypatch.setattr(textfile, "PIECE_BYTES", 3)
    with pytest.raises(UsageError, match=r"not UTF-8 text \(invalid byte at offset 130\)"):
        read_corpus(path)
    with pytest.raises(UsageError, match=r"invalid byte at offset 130\)"):  # as the whole-file reader says
        textfile.read_text_file(path, "corpus file", "")


@pytest.mark.parametrize("options", [{}, {"min_count": 2}, {"min_count": 2, "max_vocab": 500}, {"max_vocab": 40}])
def test_the_vocabulary_and_ids_are_those_of_counting_the_training_tokens(options):
    path = ROOT / "training" / "corpora" / "gpl-3.txt"
    corpus = load_corpus(path, 3, holdout=0.1, **options)
    tokens = tokenize(path.read_text(encoding="utf-8"))  # counted here with Python's Counter
    training = [t for start, end in split(len(tokens), 0.1).train for t in tokens[start:end]]
    counts = collections.Counter(training)
    frequent = [w for w, n in counts.most_common() if n >= options.get("min_count", 1)]
    if "max_vocab" in options:
        frequent = frequent[: options["max_vocab"] - 1]  # each case leaves words out: <unk> takes a place
    kept = set(frequent)
    assert corpus.vocabulary == build_vocabulary([t if t in kept else UNKNOWN for t in training])
    index = {w: i for i, w in enumerate(corpus.vocabulary)}
    unknown = index.get(UNKNOWN, -1)
    assert corpus.ids.tolist() == [index[t] if t in kept else unknown for t in tokens]


def test_windows_are_positions_in_the_stream(fable_corpus):
    starts = fable_corpus.starts(3)
    contexts, labels = fable_corpus.windows(3)
    assert starts.tolist() == list(range(201))
    assert (contexts == np.stack([fable_corpus.ids[s : s + 3] for s in starts])).all()
    assert (labels == fable_corpus.ids[starts + 3]).all()


def test_a_large_corpus_is_mapped_from_its_runs_cache_and_only_for_the_same_file(tmp_path, monkeypatch):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    read = read_corpus(path)
    save_cache(read, run)
    assert not list(run.iterdir())  # a small corpus is read again: no cache
    monkeypatch.setattr(corpus_module, "CACHE_FROM_TOKENS", 10)
    save_cache(read, run)
    cached = read_corpus(path, cache=run)
    assert isinstance(cached.ids, np.memmap) and (cached.ids == read.ids).all() and cached.words == read.words
    assert load_corpus(cached, 3).vocabulary == load_corpus(read, 3).vocabulary
    assert not isinstance(read_corpus(path, 1, cache=run).ids, np.memmap)  # another tokenizer: read again
    path.write_text(TEXT + " more", encoding="utf-8")
    fresh = read_corpus(path, cache=run)  # another file at the same path: read again
    assert not isinstance(fresh.ids, np.memmap) and len(fresh.ids) == len(read.ids) + 1
    save_cache(fresh, run)
    for name, damage in ((corpus_module.CACHE_WORDS, b"[]"), (corpus_module.CACHE_WORDS, b'{"sha256": 1}'),
                         (corpus_module.CACHE_IDS, b"damaged")):  # fmt: skip
        (run / name).write_bytes(damage)
        assert not isinstance(read_corpus(path, cache=run).ids, np.memmap)  # read again, no traceback


def test_a_corpus_of_a_million_tokens_holds_4_bytes_a_token(tmp_path):
    words = [f"w{i}" for i in range(5000)]
    rng = np.random.default_rng(0)
    path = tmp_path / "big.txt"
    path.write_text(" ".join(np.array(words)[rng.zipf(1.3, 1_000_000) % 5000]), encoding="utf-8")
    corpus = load_corpus(path, 6, min_count=2, holdout=0.1)
    assert len(corpus.ids) == 1_000_000 and corpus.ids.nbytes == 4_000_000
    assert len(corpus.starts(6)) + len(corpus.starts(6, "heldout")) > 990_000
