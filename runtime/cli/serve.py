"""fable-serve: one model over HTTP, with a page to try it (the app: fable/server.py), run by hypercorn.

hypercorn is an established asyncio HTTP server of pure-Python wheels (as is Starlette), so the
`serve` extra installs on a Raspberry Pi as on a laptop. It gives every connection a deadline for
its request's headers (`--idle-timeout`, which is also how long a kept-alive connection may wait
for its next request), and costs no thread per connection: thousands of clients that send half a
request hold a socket each, not a worker.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..engine import DEFAULT_WORDS, MAX_WORDS
from ..errors import UsageError
from ..model import MAX_THREADS, Model, default_model_path
from ..server_settings import ANY_HOST, ServerSettings
from ..tuning import DEFAULT_SPIN, DEFAULT_THREADS
from . import BACKEND_DEFAULT, BACKEND_HELP, Backend, new_app, require_extra, run_app

SERVE_EXTRA = ("starlette", "hypercorn")
SERVE_SETTINGS = "fable-serve's own: --threads and --spin, not fable-bench --tune's single-stream choice"
LISTEN_BACKLOG = 1024  # connections the kernel holds for accept(): a burst of clients is not refused
# Each connection's kernel send buffer (accepted sockets inherit it): NDJSON words need little, and a
# bounded buffer means a client that stops reading blocks its stream soon, so --write-timeout can
# drop it, instead of after the megabytes Linux would buffer for it.
SEND_BUFFER = 128 * 1024
MAX_SLOTS = 256
MAX_QUEUE = 100_000
MAX_SECONDS = 3600.0

app = new_app()
_d = ServerSettings()


@app.command(help="Serve a model: the page at /, and /generate, /suggest, /score, /info and /health.")
def main(
    model: Annotated[Path | None, typer.Option("--model", "-m", help="a .onnx file from fable-export", show_default="the shipped int8 model")] = None,
    host: Annotated[str, typer.Option(help="address to listen on; 0.0.0.0 serves other machines too")] = _d.host,
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on; 0 picks a free one")] = _d.port,
    max_words: Annotated[int, typer.Option(min=1, max=MAX_WORDS, help="the most words one /generate may ask for")] = _d.max_words,
    max_score_words: Annotated[int, typer.Option(min=1, max=MAX_WORDS, help="the most tokens one /score may read: words and marks, a model step each")] = _d.max_score_words,
    slots: Annotated[int, typer.Option(min=1, max=MAX_SLOTS, help="model calls at once, each in a thread; default: the number of cores")] = _d.slots,
    queue: Annotated[int, typer.Option(min=0, max=MAX_QUEUE, help="requests admitted beyond --slots, waiting for a turn; past them, 503 with Retry-After at once")] = _d.queue,
    idle_timeout: Annotated[float, typer.Option(min=0.1, max=MAX_SECONDS, help="seconds a connection may take to send a request's headers, or wait idle between requests")] = _d.idle_timeout,
    body_timeout: Annotated[float, typer.Option(min=0.1, max=MAX_SECONDS, help="seconds a request's body may take to arrive (408 after)")] = _d.body_timeout,
    write_timeout: Annotated[float, typer.Option(min=0.1, max=MAX_SECONDS, help="seconds a stream's client may read nothing before it is dropped")] = _d.write_timeout,
    deadline: Annotated[float, typer.Option(min=0.1, max=MAX_SECONDS, help="seconds a request's model work may take, waiting for a slot included (503 after)")] = _d.deadline,
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host", metavar="NAME", help="a Host name clients may use besides --host and localhost (the name or address others reach this machine by); repeat for more")] = None,
    allow_any_host: Annotated[bool, typer.Option("--allow-any-host", help="answer whatever Host a request names: behind a proxy that checks it")] = False,
    threads: Annotated[int, typer.Option(min=1, max=MAX_THREADS, help="intra-op threads of the model's session")] = DEFAULT_THREADS,
    spin: Annotated[bool, typer.Option("--spin/--no-spin", help="let onnxruntime's threads spin between words")] = DEFAULT_SPIN,
    backend: Annotated[Backend | None, typer.Option(help=BACKEND_HELP, show_default=BACKEND_DEFAULT)] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="log every request on standard error")] = False,
    learned: Annotated[Path | None, typer.Option("--learned", help="words a person typed, a file an app wrote with save_learned: suggested to every client (the server learns nothing from requests)", show_default=False)] = None,
) -> None:  # fmt: skip
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from ..server import create_app

    if max_words < DEFAULT_WORDS:  # else every /generate that leaves out "words" would be refused
        raise UsageError(f"--max-words {max_words} is below the {DEFAULT_WORDS} words a /generate asks for by "
                         f"default; give --max-words {DEFAULT_WORDS} or more")  # fmt: skip
    settings = ServerSettings(
        host=host, port=port, max_words=max_words, max_score_words=max_score_words,
        slots=slots, queue=queue, idle_timeout=idle_timeout, body_timeout=body_timeout,
        write_timeout=write_timeout, deadline=deadline,
        allowed_hosts=(ANY_HOST,) if allow_any_host else tuple(allow_host or ()),
    )  # fmt: skip
    # Not the single-stream settings of fable-bench --tune: spinning workers compete with the
    # server's request threads for the cores (docs/design.md, "Tuning").
    loaded = Model(model or default_model_path(), threads, backend.value if backend else None, spin, SERVE_SETTINGS)
    if learned is not None:
        loaded.load_learned(learned)
    listener = _listen(host, port)
    bound_host, bound_port = listener.getsockname()[:2]
    config = Config()
    config.bind = [f"fd://{listener.detach()}"]  # hypercorn owns the socket from here
    config.backlog = LISTEN_BACKLOG  # hypercorn listens again on the socket, with its own default of 100
    config.keep_alive_timeout = settings.idle_timeout  # hypercorn's deadline for a request's headers, too
    config.accesslog = "-" if access_log else None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    typer.echo(f"fable-serve: {loaded.path.name} ({loaded.backend}) on http://{bound_host}:{bound_port}  "
               f"({settings.slots} slots, queue {settings.queue}; Ctrl-C to stop)")  # fmt: skip
    sys.stdout.flush()
    never = asyncio.Event  # Ctrl-C stops the loop (KeyboardInterrupt), which the command reports
    asyncio.run(serve(create_app(loaded, settings), config, shutdown_trigger=lambda: never().wait()))  # type: ignore[arg-type]


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, made here so that a port in use is one clear line, and port 0's pick is known."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        listener.bind((host, port))
        listener.listen(LISTEN_BACKLOG)
    except OSError as error:
        raise typer.BadParameter(
            f"cannot listen on {host}:{port} ({error.strerror or error})", param_hint="'--host'/'--port'"
        ) from None
    listener.set_inheritable(True)
    return listener


def entry() -> None:
    require_extra("fable-serve", "serve", SERVE_EXTRA)
    run_app(app, "fable-serve")


if __name__ == "__main__":
    entry()
