"""ONNX graphs of the model, built node by node from its weights.

Two graphs compute the same next-word logits (docs/design.md, "Fast decoding"):
- the window graph runs a whole window of `w` words from a zero state: w LSTM steps per word,
  with ONNX's LSTM operator; onnxruntime's `quantize_dynamic` makes its int8 file;
- the step graph advances the w windows in flight of each sequence in a batch, one LSTM step per
  word. Its cell is spelled out in products and gates, so that its int8 and int4 files can round
  each row on its own (docs/design.md, "Batches"); its inputs and outputs are in runtime/contract.py.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fable import contract
from fable.contract import ModelConfig, TensorSpec

from .quantize import (
    ACTIVATION_STEP,
    ACTIVATION_ZERO,
    INT4_ACCURACY_LEVEL,
    activation_codes,
    int4_blocks,
    int8_weights,
)
from .weights import LayerWeights, Weights

OPSET = 17
IR_VERSION = 8  # readable by onnxruntime 1.14 and newer, as found on older Raspberry Pi images
MS_DOMAIN = "com.microsoft"  # onnxruntime's contrib operators: MatMulIntegerToFloat, MatMulNBits

_DTYPES = {"tensor(float)": TensorProto.FLOAT, "tensor(int64)": TensorProto.INT64}
EMBEDDING, HEAD_W, HEAD_B = contract.EMBEDDING, contract.HEAD_WEIGHT, contract.HEAD_BIAS


def _layer_names(layer: int) -> tuple[str, str, str]:
    return f"lstm{layer}.W", f"lstm{layer}.R", f"lstm{layer}.B"


def _value_info(spec: TensorSpec, dynamic: str = "batch") -> onnx.ValueInfoProto:
    shape = [dynamic if dim is None else dim for dim in spec.shape]
    return helper.make_tensor_value_info(spec.name, _DTYPES[spec.dtype], shape)


class _Builder:
    """Collects nodes and initializers; `const` and `node` return the name of their output."""

    def __init__(self, weights: Weights | None = None):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0
        if weights is None:  # the step graph adds its weights product by product, in their stored form
            return
        self.embedded = weights.embedding is not None
        if self.embedded:
            self.const(EMBEDDING, weights.embedding)
        self.const(HEAD_W, weights.head_w)
        self.const(HEAD_B, weights.head_b)
        for layer, lw in enumerate(weights.layers):
            for name, array in zip(_layer_names(layer), (lw.W, lw.R, lw.B)):
                self.const(name, array)

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values: list[int]) -> str:
        self.count += 1
        return self.const(f"const{self.count}", np.array(values, np.int64))

    def node(self, op: str, inputs: list[str], output: str | None = None, domain: str = "", **attrs: object) -> str:
        self.count += 1
        output = output or f"{op.lower()}{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=f"{op}_{self.count}", domain=domain, **attrs))
        return output

    def encode(self, ids: str) -> str:
        """int64 ids [a, b] → floats [a, b, in]: embedding rows, or the id itself (the tutorial's way)."""
        if self.embedded:
            return self.node("Gather", [EMBEDDING, ids], axis=0)
        return self.node("Unsqueeze", [self.node("Cast", [ids], to=TensorProto.FLOAT), self.ints([2])])

    def lstm(
        self, layer: int, x: str, hidden: int, h0: str = "", c0: str = "", outputs: tuple[str, str, str] | None = None
    ) -> tuple[str, str, str]:
        """One LSTM layer: x [seq, batch, in] → (Y [seq, 1, batch, H], Y_h, Y_c [1, batch, H])."""
        outputs = outputs or (f"lstm{layer}.Y", f"lstm{layer}.Y_h", f"lstm{layer}.Y_c")
        inputs = [x, *_layer_names(layer), "", h0, c0]
        self.nodes.append(helper.make_node("LSTM", inputs, list(outputs), name=f"LSTM_{layer}", hidden_size=hidden))
        return outputs

    def head(self, top: str, output: str) -> str:
        """Linear layer on [..., H] → [..., vocab] logits."""
        return self.node("Add", [self.node("MatMul", [top, HEAD_W]), HEAD_B], output)

    def model(self, config: ModelConfig, graph: str, vocab_size: int) -> onnx.ModelProto:
        inputs, outputs = contract.graph_io(graph, config, vocab_size)
        onnx_graph = helper.make_graph(
            self.nodes,
            f"fable_{graph}",
            [_value_info(spec) for spec in inputs],
            [_value_info(spec) for spec in outputs],
            self.initializers,
        )
        model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        model.producer_name = "fable"
        return model


class _StepBuilder:
    """The version-2 step graph's nodes for one quantization: `product` is x @ W + b in fp32, in
    int8 (inputs rounded to uint8 on the fixed activation scale, weights per output column), or in
    int4 (MatMulNBits: weights in blocks along K, each row's input rounded per block at run time)."""

    def __init__(self, quantization: str, block_size: int):
        self.b = _Builder()
        self.quantization = quantization
        self.block_size = block_size
        if quantization == "int8":
            self.b.const(contract.ACTIVATION_SCALE, np.array(ACTIVATION_STEP, np.float32))
            self.b.const(contract.ACTIVATION_ZERO_POINT, np.array(ACTIVATION_ZERO, np.uint8))

    def rounded(self, x: str) -> str:
        """The product input as it enters the product: uint8 codes for int8, floats otherwise."""
        if self.quantization != "int8":
            return x
        return self.b.node("QuantizeLinear", [x, contract.ACTIVATION_SCALE, contract.ACTIVATION_ZERO_POINT])

    def product(self, x: str, weight: np.ndarray, bias: np.ndarray, name: str, bias_name: str) -> str:
        """x [..., K] @ weight [K, N] + bias [N] → float [..., N]."""
        b, scale_name = self.b, name + contract.WEIGHT_SCALE
        if self.quantization == "fp32":
            return b.node("Add", [b.node("MatMul", [x, b.const(name, weight)]), b.const(bias_name, bias)])
        if self.quantization == "int8":
            codes, scales = int8_weights(weight)
            inputs = [x, b.const(name, codes), contract.ACTIVATION_SCALE, b.const(scale_name, scales)]
            inputs += [contract.ACTIVATION_ZERO_POINT, "", b.const(bias_name, bias)]
            return b.node("MatMulIntegerToFloat", inputs, domain=MS_DOMAIN)
        packed, scales = int4_blocks(weight, self.block_size)
        k, n = weight.shape
        inputs = [x, b.const(name, packed), b.const(scale_name, scales), "", "", b.const(bias_name, bias)]
        return b.node("MatMulNBits", inputs, domain=MS_DOMAIN, K=k, N=n, bits=4, block_size=self.block_size,
                      accuracy_level=INT4_ACCURACY_LEVEL)  # fmt: skip


def build_step_graph(
    weights: Weights, config: ModelConfig, quantization: str = "fp32", block_size: int = 0
) -> onnx.ModelProto:
    """tokens [B, w], per-layer state [B, w, H] → logits [B, w, V] and the states after one step.

    Each layer is one product, [x, h] @ [W; R] + b, then the gates (i, o, f, c). The index
    encoding keeps its input product in fp32: one float per word cannot share h's scale.
    """
    step = _StepBuilder(quantization, block_size)
    b, hidden = step.b, config.hidden
    x = _step_input(step, weights)  # [B, w, in]: uint8 codes (int8 files) or floats
    states = contract.state_names(config.layers)
    for layer, lw in enumerate(weights.layers):
        h, c = states[2 * layer], states[2 * layer + 1]
        w_in, w_rec, bias = lw.W[0].T, lw.R[0].T, lw.B[0, : 4 * hidden] + lw.B[0, 4 * hidden :]
        if x is None:  # the index encoding: id [B, w, 1] @ W [1, 4H] in floats, beside the product of h
            ids = b.node("Unsqueeze", [b.node("Cast", [contract.INPUT_TOKENS], to=TensorProto.FLOAT), b.ints([2])])
            recurrent = step.product(
                step.rounded(h), w_rec, bias, contract.cell_weight(layer), contract.cell_bias(layer)
            )
            gates = b.node("Add", [b.node("MatMul", [ids, b.const(contract.INDEX_WEIGHT, w_in)]), recurrent])
        else:
            if layer == 0 and quantization == "int8":
                w_in = w_in * _embedding_range(weights)  # the codes hold embedding / range: undo it here
            joined = b.node("Concat", [x, step.rounded(h)], axis=-1)  # [B, w, in + H]
            cell_weight = np.concatenate([w_in, w_rec]).astype(np.float32)
            gates = step.product(joined, cell_weight, bias, contract.cell_weight(layer), contract.cell_bias(layer))
        i, o, f, g = (f"cell{layer}.{gate}" for gate in "iofg")
        b.nodes.append(helper.make_node("Split", [gates], [i, o, f, g], name=f"Split_{layer}", axis=-1))  # equal parts
        kept = b.node("Mul", [b.node("Sigmoid", [f]), c])
        added = b.node("Mul", [b.node("Sigmoid", [i]), b.node("Tanh", [g])])
        c_next = b.node("Add", [kept, added], contract.next_state_name(c))
        h_next = b.node("Mul", [b.node("Sigmoid", [o]), b.node("Tanh", [c_next])], contract.next_state_name(h))
        x = step.rounded(h_next)
    logits = step.product(x, weights.head_w, weights.head_b, contract.HEAD_WEIGHT, contract.HEAD_BIAS)
    b.node("Identity", [logits], contract.OUTPUT_LOGITS)  # every row; the caller reads the rows that completed a window
    model = b.model(config, contract.GRAPH_STEP, weights.head_b.shape[0])
    if quantization != "fp32":
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return model


def _embedding_range(weights: Weights) -> float:
    """The largest |embedding value|: int8 files store embedding / range as activation codes."""
    return max(float(np.abs(weights.embedding).max()), 1e-12)


def _step_input(step: _StepBuilder, weights: Weights) -> str | None:
    """The first layer's input [B, w, in] from the tokens; None for the index encoding."""
    if weights.embedding is None:
        return None
    table = weights.embedding
    if step.quantization == "int8":  # stored as the codes QuantizeLinear would make of embedding / range
        table = activation_codes(table / _embedding_range(weights))
    return step.b.node("Gather", [step.b.const(contract.EMBEDDING, table), contract.INPUT_TOKENS], axis=0)


def build_window_graph(weights: Weights, config: ModelConfig) -> onnx.ModelProto:
    """window [N, w] → logits [N, V]; each window from a zero state."""
    b = _Builder(weights)
    ids = b.node("Transpose", [contract.INPUT_WINDOW], perm=[1, 0])  # [w, N]: ONNX LSTMs are time-major
    x = b.encode(ids)  # [w, N, in]
    for layer in range(config.layers):
        top = layer == config.layers - 1  # the top layer's last hidden state is all the head needs
        y, y_h, _ = b.lstm(layer, x, config.hidden, outputs=("", "top.Y_h", "") if top else None)
        if not top:
            x = b.node("Squeeze", [y, b.ints([1])])  # this layer's outputs [w, N, H], the next one's input
    b.head(b.node("Squeeze", [y_h, b.ints([0])]), contract.OUTPUT_LOGITS)  # last step [N, H] → [N, V]
    return b.model(config, contract.GRAPH_WINDOW, weights.head_b.shape[0])


def weights_from_onnx(model: onnx.ModelProto, config: ModelConfig) -> Weights:
    """The weights of an fp32 graph built here (any kind, format 1 or 2): rebuild another graph from a file."""
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    layers = []
    for layer in range(config.layers):
        if _layer_names(layer)[0] in arrays:  # the LSTM operator's W, R, B
            layers.append(LayerWeights(*(arrays[name] for name in _layer_names(layer))))
            continue
        cell, bias = arrays[contract.cell_weight(layer)], arrays[contract.cell_bias(layer)]  # [in + H, 4H], [4H]
        if layer == 0 and contract.INDEX_WEIGHT in arrays:
            w_in, w_rec = arrays[contract.INDEX_WEIGHT], cell
        else:
            w_in, w_rec = cell[: -config.hidden], cell[-config.hidden :]
        layers.append(LayerWeights(w_in.T[None], w_rec.T[None], np.concatenate([bias, np.zeros_like(bias)])[None]))
    return Weights(arrays.get(EMBEDDING), tuple(layers), arrays[HEAD_W], arrays[HEAD_B])
