"""Weights in int8 and int4, and the check that quantization really happened.

The step graph's files (format 2) are quantized here, product by product:
- int8: weights symmetric per output column in 7 bits (x86 without VNNI adds u8 x s8 pairs in
  16 bits, which saturate with 8-bit weights); inputs rounded to uint8 on one fixed scale.
  Every product input is an LSTM output h, and |h| < 1, or the embedding divided by its largest
  value; so the scale needs no data, and a row's codes never depend on the rest of the batch.
- int4: onnxruntime's MatMulNBits layout, symmetric blocks of `block_size` along K, with
  accuracy level 4 (each row's input rounded to int8 per block at run time: the fast kernels).
The window graph, the baseline, is quantized by onnxruntime's `quantize_dynamic` as before.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

from fable.errors import FableError

FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)


ACTIVATION_STEP = 1 / 127  # uint8 code 128 + round(x * 127): all of (-1, 1) in 255 codes
ACTIVATION_ZERO = 128
INT8_WEIGHT_LIMIT = 63  # 7 bits: see above
INT4_ACCURACY_LEVEL = 4  # int8 compute: levels 0 to 3 compute in float, 5x slower here
INT4_BLOCK_SIZES = (32, 64, 128, 256)
DEFAULT_INT4_BLOCK = 128  # measured: docs/design.md, "int4"


def activation_codes(x: np.ndarray) -> np.ndarray:
    """The uint8 codes QuantizeLinear makes of x on the fixed activation scale."""
    step, zero = np.float32(ACTIVATION_STEP), np.float32(ACTIVATION_ZERO)
    return np.clip(np.rint(np.asarray(x, np.float32) / step) + zero, 0, 255).astype(np.uint8)


def int8_weights(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """weight [K, N] → int8 codes [K, N] and a scale per column [N]: weight ≈ codes * scale.

    Measured on the fable (step graph, 7 bits): a scale per column keeps every greedy next word
    and 32-word continuation of PyTorch (201 of 201); one scale per tensor kept 199 next words and
    123 continuations, and was 6% faster a word on the Xeon of docs/design.md. Fidelity wins."""
    scales = np.abs(weight).max(axis=0) / INT8_WEIGHT_LIMIT
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = np.clip(np.rint(weight / scales), -INT8_WEIGHT_LIMIT, INT8_WEIGHT_LIMIT).astype(np.int8)
    return codes, scales


def int4_blocks(weight: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """weight [K, N] → MatMulNBits' packed codes [N, blocks, block_size / 2] and scales [N * blocks].

    Column n's k-th value is in block k // block_size; two codes a byte, the even k in the low
    nibble; a code is round(w / scale) + 8 with scale = the block's largest |w| / 7.
    """
    k, n = weight.shape
    blocks = -(-k // block_size)
    padded = np.zeros((blocks * block_size, n), np.float32)
    padded[:k] = weight
    grouped = padded.T.reshape(n, blocks, block_size)
    scales = np.abs(grouped).max(axis=2) / 7
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = (np.clip(np.rint(grouped / scales[..., None]), -8, 7) + 8).astype(np.uint8)
    return codes[..., 0::2] | (codes[..., 1::2] << 4), scales.reshape(-1)


class ExportGuardError(FableError):
    """An exported file failed a check; the previous files are left in place (exit 1). `table`:
    the parity table of the refused files, when the refusal came from their figures."""

    def __init__(self, message: str, table: str | None = None):
        super().__init__(message)
        self.table = table


def quantize_window_int8(fp32_path: Path, int8_path: Path) -> None:
    """The window graph's LSTM and MatMul weights to int8 (per tensor), activations at run time.

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
                f"guard: the quantized file holds float weight {init.name} {list(init.dims)} with {elements:,} elements, "
                f"at or above --max-float-elements {max_float_elements:,}"
            )
