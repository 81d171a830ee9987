"""The weights of a model file as numpy products, for the numpy backend: format 1 and format 2.

A product is x @ W + b as the file computes it, rounding included, so that numpy gives
onnxruntime's numbers:
- fp32: plain floats;
- int8, format 2: inputs rounded to uint8 codes on the file's fixed activation scale (what
  QuantizeLinear does), integer codes times integer weights (exact in float32: every sum stays
  below 2^24), then scaled per column, as MatMulIntegerToFloat does;
- int8, format 1: inputs rounded as onnxruntime's dynamic quantization rounds them (uint8, one
  scale per tensor over the rows in flight), weights dequantized once. Without that, float
  activations against int8 ones flipped near-ties, and a small model's 32-word continuations
  agreed with onnxruntime's on 76% of the fable's windows; with it, on all of them;
- int4: weights dequantized once; onnxruntime also rounds each input row per block to int8
  (accuracy level 4), which numpy does not, so logits differ by a little more than for int8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import contract
from .contract import ModelMetadata
from .onnxfile import Node, OnnxFile
from .quantization import activation_values, int4_weight, rounded_activations


def _identity(x: np.ndarray) -> np.ndarray:
    return x


@dataclass(frozen=True)
class Product:
    weight: np.ndarray  # [K, N] float32: the weights, or their integer codes
    bias: np.ndarray | None  # [N]
    round_input: Callable[[np.ndarray], np.ndarray] = _identity
    column_scale: np.ndarray | None = None  # [N]: codes to values, after the integer product

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.round_input(x) @ self.weight
        if self.column_scale is not None:
            out *= self.column_scale
        if self.bias is not None:
            out += self.bias
        return out


@dataclass(frozen=True)
class Layer:
    """Gates [rows, 4H] (i, o, f, c) = joined([x, h]), or input(x) + recurrent(h)."""

    joined: Product | None
    input: Product | None = None
    recurrent: Product | None = None

    def gates(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        if self.joined is not None:
            return self.joined(np.concatenate([x, h], axis=-1))
        return self.input(x) + self.recurrent(h)


@dataclass(frozen=True)
class StepWeights:
    embedding: np.ndarray | None  # [vocab, embedding_dim] as floats; None: the id itself is the input
    layers: tuple[Layer, ...]
    head: Product


def read_weights(model: OnnxFile, meta: ModelMetadata) -> StepWeights:
    """The file's weights as products, checked against `meta`. KeyError, ValueError and the like
    for a file that does not hold them: the caller turns those into one ModelFileError."""
    if meta.batched:
        weights = _format2(model.initializers, meta)
    else:
        weights = _format1(model, meta)
    _check_shapes(weights, meta)
    return weights


# --- format 2: products named by the contract ------------------------------------------------


def _format2(arrays: dict[str, np.ndarray], meta: ModelMetadata) -> StepWeights:
    config, quantization = meta.config, meta.quantization
    rounding = _static_rounding(arrays) if quantization == "int8" else _identity

    def product(weight_name: str, bias_name: str) -> Product:
        weight, bias = arrays[weight_name], arrays[bias_name].astype(np.float32)
        scale = arrays.get(weight_name + contract.WEIGHT_SCALE)
        if quantization == "fp32":
            return Product(weight.astype(np.float32), bias)
        if quantization == "int4":
            return Product(int4_weight(weight, scale, _rows(weight_name, config)), bias)
        step = arrays[contract.ACTIVATION_SCALE].astype(np.float32)
        return Product(weight.astype(np.float32), bias, rounding, (step * scale).astype(np.float32))

    embedding = arrays.get(contract.EMBEDDING)
    if embedding is not None and quantization == "int8":  # stored as codes: back to the values they stand for
        embedding = rounding.codes_to_values(embedding)
    layers = []
    for layer in range(config.layers):
        cell = product(contract.cell_weight(layer), contract.cell_bias(layer))
        if layer == 0 and embedding is None:
            index = Product(arrays[contract.INDEX_WEIGHT].astype(np.float32), None)
            layers.append(Layer(None, index, cell))
        else:
            layers.append(Layer(cell))
    head = product(contract.HEAD_WEIGHT, contract.HEAD_BIAS)
    return StepWeights(None if embedding is None else embedding.astype(np.float32), tuple(layers), head)


def _rows(weight_name: str, config: contract.ModelConfig) -> int:
    """K of an int4 product (its packed blocks may be padded past it)."""
    if weight_name == contract.HEAD_WEIGHT:
        return config.hidden
    if weight_name == contract.cell_weight(0):  # [embedding, h], or h beside the index encoding's product
        return config.hidden + (config.embedding_dim if config.encoding == "embedding" else 0)
    return 2 * config.hidden


class _StaticRounding:
    """QuantizeLinear on the file's fixed scale, as codes minus the zero point (floats)."""

    def __init__(self, step: np.ndarray, zero_point: np.ndarray):
        self.step = float(step.item())  # a scalar, whatever its stored shape
        self.zero = int(zero_point.item())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return rounded_activations(x, self.step, self.zero)

    def codes_to_values(self, codes: np.ndarray) -> np.ndarray:
        return activation_values(codes, self.step, self.zero)


def _static_rounding(arrays: dict[str, np.ndarray]) -> _StaticRounding:
    return _StaticRounding(arrays[contract.ACTIVATION_SCALE], arrays[contract.ACTIVATION_ZERO_POINT])


# --- format 1: found by following the graph's nodes -------------------------------------------


def _format1(model: OnnxFile, meta: ModelMetadata) -> StepWeights:
    arrays = model.initializers
    nodes = {node.op_type: node for node in model.nodes}  # the LSTMs, each its own, are listed below
    embedding = arrays[nodes["Gather"].inputs[0]].astype(np.float32) if "Gather" in nodes else None
    lstms = [node for node in model.nodes if node.op_type in ("LSTM", "DynamicQuantizeLSTM")]
    layers = tuple(_lstm_layer(node, arrays) for node in lstms)
    head_w, quantized = _head_weight(model.nodes, nodes, arrays)
    head_b = next(arrays[name] for name in nodes["Add"].inputs if name in arrays).astype(np.float32)
    return StepWeights(embedding, layers, Product(head_w, head_b, _as_uint8 if quantized else _identity))


def _lstm_layer(node: Node, arrays: dict[str, np.ndarray]) -> Layer:
    quantized = node.op_type == "DynamicQuantizeLSTM"
    if not quantized:  # LSTM: W [1, 4H, in], R [1, 4H, H]
        w, r = arrays[node.inputs[1]][0].T, arrays[node.inputs[2]][0].T
    else:  # DynamicQuantizeLSTM: int8 W [1, in, 4H], R [1, H, 4H], each with its scale and zero point
        w = _dequantize(arrays[node.inputs[1]][0], arrays[node.inputs[8]], arrays[node.inputs[9]])
        r = _dequantize(arrays[node.inputs[2]][0], arrays[node.inputs[10]], arrays[node.inputs[11]])
    bias = arrays[node.inputs[3]][0].astype(np.float32)  # [8H]: input biases, then recurrent ones
    half = len(bias) // 2
    rounding = _as_uint8 if quantized else _identity
    w, r = (np.ascontiguousarray(a, np.float32) for a in (w, r))
    return Layer(None, Product(w, bias[:half] + bias[half:], rounding), Product(r, None, rounding))


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


def _as_uint8(x: np.ndarray) -> np.ndarray:
    """x rounded to what onnxruntime's DynamicQuantizeLinear keeps of it: uint8 with one scale and
    zero point for the whole tensor, its range stretched to hold 0, rounded half to even."""
    low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
    if high == low:
        return x
    scale = np.float32((high - low) / 255)
    zero_point = np.clip(np.rint(-low / scale), 0, 255)
    return ((np.clip(np.rint(x / scale) + zero_point, 0, 255) - zero_point) * scale).astype(np.float32)


# --- shapes -----------------------------------------------------------------------------------


def _check_shapes(weights: StepWeights, meta: ModelMetadata) -> None:
    config, vocab, hidden = meta.config, len(meta.vocabulary), meta.config.hidden
    expected = [("layers", len(weights.layers), config.layers), ("head", weights.head.weight.shape, (hidden, vocab))]
    expected.append(("head bias", weights.head.bias.shape, (vocab,)))
    if weights.embedding is not None:
        expected.append(("embedding", weights.embedding.shape, (vocab, config.embedding_dim)))
    for number, layer in enumerate(weights.layers):
        inputs = config.input_size if number == 0 else hidden
        if layer.joined is not None:
            expected.append((f"layer {number}", layer.joined.weight.shape, (inputs + hidden, 4 * hidden)))
        else:
            expected.append((f"layer {number} input", layer.input.weight.shape, (inputs, 4 * hidden)))
            expected.append((f"layer {number} recurrent", layer.recurrent.weight.shape, (hidden, 4 * hidden)))
    for what, got, want in expected:
        if got != want:
            raise ValueError(f"{what} is {got}, not {want}")
    if (weights.embedding is None) != (config.encoding == "index"):
        raise ValueError(f"the graph's input encoding is not {config.encoding!r}")
