"""What every backend checks of a model file: before reading it, and its graph against its metadata."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from . import contract
from .contract import ModelMetadata
from .errors import ModelFileError

# Protobuf cannot hold more; anything bigger is not a model this runtime wrote.
MAX_MODEL_BYTES = 2 * 1024**3


class GraphArg(Protocol):
    """A graph input or output as a backend reports it (onnxruntime's NodeArg, or onnxfile.ValueInfo)."""

    name: str
    type: str
    shape: Sequence[int | str | None]


def checked_path(path: str | os.PathLike[str]) -> str:
    """The path as text, or ModelFileError if it cannot be a model file."""
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
    return name


def check_graph(inputs: Sequence[GraphArg], outputs: Sequence[GraphArg], meta: ModelMetadata, name: str) -> None:
    """The graph's inputs and outputs must be what the contract says for this metadata."""
    expected_in, expected_out = contract.graph_io(meta.graph, meta.config, len(meta.vocabulary), meta.format_version)
    for role, expected, actual in (("input", expected_in, inputs), ("output", expected_out, outputs)):
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
