"""AsyncEngine: the engine core on its own thread, an asyncio face for callers (the EngineClient).

The engine thread never awaits and the event loop never blocks on device work: commands cross into the
thread through a queue, outputs come back with call_soon_threadsafe into each request's asyncio queue.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from jax_engine.config import EngineConfig
from jax_engine.engine_client import EngineLimits, EngineStats
from jax_engine.errors import EngineDead, EngineError, EngineShutdown, QueueFull, RequestField, RequestValidationError
from jax_engine.llm_engine import LLMEngine
from jax_engine.outputs import RequestOutput
from jax_engine.pooling_params import PoolingParams
from jax_engine.sampling_params import SamplingParams
from jax_engine.structured_output.params import StructuredOutputParams
from jax_engine.tokenizer import Tokenizer
from jax_engine.validation import check_structured_output

logger = logging.getLogger(__name__)


@dataclass
class _Add:
    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams | PoolingParams
    arrival_ns: int


@dataclass
class _Abort:
    request_id: str


@dataclass
class _AbortAll:
    reason: str


_STOP = object()


class AsyncRequestHandle:
    """An admitted request's outputs, as they come; iteration ends once all n samples have finished."""

    def __init__(self, engine: AsyncEngine, request_id: str, n: int, arrival_ns: int):
        self.request_id = request_id
        self.n = n
        self.arrival_ns = arrival_ns
        self.outputs: asyncio.Queue[RequestOutput | BaseException] = asyncio.Queue()
        self._engine = engine
        self._remaining = n
        self._closed = False

    @property
    def finished(self) -> bool:
        return self._remaining == 0

    def __aiter__(self) -> AsyncRequestHandle:
        return self

    async def __anext__(self) -> RequestOutput:
        if self._remaining == 0:
            raise StopAsyncIteration
        out = await self.outputs.get()
        if isinstance(out, BaseException):
            raise out
        if out.finished:
            self._remaining -= 1
        return out

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine._release(self.request_id, abort=self._remaining > 0)


class AsyncEngine:
    def __init__(self, core: LLMEngine, max_waiting: int | None = None):
        self.core = core
        self.max_waiting = max_waiting
        self.error: BaseException | None = None
        self._commands: queue.Queue = queue.Queue()
        self._handles: dict[str, AsyncRequestHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending_adds = 0
        self._stats = core.stats_snapshot()
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._started = False
        self._stopped = False

    @classmethod
    def from_config(cls, config: EngineConfig, max_waiting: int | None = None) -> AsyncEngine:
        return cls(LLMEngine.from_config(config), max_waiting)

    @property
    def tokenizer(self) -> Tokenizer | None:
        return self.core.tokenizer

    @property
    def limits(self) -> EngineLimits:
        return self.core.limits

    @property
    def task(self) -> str:
        return self.core.task

    @property
    def generation_defaults(self) -> Mapping[str, float | int]:
        return self.core.generation_defaults

    def stats(self) -> EngineStats:
        return self._stats

    @property
    def num_unfinished(self) -> int:
        """Requests admitted and not yet closed by their callers."""
        return len(self._handles)

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stopped = True
        self._commands.put(_STOP)
        if self._started:
            self._thread.join(timeout)

    # ---- caller side (event loop) --------------------------------------------------------------
    def add_request(self, request_id: str, prompt_token_ids: list[int],
                    params: SamplingParams | PoolingParams) -> AsyncRequestHandle:
        """Admit the request or raise why not: this is the one place a request is validated."""
        if self.error is not None:
            raise EngineDead(f"the engine has failed: {self.error}")
        if self._stopped:
            raise EngineShutdown("the engine is shutting down")
        if request_id in self._handles:
            raise RequestValidationError(f"duplicate request id {request_id!r}", RequestField.REQUEST_ID)
        self.core.validate(prompt_token_ids, params)
        self._check_queue_room(params.n)
        self._loop = asyncio.get_running_loop()
        self.start()
        arrival_ns = time.monotonic_ns()
        handle = AsyncRequestHandle(self, request_id, params.n, arrival_ns)
        self._handles[request_id] = handle
        self._pending_adds += params.n
        self._commands.put(_Add(request_id, list(prompt_token_ids), params, arrival_ns))
        return handle

    async def generate(self, request_id: str, prompt_token_ids: list[int],
                       params: SamplingParams | PoolingParams) -> AsyncIterator[RequestOutput]:
        handle = self.add_request(request_id, prompt_token_ids, params)
        try:
            async for out in handle:
                yield out
        finally:
            await handle.aclose()

    def _check_queue_room(self, num_seqs: int) -> None:
        """Every sample waits as its own sequence. A request larger than the whole bound still gets in when
        nothing waits, so it is delayed, never starved."""
        waiting = self.core.num_waiting + self._pending_adds
        if self.max_waiting is not None and waiting and waiting + num_seqs > self.max_waiting:
            raise QueueFull(f"{waiting} sequences are already waiting (bound {self.max_waiting})")

    def abort(self, request_id: str) -> None:
        self._commands.put(_Abort(request_id))

    def abort_all(self, reason: str = "the server is shutting down") -> None:
        """Abort every request (each caller gets EngineShutdown) and refuse new ones: the end of a drain."""
        self._stopped = True
        self._commands.put(_AbortAll(reason))

    def compile_structured_output(self, constraint: StructuredOutputParams) -> None:
        check_structured_output(constraint, self.core.structured_output)

    def _release(self, request_id: str, abort: bool) -> None:
        self._handles.pop(request_id, None)
        if abort:
            self.abort(request_id)

    # ---- engine thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                if not self._drain_commands(block=not self.core.has_unfinished_requests()):
                    return
                outputs = self.core.step() if self.core.has_unfinished_requests() else []
                self._stats = self.core.stats_snapshot()  # before the outputs: a caller never sees it lag them
                self._deliver(outputs)
        except BaseException as e:  # the engine itself broke: every caller hears it, nobody hangs
            logger.exception("engine thread died")
            self.error = e
            self._broadcast(EngineDead(f"engine failure: {type(e).__name__}: {e}"))
        finally:
            self.core.close()

    def _drain_commands(self, block: bool) -> bool:
        while True:
            try:
                cmd = self._commands.get(block=block, timeout=None)
            except queue.Empty:
                return True
            block = False
            if cmd is _STOP:
                self._broadcast(EngineShutdown("the engine is shutting down"))
                return False
            if isinstance(cmd, _Add):
                self._add(cmd)
            elif isinstance(cmd, _Abort):
                self.core.abort_request(cmd.request_id)
            elif isinstance(cmd, _AbortAll):
                self.core.abort_all()
                self._broadcast(EngineShutdown(cmd.reason))

    def _add(self, cmd: _Add) -> None:
        try:
            if cmd.request_id in self._handles:  # not closed while the command was queued
                self.core.admit(cmd.request_id, cmd.prompt_token_ids, cmd.params, cmd.arrival_ns)
        except Exception as e:
            self._call_in_loop(self._dispatch_error, cmd.request_id, e)
        finally:
            self._call_in_loop(self._added, cmd.params.n)

    def _added(self, num_seqs: int) -> None:
        self._pending_adds -= num_seqs

    def _deliver(self, outputs: list[RequestOutput]) -> None:
        if outputs:
            self._call_in_loop(self._dispatch, outputs)

    def _dispatch(self, outputs: list[RequestOutput]) -> None:
        for out in outputs:
            handle = self._handles.get(out.request_id)
            if handle is not None:
                handle.outputs.put_nowait(EngineError(out.error) if out.error else out)

    def _dispatch_error(self, request_id: str, error: BaseException) -> None:
        handle = self._handles.get(request_id)
        if handle is not None:
            handle.outputs.put_nowait(error)

    def _broadcast(self, error: BaseException) -> None:
        self._call_in_loop(self._dispatch_to_all, error)

    def _dispatch_to_all(self, error: BaseException) -> None:
        for handle in self._handles.values():
            handle.outputs.put_nowait(error)

    def _call_in_loop(self, fn: Callable, *args) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)
