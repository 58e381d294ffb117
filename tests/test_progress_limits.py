"""``progress=``: ``first_item`` and ``idle`` bound waits that only items counted as progress
end (semantic 5), on both backends, on virtual time.

The sources here yield chunks shaped as an OpenAI-compatible server streams them (the dict
form of ``ChatCompletionChunk``), so the real predicate ``progress.openai_chunk`` decides.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import anyio
import pytest

from stream_deadline import StreamTimeoutError, with_deadline
from stream_deadline.progress import openai_chunk
from support import STALL, Record

pytestmark = pytest.mark.anyio

now = anyio.current_time

ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
"""The role-only chunk every OpenAI-compatible stream opens with: not progress."""
EMPTY = {"choices": [{"index": 0, "delta": {}}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}


def token(text: str = "tok") -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


def reasoning(text: str = "hmm") -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"reasoning_content": text}}]}


def tool_call() -> dict[str, Any]:
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{"}}
    return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}


async def chunks(
    script: Sequence[tuple[float, dict[str, Any]]], record: Record
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield each chunk of ``script`` after its delay (``STALL``: never)."""
    record.started_at = now()
    try:
        for delay, chunk in script:
            record.pulls += 1
            await (anyio.sleep_forever() if delay == STALL else anyio.sleep(delay))
            yield chunk
    finally:
        record.closed_at.append(now())


async def drain(stream: AsyncGenerator[Any, Any], pause: float = 0) -> list[float]:
    """Pull every item; return the times they arrived."""
    times = []
    async for _ in stream:
        times.append(now())
        if pause:
            await anyio.sleep(pause)
    return times


async def test_the_role_chunk_does_not_satisfy_first_item() -> None:
    """The role chunk at 0.1 s, then a queue delay, the first token at 60 s: with
    ``progress=openai_chunk``, ``first_item=10`` cuts at 10 s exactly (one item delivered,
    the wait 10 s long); without it, the role chunk satisfies ``first_item`` and the stream
    runs to the token."""
    start = now()
    record = Record()
    stream = with_deadline(
        chunks([(0.1, ROLE), (59.9, token())], record), 600, first_item=10, progress=openai_chunk
    )
    with pytest.raises(StreamTimeoutError) as info:
        await drain(stream)
    error = info.value
    assert (error.limit, error.elapsed, error.items, error.waited) == ("first_item", 10, 1, 10)
    assert error.waited_for == "a first item that openai_chunk counts"
    assert str(error) == (
        "stream timed out: the first-item limit of 10 s (first_item) passed: waited 10.000 s for a first"
        " item that openai_chunk counts, 10.000 s after the first pull, with 1 item delivered"
    )
    assert record.closed_at == [start + 10]

    plain = with_deadline(chunks([(0.1, ROLE), (59.9, token())], Record()), 600, first_item=10)
    assert await drain(plain) == [start + 10.1, start + 70]


@pytest.mark.parametrize("first", [reasoning, tool_call], ids=["reasoning", "tool-call"])
async def test_reasoning_and_tool_calls_are_progress(first: Any) -> None:
    """A reasoning model's ``reasoning_content`` at 5 s, and a tool-call-only answer's
    ``tool_calls``, end the first wait: ``first_item=8`` does not fire though ``content``
    comes only at 12 s (or never)."""
    start = now()
    script = [(0, ROLE), (5, first()), (3, first()), (4, token()), (0, USAGE)]
    stream = with_deadline(chunks(script, Record()), 600, first_item=8, idle=6, progress=openai_chunk)
    assert await drain(stream) == [start, start + 5, start + 8, start + 12, start + 12]
    outcome = stream.outcome
    assert outcome is not None
    assert (outcome.ending, outcome.items, outcome.progress_items) == ("exhausted", 5, 3)
    assert (outcome.time_to_first_item, outcome.time_to_first_progress) == (0, 5)


async def test_items_that_are_not_progress_do_not_end_an_idle_wait() -> None:
    """After a token at 1 s, empty chunks every second (a server that sends deltas with
    nothing in them) do not end the idle wait: ``idle=3`` cuts at 4 s, with 4 items
    delivered; the same stream without ``progress`` never stalls."""
    start = now()
    record = Record()
    script = [(1, token()), (1, EMPTY), (1, EMPTY), (1, EMPTY), (1, EMPTY), (1, token())]
    stream = with_deadline(chunks(script, record), 600, idle=3, progress=openai_chunk)
    with pytest.raises(StreamTimeoutError) as info:
        await drain(stream)
    error = info.value
    assert (error.limit, error.elapsed, error.items, error.waited) == ("idle", 4, 3, 3)
    assert error.waited_for == "an item that openai_chunk counts"
    assert record.closed_at == [start + 4]

    plain = with_deadline(chunks(script, Record()), 600, idle=3)
    assert len(await drain(plain)) == 6


async def test_time_the_consumer_holds_an_item_that_is_not_progress_counts_toward_the_wait() -> None:
    """The role chunk arrives at once; the consumer then spends 5 s before its next pull.
    The first wait went on during that time: with ``first_item=3`` the next pull raises at
    once (5 s), without pulling the source again (check first), and closes it."""
    start = now()
    record = Record()
    stream = with_deadline(
        chunks([(0, ROLE), (1, token())], record), 600, first_item=3, progress=openai_chunk
    )
    with pytest.raises(StreamTimeoutError) as info:
        await drain(stream, pause=5)
    assert (info.value.limit, info.value.elapsed, info.value.items, info.value.waited) == (
        "first_item",
        5,
        1,
        5,
    )
    assert (record.pulls, record.closed_at) == (1, [start + 5])


async def test_time_the_consumer_holds_a_progress_item_does_not_count() -> None:
    """Once a progress item has ended a wait, the consumer's time before the next pull is
    not part of any wait (semantic 5, as without ``progress``): tokens 1 s apart, the
    consumer spending 5 s on each, ``idle=2``: no timeout."""
    start = now()
    script = [(1, token()), (1, token()), (1, token())]
    stream = with_deadline(chunks(script, Record()), 600, idle=2, progress=openai_chunk)
    assert await drain(stream, pause=5) == [start + 1, start + 7, start + 13]


async def test_a_wait_that_goes_on_is_cut_at_its_bound_while_a_later_pull_waits() -> None:
    """The role chunk at 1 s, the consumer holds it 1 s, the next pull stalls: with
    ``first_item=4`` the stall is cut at 4 s (the first wait started at 0), not 4 s after
    the second pull."""
    start = now()
    record = Record()
    stream = with_deadline(
        chunks([(1, ROLE), (STALL, token())], record), 600, first_item=4, progress=openai_chunk
    )
    with pytest.raises(StreamTimeoutError) as info:
        await drain(stream, pause=1)
    assert (info.value.limit, info.value.elapsed, info.value.waited) == ("first_item", 4, 4)
    assert record.closed_at == [start + 4]


async def test_the_deadline_is_named_when_a_wait_ends_at_it() -> None:
    """A wait whose bound is the deadline's instant reports the deadline (semantic 4)."""
    stream = with_deadline(
        chunks([(0, ROLE), (STALL, token())], Record()), 4, first_item=4, progress=openai_chunk
    )
    with pytest.raises(StreamTimeoutError) as info:
        await drain(stream)
    assert (info.value.limit, info.value.elapsed, info.value.waited) == ("deadline", 4, None)


async def test_progress_is_asked_once_per_delivered_item_in_order() -> None:
    """The predicate sees every delivered item once, in order, and never the item of a pull
    that was cut."""
    seen: list[int] = []

    def counts(item: int) -> bool:
        seen.append(item)
        return item % 2 == 1

    async def source() -> AsyncGenerator[int, None]:
        for i in range(5):
            await anyio.sleep(1)
            yield i
        await anyio.sleep(10)
        yield 99  # pragma: no cover (cut)

    with pytest.raises(StreamTimeoutError):
        await drain(with_deadline(source(), 600, idle=3, progress=counts))
    assert seen == [0, 1, 2, 3, 4]


async def test_an_exception_in_progress_ends_the_stream_after_closing_the_source() -> None:
    """``progress`` raising ends the stream with that exception, after closing the source;
    items before it were delivered."""
    start = now()
    record = Record()
    boom = ValueError("bad chunk")

    def counts(item: dict[str, Any]) -> bool:
        if item is USAGE:
            raise boom
        return openai_chunk(item)

    got: list[float] = []
    stream = with_deadline(chunks([(1, token()), (1, USAGE), (1, token())], record), 60, progress=counts)
    with pytest.raises(ValueError, match="bad chunk") as info:
        async for _ in stream:
            got.append(now())
    assert info.value is boom
    assert (got, record.closed_at) == ([start + 1], [start + 2])
    assert stream.outcome is not None
    assert stream.outcome.ending == "error"


async def test_progress_without_limits_only_counts() -> None:
    """With no limit at all, ``progress`` still counts for the outcome and changes nothing else."""
    script = [(1, ROLE), (1, token()), (1, USAGE)]
    stream = with_deadline(chunks(script, Record()), None, progress=openai_chunk)
    start = now()
    assert await drain(stream) == [start + 1, start + 2, start + 3]
    outcome = stream.outcome
    assert outcome is not None
    assert (outcome.items, outcome.progress_items, outcome.time_to_first_progress) == (3, 1, 2)
