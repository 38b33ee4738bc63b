"""Per-request parameters of a pooling (embedding) request (vLLM's PoolingParams)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PoolingParams:
    dimensions: int | None = None  # Matryoshka: keep the first `dimensions` values (before normalizing)
    priority: int = 0  # lower is scheduled first (and preempted last)

    @property
    def n(self) -> int:
        """One sequence per input: a pooling request has no samples."""
        return 1
