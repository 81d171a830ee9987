"""Decoders: feed words one at a time, get the next-word logits back.

Both keep their inputs and outputs in numpy buffers bound to the session once (IOBinding), so a
word costs one `run_with_iobinding` call and no allocation. Each decoder belongs to one thread at a
time; the session underneath may be shared.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from . import contract
from .contract import ModelMetadata


def _bind(binding: ort.IOBinding, name: str, array: np.ndarray, output: bool = False) -> None:
    value = ort.OrtValue.ortvalue_from_numpy(array)  # shares the array's memory: writes show through
    (binding.bind_ortvalue_output if output else binding.bind_ortvalue_input)(name, value)


class StepDecoder:
    """One batched LSTM step per word through the step graph (docs/design.md, "Fast decoding")."""

    def __init__(self, session: ort.InferenceSession, meta: ModelMetadata):
        config = meta.config
        self.window = config.window
        self._session = session
        self._tokens = np.zeros((1, config.window), np.int64)
        self._logits = np.zeros((1, config.window, len(meta.vocabulary)), np.float32)
        states = contract.state_names(config.layers)
        # Two sets of state buffers [states, 1, window, hidden]: each step reads one and writes the other.
        self._states = np.zeros((2, len(states), 1, config.window, config.hidden), np.float32)
        self._bindings = []
        for side in (0, 1):
            binding = session.io_binding()
            _bind(binding, contract.INPUT_TOKENS, self._tokens)
            _bind(binding, contract.OUTPUT_LOGITS, self._logits, output=True)
            for index, name in enumerate(states):
                _bind(binding, name, self._states[side, index])
                _bind(binding, contract.next_state_name(name), self._states[1 - side, index], output=True)
            self._bindings.append(binding)
        self._fed = 0

    def reset(self) -> None:
        self._states[:] = 0
        self._fed = 0

    def feed(self, token: int) -> np.ndarray:
        """Logits [vocab] for the window that ends with `token`, valid once `window` words were fed.

        The array is a view that the next feed overwrites.
        """
        side = self._fed & 1
        self._tokens.fill(token)
        self._session.run_with_iobinding(self._bindings[side])
        self._fed += 1
        row = self._fed % self.window
        self._states[1 - side, :, 0, row] = 0  # the completed window's row starts the next window
        return self._logits[0, row]


class WindowDecoder:
    """The plain decode: the whole window graph per word, from a zero state. Reference and baseline."""

    def __init__(self, session: ort.InferenceSession, meta: ModelMetadata):
        self.window = meta.config.window
        self._session = session
        self._ids = np.zeros((1, self.window), np.int64)
        self._logits = np.zeros((1, len(meta.vocabulary)), np.float32)
        self._binding = session.io_binding()
        _bind(self._binding, contract.INPUT_WINDOW, self._ids)
        _bind(self._binding, contract.OUTPUT_LOGITS, self._logits, output=True)

    def reset(self) -> None:
        self._ids[:] = 0

    def feed(self, token: int) -> np.ndarray:
        """Logits [vocab] for the last `window` words fed (a view the next feed overwrites)."""
        self._ids[0, :-1] = self._ids[0, 1:]
        self._ids[0, -1] = token
        self._session.run_with_iobinding(self._binding)
        return self._logits[0]


Decoder = StepDecoder | WindowDecoder


def make_decoder(session: ort.InferenceSession, meta: ModelMetadata) -> Decoder:
    return (StepDecoder if meta.graph == contract.GRAPH_STEP else WindowDecoder)(session, meta)
