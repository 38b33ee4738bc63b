"""Prefill chunks sized so running streams keep moving.

While requests are decoding, a step's token budget is the largest token bucket whose predicted time stays
under `max_decode_slowdown` x the time of a decode-only step of the running batch; with nothing decoding
(or the slowdown set to 0) it is max_num_batched_tokens. Step times are learned from the steps themselves:
an exponential moving average per token bucket, a bucket not seen yet predicted from the largest smaller one
seen, scaled linearly with the token count (steps cost at least that much more, so the guess errs short).
"""

from __future__ import annotations

import bisect

EMA_WEIGHT = 0.2


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
        seen = [b for b in self.seconds if b < bucket]
        return self.seconds[max(seen)] * bucket / max(seen) if seen else None

    def token_budget(self, num_decodes: int) -> int:
        """Tokens the next step may carry when `num_decodes` running requests each need one."""
        if num_decodes == 0 or self.max_decode_slowdown <= 0:
            return self.max_num_batched_tokens
        decode_time = self.predict(self.bucket(num_decodes))
        if decode_time is None:
            return self.max_num_batched_tokens
        target = decode_time * self.max_decode_slowdown
        fitting = [b for b in self.buckets if b > num_decodes and (self.predict(b) or 0.0) <= target]
        budget = max(fitting) if fitting else self.bucket(num_decodes + 1)
        return min(budget, self.max_num_batched_tokens)
