"""A replica's stop runs every close step, none for longer than its bound."""

import asyncio
import contextlib
import logging

import pytest

from service.assembly import on_stop


async def test_a_close_step_that_never_finishes_is_left_after_its_bound_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed: list[str] = []

    async def hangs() -> None:
        await asyncio.Event().wait()  # never set: a close that never returns

    async def closes() -> None:
        closed.append("the Redis client")

    async with contextlib.AsyncExitStack() as stack:
        on_stop(stack, closes, "the Redis client")
        on_stop(stack, hangs, "the telemetry flush", bound_s=0.05)
    # the steps after the hung one (registered before it) still ran
    assert closed == ["the Redis client"]
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == ["shutdown: the telemetry flush did not finish in 0.05 s; going on without it"]
