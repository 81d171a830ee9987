"""The numpy backend: the same model files without onnxruntime, for boards that have none
(32-bit Raspberry Pi OS: PyPI has no onnxruntime for armv6l/armv7l).

It reads the file with `onnxfile`, checks it exactly as the onnxruntime backend does, takes the
weights as products that round their inputs the way the file's onnxruntime graph does
(`numpy_weights`), and computes a step in plain numpy, gates in ONNX's order i, o, f, c.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import contract
from .errors import ModelFileError
from .modelfile import checked_path, described, unreadable
from .numpy_weights import Layer, StepWeights, read_weights
from .onnxfile import read_onnx


class NumpyBackend:
    name = "numpy"

    def __init__(self, path: Path):
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

    def kernel(self, batch: int) -> NumpyStepKernel | NumpyWindowKernel:
        if self.metadata.graph == contract.GRAPH_STEP:
            return NumpyStepKernel(self.weights, self.metadata.config.window, batch)
        return NumpyWindowKernel(self.weights)


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
    def __init__(self, weights: StepWeights, window: int, batch: int):
        self._weights = weights
        hidden = weights.head.weight.shape[0]
        # h, c per layer, one row per window in flight of each sequence: [layers, 2, batch * window, hidden]
        self._states = np.zeros((len(weights.layers), 2, batch * window, hidden), np.float32)
        self._ids = np.zeros((batch, window), np.int64)
        self.logits = np.zeros((batch, window, weights.head.weight.shape[1]), np.float32)

    def run(self, tokens: np.ndarray) -> None:
        self._ids[...] = tokens  # [batch, 1]: every window in flight reads its sequence's newest word
        x = _inputs(self._weights, self._ids.reshape(-1))
        for layer, (h, c) in zip(self._weights.layers, self._states):
            _cell(layer, x, h, c)
            x = h
        self.logits[...] = self._weights.head(x).reshape(self.logits.shape)

    def zero_row(self, row: int) -> None:
        batch, window = self._ids.shape
        self._states.reshape(len(self._weights.layers), 2, batch, window, -1)[:, :, :, row] = 0

    def reset(self) -> None:
        self._states[:] = 0


class NumpyWindowKernel:
    def __init__(self, weights: StepWeights):
        self._weights = weights

    def run(self, ids: np.ndarray) -> np.ndarray:
        hidden = self._weights.head.weight.shape[0]
        states = np.zeros((len(self._weights.layers), 2, len(ids), hidden), np.float32)
        for column in ids.T:  # every window [batch, window] from the zero state, a word at a time
            x = _inputs(self._weights, column)
            for layer, (h, c) in zip(self._weights.layers, states):
                _cell(layer, x, h, c)
                x = h
        return self._weights.head(x)
