"""Writes tests/data/stream.onnx and tests/data/stream.json: a tiny model that reads the whole text
(the stream graph, with a cache), and what PyTorch and the cache's formula say of it, computed
here. The runtime-only tests (CI's steps 2 and 2b, and a Raspberry Pi) hold the runtime to them
without torch: tests/test_stream_file.py.

    python tools/make_stream_test_model.py

A few seconds on a CPU; deterministic on one machine (torch's CPU kernels may round differently
elsewhere, within the tests' tolerance).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from fable import contract
from fable.contract import CacheSettings
from fable.training.config import PRESETS
from fable.training.corpus import load_corpus
from fable.training.export.exporter import ExportOptions, export_checkpoint
from fable.training.train import train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
CACHE = CacheSettings(size=20, flatness=1.0, weight=0.3)  # set, not chosen: the test holds the formula
TEXT_FROM = 30_000  # characters into the GPL-3 corpus: a stretch of its training part


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def main() -> None:
    torch.manual_seed(0)
    base = PRESETS["stream"]
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, window=12, hidden=32, embedding_dim=32),
                                 steps=200, batch_size=8, bptt=20, eval_every=50, checkpoint_every=200,
                                 learning_rate=1e-2, sizes=())  # fmt: skip
    gpl = ROOT / "training" / "corpora" / "gpl-3.txt"
    corpus = load_corpus(gpl, 12, config.tokenizer_version, config.min_count, None, config.holdout)
    with tempfile.TemporaryDirectory() as work:
        checkpoint = train(corpus, config, "cpu", Path(work) / "run", threads=1).checkpoint
        loose = ExportOptions(min_int8_agreement=0.9, max_int8_accuracy_drop=5.0, max_heldout_perplexity_rise=0.1)
        export_checkpoint(checkpoint, "run", Path(work) / "exported", loose)
        model = onnx.load(Path(work) / "exported" / "fable.onnx")
    props = {p.key: p.value for p in model.metadata_props} | {contract.KEY_CACHE: json.dumps(dataclasses.asdict(CACHE))}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, DATA / "stream.onnx")

    vocabulary = checkpoint.vocabulary
    index = {word: i for i, word in enumerate(vocabulary)}
    words = gpl.read_text(encoding="utf-8")[TEXT_FROM:].split()[:60]
    ids = [index[w] for w in words if w in index][:48]
    net = checkpoint.build_model()
    with torch.no_grad():
        logits, top, _ = net.read(torch.tensor([ids]))
    logits, top = logits[0].double().numpy(), top[0].double().numpy()
    alone = softmax(logits)
    cached = alone.copy()
    for t in range(1, len(ids)):
        pairs = range(max(0, t - CACHE.size), t)
        votes = softmax(np.array([CACHE.flatness * top[t] @ top[j] for j in pairs]))
        cache = np.zeros(len(vocabulary))
        for j, vote in zip(pairs, votes):
            cache[ids[j + 1]] += vote
        cached[t] = (1 - CACHE.weight) * alone[t] + CACHE.weight * cache
    labels = ids[1:]
    truth = {
        "ids": ids,
        "log_p_alone": [float(np.log(alone[t, w])) for t, w in enumerate(labels)],
        "log_p_cached": [float(np.log(cached[t, w])) for t, w in enumerate(labels)],
        "greedy_alone": alone[:-1].argmax(axis=1).tolist(),
        "greedy_cached": cached[:-1].argmax(axis=1).tolist(),
    }
    (DATA / "stream.json").write_text(json.dumps(truth) + "\n", encoding="utf-8")
    print(f"wrote {DATA / 'stream.onnx'} ({(DATA / 'stream.onnx').stat().st_size:,} bytes) and {DATA / 'stream.json'}")


if __name__ == "__main__":
    main()
