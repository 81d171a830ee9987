"""The numpy backend: the same model files without onnxruntime, for boards that have none
(32-bit Raspberry Pi OS: PyPI has no onnxruntime for armv6l/armv7l).

It reads the file with `onnxfile`, checks it exactly as the onnxruntime backend does, takes the
weights as products that round their inputs the way the file's onnxruntime graph does
(`numpy_weights`), and computes a step in plain numpy, gates in ONNX's order i, o, f, c. The
products run on numpy's BLAS, whose thread pool is the process's: `BlasThreads` holds it at the
model's `threads` (threadpoolctl), since OpenBLAS otherwise starts a thread per core.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from . import contract
from .errors import ModelFileError
from .modelfile import checked_path, described, unreadable
from .numpy_weights import Layer, StepWeights, read_weights
from .onnxfile import read_onnx


class NumpyBackend:
    name = "numpy"

    def __init__(self, path: Path, threads: int):
        name = checked_path(path)
        try:
            model = read_onnx(Path(name).read_bytes())
        except ValueError as error:
            raise unreadable(name, error) from None
        self.metadata = described(model.metadata, model.inputs, model.outputs, name)
        try:
            self.weights = read_weights(model, self.metadata)
        except (KeyError, ValueError, IndexError, TypeError, AttributeError, StopIteration) as error:
            raise ModelFileError(
                f"model file {name} does not hold the weights its metadata describes ({error}); export it again"
            ) from None
        self.blas = BlasThreads(threads)

    def kernel(self, batch: int) -> NumpyStepKernel | NumpyWindowKernel:
        if self.metadata.graph != contract.GRAPH_WINDOW:
            return NumpyStepKernel(self.weights, self.metadata.rows, batch, self.blas)
        return NumpyWindowKernel(self.weights, self.blas)

    def describe(self) -> str:
        return f"numpy, {self.blas.describe()} (numpy {np.__version__})"


@functools.cache
def _blas_libraries() -> ThreadpoolController:
    """The BLAS libraries loaded in this process (numpy's), found once."""
    return ThreadpoolController().select(user_api="blas")


class BlasThreads:
    """numpy's BLAS held at `threads` threads. Its pool is one per process, so it is set when the
    backend opens and again before a run wherever something else (another model, the app) moved
    it; reading it costs about a microsecond. A BLAS that threadpoolctl does not know (Apple's
    Accelerate, a reference BLAS) runs as it will, and `describe` says so."""

    def __init__(self, threads: int):
        self.threads = threads
        self._libraries = _blas_libraries().lib_controllers
        self.hold()

    def hold(self) -> None:
        for library in self._libraries:
            if library.num_threads != self.threads:
                library.set_num_threads(self.threads)

    def describe(self) -> str:
        """The threads the products run on now, and on what: "1 thread, OpenBLAS 0.3.27"."""
        if not self._libraries:
            return f"its own threads: a BLAS that threadpoolctl cannot set ({self.threads} asked)"
        return "; ".join(
            f"{lib.num_threads} thread{'' if lib.num_threads == 1 else 's'}, "
            f"{_NAMES.get(lib.internal_api, lib.internal_api)} {lib.version}"
            for lib in self._libraries
        )


_NAMES = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # exact, and without exp's overflow for large negative x


def _cell(layer: Layer, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> None:
    """One LSTM step for a batch of rows, h and c [rows, H] updated in place."""
    i, o, f, g = np.split(layer.gates(x, h), 4, axis=-1)
    c *= _sigmoid(f)
    c += _sigmoid(i) * np.tanh(g)
    h[...] = _sigmoid(o) * np.tanh(c)


def _inputs(weights: StepWeights, ids: np.ndarray) -> np.ndarray:
    """[rows, input] for word ids [rows]."""
    if weights.embedding is not None:
        return weights.embedding[ids]
    return ids.astype(np.float32)[:, None]


class NumpyStepKernel:
    def __init__(self, weights: StepWeights, rows: int, batch: int, blas: BlasThreads):
        self._weights, self._blas = weights, blas
        hidden = weights.head.weight.shape[0]
        # h, c per layer, `rows` rows per sequence (a window in flight each, or one): [layers, 2, batch * rows, hidden]
        self._states = np.zeros((len(weights.layers), 2, batch * rows, hidden), np.float32)
        self._ids = np.zeros((batch, rows), np.int64)
        self.logits = np.zeros((batch, rows, weights.head.weight.shape[1]), np.float32)

    def run(self, tokens: np.ndarray) -> None:
        self._blas.hold()
        self._ids[...] = tokens  # [batch, 1]: every window in flight reads its sequence's newest word
        x = _inputs(self._weights, self._ids.reshape(-1))
        for layer, (h, c) in zip(self._weights.layers, self._states):
            _cell(layer, x, h, c)
            x = h
        self.logits[...] = self._weights.head(x).reshape(self.logits.shape)

    def zero_row(self, row: int) -> None:
        self._by_sequence()[:, :, :, row] = 0

    def reset(self) -> None:
        self._states[:] = 0

    def zero_sequences(self, sequences: np.ndarray) -> None:
        self._by_sequence()[:, :, sequences] = 0

    def top(self) -> np.ndarray:
        return self._by_sequence()[-1, 0]  # the top layer's h [batch, rows, hidden]

    def _by_sequence(self) -> np.ndarray:
        """The states as [layers, 2, batch, rows, hidden] (a view)."""
        batch, rows = self._ids.shape
        return self._states.reshape(len(self._weights.layers), 2, batch, rows, -1)


class NumpyWindowKernel:
    def __init__(self, weights: StepWeights, blas: BlasThreads):
        self._weights, self._blas = weights, blas

    def run(self, ids: np.ndarray) -> np.ndarray:
        self._blas.hold()
        hidden = self._weights.head.weight.shape[0]
        states = np.zeros((len(self._weights.layers), 2, len(ids), hidden), np.float32)
        for column in ids.T:  # every window [batch, window] from the zero state, a word at a time
            x = _inputs(self._weights, column)
            for layer, (h, c) in zip(self._weights.layers, states):
                _cell(layer, x, h, c)
                x = h
        return self._weights.head(x)
