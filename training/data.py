"""What each training step sees: random windows, or the tutorial's walk over the text."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .ngram import Distributions

# A step's batch: contexts [B, window], the words that came [B], and where the recipe mixes in a
# teacher's distributions, the targets [B, vocab] (each row sums to 1); else None.
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class WindowBatches:
    """`batch_size` windows drawn without replacement each step; all of them when there are fewer.
    With `teacher` (its distributions for each window) and `share`, a step's target is the word
    that came with weight 1 - share plus the teacher's distribution with weight `share`."""

    def __init__(
        self,
        contexts: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        device: str,
        generator: torch.Generator,
        teacher: Distributions | None = None,
        share: float = 0.0,
    ):
        self.contexts = torch.from_numpy(contexts).to(device)  # [N, window]
        self.labels = torch.from_numpy(labels).to(device)  # [N]
        self.batch_size = batch_size
        self.generator = generator
        self.teacher, self.share = teacher, share

    def next(self) -> Batch:
        count = len(self.labels)
        if self.batch_size >= count:
            picked = torch.arange(count)
        else:
            picked = torch.randperm(count, generator=self.generator)[: self.batch_size]
        x, y = self.contexts[picked.to(self.contexts.device)], self.labels[picked.to(self.labels.device)]
        return x, y, self._targets(picked, y)

    def _targets(self, picked: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        if self.teacher is None or self.share == 0:
            return None
        targets = torch.from_numpy(self.teacher.dense(picked.numpy())).to(labels.device) * self.share
        targets[torch.arange(len(labels), device=labels.device), labels] += 1 - self.share
        return targets

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class TutorialWalk:
    """The rnn-words tutorial's sampler: one window at a time, stepping `window + 1` tokens along the
    text, restarting at a random offset in [0, window + 1] when the text runs out."""

    def __init__(self, ids: np.ndarray, window: int, device: str, generator: torch.Generator):
        self.ids = torch.from_numpy(ids).to(device)
        self.window = window
        self.generator = generator
        self.offset = self._restart()

    def _restart(self) -> int:
        return int(torch.randint(0, self.window + 2, (1,), generator=self.generator))

    def next(self) -> Batch:
        if self.offset > len(self.ids) - (self.window + 1):
            self.offset = self._restart()
        start, end = self.offset, self.offset + self.window
        self.offset += self.window + 1
        return self.ids[start:end].unsqueeze(0), self.ids[end : end + 1], None

    def state(self) -> dict[str, Any]:
        return {"offset": self.offset}

    def load_state(self, state: dict[str, Any]) -> None:
        self.offset = int(state["offset"])
