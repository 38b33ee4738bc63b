"""Prefill chunks sized so running streams keep moving.

While requests are decoding, a step's token budget is the largest token bucket whose predicted time stays
under `max_decode_slowdown` x the time of a decode-only step of the running batch, and never less than
1/MIN_BUDGET_FRACTION of max_num_batched_tokens, so a long prompt always makes headway; with nothing decoding
(or the slowdown set to 0) it is max_num_batched_tokens. Step times are learned from the steps themselves: an
exponential moving average per token bucket; a bucket not seen yet is predicted by a line (fixed cost + cost
per token) through the buckets seen, so a larger chunk gets tried, measured and kept only if it fits.
"""

from __future__ import annotations

import bisect

import numpy as np

EMA_WEIGHT = 0.2
MIN_BUDGET_FRACTION = 8


class StepBudget:
    def __init__(self, token_buckets: list[int], max_num_batched_tokens: int, max_decode_slowdown: float):
        self.buckets = token_buckets
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_decode_slowdown = max_decode_slowdown
        self.seconds: dict[int, float] = {}  # token bucket -> moving average of measured step seconds

    def bucket(self, num_tokens: int) -> int:
        return self.buckets[min(bisect.bisect_left(self.buckets, num_tokens), len(self.buckets) - 1)]

    def record(self, num_tokens: int, seconds: float) -> None:
        b = self.bucket(num_tokens)
        old = self.seconds.get(b)
        self.seconds[b] = seconds if old is None else (1 - EMA_WEIGHT) * old + EMA_WEIGHT * seconds

    def predict(self, bucket: int) -> float | None:
        if bucket in self.seconds:
            return self.seconds[bucket]
        below = [t for b, t in self.seconds.items() if b < bucket]
        if not below:
            return None
        if len(self.seconds) == 1:
            ((seen, t),) = self.seconds.items()
            return t * bucket / seen
        slope, intercept = np.polyfit(list(self.seconds), list(self.seconds.values()), 1)
        return max(float(intercept + max(slope, 0.0) * bucket), max(below))

    def token_budget(self, num_decodes: int) -> int:
        """Tokens the next step may carry when `num_decodes` running requests each need one."""
        if num_decodes == 0 or self.max_decode_slowdown <= 0:
            return self.max_num_batched_tokens
        decode_time = self.predict(self.bucket(num_decodes))
        if decode_time is None:
            return self.max_num_batched_tokens
        target = decode_time * self.max_decode_slowdown
        fitting = [b for b in self.buckets if b > num_decodes and (self.predict(b) or 0.0) <= target]
        floor = self.bucket(max(num_decodes + 1, self.max_num_batched_tokens // MIN_BUDGET_FRACTION))
        return min(max([floor, *fitting]), self.max_num_batched_tokens)
