"""What an export must prove before any file replaces another: each guard, and its refusal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from fable.errors import FableError

if TYPE_CHECKING:
    from .exporter import ExportOptions
    from .report import FileReport

FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)


class ExportGuardError(FableError):
    """An exported file failed a check; the previous files are left in place (exit 1). `table`:
    the parity table of the refused files, when the refusal came from their figures."""

    def __init__(self, message: str, table: str | None = None):
        super().__init__(message)
        self.table = table


def check_onnx(path: Path) -> None:
    """The file is valid ONNX by onnx.checker's full check."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # the checker raises several types
        raise ExportGuardError(f"guard: onnx.checker refuses {path.name}: {str(error).splitlines()[0]}") from None


def check_quantized(model: onnx.ModelProto, max_float_elements: int) -> None:
    """Refuse a 'quantized' graph that still computes in float where it matters."""
    float_lstms = [node.name or "unnamed" for node in model.graph.node if node.op_type == "LSTM"]
    if float_lstms:
        raise ExportGuardError(
            f"guard: a quantized file still holds {len(float_lstms)} float LSTM node(s) ({', '.join(float_lstms)}): "
            "the quantizer left them in fp32; nothing to relax, the export is wrong"
        )
    for init in model.graph.initializer:
        elements = int(np.prod(init.dims)) if init.dims else 1
        if init.data_type in FLOAT_TYPES and elements >= max_float_elements:
            raise ExportGuardError(
                f"guard: the quantized file holds float weight {init.name} {list(init.dims)} with {elements:,} elements, "
                f"at or above --max-float-elements {max_float_elements:,}"
            )


def clear_windows(logits: np.ndarray, margin: float) -> np.ndarray:
    """Which windows' top two logits [N, vocab] are more than `margin` apart: a quantized model
    that picks the other word there has lost something, not flipped a coin PyTorch nearly flipped."""
    top_two = np.partition(logits, -2, axis=1)[:, -2:]  # the second largest, then the largest
    return top_two[:, 1] - top_two[:, 0] > margin


def failed_guards(files: list[FileReport], options: ExportOptions) -> list[str]:
    """Each guard the measured figures fail (fp32 first in `files`), as a line naming the figure,
    its value and the option, in the option's own units."""
    fp32 = files[0]
    diff, absolute = fp32.max_abs_logit_diff, options.max_fp32_logit_diff
    checks = [
        (fp32.error_ratio > options.max_fp32_error_ratio,
         f"fp32 largest |logit - torch| is {diff:.3g}, {fp32.error_ratio:.3g} times torch's own float32 error, "
         f"above --max-fp32-error-ratio {options.max_fp32_error_ratio:g}"),
        (absolute is not None and diff > absolute,
         f"fp32 largest |logit - torch| is {diff:.3g}, above --max-fp32-logit-diff {absolute or 0:g}"),
    ]  # fmt: skip
    if fp32.text is not None:
        checks.append((fp32.text["error_ratio"] > options.max_fp32_error_ratio,
                       f"fp32 reading {fp32.text['words']:,} words whole: largest |logit - torch| is "
                       f"{fp32.text['max_abs_logit_diff']:.3g}, {fp32.text['error_ratio']:.3g} times torch's own float32 "
                       f"error, above --max-fp32-error-ratio {options.max_fp32_error_ratio:g}"))  # fmt: skip
    for f in files[1:]:
        if f.text is not None:
            checks.append((f.text["clear_agreement"] < options.min_int8_agreement,
                           f"{f.file} reading {f.text['words']:,} words whole: greedy next-word agreement with torch "
                           f"away from near-ties is {f.text['clear_agreement']:.4f}, below --min-int8-agreement "
                           f"{options.min_int8_agreement:g}"))  # fmt: skip
        checks += [
            (f.clear_agreement < options.min_int8_agreement,
             f"{f.file} greedy next-word agreement with torch away from near-ties (top two logits more than "
             f"{options.near_tie_margin:g} apart, {f.clear_windows:,} windows) is {f.clear_agreement:.4f}, "
             f"below --min-int8-agreement {options.min_int8_agreement:g}"),
            (f.accuracy_drop_points > options.max_int8_accuracy_drop,
             f"{f.file} accuracy drop against fp32 is {f.accuracy_drop_points:.2f} points, "
             f"above --max-int8-accuracy-drop {options.max_int8_accuracy_drop:g}"),
            (f.heldout_perplexity_rise is not None and f.heldout_perplexity_rise > options.max_heldout_perplexity_rise,
             f"{f.file} perplexity on the held-out part is {100 * (f.heldout_perplexity_rise or 0):.2f}% above fp32's, "
             f"above --max-heldout-perplexity-rise {options.max_heldout_perplexity_rise:g}"),
        ]  # fmt: skip
    return [line for tripped, line in checks if tripped]
