"""fable-train and fable-export start here. A plain install has the runtime only: this module
imports nothing that needs the `train` extra, so it can say which extra to install instead of
failing on the first `import torch`."""

from __future__ import annotations

import importlib

from fable.cli import EXIT_USAGE, fail

TRAIN_EXTRA = ("torch", "onnx", "matplotlib", "tqdm")


def _require_train_extra(prog: str) -> None:
    missing = []
    for name in TRAIN_EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:  # absent, or installed but broken: either way the extra is what to install
            missing.append(name)
    if missing:
        fail(prog, f"{prog} needs {', '.join(missing)}, which a plain install leaves out; "
             'install them with: pip install "fable[train]"', EXIT_USAGE)  # fmt: skip


def train() -> None:
    _require_train_extra("fable-train")
    from .cli import entry

    entry()


def export() -> None:
    _require_train_extra("fable-export")
    from .export.cli import entry

    entry()
