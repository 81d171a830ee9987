"""How fable-serve spends its model: requests admitted up to the slots and the queue, their work
cut into chunks that take turns at the slots, each request's deadline, and stopping when its
client has gone (the app: fable/server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, TypeVar

import anyio
from starlette.requests import ClientDisconnect, Request

from .server_http import RequestError

T = TypeVar("T")


class Slots:
    """`size` threads for model work, which the admitted requests share a chunk at a time, each
    chunk in turn; at most `size + queue` requests admitted at once (computing, waiting for a turn
    or for a stream's client): past that, 503 at once, so a burst never piles up unseen."""

    def __init__(self, size: int, queue: int, retry_after: int):
        self.size, self.queue, self.retry_after = size, queue, retry_after
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="fable-slot")
        self._free: asyncio.Semaphore | None = None  # made in the server's event loop; hands out turns in order
        self._admitted = 0  # computing or waiting; changed on the event loop's thread only

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[Slots]:
        if self._admitted >= self.size + self.queue:
            raise self.busy(f"{self.size} model slots at work and {self.queue} requests waiting (--slots, --queue)")
        self._admitted += 1
        try:
            yield self
        finally:
            self._admitted -= 1

    def busy(self, why: str) -> RequestError:
        return RequestError(HTTPStatus.SERVICE_UNAVAILABLE, f"busy: {why}; retry in {self.retry_after} s",
                            {"Retry-After": str(self.retry_after)})  # fmt: skip

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)`, one chunk, in a slot's thread once its turn comes. If the caller is
        cancelled (its client left, its deadline passed), the chunk still ends before this returns,
        so what it works on (a decoder) is never used by two threads."""
        self._free = self._free or asyncio.Semaphore(self.size)
        async with self._free:
            future = asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                with anyio.CancelScope(shield=True):  # anyio cancels again at every await until it ends
                    await asyncio.wait({future})
                raise


class Work:
    """One request's model work, a chunk at a time. Before each chunk the request's client must
    still be there (`request`: a request whose answer has not started; Starlette watches a stream's
    client itself) and its deadline must not have passed: a client that left, or a request past its
    deadline, costs at most the chunk under way."""

    def __init__(self, slots: Slots, deadline: float, request: Request | None = None):
        self.slots, self.deadline, self.request = slots, deadline, request
        self.ends = time.monotonic() + deadline

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        if self.request is not None and await self.request.is_disconnected():
            raise ClientDisconnect  # nobody waits for the answer
        try:
            with anyio.fail_after(self.ends - time.monotonic()):
                return await self.slots.run(work, *args)
        except TimeoutError:
            raise self.slots.busy(f"no answer within the deadline of {self.deadline:g} s (--deadline)") from None

    async def finish(self, steps: Generator[None, None, T]) -> T:
        """What `steps` returns, each of its steps (from one yield to the next) a chunk."""
        try:
            while True:
                done, value = await self.run(_step, steps)
                if done:
                    return value
        finally:
            steps.close()  # its decoder goes back to the model's pool


def _step(steps: Generator[None, None, Any]) -> tuple[bool, Any]:
    try:
        next(steps)
    except StopIteration as end:
        return True, end.value
    return False, None
