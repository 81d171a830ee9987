"""What each training step sees: random windows of the corpus's id stream, or the tutorial's walk.

Windows are gathered from the ids on the model's device by index arithmetic at each step (the
corpus stays 4 bytes a token there and 8 a window start), so a step moves nothing
between the host and a GPU but a teacher's targets, made for the step's rows alone.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from .distributed import ONE, World
from .ngram import Distributions

# A step's batch: contexts [B, window], the words that came [B], and where the recipe mixes in a
# teacher's distributions, the targets [B, vocab] (each row sums to 1); else None. Under torchrun
# B is this process's share of the step's rows.
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class Teacher(Protocol):
    def distributions(self, contexts: np.ndarray) -> Distributions: ...


def mixed_targets(
    teacher: Teacher | None, share: float, contexts: np.ndarray, labels: torch.Tensor
) -> torch.Tensor | None:
    """Targets [B, vocab]: the word that came (`labels` [B]) with weight 1 - share, and the
    teacher's distribution after each of `contexts` [B, k] with weight `share`; None without one."""
    if teacher is None or share == 0:
        return None
    targets = torch.from_numpy(teacher.distributions(contexts).dense())  # [B, vocab] float32
    if labels.device.type == "cuda":
        targets = targets.pin_memory().to(labels.device, non_blocking=True)
    targets *= share
    targets[torch.arange(len(labels), device=labels.device), labels] += 1 - share
    return targets


class WindowBatches:
    """`batch_size` windows (of those beginning at `starts`) drawn without replacement each step;
    all of them when there are fewer. With `teacher` and `share`, a step's target is the word that
    came with weight 1 - share plus the teacher's distribution for the window with weight `share`."""

    def __init__(
        self,
        ids: np.ndarray,
        starts: np.ndarray,
        window: int,
        batch_size: int,
        device: str,
        generator: torch.Generator,
        teacher: Teacher | None = None,
        share: float = 0.0,
        world: World = ONE,
    ):
        self.ids = torch.from_numpy(np.asarray(ids, np.int32)).to(device)  # [tokens]
        self.starts = torch.from_numpy(np.asarray(starts, np.int64)).to(device)  # [N]
        self.offsets = torch.arange(window + 1, device=device)
        self.batch_size = batch_size
        self.generator = generator
        self.teacher, self.share = teacher, share
        self.world = world

    def next(self) -> Batch:
        count = len(self.starts)
        if self.batch_size >= count:
            picked = torch.arange(count)
        else:
            picked = torch.randperm(count, generator=self.generator)[: self.batch_size]
        rows = self.ids[self.starts[self.world.share(picked).to(self.starts.device)][:, None] + self.offsets].long()
        x, y = rows[:, :-1], rows[:, -1]
        return x, y, self._targets(x, y)

    def _targets(self, contexts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        return mixed_targets(self.teacher, self.share, contexts.cpu().numpy(), labels)

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class TutorialWalk:
    """The rnn-words tutorial's sampler: one window at a time, stepping `window + 1` tokens along the
    text, restarting at a random offset in [0, window + 1] when the text runs out (in a text too
    short for that, at an offset that still leaves a whole window)."""

    def __init__(self, ids: np.ndarray, window: int, device: str, generator: torch.Generator):
        self.ids = torch.from_numpy(np.asarray(ids, np.int64)).to(device)
        self.window = window
        self.generator = generator
        self.offset = self._restart()

    def _restart(self) -> int:
        last = min(self.window + 1, len(self.ids) - (self.window + 1))  # load_corpus ensures one window: >= 0
        return int(torch.randint(0, last + 1, (1,), generator=self.generator))

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
