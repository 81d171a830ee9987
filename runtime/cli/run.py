"""fable-run: continue a prompt with a fable model, as the rnn-words tutorial did."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from .. import __version__
from ..errors import PromptError, UsageError
from ..model import DEFAULT_WORDS, MAX_WORDS, Model, load
from ..sampling import Sampling
from . import run_app

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
_defaults = Sampling()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fable-run {__version__}")
        raise typer.Exit()


@app.command(help="Continue PROMPT with the model's words; with no PROMPT, ask for prompts until end of input.")
def main(
    prompt: str = typer.Argument(None, help="words to continue; the model reads the last `window` of them"),
    model: Path = typer.Option(None, "--model", "-m", help="a .onnx file from fable-export  [default: the shipped int8 model]"),
    words: int = typer.Option(DEFAULT_WORDS, "--words", "-n", help="how many words to generate"),
    temperature: float = typer.Option(_defaults.temperature, help="0 picks the most likely word; higher is more random"),
    top_k: int = typer.Option(_defaults.top_k, help="sample among the K most likely words"),
    top_p: float = typer.Option(_defaults.top_p, help="sample among the most likely words whose probability reaches P"),
    seed: int = typer.Option(_defaults.seed, help="random seed: the same seed gives the same words"),
    stream: bool = typer.Option(False, "--stream", help="print each word as it is made"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: prompt, words, model, timings"),
    info: bool = typer.Option(False, "--info", help="print the model card and exit"),
    threads: int = typer.Option(1, help="intra-op threads; 1 is fastest for one sequence on a small CPU"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit"),
) -> None:  # fmt: skip
    sampling = Sampling(temperature, top_k, top_p, seed)
    sampling.validate()
    if not 1 <= words <= MAX_WORDS:
        raise UsageError(f"--words must be from 1 to {MAX_WORDS:,}, not {words}")
    started = time.perf_counter()
    loaded = load(model, threads)
    load_ms = 1000 * (time.perf_counter() - started)
    if info:
        typer.echo(model_card(loaded))
        return
    if prompt is None:
        interactive(loaded, words, sampling)
        return
    if as_json:
        typer.echo(json.dumps(generate_json(loaded, prompt, words, sampling, load_ms), ensure_ascii=False))
        return
    made = loaded.stream(prompt, words, *_args(sampling))
    print(" ".join(prompt.split()), end="", flush=stream)
    for word in made:
        print(" " + word, end="", flush=stream)
    print()


def _args(sampling: Sampling) -> tuple:
    return sampling.temperature, sampling.top_k, sampling.top_p, sampling.seed


def generate_json(model: Model, prompt: str, words: int, sampling: Sampling, load_ms: float) -> dict:
    started = time.perf_counter()
    made, first_ms = [], None
    for word in model.stream(prompt, words, *_args(sampling)):
        made.append(word)
        first_ms = first_ms if first_ms is not None else 1000 * (time.perf_counter() - started)
    total_ms = 1000 * (time.perf_counter() - started)
    return {
        "prompt": prompt,
        "words": made,
        "text": " ".join(made),
        "model": str(model.path),
        "settings": {"words": words, "temperature": sampling.temperature, "top_k": sampling.top_k,
                     "top_p": sampling.top_p, "seed": sampling.seed, "threads": model.threads},
        "timings": {"load_ms": round(load_ms, 3), "first_word_ms": round(first_ms or 0.0, 3),
                    "total_ms": round(total_ms, 3), "words_per_second": round(len(made) / (total_ms / 1000), 1)},
    }  # fmt: skip


def interactive(model: Model, words: int, sampling: Sampling) -> None:
    """The tutorial's loop: ask for words, print the continuation, until end of input or Ctrl-C."""
    asking = sys.stdin.isatty()
    if asking:
        print(f"fable: {len(model.vocabulary)} words, window {model.window}; Ctrl-D or Ctrl-C to quit")
    while True:
        try:
            line = input(f"{model.window} words: " if asking else "")
        except (EOFError, KeyboardInterrupt):
            if asking:
                print()
            return
        if not line.strip():
            continue
        try:
            text = model.generate(line, words, *_args(sampling))
        except PromptError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            continue
        print(f"{' '.join(line.split())} {text}", flush=True)


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
        ("graph", f"{meta.graph} ({'one batched step per word' if meta.graph == 'step' else 'whole window per word'})"),
        ("accuracy", f"{100 * prov.accuracy:.1f}% of next words over the training windows"),
        ("trained on", f"{prov.corpus_name} (sha256 {prov.corpus_sha256[:16]}...)"),
        ("training", f"{prov.preset} preset, {prov.steps:,} steps on {prov.device}, seed {prov.seed}"),
        ("made by", f"{meta.producer}, model format {meta.format_version}, tokenizer {meta.tokenizer_version}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def entry() -> None:
    run_app(app, "fable-run")


if __name__ == "__main__":
    entry()
