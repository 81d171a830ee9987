"""Reading an ONNX file without onnx or onnxruntime: the few protobuf fields a fable model uses.

Why a reader of our own rather than the `onnx` package: the runtime must never import onnx (it
is training's dependency), Debian's python3-onnx is old and heavy on a Pi Zero, and a fable file
needs only the metadata, the graph's inputs, outputs and nodes, and the initializers. Every
length is checked against the bytes that are there before anything is allocated, and anything
malformed is a ValueError for the caller to turn into its one-line ModelFileError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# TensorProto.DataType → numpy; the types a fable file (fp32, or dynamic int8) holds.
DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64}
TYPE_NAMES = {1: "tensor(float)", 2: "tensor(uint8)", 3: "tensor(int8)", 6: "tensor(int32)", 7: "tensor(int64)"}
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output, named and shaped as onnxruntime reports them."""

    name: str
    type: str  # "tensor(float)"
    shape: tuple[int | str | None, ...]  # a size, a symbolic name, or None


@dataclass(frozen=True)
class Node:
    op_type: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, int | float | bytes | tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class OnnxFile:
    metadata: dict[str, str]
    inputs: tuple[ValueInfo, ...]
    outputs: tuple[ValueInfo, ...]
    nodes: tuple[Node, ...]
    initializers: dict[str, np.ndarray]


def read_onnx(data: bytes) -> OnnxFile:
    """Parse a serialized ModelProto; ValueError if it is not one."""
    metadata, graph, has_version = {}, None, False
    for number, value in _fields(memoryview(data)):
        if number == 1:  # ir_version
            has_version = True
        elif number == 14:  # metadata_props: StringStringEntryProto
            entry = dict(_fields(_bytes(value)))
            metadata[_text(entry.get(1, b""))] = _text(entry.get(2, b""))
        elif number == 7:
            graph = _bytes(value)
    if graph is None or not has_version:
        raise ValueError("no graph or IR version: not an ONNX model")
    return _graph(graph, metadata)


def _graph(data: memoryview, metadata: dict[str, str]) -> OnnxFile:
    nodes, inputs, outputs, initializers = [], [], [], {}
    for number, value in _fields(data):
        if number == 1:
            nodes.append(_node(_bytes(value)))
        elif number == 5:
            name, array = _tensor(_bytes(value))
            initializers[name] = array
        elif number == 11:
            inputs.append(_value_info(_bytes(value)))
        elif number == 12:
            outputs.append(_value_info(_bytes(value)))
    return OnnxFile(metadata, tuple(inputs), tuple(outputs), tuple(nodes), initializers)


def _node(data: memoryview) -> Node:
    inputs, outputs, attributes, op_type, domain = [], [], {}, "", ""
    for number, value in _fields(data):
        if number == 1:
            inputs.append(_text(value))
        elif number == 2:
            outputs.append(_text(value))
        elif number == 4:
            op_type = _text(value)
        elif number == 7:
            domain = _text(value)
        elif number == 5:
            name, attribute = _attribute(_bytes(value))
            attributes[name] = attribute
    return Node(op_type, domain, tuple(inputs), tuple(outputs), attributes)


def _attribute(data: memoryview) -> tuple[str, int | float | bytes | tuple[int, ...]]:
    name, value, ints = "", None, []
    for number, item in _fields(data):
        if number == 1:
            name = _text(item)
        elif number == 2:  # f: a float32, as 4 little-endian bytes
            value = float(np.frombuffer(_width(_bytes(item), 4), "<f4")[0])
        elif number == 3:  # i
            value = _signed(_int(item))
        elif number == 4:  # s
            value = bytes(_bytes(item))
        elif number == 8:  # ints, packed or not
            ints.extend(_signed(i) for i in _varints(item))
    return name, tuple(ints) if value is None else value


def _value_info(data: memoryview) -> ValueInfo:
    name, type_name, shape = "", "", ()
    for number, value in _fields(data):
        if number == 1:
            name = _text(value)
        elif number == 2:  # TypeProto → tensor_type (1) → elem_type (1), shape (2)
            for tensor_field, tensor in _fields(_bytes(value)):
                if tensor_field == 1:
                    type_name, shape = _tensor_type(_bytes(tensor))
    return ValueInfo(name, type_name, shape)


def _tensor_type(data: memoryview) -> tuple[str, tuple[int | str | None, ...]]:
    type_name, dims = "", []
    for number, value in _fields(data):
        if number == 1:
            type_name = TYPE_NAMES.get(_int(value), f"tensor(type {_int(value)})")
        elif number == 2:  # TensorShapeProto: dim (1) → dim_value (1) or dim_param (2)
            for dim_field, dim in _fields(_bytes(value)):
                if dim_field == 1:
                    size: int | str | None = None
                    for which, part in _fields(_bytes(dim)):
                        size = _signed(_int(part)) if which == 1 else _text(part) if which == 2 else size
                    dims.append(size)
    return type_name, tuple(dims)


def _tensor(data: memoryview) -> tuple[str, np.ndarray]:
    dims, dtype, name, raw, typed = [], 0, "", None, []
    for number, value in _fields(data):
        if number == 1:
            dims.extend(_signed(d) for d in _varints(value))
        elif number == 2:
            dtype = _int(value)
        elif number == 8:
            name = _text(value)
        elif number == 9:
            raw = _bytes(value)
        elif number == 4:  # float_data: packed, or one fixed32 at a time
            typed.append(np.frombuffer(_bytes(value), "<f4"))
        elif number in (5, 7):  # int32_data, int64_data
            typed.append(np.array([_signed(v) for v in _varints(value)], np.int64))
    if dtype not in DTYPES or any(d < 0 for d in dims):
        raise ValueError(f"initializer {name!r} has data type {dtype} or dims {dims} that fable does not use")
    count, itemsize = math.prod(dims), np.dtype(DTYPES[dtype]).itemsize
    if raw is not None:
        if len(raw) != count * itemsize:  # checked before anything is allocated
            raise ValueError(f"initializer {name!r} holds {len(raw)} bytes for dims {dims}")
        array = np.frombuffer(raw, np.dtype(DTYPES[dtype]).newbyteorder("<"))
    else:
        array = np.concatenate(typed) if typed else np.zeros(0)
        if array.size != count:
            raise ValueError(f"initializer {name!r} holds {array.size} values for dims {dims}")
    return name, array.astype(DTYPES[dtype], copy=True).reshape(dims)


# --- protobuf's wire format ---------------------------------------------------------------------


def _fields(data: memoryview):
    """(field number, value) of each field: an int for a varint, a memoryview of the bytes for the
    others (length-delimited, fixed32, fixed64)."""
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == _VARINT:
            value, position = _varint(data, position)
        elif wire == _LENGTH:
            length, position = _varint(data, position)
            if length > end - position:
                raise ValueError("a field runs past the end of its message")
            value, position = data[position : position + length], position + length
        elif wire in (_FIXED64, _FIXED32):
            width = 8 if wire == _FIXED64 else 4
            if width > end - position:
                raise ValueError("a field runs past the end of its message")
            value, position = data[position : position + width], position + width
        else:
            raise ValueError(f"wire type {wire}, which no ONNX field uses")
        yield number, value


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("a cut or overlong varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _varints(value: int | memoryview) -> list[int]:
    """A repeated integer field: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [value]
    values, position = [], 0
    while position < len(value):
        number, position = _varint(value, position)
        values.append(number)
    return values


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _int(value: int | memoryview) -> int:
    if not isinstance(value, int):
        raise ValueError("a number where bytes were expected")
    return value


def _bytes(value: int | memoryview) -> memoryview:
    if isinstance(value, int):
        raise ValueError("a number where bytes were expected")
    return value


def _width(value: memoryview, size: int) -> memoryview:
    if len(value) != size:
        raise ValueError(f"{len(value)} bytes where a field holds {size}")
    return value


def _text(value: int | memoryview) -> str:
    try:
        return bytes(_bytes(value)).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("text that is not UTF-8") from None
