"""Per-item cost: a source that never blocks, drained through each approach.

The source is an async generator of integers that never awaits anything, so what is measured
is the machinery around each ``__anext__``. Every limit is 60 s and never fires. The approaches
take turns within each round; a ratio compares two drains of the same round.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from typing import TypeAlias

import aiostream
import anyio
import trio
import trio_util
from aiter_timeouts import with_timeout
from common import LONG, OURS, Row, check_on_chunk, drain, measure, numbers, pass_through

from stream_deadline import with_deadline

Wrap: TypeAlias = Callable[[AsyncIterator[int]], AsyncIterator[int]]


def scope_per_pull(scope: Callable[[], AbstractContextManager[object]]) -> Wrap:
    """A wrapper that enters ``scope()`` around every pull: the only way a task-bound timeout
    such as ``anyio.fail_after`` can bound pulls made by different tasks."""

    async def wrap(src: AsyncIterator[int]) -> AsyncIterator[int]:
        while True:
            with scope():
                try:
                    item = await anext(src)
                except StopAsyncIteration:
                    return
            yield item

    return wrap


async def asyncio_timeout_per_pull(src: AsyncIterator[int]) -> AsyncIterator[int]:
    """``asyncio.timeout`` around every pull (an async context manager, unlike the others)."""
    while True:
        async with asyncio.timeout(LONG):
            try:
                item = await anext(src)
            except StopAsyncIteration:
                return
        yield item


async def wait_for_per_chunk(src: AsyncIterator[int]) -> AsyncIterator[int]:
    """langchain-openai's ``stream_chunk_timeout``: ``asyncio.wait_for`` on each ``__anext__``."""
    try:
        while True:
            try:
                item = await asyncio.wait_for(anext(src), LONG)
            except StopAsyncIteration:
                return
            yield item
    finally:
        await src.aclose()  # type: ignore[attr-defined]


async def aiostream_timeout(src: AsyncIterator[int]) -> AsyncIterator[int]:
    """The ``stream.timeout`` of aiostream (plus this generator, ~50 ns, to open its context)."""
    async with aiostream.stream.timeout(src, LONG).stream() as streamer:
        async for item in streamer:
            yield item


COMMON = {  # the reference first
    "pass-through generator": pass_through,
    "bare async generator": lambda s: s,
    "check-on-chunk (the blog's fix)": lambda s: check_on_chunk(s, LONG),
    "anyio.fail_after per pull": scope_per_pull(lambda: anyio.fail_after(LONG)),
}
APPROACHES = {
    "asyncio": {
        **COMMON,
        "asyncio.timeout per pull": asyncio_timeout_per_pull,
        "wait_for per chunk (langchain-openai)": wait_for_per_chunk,
        "aiostream stream.timeout": aiostream_timeout,
        "aiter-timeouts with_timeout": lambda s: with_timeout(s, LONG, LONG),
        **OURS,
        "with_deadline: deadline, progress": lambda s: with_deadline(s, LONG, progress=bool),
        "with_deadline: no limit": lambda s: with_deadline(s, None),
    },
    "trio": {
        **COMMON,
        "trio.fail_after per pull": scope_per_pull(lambda: trio.fail_after(LONG)),
        "trio.CancelScope per pull": scope_per_pull(trio.CancelScope),
        "trio-util iter_fail_after": lambda s: trio_util.iter_fail_after(LONG, s),
        **OURS,
        "with_deadline: deadline, progress": lambda s: with_deadline(s, LONG, progress=bool),
        "with_deadline: no limit": lambda s: with_deadline(s, None),
    },
}


def per_item(backend: str, items: int, rounds: int) -> list[Row]:
    """Every approach on ``backend``: ns per item, and its ratio to the pass-through generator."""
    wraps = APPROACHES["trio" if backend == "trio" else "asyncio"]
    drains = {name: lambda n, wrap=wrap: drain(wrap(numbers(n))) for name, wrap in wraps.items()}
    return measure(backend, drains, items, rounds)
