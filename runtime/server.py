"""fable-serve's HTTP API: one loaded model behind a small JSON API and a page, as an ASGI app.

`create_app(model)` is a Starlette app: `fable-serve` runs it with hypercorn, and an app of your own
can mount it beside its own routes (README, "Suggest, score, serve"). Needs the `serve` extra.

GET  /          the page: type and see suggestions, generate and watch the words arrive
GET  /health    {"status": "ok"}
GET  /info      the model card: the model file's metadata, path and size
POST /generate  {"prompt", "words", "temperature", "top_k", "top_p", "seed", "stream"}: the words
                and the text, or with "stream": true one NDJSON line per word (its "text" is the
                word with the space before it, so the lines' texts add up to the whole), then a
                last line with "done", or with "error" if the stream fails midway
POST /suggest   {"text", "k"}: the likeliest next words, or completions of an unfinished one
POST /score     {"text"}: each word's log-probability, the total and the perplexity

Every error is a JSON object {"error": "..."} with its status: 400 for a bad request, 404 for an
unknown path, 405 for a wrong method, 408 for a body that does not arrive in time, 413 for a body
over 64 KB (chunked or not), 503 with Retry-After when every model slot is busy and the queue is
full. Limits are `ServerSettings`; the connection's own timeouts are hypercorn's (cli/serve.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from importlib import resources
from typing import Any, TypeVar

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .engine import DEFAULT_WORDS
from .errors import FableError
from .model import Model
from .predict import DEFAULT_SUGGESTIONS, score_record, suggestion_record
from .records import generation_record
from .sampling import Sampling
from .server_settings import MAX_BODY_BYTES, ServerSettings

PAGE = "page.html"
T = TypeVar("T")


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


class Slots:
    """`size` model calls at once, each in a thread of its own, and `queue` requests waiting for
    one; a request past those is refused at once, so a burst never piles up unseen."""

    def __init__(self, size: int, queue: int, retry_after: int):
        self.size, self.queue, self.retry_after = size, queue, retry_after
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="fable-slot")
        self._free: asyncio.Semaphore | None = None  # made in the server's event loop
        self._admitted = 0  # computing or waiting; changed on the event loop's thread only

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[Slots]:
        if self._admitted >= self.size + self.queue:
            raise RequestError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"busy: {self.size} model slots at work and {self.queue} requests waiting (--slots, --queue); "
                f"retry in {self.retry_after} s",
                {"Retry-After": str(self.retry_after)},
            )
        self._free = self._free or asyncio.Semaphore(self.size)
        self._admitted += 1
        try:
            async with self._free:
                yield self
        finally:
            self._admitted -= 1

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in a slot's thread. If the caller is cancelled (its client left), the call
        still ends before this returns, so what it works on (a decoder) is never used by two threads."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait({future})
            raise


class NDJSONStream(StreamingResponse):
    """A stream of JSON lines whose client must keep reading: a send that waits longer than
    `write_timeout` for the client ends the response and closes the connection. However it ends
    (done, the client gone, too slow), the lines' generator is closed and then `release` gives
    back what the stream held (its decoder, its slot)."""

    media_type = "application/x-ndjson"

    def __init__(self, lines: AsyncIterator[bytes], write_timeout: float, release: Callable[[], Awaitable[Any]]):
        super().__init__(lines, headers={"Cache-Control": "no-store"})
        self.write_timeout = write_timeout
        self.release = release

    async def stream_response(self, send: Send) -> None:
        async def timed(message: dict[str, Any]) -> None:
            with anyio.fail_after(self.write_timeout):
                await send(message)

        try:
            await super().stream_response(timed)
        except TimeoutError:
            print(f"fable-serve: dropped a stream whose client read nothing for {self.write_timeout:g} s",
                  file=sys.stderr)  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]
            await self.release()


def create_app(model: Model, settings: ServerSettings | None = None) -> Starlette:
    """The API and the page for `model`, as an ASGI app (Starlette) that any asyncio ASGI server
    runs or any Starlette app mounts. Model calls run in `settings.slots` threads of its own."""
    settings = settings or ServerSettings()
    slots = Slots(settings.slots, settings.queue, settings.retry_after)
    page = (resources.files(__package__) / PAGE).read_bytes()

    async def body(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _too_large(int(declared))

        async def read() -> bytes:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:  # a chunked body says its size only as it comes
                    raise _too_large(size, "at least ")
                chunks.append(chunk)
            return b"".join(chunks)

        try:
            with anyio.fail_after(settings.body_timeout):
                raw = await read()
        except TimeoutError:
            raise RequestError(
                HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {settings.body_timeout:g} s"
            ) from None
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return parsed

    async def generate(request: Request) -> Response:
        fields = await body(request)
        prompt = _field(fields, "prompt", str)
        words = _field(fields, "words", int, DEFAULT_WORDS)
        if not 1 <= words <= settings.max_words:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"words must be from 1 to {settings.max_words}, not {words}")
        sampling = Sampling(
            temperature=_field(fields, "temperature", float, 0.0),
            top_k=_field(fields, "top_k", int, None),
            top_p=_field(fields, "top_p", float, None),
            seed=_field(fields, "seed", int, None),
        )
        if _field(fields, "stream", bool, False):
            made = model.stream(prompt, words, sampling)  # a bad prompt raises here, before the stream starts
            held = contextlib.AsyncExitStack()
            await held.enter_async_context(slots.hold())  # a 503 now, or a wait in the queue, before any line
            held.callback(made.close)  # its decoder goes back to the model's pool, then the slot is free
            return NDJSONStream(_lines(model, slots, prompt, words, made), settings.write_timeout, held.aclose)
        async with slots.hold():
            return JSONResponse(await slots.run(generation_record, model, prompt, words, sampling))

    async def suggest(request: Request) -> Response:
        fields = await body(request)
        text, k = _field(fields, "text", str), _field(fields, "k", int, DEFAULT_SUGGESTIONS)
        async with slots.hold():
            return JSONResponse(await slots.run(suggestion_record, model, text, k))

    async def score(request: Request) -> Response:
        text = _field(await body(request), "text", str)
        typed = len(text.split())
        if typed > settings.max_score_words:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"the text has {typed:,} words; /score reads at most {settings.max_score_words:,} (--max-score-words)",
            )
        async with slots.hold():
            return JSONResponse(await slots.run(score_record, model, text))

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def info(_: Request) -> Response:
        return JSONResponse(model.info)

    async def show_page(_: Request) -> Response:
        return HTMLResponse(page)

    routes = [Route("/", show_page), Route("/health", health), Route("/info", info)]
    routes += [Route(path, call, methods=["POST"]) for path, call in
               (("/generate", generate), ("/suggest", suggest), ("/score", score))]  # fmt: skip
    handlers = {RequestError: _request_error, FableError: _fable_error, HTTPException: _http_error,
                ClientDisconnect: _client_left, Exception: _unexpected}  # fmt: skip
    return Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]


async def _lines(model: Model, slots: Slots, prompt: str, words: int, made: Iterator[str]) -> AsyncIterator[bytes]:
    """The NDJSON lines of a streamed generation, each word made in the stream's slot. The status
    is sent before the first word, so a failure midway is told as the stream's last line."""
    joiner = model.text_pieces(prompt)
    started = last = time.perf_counter()
    try:
        for index in range(words):
            word = await slots.run(next, made)
            now = time.perf_counter()
            text = joiner.piece(word).lstrip(" ") if index == 0 else joiner.piece(word)
            yield _line({"index": index, "word": word, "text": text, "ms": round(1000 * (now - last), 3)})
            last = now
    except Exception as error:  # noqa: BLE001 - whatever failed, the client reads why, as one last line
        print(f"fable-serve: a stream failed: {type(error).__name__}: {error}", file=sys.stderr)
        yield _line({"error": str(error) if isinstance(error, FableError) else f"unexpected {type(error).__name__}"})
        return
    yield _line({"done": True, "words": words, "total_ms": round(1000 * (time.perf_counter() - started), 3)})


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode() + b"\n"


def _too_large(size: int, bound: str = "") -> RequestError:
    return RequestError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is {bound}{size:,} bytes, more than {MAX_BODY_BYTES:,}"
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _request_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, RequestError)
    return _error(error.status, str(error), error.headers)


async def _fable_error(_: Request, error: Exception) -> Response:
    return _error(HTTPStatus.BAD_REQUEST, str(error))  # a prompt, a setting: what was asked cannot be done


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    path = request.url.path
    if error.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        return _error(error.status_code, f"{request.method} is not allowed on {path}")
    if error.status_code == HTTPStatus.NOT_FOUND:
        return _error(error.status_code, f"no such path {path!r}; see GET / for what there is")
    return _error(error.status_code, str(error.detail))


async def _client_left(_: Request, error: Exception) -> Response:
    return Response(status_code=HTTPStatus.BAD_REQUEST)  # the client left before its body arrived: nobody reads this


async def _unexpected(request: Request, error: Exception) -> Response:
    print(f"fable-serve: {request.method} {request.url.path}: unexpected {type(error).__name__}: {error}",
          file=sys.stderr)  # fmt: skip
    return _error(HTTPStatus.INTERNAL_SERVER_ERROR, f"unexpected {type(error).__name__}")


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
