"""metrics.jsonl (a line per evaluation) and the curves plotted from it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fable.atomic import atomic_path, write_text


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a metrics file; a line cut short by a kill is dropped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


class MetricsLog:
    """Appends one JSON line per evaluation. Resuming at step N first drops any line after N, which
    an interrupted run may have written past its last checkpoint; a refit's lines (marked "refit")
    count their own steps, after the lines of the run that chose, which it keeps."""

    def __init__(self, path: Path, keep_until: int, refit: bool = False):
        self.path = path
        if path.exists():
            kept = [row for row in read_metrics(path) if row.get("refit", False) != refit or row["step"] <= keep_until]
            write_text(path, "".join(json.dumps(row) + "\n" for row in kept))
        self._file = None  # opened at the first line: a run stopped before it leaves no file

    def write(self, **row: Any) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        self._file.write(json.dumps(row) + "\n")  # one write per line: a kill loses at most this line
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def plot_curves(metrics_path: Path, out: Path) -> None:
    """Loss and accuracy over steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [row for row in read_metrics(metrics_path) if not row.get("refit")]  # the run whose validation chose
    steps = [row["step"] for row in rows]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    bounded = bool(rows) and "ceiling" in rows[-1]  # a window model's fit, bounded by the ceiling
    fit = "all windows" if bounded else "training part, read whole"  # a stream model's
    loss_axes.plot(steps, [row["loss"] for row in rows], label=fit)
    loss_axes.plot(steps, [row["train_loss"] for row in rows], label="training steps", alpha=0.6)
    accuracy_axes.plot(steps, [100 * row["accuracy"] for row in rows], label=fit)
    accuracy_axes.plot(steps, [100 * row["train_accuracy"] for row in rows], label="training steps", alpha=0.6)
    # The validation part of the text never trained on (--holdout); rows of fable 0.4's runs
    # measured the whole held-out part, under "heldout_".
    held = [{"step": row["step"]} | {k.split("_", 1)[1]: v for k, v in row.items() if k.startswith(("validation_", "heldout_"))}
            for row in rows if "validation_perplexity" in row or "heldout_perplexity" in row]  # fmt: skip
    if held:
        at = [row["step"] for row in held]
        loss_axes.plot(at, [math.log(row["perplexity"]) for row in held], label="validation")
        accuracy_axes.plot(at, [100 * row["top1"] for row in held], label="validation, top-1")
        accuracy_axes.plot(at, [100 * row["top3"] for row in held], label="validation, top-3")
    loss_axes.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="loss")
    if bounded:  # the best any model with this window can do on this corpus
        ceiling = 100 * rows[-1]["ceiling"]
        accuracy_axes.axhline(ceiling, color="grey", linestyle="--", label=f"ceiling {ceiling:.1f}%")
    accuracy_axes.set(xlabel="step", ylabel="%", ylim=(0, 100), title="next-word accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    with atomic_path(out) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
