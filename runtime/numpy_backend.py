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
from .decoder import Decoder, StepDecoder, WindowDecoder, batches
from .errors import ModelFileError
from .modelfile import check_graph, checked_path
from .numpy_weights import Layer, StepWeights, read_weights
from .onnxfile import read_onnx


class NumpyBackend:
    name = "numpy"

    def __init__(self, path: Path, threads: int, spin: bool):
        name = checked_path(path)  # threads and spin: numpy's BLAS decides its own (OPENBLAS_NUM_THREADS)
        try:
            model = read_onnx(Path(name).read_bytes())
        except ValueError as error:
            raise ModelFileError(f"model file {name} is not a readable ONNX model ({error}); export it again") from None
        self.metadata = contract.metadata_from_props(model.metadata, source=name)
        check_graph(model.inputs, model.outputs, self.metadata, name)
        try:
            self.weights = read_weights(model, self.metadata)
        except (KeyError, ValueError, IndexError, TypeError, AttributeError, StopIteration) as error:
            raise ModelFileError(
                f"model file {name} does not hold the weights its metadata describes ({error}); export it again"
            ) from None
        self.batches = batches(self.metadata)

    def decoder(self, batch: int = 1) -> Decoder:
        window = self.metadata.config.window
        if self.metadata.graph == contract.GRAPH_STEP:
            return StepDecoder(NumpyStepKernel(self.weights, window, batch), window)
        return WindowDecoder(NumpyWindowKernel(self.weights), window)


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

    def run(self, tokens: int | np.ndarray) -> None:
        self._ids[...] = tokens  # every window in flight reads its sequence's newest word
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
        states = np.zeros((len(self._weights.layers), 2, 1, hidden), np.float32)
        for token in ids:  # one window, one row, from the zero state
            x = _inputs(self._weights, np.array([token]))
            for layer, (h, c) in zip(self._weights.layers, states):
                _cell(layer, x, h, c)
                x = h
        return self._weights.head(x)[0]
