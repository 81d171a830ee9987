"""The model's weights as numpy arrays in ONNX's layout: what the graph builders consume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch stays out of the import path of the graph builders (bench/ uses them)
    import torch

    from training.model import WordLSTM

# torch orders an LSTM's four gate blocks (i, f, g, o); ONNX orders them (i, o, f, c).
_TORCH_TO_ONNX_GATES = (0, 3, 1, 2)


@dataclass(frozen=True)
class LayerWeights:
    W: np.ndarray  # [1, 4*hidden, input]  input weights, gates i, o, f, c
    R: np.ndarray  # [1, 4*hidden, hidden] recurrent weights
    B: np.ndarray  # [1, 8*hidden]         input biases then recurrent biases


@dataclass(frozen=True)
class Weights:
    embedding: np.ndarray | None  # [vocab, embedding_dim], None for the index encoding
    layers: tuple[LayerWeights, ...]
    head_w: np.ndarray  # [hidden, vocab], ready for MatMul
    head_b: np.ndarray  # [vocab]


def _gates_to_onnx(tensor: "torch.Tensor") -> np.ndarray:
    blocks = tensor.detach().cpu().float().numpy().reshape(4, -1, *tensor.shape[1:])
    return np.ascontiguousarray(np.concatenate([blocks[i] for i in _TORCH_TO_ONNX_GATES]))


def weights_from_torch(model: "WordLSTM") -> Weights:
    layers = []
    for layer in range(model.config.layers):
        get = lambda name: getattr(model.lstm, f"{name}_l{layer}")  # noqa: E731
        layers.append(
            LayerWeights(
                W=_gates_to_onnx(get("weight_ih"))[None],
                R=_gates_to_onnx(get("weight_hh"))[None],
                B=np.concatenate([_gates_to_onnx(get("bias_ih")), _gates_to_onnx(get("bias_hh"))])[None],
            )
        )
    embedding = model.embedding.weight.detach().cpu().float().numpy() if model.embedding is not None else None
    return Weights(
        embedding=embedding,
        layers=tuple(layers),
        head_w=np.ascontiguousarray(model.head.weight.detach().cpu().float().numpy().T),
        head_b=model.head.bias.detach().cpu().float().numpy(),
    )
