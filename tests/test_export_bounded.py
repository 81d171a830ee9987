"""fable-export on a large corpus: an even sample of each part, compared a bounded chunk at a time.

The memory of a real 2.2M-token export is measured in bench/test_export_memory.py, on the
checkpoint `synthetic_checkpoint` makes here in seconds.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='needs the train extra: pip install "fable[train]"')
pytest.importorskip("onnx", reason='needs the train extra: pip install "fable[train]"')

import fable
from fable.contract import ModelConfig
from fable.tokenizer import UNKNOWN
from fable.training import evaluate
from fable.training.checkpoint import Checkpoint
from fable.training.config import PRESETS
from fable.training.export import report
from fable.training.export.exporter import REPORT_NAME, ExportOptions, export_checkpoint
from fable.training.model import WordLSTM


def synthetic_checkpoint(tokens: int, vocabulary: int, hidden: int = 32, seed: int = 0) -> Checkpoint:
    """What the export reads of a run of the predict preset on a corpus of `tokens` ids over
    `vocabulary` words: the ids drawn as words come (the n-th most frequent 1/n as often), random
    weights of `hidden` units. Made in seconds, where training on such a corpus takes hours."""
    rng = np.random.default_rng(seed)
    frequency = 1 / np.arange(1, vocabulary + 1)
    ids = rng.choice(vocabulary, size=tokens, p=frequency / frequency.sum()).astype(np.int64)
    model = ModelConfig(window=6, hidden=hidden, embedding_dim=hidden)
    config = dataclasses.replace(PRESETS["predict"], steps=1, model=model, sizes=())
    torch.manual_seed(seed)
    weights = WordLSTM(model, vocabulary, tie=True).state_dict()
    words = [UNKNOWN] + [f"w{i}" for i in range(1, vocabulary)]
    return Checkpoint(config=config, vocabulary=words, corpus_name="synthetic", corpus_sha256="0" * 64, ids=ids,
                      step=1, elapsed=0.0, accuracy=0.0, device="cpu", model_state=weights, optimizer_state={},
                      rng_state={}, schedule_state={})  # fmt: skip


@pytest.mark.slow
def test_a_large_corpus_is_measured_on_an_even_sample_a_chunk_at_a_time(tmp_path, monkeypatch):
    """With every default but the quantized files' guards (random weights): no logits of more than
    a chunk of windows are ever asked for, of torch or of a file, and each part is measured on an
    even sample of its limit (5,000 windows trained on; of the test part, here 4,000 of its 6,000
    held out), which the table states."""
    checkpoint = synthetic_checkpoint(120_000, 1000, hidden=8)
    monkeypatch.setattr(report, "CHUNK_BYTES", 512 * 4 * 1000, raising=False)  # chunks of 512 windows
    asked = []
    real_torch, real_runtime = evaluate.logits_of, fable.Model.window_logits

    def torch_logits(model, contexts):
        asked.append(("torch", len(contexts)))
        return real_torch(model, contexts)

    def runtime_logits(self, contexts):
        asked.append(("runtime", len(contexts)))
        return real_runtime(self, contexts)

    monkeypatch.setattr(report, "logits_of", torch_logits, raising=False)
    monkeypatch.setattr(evaluate, "logits_of", torch_logits)
    monkeypatch.setattr(fable.Model, "window_logits", runtime_logits)
    loose = ExportOptions(min_int8_agreement=0, max_int8_accuracy_drop=100, max_heldout_perplexity_rise=100,
                          max_heldout_windows=4000)  # fmt: skip
    result = export_checkpoint(checkpoint, "synthetic.pt", tmp_path, loose)
    assert max(size for _, size in asked) == 512 and {who for who, _ in asked} == {"torch", "runtime"}
    saved = json.loads((tmp_path / REPORT_NAME).read_text())
    trained, held = checkpoint.windows(), checkpoint.windows("test")
    assert all(f["windows"] == 5000 and f["heldout"]["words"] == 4000 for f in saved["files"].values())
    assert (saved["windows_measured"], saved["windows_total"]) == (5000, len(trained[1]))
    assert (saved["heldout_windows_measured"], saved["heldout_windows_total"]) == (4000, len(held[1]))
    assert f"an even sample of 5,000 of {len(trained[1]):,} windows" in result.table
    assert f"held out: an even sample of 4,000 of {len(held[1]):,} windows" in result.table
    picked = np.linspace(0, len(trained[1]) - 1, 5000).round().astype(int)  # spread over the whole corpus
    chosen = real_torch(checkpoint.build_model(), trained[0][picked]).argmax(dim=1).numpy()
    assert saved["torch"]["correct"] == int((chosen == trained[1][picked]).sum())
