"""The threads a gateway call runs in, and its hop there and back from the event loop.

A call blocks (the database, the upstream), so the event loop hands it to a thread. anyio's
`to_thread` and asyncio's `run_in_executor` both wrap the hop in bookkeeping of their own (a
task group and capacity limiter; a concurrent.futures Future chained to an asyncio one):
measured on the 2 cores that run the gateway, about 200 µs of CPU per round trip either way,
against about 120 µs for what is here. A call's work is put on a queue with the caller's
context variables (as anyio copies them) and an asyncio future; one of `THREADS` threads
runs it and sets the future from the event loop's thread.

The threads are started on the first call, and are daemon threads: the servers finish the
calls in flight before they exit (graceful shutdown), and a process that dies mid-call
loses nothing a client received (an answer leaves only after its rows are committed).
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

# As many as anyio lends Starlette by default: a call holds its thread while it waits on the
# upstream, so this bounds the calls in progress at once in one process.
THREADS = 40

_Work = tuple[Callable[[], Any], contextvars.Context, asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
_queue: queue.SimpleQueue[_Work] = queue.SimpleQueue()
_started = threading.Lock()
_threads: list[threading.Thread] = []


async def in_call_thread(work: Callable[[], Any]) -> Any:
    """`work()` run in one of the call threads with this task's context variables; its result,
    or its exception raised here."""
    if not _threads:
        _start()
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    _queue.put((work, contextvars.copy_context(), loop, future))
    return await future


def _start() -> None:
    with _started:
        while len(_threads) < THREADS:
            thread = threading.Thread(target=_serve, name=f"quorum-call-{len(_threads)}", daemon=True)
            thread.start()
            _threads.append(thread)


def _serve() -> None:
    while True:
        work, context, loop, future = _queue.get()
        try:
            result = context.run(work)
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting task
            _hand_back(loop, _fail, future, error)
        else:
            _hand_back(loop, _succeed, future, result)
        del work, context, loop, future  # nothing of this call kept while the thread waits


def _hand_back(loop: asyncio.AbstractEventLoop, settle: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(settle, *args)
    except RuntimeError:  # the loop closed meanwhile: nobody awaits this call any more
        pass


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.cancelled():  # the awaiting task was cancelled meanwhile
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(error)
