"""Which engine runs a model: onnxruntime where it is installed, numpy where it is not.

Both read the same files, pass the same checks, and give decoders with the same interface;
everything above the decoder (prompts, sampling, streams, batches, errors) is the Model's, shared.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Protocol

from .contract import ModelMetadata
from .decoder import Decoder
from .errors import UsageError

BACKENDS = ("onnxruntime", "numpy")
_ENGINES = {"onnxruntime": (".ort_backend", "OrtBackend"), "numpy": (".numpy_backend", "NumpyBackend")}


class Backend(Protocol):
    name: str
    metadata: ModelMetadata
    batches: bool  # whether one decoder can run several sequences at once

    def decoder(self, batch: int = 1) -> Decoder: ...


def default_backend() -> str:
    """onnxruntime when it can be imported (it is the faster), numpy otherwise."""
    try:
        importlib.import_module("onnxruntime")
    except ImportError:
        return "numpy"
    return "onnxruntime"


def open_backend(path: Path, threads: int, spin: bool, backend: str | None = None) -> Backend:
    """Open `path` with `backend` (None: the default here)."""
    name = default_backend() if backend is None else backend
    if name not in BACKENDS:
        raise UsageError(f"backend must be {' or '.join(BACKENDS)}, not {name!r}")
    module, engine = _ENGINES[name]
    try:
        opened = importlib.import_module(module, __package__)
    except ImportError:
        raise UsageError(f"the {name} backend needs {name}, which is not installed; use the numpy backend") from None
    return getattr(opened, engine)(path, threads, spin)


def backend_version(name: str) -> str | None:
    """The installed version of a backend's library, or None."""
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.import_module(name).__version__
    except ImportError:
        return None
