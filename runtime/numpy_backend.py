"""The numpy backend: the same model files without onnxruntime, for boards that have none
(32-bit Raspberry Pi OS: PyPI has no onnxruntime for armv6l/armv7l).

It reads the file with `onnxfile`, checks it exactly as the onnxruntime backend does, and takes
the weights by following the graph's nodes: the embedding (or the tutorial's index encoding),
each LSTM layer (a float `LSTM`, or int8 `DynamicQuantizeLSTM` dequantized once here) and the
head (`MatMul`, or the quantizer's `MatMulInteger` dequantized likewise). Then a step is plain
numpy, gates in ONNX's order i, o, f, c. For int8 files the inputs of each product are rounded
the way onnxruntime's dynamic quantization rounds them (uint8, one scale per tensor over the rows
in flight): without that, float activations against int8 ones flipped near-ties, and a small
model's 32-word continuations agreed with onnxruntime's on 76% of the fable's windows; with it,
on all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import contract
from .contract import ModelMetadata
from .decoder import Decoder, StepDecoder, WindowDecoder
from .errors import ModelFileError
from .modelfile import check_graph, checked_path
from .onnxfile import Node, OnnxFile, read_onnx


@dataclass(frozen=True)
class Layer:
    input_weights: np.ndarray  # [input, 4 * hidden], gates i, o, f, c
    recurrent_weights: np.ndarray  # [hidden, 4 * hidden]
    bias: np.ndarray  # [4 * hidden]: input and recurrent biases summed
    quantized: bool  # int8 in the file: round the products' inputs as onnxruntime does


@dataclass(frozen=True)
class StepWeights:
    embedding: np.ndarray | None  # [vocab, embedding_dim]; None: the id itself is the input
    layers: tuple[Layer, ...]
    head_w: np.ndarray  # [hidden, vocab]
    head_b: np.ndarray  # [vocab]
    head_quantized: bool


class NumpyBackend:
    name = "numpy"

    def __init__(self, path: Path, threads: int):
        name = checked_path(path)  # threads: numpy's BLAS decides its own (OPENBLAS_NUM_THREADS)
        try:
            model = read_onnx(Path(name).read_bytes())
        except ValueError as error:
            raise ModelFileError(f"model file {name} is not a readable ONNX model ({error}); export it again") from None
        self.metadata = contract.metadata_from_props(model.metadata, source=name)
        check_graph(model.inputs, model.outputs, self.metadata, name)
        try:
            self.weights = weights_of(model, self.metadata)
        except (KeyError, ValueError, IndexError, TypeError, StopIteration) as error:
            raise ModelFileError(
                f"model file {name} does not hold the weights its metadata describes ({error}); export it again"
            ) from None

    def decoder(self) -> Decoder:
        window = self.metadata.config.window
        if self.metadata.graph == contract.GRAPH_STEP:
            return StepDecoder(NumpyStepKernel(self.weights, window), window)
        return WindowDecoder(NumpyWindowKernel(self.weights), window)


def weights_of(model: OnnxFile, meta: ModelMetadata) -> StepWeights:
    """The weights, found by following the nodes, dequantized, and checked against `meta`."""
    config, arrays = meta.config, model.initializers
    nodes = {node.op_type: node for node in model.nodes}  # the LSTMs, each its own, are listed below
    embedding = arrays[nodes["Gather"].inputs[0]].astype(np.float32) if "Gather" in nodes else None
    lstms = [node for node in model.nodes if node.op_type in ("LSTM", "DynamicQuantizeLSTM")]
    layers = tuple(_layer(node, arrays) for node in lstms)
    head_w, head_quantized = _head_weight(model.nodes, nodes, arrays)
    head_b = next(arrays[name] for name in nodes["Add"].inputs if name in arrays).astype(np.float32)

    vocab, hidden = len(meta.vocabulary), config.hidden
    expected = [
        ("layers", len(layers), config.layers),
        ("head", head_w.shape, (hidden, vocab)),
        ("bias", head_b.shape, (vocab,)),
    ]
    if embedding is not None:
        expected.append(("embedding", embedding.shape, (vocab, config.embedding_dim)))
    for number, layer in enumerate(layers):
        inputs = config.input_size if number == 0 else hidden
        expected.append((f"layer {number} input", layer.input_weights.shape, (inputs, 4 * hidden)))
        expected.append((f"layer {number} recurrent", layer.recurrent_weights.shape, (hidden, 4 * hidden)))
    for what, got, want in expected:
        if got != want:
            raise ValueError(f"{what} is {got}, not {want}")
    if (embedding is None) != (config.encoding == "index"):
        raise ValueError(f"the graph's input encoding is not {config.encoding!r}")
    return StepWeights(embedding, layers, head_w, head_b, head_quantized)


def _layer(node: Node, arrays: dict[str, np.ndarray]) -> Layer:
    quantized = node.op_type == "DynamicQuantizeLSTM"
    if not quantized:  # LSTM: W [1, 4H, in], R [1, 4H, H]
        w, r = arrays[node.inputs[1]][0].T, arrays[node.inputs[2]][0].T
    else:  # DynamicQuantizeLSTM: int8 W [1, in, 4H], R [1, H, 4H], each with its scale and zero point
        w = _dequantize(arrays[node.inputs[1]][0], arrays[node.inputs[8]], arrays[node.inputs[9]])
        r = _dequantize(arrays[node.inputs[2]][0], arrays[node.inputs[10]], arrays[node.inputs[11]])
    bias = arrays[node.inputs[3]][0].astype(np.float32)  # [8H]: input biases, then recurrent ones
    half = len(bias) // 2
    contiguous = [np.ascontiguousarray(a, np.float32) for a in (w, r)]
    return Layer(*contiguous, bias[:half] + bias[half:], quantized)


def _head_weight(
    all_nodes: tuple[Node, ...], nodes: dict[str, Node], arrays: dict[str, np.ndarray]
) -> tuple[np.ndarray, bool]:
    """The head's weights [hidden, vocab], and whether the file holds them in int8."""
    if "MatMul" in nodes:
        return arrays[nodes["MatMul"].inputs[1]].astype(np.float32), False
    # The quantizer's MatMul: MatMulInteger(x_q, W_q, x_zp, W_zp), scaled by Mul(x_scale, W_scale).
    matmul = nodes["MatMulInteger"]
    x_scale = nodes["DynamicQuantizeLinear"].outputs[1]
    scales = next(n for n in all_nodes if n.op_type == "Mul" and x_scale in n.inputs)
    (w_scale,) = [name for name in scales.inputs if name != x_scale]
    return _dequantize(arrays[matmul.inputs[1]], arrays[w_scale], arrays[matmul.inputs[3]]), True


def _dequantize(quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """(q - zero point) * scale, per tensor or per output column (the last axis)."""
    scale, zero_point = scale.reshape(-1).astype(np.float32), zero_point.reshape(-1).astype(np.float32)
    return ((quantized.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # exact, and without exp's overflow for large negative x


def _as_uint8(x: np.ndarray) -> np.ndarray:
    """x rounded to what onnxruntime's DynamicQuantizeLinear keeps of it: uint8 with one scale and
    zero point for the whole tensor, its range stretched to hold 0, rounded half to even."""
    low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
    if high == low:
        return x
    scale = np.float32((high - low) / 255)
    zero_point = np.clip(np.rint(-low / scale), 0, 255)
    return ((np.clip(np.rint(x / scale) + zero_point, 0, 255) - zero_point) * scale).astype(np.float32)


def _cell(layer: Layer, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> None:
    """One LSTM step for a batch of rows, h and c [rows, H] updated in place."""
    x_in, h_in = (_as_uint8(x), _as_uint8(h)) if layer.quantized else (x, h)
    gates = x_in @ layer.input_weights + h_in @ layer.recurrent_weights + layer.bias  # [rows, 4H]: i, o, f, c
    i, o, f, g = np.split(gates, 4, axis=1)
    c *= _sigmoid(f)
    c += _sigmoid(i) * np.tanh(g)
    h[...] = _sigmoid(o) * np.tanh(c)


def _inputs(weights: StepWeights, ids: np.ndarray) -> np.ndarray:
    """[rows, input] for word ids [rows]."""
    if weights.embedding is not None:
        return weights.embedding[ids]
    return ids.astype(np.float32)[:, None]


class NumpyStepKernel:
    def __init__(self, weights: StepWeights, window: int):
        self._weights = weights
        hidden = weights.head_w.shape[0]
        self._states = np.zeros((len(weights.layers), 2, window, hidden), np.float32)  # h, c per layer
        self._ids = np.zeros(window, np.int64)
        self.logits = np.zeros((window, weights.head_w.shape[1]), np.float32)

    def run(self, token: int) -> None:
        self._ids.fill(token)  # every window in flight reads the newest word
        x = _inputs(self._weights, self._ids)
        for layer, (h, c) in zip(self._weights.layers, self._states):
            _cell(layer, x, h, c)
            x = h
        head_in = _as_uint8(x) if self._weights.head_quantized else x
        np.matmul(head_in, self._weights.head_w, out=self.logits)
        self.logits += self._weights.head_b

    def zero_row(self, row: int) -> None:
        self._states[:, :, row] = 0

    def reset(self) -> None:
        self._states[:] = 0


class NumpyWindowKernel:
    def __init__(self, weights: StepWeights):
        self._weights = weights

    def run(self, ids: np.ndarray) -> np.ndarray:
        hidden = self._weights.head_w.shape[0]
        states = np.zeros((len(self._weights.layers), 2, 1, hidden), np.float32)
        for token in ids:  # one window, one row, from the zero state
            x = _inputs(self._weights, np.array([token]))
            for layer, (h, c) in zip(self._weights.layers, states):
                _cell(layer, x, h, c)
                x = h
        head_in = _as_uint8(x) if self._weights.head_quantized else x
        return (head_in @ self._weights.head_w + self._weights.head_b)[0]
