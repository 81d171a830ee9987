"""fable-train: fit the LSTM word model on the fable or any UTF-8 text."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from fable.atomic import output_folder
from fable.cli import choices, new_app, run_app
from fable.contract import MAX_HIDDEN, MAX_LAYERS, MAX_WINDOW
from fable.errors import UsageError
from fable.model import MAX_THREADS
from fable.sampling import MAX_SEED
from fable.tokenizer import UNKNOWN

from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from .config import (
    DEVICES,
    MAX_EVAL_WINDOWS,
    MAX_HOLDOUT,
    MAX_STEPS,
    MAX_VOCABULARY,
    PREDICT_FROM_TOKENS,
    PRESET_ALIASES,
    PRESETS,
    RESUMABLE,
    TrainConfig,
    choose_preset,
)
from .corpus import Corpus, load_corpus, read_corpus, save_cache
from .distributed import World, join, leave
from .metrics import plot_curves
from .progress import Progress
from .split import split
from .train import TrainResult, resolve_device, train

app = new_app()
_predict = PRESETS["predict"]
Preset = choices("Preset", [*PRESETS, *PRESET_ALIASES])
Device = choices("Device", DEVICES)


def _by_preset(value: Callable[[TrainConfig], object]) -> str:
    """A flag's default under each preset, as --help shows it: no preset picks one by the corpus."""
    shown = {name: str(value(preset)) for name, preset in PRESETS.items()}
    if len(set(shown.values())) == 1:
        return next(iter(shown.values()))
    return ", ".join(f"{name} {text}" for name, text in shown.items())


def _evaluations(preset: TrainConfig) -> str:
    """A preset's steps between evaluations, and each corpus size from which it changes."""
    shown, last = [str(preset.eval_every)], preset.eval_every
    for size in preset.sizes:  # where a size changes it
        every = size.eval_every or preset.eval_every
        if every != last:
            shown.append(f"{every} from {size.windows:,} windows")
            last = every
    return ", ".join(shown)


def _sized(field: str) -> Callable[[TrainConfig], object]:
    """A value that predict sizes by the corpus (`Size`) and the others fix."""

    def value(preset: TrainConfig) -> object:
        if preset.sizes:
            values = dict.fromkeys(f"{getattr(size, field):,}" for size in preset.sizes)
            return " or ".join(values) + " by the corpus's size"
        return getattr(preset.model, field) if field == "hidden" else f"{preset.steps:,}" if preset.steps else (
            f"{preset.epochs:g} passes over the windows, at least {preset.min_steps:,}")  # fmt: skip

    return value


@app.command(help="Train the next-word LSTM; checkpoints, metrics.jsonl and curves.png go to --out.")
def main(
    corpus: Annotated[Path | None, typer.Option(help="UTF-8 text file to learn from", show_default="the fable")] = None,
    preset: Annotated[Preset | None, typer.Option(help="the recipe: predict for text the model has not seen, stream for a model that reads the whole text so far (with a cache of it), memorize to learn a text by heart, tutorial (default: memorize's old name)", show_default=f"predict for a corpus of {PREDICT_FROM_TOKENS:,} tokens or more, else memorize; the checkpoint's with --resume")] = None,
    holdout: Annotated[float | None, typer.Option(min=0.0, max=MAX_HOLDOUT, help="share of the corpus kept out of training (the end of each tenth of the text): half validation, measured at every evaluation, half test, read once at the end", show_default=_by_preset(lambda p: f"{p.holdout:g}"))] = None,
    device: Annotated[Device, typer.Option(help="auto takes CUDA when torch sees it")] = Device.auto,
    steps: Annotated[int | None, typer.Option(min=1, max=MAX_STEPS, help="the most training steps; predict and memorize may stop sooner, when validation perplexity or accuracy stops improving", show_default=_by_preset(_sized("steps")))] = None,
    seed: Annotated[int | None, typer.Option(min=0, max=MAX_SEED, help="random seed", show_default=_by_preset(lambda p: p.seed))] = None,
    layers: Annotated[int | None, typer.Option(min=1, max=MAX_LAYERS, help="stacked LSTM layers", show_default=_by_preset(lambda p: p.model.layers))] = None,
    hidden: Annotated[int | None, typer.Option(min=1, max=MAX_HIDDEN, help="units per LSTM layer", show_default=_by_preset(_sized("hidden")))] = None,
    window: Annotated[int | None, typer.Option(min=1, max=MAX_WINDOW, help="words read to predict the next", show_default=_by_preset(lambda p: p.model.window))] = None,
    eval_every: Annotated[int | None, typer.Option(min=1, max=MAX_STEPS, help="steps between evaluations", show_default=_by_preset(_evaluations))] = None,
    checkpoint_every: Annotated[int | None, typer.Option(min=1, max=MAX_STEPS, help="steps between checkpoints", show_default=_by_preset(lambda p: p.checkpoint_every))] = None,
    eval_windows: Annotated[int | None, typer.Option(min=1, max=MAX_EVAL_WINDOWS, help=f"training windows each evaluation reads, an even sample (the last reads all, up to {_predict.final_windows:,})", show_default=_by_preset(lambda p: p.eval_windows))] = None,
    min_count: Annotated[int | None, typer.Option(min=1, max=MAX_STEPS, help=f"read words seen fewer times than this as {UNKNOWN} (1 keeps every word)", show_default=_by_preset(lambda p: p.min_count))] = None,
    max_vocab: Annotated[int | None, typer.Option(min=2, max=MAX_VOCABULARY, help=f"keep at most this many words, {UNKNOWN} included; the rarer ones are read as {UNKNOWN}", show_default="no limit")] = None,
    refit: Annotated[bool | None, typer.Option("--refit/--no-refit", help="once validation has chosen the step and the cache, train again on training + validation for that many steps (stream)", show_default=_by_preset(lambda p: "on" if p.refit else "off"))] = None,
    threads: Annotated[int | None, typer.Option(min=1, max=MAX_THREADS, help="torch's CPU threads", show_default="torch's choice")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder", show_default="runs/PRESET")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the checkpoint in --out")] = False,
    progress: Annotated[bool, typer.Option(help="draw a progress bar", show_default="on a terminal")] = sys.stderr.isatty(),
) -> None:  # fmt: skip
    preset_name = PRESET_ALIASES.get(preset.value, preset.value) if preset is not None else None
    if resume and out is None and preset_name is None:
        raise UsageError("--resume continues the run in --out; give --out (or --preset for runs/PRESET)")
    flags = {"steps": steps, "seed": seed, "eval_every": eval_every, "checkpoint_every": checkpoint_every,
             "eval_windows": eval_windows, "min_count": min_count, "max_vocab": max_vocab, "holdout": holdout, "refit": refit}  # fmt: skip
    model_flags = {"layers": layers, "hidden": hidden, "window": window}
    world, resolved_device = join(resolve_device(device.value))  # under torchrun, this process's share
    finished = False
    try:
        _train(corpus, preset_name, resume, out, flags, model_flags, resolved_device, threads, progress, world)
        finished = True
    finally:
        leave(world, finished)


def _train(corpus: Path | None, preset_name: str | None, resume: bool, out: Path | None, flags: dict,
           model_flags: dict, device: str, threads: int | None, progress: bool, world: World) -> None:  # fmt: skip
    chosen = ""
    if resume:
        out = out or Path("runs") / str(preset_name)
        checkpoint = load_checkpoint(out / CHECKPOINT_NAME) if (out / CHECKPOINT_NAME).exists() else None
        if checkpoint is None:
            raise CheckpointError(f"--resume: there is no {CHECKPOINT_NAME} in {out}; start without --resume")
        if checkpoint.chosen is not None and flags["steps"] not in (None, checkpoint.config.steps):
            raise UsageError(f"--resume: this run is a refit of the {checkpoint.config.steps:,} steps validation chose; "
                             "drop --steps")  # fmt: skip
        config = _resume_config(checkpoint.config, checkpoint.step, preset_name, flags, model_flags)
        config.validate()
        read = read_corpus(corpus, config.tokenizer_version, cache=out)
    else:
        checkpoint = None
        read = read_corpus(corpus)
        if preset_name is None:
            preset_name, chosen = choose_preset(len(read.ids))
        out = out or Path("runs") / preset_name
        config = _fresh_config(PRESETS[preset_name], flags, model_flags)
        config.validate()
        _check_fresh_out(out)
    text = load_corpus(read, config.model.window, config.tokenizer_version, config.min_count, config.max_vocab,
                       config.holdout)  # fmt: skip
    if checkpoint is not None and text.sha256 != checkpoint.corpus_sha256:
        raise UsageError(
            f"the corpus {text.name} is not the one the checkpoint in {out} was trained on; pass that --corpus"
        )

    windows = text.window_count(config.model.window)
    config = config.for_corpus(windows)
    config.validate()  # what the corpus's size (`Size`) set too
    say = typer.echo if world.main else lambda _: None
    refitting = checkpoint is not None and checkpoint.chosen is not None
    say(_opening(text, config, windows, device, chosen, checkpoint.step if checkpoint else None, world, refitting))
    with output_folder(out):
        if world.main:
            save_cache(read, out)
        del read  # its ids, if mapped from the cache, are not needed once the corpus has its own
        result = train(text, config, device, out, checkpoint, Progress(config.steps, bar=progress), threads, world)
    if world.main:
        plot_curves(out / "metrics.jsonl", out / "curves.png")
    say(_summary(result, out))


def _opening(
    text: Corpus, config: TrainConfig, windows: int, device: str, chosen: str, resumed: int | None, world: World,
    refitting: bool = False,
) -> str:  # fmt: skip
    rare = (
        f", {text.rare_words:,} rare words ({text.rare_tokens:,} tokens) read as {UNKNOWN}" if text.rare_words else ""
    )
    held = ""
    if config.holdout and config.sampling == "streams":  # read whole, not in windows
        validation, test = (sum(map(len, text.segments(part))) for part in ("validation", "test"))
        held = f", {config.holdout:.0%} held out ({validation:,} words to validate on, {test:,} to test on)"
    elif config.holdout:
        validation, test = (len(text.starts(config.model.window, part)) for part in ("validation", "test"))
        held = f", {config.holdout:.0%} held out ({validation:,} windows to validate on, {test:,} to test on)"
    return (
        f"fable-train: {config.preset} preset"
        + (f" (chosen: {chosen})" if chosen else "")
        + f" on {text.name} ({len(text.ids):,} tokens, {len(text.vocabulary):,} words{rare}, {windows:,} training "
        f"windows{held}), {config.model.layers}x{config.model.hidden} LSTM, window {config.model.window}, "
        f"{_budget(config, refitting)} on {device}"
        + (f" x {world.size} processes" if world.size > 1 else "")
        + (f", resuming at step {resumed}" if resumed is not None else "")
    )


def _fresh_config(preset: TrainConfig, flags: dict, model_flags: dict) -> TrainConfig:
    given = {k: v for k, v in model_flags.items() if v is not None}
    if "hidden" in given and preset.tie:
        given["embedding_dim"] = given["hidden"]  # the output layer shares the embedding's weights
    asked = {"hidden": given.get("hidden"), "eval_every": flags.get("eval_every")}
    asked = {k: v for k, v in asked.items() if v is not None}
    if asked:  # what was asked for; the rest still follows the corpus's size
        preset = dataclasses.replace(preset, sizes=tuple(dataclasses.replace(size, **asked) for size in preset.sizes))
    model = dataclasses.replace(preset.model, **given)
    return dataclasses.replace(preset, model=model, **{k: v for k, v in flags.items() if v is not None})


def _resume_config(
    saved: TrainConfig, checkpoint_step: int, preset: str | None, flags: dict, model_flags: dict
) -> TrainConfig:
    """The checkpoint's recipe; --steps may extend it and how often to evaluate and save may change
    (RESUMABLE); other flags must agree with it."""
    clashes = [f"--{k.replace('_', '-')} {v} (checkpoint: {getattr(saved.model, k)})"
               for k, v in model_flags.items() if v is not None and v != getattr(saved.model, k)]  # fmt: skip
    clashes += [f"--{k.replace('_', '-')} {v} (checkpoint: {getattr(saved, k)})"
                for k, v in flags.items() if k not in RESUMABLE and v is not None and v != getattr(saved, k)]  # fmt: skip
    if preset is not None and preset != saved.preset:
        clashes.append(f"--preset {preset} (checkpoint: {saved.preset})")
    if clashes:
        raise UsageError(f"--resume continues the checkpoint's run, but {'; '.join(clashes)}; drop those flags")
    steps = flags["steps"] if flags["steps"] is not None else saved.steps
    if steps < checkpoint_step:
        raise UsageError(f"--steps {steps} is fewer than the {checkpoint_step} the checkpoint has done; ask for more")
    changes = {k: v for k, v in flags.items() if k in RESUMABLE and v is not None}
    return dataclasses.replace(saved, **changes)


def _check_fresh_out(out: Path) -> None:
    if (out / CHECKPOINT_NAME).exists():
        raise UsageError(f"{out} already holds a training run; continue it with --resume or choose another --out")


def _budget(config: TrainConfig, refitting: bool = False) -> str:
    if refitting:
        return f"the refit: the {config.steps:,} steps validation chose, on training + validation"
    if config.stop == "heldout":
        again = ", then again on training + validation for the steps it chose" if config.refit else ""
        return f"until validation perplexity stops improving, at most {config.steps:,} steps{again}"
    if config.schedule == "plateau":
        return f"until accuracy stops improving, at most {config.steps:,} steps"
    return f"{config.steps:,} steps"


def _summary(result: TrainResult, out: Path) -> str:
    ev, ck = result.evaluation, result.checkpoint
    why = f"; {result.schedule.reason}, and the rate decayed to zero from there" if result.schedule.reason else ""
    chosen = result.chosen
    done = f"step {ck.step} of at most {ck.config.steps}"
    if chosen is not None:
        done = f"the refit's {ck.step:,} steps (validation chose them of at most {chosen.budget:,})"
    return "\n".join([
        f"done: {done} on {ck.device} in {result.wall_seconds:.1f} s (run total {ck.elapsed:.1f} s){why}",
        _fit_line(result),
        f"  loss {ev.loss:.4f}, perplexity {ev.perplexity:.3f}; evaluating took {result.eval_seconds:.1f} s "
        f"({100 * result.eval_seconds / max(result.wall_seconds, 1e-9):.0f}% of this run)",
        *_held_out_lines(result),
        *([f"  {'the run that chose: ' if chosen else ''}{result.stopped}"] if result.stopped else []),
        *([f"  then trained again from the start on training + validation for those {chosen.step:,} steps "
           f"(the run that chose took {chosen.seconds:.1f} s): this checkpoint's weights, which the test part measures"]
          if chosen is not None else []),
        f"  checkpoint {out / CHECKPOINT_NAME}",
        f"  metrics    {out / 'metrics.jsonl'}",
        f"  curves     {out / 'curves.png'}",
        f"  export it: fable-export {out / CHECKPOINT_NAME} --out {out / 'exported'}",
    ])  # fmt: skip


def _fit_line(result: TrainResult) -> str:
    ev, config = result.evaluation, result.checkpoint.config
    if config.sampling == "streams":  # read whole, as held-out text: no window bounds what it can get right
        learnt = "training + validation" if result.chosen is not None else "the training part"
        return f"  next-word accuracy on {learnt}, read whole: {ev.correct}/{ev.windows} = {100 * ev.accuracy:.1f}% of words"
    return (f"  next-word accuracy: {ev.correct}/{ev.windows} = {100 * ev.accuracy:.1f}% of windows, "
            # the fit may read a sample of the windows (a large corpus): compare shares, not counts
            f"ceiling {100 * result.ceiling.accuracy:.1f}% ({100 * ev.accuracy / result.ceiling.accuracy:.1f}% of it; "
            f"no model reading {config.model.window} words gets more than {result.ceiling.correct:,} of "
            f"{result.ceiling.windows:,} right)")  # fmt: skip


def _held_out_lines(result: TrainResult) -> list[str]:
    """The weights on each held-out part: validation, which chose the step when the run stopped on
    it (a refit's: the weights of the run that chose, before the refit learnt that part too), and
    test, never trained on, read once for the figures a user can trust."""
    ck = result.checkpoint
    parts = split(len(ck.ids), ck.config.holdout)
    chose = "chose the step" if ck.config.stop == "heldout" else "measured along the way"
    if result.chosen is not None:
        chose = "chose the step and the cache; the chosen run's weights, before the refit learnt this part"
    cache = result.cache
    with_cache = "" if cache is None else " with the cache"
    return [
        *([f"  validation, {parts.share('validation'):.0%} of the text ({chose}): {result.validation.line()}"]
          if result.validation is not None else []),
        *([f"  cache of the text so far, chosen on validation: {cache.describe()}"] if cache is not None else []),
        *([f"  test, {parts.share('test'):.0%} of the text (read once){with_cache}: {result.heldout.line()}"]
          if result.heldout is not None else []),
        *([f"  test without the cache: {result.heldout_alone.line()}"] if result.heldout_alone is not None else []),
    ]  # fmt: skip


def entry() -> None:
    run_app(app, "fable-train")


if __name__ == "__main__":
    entry()
