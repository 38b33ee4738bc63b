"""AsyncEngine: the engine core on its own thread, an asyncio face for callers.

The engine thread never awaits and the event loop never blocks on device work: commands
cross into the thread through a queue, outputs come back with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from jax_engine.config import EngineConfig
from jax_engine.errors import EngineError, EngineShutdown, QueueFull
from jax_engine.llm_engine import LLMEngine
from jax_engine.outputs import RequestOutput
from jax_engine.sampling_params import SamplingParams

logger = logging.getLogger(__name__)


@dataclass
class _Add:
    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams
    priority: int


@dataclass
class _Abort:
    request_id: str


@dataclass
class _AbortAll:
    reason: str


_STOP = object()


def build_llm_engine(config: EngineConfig) -> LLMEngine:
    """Load the checkpoint named by config.model (or the embedded default) and start the core."""
    from jax_engine.loader import load_checkpoint

    if config.load_format == "dummy":
        from jax_engine.dummy import dummy_config
        from jax_engine.llm_engine import resolve_dtype
        from jax_engine.models.llama import random_weights

        cfg = dummy_config(config.model or "smollm2-135m")
        weights = random_weights(cfg, resolve_dtype(config.dtype), config.seed)
        return LLMEngine(cfg, weights, None, [], config)
    ckpt = load_checkpoint(config.model)
    logger.info("loaded %s in %.1f s", config.model or "the default model", ckpt.load_seconds)
    engine = LLMEngine(ckpt.config, ckpt.weights, ckpt.tokenizer, ckpt.generation.eos_token_ids, config,
                       checkpoint_quantized=ckpt.quantized)
    engine.generation_defaults = ckpt.generation.sampling
    engine.load_seconds = ckpt.load_seconds
    return engine


class AsyncEngine:
    def __init__(self, core: LLMEngine, max_waiting: int | None = None):
        self.core = core
        self.max_waiting = max_waiting
        self._commands: queue.Queue = queue.Queue()
        self._queues: dict[str, asyncio.Queue] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending_adds = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._started = False
        self._stopped = False

    @classmethod
    def from_config(cls, config: EngineConfig, max_waiting: int | None = None) -> AsyncEngine:
        return cls(build_llm_engine(config), max_waiting)

    @property
    def tokenizer(self):
        return self.core.tokenizer

    @property
    def max_model_len(self) -> int:
        return self.core.max_model_len

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
    async def generate(self, request_id: str, prompt_token_ids: list[int], params: SamplingParams,
                       priority: int = 0) -> AsyncIterator[RequestOutput]:
        """Incremental outputs of every sample of the request until all have finished."""
        if self.error is not None:
            raise EngineError(f"the engine has failed: {self.error}")
        if self._stopped:
            raise EngineShutdown("the engine is shutting down")
        self.core.validate(prompt_token_ids, params)
        self._check_queue_room(params.n)
        if request_id in self._queues:
            raise ValueError(f"duplicate request id {request_id!r}")
        self.start()
        self._loop = asyncio.get_running_loop()
        outputs: asyncio.Queue = asyncio.Queue()
        self._queues[request_id] = outputs
        self._pending_adds += params.n
        self._commands.put(_Add(request_id, list(prompt_token_ids), params, priority))
        remaining = params.n
        try:
            while remaining:
                out = await outputs.get()
                if isinstance(out, BaseException):
                    raise out
                if out.finished:
                    remaining -= 1
                yield out
        finally:
            self._queues.pop(request_id, None)
            if remaining:
                self.abort(request_id)

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

    # ---- engine thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                if not self._drain_commands(block=not self.core.has_unfinished_requests()):
                    return
                if self.core.has_unfinished_requests():
                    self._deliver(self.core.step())
        except BaseException as e:  # the engine itself broke: every caller hears it, nobody hangs
            logger.exception("engine thread died")
            self.error = e
            self._broadcast(EngineError(f"engine failure: {type(e).__name__}: {e}"))

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
                for request_id in list(self.core.children):
                    self.core.abort_request(request_id)
                self._broadcast(EngineShutdown(cmd.reason))

    def _add(self, cmd: _Add) -> None:
        try:
            if cmd.request_id in self._queues:
                self.core.add_request(cmd.request_id, cmd.prompt_token_ids, cmd.params, cmd.priority)
        except Exception as e:
            self._deliver_error(cmd.request_id, e)
        finally:
            self._call_in_loop(self._added, cmd.params.n)

    def _added(self, num_seqs: int) -> None:
        self._pending_adds -= num_seqs

    def _deliver(self, outputs: list[RequestOutput]) -> None:
        if outputs:
            self._call_in_loop(self._dispatch, outputs)

    def _dispatch(self, outputs: list[RequestOutput]) -> None:
        for out in outputs:
            q = self._queues.get(out.request_id)
            if q is not None:
                q.put_nowait(EngineError(out.error) if out.error else out)

    def _deliver_error(self, request_id: str, error: BaseException) -> None:
        self._call_in_loop(lambda: (q := self._queues.get(request_id)) and q.put_nowait(error))

    def _broadcast(self, error: BaseException) -> None:
        self._call_in_loop(lambda: [q.put_nowait(error) for q in self._queues.values()])

    def _call_in_loop(self, fn, *args) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)
