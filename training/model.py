"""The next-word model: a window of word ids → encoding → stacked LSTMs → logits of the next word."""

from __future__ import annotations

import torch
from torch import nn

from fable.contract import ModelConfig


class WordLSTM(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim) if config.encoding == "embedding" else None
        self.lstm = nn.LSTM(config.input_size, config.hidden, config.layers, batch_first=True)
        self.head = nn.Linear(config.hidden, vocab_size)

    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """[N, window] ids → [N, window, input_size] floats."""
        if self.embedding is not None:
            return self.embedding(windows)
        return windows.unsqueeze(-1).float()  # the tutorial's encoding: the id itself as one float

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """[N, window] ids → [N, vocab] logits; every window starts from a zero state."""
        out, _ = self.lstm(self.encode(windows))
        return self.head(out[:, -1])
