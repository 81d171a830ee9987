"""The onnxruntime backend: a session on the model file, and kernels that run it through
numpy buffers bound once (IOBinding), so a word costs one `run_with_iobinding` and no allocation."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import contract
from .contract import ModelMetadata
from .errors import ModelFileError
from .modelfile import checked_path, described, unreadable
from .onnxfile import read_onnx

# The int4 file's MatMulNBits takes a bias from this onnxruntime on (1.18.1 refuses the file,
# measured); pyproject asks for it, but an older one can come from elsewhere (a system package).
INT4_NEEDS = (1, 19)


def session_options(threads: int, spin: bool) -> ort.SessionOptions:
    """`threads` intra-op threads, spinning between runs or not, no inter-op pool."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning workers answer the next product sooner, and burn their cores between words:
    # a win on some machines, a loss on others; fable-bench --tune measures which (docs/design.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3  # errors only: warnings about unused initializers are not the user's business
    return options


class OrtBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int, spin: bool):
        name = checked_path(path)
        try:
            options = session_options(threads, spin)
            self.session = ort.InferenceSession(name, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own, untyped, multi-line errors for damaged files
            raise _refusal(name, error) from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = described(props, self.session.get_inputs(), self.session.get_outputs(), name)

    def kernel(self, batch: int) -> OrtStepKernel | OrtWindowKernel:
        if self.metadata.graph != contract.GRAPH_WINDOW:
            return OrtStepKernel(self.session, self.metadata, batch)
        return OrtWindowKernel(self.session, self.metadata, batch)

    def describe(self) -> str:
        options = self.session.get_session_options()
        threads = options.intra_op_num_threads
        spinning = options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
        said = f"{threads} thread{'' if threads == 1 else 's'}, spinning {'on' if spinning else 'off'}"
        return f"onnxruntime, {said} (onnxruntime {ort.__version__})"


def _refusal(name: str, error: Exception) -> ModelFileError:
    """Why onnxruntime cannot open the file: an int4 file on an onnxruntime too old for it, or damage."""
    if _version(ort.__version__) < INT4_NEEDS:
        try:
            quantization = read_onnx(Path(name).read_bytes()).metadata.get(contract.KEY_QUANTIZATION)
        except (OSError, ValueError):
            quantization = None
        if quantization == "int4":
            return ModelFileError(
                f"model file {name} is int4, which needs onnxruntime {'.'.join(map(str, INT4_NEEDS))} or newer; "
                f"this is {ort.__version__}: pip install -U onnxruntime, or run it with the numpy backend"
            )
    return unreadable(name, error)


def _version(text: str) -> tuple[int, ...]:
    """(1, 18, 1) of "1.18.1"; the leading numbers of anything else."""
    numbers = []
    for part in text.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def _bind(binding: ort.IOBinding, name: str, array: np.ndarray, output: bool = False) -> None:
    value = ort.OrtValue.ortvalue_from_numpy(array)  # shares the array's memory: writes show through
    (binding.bind_ortvalue_output if output else binding.bind_ortvalue_input)(name, value)


class OrtStepKernel:
    def __init__(self, session: ort.InferenceSession, meta: ModelMetadata, batch: int):
        config, rows = meta.config, meta.rows
        self._session = session
        self._tokens = np.zeros((batch, rows), np.int64)
        self.logits = np.zeros((batch, rows, len(meta.vocabulary)), np.float32)
        states = contract.state_names(config.layers)
        # Two sets of state buffers [states, batch, rows, hidden]: each step reads one, writes the other.
        self._states = np.zeros((2, len(states), batch, rows, config.hidden), np.float32)
        self._bindings = []
        for side in (0, 1):
            binding = session.io_binding()
            _bind(binding, contract.INPUT_TOKENS, self._tokens)
            _bind(binding, contract.OUTPUT_LOGITS, self.logits, output=True)
            for index, name in enumerate(states):
                _bind(binding, name, self._states[side, index])
                _bind(binding, contract.next_state_name(name), self._states[1 - side, index], output=True)
            self._bindings.append(binding)
        self._side = 0  # the set the next step reads

    def run(self, tokens: np.ndarray) -> None:
        self._tokens[...] = tokens  # [batch, 1]: each sequence's newest id in all its columns
        self._session.run_with_iobinding(self._bindings[self._side])
        self._side = 1 - self._side

    def zero_row(self, row: int) -> None:
        self._states[self._side, :, :, row] = 0

    def reset(self) -> None:
        self._states[:] = 0
        self._side = 0

    def zero_sequences(self, sequences: np.ndarray) -> None:
        self._states[self._side, :, sequences] = 0

    def top(self) -> np.ndarray:
        return self._states[self._side, -2]  # the top layer's h: state_names ends with its h, c


class OrtWindowKernel:
    def __init__(self, session: ort.InferenceSession, meta: ModelMetadata, batch: int):
        self._session = session
        self._ids = np.zeros((batch, meta.config.window), np.int64)
        self._logits = np.zeros((batch, len(meta.vocabulary)), np.float32)
        self._binding = session.io_binding()
        _bind(self._binding, contract.INPUT_WINDOW, self._ids)
        _bind(self._binding, contract.OUTPUT_LOGITS, self._logits, output=True)

    def run(self, ids: np.ndarray) -> np.ndarray:
        self._ids[...] = ids
        self._session.run_with_iobinding(self._binding)
        return self._logits
