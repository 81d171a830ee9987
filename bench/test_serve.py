"""fable-serve's throughput for /suggest: requests per second with 1 and 8 clients at once.

Each round sends REQUESTS requests, spread over the clients, each a new HTTP connection from a
thread of this process to the server's process on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REQUESTS = 200
BODY = json.dumps({"text": "the old mo", "k": 3}).encode()


@pytest.fixture(scope="module")
def server_url():
    script = Path(sys.executable).parent / "fable-serve"
    command = [str(script) if script.exists() else shutil.which("fable-serve"), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    yield line.split(" on ")[1].split()[0]
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


def suggest(url: str) -> None:
    request = urllib.request.Request(url + "/suggest", data=BODY, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["suggestions"][0]["word"] == "mouse"


@pytest.mark.benchmark(group="fable-serve /suggest")
@pytest.mark.parametrize("clients", [1, 8])
def test_serve_suggest(benchmark, server_url, clients):
    with ThreadPoolExecutor(max_workers=clients) as pool:

        def round_of_requests() -> None:
            list(pool.map(suggest, [server_url] * REQUESTS))

        benchmark.extra_info["requests"] = REQUESTS
        benchmark.pedantic(round_of_requests, rounds=5, warmup_rounds=1)
