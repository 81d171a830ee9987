"""fable-serve's HTTP API: one loaded model behind a small JSON API and a page, as an ASGI app.

`create_app(model)` is a Starlette app: `fable-serve` runs it with hypercorn, and an app of your own
can mount it beside its own routes (README, "Suggest, score, serve"). Needs the `serve` extra.

GET  /          the page: type and see suggestions, generate and watch the words arrive
GET  /health    {"status": "ok"}
GET  /info      the model card: the model file's metadata, name and size
POST /generate  {"prompt", "words", "temperature", "top_k", "top_p", "seed", "stream"}: the words
                and the text, or with "stream": true one NDJSON line per word (its "text" is the
                word with the space before it, so the lines' texts add up to the whole), then a
                last line with "done", or with "error" if the stream fails midway
POST /suggest   {"text", "k"}: completions of the last word, or after a space or a mark the next words
POST /score     {"text"}: each word's log-probability, the total and the perplexity

Every error is a JSON object {"error": "..."} with its status: 400 for a bad request (text that
UTF-8 cannot carry included), 403 for a Host the server does not answer to, 404 for an unknown
path, 405 for a wrong method, 408 for a body that does not arrive in time, 413 for a body over
64 KB (chunked or not), 415 for a POST whose body is not declared JSON, 500 for anything
unexpected (one line in the log), and 503 with Retry-After when the slots and the queue are full
or a request's deadline passes. Limits are `ServerSettings`; the connection's own timeouts are
hypercorn's (cli/serve.py). How requests share the model: fable/server_work.py.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http import HTTPStatus
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .engine import DEFAULT_WORDS
from .errors import FableError, log
from .model import Model
from .predict import DEFAULT_SUGGESTIONS, suggestion_record
from .sampling import Sampling
from .server_http import HANDLERS, Guard, RequestError, allowed_hosts, field, log_unexpected, read_json
from .server_settings import ServerSettings
from .server_steps import generation_steps, score_steps, stream_turn
from .server_work import Slots, Work
from .tokenizer import Detokenizer
from .tuning import cache_path

PAGE = "page.html"
# A stream's words of one chunk, each with the time it was made, and what stopped it midway, if anything
Turn = tuple[list[tuple[str, float]], Exception | None]


def create_app(model: Model, settings: ServerSettings | None = None) -> Starlette:
    """The API and the page for `model`, as an ASGI app (Starlette) that any asyncio ASGI server
    runs or any Starlette app mounts. Model calls run in `settings.slots` threads of its own."""
    settings = settings or ServerSettings()
    api = Api(model, settings)
    routes = [Route("/", api.page), Route("/health", api.health), Route("/info", api.info)]
    routes += [Route(path, call, methods=["POST"]) for path, call in
               (("/generate", api.generate), ("/suggest", api.suggest), ("/score", api.score))]  # fmt: skip
    guard = Middleware(Guard, hosts=allowed_hosts(settings.host, settings.allowed_hosts))
    return Starlette(routes=routes, middleware=[guard], exception_handlers=HANDLERS)  # type: ignore[arg-type]


class Api:
    """The endpoints of one model: what each reads, what it may cost, and its answer."""

    def __init__(self, model: Model, settings: ServerSettings):
        self.model, self.settings = model, settings
        self.slots = Slots(settings.slots, settings.queue, settings.retry_after)
        self.html = (resources.files(__package__) / PAGE).read_bytes()
        # Once, not per request on the event loop: a large vocabulary is megabytes of JSON.
        self.why = _without_paths(model.settings)
        card = {key: value for key, value in model.info.items() if key != "path"}  # no reply says where files lie
        self.card = JSONResponse(card | {"file": model.path.name, "settings": self.why}).body

    async def page(self, _: Request) -> Response:
        return HTMLResponse(self.html)

    async def health(self, _: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def info(self, _: Request) -> Response:
        return Response(self.card, media_type="application/json")

    async def generate(self, request: Request) -> Response:
        fields = await read_json(request, self.settings.body_timeout)
        prompt, words = field(fields, "prompt", str), field(fields, "words", int, DEFAULT_WORDS)
        if not 1 <= words <= self.settings.max_words:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"words must be from 1 to {self.settings.max_words}, "
                               f"not {words}")  # fmt: skip
        sampling = Sampling(
            temperature=field(fields, "temperature", float, 0.0),
            top_k=field(fields, "top_k", int, None),
            top_p=field(fields, "top_p", float, None),
            seed=field(fields, "seed", int, None),
        )
        if field(fields, "stream", bool, False):
            return await self._stream(prompt, words, sampling)
        async with self.slots.admit():
            record = await self._work(request).finish(generation_steps(self.model, prompt, words, sampling))
        record["settings"]["why"] = self.why
        return JSONResponse(record | {"model": self.model.path.name})  # its name, not where it lies here

    async def suggest(self, request: Request) -> Response:
        fields = await read_json(request, self.settings.body_timeout)
        text, k = field(fields, "text", str), field(fields, "k", int, DEFAULT_SUGGESTIONS)
        async with self.slots.admit():  # a suggestion reads the last few words: one chunk
            return JSONResponse(await self._work(request).run(suggestion_record, self.model, text, k))

    async def score(self, request: Request) -> Response:
        text = field(await read_json(request, self.settings.body_timeout), "text", str)
        most = self.settings.max_score_words
        async with self.slots.admit():
            work = self._work(request)
            reading = await work.run(self.model.lexicon.read, text)
            if len(reading.tokens) > most:  # each token is a model step, a mark as much as a word
                raise RequestError(HTTPStatus.BAD_REQUEST, f"the text is {len(reading.tokens):,} words and marks; "
                                   f"/score reads at most {most:,} (--max-score-words)")  # fmt: skip
            scored = await work.finish(score_steps(self.model, reading))
        return JSONResponse({"text": text, **scored.as_dict()})

    def _work(self, request: Request) -> Work:
        return Work(self.slots, self.settings.deadline, request)

    async def _stream(self, prompt: str, words: int, sampling: Sampling) -> Response:
        """The stream's first words are made before its status is sent, so that a full server,
        a bad prompt, or a deadline passed while waiting for a turn, is an error and not a line.
        The prompt is read in a slot once admitted, like every other request's text."""
        held = contextlib.AsyncExitStack()
        await held.enter_async_context(self.slots.admit())
        opened: list[Iterator[str]] = []  # its words to come, once a slot has read the prompt
        held.callback(lambda: [made.close() for made in opened])  # decoder back to the pool, then the place
        work = Work(self.slots, self.settings.deadline)  # Starlette watches a stream's client itself
        try:
            started = time.perf_counter()
            joiner, first = await work.run(_opening, self.model, prompt, words, sampling, opened)
        except BaseException:  # however it ended, a deadline that left the opening's result unread too
            await held.aclose()
            raise
        lines = _lines(work, joiner, first, opened[0], words, started)
        return NDJSONStream(lines, self.settings.write_timeout, held.aclose)


class NDJSONStream(StreamingResponse):
    """A stream of JSON lines whose client must keep reading: a send that waits longer than
    `write_timeout` for the client ends the response and closes the connection. However it ends
    (done, the client gone, too slow), the lines' generator is closed and then `release` gives
    back what the stream held (its decoder, its place)."""

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
            log.info("fable-serve: dropped a stream whose client read nothing for %g s", self.write_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]
            await self.release()


def _opening(
    model: Model, prompt: str, words: int, sampling: Sampling, opened: list[Iterator[str]]
) -> tuple[Detokenizer, Turn]:
    """A stream's first chunk: its words to come, put in `opened` for the caller to close (a bad
    prompt raises before), the joiner that follows the prompt's quotes (it reads the whole prompt),
    and the first words."""
    opened.append(model.stream(prompt, words, sampling))
    return model.text_pieces(prompt), stream_turn(opened[0])


async def _lines(work: Work, joiner: Detokenizer, turn: Turn, made: Iterator[str], words: int,
                 started: float) -> AsyncIterator[bytes]:  # fmt: skip
    """The NDJSON lines of a streamed generation, a chunk of words a turn. The status is sent
    before the first word, so a failure midway (the deadline too) is told as the stream's last line."""
    index, last = 0, started
    try:
        while True:
            made_now, problem = turn
            lines = []
            for word, at in made_now:
                text = joiner.piece(word)
                lines.append(_line({"index": index, "word": word, "text": text.lstrip(" ") if index == 0 else text,
                                    "ms": round(1000 * (at - last), 3)}))  # fmt: skip
                index, last = index + 1, at
            if lines:  # a chunk's lines in one send: a client that left is noticed before the next
                yield b"".join(lines)
            if problem is not None:
                raise problem
            if index >= words:
                break
            turn = await work.run(stream_turn, made)
    except RequestError as problem:  # its deadline passed
        yield _line({"error": str(problem)})
        return
    except Exception as problem:  # noqa: BLE001 - whatever failed, the client reads why, as one last line
        log_unexpected("a stream", problem)
        said = str(problem) if isinstance(problem, FableError) else f"unexpected {type(problem).__name__}"
        yield _line({"error": said})
        return
    yield _line({"done": True, "words": index, "total_ms": round(1000 * (time.perf_counter() - started), 3)})


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode() + b"\n"


def _without_paths(why: str) -> str:
    """A model's settings line without the tune cache's place on this machine (its name stays)."""
    cache = cache_path()
    return why.replace(str(cache), cache.name)
