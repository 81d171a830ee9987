"""The parity report: each exported file decoded by the runtime, against PyTorch, on every window.

The runtime decodes the windows in batches, as `generate_batch` does: a row's numbers never depend
on the rows beside it (docs/design.md, "Batches"), so the figures are those of one window at a
time (tests/test_export.py holds them to it), and each distinct window met along the greedy
continuations is decoded once (`greedy_decode`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import fable
from fable.evaluation import evaluation_of
from fable.tuning import file_sha256

from ..evaluate import greedy_continuations, greedy_decode, held_out, logits_of
from ..model import WordLSTM


@dataclass(frozen=True)
class HeldOutWindows:
    contexts: np.ndarray  # [M, window]
    labels: np.ndarray  # [M], never `banned`
    banned: int | None  # the model's <unk>: never a suggestion


@dataclass(frozen=True)
class TorchReference:
    contexts: np.ndarray  # [N, window] the windows measured
    labels: np.ndarray  # [N] the corpus's next words
    logits: np.ndarray  # [N, vocab]
    continuations: np.ndarray  # [N, words] greedy, the plain decode
    heldout: HeldOutWindows | None = None  # the corpus's held-out part, when it has one
    heldout_figures: dict | None = None  # torch's figures there (fable.evaluation.Evaluation.as_dict)

    @property
    def correct(self) -> int:
        return int((self.logits.argmax(axis=1) == self.labels).sum())


@dataclass(frozen=True)
class FileReport:
    file: str
    quantization: str
    graph: str
    bytes: int
    sha256: str  # what the runtime checks before it trusts these figures for a file (fable-bench --tune)
    correct: int
    windows: int
    accuracy: float
    max_abs_logit_diff: float  # against PyTorch, over all windows measured
    next_word_agreement: float  # share of windows whose greedy next word is PyTorch's
    clear_agreement: float  # the same, over the windows where PyTorch's top two logits are not near a tie
    clear_windows: int  # how many windows that is
    continuation_agreement: float  # share of windows whose greedy continuation is PyTorch's, word for word
    accuracy_drop_points: float | None = None  # int8 only: fp32 accuracy minus this one's, in points
    heldout: dict | None = None  # figures on the held-out part (fable.evaluation.Evaluation.as_dict)
    heldout_perplexity_rise: float | None = None  # quantized files: held-out perplexity / fp32's - 1

    def as_dict(self) -> dict:
        return asdict(self)


def select_windows(contexts: np.ndarray, labels: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, int]:
    """All the windows trained on, or `limit` evenly spaced ones: contexts, labels, and the total."""
    total = len(labels)
    if total > limit:
        picked = np.linspace(0, total - 1, limit).round().astype(np.int64)
        contexts, labels = contexts[picked], labels[picked]
    return contexts, labels, total


def torch_reference(
    model: WordLSTM, contexts: np.ndarray, labels: np.ndarray, words: int, heldout: HeldOutWindows | None = None
) -> TorchReference:
    figures = None if heldout is None else held_out(model, heldout.contexts, heldout.labels, heldout.banned).as_dict()
    return TorchReference(
        contexts=contexts,
        labels=labels,
        logits=logits_of(model, contexts).cpu().numpy(),
        continuations=greedy_continuations(model, contexts, words),
        heldout=heldout,
        heldout_figures=figures,
    )


def measure_file(path: Path, reference: TorchReference, name: str, clear: np.ndarray) -> FileReport:
    """Decode every reference window as a prompt with the runtime, exactly as an app would; `name`
    is what the file will be called (it is measured under a temporary name); `clear` [N]: the
    windows away from near-ties (`clear_windows` of the reference, the same for every file)."""
    model = fable.Model(path)  # exactly as given: no tuned settings of this machine
    logits = model.window_logits(reference.contexts)
    words = reference.continuations.shape[1]
    next_words = lambda windows: model.window_logits(windows).argmax(axis=1)  # noqa: E731
    continuations = greedy_decode(next_words, reference.contexts, words, first=logits.argmax(axis=1))
    chosen = logits.argmax(axis=1)
    correct = int((chosen == reference.labels).sum())
    held = reference.heldout
    heldout = None
    if held is not None:
        heldout = evaluation_of(model.window_logits(held.contexts), held.labels, held.banned).as_dict()
    windows = len(reference.labels)
    agrees = chosen == reference.logits.argmax(axis=1)
    return FileReport(
        file=name,
        quantization=model.metadata.quantization,
        graph=model.metadata.graph,
        bytes=path.stat().st_size,
        sha256=file_sha256(path),
        correct=correct,
        windows=windows,
        accuracy=correct / windows,
        max_abs_logit_diff=float(np.abs(logits - reference.logits).max()),
        next_word_agreement=float(agrees.mean()),
        clear_agreement=float(agrees[clear].mean()) if clear.any() else 1.0,
        clear_windows=int(clear.sum()),
        continuation_agreement=float((continuations == reference.continuations).all(axis=1).mean()),
        heldout=heldout,
    )


def format_table(reports: list[FileReport], reference: TorchReference, total_windows: int) -> str:
    windows = len(reference.labels)
    sampled = "" if windows == total_windows else f" (an even sample of {windows:,} of {total_windows:,})"
    rows = [("file", "size", "accuracy", "max |Δlogit|", "next word = torch", "away from ties", "32 words = torch",
             "drop", "held out: top-1 / top-3 / perplexity")]  # fmt: skip
    rows.append(("torch (checkpoint)", "", f"{reference.correct}/{windows}", "", "", "", "", "",
                 _held(reference.heldout_figures)))  # fmt: skip
    for r in reports:
        drop = "" if r.accuracy_drop_points is None else f"{r.accuracy_drop_points:+.2f} pt"
        rise = "" if r.heldout_perplexity_rise is None else f" ({100 * r.heldout_perplexity_rise:+.2f}%)"
        rows.append((r.file, f"{r.bytes / 1e6:.2f} MB", f"{r.correct}/{r.windows} ({100 * r.accuracy:.1f}%)",
                     f"{r.max_abs_logit_diff:.2e}", f"{100 * r.next_word_agreement:.1f}%",
                     f"{100 * r.clear_agreement:.1f}% of {r.clear_windows:,}", f"{100 * r.continuation_agreement:.1f}%",
                     drop, _held(r.heldout) + rise))  # fmt: skip
    if reference.heldout is None:
        rows = [row[:-1] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    held = (
        "" if reference.heldout is None else f"; held out: {len(reference.heldout.labels):,} windows never trained on"
    )
    return f"parity over {windows:,} windows{sampled}{held}:\n" + "\n".join(lines)


def _held(figures: dict | None) -> str:
    if figures is None:
        return ""
    return f"{100 * figures['top1']:.1f}% / {100 * figures['top3']:.1f}% / {figures['perplexity']:.2f}"
