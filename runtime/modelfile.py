"""What every backend does before it trusts a model file: its path, then its metadata and graph."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import contract
from .contract import GraphArg, ModelMetadata
from .errors import ModelFileError

# Protobuf cannot hold more; anything bigger is not a model this runtime wrote.
MAX_MODEL_BYTES = 2 * 1024**3


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


def described(
    props: Mapping[str, str], inputs: Sequence[GraphArg], outputs: Sequence[GraphArg], source: str
) -> ModelMetadata:
    """The file's metadata, read and bounded, with its graph's inputs and outputs held to it."""
    meta = contract.metadata_from_props(props, source)
    contract.check_graph(inputs, outputs, meta, source)
    return meta


def unreadable(source: str, error: Exception) -> ModelFileError:
    """The one line for a file its backend cannot parse; `error` says why (its first line)."""
    text = str(error).strip()
    reason = text.splitlines()[0][:160] if text else type(error).__name__
    return ModelFileError(f"model file {source} is not a readable ONNX model ({reason}); export it again")
