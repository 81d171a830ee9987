"""ONNX graphs of the model, built node by node from its weights.

Two graphs compute the same next-word logits (docs/design.md, "Fast decoding"):
- the window graph runs a whole window of `w` words from a zero state: w LSTM steps per word;
- the step graph advances the w windows in flight as rows of one batch, one LSTM step per word;
  its inputs and outputs are in runtime/contract.py.

Weights are stored initializers, never computed, so `quantize_dynamic` quantizes every LSTM.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fable import contract
from fable.contract import ModelConfig, TensorSpec

from .weights import LayerWeights, Weights

OPSET = 17
IR_VERSION = 8  # readable by onnxruntime 1.14 and newer, as found on older Raspberry Pi images

_DTYPES = {"tensor(float)": TensorProto.FLOAT, "tensor(int64)": TensorProto.INT64}
EMBEDDING, HEAD_W, HEAD_B = "embedding", "head.weight", "head.bias"


def _layer_names(layer: int) -> tuple[str, str, str]:
    return f"lstm{layer}.W", f"lstm{layer}.R", f"lstm{layer}.B"


def _value_info(spec: TensorSpec, dynamic: str = "batch") -> onnx.ValueInfoProto:
    shape = [dynamic if dim is None else dim for dim in spec.shape]
    return helper.make_tensor_value_info(spec.name, _DTYPES[spec.dtype], shape)


class _Builder:
    """Collects nodes and initializers; `const` and `node` return the name of their output."""

    def __init__(self, weights: Weights):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0
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

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs: object) -> str:
        self.count += 1
        output = output or f"{op.lower()}{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=f"{op}_{self.count}", **attrs))
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


def build_step_graph(weights: Weights, config: ModelConfig) -> onnx.ModelProto:
    """tokens [1, w], per-layer state [1, w, H] → logits [1, w, V] and the states after one step."""
    b = _Builder(weights)
    x = b.encode(contract.INPUT_TOKENS)  # [1, w, in]: a one-step sequence, batch = the w windows
    states = contract.state_names(config.layers)
    for layer in range(config.layers):
        h0, c0 = states[2 * layer], states[2 * layer + 1]
        outputs = ("", contract.next_state_name(h0), contract.next_state_name(c0))
        _, x, _ = b.lstm(layer, x, config.hidden, h0, c0, outputs)  # one step: Y_h is the output [1, w, H]
    b.head(x, contract.OUTPUT_LOGITS)  # every row; the caller reads the row that completed a window
    return b.model(config, contract.GRAPH_STEP, weights.head_b.shape[0])


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


def weights_from_onnx(model: onnx.ModelProto) -> Weights:
    """The weights of an fp32 graph built here (either kind): rebuild the other graph from a file."""
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    layers = []
    while all(name in arrays for name in _layer_names(len(layers))):
        layers.append(LayerWeights(*(arrays[name] for name in _layer_names(len(layers)))))
    return Weights(arrays.get(EMBEDDING), tuple(layers), arrays[HEAD_W], arrays[HEAD_B])
