"""fable-serve under load, as a real process on 127.0.0.1: 2,000 clients that send half a request,
a burst past its slots and queue, a client that stops reading; the server keeps answering, refuses
at once, and is back to its threads and memory once the load is gone."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason='fable-serve needs the serve extra: pip install "fable[serve]"')
pytest.importorskip("hypercorn", reason='fable-serve needs the serve extra: pip install "fable[serve]"')
resource = pytest.importorskip("resource", reason="raises the limit of open files (POSIX)")

from .helpers import start_server, stop_server, wait_until

HALF_OPEN = 2000  # connections that send half a request and wait
CLIENTS = 8  # normal clients meanwhile, each on one kept-alive connection
SLOTS, QUEUE = 2, 8
BURST = 100  # concurrent /generate requests, past the slots and the queue
SUGGEST = json.dumps({"text": "the old mo", "k": 3})
WRITE_TIMEOUT = 2  # s
HELD = 60  # s: the idle and body timeouts, longer than the half-sent requests are held
# Words of a stream whose client stops reading: more than every buffer between the server and the
# client holds (the server's kernel and asyncio buffers, the client's window), about 4,000 lines
# here; a stream that fits in them ends without ever waiting for its client.
LONG_STREAM = 20_000


@pytest.fixture(scope="module")
def server():
    """A server with 2 slots and a queue of 8; idle and body timeouts long enough to outlast the load."""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the server's threads and memory from /proc")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * HALF_OPEN + 500  # both ends of every connection live on this machine
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} open files, and the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))  # the server inherits it
    process, url = start_server("--slots", str(SLOTS), "--queue", str(QUEUE), "--idle-timeout", str(HELD),
                                "--body-timeout", str(HELD), "--write-timeout", str(WRITE_TIMEOUT),
                                "--max-words", str(LONG_STREAM))  # fmt: skip
    yield process, url
    _, log = stop_server(process)
    assert "Traceback" not in log, log
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def threads_and_rss_mb(pid: int) -> tuple[int, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


def slowest_suggest(url: str, each: int = 10) -> float:
    """CLIENTS clients, each sending `each` /suggest on one kept-alive connection: the slowest answer, in s."""

    def client(_: int) -> float:
        connection = http.client.HTTPConnection(*address(url), timeout=30)
        slowest = 0.0
        for _ in range(each):
            started = time.monotonic()
            connection.request("POST", "/suggest", body=SUGGEST, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["suggestions"][0]["word"] == "mouse"
            slowest = max(slowest, time.monotonic() - started)
        connection.close()
        return slowest

    with ThreadPoolExecutor(CLIENTS) as pool:
        return max(pool.map(client, range(CLIENTS)))


def half_open(url: str, half: bytes) -> list[socket.socket]:
    """HALF_OPEN connections that each sent `half` of a request and then wait."""
    sockets = []
    for _ in range(HALF_OPEN):
        sock = socket.create_connection(address(url), timeout=30)
        sock.sendall(half)
        sockets.append(sock)
    return sockets


def settled(pid: int, threads: int, timeout: float = 20.0) -> tuple[int, float]:
    """The server's threads and memory once its threads are back to `threads` (or the timeout)."""
    deadline = time.monotonic() + timeout
    while threads_and_rss_mb(pid)[0] != threads and time.monotonic() < deadline:
        time.sleep(0.2)
    return threads_and_rss_mb(pid)


def burst(url: str) -> list[tuple[int, float]]:
    """BURST /generate requests released at once: each one's status and seconds to its answer."""
    gate = threading.Barrier(BURST)

    def one(_: int) -> tuple[int, float]:
        connection = http.client.HTTPConnection(*address(url), timeout=60)
        gate.wait()
        started = time.monotonic()
        connection.request("POST", "/generate", body=json.dumps({"prompt": "the old mouse", "words": 400}),
                           headers={"Content-Type": "application/json"})  # fmt: skip
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started

    with ThreadPoolExecutor(BURST) as pool:
        return list(pool.map(one, range(BURST)))


def load_round(url: str, pid: int, threads: int) -> list[tuple[int, float]]:
    """2,000 half-sent requests, then 2,000 half-sent bodies, each with 8 normal clients answered
    meanwhile, then a burst of /generate past the slots; the burst's answers."""
    for half in (b"POST /suggest HTTP/1.1\r\nHost: localhost\r\n",  # half the headers, then half a body
                 b"POST /suggest HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"text\": \"the"):  # fmt: skip
        waiting = half_open(url, half)
        try:
            # Answered while the 2,000 still wait, not once their timeouts free the server (about
            # 0.3 s here, 2.2 s on a busy CI machine; how fast is bench/'s business, not a test's).
            assert slowest_suggest(url) < HELD / 4
            assert threads_and_rss_mb(pid)[0] == threads  # no thread per connection
        finally:
            for sock in waiting:
                sock.close()
    return burst(url)


def test_the_server_serves_through_half_sent_requests_and_a_burst_and_gives_everything_back(server):
    process, url = server
    slowest_suggest(url)  # warm: every slot's thread made
    threads, rss = threads_and_rss_mb(process.pid)

    answers = load_round(url, process.pid, threads)
    refused = [seconds for status, seconds in answers if status == 503]
    served = [seconds for status, seconds in answers if status == 200]
    assert {status for status, _ in answers} == {200, 503}, answers
    # at once: every refusal comes before the first served answer, which waits for 400 words (here
    # 0.1 s against 0.5 s); a server that refused only once a place came free would answer later
    assert len(refused) >= BURST - SLOTS - QUEUE - 2 and max(refused) < min(served), (sorted(refused)[-5:], served)

    after_threads, after_rss = settled(process.pid, threads)
    assert after_threads == threads
    # Memory: CPython and malloc keep what 4,000 connections freed, for the next ones (about 55 MB
    # here); a second round must not add to it, or something of the first was not given back.
    assert after_rss - rss < 100, (rss, after_rss)
    load_round(url, process.pid, threads)
    again_threads, again_rss = settled(process.pid, threads)
    assert again_threads == threads and again_rss - after_rss < 10, (rss, after_rss, again_rss)


def test_a_client_that_stops_reading_a_long_stream_is_dropped_within_the_write_timeout(server):
    """Each stream outgrows the buffers, so the server's sends wait for a client that reads nothing
    until the write timeout drops it (1,000 words fit in the buffers: that stream ends whatever the
    timeout). Its client then finds the stream cut short, and the server serves as before."""
    process, url = server
    body = json.dumps({"prompt": "the old mouse", "words": LONG_STREAM, "stream": True}).encode()
    stalled = []
    for _ in range(SLOTS):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the buffers fill sooner
        sock.connect(address(url))
        sock.sendall(b"POST /generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        stalled.append(sock)
    dropped_before = dropped(process)
    try:
        # the buffers fill within seconds (4,000 words at a word's pace, slower on a busy machine),
        # then the write timeout runs: a few seconds in all, and never with no write timeout
        wait_until(lambda: dropped(process) - dropped_before == SLOTS, timeout=30)
        for sock in stalled:  # what the client finds once it reads again: a stream cut short
            sock.settimeout(10)
            received = b""
            while piece := sock.recv(1 << 20):
                received += piece
            assert b'"done"' not in received and received.count(b'"word"') < LONG_STREAM
    finally:
        for sock in stalled:
            sock.close()
    assert slowest_suggest(url, each=3) < HELD / 4  # and the server answers as before


def dropped(process) -> int:
    """Streams the server has dropped for a client that read nothing, as its log says."""
    return sum("dropped a stream whose client read nothing" in line for line in list(process.logged))
