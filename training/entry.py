"""fable-train and fable-export start here. A plain install has the runtime only: this module
imports nothing that needs the `train` extra, so it can say which extra to install instead of
failing on the first `import torch`."""

from __future__ import annotations

from fable.cli import require_extra

TRAIN_EXTRA = ("torch", "onnx", "matplotlib", "tqdm")


def train() -> None:
    require_extra("fable-train", "train", TRAIN_EXTRA)
    from .cli import entry

    entry()


def export() -> None:
    require_extra("fable-export", "train", TRAIN_EXTRA)
    from .export.cli import entry

    entry()
