"""Fixtures shared by the whole run: the fable, and models trained and exported once per session.

`pytest --long` is the long profile (CI runs it): the tests marked `long` run at full size."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import pytest

from .helpers import LENIENT, ROOT, tiny_config

# A tune cache of this machine's user must not change what the tests measure: the whole session,
# subprocesses included, reads an empty cache of its own. Tests of the cache point it elsewhere.
os.environ["FABLE_CACHE_DIR"] = tempfile.mkdtemp(prefix="fable-test-cache-")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="run the tests marked long at full size (CI does)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long: bounded by default; full size with --long")
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:
        return
    quiet = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}
    settings.register_profile("fable", max_examples=300, **quiet)
    settings.register_profile("fable-long", max_examples=10_000, **quiet)
    settings.load_profile("fable-long" if config.getoption("--long") else "fable")


@pytest.fixture(scope="session")
def long_profile(request: pytest.FixtureRequest) -> bool:
    return request.config.getoption("--long")


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
def tiny_export(tiny_run, tmp_path_factory):
    """tiny_run exported (fp32, int8 and int4) with lenient guards: its checkpoint, folder and result."""
    from fable.training.checkpoint import CHECKPOINT_NAME
    from fable.training.export.exporter import ExportOptions, export_checkpoint

    checkpoint, _ = tiny_run
    out = tmp_path_factory.mktemp("exported")
    result = export_checkpoint(checkpoint, CHECKPOINT_NAME, out, ExportOptions(**LENIENT, int4=True))
    return checkpoint, out, result


@pytest.fixture(scope="session")
def default_run(tmp_path_factory, fable_corpus):
    """The memorize preset, trained for real on the fable (about 7 s on two cores)."""
    from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from fable.training.config import PRESETS
    from fable.training.train import train

    out = tmp_path_factory.mktemp("memorize")
    result = train(fable_corpus, PRESETS["memorize"].for_corpus(fable_corpus.window_count(3)), "cpu", out)
    return load_checkpoint(out / CHECKPOINT_NAME), result


# Other shapes than the default, each trained once at a quarter of the default width until it is
# confident, as a trained model is (a half-trained one sits on near-ties, where int8 activations and
# float ones may pick differently), and exported with int4 and lenient guards.
SHAPES = {"1 layer": dict(layers=1), "window 5": dict(window=5), "index encoding": dict(encoding="index")}


@pytest.fixture(scope="session")
def shape_export(tmp_path_factory, fable_corpus):
    """shape_export(name) → the export folder of the SHAPES model `name`, trained on first use
    (the train extra is imported then, so a test can skip without it first)."""
    made: dict[str, Path] = {}

    def export(name: str) -> Path:
        from fable.training.export.exporter import ExportOptions, export_checkpoint
        from fable.training.train import train

        if name not in made:
            shape = SHAPES[name]
            config = dataclasses.replace(tiny_config(steps=300, hidden=128, **shape), learning_rate=3e-3)
            if shape.get("encoding") == "index":  # the index encoding learns little in 300 steps of 3e-3
                config = dataclasses.replace(config, steps=200, learning_rate=1e-2)
            work = tmp_path_factory.mktemp(name.replace(" ", "-"))
            checkpoint = train(fable_corpus, config, "cpu", work / "run").checkpoint
            loose = ExportOptions(int4=True, min_int8_agreement=0.0, max_int8_accuracy_drop=100.0)
            export_checkpoint(checkpoint, "run", work / "exported", loose)
            made[name] = work / "exported"
        return made[name]

    return export


@pytest.fixture(scope="session")
def unk_model(tmp_path_factory):
    """A tiny model of the fable with its words seen once read as <unk> (the most frequent token).
    Shared: a test that learns words loads its own `fable.Model(unk_model.path)`."""
    pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')
    import fable
    from fable.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from fable.training.corpus import load_corpus
    from fable.training.export.exporter import ExportOptions, export_checkpoint
    from fable.training.train import train

    out = tmp_path_factory.mktemp("unk")
    corpus = load_corpus(None, 3, min_count=2)
    train(corpus, dataclasses.replace(tiny_config(steps=120), min_count=2), "cpu", out)
    loose = ExportOptions(min_int8_agreement=0, max_int8_accuracy_drop=100)
    export_checkpoint(load_checkpoint(out / CHECKPOINT_NAME), CHECKPOINT_NAME, out / "exported", loose)
    return fable.Model(out / "exported" / "fable.onnx")


@pytest.fixture(scope="session")
def stream_export(tmp_path_factory):
    """A tiny stream model (it reads the whole text so far) of the GPL-3 corpus, trained for a few
    seconds with a validation and a test part, and exported with lenient guards: its checkpoint,
    the export folder, and the corpus."""
    pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')
    from fable.training.corpus import load_corpus
    from fable.training.export.exporter import ExportOptions, export_checkpoint
    from fable.training.train import train

    config = dataclasses.replace(tiny_config("stream", steps=120, window=12, hidden=32, embedding_dim=32),
                                 batch_size=8, bptt=20, eval_every=40, distill=0.5)  # fmt: skip
    gpl = ROOT / "training" / "corpora" / "gpl-3.txt"
    corpus = load_corpus(gpl, 12, config.tokenizer_version, config.min_count, None, config.holdout)
    work = tmp_path_factory.mktemp("stream")
    checkpoint = train(corpus, config, "cpu", work / "run").checkpoint
    export_checkpoint(checkpoint, "run", work / "exported", ExportOptions(**LENIENT, max_heldout_perplexity_rise=0.1))
    return checkpoint, work / "exported", corpus
