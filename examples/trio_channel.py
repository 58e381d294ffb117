"""Not an LLM: deadlines on trio, for a TCP line reader and a memory channel.

1. A sensor on ``127.0.0.1`` sends a reading every 0.1 s, then goes silent but keeps the
   connection open. ``with_deadline(lines, 10, idle=0.5)`` notices the stall after 0.5 s
   and closes the reader, which closes the TCP stream: the sensor sees the end of the
   stream. Each reading is pulled in a new task, as a framework might do; the limit
   holds anyway.
2. A producer sends into a memory channel forever. ``with_deadline(receive_channel, 1)``
   ends the iteration after 1 s and closes the channel, so the producer's next ``send``
   fails with ``BrokenResourceError`` and it stops.

    python examples/trio_channel.py
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import trio

from stream_deadline import StreamTimeoutError, with_deadline

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


async def sensor(stream: trio.SocketStream, closed: trio.Event) -> None:
    """Send ten readings, then nothing, until the client closes the connection."""
    for n in range(10):
        await stream.send_all(f"reading {n}: {20 + math.sin(n):.2f} C\n".encode())
        await trio.sleep(0.1)
    while await stream.receive_some():  # silent, but the connection stays open
        pass
    closed.set()


async def lines(stream: trio.SocketStream) -> AsyncIterator[str]:
    """The lines a TCP stream receives; the generator owns the stream and closes it."""
    buffer = b""
    try:
        while data := await stream.receive_some():
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                yield line.decode()
    finally:
        await stream.aclose()


async def pull_in_new_task(stream: AsyncIterator[str]) -> str | None:
    """Pull one item in a task of its own, as a framework that hops tasks would;
    ``None`` at the end."""
    outcome: list[str | StreamTimeoutError | None] = []

    async def pull() -> None:
        try:
            outcome.append(await anext(stream))
        except StopAsyncIteration:
            outcome.append(None)
        except StreamTimeoutError as exc:
            # carried out of the nursery as it is, not in a group
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pull)
    if isinstance(outcome[0], StreamTimeoutError):
        raise outcome[0]
    return outcome[0]


async def tcp_reader() -> None:
    """Part 1: the idle limit cuts a stalled TCP stream and closes the connection."""
    closed = trio.Event()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            trio.serve_tcp,
            functools.partial(sensor, closed=closed),
            0,
            host="127.0.0.1",
        )
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        started = trio.current_time()
        readings = with_deadline(
            lines(await trio.open_tcp_stream("127.0.0.1", port)), 10, idle=0.5
        )
        try:
            while (line := await pull_in_new_task(readings)) is not None:
                print(line)
        except StreamTimeoutError as exc:
            print(
                f"{exc.limit!r} limit after"
                f" {trio.current_time() - started:.2f} s: {exc}"
            )
        with trio.fail_after(2):
            await closed.wait()
        print("sensor: the client closed the connection")
        nursery.cancel_scope.cancel()


async def memory_channel() -> None:
    """Part 2: the total deadline ends a channel and closes it, which stops the
    producer."""
    send_channel, receive_channel = trio.open_memory_channel[int](0)

    async def producer() -> None:
        n = 0
        async with send_channel:
            try:
                while True:
                    await send_channel.send(n)
                    n += 1
                    await trio.sleep(0.05)
            except trio.BrokenResourceError:
                print(
                    "producer: the consumer closed the channel"
                    f" after {n} items; stopping"
                )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        received = [
            n async for n in with_deadline(receive_channel, 1, on_timeout="stop")
        ]
        print(
            f"consumer: {len(received)} items in 1 s,"
            " then stopped quietly (on_timeout='stop')"
        )


async def main() -> None:
    """Run both parts."""
    await tcp_reader()
    await memory_channel()


if __name__ == "__main__":
    trio.run(main)
