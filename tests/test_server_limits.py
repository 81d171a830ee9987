"""fable-serve's limits, each with its answer: timeouts, full slots, deadlines, clients that stop
reading or leave, streams that fail midway, unexpected errors. Real servers on 127.0.0.1 under real
HTTP clients."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import socket
import threading
import time
import urllib.request
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


def raw_post(path: str, body: dict) -> bytes:
    """A whole POST as a client writes it, for clients that then stop reading or leave."""
    data = json.dumps(body).encode()
    return (b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (path.encode(), len(data), data))  # fmt: skip


@pytest.fixture
def server_of():
    """server_of(*flags) → the URL of a fable-serve started with them; stopped after the test, and
    its log holds no traceback."""
    started = []

    def start(*flags: str) -> str:
        process, url = start_server(*flags)
        started.append(process)
        return url

    start.processes = started  # type: ignore[attr-defined]
    yield start
    for process in started:
        _, log = stop_server(process)
        assert "Traceback" not in log, log


def test_a_request_whose_headers_stall_is_closed_after_the_idle_timeout(server_of):
    url = server_of("--idle-timeout", "0.5")
    with socket.create_connection(host_port(url), timeout=10) as client:
        client.sendall(b"POST /suggest HTTP/1.1\r\nHost: localhost\r\n")  # and no more
        started = time.monotonic()
        assert client.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 5


def test_a_body_that_stalls_gets_408_in_json(server_of):
    url = server_of("--body-timeout", "0.5")
    with socket.create_connection(host_port(url), timeout=10) as client:
        client.sendall(raw_post("/suggest", {"text": "the old mo"})[:-10])  # its length says 10 bytes more
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
        holder.sendall(raw_post("/generate", {"prompt": "the old mouse", "words": 1_000_000, "stream": True}))
        received = b""
        while b'"word"' not in received:  # streaming: it has the slot
            received += holder.recv(4096)
        started = time.monotonic()
        status, answer, headers = post(url, "/suggest", {"text": "the old mo"})
        assert (status, headers.get("retry-after")) == (503, "1") and "busy: 1 model slots" in answer["error"]
        # a stream is admitted before its prompt is read: 64 KB of unknown words cost nothing here
        status, answer, _ = post(url, "/generate", {"prompt": "zebra " * 10_000, "stream": True})
        assert status == 503 and "busy: 1 model slots" in answer["error"], answer
        assert time.monotonic() - started < 5  # at once: the slot is held for a million words, minutes
    time.sleep(0.5)  # the stream ends with its client, and the slot is free again
    assert post(url, "/suggest", {"text": "the old mo"})[0] == 200


def test_a_client_that_stops_reading_a_stream_is_dropped_and_its_slot_given_back(server_of):
    url = server_of("--slots", "1", "--queue", "0", "--max-words", "1000000", "--write-timeout", "1")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's sends block soon
    client.connect(host_port(url))
    client.sendall(raw_post("/generate", {"prompt": "the old mouse", "words": 1_000_000, "stream": True}))
    try:
        deadline = time.monotonic() + 20
        while post(url, "/suggest", {"text": "the old mo"})[0] == 503:  # the stream holds the only place...
            assert time.monotonic() < deadline, "the slot was never given back"
            time.sleep(0.2)
        assert time.monotonic() < deadline  # ...until it is dropped, within the write timeout and the buffers
    finally:
        client.close()


def test_a_request_past_its_deadline_gets_503_in_json_and_a_stream_a_last_line(server_of):
    url = server_of("--deadline", "0.5", "--max-words", "1000000")
    started = time.monotonic()
    status, answer, headers = post(url, "/generate", {"prompt": "the old mouse", "words": 1_000_000})
    assert (status, headers.get("retry-after")) == (503, "1"), answer
    assert "no answer within the deadline of 0.5 s (--deadline)" in answer["error"]
    assert time.monotonic() - started < 3  # a chunk past the deadline, not a million words
    status, text, _ = post(url, "/generate", {"prompt": "the old mouse", "words": 1_000_000, "stream": True})
    lines = [json.loads(line) for line in text.splitlines()]
    assert status == 200 and "word" in lines[-2] and "deadline of 0.5 s" in lines[-1]["error"], lines[-2:]
    assert post(url, "/suggest", {"text": "the old mo"})[0] == 200  # what fits in the deadline is answered


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads the server's CPU time from /proc")
def test_a_client_that_leaves_before_its_answer_stops_its_work_within_a_chunk(server_of):
    """0.3.0 went on for nobody: a million words, 64 KB scored, each for minutes or seconds."""
    url = server_of("--max-words", "1000000", "--max-score-words", "1000000")
    pid = server_of.processes[-1].pid
    work = [
        ("/generate", {"prompt": "the old mouse", "words": 1_000_000}),
        ("/score", {"text": "the old mouse said " * 3400}),
    ]
    for path, body in work * 2:
        with socket.create_connection(host_port(url), timeout=30) as client:
            client.sendall(raw_post(path, body))
            time.sleep(0.3)  # at work; then the client leaves
    time.sleep(0.2)
    before = cpu_seconds(pid)
    time.sleep(1.0)
    assert cpu_seconds(pid) - before < 0.2  # nothing is made for nobody
    assert post(url, "/suggest", {"text": "the old mo"})[0] == 200


def test_an_unknown_word_error_costs_what_it_shows_not_the_whole_text(server_of):
    """It names 5 words and counts the rest; 0.3.0 re-read the text and ran difflib against the
    whole vocabulary for every one of them: 15 s for 64 KB."""
    url = server_of("--max-score-words", "1000000")  # so that the text is read, not refused for its size
    text = " ".join(f"zq{i}" for i in range(9000))  # 9,000 words the model never saw, 62 KB
    started = time.monotonic()
    status, answer, _ = post(url, "/score", {"text": text})
    assert status == 400 and "unknown words 'zq0'; 'zq1'; 'zq2'; 'zq3'; 'zq4' and 8995 more" in answer["error"]
    assert time.monotonic() - started < 3  # 0.1 s here; 15 s on 0.3.0


def test_allow_any_host_answers_every_host(server_of):
    url = server_of("--allow-any-host")
    connection = http.client.HTTPConnection(*host_port(url), timeout=30)
    connection.request("GET", "/health", headers={"Host": "fable.example.org"})
    assert connection.getresponse().status == 200


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
        config.errorlog = logging.getLogger("hypercorn.test")  # what fable-serve's log would show
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


def get(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=30) as response:
        return json.loads(response.read())


def test_info_is_read_from_the_model_once_not_per_request(app_server, monkeypatch):
    """0.3.0 serialized the whole vocabulary on the event loop for every GET /info."""
    model = fable.load()
    reads = []
    card = type(model).info
    monkeypatch.setattr(type(model), "info", property(lambda self: reads.append(1) or card.fget(self)))
    url = app_server(model)
    assert [len(get(url, "/info")["vocabulary"]) for _ in range(3)] == [112] * 3
    assert len(reads) == 1


def test_an_unexpected_error_is_one_line_in_the_log_and_a_json_500(app_server, monkeypatch, caplog):
    """0.3.0 answered, then raised the error again for hypercorn to log with its traceback."""
    model = fable.load()

    def broken(*_):
        raise RuntimeError("the disk\nis on fire")

    monkeypatch.setattr(model, "suggest", broken)
    url = app_server(model)
    caplog.set_level(logging.WARNING)  # what the log of fable-serve shows
    status, answer, _ = post(url, "/suggest", {"text": "the old mo"})
    assert (status, answer) == (500, {"error": "unexpected RuntimeError"})
    assert [record.getMessage() for record in caplog.records] == [
        "fable-serve: POST /suggest: unexpected RuntimeError: the disk is on fire"
    ]
    assert "Traceback" not in caplog.text and "\n" not in caplog.records[0].getMessage()
    monkeypatch.setenv("FABLE_DEBUG", "1")  # then the traceback is logged, for whoever asked for it
    assert post(url, "/suggest", {"text": "the old mo"})[0] == 500
    assert "Traceback" in caplog.text and 'raise RuntimeError("the disk' in caplog.text
