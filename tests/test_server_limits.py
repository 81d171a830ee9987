"""fable-serve's limits, each with its answer: timeouts, full slots, clients that stop reading,
streams that fail midway. Real servers on 127.0.0.1 under real HTTP clients."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("starlette", reason='fable-serve needs the serve extra: pip install "fable[serve]"')
pytest.importorskip("hypercorn", reason='fable-serve needs the serve extra: pip install "fable[serve]"')

from hypercorn.asyncio import serve
from hypercorn.config import Config

import fable
from fable.errors import FableError
from fable.server import create_app
from fable.server_settings import ServerSettings

from .helpers import start_server, stop_server


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def post(url: str, path: str, body: dict, timeout: float = 30) -> tuple[int, dict | str, dict]:
    connection = http.client.HTTPConnection(*host_port(url), timeout=timeout)
    connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    raw = response.read().decode()
    headers = dict(response.getheaders())
    return response.status, json.loads(raw) if headers.get("content-type") == "application/json" else raw, headers


@pytest.fixture
def server_of():
    """server_of(*flags) → the URL of a fable-serve started with them; stopped after the test."""
    started = []

    def start(*flags: str) -> str:
        process, url = start_server(*flags)
        started.append(process)
        return url

    yield start
    for process in started:
        stop_server(process)


def test_a_request_whose_headers_stall_is_closed_after_the_idle_timeout(server_of):
    url = server_of("--idle-timeout", "0.5")
    with socket.create_connection(host_port(url), timeout=10) as client:
        client.sendall(b"POST /suggest HTTP/1.1\r\nHost: x\r\n")  # and no more
        started = time.monotonic()
        assert client.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 5


def test_a_body_that_stalls_gets_408_in_json(server_of):
    url = server_of("--body-timeout", "0.5")
    with socket.create_connection(host_port(url), timeout=10) as client:
        client.sendall(b'POST /suggest HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"text": ')
        answer = b""
        while not answer.endswith(b"}"):  # the status line and the JSON, however the bytes arrive
            piece = client.recv(65536)
            assert piece, answer
            answer += piece
    head, _, body = answer.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 408") and "did not arrive within 0.5 s" in json.loads(body)["error"], answer


def test_past_the_slots_and_the_queue_a_request_gets_503_with_retry_after_at_once(server_of):
    url = server_of("--slots", "1", "--queue", "0", "--max-words", "1000000", "--write-timeout", "30")
    with socket.create_connection(host_port(url), timeout=30) as holder:  # a long stream holds the one slot
        body = json.dumps({"prompt": "the old mouse", "words": 1_000_000, "stream": True}).encode()
        holder.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        received = b""
        while b'"word"' not in received:  # streaming: it has the slot
            received += holder.recv(4096)
        started = time.monotonic()
        status, answer, headers = post(url, "/suggest", {"text": "the old mo"})
        assert (status, headers.get("retry-after")) == (503, "1") and "busy: 1 model slots" in answer["error"]
        assert time.monotonic() - started < 1
    time.sleep(0.5)  # the stream ends with its client, and the slot is free again
    assert post(url, "/suggest", {"text": "the old mo"})[0] == 200


def test_a_client_that_stops_reading_a_stream_is_dropped_and_its_slot_given_back(server_of):
    url = server_of("--slots", "1", "--queue", "0", "--max-words", "1000000", "--write-timeout", "1")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's sends block soon
    client.connect(host_port(url))
    body = json.dumps({"prompt": "the old mouse", "words": 1_000_000, "stream": True}).encode()
    client.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    try:
        deadline = time.monotonic() + 20
        while post(url, "/suggest", {"text": "the old mo"})[0] == 503:  # the stream holds the slot...
            assert time.monotonic() < deadline, "the slot was never given back"
            time.sleep(0.2)
        assert time.monotonic() < deadline  # ...until it is dropped, within the write timeout and the buffers
    finally:
        client.close()


# --- the app in this process, under a real server on 127.0.0.1 ------------------------------------


@pytest.fixture
def app_server() -> Iterator:
    """serve(model) → the URL of create_app(model) run by hypercorn in a thread of this process."""
    stops = []

    def start(model: fable.Model, settings: ServerSettings | None = None) -> str:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{listener.detach()}"]  # hypercorn owns it now
        config.errorlog = None
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        thread = threading.Thread(target=loop.run_until_complete,
                                  args=(serve(create_app(model, settings or ServerSettings()), config, shutdown_trigger=stop.wait),))  # fmt: skip
        thread.start()
        stops.append((loop, stop, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for loop, stop, thread in stops:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)


def test_a_stream_that_fails_midway_ends_with_one_error_line_not_a_second_response(app_server, monkeypatch):
    model = fable.load()
    real_stream = model.stream

    def failing(prompt, words, sampling):
        made = real_stream(prompt, words, sampling)

        def words_then_failure():
            for _ in range(3):
                yield next(made)
            raise FableError("the model's file went away")

        return words_then_failure()

    monkeypatch.setattr(model, "stream", failing)
    url = app_server(model)
    status, text, headers = post(url, "/generate", {"prompt": "the old mouse", "words": 9, "stream": True})
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON: no second response inside
    assert status == 200 and headers["content-type"] == "application/x-ndjson"
    assert [line.get("word") for line in lines[:3]] == ["said", "it", "is"]
    assert lines[3] == {"error": "the model's file went away"} and len(lines) == 4
