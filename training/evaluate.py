"""Measuring a torch model on windows, and the plain greedy decode the exports are held against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from fable.evaluation import NOTHING, evaluation_of
from fable.evaluation import Evaluation as TextEvaluation

from .model import WordLSTM

CHUNK = 8192  # windows per forward pass, to bound memory on large corpora
CHUNK_LOGITS = 1 << 25  # and logits per pass (128 MB of float32): fewer windows for a large vocabulary


def chunk_rows(vocab: int) -> int:
    """Windows per pass for a vocabulary of `vocab` words."""
    return max(64, min(CHUNK, CHUNK_LOGITS // max(1, vocab)))


@dataclass(frozen=True)
class Fit:
    """How well a model fits the windows it trains on (fable.evaluation.Evaluation measures text
    it has not seen, as the runtime does)."""

    loss: float  # mean cross-entropy over all windows
    correct: int  # windows whose most likely next word is the corpus's
    windows: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.windows

    @property
    def perplexity(self) -> float:
        return float(np.exp(min(self.loss, 50.0)))


@torch.no_grad()
def logits_of(model: WordLSTM, contexts: np.ndarray | torch.Tensor) -> torch.Tensor:
    """[N, window] ids → [N, vocab] logits, on the model's device, in chunks: for a few windows at a
    time (`evaluate` and `held_out` read many windows a chunk at a time)."""
    device = next(model.parameters()).device
    contexts = torch.as_tensor(contexts, device=device)
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(contexts[i : i + CHUNK]) for i in range(0, len(contexts), CHUNK)])
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: WordLSTM, contexts: torch.Tensor, labels: torch.Tensor) -> Fit:
    loss, correct, rows = 0.0, 0, chunk_rows(model.vocab_size)
    for start in range(0, len(labels), rows):
        logits = logits_of(model, contexts[start : start + rows])
        chunk = labels[start : start + rows].to(logits.device)
        loss += F.cross_entropy(logits, chunk, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == chunk).sum())
    return Fit(loss=loss / len(labels), correct=correct, windows=len(labels))


def held_out(model: WordLSTM, contexts: np.ndarray, labels: np.ndarray, banned: int | None) -> TextEvaluation:
    """Top-1, top-3 and perplexity on held-out windows, computed as the runtime computes them for
    any text (`fable.evaluation`): `banned` (<unk>) is never a suggestion, nor among `labels`."""
    total, rows = NOTHING, chunk_rows(model.vocab_size)
    for start in range(0, len(labels), rows):
        logits = logits_of(model, contexts[start : start + rows]).float().cpu().numpy()
        total += evaluation_of(logits, labels[start : start + rows], banned)
    return total


def greedy_continuations(model: WordLSTM, contexts: np.ndarray, words: int) -> np.ndarray:
    """The plain greedy decode with torch: each context's `words` next words [N, words], each from
    the whole last window and a zero state."""
    return greedy_decode(lambda windows: logits_of(model, windows).argmax(dim=1).cpu().numpy(), contexts, words)


def greedy_decode(
    next_words: Callable[[np.ndarray], np.ndarray], contexts: np.ndarray, words: int, first: np.ndarray | None = None
) -> np.ndarray:
    """Each context's greedy continuation [N, words], where `next_words` maps windows [M, window]
    to their most likely next word [M] (`first` [N]: the contexts' own, when already known).

    A model reads only its window, so the next word is fixed by the last `window` words: each
    distinct window met is asked once, in one batch per step, however many continuations pass
    through it. On a corpus they mostly retrace its text: on GPL-3, 5,000 windows x 32 words met
    5,360 distinct windows, not 160,000."""
    window = contexts.shape[1]
    known: dict[tuple[int, ...], int] = {}
    if first is not None:
        known.update(zip(map(tuple, contexts.tolist()), first.tolist()))
    sequences = np.zeros((len(contexts), window + words), np.int64)
    sequences[:, :window] = contexts
    for step in range(words):
        keys = list(map(tuple, sequences[:, step : step + window].tolist()))
        new = list(dict.fromkeys(key for key in keys if key not in known))
        if new:
            known.update(zip(new, np.asarray(next_words(np.array(new, np.int64))).tolist()))
        sequences[:, window + step] = [known[key] for key in keys]
    return sequences[:, window:]
