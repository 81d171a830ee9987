"""The next-word model: a window of word ids → encoding → stacked LSTMs → logits of the next word."""

from __future__ import annotations

import torch
from torch import nn

from fable.contract import ModelConfig

State = tuple[torch.Tensor, torch.Tensor]  # h and c [layers, N, hidden]


class WordLSTM(nn.Module):
    """`dropout` (in training only: the exported graphs never see it) drops a share of the
    embedding's values, of each layer's outputs to the next, and of the last layer's to the head.
    `tie`: the head's weights are the embedding's (Press and Wolf, 2017), which needs an embedding
    as wide as the hidden layer; the exported file simply holds the same matrix twice."""

    def __init__(self, config: ModelConfig, vocab_size: int, dropout: float = 0.0, tie: bool = False):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim) if config.encoding == "embedding" else None
        between = dropout if config.layers > 1 else 0.0
        self.lstm = nn.LSTM(config.input_size, config.hidden, config.layers, batch_first=True, dropout=between)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(config.hidden, vocab_size)
        if tie:
            if self.embedding is None or config.embedding_dim != config.hidden:
                raise ValueError("tied weights need an embedding as wide as the hidden layer")
            self.head.weight = self.embedding.weight

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """[N, window] ids → [N, window, input_size] floats."""
        if self.embedding is not None:
            return self.drop(self.embedding(windows))
        return windows.unsqueeze(-1).float()  # the tutorial's encoding: the id itself as one float

    def forward(self, windows: torch.Tensor, state: State | None = None) -> torch.Tensor | tuple[torch.Tensor, State]:
        """[N, window] ids → [N, vocab] logits; every window starts from a zero state. With
        `state` (a stream model's, h and c [layers, N, hidden]): ids [N, T] → the logits after
        every word [N, T, vocab] and the state after the last, read on from `state`."""
        if state is None:
            out, _ = self.lstm(self.encode(windows))
            return self.head(self.drop(out[:, -1]))
        out, state = self.lstm(self.encode(windows), state)
        return self.head(self.drop(out)), state

    def read(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, torch.Tensor, State]:
        """A stream read on from `state` (None: the zero state): ids [N, T] → logits [N, T, vocab],
        the top layer's outputs [N, T, hidden] (what the runtime's cache keeps) and the state after."""
        out, state = self.lstm(self.encode(ids), state if state is not None else self.zero_state(len(ids)))
        return self.head(self.drop(out)), out, state

    def zero_state(self, rows: int) -> State:
        zeros = self.head.weight.new_zeros((self.config.layers, rows, self.config.hidden))
        return zeros, zeros.clone()
