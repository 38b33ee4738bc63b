"""One response of the Responses API being generated: the event batches of one chat turn, the store updated
when it ends; and background responses, which run in a task the request does not own and keep their events
for streams that follow them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator

from compat import OpenAIError
from compat import errors as openai_errors
from compat.responses import ResponseStream
from compat.responses.objects import usage
from gateway.chat_turn import ChatTurn
from gateway.response_store import ResponseStore, StoredResponse

logger = logging.getLogger(__name__)


class ResponseRun:
    def __init__(self, turn: ChatTurn, events: ResponseStream, entry: StoredResponse, store: ResponseStore | None):
        self.turn = turn
        self.events = events
        self.entry = entry  # what the store keeps of it
        self.store = store  # None: not stored
        self.error: OpenAIError | None = None

    @property
    def response(self) -> dict:
        return self.events.response

    def usage(self) -> dict:
        turn = self.turn
        return usage(turn.num_prompt_tokens, turn.num_output_tokens, turn.num_cached_tokens)

    async def batches(self) -> AsyncGenerator[list[dict], None]:
        """Every event, from response.created to the terminal one. A failure of the engine ends the stream with
        an error event and response.failed. The engine request is closed on every way out (a client gone,
        a cancel), and the response is stored once it has ended."""
        try:
            yield self.events.start()
            try:
                async for deltas in self.turn.deltas():
                    yield self.events.add(deltas)
                yield self.events.finish(self.usage(), int(time.time()), self.turn.finish_reason == "length")
            except OpenAIError as e:
                self.error = e
                yield self.events.fail(e, self.usage())
            except Exception:
                logger.exception("response %s failed", self.response["id"])
                self.error = openai_errors.internal_error()
                yield self.events.fail(self.error, self.usage())
        finally:
            await self.turn.aclose()
            if self.store is not None and self.events.done:
                self.store.put(self.entry)

    async def run(self) -> None:
        async for _ in self.batches():
            pass


class BackgroundResponse:
    """A response generated in its own task: polled with GET, followed by streams, cancelled on request."""

    def __init__(self, run: ResponseRun):
        self.run = run
        self.events: list[dict] = []
        self._changed = asyncio.Event()
        self.task = asyncio.ensure_future(self._generate())

    @property
    def done(self) -> bool:
        return self.task.done()

    async def _generate(self) -> None:
        events = self.run.events
        try:
            async for batch in self.run.batches():
                self._publish(batch)
        except asyncio.CancelledError:
            self._publish(events.cancel())
            if self.run.store is not None:
                self.run.store.put(self.run.entry)
        finally:
            self._changed.set()

    def _publish(self, batch: list[dict]) -> None:
        if batch:
            self.events.extend(batch)
            self._changed.set()
            self._changed = asyncio.Event()

    async def follow(self, after: int = -1) -> AsyncGenerator[list[dict], None]:
        """The events with a sequence number above `after`, as they come, until the response ends."""
        sent = after + 1
        while True:
            changed = self._changed
            if sent < len(self.events):
                batch, sent = self.events[sent:], len(self.events)
                yield batch
                continue
            if self.done:
                return
            await changed.wait()

    def cancel(self) -> None:
        self.task.cancel()

    async def wait_cancelled(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.task)
