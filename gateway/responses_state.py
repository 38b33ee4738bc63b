"""What the Responses API keeps between requests: the store, and the background responses (running, or kept
with their events for streams that replay them, as long as the store keeps the response)."""

from __future__ import annotations

import asyncio

from compat import OpenAIError
from compat import errors as openai_errors
from gateway.response_run import BackgroundResponse, ResponseRun
from gateway.response_store import ResponseStore, StoredResponse


class ResponsesState:
    def __init__(self, store: ResponseStore | None):
        self.store = store  # None: --no-responses-store
        self.background: dict[str, BackgroundResponse] = {}

    def history(self, previous_response_id: str | None) -> list[dict]:
        """The items a response continuing `previous_response_id` follows on from."""
        if previous_response_id is None:
            return []
        entry = self.store.get(previous_response_id) if self.store is not None else None
        if entry is None:
            raise OpenAIError(404, f"Previous response with id '{previous_response_id}' not found.",
                              param="previous_response_id", code="previous_response_not_found")
        if not entry.done:
            raise openai_errors.invalid_value(
                "previous_response_id", f"Previous response with id '{previous_response_id}' is still in progress.")
        return entry.conversation

    def find(self, response_id: str) -> StoredResponse:
        entry = self.store.get(response_id) if self.store is not None else None
        if entry is None:
            raise _not_found(response_id)
        return entry

    def delete(self, response_id: str) -> None:
        """Forgets a stored response, cancelling it if it runs in the background; 404 as in find()."""
        if self.store is None or self.store.get(response_id) is None:
            raise _not_found(response_id)
        self.store.delete(response_id)

    def start_background(self, run: ResponseRun) -> BackgroundResponse:
        response_id = run.response["id"]
        job = BackgroundResponse(run)
        self.background[response_id] = job

        def evicted() -> None:
            job.cancel()
            self.background.pop(response_id, None)

        run.entry.on_evict = evicted
        return job

    async def shutdown(self) -> None:
        """Background responses end with the server: cancelled, their engine requests aborted."""
        jobs = list(self.background.values())
        for job in jobs:
            job.cancel()
        await asyncio.gather(*(job.task for job in jobs), return_exceptions=True)


def _not_found(response_id: str) -> OpenAIError:
    return OpenAIError(404, f"Response with id '{response_id}' not found.", code="not_found")
