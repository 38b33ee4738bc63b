"""The served model, built in a thread while the HTTP server already answers (/health says 503 until then)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from compat import errors as openai_errors
from gateway.metrics import Metrics
from gateway.serving_model import ServingModel
from gateway.worker_pool import WorkerPool
from jax_engine import EngineClient, EngineStats
from jax_engine.config import ConfigError
from jax_engine.loader import LoadError

logger = logging.getLogger(__name__)


EngineOrFactory = EngineClient | Callable[[], EngineClient]


class ModelSlot:
    def __init__(self, names: tuple[str, ...], metrics: Metrics, workers: WorkerPool):
        self.names = names
        self.metrics = metrics
        self.workers = workers
        self.model: ServingModel | None = None
        self.error: BaseException | None = None
        self.owns_engine = False
        self.settled = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.model is not None and self.model.engine.error is None

    def stats(self) -> EngineStats | None:
        """The engine's latest stats snapshot once loaded, for metrics."""
        return None if self.model is None else self.model.engine.stats()

    def get(self) -> ServingModel:
        if self.model is None:
            raise openai_errors.service_unavailable("The model is still loading; retry shortly.")
        return self.model

    async def load(self, engine_or_factory: EngineOrFactory) -> None:
        """Take a built engine, or build one with a zero-argument factory (owned, shut down at exit)."""
        try:
            if callable(engine_or_factory):
                self.owns_engine = True
                engine = await _in_daemon_thread(engine_or_factory)
            else:
                engine = engine_or_factory
            engine.start()
            self.model = ServingModel(engine, self.names, self.metrics, self.workers)
            logger.info("model %s ready (max_model_len %d)", self.model.name, self.model.max_model_len)
        except (LoadError, ConfigError, ValueError) as e:  # the checkpoint or the flags: one line says it
            logger.error("cannot load the model: %s", e)
            self.error = e
        except Exception as e:
            logger.exception("loading the model failed")
            self.error = e
        finally:
            self.settled.set()

    def abort_all(self) -> None:
        if self.model is not None:
            self.model.engine.abort_all()

    async def shutdown(self) -> None:
        self.workers.shutdown()
        if self.model is not None and self.owns_engine:
            await asyncio.to_thread(self.model.engine.shutdown)


async def _in_daemon_thread(fn: Callable[[], EngineClient]) -> EngineClient:
    """Like asyncio.to_thread, but a daemon thread: a SIGTERM during a long load need not wait for it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[EngineClient] = loop.create_future()

    def resolve(engine: EngineClient) -> None:
        if not future.done():
            future.set_result(engine)

    def fail(error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    def target() -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            try:
                engine = fn()
            except BaseException as e:
                loop.call_soon_threadsafe(fail, e)
            else:
                loop.call_soon_threadsafe(resolve, engine)

    threading.Thread(target=target, name="engine-loader", daemon=True).start()
    return await future
