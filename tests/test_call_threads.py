"""A gateway call's hop to a thread and back (core.http.call_threads): its result or its
error, the caller's context variables, the bound on calls at once, and a caller that left."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from core.http import call_threads
from core.http.call_threads import in_call_thread

who = contextvars.ContextVar("who", default="nobody")


def test_the_result_comes_back_from_another_thread():
    def work() -> tuple[int, str]:
        return 42, threading.current_thread().name

    answer, thread = asyncio.run(in_call_thread(work))
    assert answer == 42 and thread.startswith("quorum-call-")


def test_an_error_in_the_call_is_raised_to_the_caller_as_it_was():
    class Refused(Exception):
        pass

    def work() -> None:
        raise Refused("over budget")

    with pytest.raises(Refused, match="over budget"):
        asyncio.run(in_call_thread(work))


def test_the_call_sees_the_caller_s_context_and_its_own_changes_stay_its_own():
    async def caller() -> tuple[str, str]:
        who.set("team-key-7")

        def work() -> str:
            seen = who.get()
            who.set("changed in the thread")
            return seen

        seen = await in_call_thread(work)
        return seen, who.get()

    assert asyncio.run(caller()) == ("team-key-7", "team-key-7")


def test_as_many_calls_as_there_are_threads_run_at_once_and_the_next_waits_its_turn():
    release = threading.Event()
    running = threading.Semaphore(0)

    def blocked() -> str:
        running.release()
        release.wait(10)
        return "done"

    async def callers() -> list[str]:
        tasks = [asyncio.create_task(in_call_thread(blocked)) for _ in range(call_threads.THREADS + 1)]
        for _ in range(call_threads.THREADS):  # every thread took one
            assert await asyncio.to_thread(running.acquire, True, 10)
        assert not await asyncio.to_thread(running.acquire, True, 0.2)  # the last one waits
        release.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(callers()) == ["done"] * (call_threads.THREADS + 1)


def test_a_caller_that_left_does_not_stop_the_thread_serving_the_next():
    started, finish = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        finish.wait(10)
        return "late"

    async def leave() -> None:
        task = asyncio.create_task(in_call_thread(slow))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(leave())  # its loop is closed before the call ends
    finish.set()
    assert asyncio.run(in_call_thread(lambda: "next")) == "next"
