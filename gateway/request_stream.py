"""One engine request as the handlers see it: admitted, iterated, closed.

`admit` separates admission from waiting: the engine raises its admission errors (bad token ids, context
length, a full waiting queue) synchronously at the first step of `generate`, so running that step in a task
and yielding once tells us whether the request was accepted, before any response header is sent. Closing
the stream (always, in a finally) aborts the request in the engine if it has not finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.http_errors import from_engine_error
from gateway.metrics import RequestTracker
from jax_engine.errors import EngineError, QueueFull, RequestValidationError
from jax_engine.outputs import RequestOutput
from jax_engine.sampling_params import SamplingParams


class RequestStream:
    def __init__(self, outputs: AsyncIterator[RequestOutput], first: asyncio.Task, tracker: RequestTracker,
                 n: int, prompt_param: str):
        self._outputs = outputs
        self._prompt_param = prompt_param
        self._first: asyncio.Task | None = first
        self._tracker = tracker
        self.n = n

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> RequestOutput:
        try:
            if self._first is not None:
                first, self._first = self._first, None
                out = await first
            else:
                out = await self._outputs.__anext__()
        except (EngineError, RequestValidationError, QueueFull) as e:
            raise from_engine_error(e, self._prompt_param) from e
        self._tracker.observe(out)
        return out

    async def aclose(self) -> None:
        first, self._first = self._first, None
        if first is not None and not first.done():
            first.cancel()
        if first is not None:
            await asyncio.gather(first, return_exceptions=True)
        await self._outputs.aclose()
        self._tracker.close(aborted=self._tracker.num_finished < self.n)


async def admit(engine, request_id: str, prompt_token_ids: list[int], params: SamplingParams, priority: int,
                tracker: RequestTracker, prompt_param: str) -> RequestStream:
    """Hand the request to the engine; raises OpenAIError if the engine refuses it."""
    outputs = engine.generate(request_id, prompt_token_ids, params, priority)
    first = asyncio.ensure_future(outputs.__anext__())
    try:
        await asyncio.sleep(0)  # the task runs generate up to its first wait, or to its refusal
    except BaseException:
        await RequestStream(outputs, first, tracker, params.n, prompt_param).aclose()
        raise
    if first.done() and first.exception() is not None:
        refusal = first.exception()
        await outputs.aclose()
        raise from_engine_error(refusal, prompt_param) from refusal
    return RequestStream(outputs, first, tracker, params.n, prompt_param)


async def merged(streams: list[RequestStream]) -> AsyncIterator[tuple[int, RequestOutput]]:
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
