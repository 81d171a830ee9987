"""The runtime's own ONNX reader on hand-made bytes: anything malformed is a ValueError, which
loading turns into one line (the onnx package builds the damaged files of test_damaged_files.py;
these need no onnx)."""

from __future__ import annotations

import pytest

import fable
from fable import ModelFileError
from fable.onnxfile import read_onnx

VARINT, LENGTH, FIXED32 = 0, 2, 5


def varint(number: int) -> bytes:
    out = b""
    while True:
        out += bytes([(number & 0x7F) | (0x80 if number > 0x7F else 0)])
        number >>= 7
        if not number:
            return out


def field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = varint(number << 3 | wire)
    if wire == VARINT:
        return key + varint(payload)  # type: ignore[arg-type]
    return key + (varint(len(payload)) if wire == LENGTH else b"") + payload  # type: ignore[arg-type]


def model_with_attribute(attribute: bytes) -> bytes:
    """A ModelProto (IR version 8) whose one node carries `attribute` (an AttributeProto's fields)."""
    node = field(4, LENGTH, b"LeakyRelu") + field(5, LENGTH, field(1, LENGTH, b"alpha") + attribute)
    return field(1, VARINT, 8) + field(7, LENGTH, field(1, LENGTH, node))


def test_a_well_formed_float_attribute_is_read():
    node = read_onnx(model_with_attribute(field(2, FIXED32, b"\x00\x00\x80\x3f"))).nodes[0]
    assert (node.op_type, node.attributes) == ("LeakyRelu", {"alpha": 1.0})


@pytest.mark.parametrize("size", [0, 2, 8])
def test_a_float_attribute_of_another_size_is_a_value_error(size, tmp_path):
    """0.3.0 read an empty one as `np.frombuffer(b'')[0]`: IndexError, "unexpected IndexError"."""
    data = model_with_attribute(field(2, LENGTH, b"\x01" * size))
    with pytest.raises(ValueError, match=f"{size} bytes where a field holds 4"):
        read_onnx(data)
    path = tmp_path / "crafted.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelFileError) as refused:
        fable.Model(path, backend="numpy")
    assert "\n" not in str(refused.value)
