"""How format-2 files hold numbers in int8 and int4: the one definition the exporter packs with and
the numpy backend unpacks with (numpy only, so that the runtime can read what training writes).

- int8: weights symmetric per output column in 7 bits (x86 without VNNI adds u8 x s8 pairs in 16
  bits, which saturate with 8-bit weights); every product's input rounded to uint8 on one fixed
  scale. Each input is an LSTM output h, and |h| < 1, or the embedding divided by its largest
  value, so the scale needs no data and a row's codes never depend on the rest of the batch.
- int4: onnxruntime's MatMulNBits layout, symmetric blocks of `block_size` along K, accuracy level
  4 (each row's input rounded to int8 per block at run time: the fast kernels).
"""

from __future__ import annotations

import numpy as np

ACTIVATION_STEP = 1 / 127  # uint8 code 128 + round(x * 127): all of (-1, 1) in 255 codes
ACTIVATION_ZERO = 128
INT8_WEIGHT_LIMIT = 63  # 7 bits: see above
INT4_ACCURACY_LEVEL = 4  # int8 compute: levels 0 to 3 compute in float, 5x slower on the Xeon measured
INT4_BLOCK_SIZES = (32, 64, 128, 256)
DEFAULT_INT4_BLOCK = 128  # measured: docs/design.md, "int4"
INT4_OFFSET = 8  # a stored nibble is the signed code + 8


def activation_codes(x: np.ndarray, step: float = ACTIVATION_STEP, zero: int = ACTIVATION_ZERO) -> np.ndarray:
    """The uint8 codes QuantizeLinear makes of x on the fixed activation scale."""
    step32, zero32 = np.float32(step), np.float32(zero)
    return np.clip(np.rint(np.asarray(x, np.float32) / step32) + zero32, 0, 255).astype(np.uint8)


def rounded_activations(x: np.ndarray, step: float = ACTIVATION_STEP, zero: int = ACTIVATION_ZERO) -> np.ndarray:
    """x as the integer product sees it: its codes minus the zero point, as floats (exact)."""
    step32, zero32 = np.float32(step), np.float32(zero)
    return np.clip(np.rint(x / step32) + zero32, 0, 255) - zero32


def activation_values(codes: np.ndarray, step: float = ACTIVATION_STEP, zero: int = ACTIVATION_ZERO) -> np.ndarray:
    """What uint8 codes stand for: (codes - zero point) * step, float32."""
    return (codes.astype(np.float32) - np.float32(zero)) * np.float32(step)


def int8_weights(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """weight [K, N] → int8 codes [K, N] and a scale per column [N]: weight ≈ codes * scale.

    Measured on the fable (step graph, 7 bits): a scale per column keeps every greedy next word
    and 32-word continuation of PyTorch (201 of 201); one scale per tensor kept 199 next words and
    123 continuations, and was 6% faster a word on the Xeon of docs/performance.md. Fidelity wins."""
    scales = np.abs(weight).max(axis=0) / INT8_WEIGHT_LIMIT
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = np.clip(np.rint(weight / scales), -INT8_WEIGHT_LIMIT, INT8_WEIGHT_LIMIT).astype(np.int8)
    return codes, scales


def int4_blocks(weight: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """weight [K, N] → MatMulNBits' packed codes [N, blocks, block_size / 2] and scales [N * blocks].

    Column n's k-th value is in block k // block_size; two codes a byte, the even k in the low
    nibble; a nibble is round(w / scale) + 8 with scale = the block's largest |w| / 7.
    """
    k, n = weight.shape
    blocks = -(-k // block_size)
    padded = np.zeros((blocks * block_size, n), np.float32)
    padded[:k] = weight
    grouped = padded.T.reshape(n, blocks, block_size)
    scales = np.abs(grouped).max(axis=2) / 7
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = (np.clip(np.rint(grouped / scales[..., None]), -8, 7) + INT4_OFFSET).astype(np.uint8)
    return codes[..., 0::2] | (codes[..., 1::2] << 4), scales.reshape(-1)


def int4_weight(packed: np.ndarray, scales: np.ndarray, rows: int) -> np.ndarray:
    """`int4_blocks` undone: packed codes [N, blocks, block / 2] and scales [N * blocks] → weight [rows, N]."""
    columns, blocks, _ = packed.shape
    nibbles = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(columns, blocks, -1)
    values = (nibbles.astype(np.float32) - INT4_OFFSET) * scales.reshape(columns, blocks, 1).astype(np.float32)
    return np.ascontiguousarray(values.reshape(columns, -1)[:, :rows].T)
