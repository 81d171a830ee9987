"""The model's weights as numpy arrays in the step graph's layout: what the graph builders consume.

Each LSTM layer is two products and a bias, x @ input + h @ recurrent + bias, with the four gates
in ONNX's order (i, o, f, c) along the columns, as the shipped files store them
(runtime/contract.py). The plain window graph, which only the baseline uses, converts from this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fable import contract
from fable.contract import ModelConfig

if TYPE_CHECKING:  # torch stays out of the import path of the graph builders
    import torch

    from fable.training.model import WordLSTM

# torch orders an LSTM's four gate blocks (i, f, g, o); the files order them (i, o, f, c).
_TORCH_TO_FILE_GATES = (0, 3, 1, 2)
_FILE_TO_TORCH_GATES = tuple(_TORCH_TO_FILE_GATES.index(i) for i in range(4))


@dataclass(frozen=True)
class LayerWeights:
    input: np.ndarray  # [in, 4H]: the layer's input x @ input (the index encoding: [1, 4H])
    recurrent: np.ndarray  # [H, 4H]: h @ recurrent
    bias: np.ndarray  # [4H]: torch's input and recurrent biases, summed


@dataclass(frozen=True)
class Weights:
    embedding: np.ndarray | None  # [vocab, embedding_dim], None for the index encoding
    layers: tuple[LayerWeights, ...]
    head_w: np.ndarray  # [hidden, vocab], ready for MatMul
    head_b: np.ndarray  # [vocab]


def _regate(array: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """The four gate blocks of `array` [4H, ...] put in `order`."""
    blocks = array.reshape(4, -1, *array.shape[1:])
    return np.concatenate([blocks[i] for i in order])


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().float().numpy()


def weights_from_torch(model: WordLSTM) -> Weights:
    layers = []
    for layer in range(model.config.layers):
        w_ih, w_hh, b_ih, b_hh = (
            _regate(_numpy(getattr(model.lstm, f"{name}_l{layer}")), _TORCH_TO_FILE_GATES)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        layers.append(LayerWeights(np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), b_ih + b_hh))
    return Weights(
        embedding=_numpy(model.embedding.weight) if model.embedding is not None else None,
        layers=tuple(layers),
        head_w=np.ascontiguousarray(_numpy(model.head.weight).T),
        head_b=_numpy(model.head.bias),
    )


def torch_from_weights(weights: Weights, config: ModelConfig) -> WordLSTM:
    """A WordLSTM holding `weights` (e.g. read back from an exported file): the torch baseline."""
    import torch

    from fable.training.model import WordLSTM

    model = WordLSTM(config, weights.head_b.shape[0])
    state = {"head.weight": torch.from_numpy(weights.head_w.T.copy()), "head.bias": torch.tensor(weights.head_b)}
    if weights.embedding is not None:
        state["embedding.weight"] = torch.tensor(weights.embedding)
    for layer, lw in enumerate(weights.layers):
        arrays = {
            "weight_ih": lw.input.T,
            "weight_hh": lw.recurrent.T,
            "bias_ih": lw.bias,
            "bias_hh": np.zeros_like(lw.bias),
        }
        for name, array in arrays.items():
            state[f"lstm.{name}_l{layer}"] = torch.from_numpy(
                np.ascontiguousarray(_regate(array, _FILE_TO_TORCH_GATES))
            )
    model.load_state_dict(state)
    return model.eval()


def weights_from_arrays(arrays: dict[str, np.ndarray], config: ModelConfig) -> Weights:
    """The weights of a format-2 fp32 step file, from its initializers by the contract's names."""
    layers = []
    for layer in range(config.layers):
        cell, bias = arrays[contract.cell_weight(layer)], arrays[contract.cell_bias(layer)]  # [in + H, 4H], [4H]
        if layer == 0 and contract.INDEX_WEIGHT in arrays:
            layers.append(LayerWeights(arrays[contract.INDEX_WEIGHT], cell, bias))
        else:
            layers.append(LayerWeights(cell[: -config.hidden], cell[-config.hidden :], bias))
    return Weights(
        arrays.get(contract.EMBEDDING), tuple(layers), arrays[contract.HEAD_WEIGHT], arrays[contract.HEAD_BIAS]
    )
