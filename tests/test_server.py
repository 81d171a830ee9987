"""fable-serve as a client meets it: a real server process on 127.0.0.1, real HTTP requests.
(Its limits under load: test_server_load.py.)"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("starlette", reason='fable-serve needs the serve extra: pip install "fable[serve]"')
pytest.importorskip("hypercorn", reason='fable-serve needs the serve extra: pip install "fable[serve]"')

import fable
from fable import Sampling

from .helpers import GOLDEN, GOLDEN_TOKENS, ROOT, assert_clean_failure, invoke, start_server, stop_server

MAX_WORDS = 50


@pytest.fixture(scope="module")
def server():
    process, url = start_server("--max-words", str(MAX_WORDS), "--allow-host", "fable.lan")
    yield url
    assert_no_traceback(process)


def assert_no_traceback(process) -> None:
    """Stop the server: whatever the tests sent it, its log holds no traceback."""
    _, log = stop_server(process)
    assert "Traceback" not in log, log


JSON = {"Content-Type": "application/json"}


def request(url: str, path: str, body=None, method: str | None = None) -> tuple[int, dict | str, str]:
    """Status, decoded body (JSON when it is JSON) and content type."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    method = method or ("POST" if data is not None else "GET")
    req = urllib.request.Request(url + path, data=data, method=method, headers=JSON)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, kind, raw = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        status, kind, raw = error.code, error.headers["Content-Type"], error.read()
    return status, (json.loads(raw) if kind == "application/json" else raw.decode()), kind


def test_health_info_and_the_page(server):
    assert request(server, "/health")[:2] == (200, {"status": "ok"})
    status, info, _ = request(server, "/info")
    assert status == 200 and info["vocabulary"][:3] == [",", "the", "."] and info["quantization"] == "int8"
    assert info["config"]["window"] == 3 and info["provenance"]["corpus_name"] == "fable.txt"
    status, page, kind = request(server, "/")
    assert status == 200 and kind.startswith("text/html")
    assert "<script>" in page and "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_generate_is_the_librarys_greedy_and_seeded_words(server):
    model = fable.load()
    status, answer, _ = request(server, "/generate", {"prompt": "the old mouse"})
    assert status == 200 and answer["text"] == model.generate("the old mouse") and answer["text"].startswith(GOLDEN)
    body = {"prompt": "the old mouse", "words": 12, "temperature": 1.3, "top_k": 5, "seed": 4}
    assert request(server, "/generate", body)[1]["words"] == list(
        model.stream("the old mouse", 12, Sampling(1.3, 5, seed=4))
    )


def stream_lines(url: str, body: dict) -> list[dict]:
    status, text, kind = request(url, "/generate", body | {"stream": True})
    assert status == 200 and kind == "application/x-ndjson"
    return [json.loads(line) for line in text.splitlines()]


def test_generate_streams_ndjson_a_word_a_line(server):
    lines = stream_lines(server, {"prompt": "the old mouse", "words": 9})
    assert " ".join(line["word"] for line in lines[:-1]) == GOLDEN_TOKENS
    assert "".join(line["text"] for line in lines[:-1]) == GOLDEN  # the pieces add up to the text
    assert [line["index"] for line in lines[:-1]] == list(range(9)) and all(line["ms"] >= 0 for line in lines[:-1])
    assert lines[-1]["done"] is True and lines[-1]["words"] == 9


def test_suggest_and_score(server):
    status, answer, _ = request(server, "/suggest", {"text": "the old mo"})
    assert status == 200 and [s["word"] for s in answer["suggestions"]] == ["mouse"]
    answer = request(server, "/suggest", {"text": "the old mouse ", "k": 2})[1]
    assert answer["suggestions"][0]["word"] == "said" and answer["suggestions"][0]["probability"] > 0.9
    assert len(answer["suggestions"]) == 2
    answer = request(server, "/score", {"text": "long ago , the mice had"})[1]
    assert answer == fable.load().score("long ago , the mice had").as_dict() | {"text": "long ago , the mice had"}


def test_8_concurrent_clients_get_what_sequential_ones_get(server):
    jobs = [{"prompt": p, "words": 20, "temperature": t, "seed": s}
            for p in ("the old mouse", "long ago ,", "said he ,", "who is to") for t, s in ((0.0, None), (1.2, 7))]  # fmt: skip
    sequential = [request(server, "/generate", job)[1]["words"] for job in jobs]
    streamed = [[line["word"] for line in stream_lines(server, job)[:-1]] for job in jobs]
    assert streamed == sequential
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            assert list(pool.map(lambda job: request(server, "/generate", job)[1]["words"], jobs * 2)) == sequential * 2
            assert list(pool.map(lambda job: [w["word"] for w in stream_lines(server, job)[:-1]], jobs)) == sequential


BAD_REQUESTS = {
    "unknown path": ("GET", "/nope", None, 404, "no such path"),
    "wrong method": ("GET", "/generate", None, 405, "GET is not allowed"),
    "malformed JSON": ("POST", "/generate", b'{"prompt": "the old', 400, "not valid JSON"),
    "not an object": ("POST", "/score", b"[1, 2]", 400, "JSON object"),
    "missing prompt": ("POST", "/generate", {"words": 3}, 400, "needs 'prompt'"),
    "prompt of the wrong type": ("POST", "/generate", {"prompt": 3}, 400, "'prompt' must be text"),
    "words of the wrong type": ("POST", "/generate", {"prompt": "the old mouse", "words": "9"}, 400, "'words' must be a whole number"),
    "words as a bool": ("POST", "/generate", {"prompt": "the old mouse", "words": True}, 400, "'words' must be"),
    "too many words": ("POST", "/generate", {"prompt": "the old mouse", "words": MAX_WORDS + 1}, 400, f"from 1 to {MAX_WORDS}"),
    "bad sampling": ("POST", "/generate", {"prompt": "the old mouse", "top_p": 0}, 400, "top_p must be"),
    "stream not a bool": ("POST", "/generate", {"prompt": "the old mouse", "stream": "yes"}, 400, "'stream' must be true or false"),
    "unknown word": ("POST", "/generate", {"prompt": "the old zebra"}, 400, "unknown word 'zebra'"),
    "unknown word, streamed": ("POST", "/generate", {"prompt": "the old zebra", "stream": True}, 400, "'zebra'"),
    "short prompt": ("POST", "/generate", {"prompt": "old mouse"}, 400, "at least 3"),
    "suggest k zero": ("POST", "/suggest", {"text": "the old", "k": 0}, 400, "k must be"),
    "score too short": ("POST", "/score", {"text": "the old mouse"}, 400, "at least 4"),
    "body over 64 KB": ("POST", "/generate", {"prompt": "the old mouse " * 6000}, 413, "more than 65,536"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_a_bad_request_gets_its_status_and_a_json_error(server, case):
    method, path, body, status, phrase = BAD_REQUESTS[case]
    got, answer, kind = request(server, path, body, method)
    assert (got, kind) == (status, "application/json"), answer
    assert phrase in answer["error"] and "Traceback" not in answer["error"], answer


def chunked(url: str, path: str, pieces: list[bytes]) -> tuple[int, dict]:
    """POST a body sent in chunks, with no Content-Length (Transfer-Encoding: chunked)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", path, body=iter(pieces), encode_chunked=True, headers=JSON)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_a_chunked_body_is_read_and_held_to_64_kb_as_it_comes(server):
    status, answer = chunked(server, "/suggest", [b'{"text": "the ol', b'd mo"}'])
    assert status == 200 and answer["suggestions"][0]["word"] == "mouse"
    status, answer = chunked(server, "/score", [b'{"text": "' + b"the old mouse " * 2000] * 3)  # 84 KB, no length
    assert status == 413 and "more than 65,536" in answer["error"]


def test_score_reads_at_most_max_score_words(server):
    status, answer, _ = request(server, "/score", {"text": "the old mouse said " * 600})
    assert status == 400 and "2,400 words and marks; /score reads at most 2,000 (--max-score-words)" in answer["error"]


def test_score_counts_each_mark_as_the_model_step_it_costs(server):
    """One "word" of 60,000 commas is 60,000 model steps (about 7 s on 0.3.0, which counted 4 words)."""
    started = time.monotonic()
    status, answer, _ = request(server, "/score", {"text": "the old mouse " + "," * 60_000})
    assert status == 400 and "60,003 words and marks; /score reads at most 2,000" in answer["error"], answer
    assert time.monotonic() - started < 3  # refused on reading, not after scoring
    text = "the old mouse " + ", " * 1000  # more than a chunk: scored in pieces, to the same numbers
    assert request(server, "/score", {"text": text})[1] == fable.load().score(text).as_dict() | {"text": text}


SURROGATE = b'{"%s": "\\ud800 the the old mouse"}'  # JSON can spell half a surrogate pair; UTF-8 cannot carry it


@pytest.mark.parametrize("path, name", [("/suggest", "text"), ("/score", "text"), ("/generate", "prompt")])
def test_text_that_utf8_cannot_carry_is_a_400_that_says_so(server, path, name):
    status, answer, _ = request(server, path, SURROGATE % name.encode())
    assert (
        status == 400 and f"'{name}' cannot be encoded as UTF-8: it holds '\\ud800' at character 0" in answer["error"]
    )


def test_no_answer_names_a_path_on_this_machine(server):
    where = str(fable.load().path.parent)
    status, info, _ = request(server, "/info")
    answers = [json.dumps(info), json.dumps(request(server, "/generate", {"prompt": "the old mouse", "words": 3})[1]),
               request(server, "/generate", {"prompt": "the old mouse", "words": 3, "stream": True})[1]]  # fmt: skip
    assert not [answer[:300] for answer in answers if where in answer or str(ROOT) in answer]
    assert status == 200 and info["file"] == "fable.int8.onnx" and "path" not in info  # its name is enough


def raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, dict]:
    """Send a request as written (its Host among `head`'s lines): the status and the JSON answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as client:
        client.sendall(f"{head}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        answer = b""
        while piece := client.recv(65536):
            answer += piece
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_a_host_the_server_does_not_answer_to_is_refused(server):
    """A page on a name that its site pointed at this machine (DNS rebinding) reads nothing."""
    port = server.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", f"FABLE.lan:{port}"):
        assert raw_request(server, f"GET /health HTTP/1.1\r\nHost: {host}") == (200, {"status": "ok"}), host
    for host in (f"evil.example:{port}", "127.0.0.1.evil.example", ""):
        status, answer = raw_request(server, f"GET /info HTTP/1.1\r\nHost: {host}")
        assert status == 403 and "does not answer to the host" in answer["error"] and "--allow-host" in answer["error"]


def test_a_page_of_another_origin_is_refused_and_the_servers_own_page_answered(server):
    """What a browser says sent the request: the server's own page (or none, as from curl) is
    answered; another site's page gets 403 whatever its method and type."""
    port = server.rsplit(":", 1)[1]
    body = json.dumps({"text": "the old mo"}).encode()
    for own in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):  # a browser's Host and Origin agree
        post = f"POST /suggest HTTP/1.1\r\nHost: {own}\r\nContent-Type: application/json"
        assert raw_request(server, f"{post}\r\nOrigin: http://{own}", body)[0] == 200, own
    post = f"POST /suggest HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/json"
    for origin in ("http://evil.example", f"https://127.0.0.1.evil.example:{port}", "null", "http://localhost:3000"):
        status, answer = raw_request(server, f"{post}\r\nOrigin: {origin}", body)
        assert status == 403 and "does not answer pages from" in answer["error"], (origin, answer)
        assert raw_request(server, f"GET /info HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: {origin}")[0] == 403


def test_a_post_whose_body_is_not_declared_json_is_refused(server):
    """A form or text/plain POST is one another site's page can send without asking (no CORS preflight)."""
    body = json.dumps({"prompt": "the old mouse", "words": 3}).encode()
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        head = "POST /generate HTTP/1.1\r\nHost: localhost" + (f"\r\nContent-Type: {kind}" if kind else "")
        status, answer = raw_request(server, head, body)
        assert status == 415 and "Content-Type: application/json" in answer["error"], (kind, answer)
    head = "POST /generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json; charset=utf-8"
    assert raw_request(server, head, body)[1]["text"] == "said it is"


def test_a_max_words_below_a_requests_default_is_refused_at_start():
    assert_clean_failure(invoke("fable-serve", "--max-words", "10"), 2, "--max-words 10 is below the 32 words")


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads the server's CPU time from /proc")
def test_a_client_that_leaves_mid_stream_stops_its_stream_and_leaves_the_server_serving():
    process, url = start_server("--max-words", "1000000")
    host, port = url.removeprefix("http://").split(":")
    try:
        for _ in range(3):  # a million words would take minutes: each stream must end when its client leaves
            with socket.create_connection((host, int(port)), timeout=30) as client:
                body = json.dumps({"prompt": "the old mouse", "words": 1_000_000, "stream": True}).encode()
                client.sendall(b"POST /generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
                received = b""
                while b'"word"' not in received:
                    received += client.recv(4096)
        assert request(url, "/generate", {"prompt": "the old mouse", "words": 9})[1]["text"] == GOLDEN
        before = cpu_seconds(process.pid)
        time.sleep(1.0)
        assert cpu_seconds(process.pid) - before < 0.3  # no stream is still being made for nobody
        assert request(url, "/health")[0] == 200
    finally:
        assert_no_traceback(process)


def test_ctrl_c_stops_the_server_and_frees_its_port():
    process, url = start_server()
    assert request(url, "/health")[0] == 200
    code, err = stop_server(process)
    assert code == 130 and err.strip().endswith("fable-serve: interrupted"), err
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/health", timeout=5)


def test_a_port_in_use_is_one_clear_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        from .helpers import assert_clean_failure, run_command

        result = run_command("fable-serve", "--port", str(taken.getsockname()[1]))
        assert_clean_failure(result, 2, "cannot listen on 127.0.0.1")
