"""The parity table fable-export prints: a row for torch and a row for each file."""

from __future__ import annotations

from .report import FileReport, TorchReference, Windows


def format_table(reports: list[FileReport], reference: TorchReference) -> str:
    windows = len(reference.labels)
    rows = [("file", "size", "accuracy", "max |Δlogit|", "÷ torch's float32 error", "next word = torch", "away from ties",
             "32 words = torch", "drop", "held out: top-1 / top-3 / perplexity")]  # fmt: skip
    rows.append(("torch (checkpoint)", "", f"{reference.correct}/{windows}", "", f"{reference.float_error:.2e}", "",
                 "", "", "", _held(reference.heldout_figures)))  # fmt: skip
    for r in reports:
        drop = "" if r.accuracy_drop_points is None else f"{r.accuracy_drop_points:+.2f} pt"
        rise = "" if r.heldout_perplexity_rise is None else f" ({100 * r.heldout_perplexity_rise:+.2f}%)"
        ratio = f"{r.error_ratio:.3g}" if r.quantization == "fp32" else ""  # the guard's figure: fp32 only
        rows.append((r.file, f"{r.bytes / 1e6:.2f} MB", f"{r.correct}/{r.windows} ({100 * r.accuracy:.1f}%)",
                     f"{r.max_abs_logit_diff:.2e}", ratio, f"{100 * r.next_word_agreement:.1f}%",
                     f"{100 * r.clear_agreement:.1f}% of {r.clear_windows:,}", f"{100 * r.continuation_agreement:.1f}%",
                     drop, _held(r.heldout) + rise))  # fmt: skip
    if reference.heldout is None:
        rows = [row[:-1] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    held = "" if reference.heldout is None else f"; held out: {_count(reference.heldout)} never trained on"
    whole = [f"  {r.file} reading {r.text['words']:,} words whole, its state carried: max |Δlogit| "
             f"{r.text['max_abs_logit_diff']:.2e}"
             + (f" ({r.text['error_ratio']:.3g} × torch's float32 error)" if r.quantization == "fp32" else "")
             + f", next word = torch away from ties {100 * r.text['clear_agreement']:.1f}% of {r.text['clear_words']:,}"
             for r in reports if r.text is not None]  # fmt: skip
    return f"parity over {_count(reference.windows)}{held}:\n" + "\n".join(lines + whole)


def _count(windows: Windows) -> str:
    if windows.sampled:
        return f"an even sample of {len(windows.labels):,} of {windows.total:,} windows"
    return f"{windows.total:,} windows"


def _held(figures: dict | None) -> str:
    if figures is None:
        return ""
    return f"{100 * figures['top1']:.1f}% / {100 * figures['top3']:.1f}% / {figures['perplexity']:.2f}"
