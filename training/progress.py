"""A progress bar with live loss and accuracy, on standard error."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """`bar=False` draws nothing but still prints `write` lines (the tutorial's reports)."""

    def __init__(self, total: int, bar: bool = True):
        self.total = total
        self.bar = bar
        self._bar: Any = None  # a tqdm bar, imported only when one is drawn

    def start(self, initial: int) -> None:
        if self.bar:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=initial, unit="step", file=sys.stderr, dynamic_ncols=True)

    def update(self, step: int, loss: float, accuracy: float | None) -> None:
        if self._bar is None:
            return
        self._bar.update(step - self._bar.n)
        if step % 10 == 0 or step == self.total:  # redrawing the postfix every step costs more than a step
            postfix = {"loss": f"{loss:.4f}"}
            if accuracy is not None:
                postfix["acc"] = f"{accuracy * 100:.1f}%"
            self._bar.set_postfix(postfix, refresh=False)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
