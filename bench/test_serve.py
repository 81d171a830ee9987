"""fable-serve's throughput for /suggest: requests per second with 1 and 8 clients at once, each
client on one kept-alive HTTP/1.1 connection, for this checkout's server and, in the same run, the
standard-library server it replaced (built from git, commit BEFORE_HYPERCORN; it answers HTTP/1.0,
so its clients connect anew for every request).
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("hypercorn", reason='fable-serve needs the serve extra: pip install "fable[serve]"')

ROOT = Path(__file__).resolve().parents[1]
BEFORE_HYPERCORN = "42c4e11"  # the last commit whose fable-serve was http.server's
REQUESTS = 400
BODY = json.dumps({"text": "the old mo", "k": 3})


def start(command: list[str], env: dict | None = None) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env)  # fmt: skip
    line = process.stdout.readline()
    assert " on http://" in line, line
    return process, line.split(" on ")[1].split()[0]


def old_server(work: Path) -> list[str]:
    """`python -m fable.cli.serve` of commit BEFORE_HYPERCORN, installed into `work`."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("the old server is built from git history, and this is not a git checkout")
    source = work / "source"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_HYPERCORN], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(work / "site"),
                    str(source)], check=True, capture_output=True)  # fmt: skip
    return [sys.executable, "-m", "fable.cli.serve"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    script = Path(sys.executable).parent / "fable-serve"
    new = start([str(script) if script.exists() else shutil.which("fable-serve")])
    work = tmp_path_factory.mktemp("old-server")
    old = start(old_server(work), env={"PYTHONPATH": str(work / "site"), "PATH": "/usr/bin:/bin"})
    yield {"hypercorn": new[1], "http.server": old[1]}
    for process, _ in (new, old):
        process.terminate()
        process.wait(timeout=30)


def client_round(url: str, requests: int) -> None:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)  # kept alive where the server allows
    for _ in range(requests):
        connection.request("POST", "/suggest", body=BODY, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert json.loads(response.read())["suggestions"][0]["word"] == "mouse"
    connection.close()


@pytest.mark.benchmark(group="fable-serve /suggest")
@pytest.mark.parametrize("clients", [1, 8])
@pytest.mark.parametrize("server", ["hypercorn", "http.server"])
def test_serve_suggest(benchmark, servers, server, clients):
    url = servers[server]
    with ThreadPoolExecutor(max_workers=clients) as pool:

        def round_of_requests() -> None:
            list(pool.map(client_round, [url] * clients, [REQUESTS // clients] * clients))

        benchmark.extra_info["requests"] = REQUESTS
        benchmark.pedantic(round_of_requests, rounds=5, warmup_rounds=1)
