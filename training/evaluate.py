"""Measuring a torch model on windows, and the plain greedy decode the exports are held against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .model import WordLSTM

CHUNK = 8192  # windows per forward pass, to bound memory on large corpora


@dataclass(frozen=True)
class Evaluation:
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
    """[N, window] ids → [N, vocab] logits, on the model's device, in chunks."""
    device = next(model.parameters()).device
    contexts = torch.as_tensor(contexts, device=device)
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(contexts[i : i + CHUNK]) for i in range(0, len(contexts), CHUNK)])
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: WordLSTM, contexts: torch.Tensor, labels: torch.Tensor) -> Evaluation:
    logits = logits_of(model, contexts)
    labels = labels.to(logits.device)
    loss = F.cross_entropy(logits, labels, reduction="sum").item() / len(labels)
    correct = int((logits.argmax(dim=1) == labels).sum())
    return Evaluation(loss=loss, correct=correct, windows=len(labels))


@torch.no_grad()
def greedy_continuations(model: WordLSTM, contexts: np.ndarray, words: int) -> np.ndarray:
    """The plain decode: for each context [N, window], `words` greedy next words [N, words], each
    from the whole last window and a zero state, all contexts in lockstep."""
    window = contexts.shape[1]
    sequences = np.array(contexts, dtype=np.int64)
    for _ in range(words):
        chosen = logits_of(model, sequences[:, -window:]).argmax(dim=1).cpu().numpy()
        sequences = np.concatenate([sequences, chosen[:, None]], axis=1)
    return sequences[:, window:]
