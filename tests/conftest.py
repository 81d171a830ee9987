"""Fixtures: the fable, and models trained on it once per session."""

from __future__ import annotations

import os
import tempfile

import pytest

from .helpers import tiny_config

# A tune cache of this machine's user must not change what the tests measure: the whole session,
# subprocesses included, reads an empty cache of its own. Tests of the cache point it elsewhere.
os.environ["FABLE_CACHE_DIR"] = tempfile.mkdtemp(prefix="fable-test-cache-")


@pytest.fixture(scope="session")
def fable_corpus():
    from fable.training.corpus import load_corpus

    return load_corpus(None, 3)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, fable_corpus):
    """A tiny model trained on the fable; its checkpoint and folder."""
    from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from fable.training.train import train

    out = tmp_path_factory.mktemp("tiny")
    train(fable_corpus, tiny_config(steps=150), "cpu", out)
    return load_checkpoint(out / CHECKPOINT_NAME), out


@pytest.fixture(scope="session")
def default_run(tmp_path_factory, fable_corpus):
    """The default preset, trained for real on the fable (about 20 s on two cores)."""
    from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from fable.training.config import PRESETS
    from fable.training.train import train

    out = tmp_path_factory.mktemp("default")
    result = train(fable_corpus, PRESETS["default"], "cpu", out)
    return load_checkpoint(out / CHECKPOINT_NAME), result
