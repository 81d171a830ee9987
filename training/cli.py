"""fable-train: fit the LSTM word model on the fable or any UTF-8 text."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import typer

from runtime.atomic import prepare_folder
from runtime.cli import run_app
from runtime.errors import UsageError

from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from .config import PRESETS, TrainConfig
from .corpus import load_corpus
from .metrics import plot_curves
from .progress import Progress
from .train import TrainResult, resolve_device, train

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
_default = PRESETS["default"]


@app.command(help="Train the next-word LSTM; checkpoints, metrics.jsonl and curves.png go to --out.")
def main(
    corpus: Path = typer.Option(None, help="UTF-8 text file to learn from  [default: the fable]"),
    preset: str = typer.Option(None, help=f"recipe: {' or '.join(PRESETS)}  [default: default, or the checkpoint's]"),
    device: str = typer.Option("auto", help="auto (CUDA when torch sees it), cpu or cuda"),
    steps: int = typer.Option(None, help=f"training steps  [default: the preset's, {_default.steps} for default]"),
    seed: int = typer.Option(None, help=f"random seed  [default: {_default.seed}]"),
    layers: int = typer.Option(None, help=f"stacked LSTM layers  [default: {_default.model.layers}]"),
    hidden: int = typer.Option(None, help=f"units per LSTM layer  [default: {_default.model.hidden}]"),
    window: int = typer.Option(None, help=f"words read to predict the next  [default: {_default.model.window}]"),
    eval_every: int = typer.Option(None, help="steps between evaluations  [default: the preset's]"),
    checkpoint_every: int = typer.Option(None, help="steps between checkpoints  [default: the preset's]"),
    out: Path = typer.Option(None, help="output folder  [default: runs/PRESET]"),
    resume: bool = typer.Option(False, "--resume", help="continue from the checkpoint in --out"),
    progress: bool = typer.Option(sys.stderr.isatty(), help="draw a progress bar"),
) -> None:
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"--preset must be {' or '.join(PRESETS)}, not {preset!r}")
    out = out or Path("runs") / (preset or "default")
    flags = {"steps": steps, "seed": seed, "eval_every": eval_every, "checkpoint_every": checkpoint_every}
    model_flags = {"layers": layers, "hidden": hidden, "window": window}
    resolved_device = resolve_device(device)
    if resume:
        checkpoint = load_checkpoint(out / CHECKPOINT_NAME) if (out / CHECKPOINT_NAME).exists() else None
        if checkpoint is None:
            raise CheckpointError(f"--resume: there is no {CHECKPOINT_NAME} in {out}; start without --resume")
        config = _resume_config(checkpoint.config, checkpoint.step, preset, flags, model_flags)
    else:
        checkpoint = None
        config = _fresh_config(PRESETS[preset or "default"], flags, model_flags)
        _check_fresh_out(out)
    config.validate()
    text = load_corpus(corpus, config.model.window)
    if checkpoint is not None and text.sha256 != checkpoint.corpus_sha256:
        raise UsageError(
            f"the corpus {text.name} is not the one the checkpoint in {out} was trained on; pass that --corpus"
        )
    prepare_folder(out)

    windows = len(text.ids) - config.model.window
    typer.echo(
        f"fable-train: {config.preset} preset on {text.name} ({len(text.tokens)} tokens, {len(text.vocabulary)} words, "
        f"{windows} windows), {config.model.layers}x{config.model.hidden} LSTM, window {config.model.window}, "
        f"{config.steps} steps on {resolved_device}" + (f", resuming at step {checkpoint.step}" if checkpoint else "")
    )
    result = train(text, config, resolved_device, out, checkpoint, Progress(config.steps, bar=progress))
    plot_curves(out / "metrics.jsonl", out / "curves.png")
    typer.echo(_summary(result, out))


def _fresh_config(preset: TrainConfig, flags: dict, model_flags: dict) -> TrainConfig:
    model = dataclasses.replace(preset.model, **{k: v for k, v in model_flags.items() if v is not None})
    return dataclasses.replace(preset, model=model, **{k: v for k, v in flags.items() if v is not None})


def _resume_config(
    saved: TrainConfig, checkpoint_step: int, preset: str | None, flags: dict, model_flags: dict
) -> TrainConfig:
    """The checkpoint's recipe; --steps may extend it, other flags must agree with it."""
    clashes = [f"--{k.replace('_', '-')} {v} (checkpoint: {getattr(saved.model, k)})"
               for k, v in model_flags.items() if v is not None and v != getattr(saved.model, k)]  # fmt: skip
    clashes += [f"--{k.replace('_', '-')} {v} (checkpoint: {getattr(saved, k)})"
                for k, v in flags.items() if k != "steps" and v is not None and v != getattr(saved, k)]  # fmt: skip
    if preset is not None and preset != saved.preset:
        clashes.append(f"--preset {preset} (checkpoint: {saved.preset})")
    if clashes:
        raise UsageError(f"--resume continues the checkpoint's run, but {'; '.join(clashes)}; drop those flags")
    steps = flags["steps"] if flags["steps"] is not None else saved.steps
    if steps < checkpoint_step:
        raise UsageError(f"--steps {steps} is fewer than the {checkpoint_step} the checkpoint has done; ask for more")
    return dataclasses.replace(saved, steps=steps)


def _check_fresh_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; choose another --out")
    if (out / CHECKPOINT_NAME).exists():
        raise UsageError(f"{out} already holds a training run; continue it with --resume or choose another --out")


def _summary(result: TrainResult, out: Path) -> str:
    ev, ck = result.evaluation, result.checkpoint
    return "\n".join([
        f"done: step {ck.step} of {ck.config.steps} on {ck.device} in {result.wall_seconds:.1f} s "
        f"(run total {ck.elapsed:.1f} s)",
        f"  next-word accuracy over all windows: {ev.correct}/{ev.windows} = {100 * ev.accuracy:.1f}%",
        f"  loss {ev.loss:.4f}, perplexity {ev.perplexity:.3f}",
        f"  checkpoint {out / CHECKPOINT_NAME}",
        f"  metrics    {out / 'metrics.jsonl'}",
        f"  curves     {out / 'curves.png'}",
        f"  export it: fable-export {out / CHECKPOINT_NAME} --out {out / 'exported'}",
    ])  # fmt: skip


def entry() -> None:
    run_app(app, "fable-train")


if __name__ == "__main__":
    entry()
