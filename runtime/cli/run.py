"""fable-run: continue a prompt with a fable model, as the rnn-words tutorial did."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import __version__
from ..backend import default_backend
from ..contract import Provenance
from ..engine import DEFAULT_WORDS, MAX_WORDS
from ..errors import PromptError, UsageError
from ..model import MAX_THREADS, Model, load
from ..predict import DEFAULT_SUGGESTIONS, MAX_SUGGESTIONS, score_record, suggestion_record
from ..records import generation_record
from ..sampling import MAX_SEED, MAX_TEMPERATURE, MAX_TOP_K, MAX_TOP_P, MIN_SEED, MIN_TEMPERATURE, MIN_TOP_K, Sampling
from ..textfile import read_text_file
from . import BACKEND_DEFAULT, BACKEND_HELP, TUNED_DEFAULT, Backend, columns, new_app, run_app

app = new_app()
_defaults = Sampling()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fable-run {__version__}")
        raise typer.Exit()


@app.command(help="Continue PROMPT with the model's words; with no PROMPT, ask for prompts until end of input.")
def main(
    ctx: typer.Context,
    prompt: Annotated[str | None, typer.Argument(help="words to continue; the model reads the last `window` of them", show_default=False)] = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help="a .onnx file from fable-export", show_default="the shipped int8 model")] = None,
    words: Annotated[int, typer.Option("--words", "-n", min=1, max=MAX_WORDS, help="how many words to generate")] = DEFAULT_WORDS,
    temperature: Annotated[float, typer.Option(min=MIN_TEMPERATURE, max=MAX_TEMPERATURE, help="0 picks the most likely word; higher is more random")] = _defaults.temperature,
    top_k: Annotated[int | None, typer.Option(min=MIN_TOP_K, max=MAX_TOP_K, help="sample among the K most likely words", show_default="all")] = _defaults.top_k,
    top_p: Annotated[float | None, typer.Option(min=0.0, max=MAX_TOP_P, help="sample among the most likely words whose probability reaches P (more than 0)", show_default="1")] = _defaults.top_p,
    seed: Annotated[int | None, typer.Option(min=MIN_SEED, max=MAX_SEED, help="random seed: the same seed gives the same words", show_default="a new one each run")] = _defaults.seed,
    stream: Annotated[bool, typer.Option("--stream", help="print each word as it is made")] = False,
    tokens: Annotated[bool, typer.Option("--tokens", help="print the tokens with a space between every two, as the rnn-words tutorial did, not joined as text")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON: prompt, words, model, settings, timings (a line per prompt)")] = False,
    info: Annotated[bool, typer.Option("--info", help="print the model card and exit")] = False,
    suggest: Annotated[bool, typer.Option("--suggest", help="print completions of PROMPT's last word, or its likeliest next words when it ends with a space")] = False,
    suggestions: Annotated[int, typer.Option(min=1, max=MAX_SUGGESTIONS, help="how many words --suggest prints")] = DEFAULT_SUGGESTIONS,
    score: Annotated[bool, typer.Option("--score", help="print the log-probability of each word of PROMPT after the first window")] = False,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="with --score: how well the model predicts this UTF-8 text file (top-1, top-3, perplexity), e.g. text held out of training", show_default=False)] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="a model that reads the whole text: mix in its cache of the text so far, as its file says")] = True,
    threads: Annotated[int | None, typer.Option(min=1, max=MAX_THREADS, help="intra-op threads", show_default=TUNED_DEFAULT)] = None,
    spin: Annotated[bool | None, typer.Option("--spin/--no-spin", help="let onnxruntime's threads spin between words", show_default=TUNED_DEFAULT)] = None,
    backend: Annotated[Backend | None, typer.Option(help=BACKEND_HELP, show_default=BACKEND_DEFAULT)] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")] = False,
) -> None:  # fmt: skip
    sampling = Sampling(temperature, top_k, top_p, seed)
    use = chosen_use(ctx, prompt is not None, suggest, score, info, file is not None, as_json)
    runs_on = backend.value if backend else default_backend()
    if spin is not None and runs_on == "numpy":
        raise UsageError(
            "--spin and --no-spin set onnxruntime's threads; the numpy backend has no such setting, leave it out"
        )
    started = time.perf_counter()
    # One prompt's words, and a file's, come back to back; the loop and single calls are an app's
    # pace (tuning.PATTERNS).
    pattern = "stream" if use in ("generate", "score-file") else "paced"
    loaded = load(model, threads, runs_on, spin, pattern, cache)
    load_ms = 1000 * (time.perf_counter() - started)
    if use == "score-file":
        typer.echo(file_score(loaded, file, as_json))  # type: ignore[arg-type]
    elif use in ("suggest", "score"):
        typer.echo(predictions(loaded, prompt, suggestions if suggest else None, as_json))  # type: ignore[arg-type]
    elif use == "info":
        typer.echo(model_card(loaded))
    elif use == "loop":
        interactive(loaded, words, sampling, as_json, tokens, load_ms)
    elif as_json:
        typer.echo(generation_json(loaded, prompt, words, sampling, load_ms))
    else:
        for piece in continuation(loaded, prompt, words, sampling, tokens):
            print(piece, end="", flush=stream)
        print()


# What each use of fable-run reads, besides PROMPT and the flags that load the model. A flag given
# to a use that does not read it would do nothing, so it is refused, before anything loads.
_SAMPLING = ("words", "temperature", "top_k", "top_p", "seed")
READS = {
    "generate": (*_SAMPLING, "stream", "tokens", "as_json"),
    "loop": (*_SAMPLING, "tokens", "as_json"),
    "suggest": ("suggest", "suggestions", "as_json"),
    "score": ("score", "as_json"),
    "score-file": ("score", "file", "as_json"),
    "info": ("info",),
}
_ALWAYS = ("prompt", "model", "cache", "threads", "spin", "backend", "version")
_SAYS = {"generate": "a PROMPT to continue", "loop": "the loop that asks for prompts (no PROMPT)", "json": "--json",
         "suggest": "--suggest", "score": "--score", "score-file": "--score --file", "info": "--info"}  # fmt: skip


def chosen_use(
    ctx: typer.Context, prompt: bool, suggest: bool, score: bool, info: bool, file: bool, as_json: bool
) -> str:
    """Which of READS the flags ask for; UsageError for flags that contradict each other or that
    the use would ignore (--json prints each record whole: --stream and --tokens do nothing there)."""
    if file and not score:
        raise UsageError("--file goes with --score: fable-run --score --file TEXT")
    if file and (prompt or suggest):
        raise UsageError("--score --file reads the file's text; give no PROMPT and no --suggest")
    if (suggest or score) and not file and (suggest and score or not prompt):
        raise UsageError("--suggest and --score each need a PROMPT, and one at a time")
    use = "score-file" if file else "suggest" if suggest else "score" if score else "info" if info else ""
    use = use or ("generate" if prompt else "loop")
    given = [p for p in ctx.command.params if _given(ctx, p.name)]
    for reason, idle in (
        (use, [_named(p) for p in given if not _reads(use, p.name)]),
        ("json", [_named(p) for p in given if as_json and p.name in ("stream", "tokens")]),
    ):
        if idle:
            one = len(idle) == 1
            them = f"{', '.join(idle)} {'does' if one else 'do'}"
            raise UsageError(f"{them} nothing with {_SAYS[reason]}; leave {'it' if one else 'them'} out")
    return use


def _given(ctx: typer.Context, name: str | None) -> bool:
    source = ctx.get_parameter_source(name)  # type: ignore[arg-type]
    return source is not None and source.name == "COMMANDLINE"


def _reads(use: str, name: str | None) -> bool:
    return name in READS[use] or name in _ALWAYS and not (use == "info" and name == "prompt")


def _named(param: Any) -> str:
    """How the user typed it: the long flag, or PROMPT."""
    return max(param.opts, key=len) if param.opts[0].startswith("-") else "PROMPT"


def continuation(model: Model, prompt: str, words: int, sampling: Sampling, tokens: bool) -> Iterator[str]:
    """The prompt, then each word with the space before it: as text, or as the tutorial's tokens."""
    made = model.stream(prompt, words, sampling)  # a bad prompt raises here, before anything is printed
    if tokens:
        yield " ".join(model.tokens(prompt))
        yield from (" " + word for word in made)
        return
    joiner = model.text_pieces(prompt)
    yield " ".join(prompt.split())
    yield from (joiner.piece(word) for word in made)


def predictions(model: Model, text: str, suggestions: int | None, as_json: bool) -> str:
    """--suggest (with `suggestions` words) or --score, as a table or one JSON object."""
    if as_json:
        record = suggestion_record(model, text, suggestions) if suggestions else score_record(model, text)
        return json.dumps(record, ensure_ascii=False)
    if suggestions is not None:
        found = model.suggest(text, suggestions)
        return columns(("word", "probability"), [(s.word, f"{s.probability:.4f}") for s in found])
    scored = model.score(text)
    rows = [(w.word, f"{w.log_probability:.4f}", f"{math.exp(w.log_probability):.4f}") for w in scored.words]
    summary = f"{len(scored.words)} words: total log-probability {scored.total:.4f}, perplexity {scored.perplexity:.3f}"
    return columns(("word", "log p", "p"), rows) + "\n" + summary


def file_score(model: Model, path: Path, as_json: bool) -> str:
    """--score --file: top-1, top-3, perplexity and keystrokes saved over the file's words, a line
    or a JSON object; for a model that learns the words of the text so far, a line without them too."""
    text, _ = read_text_file(path, "--file", "pass --file PATH to a UTF-8 text file")
    found = model.evaluate(text)
    alone = model.evaluate(text, learning=False) if model.learns_text else None
    uncached = model.evaluate(text, learning=False, cache=False) if model.cache else None
    if as_json:
        return json.dumps({"file": str(path), **found.as_dict()} | ({"model_alone": alone.as_dict()} if alone else {})
                          | ({"without_cache": uncached.as_dict()} if uncached else {}))  # fmt: skip
    skipped = f" ({found.skipped:,} not predicted: unknown or <unk>, or too near one)" if found.skipped else ""
    lines = [f"{path}: {found.line()}{skipped}"]
    if alone is not None:
        lines[0] += "\n  with the text's own words learnt as typed; the model alone: " + alone.line()
    if uncached is not None:
        lines.append("  the model alone without its cache of the text so far: " + uncached.line())
    return "\n".join(lines)


def generation_json(model: Model, prompt: str, words: int, sampling: Sampling, load_ms: float) -> str:
    record = generation_record(model, prompt, words, sampling)
    record["timings"] = {"load_ms": round(load_ms, 3), **record["timings"]}
    return json.dumps(record, ensure_ascii=False)


def interactive(model: Model, words: int, sampling: Sampling, as_json: bool, tokens: bool, load_ms: float) -> None:
    """The tutorial's loop: ask for words, print the continuation (or a JSON line), until end of input.
    Ctrl-C propagates: the command reports it and exits 130."""
    asking = sys.stdin.isatty()
    if asking:
        print(f"fable: {len(model.vocabulary)} words, window {model.window}; Ctrl-D to quit")
    while True:
        try:
            line = input(f"{model.window} words: " if asking else "")
        except (EOFError, KeyboardInterrupt) as stop:
            if asking:
                print()  # the prompt's line ends before the goodbye, or the error, is printed
            if isinstance(stop, KeyboardInterrupt):
                raise
            return
        if not line.strip():
            continue
        try:
            if as_json:
                output = generation_json(model, line, words, sampling, load_ms)
            else:
                output = "".join(continuation(model, line, words, sampling, tokens))
        except PromptError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            continue
        print(output, flush=True)


GRAPHS_SAID = {
    "step": "one batched step per word",
    "window": "whole window per word",
    "stream": "one step per word, its state carried through the whole text; a fresh read feeds the last window",
}


def _cache(model: Model) -> str:
    settings = model.metadata.cache
    if settings is None:
        return "none: the model alone (no cache predicted its validation part better, or it had none)"
    return settings.describe() + ("" if model.cache else " (off: --no-cache)")


def model_card(model: Model) -> str:
    meta, prov = model.metadata, model.metadata.provenance
    config = meta.config
    encoding = config.encoding + (f" ({config.embedding_dim} dims)" if config.encoding == "embedding" else "")
    rows = [
        ("file", f"{model.path} ({model.file_bytes / 1e6:.2f} MB)"),
        ("vocabulary", f"{len(meta.vocabulary)} words"),
        ("window", f"{config.window} words"),
        ("layers", f"{config.layers} LSTM x {config.hidden} hidden units"),
        ("input", encoding),
        ("quantization", meta.quantization),
        ("backend", model.runs),
        ("settings", model.settings),
        ("graph", f"{meta.graph} ({GRAPHS_SAID[meta.graph]})"),
        *([("cache", _cache(model))] if meta.whole_text else []),
        (
            "accuracy",
            f"{100 * prov.accuracy:.1f}% of next words over the training windows"
            + (f", of a ceiling of {100 * prov.ceiling:.1f}%" if prov.ceiling is not None else ""),
        ),
        ("held out", _held_out(prov)),
        ("trained on", f"{prov.corpus_name} (sha256 {prov.corpus_sha256[:16]}...)"),
        ("training", f"{prov.preset} preset, {prov.steps:,} steps on {prov.device}, seed {prov.seed}"),
        ("made by", f"{meta.producer}, model format {meta.format_version}, tokenizer {meta.tokenizer_version}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _held_out(prov: Provenance) -> str:
    if prov.heldout is None or prov.heldout_perplexity is None:
        return "nothing: no figures on text it was not trained on (fable-train --holdout measures them)"
    return (f"{prov.heldout:.0%} of the corpus, never trained on: top-1 {100 * (prov.heldout_top1 or 0):.1f}%, "
            f"top-3 {100 * (prov.heldout_top3 or 0):.1f}%, perplexity {prov.heldout_perplexity:.2f} "
            f"over {prov.heldout_words or 0:,} words (the trained weights, before export)")  # fmt: skip


def entry() -> None:
    run_app(app, "fable-run")


if __name__ == "__main__":
    entry()
