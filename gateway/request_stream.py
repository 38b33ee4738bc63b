"""One admitted engine request as the handlers see it: iterated, observed by the metrics, closed.

Closing the stream (always, in a finally) aborts the request in the engine if it has not finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from gateway.http_errors import from_engine_error
from gateway.metrics import RequestTracker
from jax_engine import EngineError, RequestHandle, RequestOutput


class RequestStream:
    def __init__(self, handle: RequestHandle, tracker: RequestTracker):
        self._handle = handle
        self._tracker = tracker
        self.n = handle.n

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> RequestOutput:
        try:
            out = await self._handle.__anext__()
        except EngineError as e:
            raise from_engine_error(e) from e
        self._tracker.observe(out)
        return out

    async def aclose(self) -> None:
        aborted = not self._handle.finished
        await self._handle.aclose()
        self._tracker.close(aborted)


async def merged(streams: list[RequestStream]) -> AsyncGenerator[tuple[int, RequestOutput], None]:
    """Outputs of several requests as they come, tagged with the position of their stream."""
    if len(streams) == 1:
        async for out in streams[0]:
            yield 0, out
        return
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(position: int, stream: RequestStream) -> None:
        try:
            async for out in stream:
                queue.put_nowait((position, out))
            queue.put_nowait((position, done))
        except Exception as e:
            queue.put_nowait((position, e))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(streams)
        while remaining:
            position, item = await queue.get()
            if item is done:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield position, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def wire_finish_reason(out: RequestOutput) -> str | None:
    """OpenAI's finish_reason for an output: "stop" or "length" once the sample is done, else None."""
    if not out.finished:
        return None
    return "length" if out.finish_reason == "length" else "stop"
