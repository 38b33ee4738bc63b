"""Continuous batching, vLLM v1 style: no prefill/decode phases, just num_computed_tokens
catching up with each request's tokens under a per-step token budget."""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

from jax_engine.block_manager import BlockManager
from jax_engine.request import Request, RequestStatus
from jax_engine.step_budget import StepBudget


@dataclass
class ScheduledRequest:
    request: Request
    num_new_tokens: int

    @property
    def samples(self) -> bool:
        """True when this step reaches the request's last token, so a new token is sampled."""
        return self.request.num_computed_tokens + self.num_new_tokens == self.request.num_tokens


@dataclass
class SchedulerOutput:
    scheduled: list[ScheduledRequest] = field(default_factory=list)
    preempted: list[Request] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(s.num_new_tokens for s in self.scheduled)

    def __bool__(self) -> bool:
        return bool(self.scheduled)


class Scheduler:
    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_num_batched_tokens: int,
                 max_model_len: int, step_budget: StepBudget | None = None):
        self.block_manager = block_manager
        self.step_budget = step_budget
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_model_len = max_model_len
        self.waiting: list[Request] = []  # sorted by order_key
        self.running: list[Request] = []
        self.num_preemptions = 0

    def add_request(self, req: Request) -> None:
        req.status = RequestStatus.WAITING
        bisect.insort(self.waiting, req, key=lambda r: r.order_key)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput()
        budget = self.max_num_batched_tokens
        if self.step_budget is not None:
            num_decodes = sum(r.num_tokens - r.num_computed_tokens == 1 for r in self.running)
            budget = self.step_budget.token_budget(num_decodes)
        for req in list(self.running):
            if budget == 0:
                break
            if req.status is not RequestStatus.RUNNING:
                continue  # preempted earlier in this loop
            num_new = min(req.num_tokens - req.num_computed_tokens, budget)
            if self._allocate_or_preempt(req, num_new, out):
                out.scheduled.append(ScheduledRequest(req, num_new))
                budget -= num_new
        if not out.preempted:
            self._admit_waiting(out, budget)
        return out

    def _allocate_or_preempt(self, req: Request, num_new: int, out: SchedulerOutput) -> bool:
        while not self.block_manager.allocate_slots(req, num_new):
            victim = max(self.running, key=lambda r: r.order_key)
            self.preempt(victim)
            out.preempted.append(victim)
            if any(s.request is victim for s in out.scheduled):
                out.scheduled = [s for s in out.scheduled if s.request is not victim]
            if victim is req:
                return False
        return True

    def _admit_waiting(self, out: SchedulerOutput, budget: int) -> None:
        skipped = []
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            req = self.waiting[0]
            if self._sibling_prefilling(req):
                skipped.append(self.waiting.pop(0))
                continue
            computed = self.block_manager.get_computed_blocks(req)
            num_cached = len(computed) * self.block_manager.block_size
            num_new = min(req.num_tokens - num_cached, budget)
            if not self.block_manager.allocate_slots(req, num_new, computed):
                break
            self.waiting.pop(0)
            if not req.timing.first_scheduled_ns:
                req.num_cached_tokens = num_cached
                req.timing.first_scheduled_ns = time.monotonic_ns()
            req.num_computed_tokens = num_cached
            req.status = RequestStatus.RUNNING
            self.running.append(req)
            out.scheduled.append(ScheduledRequest(req, num_new))
            budget -= num_new
        for req in skipped:
            bisect.insort(self.waiting, req, key=lambda r: r.order_key)

    def _sibling_prefilling(self, req: Request) -> bool:
        """Hold back the other samples of a request until its prompt blocks are cached, to share them."""
        if req.parent_id is None or not self.block_manager.enable_prefix_caching:
            return False
        shared = req.num_prompt_tokens // self.block_manager.block_size * self.block_manager.block_size
        return any(r.parent_id == req.parent_id and r.num_computed_tokens < shared for r in self.running)

    def preempt(self, req: Request) -> None:
        """Preemption by recompute: drop the request's KV and requeue it."""
        self.block_manager.free(req)
        self.running.remove(req)
        req.num_computed_tokens = 0
        self.num_preemptions += 1
        self.add_request(req)

    def finish(self, req: Request) -> None:
        """Release everything the request holds, wherever it is."""
        if req.status is RequestStatus.RUNNING:
            self.running.remove(req)
        elif req.status is RequestStatus.WAITING and req in self.waiting:
            self.waiting.remove(req)
        self.block_manager.free(req)
        req.status = RequestStatus.FINISHED

    def update(self, out: SchedulerOutput) -> None:
        """Advance num_computed_tokens for what the step computed and cache newly full blocks."""
        for s in out.scheduled:
            s.request.num_computed_tokens += s.num_new_tokens
            self.block_manager.cache_full_blocks(s.request, s.request.num_computed_tokens)
