"""What each training step sees: random windows, or the tutorial's walk over the text."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fable.tokenizer import make_windows


class WindowBatches:
    """`batch_size` windows drawn without replacement each step; all of them when there are fewer."""

    def __init__(self, ids: np.ndarray, window: int, batch_size: int, device: str, generator: torch.Generator):
        contexts, labels = make_windows(ids, window)
        self.contexts = torch.from_numpy(contexts).to(device)  # [N, window]
        self.labels = torch.from_numpy(labels).to(device)  # [N]
        self.batch_size = batch_size
        self.generator = generator

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        count = len(self.labels)
        if self.batch_size >= count:
            return self.contexts, self.labels
        picked = torch.randperm(count, generator=self.generator)[: self.batch_size].to(self.contexts.device)
        return self.contexts[picked], self.labels[picked]

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

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.offset > len(self.ids) - (self.window + 1):
            self.offset = self._restart()
        start, end = self.offset, self.offset + self.window
        self.offset += self.window + 1
        return self.ids[start:end].unsqueeze(0), self.ids[end : end + 1]

    def state(self) -> dict[str, Any]:
        return {"offset": self.offset}

    def load_state(self, state: dict[str, Any]) -> None:
        self.offset = int(state["offset"])
