"""Dynamic int8 quantization, and the check that it really happened."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

from fable.errors import FableError

FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)


class ExportGuardError(FableError):
    """An exported file failed a check; the previous files are left in place (exit 1)."""


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """LSTM and MatMul weights to int8 (per tensor: the fastest kernels here), activations at run time.

    reduce_range keeps weights in 7 bits: x86's u8 x s8 multiply-add saturates otherwise, and on the
    fable that cost the plain window graph 39% of its 32-word continuations. It costs no speed here.
    """
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice about pre-processing that does not apply here
    try:
        quantize_dynamic(
            model_input=fp32_path,
            model_output=int8_path,
            op_types_to_quantize=["LSTM", "MatMul"],
            weight_type=QuantType.QInt8,
            per_channel=False,
            reduce_range=True,
        )
    finally:
        root.setLevel(level)


def check_quantized(model: onnx.ModelProto, max_float_elements: int) -> None:
    """Refuse a 'quantized' graph that still computes in float where it matters."""
    float_lstms = [node.name or "unnamed" for node in model.graph.node if node.op_type == "LSTM"]
    if float_lstms:
        raise ExportGuardError(
            f"guard: the int8 file still holds {len(float_lstms)} float LSTM node(s) ({', '.join(float_lstms)}): "
            "the quantizer left them in fp32; nothing to relax, the export is wrong"
        )
    for init in model.graph.initializer:
        elements = int(np.prod(init.dims)) if init.dims else 1
        if init.data_type in FLOAT_TYPES and elements >= max_float_elements:
            raise ExportGuardError(
                f"guard: the int8 file holds float weight {init.name} {list(init.dims)} with {elements:,} elements, "
                f"at or above --max-float-elements {max_float_elements:,}"
            )
