"""The one model this server serves: its engine client, names, tokenizer, chat template and defaults, and
the worker pool where a request's CPU work (templates, tokenization, grammars) is done off the event loop."""

from __future__ import annotations

import time
import uuid

from compat import ChatRequest, ChatTemplate, EmbeddingRequest, GenerationRequest
from compat import errors as openai_errors
from gateway.http_errors import from_refusal
from gateway.logprobs import LogprobFormatter
from gateway.metrics import Metrics
from gateway.request_stream import RequestStream
from gateway.sampling import ModelDefaults
from gateway.worker_pool import WorkerPool
from jax_engine import EngineClient, EngineError, PoolingParams, QueueFull, RequestValidationError, SamplingParams
from jax_engine.tokenizer import Tokenizer


class ServingModel:
    def __init__(self, engine: EngineClient, names: tuple[str, ...], metrics: Metrics, workers: WorkerPool):
        self.engine = engine
        self.name = names[0]
        self.names = names
        self.metrics = metrics
        self.workers = workers
        self.created = int(time.time())
        self.tokenizer = engine.tokenizer
        self.task = engine.task  # generate or embed: which APIs it answers
        limits = engine.limits
        self.max_model_len = limits.max_model_len
        self.vocab_size = limits.vocab_size
        self.defaults = ModelDefaults.of(engine.generation_defaults, min(limits.max_model_len, limits.kv_cache_tokens))
        self.logprobs = LogprobFormatter(self.tokenizer)
        self.chat_template: ChatTemplate | None = None
        if self.tokenizer is not None:
            special = {"bos_token": self.tokenizer.bos_token or "", "eos_token": self.tokenizer.eos_token or ""}
            self.chat_template = ChatTemplate(self.tokenizer.chat_template, special)

    # ---- requests in (worker threads: slow for big inputs) -------------------------------------
    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested not in self.names:
            raise openai_errors.model_not_found(requested)

    def require_task(self, task: str, api: str) -> None:
        """A 400 for an API the model is not served for (chat on an embedding model, embeddings on a generator)."""
        if self.task != task:
            raise openai_errors.api_not_supported(self.name, api, self.task)

    def require_tokenizer(self, param: str) -> Tokenizer:
        if self.tokenizer is None:
            raise openai_errors.invalid_request(
                "This model was loaded without a tokenizer (dummy weights): send prompts as token ids.", param)
        return self.tokenizer

    def encode(self, text: str, add_special_tokens: bool = True, param: str = "prompt") -> list[int]:
        tokenizer = self.require_tokenizer(param)
        self._check_fits(text, tokenizer, param)
        return tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def _check_fits(self, text: str, tokenizer: Tokenizer, param: str) -> None:
        """Text with more bytes than max_model_len tokens can cover is refused before it is tokenized."""
        max_bytes = self.max_model_len * tokenizer.max_bytes_per_token
        # A character is 1 to 4 bytes: only text of between max_bytes / 4 and max_bytes characters is counted.
        if len(text) > max_bytes or (len(text) * 4 > max_bytes and _utf8_length(text) > max_bytes):
            raise openai_errors.prompt_too_large(self.max_model_len, max_bytes, param)

    def decode(self, token_ids: list[int], skip_special_tokens: bool = True) -> str:
        if self.tokenizer is None:
            return ""
        return self.tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens)

    def chat_prompt_text(self, chat: ChatRequest) -> str:
        self.require_tokenizer("messages")
        assert self.chat_template is not None  # there is one whenever there is a tokenizer
        messages, tools = chat.template_inputs(self.chat_template.source)
        return self.chat_template.render(
            messages, add_generation_prompt=chat.add_generation_prompt,
            continue_final_message=chat.continue_final_message, tools=tools,
            template_kwargs=chat.chat_template_kwargs)

    def chat_prompt_ids(self, chat: ChatRequest) -> list[int]:
        """The rendered template carries its own special tokens (BOS and all): none are added."""
        text = self.chat_prompt_text(chat)
        return self.encode(text, add_special_tokens=False, param="messages")

    def check_token_ids(self, token_ids: list[int], param: str) -> None:
        for i, token_id in enumerate(token_ids):
            if token_id >= self.vocab_size:
                raise openai_errors.invalid_value(
                    f"{param}[{i}]", f"Invalid '{param}[{i}]': token id {token_id} is outside the vocabulary "
                                     f"[0, {self.vocab_size}).")

    # ---- the engine (event loop) ----------------------------------------------------------------
    async def admit(self, request: GenerationRequest | EmbeddingRequest, prompt_token_ids: list[int],
                    params: SamplingParams | PoolingParams, prompt_index: int = 0) -> RequestStream:
        """Hand one prompt to the engine; raises OpenAIError if the engine refuses it."""
        try:
            if isinstance(params, SamplingParams) and params.structured_output is not None:
                await self.workers.run(self.engine.compile_structured_output, params.structured_output)
            handle = self.engine.add_request(uuid.uuid4().hex, prompt_token_ids, params)
        except (RequestValidationError, QueueFull, EngineError) as e:
            raise from_refusal(e, request, prompt_index) from e
        return RequestStream(handle, self.metrics.tracker(handle.arrival_ns))

    async def admit_all(self, request: GenerationRequest | EmbeddingRequest,
                        prompts: list[tuple[list[int], SamplingParams | PoolingParams]]) -> list[RequestStream]:
        """Admit every prompt or none: a refusal closes the ones already admitted."""
        streams: list[RequestStream] = []
        try:
            for i, (ids, params) in enumerate(prompts):
                streams.append(await self.admit(request, ids, params, i))
        except BaseException:
            for stream in streams:
                await stream.aclose()
            raise
        return streams


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
