"""Waiting on an async iterator without going silent: clients time out streams that send nothing for a while
(Claude Code gives up after 5 minutes), and a long prompt's prefill on a CPU can take longer than that."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import TypeVar

T = TypeVar("T")


async def with_keepalive(source: AsyncGenerator[T, None], interval: float) -> AsyncGenerator[T | None, None]:
    """The items of `source`, and None each time `interval` seconds pass without one. The wait for the next
    item is never cancelled by the timer, only when this iterator is closed (which closes `source` too)."""
    try:
        while True:
            step = asyncio.ensure_future(source.__anext__())
            try:
                while not (await asyncio.wait({step}, timeout=interval))[0]:
                    yield None
            finally:
                if not step.done():
                    step.cancel()
                    await asyncio.gather(step, return_exceptions=True)
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        await source.aclose()
