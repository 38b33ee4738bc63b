"""Stored responses (`store: true`), in memory and bounded: by count, by bytes and by age, least recently used
out first. What `previous_response_id`, GET, input_items, DELETE and cancel read."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

logger = logging.getLogger(__name__)



@dataclass
class StoredResponse:
    response: dict  # the response object; a background response's changes as it runs
    input_items: list[dict]  # its own input, as /input_items lists it
    history: list[dict]  # the items of the responses it continues
    stored_at: float = 0.0
    nbytes: int = 0
    on_evict: Callable[[], None] | None = field(default=None, repr=False)  # stops a background response

    @property
    def conversation(self) -> list[dict]:
        """Every item so far, for a response that continues this one."""
        return [*self.history, *self.input_items, *self.response["output"]]

    @property
    def done(self) -> bool:
        return self.response["status"] not in ("queued", "in_progress")


class ResponseStore:
    def __init__(self, max_entries: int, max_bytes: int, max_age: float, clock: Callable[[], float] = time.monotonic):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.clock = clock
        self.nbytes = 0
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, entry: StoredResponse) -> bool:
        """Store (or re-store, once a background response has finished) an entry; False if it alone is over
        the byte limit. Older entries make room."""
        response_id = entry.response["id"]
        self._remove(response_id)
        entry.nbytes = len(orjson.dumps([entry.response, entry.input_items, entry.history]))
        if entry.nbytes > self.max_bytes:
            logger.warning("response %s (%d bytes) is over the store's limit of %d bytes: not stored",
                           response_id, entry.nbytes, self.max_bytes)
            return False
        entry.stored_at = entry.stored_at or self.clock()
        self._entries[response_id] = entry
        self.nbytes += entry.nbytes
        self._expire()
        while len(self._entries) > self.max_entries or self.nbytes > self.max_bytes:
            self._evict(next(iter(self._entries)))
        return True

    def get(self, response_id: str) -> StoredResponse | None:
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        if self.clock() - entry.stored_at > self.max_age:
            self._evict(response_id)
            return None
        self._entries.move_to_end(response_id)
        return entry

    def delete(self, response_id: str) -> StoredResponse | None:
        entry = self._remove(response_id)
        if entry is not None and entry.on_evict is not None:
            entry.on_evict()
        return entry

    def _expire(self) -> None:
        oldest = self.clock() - self.max_age
        for response_id in [k for k, entry in self._entries.items() if entry.stored_at < oldest]:
            self._evict(response_id)

    def _evict(self, response_id: str) -> None:
        self.delete(response_id)

    def _remove(self, response_id: str) -> StoredResponse | None:
        entry = self._entries.pop(response_id, None)
        if entry is not None:
            self.nbytes -= entry.nbytes
        return entry
