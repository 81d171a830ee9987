"""fable-bench's rows on paper: Markdown, CSV, JSON and JSON lines, a comparison of saved runs, a plot.

Every row says what it ran on: in CSV and JSON lines each row carries the machine's description;
in Markdown it heads the table; JSON holds it once beside the rows and their every sample.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .benchmark import Bandwidth, Row
from .errors import UsageError

FORMATS = ("md", "csv", "json", "jsonl")
JSON_FORMAT = 1  # of the files --out writes and `compare` reads


def payload(machine: dict[str, Any], rows: Sequence[Row], bandwidth: Bandwidth | None, settings: dict) -> dict:
    """What `--out` writes and `-o json` prints: everything, every sample included."""
    return {
        "format": JSON_FORMAT,
        "machine": machine,
        "settings": settings,
        "bandwidth_gb_per_s": bandwidth.gb_per_s if bandwidth else None,
        "rows": [row.as_dict() for row in rows],
    }


def render(form: str, machine: dict[str, Any], rows: Sequence[Row], bandwidth: Bandwidth | None, settings: dict) -> str:
    if form == "json":
        return json.dumps(payload(machine, rows, bandwidth, settings), indent=2)
    flat = [flatten(machine, row) for row in rows]
    if form == "jsonl":
        return "\n".join(json.dumps(record | {"samples": row.samples}) for record, row in zip(flat, rows))
    if form == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(flat[0]) if flat else [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return out.getvalue().rstrip("\n")
    return markdown(machine, rows, bandwidth)


def flatten(machine: dict[str, Any], row: Row) -> dict[str, Any]:
    """One row with what it ran on, as flat fields (for CSV and JSON lines)."""
    record = {f"machine.{key}": _plain(value) for key, value in machine.items()}
    for key, value in row.as_dict(samples=False).items():
        if isinstance(value, dict):
            record |= {f"{key}.{inner}": _plain(v) for inner, v in value.items()}
        elif key == "paced":
            record |= {f"paced.{name}": None for name in ("call", "pace_ms", "p50_us", "p90_us", "idle_cpu")}
        else:
            record[key] = value
    return record


def _plain(value: Any) -> Any:
    """A field as one CSV cell: lists and tables as JSON."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def markdown(machine: dict[str, Any], rows: Sequence[Row], bandwidth: Bandwidth | None) -> str:
    pi = machine.get("raspberry_pi")
    said = [
        f"fable {machine['fable']}" + (f" ({machine['commit']})" if machine.get("commit") else "")
        + f", onnxruntime {machine.get('onnxruntime') or 'none'}, numpy {machine['numpy']}, Python {machine['python']}",
        f"{machine['cpu']}, {machine['cores']} cores, {machine['arch']} ({machine['userland_bits']}-bit userland), "
        f"flags: {' '.join(machine['cpu_flags']) or 'none read'}",
        f"governor {machine.get('governor') or 'unknown'}, clock {machine.get('clock_mhz') or '?'} MHz, {machine['system']}",
    ]  # fmt: skip
    if pi:
        said.append(f"{pi['model']}, throttled {pi.get('throttled') or 'unknown'}")
    if bandwidth:
        said.append(
            "copy bandwidth: " + ", ".join(f"{size} MB {rate:.1f} GB/s" for size, rate in bandwidth.gb_per_s.items())
        )
    if rows:
        said.append(f"load average {rows[0].load_before} before, {rows[-1].load_after} after; "
                    f"{rows[0].repetitions} repetitions of {rows[0].words:,} steps")  # fmt: skip
    paced = any(row.paced for row in rows)
    header = ["model", "sha256", "variant", "backend", "threads", "spin", "batch", "µs/step p50", "mean ± sd",
              "p99", "words/s", "floor µs", "of floor", "load ms", "first word ms", "RSS MB"]  # fmt: skip
    if paced:
        header += ["paced call", "p50 µs", "p90 µs", "idle CPU s/s"]
    labels = model_labels([row.model for row in rows])
    lines = [f"- {line}" for line in said] + ["", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for label, row in zip(labels, rows):
        cells = [label, row.file.sha256, row.file.variant, row.backend, str(row.threads), "on" if row.spin else "off",
                 str(row.batch), f"{row.step_us:.1f}", f"{row.step_us_mean:.1f} ± {row.step_us_sd:.1f}",
                 f"{row.step_p99_us:.1f}", f"{row.words_per_second:,.0f}", _maybe(row.floor_us, "{:.1f}"),
                 _maybe(row.of_floor, "{:.0%}"), f"{row.load_ms:.1f}", f"{row.first_word_ms:.2f}",
                 _maybe(row.peak_rss_mb, "{:.0f}")]  # fmt: skip
        if paced:
            p = row.paced
            cells += (
                [f"{p.call} every {p.pace_ms:g} ms", f"{p.p50_us:.1f}", f"{p.p90_us:.1f}", f"{p.idle_cpu:.3f}"]
                if p
                else [""] * 4
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _maybe(value: float | None, shape: str) -> str:
    return "—" if value is None else shape.format(value)


def model_labels(paths: Sequence[str]) -> list[str]:
    """File names, with as many parent folders as it takes to tell apart files of the same name."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = 1
    while parts and depth < max(len(p) for p in parts) and len({p[-depth:] for p in parts}) < len(set(parts)):
        depth += 1
    return [str(Path(*p[-depth:])) for p in parts]


# --- fable-bench compare ---------------------------------------------------------------------------

KEY = ("file.name", "file.variant", "backend", "threads", "spin", "batch")  # what a row measured
SHOWN = ("cpu", "cores", "cpu_flags", "clock_mhz", "governor", "arch", "userland_bits", "raspberry_pi", "fable",
         "commit", "onnxruntime", "numpy", "python", "system")  # fmt: skip


def read_run(path: Path) -> dict:
    """A file that --out (or -o json) wrote, by this release or by 0.1; UsageError naming it if it
    is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if "format" not in data and isinstance(data.get("results"), list):
            data = _from_first_release(data)
        if data.get("format") != JSON_FORMAT or not isinstance(data.get("rows"), list):
            raise ValueError(f"not a fable-bench run of format {JSON_FORMAT}")
        return data
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as error:
        raise UsageError(f"cannot read {path} as a fable-bench run ({error}); give files that --out wrote") from None


def _from_first_release(data: dict) -> dict:
    """A run of fable-bench 0.1 ("results", no format) as rows of today: it ran onnxruntime alone,
    without spinning, on model files of format 1 (a step graph of one sequence), and its median µs
    a word is today's µs a step."""
    rows = [
        {"file": {"name": Path(r["model"]).name, "variant": f"{r['quantization']} {r['graph']} (one sequence)"},
         "backend": "onnxruntime", "threads": r["threads"], "spin": False, "batch": 1, "step_us": r["word_p50_us"]}
        for r in data["results"]
    ]  # fmt: skip
    return {"format": JSON_FORMAT, "machine": data["machine"], "settings": data.get("settings"), "rows": rows}


def compare(paths: Sequence[Path]) -> str:
    """One table of every row the runs share, each run's µs a step and its speed against the first
    run's, after the machine fields that differ between the runs (the rest are the same)."""
    if len(paths) < 2:
        raise UsageError("compare needs two or more files that fable-bench --out wrote")
    runs = [read_run(path) for path in paths]
    names = [path.stem for path in paths]
    differing = [k for k in SHOWN if len({json.dumps(run["machine"].get(k)) for run in runs}) > 1]
    lines = ["| machine | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(runs)]
    lines += [f"| {k} | " + " | ".join(_cell(run["machine"].get(k)) for run in runs) + " |" for k in differing]
    if not differing:
        lines = ["(the same machine and software in every run)"]
    keyed = [{_key(row): row for row in run["rows"]} for run in runs]
    shared = [key for key in keyed[0] if all(key in rows for rows in keyed[1:])]
    header = ["model", "variant", "backend", "threads", "spin", "batch", f"{names[0]} µs/step"]
    header += [f"{name} µs/step, vs {names[0]}" for name in names[1:]]
    table = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for key in shared:
        first = keyed[0][key]["step_us"]
        cells = [str(k) if not isinstance(k, bool) else ("on" if k else "off") for k in key]
        cells.append(f"{first:.1f}")
        cells += [f"{rows[key]['step_us']:.1f}, {first / rows[key]['step_us']:.2f}x" for rows in keyed[1:]]
        table.append("| " + " | ".join(cells) + " |")
    if not shared:
        table.append("| (no row measured the same thing in every run) |")
    return "\n".join(lines + [""] + table)


def _key(row: dict) -> tuple:
    return (row["file"]["name"], row["file"]["variant"], row["backend"], row["threads"], row["spin"], row["batch"])


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value)) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{v}" for v in value.values() if v is not None)
    return "—" if value is None else str(value)


# --- fable-bench --plot ----------------------------------------------------------------------------


def check_plotting() -> None:
    """UsageError before a sweep of minutes when the plot could not be drawn at its end."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot draws with matplotlib, which is not installed here: pip install matplotlib") from None


def plot(rows: Sequence[Row], path: Path, machine: dict[str, Any]) -> None:
    """µs a word against threads: a line for each file, backend, spinning and batch size."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from .atomic import atomic_path

    figure, axes = plt.subplots(figsize=(7, 4.5))
    lines: dict[tuple, list[Row]] = {}
    for label, row in zip(model_labels([r.model for r in rows]), rows):
        lines.setdefault((label, row.backend, row.spin, row.batch), []).append(row)
    for (label, backend, spin, batch), members in lines.items():
        members.sort(key=lambda r: r.threads)
        name = f"{label} {backend}, spin {'on' if spin else 'off'}" + (f", batch {batch}" if batch > 1 else "")
        axes.errorbar([r.threads for r in members], [r.step_us for r in members], yerr=[r.step_us_sd for r in members],
                      marker="o", capsize=3, label=name)  # fmt: skip
    axes.set(xlabel="threads", ylabel="µs a step (median)", title=f"{machine['cpu']}, {machine['cores']} cores")
    axes.set_xticks(sorted({r.threads for r in rows}))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
