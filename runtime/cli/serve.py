"""fable-serve: one model over HTTP on this machine, with a page to try it (see fable/server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..engine import MAX_WORDS
from ..model import MAX_THREADS, Model, default_model_path
from ..server import FableServer, ServerSettings
from ..tuning import DEFAULT_SPIN, DEFAULT_THREADS
from . import BACKEND_DEFAULT, BACKEND_HELP, Backend, new_app, run_app

app = new_app()
_d = ServerSettings()
SERVE_SETTINGS = "fable-serve's own: --threads and --spin, not fable-bench --tune's single-stream choice"


@app.command(help="Serve a model: the page at /, and /generate, /suggest, /score, /info and /health.")
def main(
    model: Annotated[Path | None, typer.Option("--model", "-m", help="a .onnx file from fable-export", show_default="the shipped int8 model")] = None,
    host: Annotated[str, typer.Option(help="address to listen on; 0.0.0.0 serves other machines too")] = _d.host,
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on; 0 picks a free one")] = _d.port,
    max_words: Annotated[int, typer.Option(min=1, max=MAX_WORDS, help="the most words one /generate may ask for")] = _d.max_words,
    threads: Annotated[int, typer.Option(min=1, max=MAX_THREADS, help="intra-op threads of the model's session")] = DEFAULT_THREADS,
    spin: Annotated[bool, typer.Option("--spin/--no-spin", help="let onnxruntime's threads spin between words")] = DEFAULT_SPIN,
    backend: Annotated[Backend | None, typer.Option(help=BACKEND_HELP, show_default=BACKEND_DEFAULT)] = None,
) -> None:  # fmt: skip
    # Not the single-stream settings of fable-bench --tune: spinning workers compete with the
    # server's request threads for the cores (docs/design.md, "Tuning").
    loaded = Model(model or default_model_path(), threads, backend.value if backend else None, spin, SERVE_SETTINGS)
    try:
        server = FableServer(loaded, ServerSettings(host=host, port=port, max_words=max_words))
    except OSError as error:
        raise typer.BadParameter(
            f"cannot listen on {host}:{port} ({error.strerror})", param_hint="'--host'/'--port'"
        ) from None
    with server:
        typer.echo(f"fable-serve: {loaded.path.name} ({loaded.backend}) on {server.url}  (Ctrl-C to stop)")
        server.serve_forever()


def entry() -> None:
    run_app(app, "fable-serve")


if __name__ == "__main__":
    entry()
