"""The model's weights as numpy arrays in ONNX's layout: what the graph builders consume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fable.contract import ModelConfig

if TYPE_CHECKING:  # torch stays out of the import path of the graph builders
    import torch

    from fable.training.model import WordLSTM

# torch orders an LSTM's four gate blocks (i, f, g, o); ONNX orders them (i, o, f, c).
_TORCH_TO_ONNX_GATES = (0, 3, 1, 2)
_TORCH_LSTM_PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


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


def _gates_to_onnx(tensor: torch.Tensor) -> np.ndarray:
    blocks = tensor.detach().cpu().float().numpy().reshape(4, -1, *tensor.shape[1:])
    return np.ascontiguousarray(np.concatenate([blocks[i] for i in _TORCH_TO_ONNX_GATES]))


def weights_from_torch(model: WordLSTM) -> Weights:
    layers = []
    for layer in range(model.config.layers):
        w_ih, w_hh, b_ih, b_hh = (getattr(model.lstm, f"{name}_l{layer}") for name in _TORCH_LSTM_PARAMETERS)
        layers.append(
            LayerWeights(
                W=_gates_to_onnx(w_ih)[None],
                R=_gates_to_onnx(w_hh)[None],
                B=np.concatenate([_gates_to_onnx(b_ih), _gates_to_onnx(b_hh)])[None],
            )
        )
    embedding = model.embedding.weight.detach().cpu().float().numpy() if model.embedding is not None else None
    return Weights(
        embedding=embedding,
        layers=tuple(layers),
        head_w=np.ascontiguousarray(model.head.weight.detach().cpu().float().numpy().T),
        head_b=model.head.bias.detach().cpu().float().numpy(),
    )


# The inverse permutation: ONNX blocks (i, o, f, c) back to torch's (i, f, g, o).
_ONNX_TO_TORCH_GATES = tuple(_TORCH_TO_ONNX_GATES.index(i) for i in range(4))


def _gates_to_torch(array: np.ndarray) -> torch.Tensor:
    import torch

    blocks = array.reshape(4, -1, *array.shape[1:])
    return torch.from_numpy(np.ascontiguousarray(np.concatenate([blocks[i] for i in _ONNX_TO_TORCH_GATES])))


def torch_from_weights(weights: Weights, config: ModelConfig) -> WordLSTM:
    """A WordLSTM holding `weights` (e.g. read back from an exported file): the torch baseline."""
    import torch

    from fable.training.model import WordLSTM

    model = WordLSTM(config, weights.head_b.shape[0])
    state = {"head.weight": torch.from_numpy(weights.head_w.T.copy()), "head.bias": torch.tensor(weights.head_b)}
    if weights.embedding is not None:
        state["embedding.weight"] = torch.tensor(weights.embedding)
    for layer, lw in enumerate(weights.layers):
        hidden4 = lw.W.shape[1]
        arrays = (lw.W[0], lw.R[0], lw.B[0, :hidden4], lw.B[0, hidden4:])
        for name, array in zip(_TORCH_LSTM_PARAMETERS, arrays):
            state[f"lstm.{name}_l{layer}"] = _gates_to_torch(array)
    model.load_state_dict(state)
    return model.eval()
