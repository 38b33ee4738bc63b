"""What the process asks of the OS: enough file descriptors, and a quiet log when they run out anyway."""

from __future__ import annotations

import asyncio
import logging
import resource
import time

logger = logging.getLogger("gateway")

RESERVED_FDS = 128  # model files, the compilation cache, logs, threads' pipes
LOOP_ERROR_LOG_INTERVAL = 10.0


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            logger.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, e)
    return soft


def connection_cap(requested: int, nofile: int) -> int:
    """The connection cap that fits the open-file limit (one descriptor per connection)."""
    fitting = max(1, nofile - RESERVED_FDS)
    if requested > fitting:
        logger.warning("--max-connections %d exceeds what %d open files allow; using %d", requested, nofile,
                       fitting)
    return min(requested, fitting)


class RateLimitedLoopErrors:
    """The event loop's exception handler, one line per kind of error per interval.

    Out of descriptors, asyncio reports every failed accept() (up to the backlog, each tick): unthrottled
    that is hundreds of thousands of records a minute.
    """

    def __init__(self, interval: float = LOOP_ERROR_LOG_INTERVAL, clock=time.monotonic):
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        key = context.get("message", "")
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        exc = context.get("exception")
        logger.error("event loop: %s%s%s", key, f": {exc!r}" if exc is not None else "",
                     f" ({suppressed} more like it in the last {self.interval:g} s)" if suppressed else "")
