"""The one model this server serves: its engine, names, tokenizer, chat template and sampling defaults."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

from compat import ChatRequest, ChatTemplate, resolve_max_tokens
from compat import errors as openai_errors
from gateway.logprobs import LogprobFormatter
from gateway.metrics import Metrics
from gateway.request_stream import RequestStream, admit
from gateway.structured_output import template_inputs
from jax_engine.sampling_params import SamplingParams

# generation_config.json fields that fill in what the client did not send (as vLLM does).
DEFAULTABLE_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


class ServingModel:
    def __init__(self, engine, names: tuple[str, ...], metrics: Metrics):
        self.engine = engine
        self.core = engine.core
        self.name = names[0]
        self.names = names
        self.metrics = metrics
        self.created = int(time.time())
        self.tokenizer = self.core.tokenizer
        self.max_model_len: int = self.core.max_model_len
        self.vocab_size: int = self.core.model_config.vocab_size
        self.sampling_defaults = {k: v for k, v in (getattr(self.core, "generation_defaults", None) or {}).items()
                                  if k in DEFAULTABLE_FIELDS}
        self.logprobs = LogprobFormatter(self.tokenizer)
        self.chat_template = None
        if self.tokenizer is not None:
            special = {"bos_token": self.tokenizer.bos_token or "", "eos_token": self.tokenizer.eos_token or ""}
            self.chat_template = ChatTemplate(self.tokenizer.chat_template, special)

    # ---- requests in ----------------------------------------------------------------------------
    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested not in self.names:
            raise openai_errors.model_not_found(requested)

    def require_tokenizer(self, param: str) -> None:
        if self.tokenizer is None:
            raise openai_errors.invalid_request(
                "This model was loaded without a tokenizer (dummy weights): send prompts as token ids.", param)

    def encode(self, text: str, add_special_tokens: bool = True, param: str = "prompt") -> list[int]:
        self.require_tokenizer(param)
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def decode(self, token_ids: list[int], skip_special_tokens: bool = True) -> str:
        if self.tokenizer is None:
            return ""
        return self.tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens)

    def chat_prompt_text(self, chat: ChatRequest) -> str:
        self.require_tokenizer("messages")
        messages, tools = template_inputs(chat, self.chat_template.source)
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

    def sampling_params(self, sampling: Mapping, body: Mapping, num_prompt_tokens: int,
                        prompt_param: str) -> tuple[SamplingParams, int]:
        """Engine sampling params and priority for one prompt; max_tokens None becomes what the context
        leaves; generation_config defaults fill only the fields the client did not send."""
        fields = dict(sampling)
        priority = fields.pop("priority", 0)
        for key, value in self.sampling_defaults.items():
            if body.get(key) is None:
                fields[key] = value
        fields["max_tokens"] = resolve_max_tokens(num_prompt_tokens, fields["max_tokens"], self.max_model_len,
                                                  prompt_param)
        return SamplingParams(**fields), priority

    # ---- the engine ---------------------------------------------------------------------------
    async def admit(self, prompt_token_ids: list[int], params: SamplingParams, priority: int,
                    prompt_param: str) -> RequestStream:
        if self.engine.error is not None:
            raise openai_errors.service_unavailable("The engine has failed; the server cannot serve requests.")
        request_id = uuid.uuid4().hex
        return await admit(self.engine, request_id, prompt_token_ids, params, priority, self.metrics.tracker(),
                           prompt_param)

    async def admit_all(self, prompts: list[tuple[list[int], SamplingParams, int]],
                        prompt_param: str) -> list[RequestStream]:
        """Admit every prompt or none: a refusal closes the ones already admitted."""
        streams: list[RequestStream] = []
        try:
            for ids, params, priority in prompts:
                streams.append(await self.admit(ids, params, priority, prompt_param))
        except BaseException:
            for stream in streams:
                await stream.aclose()
            raise
        return streams
