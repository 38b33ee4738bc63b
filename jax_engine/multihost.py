"""Several hosts as one engine: jax.distributed, one mesh over every process's devices, process 0 driving.

Process 0 runs the gateway, the scheduler and the block manager. Each device op of a step (the forward, the
sampler, prompt logprobs) needs every process to run the same jitted computation on its own shards, so process 0
first broadcasts the op and its host inputs (padded batch arrays, sampling metadata) to the others with a JAX
collective (multihost_utils.broadcast_one_to_all); the others loop on `follow`, running what they receive, until
process 0 sends the stop. Results come back to process 0 through the same collectives (`fetch`).
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

logger = logging.getLogger(__name__)

MIN_PAYLOAD = 1024  # bytes; payloads are padded to powers of two so the broadcast compiles a few shapes only


def initialize(coordinator_address: str, num_processes: int, process_id: int) -> None:
    """Join the distributed run (before anything touches a device); CPU collectives over gloo."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
    logger.info("process %d of %d; %d devices in all, %d here", jax.process_index(), jax.process_count(),
                jax.device_count(), jax.local_device_count())


def is_multihost_driver() -> bool:
    return jax.process_count() > 1 and jax.process_index() == 0


def fetch(tree) -> Any:
    """Device results as host arrays; across processes a collective every process takes part in."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)  # the global value of each array


class StepBroadcast:
    """Process 0's side: each device op, and at the end the stop, sent to every other process."""

    def send(self, op: str, args: tuple) -> None:
        _broadcast_bytes(pickle.dumps((op, args)))

    def stop(self) -> None:
        _broadcast_bytes(pickle.dumps(None))


def follow(runner) -> None:
    """The other processes' loop: run each device op process 0 sends, until it sends the stop."""
    while (call := pickle.loads(_broadcast_bytes(b""))) is not None:
        op, args = call
        getattr(runner, op)(*args)


def _broadcast_bytes(data: bytes) -> bytes:
    """Process 0's `data` on every process (the others pass anything)."""
    source = jax.process_index() == 0
    size = int(multihost_utils.broadcast_one_to_all(np.int64(len(data))))
    buffer = np.zeros(max(MIN_PAYLOAD, 1 << (size - 1).bit_length()), np.uint8)
    if source:
        buffer[:size] = np.frombuffer(data, np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buffer))[:size].tobytes()
