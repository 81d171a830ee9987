"""What one fable-serve allows, in a module of its own so that the command can show its defaults
without the `serve` extra installed (the app itself: fable/server.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

MAX_BODY_BYTES = 64 * 1024
ANY_HOST = "*"  # in `allowed_hosts`: answer whatever Host a request names


@dataclass(frozen=True)
class ServerSettings:
    """What one server allows; each is a flag of fable-serve."""

    host: str = "127.0.0.1"  # this machine only: serving others is a choice (--host 0.0.0.0)
    port: int = 8080  # 0: any free port
    max_words: int = 1000  # the most words one /generate may ask for
    # The most tokens (words and marks: each costs a model step, as a generated word does) one /score may read
    max_score_words: int = 2000
    slots: int = field(default_factory=lambda: os.cpu_count() or 1)  # model calls at once
    queue: int = 32  # requests admitted beyond the slots, waiting for a turn; past that, 503 at once
    idle_timeout: float = 10.0  # s a connection may go without a whole request's headers
    body_timeout: float = 10.0  # s a request's body may take to arrive
    write_timeout: float = 10.0  # s a stream's client may read nothing before it is dropped
    deadline: float = 30.0  # s a request's model work may take, its waits for a slot included (503 after)
    retry_after: int = 1  # s, in a 503's Retry-After
    # Host names a request may use besides `host` and localhost's (a web page that another name
    # points here, DNS rebinding, is refused); ANY_HOST: every name
    allowed_hosts: tuple[str, ...] = ()
