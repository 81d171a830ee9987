"""Opening a model file: checks before, during and after onnxruntime reads it."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

from . import contract
from .contract import ModelMetadata
from .errors import ModelFileError

# Protobuf cannot hold more; anything bigger is not a model this runtime wrote.
MAX_MODEL_BYTES = 2 * 1024**3


def session_options(threads: int) -> ort.SessionOptions:
    """One sequence on a small CPU: `threads` intra-op threads, no spinning, no inter-op pool."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn the cores between words; with one sequence they only steal time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: warnings about unused initializers are not the user's business
    return options


def open_model(path: str | os.PathLike[str], threads: int = 1) -> tuple[ort.InferenceSession, ModelMetadata]:
    """A session on `path` and its validated metadata, or ModelFileError naming what is wrong."""
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise ModelFileError(f"model file {name} does not exist; pass the path of a .onnx file fable-export wrote")
    if not path.is_file():
        raise ModelFileError(f"model path {name} is not a file; pass the path of a .onnx file fable-export wrote")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"model file {name} is empty; export it again with fable-export")
    if size > MAX_MODEL_BYTES:
        raise ModelFileError(f"model file {name} is {size:,} bytes, more than any ONNX model can be")
    try:
        session = ort.InferenceSession(name, session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own, untyped, multi-line errors for damaged files
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"model file {name} is not a readable ONNX model ({reason}); export it again") from None
    meta = contract.metadata_from_props(session.get_modelmeta().custom_metadata_map, source=name)
    check_graph(session, meta, name)
    return session, meta


def check_graph(session: ort.InferenceSession, meta: ModelMetadata, name: str) -> None:
    """The graph's inputs and outputs must be what the contract says for this metadata."""
    expected_in, expected_out = contract.graph_io(meta.graph, meta.config, len(meta.vocabulary))
    for role, expected, actual in (
        ("input", expected_in, session.get_inputs()),
        ("output", expected_out, session.get_outputs()),
    ):
        found = {arg.name: arg for arg in actual}
        if set(found) != {spec.name for spec in expected}:
            raise ModelFileError(
                f"model file {name} has {role}s {sorted(found)}, but its metadata describes a {meta.graph} graph "
                f"with {sorted(spec.name for spec in expected)}; export it again"
            )
        for spec in expected:
            arg = found[spec.name]
            static_ok = len(arg.shape) == len(spec.shape) and all(
                want is None or got == want for want, got in zip(spec.shape, arg.shape)
            )
            if arg.type != spec.dtype or not static_ok:
                raise ModelFileError(
                    f"model file {name} has {role} {spec.name} of {arg.type} {list(arg.shape)}, but its metadata "
                    f"(vocabulary of {len(meta.vocabulary)}, {meta.config}) needs {spec.dtype} "
                    f"{[d if d is not None else 'any' for d in spec.shape]}; export it again"
                )
