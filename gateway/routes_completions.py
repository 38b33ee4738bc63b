"""POST /v1/completions."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from compat import (
    CompletionChoiceData,
    CompletionRequest,
    check_sequences_per_request,
    completion_chunk,
    completion_response,
    completion_usage_chunk,
    parse_completion_request,
)
from gateway.body import read_json
from gateway.request_stream import RequestStream, merged, wire_finish_reason
from gateway.request_summary import RequestSummary
from gateway.sampling import to_sampling_params
from gateway.serving_model import ServingModel
from gateway.sse import stream_events
from gateway.state import REQUEST_ID, SERVER_CONFIG, SUMMARY, serving_model
from jax_engine import RequestOutput, SamplingParams

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    token_ids: list[int]
    text: str  # what `echo` repeats


async def create_completion(request: web.Request) -> web.StreamResponse:
    model = serving_model(request)
    body = await read_json(request, model.workers)
    completion = parse_completion_request(body)
    model.check_model(completion.model)
    check_sequences_per_request(len(completion.prompts), completion.n,
                                request.app[SERVER_CONFIG].max_sequences_per_request)
    if completion.ignored_fields:
        logger.debug("request %s: ignoring unknown fields %s", request[REQUEST_ID], completion.ignored_fields)
    prompts = await model.workers.run(_prompts, model, completion)
    streams = await model.admit_all(completion, [(p.token_ids, _params(model, completion, p)) for p in prompts])
    call = CompletionCall(model, completion, prompts)
    try:
        if completion.stream:
            return await stream_events(request, call.events(streams))
        return await call.respond(streams)
    finally:
        for stream in streams:
            await stream.aclose()
        request[SUMMARY] = call.summary


def _prompts(model: ServingModel, completion: CompletionRequest) -> list[Prompt]:
    """Token ids of every prompt, and the text `echo` repeats (worker thread: tokenizing can be slow)."""
    prompts = []
    for i, prompt in enumerate(completion.prompts):
        if isinstance(prompt, str):
            prompts.append(Prompt(model.encode(prompt, param=completion.param_for("prompt", i)), prompt))
        else:
            echo = model.decode(prompt, skip_special_tokens=False) if completion.echo else ""
            prompts.append(Prompt(prompt, echo))
    return prompts


def _params(model: ServingModel, completion: CompletionRequest, prompt: Prompt) -> SamplingParams:
    params = to_sampling_params(completion, model.defaults, len(prompt.token_ids))
    if completion.echo_only:  # the engine generates at least one token; it is dropped
        params.max_tokens = 1
    return params


@dataclass
class _Choice:
    text: list[str] = field(default_factory=list)
    logprobs: list = field(default_factory=list)
    finish_reason: str | None = None
    text_sent: int = 0  # streaming: length of the text sent so far (logprobs text_offset)
    started: bool = False


class CompletionCall:
    def __init__(self, model: ServingModel, completion: CompletionRequest, prompts: list[Prompt]):
        self.model = model
        self.completion = completion
        self.prompts = prompts
        self.echo_only = completion.echo_only
        self.n = completion.n
        self.response_id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.summary = RequestSummary(count_completion=not self.echo_only)
        self.choices = [_Choice() for _ in range(len(prompts) * self.n)]
        self.want_logprobs = completion.sampling.logprobs is not None

    def _advance(self, position: int, out: RequestOutput) -> tuple[int, str, list | None]:
        """Record an output; returns its choice index, the new text and the new logprob positions."""
        self.summary.add(position, out)
        index = position * self.n + out.index
        choice = self.choices[index]
        text = ""
        logprobs: list | None = [] if self.want_logprobs else None
        if not choice.started:
            choice.started = True
            text, logprobs = self._echo(position, out)
        if not self.echo_only:
            text += out.new_text
            if logprobs is not None:
                logprobs += self.model.logprobs.completion(out.new_logprobs or ())
        choice.finish_reason = wire_finish_reason(out) or choice.finish_reason
        return index, text, logprobs

    def _echo(self, position: int, out: RequestOutput) -> tuple[str, list | None]:
        if not self.completion.echo:
            return "", [] if self.want_logprobs else None
        prompt = self.prompts[position]
        if not self.want_logprobs:
            return prompt.text, None
        return prompt.text, self.model.logprobs.prompt(prompt.token_ids, out.prompt_logprobs)

    async def respond(self, streams: list[RequestStream]) -> web.Response:
        async with aclosing(merged(streams)) as outputs:
            async for position, out in outputs:
                index, text, logprobs = self._advance(position, out)
                self.choices[index].text.append(text)
                self.choices[index].logprobs.extend(logprobs or ())
        data = [CompletionChoiceData(i, "".join(c.text), c.finish_reason or "stop",
                                     c.logprobs if self.want_logprobs else None)
                for i, c in enumerate(self.choices)]
        body = completion_response(self.response_id, self.model.name, self.created, data, self.summary.usage())
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def events(self, streams: list[RequestStream]) -> AsyncGenerator[list[dict], None]:
        """The stream's chunks, one per engine output that brings something to send."""
        async with aclosing(merged(streams)) as outputs:
            async for position, out in outputs:
                chunk = self._chunk(*self._advance(position, out), wire_finish_reason(out))
                if chunk is not None:
                    yield [chunk]
        if self.completion.include_usage:
            yield [completion_usage_chunk(self.response_id, self.model.name, self.created, self.summary.usage())]

    def _chunk(self, index: int, text: str, logprobs: list | None, finish_reason: str | None) -> dict | None:
        if not text and not logprobs and finish_reason is None and self.model.tokenizer is not None:
            return None  # a token that completes no character yet (without a tokenizer, every token is sent)
        choice = self.choices[index]
        data = CompletionChoiceData(index, text, finish_reason, logprobs, text_offset=choice.text_sent)
        choice.text_sent += len(text)
        running = self.summary.usage() if self.completion.continuous_usage_stats else None
        return completion_chunk(self.response_id, self.model.name, self.created, data,
                                usage_null=self.completion.include_usage, usage=running)
