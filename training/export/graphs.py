"""ONNX graphs of the model, built node by node from its weights.

Two graphs compute the same next-word logits (docs/design.md, "Fast decoding"):
- the step graph, what the files ship: it advances the `w` windows in flight of each sequence in
  a batch, one LSTM step per word. Its cell is spelled out in products and gates, so that its int8
  and int4 files round each row on its own (docs/design.md, "Batches"); its inputs and outputs
  are runtime/contract.py's;
- the window graph, the baseline: a whole window of `w` words from a zero state per call, with
  ONNX's LSTM operator; onnxruntime's `quantize_dynamic` makes its int8 file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fable import contract
from fable.contract import ModelConfig, TensorSpec
from fable.quantization import (
    ACTIVATION_STEP,
    ACTIVATION_ZERO,
    DEFAULT_INT4_BLOCK,
    INT4_ACCURACY_LEVEL,
    activation_codes,
    int4_blocks,
    int8_weights,
)

from .weights import LayerWeights, Weights

OPSET = 17
IR_VERSION = 8  # older than any onnxruntime fable runs on needs (1.19, for int4's MatMulNBits with a bias)
MS_DOMAIN = "com.microsoft"  # onnxruntime's contrib operators: MatMulIntegerToFloat, MatMulNBits

_DTYPES = {"tensor(float)": TensorProto.FLOAT, "tensor(int64)": TensorProto.INT64}


def _value_info(spec: TensorSpec, dynamic: str = "batch") -> onnx.ValueInfoProto:
    shape = [dynamic if dim is None else dim for dim in spec.shape]
    return helper.make_tensor_value_info(spec.name, _DTYPES[spec.dtype], shape)


class GraphBuilder:
    """Collects the nodes and initializers of one graph. `const` and `node` return the name of
    their output; `product` is x @ W + b in the graph's quantization: fp32, int8 (inputs rounded
    to uint8 on the fixed activation scale, weights per output column) or int4 (MatMulNBits:
    weights in blocks along K, each row's input rounded per block at run time)."""

    def __init__(self, quantization: str = "fp32", block_size: int = DEFAULT_INT4_BLOCK):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0
        self.quantization = quantization
        self.block_size = block_size
        if quantization == "int8":
            self.const(contract.ACTIVATION_SCALE, np.array(ACTIVATION_STEP, np.float32))
            self.const(contract.ACTIVATION_ZERO_POINT, np.array(ACTIVATION_ZERO, np.uint8))

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

    def ids_as_floats(self, ids: str) -> str:
        """int64 ids [a, b] → floats [a, b, 1]: the index encoding, the id itself (the tutorial's way)."""
        return self.node("Unsqueeze", [self.node("Cast", [ids], to=TensorProto.FLOAT), self.ints([2])])

    def rounded(self, x: str) -> str:
        """A product's input as it enters the product: uint8 codes for int8, floats otherwise."""
        if self.quantization != "int8":
            return x
        return self.node("QuantizeLinear", [x, contract.ACTIVATION_SCALE, contract.ACTIVATION_ZERO_POINT])

    def product(self, x: str, weight: np.ndarray, bias: np.ndarray, name: str, bias_name: str) -> str:
        """x [..., K] (as `rounded` gives it) @ weight [K, N] + bias [N] → float [..., N]."""
        scale_name = name + contract.WEIGHT_SCALE
        if self.quantization == "fp32":
            return self.node("Add", [self.node("MatMul", [x, self.const(name, weight)]), self.const(bias_name, bias)])
        if self.quantization == "int8":
            codes, scales = int8_weights(weight)
            inputs = [x, self.const(name, codes), contract.ACTIVATION_SCALE, self.const(scale_name, scales)]
            inputs += [contract.ACTIVATION_ZERO_POINT, "", self.const(bias_name, bias)]
            return self.node("MatMulIntegerToFloat", inputs, domain=MS_DOMAIN)
        packed, scales = int4_blocks(weight, self.block_size)
        k, n = weight.shape
        inputs = [x, self.const(name, packed), self.const(scale_name, scales), "", "", self.const(bias_name, bias)]
        return self.node("MatMulNBits", inputs, domain=MS_DOMAIN, K=k, N=n, bits=4, block_size=self.block_size,
                         accuracy_level=INT4_ACCURACY_LEVEL)  # fmt: skip

    def encode(self, ids: str, embedding: np.ndarray | None) -> str:
        """int64 ids [a, b] → floats [a, b, in]: embedding rows, or the id itself (the tutorial's way)."""
        if embedding is None:
            return self.ids_as_floats(ids)
        return self.node("Gather", [self.const(contract.EMBEDDING, embedding), ids], axis=0)

    def lstm(
        self, layer: int, x: str, lw: LayerWeights, hidden: int, state: tuple[str, str], outputs: list[str]
    ) -> None:
        """ONNX's LSTM operator for layer `layer` on x [seq, batch, in], from `state` (h, c: [1, batch,
        H], or "" for zeros), writing `outputs` (Y, Y_h, Y_c; "" for one not wanted). Its layout:
        W [1, 4H, in], R [1, 4H, H], B [1, 8H] (input biases, then recurrent ones)."""
        w, r = self.const(f"lstm{layer}.W", lw.input.T[None]), self.const(f"lstm{layer}.R", lw.recurrent.T[None])
        bias = self.const(f"lstm{layer}.B", np.concatenate([lw.bias, np.zeros_like(lw.bias)])[None])
        self.nodes.append(helper.make_node("LSTM", [x, w, r, bias, "", *state], outputs, name=f"LSTM_{layer}",
                                           hidden_size=hidden))  # fmt: skip

    def head(self, top: str, weights: Weights) -> str:
        """The linear layer on [..., H] → the logits output [..., vocab], in fp32."""
        product = self.node("MatMul", [top, self.const(contract.HEAD_WEIGHT, weights.head_w)])
        return self.node("Add", [product, self.const(contract.HEAD_BIAS, weights.head_b)], contract.OUTPUT_LOGITS)

    def model(
        self, config: ModelConfig, graph: str, vocab_size: int, format_version: int = contract.FORMAT_VERSION
    ) -> onnx.ModelProto:
        inputs, outputs = contract.graph_io(graph, config, vocab_size, format_version)
        onnx_graph = helper.make_graph(
            self.nodes,
            f"fable_{graph}",
            [_value_info(spec) for spec in inputs],
            [_value_info(spec) for spec in outputs],
            self.initializers,
        )
        opsets = [helper.make_opsetid("", OPSET)]
        if self.quantization != "fp32":
            opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
        model = helper.make_model(onnx_graph, opset_imports=opsets)
        model.ir_version = IR_VERSION
        model.producer_name = "fable"
        return model


def build_step_graph(
    weights: Weights,
    config: ModelConfig,
    quantization: str = "fp32",
    block_size: int = DEFAULT_INT4_BLOCK,
    graph: str = contract.GRAPH_STEP,
) -> onnx.ModelProto:
    """tokens [B, w], per-layer state [B, w, H] → logits [B, w, V] and the states after one step
    (`graph` GRAPH_STREAM: the same nodes, declared with one row of state per sequence, w = 1).

    Each layer is one product, [x, h] @ [input; recurrent] + bias, then the gates (i, o, f, c).
    The index encoding keeps its input product in fp32: one float per word cannot share h's scale.
    """
    b = GraphBuilder(quantization, block_size)
    x = _step_input(b, weights)  # [B, w, in]: uint8 codes (int8 files) or floats
    states = contract.state_names(config.layers)
    for layer, lw in enumerate(weights.layers):
        h, c = states[2 * layer], states[2 * layer + 1]
        cell, bias = contract.cell_weight(layer), contract.cell_bias(layer)
        if x is None:  # the index encoding: id [B, w, 1] @ input [1, 4H] in floats, beside the product of h
            ids = b.ids_as_floats(contract.INPUT_TOKENS)
            recurrent = b.product(b.rounded(h), lw.recurrent, lw.bias, cell, bias)
            gates = b.node("Add", [b.node("MatMul", [ids, b.const(contract.INDEX_WEIGHT, lw.input)]), recurrent])
        else:
            w_in = lw.input
            if layer == 0 and quantization == "int8":
                w_in = w_in * _embedding_range(weights)  # the codes hold embedding / range: undo it here
            joined = b.node("Concat", [x, b.rounded(h)], axis=-1)  # [B, w, in + H]
            gates = b.product(joined, np.concatenate([w_in, lw.recurrent]).astype(np.float32), lw.bias, cell, bias)
        i, o, f, g = (f"cell{layer}.{gate}" for gate in "iofg")
        b.nodes.append(helper.make_node("Split", [gates], [i, o, f, g], name=f"Split_{layer}", axis=-1))  # equal parts
        kept = b.node("Mul", [b.node("Sigmoid", [f]), c])
        added = b.node("Mul", [b.node("Sigmoid", [i]), b.node("Tanh", [g])])
        c_next = b.node("Add", [kept, added], contract.next_state_name(c))
        h_next = b.node("Mul", [b.node("Sigmoid", [o]), b.node("Tanh", [c_next])], contract.next_state_name(h))
        x = b.rounded(h_next)
    logits = b.product(x, weights.head_w, weights.head_b, contract.HEAD_WEIGHT, contract.HEAD_BIAS)
    b.node("Identity", [logits], contract.OUTPUT_LOGITS)  # every row; the caller reads the rows that completed a window
    return b.model(config, graph, weights.head_b.shape[0], contract.lowest_version(graph))


def _embedding_range(weights: Weights) -> float:
    """The largest |embedding value|: int8 files store embedding / range as activation codes."""
    return max(float(np.abs(weights.embedding).max()), 1e-12)


def _step_input(b: GraphBuilder, weights: Weights) -> str | None:
    """The first layer's input [B, w, in] from the tokens; None for the index encoding."""
    if weights.embedding is None:
        return None
    table = weights.embedding
    if b.quantization == "int8":  # stored as the codes QuantizeLinear would make of embedding / range
        table = activation_codes(table / _embedding_range(weights))
    return b.node("Gather", [b.const(contract.EMBEDDING, table), contract.INPUT_TOKENS], axis=0)


def build_window_graph(weights: Weights, config: ModelConfig) -> onnx.ModelProto:
    """window [N, w] → logits [N, V]; each window from a zero state, by ONNX's LSTM operator."""
    b = GraphBuilder()
    x = b.encode(b.node("Transpose", [contract.INPUT_WINDOW], perm=[1, 0]), weights.embedding)  # [w, N, in]: time-major
    for layer, lw in enumerate(weights.layers):
        if layer < config.layers - 1:
            b.lstm(layer, x, lw, config.hidden, ("", ""), [f"lstm{layer}.Y", "", ""])
            # this layer's outputs [w, N, H], the next one's input
            x = b.node("Squeeze", [f"lstm{layer}.Y", b.ints([1])])
        else:  # the top layer's last hidden state is all the head needs
            b.lstm(layer, x, lw, config.hidden, ("", ""), ["", "top.Y_h", ""])
    b.head(b.node("Squeeze", ["top.Y_h", b.ints([0])]), weights)  # last step [N, H] → [N, V]
    return b.model(config, contract.GRAPH_WINDOW, weights.head_b.shape[0])


def build_lstm_step_graph(weights: Weights, config: ModelConfig) -> onnx.ModelProto:
    """The step graph for one sequence by ONNX's LSTM operator (format 1): tokens [1, w], state
    [1, w, H] → logits [1, w, V] and the next state. The w windows in flight are the operator's
    batch, one time step long; the state tensors are its initial and final h and c as they are."""
    b = GraphBuilder()
    x = b.encode(contract.INPUT_TOKENS, weights.embedding)  # [1, w, in]: one time step, a batch of w rows
    states = contract.state_names(config.layers)
    for layer, lw in enumerate(weights.layers):
        h, c = states[2 * layer], states[2 * layer + 1]
        y = f"lstm{layer}.Y"
        b.lstm(layer, x, lw, config.hidden, (h, c), [y, contract.next_state_name(h), contract.next_state_name(c)])
        x = b.node("Squeeze", [y, b.ints([1])])  # Y [1, 1, w, H] → [1, w, H]
    b.head(x, weights)
    return b.model(config, contract.GRAPH_STEP, weights.head_b.shape[0], contract.LSTM_FORMAT_VERSION)


def quantize_window_int8(fp32_path: Path, int8_path: Path) -> None:
    """The window graph's LSTM and MatMul weights to int8 (per tensor), activations at run time.

    reduce_range keeps weights in 7 bits: x86's u8 x s8 multiply-add saturates otherwise, and on the
    fable that cost the plain window graph 39% of its 32-word continuations. It costs no speed here.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic  # only the baseline needs the quantizer

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice about pre-processing that does not apply here
    try:
        quantize_dynamic(
            model_input=fp32_path,
            model_output=int8_path,
            op_types_to_quantize=["LSTM", "MatMul"],
            weight_type=QuantType.QInt8,
            per_channel=False,
            reduce_range=True,
        )
    finally:
        root.setLevel(level)
