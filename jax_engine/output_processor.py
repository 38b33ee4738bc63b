"""From sampled tokens to RequestOutputs: detokenize, stop strings and stop tokens, grammar advance, finish.

It owns the host-side state of each admitted request that the scheduler does not need, and releases a
request's blocks (through the scheduler) the moment it finishes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from jax_engine.detokenizer import IncrementalDetokenizer
from jax_engine.model_runner import ModelRunnerOutput
from jax_engine.outputs import RequestOutput, TokenLogprobs
from jax_engine.pooler import Pooler
from jax_engine.request import Request
from jax_engine.scheduler import Scheduler, SchedulerOutput
from jax_engine.stop_checker import StopChecker
from jax_engine.tokenizer import Tokenizer

logger = logging.getLogger(__name__)


@dataclass
class RequestState:
    request: Request
    detokenizer: IncrementalDetokenizer | None
    stop_checker: StopChecker
    sent_prompt: bool = False


class OutputProcessor:
    def __init__(self, scheduler: Scheduler, tokenizer: Tokenizer | None, max_model_len: int,
                 pooler: Pooler | None = None):
        self.scheduler = scheduler
        self.pooler = pooler
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.states: dict[str, RequestState] = {}  # by sample (child) id
        self.children: dict[str, list[str]] = {}  # the caller's request id -> its samples' ids

    def add_request(self, request_id: str, samples: list[Request]) -> None:
        self.children[request_id] = [req.request_id for req in samples]
        for req in samples:
            params = req.sampling_params
            detokenizer = (IncrementalDetokenizer(self.tokenizer, req.prompt_token_ids, params.skip_special_tokens)
                           if self.tokenizer is not None and req.pooling_params is None else None)
            stop_checker = StopChecker(params.stop, params.include_stop_str_in_output)
            self.states[req.request_id] = RequestState(req, detokenizer, stop_checker)

    def process(self, out: SchedulerOutput, result: ModelRunnerOutput) -> list[RequestOutput]:
        outputs = []
        for s in out.scheduled:
            req = s.request
            state = self.states.get(req.request_id)
            if state is None:
                continue
            if req.request_id in result.pooled:
                outputs.extend(self._pool(state, *result.pooled[req.request_id]))
                continue
            req.prompt_logprobs.extend(result.prompt_logprobs.get(req.request_id, ()))
            if req.request_id not in result.sampled:
                continue
            token_id, logprobs = result.sampled[req.request_id]
            req.output_token_ids.append(token_id)
            _stamp_token(req)
            outputs.append(self._advance_or_fail(state, token_id, logprobs))
        return outputs

    def _pool(self, state: RequestState, start: int, chunk) -> list[RequestOutput]:
        """A pooling request's chunk is added up; once its whole prompt is computed it finishes with its
        embedding, and its blocks are freed at once (only prefix-cache hashes outlive it)."""
        req = state.request
        assert self.pooler is not None
        self.pooler.add_chunk(req, start, chunk)
        if req.num_computed_tokens < req.num_prompt_tokens:
            return []
        out = self._output(state, [], "", None, "stop")
        out.embedding = self.pooler.embedding(req)
        req.pooled = None
        _stamp_token(req)
        self._finish(state)
        out.timing = req.timing.snapshot()
        return [out]

    def _advance_or_fail(self, state: RequestState, token_id: int, logprobs: TokenLogprobs | None) -> RequestOutput:
        """A failure in this request's detokenizer, grammar or stop strings fails this request, not the engine."""
        try:
            return self._advance(state, token_id, logprobs)
        except Exception as e:
            logger.exception("request %s: processing its output failed", state.request.request_id)
            return self._error(state, f"{type(e).__name__}: {e}")

    def fail(self, out: SchedulerOutput, message: str) -> list[RequestOutput]:
        """The step failed: every request it held ends with an error."""
        outputs = []
        for s in out.scheduled:
            state = self.states.get(s.request.request_id)
            if state is not None:
                outputs.append(self._error(state, message))
        return outputs

    def abort(self, request_id: str) -> list[RequestOutput]:
        outputs = []
        for child_id in self.children.get(request_id, []):
            state = self.states.get(child_id)
            if state is not None:
                self._finish(state)
                outputs.append(self._output(state, [], "", None, "abort"))
        return outputs

    def _advance(self, state: RequestState, token_id: int, logprobs: TokenLogprobs | None) -> RequestOutput:
        req, params = state.request, state.request.sampling_params
        finish, stop_reason = self._check_token_stop(req, token_id)
        hide = finish == "stop" and not params.include_stop_str_in_output
        if req.grammar is not None and finish != "stop":
            if not req.grammar.accept_token(token_id):
                return self._grammar_failure(state, token_id)
            if req.grammar.is_terminated:
                finish, stop_reason = "stop", None
        text = ""
        if state.detokenizer is not None:
            piece = state.detokenizer.step([token_id]) if not hide else ""
            if finish:
                piece += state.detokenizer.flush()
            text, stop_str = state.stop_checker.append(piece)
            if stop_str is not None and finish != "stop":
                finish, stop_reason = "stop", stop_str
            if finish:
                text += state.stop_checker.flush()
        if finish:
            self._finish(state)
        return self._output(state, [token_id], text, [logprobs] if logprobs else None, finish, stop_reason)

    def _check_token_stop(self, req: Request, token_id: int) -> tuple[str | None, int | None]:
        params = req.sampling_params
        if req.num_output_tokens >= params.min_tokens:
            if not params.ignore_eos and token_id in req.eos_token_ids:
                return "stop", None
            if token_id in params.stop_token_ids:
                return "stop", token_id
        if req.num_output_tokens >= req.max_tokens or req.num_tokens >= self.max_model_len:
            return "length", None
        return None, None

    def _grammar_failure(self, state: RequestState, token_id: int) -> RequestOutput:
        """The mask forbids this; reaching here is a bug, so fail the request rather than emit invalid output."""
        grammar = state.request.grammar
        message = f"token {token_id} violates the request's grammar: {grammar.error if grammar else ''}"
        logger.error("request %s: %s", state.request.request_id, message)
        return self._error(state, message)

    def _error(self, state: RequestState, message: str) -> RequestOutput:
        if state.request.request_id in self.states:
            self._finish(state)
        out = self._output(state, [], "", None, "error")
        out.error = message
        return out

    def _finish(self, state: RequestState) -> None:
        req = state.request
        self.scheduler.finish(req)
        req.grammar = None
        req.timing.finished_ns = time.monotonic_ns()
        del self.states[req.request_id]
        parent = req.parent_id or req.request_id
        siblings = self.children.get(parent)
        if siblings is not None and not any(c in self.states for c in siblings):
            del self.children[parent]

    def _output(self, state: RequestState, token_ids: list[int], text: str, logprobs: list[TokenLogprobs] | None,
                finish: str | None, stop_reason: str | int | None = None) -> RequestOutput:
        req = state.request
        out = RequestOutput(
            request_id=req.parent_id or req.request_id, index=req.index, timing=req.timing.snapshot(),
            new_token_ids=list(token_ids), new_text=text, new_logprobs=logprobs, finished=finish is not None,
            finish_reason=finish, stop_reason=stop_reason, num_prompt_tokens=req.num_prompt_tokens,
            num_output_tokens=req.num_output_tokens, num_cached_tokens=req.num_cached_tokens)
        if not state.sent_prompt:
            state.sent_prompt = True
            out.prompt_token_ids = req.prompt_token_ids
            if req.sampling_params.prompt_logprobs is not None:
                out.prompt_logprobs = [None, *req.prompt_logprobs]
        return out


def _stamp_token(req: Request) -> None:
    now = time.monotonic_ns()
    if not req.timing.first_token_ns:
        req.timing.first_token_ns = now
    req.timing.last_token_ns = now
