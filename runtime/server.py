"""fable-serve's HTTP server: one loaded model behind a small JSON API, and a page to try it.

Standard library only (http.server), one thread per request; the model is shared, as it may be.

GET  /          the page: type and see suggestions, generate and watch the words arrive
GET  /health    {"status": "ok"}
GET  /info      the model card: the model file's metadata, path and size
POST /generate  {"prompt", "words", "temperature", "top_k", "top_p", "seed", "stream"}: the words
                and the text, or with "stream": true one NDJSON line per word (its "text" is the
                word with the space before it, so the lines' texts add up to the whole), then a
                last line with "done"
POST /suggest   {"text", "k"}: the likeliest next words, or completions of an unfinished one
POST /score     {"text"}: each word's log-probability, the total and the perplexity

Every error is a JSON object {"error": "..."} with its status: 400 for a bad request, 404 for an
unknown path, 405 for a wrong method, 411 without a length, 413 for a body over 64 KB.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from . import __version__
from .engine import DEFAULT_WORDS
from .errors import FableError
from .model import Model
from .predict import DEFAULT_SUGGESTIONS, score_record, suggestion_record
from .records import generation_record
from .sampling import Sampling

MAX_BODY_BYTES = 64 * 1024
DEFAULT_HOST = "127.0.0.1"  # this machine only: serving others is a choice (--host 0.0.0.0)
DEFAULT_PORT = 8080
DEFAULT_MAX_WORDS = 1000
PAGE = "page.html"


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port
    max_words: int = DEFAULT_MAX_WORDS  # the most words one /generate may ask for


class FableServer(ThreadingHTTPServer):
    daemon_threads = True  # a client that never finishes does not keep the server from stopping
    request_queue_size = 128  # socketserver's 5 drops the connections of a burst of clients, who retry a second later

    def __init__(self, model: Model, settings: ServerSettings):
        super().__init__((settings.host, settings.port), Handler)
        self.model = model
        self.settings = settings
        self.page = (resources.files(__package__) / PAGE).read_bytes()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: FableServer
    server_version = f"fable/{__version__}"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(
            {"/": self._page, "/health": self._health, "/info": self._info}, {"/generate", "/suggest", "/score"}
        )

    def do_POST(self) -> None:  # noqa: N802
        self._answer(
            {"/generate": self._generate, "/suggest": self._suggest, "/score": self._score}, {"/", "/health", "/info"}
        )

    def _answer(self, routes: dict, other_method: set[str]) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path in routes:
                routes[path]()
            elif path in other_method:
                raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not allowed on {path}")
            else:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such path {path!r}; see GET / for what there is")
        except RequestError as error:
            self._json(error.status, {"error": str(error)})
        except FableError as error:  # a prompt, a setting: what the user asked for cannot be done
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
        except (BrokenPipeError, ConnectionResetError):  # the client left; nothing to answer
            pass
        except Exception as error:  # never a traceback to the client; one line in the server's log
            print(f"fable-serve: {self.command} {path}: unexpected {type(error).__name__}: {error}", file=sys.stderr)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"unexpected {type(error).__name__}"})

    # --- endpoints

    def _page(self) -> None:
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.server.page)

    def _health(self) -> None:
        self._json(HTTPStatus.OK, {"status": "ok"})

    def _info(self) -> None:
        self._json(HTTPStatus.OK, self.server.model.info)

    def _generate(self) -> None:
        body = self._body()
        prompt = _field(body, "prompt", str)
        words = _field(body, "words", int, DEFAULT_WORDS)
        if not 1 <= words <= self.server.settings.max_words:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"words must be from 1 to {self.server.settings.max_words}, not {words}"
            )
        sampling = Sampling(
            temperature=_field(body, "temperature", float, 0.0),
            top_k=_field(body, "top_k", int, None),
            top_p=_field(body, "top_p", float, None),
            seed=_field(body, "seed", int, None),
        )
        if _field(body, "stream", bool, False):
            self._stream(prompt, words, sampling)
        else:
            self._json(HTTPStatus.OK, generation_record(self.server.model, prompt, words, sampling))

    def _stream(self, prompt: str, words: int, sampling: Sampling) -> None:
        made = self.server.model.stream(prompt, words, sampling)  # a bad prompt raises here, before any line
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        joiner = self.server.model.text_pieces(prompt)
        started = last = time.perf_counter()
        try:
            for index, word in enumerate(made):
                now = time.perf_counter()
                text = joiner.piece(word).lstrip(" ") if index == 0 else joiner.piece(word)
                self._line({"index": index, "word": word, "text": text, "ms": round(1000 * (now - last), 3)})
                last = now
            self._line({"done": True, "words": words, "total_ms": round(1000 * (time.perf_counter() - started), 3)})
        finally:
            made.close()  # a client that left mid-stream gives its decoder back

    def _suggest(self) -> None:
        body = self._body()
        record = suggestion_record(
            self.server.model, _field(body, "text", str), _field(body, "k", int, DEFAULT_SUGGESTIONS)
        )
        self._json(HTTPStatus.OK, record)

    def _score(self) -> None:
        self._json(HTTPStatus.OK, score_record(self.server.model, _field(self._body(), "text", str)))

    # --- reading and writing

    def _body(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the JSON body with a Content-Length")
        if not length.isdigit():
            raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length {length[:20]!r} is not a number of bytes")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is {int(length):,} bytes, more than {MAX_BODY_BYTES:,}"
            )
        try:
            body = json.loads(self.rfile.read(int(length)))
        except (ValueError, RecursionError):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._send(status, "application/json", json.dumps(payload, ensure_ascii=False).encode())

    def _send(self, status: HTTPStatus, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _line(self, payload: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(payload, ensure_ascii=False).encode() + b"\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        print(f"fable-serve: {self.address_string()} {format % args}", file=sys.stderr)


_MISSING = object()
_TYPE_NAMES = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def _field(body: dict[str, Any], name: str, kind: type, default: Any = _MISSING) -> Any:
    """body[name] as `kind` (an int is a float too; a bool is neither), `default` when absent or null."""
    value = body.get(name)
    if value is None:
        if default is _MISSING:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body needs {name!r} ({_TYPE_NAMES[kind]})")
        return default
    fits = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        fits, value = True, float(value)
    if not fits:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"{name!r} must be {_TYPE_NAMES[kind]}, not {json.dumps(value)[:40]}"
        )
    return value
