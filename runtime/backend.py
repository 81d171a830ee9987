"""Which engine runs a model: onnxruntime where it is installed, numpy where it is not.

A backend opens a file, checks it, and makes kernels: the arithmetic of one step (or one window)
for a batch of sequences. Everything above the kernels (decoders, prompts, sampling, streams,
batches, errors) is shared.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path
from typing import Protocol

from .contract import ModelMetadata
from .decoder import StepKernel, WindowKernel
from .errors import UsageError, log

BACKENDS = ("onnxruntime", "numpy")


class Backend(Protocol):
    name: str
    metadata: ModelMetadata

    def kernel(self, batch: int) -> StepKernel | WindowKernel:
        """The kernel of the file's graph for `batch` sequences, with buffers of its own."""

    def describe(self) -> str:
        """What computes the model, read from the library now: its version, threads and spinning."""


@functools.cache
def default_backend() -> str:
    """onnxruntime when it can be imported (it is the faster), numpy otherwise. An onnxruntime that
    is installed but fails to import is said once a process (the cache), at INFO, since numpy is
    several times slower."""
    if not _installed("onnxruntime"):
        return "numpy"
    try:
        importlib.import_module("onnxruntime")
    except ImportError as error:
        log.info("fable: onnxruntime is installed but does not import (%s); running on numpy, which is slower",
                    str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__)  # fmt: skip
        return "numpy"
    return "onnxruntime"


def open_backend(path: Path, threads: int, spin: bool, backend: str | None = None) -> Backend:
    """Open `path` with `backend` (None: the default here)."""
    name = default_backend() if backend is None else backend
    if name == "numpy":
        from .numpy_backend import NumpyBackend

        return NumpyBackend(path, threads)  # spin: numpy's BLAS has no such setting
    if name != "onnxruntime":
        raise UsageError(f"backend must be {' or '.join(BACKENDS)}, not {name!r}")
    try:
        from .ort_backend import OrtBackend
    except ImportError:
        raise UsageError("the onnxruntime backend needs onnxruntime, which does not import here; use numpy") from None
    return OrtBackend(path, threads, spin)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses it: as good as absent
        return False


def backend_version(name: str) -> str | None:
    """The installed version of a backend's library, or None."""
    if not _installed(name):
        return None
    try:
        return importlib.import_module(name).__version__
    except ImportError:
        return None
