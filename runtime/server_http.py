"""fable-serve's HTTP side: a request's JSON body and fields, the JSON answer to every error, and
the guard in front of every route (the app: fable/server.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import FableError, log
from .server_settings import ANY_HOST, MAX_BODY_BYTES

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})  # names no other site's page can make a browser send


class RequestError(Exception):
    """What was asked cannot be answered: its status, a message for the client, and headers."""

    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def read_json(request: Request, timeout: float) -> dict[str, Any]:
    """The request's body as a JSON object, at most MAX_BODY_BYTES, arrived within `timeout` s."""
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
        with anyio.fail_after(timeout):
            raw = await read()
    except TimeoutError:
        raise RequestError(HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {timeout:g} s") from None
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    return parsed


_MISSING = object()
_TYPE_NAMES = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def field(body: dict[str, Any], name: str, kind: type, default: Any = _MISSING) -> Any:
    """body[name] as `kind` (an int is a float too; a bool is neither), `default` when absent or null.
    Text must be Unicode that UTF-8 can carry: JSON can spell a lone surrogate ("\\ud800"), no answer can."""
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
    if kind is str and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as bad:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{name!r} cannot be encoded as UTF-8: it holds "
                               f"{value[bad.start]!r} at character {bad.start}, half of a surrogate pair") from None  # fmt: skip
    return value


def _too_large(size: int, bound: str = "") -> RequestError:
    return RequestError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is {bound}{size:,} bytes, more than {MAX_BODY_BYTES:,}"
    )


async def _request_error(_: Request, problem: Exception) -> Response:
    assert isinstance(problem, RequestError)
    return error(problem.status, str(problem), problem.headers)


async def _fable_error(_: Request, problem: Exception) -> Response:
    return error(HTTPStatus.BAD_REQUEST, str(problem))  # a prompt, a setting: what was asked cannot be done


async def _http_error(request: Request, problem: Exception) -> Response:
    assert isinstance(problem, HTTPException)
    path = request.url.path
    if problem.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        return error(problem.status_code, f"{request.method} is not allowed on {path}")
    if problem.status_code == HTTPStatus.NOT_FOUND:
        return error(problem.status_code, f"no such path {path!r}; see GET / for what there is")
    return error(problem.status_code, str(problem.detail))


async def _client_left(_: Request, __: Exception) -> Response:
    return Response(status_code=HTTPStatus.BAD_REQUEST)  # the client left: nobody reads this


# Starlette answers these where it catches them, below the Guard; anything else reaches the Guard.
HANDLERS = {RequestError: _request_error, FableError: _fable_error, HTTPException: _http_error,
            ClientDisconnect: _client_left}  # fmt: skip


def allowed_hosts(bound: str, named: Collection[str]) -> frozenset[str]:
    """The Host names a server bound to `bound` answers: those, `named` and localhost's; empty for any."""
    return frozenset() if ANY_HOST in named else frozenset({bound.lower(), *LOOPBACK, *(n.lower() for n in named)})


class Guard:
    """ASGI middleware in front of every route. It refuses a Host not in `hosts` (empty: any), so a
    page whose name was pointed at this machine (DNS rebinding) reads nothing, and a POST whose body
    is not declared JSON, so another site's page cannot post here without a CORS preflight, which
    this server never grants; and a request that a browser marks (its Origin) as sent by a page of
    another origin than the server's own, so that a request a browser lets through gets nothing.
    And it answers every unexpected error with one log line and a JSON 500: Starlette's own handler
    for Exception answers and then raises it again, for the server to log with its traceback, which
    a client could then write into the log at will (FABLE_DEBUG=1: logged)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(Headers(scope=scope), scope["method"])
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as problem:  # noqa: BLE001 - whatever it was: one line, and the client told
            log_unexpected(f"{scope['method']} {scope['path']}", problem)
            if not started:
                answer = error(HTTPStatus.INTERNAL_SERVER_ERROR, f"unexpected {type(problem).__name__}")
                await answer(scope, receive, send)

    def _refusal(self, headers: Headers, method: str) -> Response | None:
        name = _host_name(headers.get("host", ""))
        if self.hosts and name not in self.hosts:
            return error(HTTPStatus.FORBIDDEN, f"this server does not answer to the host {name[:60]!r}: it answers to "
                         f"{', '.join(sorted(self.hosts))} (fable-serve --allow-host NAME adds one)")  # fmt: skip
        origin = headers.get("origin")
        if self.hosts and origin is not None and _authority(origin) != headers.get("host", "").strip().lower():
            return error(HTTPStatus.FORBIDDEN, f"this server does not answer pages from {origin[:60]!r}, only its "
                         "own page's requests (another site's or another app's page has no say here)")  # fmt: skip
        kind = headers.get("content-type", "").partition(";")[0].strip().lower()
        if method == "POST" and kind != "application/json":
            return error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                         f"a POST's body must be JSON, sent with Content-Type: application/json, not {kind[:60]!r}")  # fmt: skip
        return None


def log_unexpected(where: str, problem: Exception) -> None:
    """One line in the log for an error nobody planned for, however long or many-lined its message;
    with FABLE_DEBUG=1 its traceback too."""
    said = " ".join(str(problem).split())[:200]
    traceback = problem if os.environ.get("FABLE_DEBUG") else None
    log.error("fable-serve: %s: unexpected %s: %s", where, type(problem).__name__, said, exc_info=traceback)


def _authority(origin: str) -> str:
    """The host and port of an Origin header, as its Host header spells them: "http://[::1]:8080" →
    "[::1]:8080"; "" for "null" (a sandboxed page), which no Host matches."""
    return urlsplit(origin.strip()).netloc.lower()


def _host_name(header: str) -> str:
    """The name in a Host header, without its port: "[::1]:8080" → "::1", "Example.org:80" → "example.org"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header
