"""Virtual time for the examples in the docs: patch and unpatch the two ways loops are made.

While installed, every asyncio loop made by :func:`asyncio.new_event_loop` (so by
:func:`asyncio.run` and :func:`anyio.run` on asyncio) is a ``looptime`` loop, and
:func:`trio.run` uses ``MockClock(autojump_threshold=0)`` unless given a clock. Both clocks
start at 0 and jump to the next timer as soon as every task waits.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import functools
from typing import TYPE_CHECKING, Any

import looptime
import trio
import trio.testing

if TYPE_CHECKING:
    from collections.abc import Callable

_saved: dict[str, Any] = {}


def _virtual_loop(new_event_loop: Callable[[], asyncio.AbstractEventLoop]) -> asyncio.AbstractEventLoop:
    return looptime.patch_event_loop(new_event_loop())


def _trio_run(run: Callable[..., object], *args: object, **kwargs: object) -> object:
    kwargs.setdefault("clock", trio.testing.MockClock(autojump_threshold=0))
    return run(*args, **kwargs)


def install() -> None:
    """Put both clocks on virtual time (idempotent)."""
    if _saved:
        return
    _saved["new_event_loop"] = asyncio.events.new_event_loop
    _saved["trio.run"] = trio.run
    virtual = functools.partial(_virtual_loop, _saved["new_event_loop"])
    asyncio.events.new_event_loop = virtual
    asyncio.new_event_loop = virtual
    trio.run = functools.partial(_trio_run, _saved["trio.run"])


def uninstall() -> None:
    """Undo :func:`install`."""
    if not _saved:
        return
    asyncio.events.new_event_loop = _saved["new_event_loop"]
    asyncio.new_event_loop = _saved["new_event_loop"]
    trio.run = _saved["trio.run"]
    _saved.clear()
