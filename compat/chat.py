"""/v1/chat/completions: the request, parsed and validated, and the response and stream chunk builders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from compat import errors, fields, request_fields
from compat.envelope import chunk_body, response_body
from compat.logprobs import TokenLogprob, chat_logprobs
from compat.messages import parse_messages
from compat.output_constraint import OutputConstraint
from compat.response_format import ResponseFormat, parse_response_format
from compat.sampling import SamplingRequest, parse_sampling
from compat.stream_options import parse_stream_options
from compat.tools import (
    FunctionTool,
    ToolCall,
    ToolChoice,
    forced_tool_call_grammar,
    parse_tool_choice,
    parse_tools,
    template_supports_tools,
    with_tool_prompt,
)

OBJECT = "chat.completion"
CHUNK_OBJECT = "chat.completion.chunk"
MAX_TOP_LOGPROBS = 20

# OpenAI fields accepted and dropped: they steer billing, storage, caching or latency, not the output.
IGNORED_OPENAI_FIELDS = frozenset(
    (
        "metadata store service_tier prompt_cache_key prompt_cache_options prompt_cache_retention "
        "safety_identifier prediction reasoning_effort verbosity moderation"
    ).split()
)
KNOWN_FIELDS = request_fields.SAMPLING_EXTENSIONS.union(
    IGNORED_OPENAI_FIELDS,
    (
        "model messages frequency_penalty logit_bias logprobs top_logprobs max_tokens "
        "max_completion_tokens n presence_penalty response_format seed stop stream stream_options "
        "temperature top_p tools tool_choice parallel_tool_calls user chat_template_kwargs "
        "add_generation_prompt continue_final_message echo"
    ).split(),
)
UNIMPLEMENTED = {
    **request_fields.UNIMPLEMENTED_VLLM,
    "audio": (),
    "functions": ([],),
    "function_call": (),
    "web_search_options": (),
    "modalities": (["text"],),
}


@dataclass(frozen=True)
class ChatRequest:
    model: str | None  # None: the client left it out; the gateway serves its one model
    messages: list[dict]  # template-ready, see compat.messages
    sampling: SamplingRequest  # as sent: unset fields are None
    stream: bool = False
    include_usage: bool = False
    continuous_usage_stats: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    user: str | None = None
    response_format: ResponseFormat | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: ToolChoice = "none"
    parallel_tool_calls: bool = True
    chat_template_kwargs: dict = field(default_factory=dict)
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    echo: bool = False
    ignored_fields: tuple[str, ...] = ()  # top-level fields this server does not know; worth a log line

    @property
    def n(self) -> int:
        return self.sampling.n or 1

    @property
    def seed(self) -> int | None:
        return self.sampling.seed

    def template_tools(self) -> list[dict] | None:
        """`tools` as HF chat templates read them."""
        return None if self.tools is None else [tool.to_dict() for tool in self.tools]

    @property
    def offers_tools(self) -> bool:
        """The model may call tools, so its output is parsed for calls."""
        return bool(self.tools) and self.tool_choice != "none"

    def output_constraint(self) -> OutputConstraint | None:
        """tool_choice "required" or a named function forces a call; otherwise response_format, if structured."""
        if self.offers_tools:
            grammar = forced_tool_call_grammar(self.tools or [], self.tool_choice, self.parallel_tool_calls)
            if grammar is not None:
                return OutputConstraint(grammar=grammar, param="tools")
        response_format = self.response_format
        if response_format is None or not response_format.is_structured:
            return None
        if response_format.type == "json_object":
            return OutputConstraint(json_object=True)
        return OutputConstraint(json_schema=response_format.schema)

    def template_inputs(self, template_source: str) -> tuple[list[dict], list[dict] | None]:
        """(messages, tools) for the chat template. A template that reads `tools` gets them as HF templates
        expect; any other gets the fallback prompt, and tool calls and results written into its messages."""
        offered = self.tools if self.offers_tools else None
        if template_supports_tools(template_source):
            return self.messages, self.template_tools() if offered is not None else None
        return with_tool_prompt(self.messages, offered), None

    def param_for(self, field: str, prompt_index: int = 0) -> str:
        """The request field an engine refusal of `field` (SamplingParams' name, or "prompt") is about."""
        if field == "prompt":
            return "messages"
        if field == "structured_output":
            constraint = self.output_constraint()
            return constraint.param if constraint is not None else "response_format"
        return field


@dataclass(frozen=True)
class ChatChoiceData:
    index: int
    text: str | None
    finish_reason: str  # "stop" | "length" | "tool_calls"
    logprobs: Sequence[TokenLogprob] | None = None
    tool_calls: Sequence[ToolCall] = ()


def parse_chat_request(
    body: dict, allow_structured_output: bool = False, allow_tools: bool = False
) -> ChatRequest:
    """Validate a chat request. `response_format` and `tools` are parsed in full, but refused with a 400
    until the server can honour them (the `allow_*` switches)."""
    if not isinstance(body, dict):
        raise errors.invalid_type("body", "an object", body)
    request_fields.reject_unimplemented(body, UNIMPLEMENTED)
    stream = parse_stream_options(body)
    logprobs, top_logprobs = _logprobs(body)
    sampling = parse_sampling(body, _max_tokens(body), top_logprobs if logprobs else None)
    tools = parse_tools(body.get("tools"))
    request = ChatRequest(
        model=fields.string(body.get("model"), "model"),
        messages=parse_messages(body.get("messages")),
        sampling=sampling,
        stream=stream.stream,
        include_usage=stream.include_usage,
        continuous_usage_stats=stream.continuous_usage_stats,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        user=fields.string(body.get("user"), "user"),
        response_format=parse_response_format(body.get("response_format")),
        tools=tools,
        tool_choice=parse_tool_choice(body.get("tool_choice"), tools),
        parallel_tool_calls=_flag(body, "parallel_tool_calls", True),
        chat_template_kwargs=fields.obj(body.get("chat_template_kwargs"), "chat_template_kwargs") or {},
        add_generation_prompt=_flag(body, "add_generation_prompt", True),
        continue_final_message=_flag(body, "continue_final_message", False),
        echo=_flag(body, "echo", False),
        ignored_fields=request_fields.unknown_fields(body, KNOWN_FIELDS | set(UNIMPLEMENTED)),
    )
    _check_generation_prompt(request)
    if not allow_structured_output:
        _refuse_structured_output(request)
    if not allow_tools:
        _refuse_tools(request)
    return request


def _flag(body: dict, key: str, default: bool) -> bool:
    value = fields.boolean(body.get(key), key)
    return default if value is None else value


def _logprobs(body: dict) -> tuple[bool, int]:
    logprobs = _flag(body, "logprobs", False)
    top_logprobs = fields.integer(body.get("top_logprobs"), "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top_logprobs is not None and not logprobs:
        raise errors.invalid_parameter_combination(
            "'top_logprobs' requires 'logprobs' to be set to true.", "top_logprobs"
        )
    return logprobs, top_logprobs or 0


def _max_tokens(body: dict) -> int | None:
    max_tokens = fields.integer(body.get("max_tokens"), "max_tokens", 1)
    max_completion_tokens = fields.integer(body.get("max_completion_tokens"), "max_completion_tokens", 1)
    if max_tokens is not None and max_completion_tokens is not None:
        raise errors.invalid_parameter_combination(
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported; "
            "use 'max_completion_tokens'.",
            "max_tokens",
        )
    return max_tokens if max_completion_tokens is None else max_completion_tokens


def _check_generation_prompt(request: ChatRequest) -> None:
    if request.add_generation_prompt and request.continue_final_message:
        raise errors.invalid_parameter_combination(
            "'add_generation_prompt' and 'continue_final_message' cannot both be true.",
            "continue_final_message",
        )


def _refuse_structured_output(request: ChatRequest) -> None:
    if request.response_format is not None and request.response_format.is_structured:
        raise errors.unsupported_value(
            "response_format.type",
            f"response_format of type '{request.response_format.type}' is not supported yet.",
        )


def _refuse_tools(request: ChatRequest) -> None:
    if request.tools and request.tool_choice != "none":
        raise errors.unsupported_parameter("tools", "Tool calling is not supported yet.")


# Responses and stream chunks.


def chat_response(
    request_id: str,
    model: str,
    created: int,
    choices: Sequence[ChatChoiceData],
    usage: dict,
    system_fingerprint: str | None = None,
) -> dict:
    return response_body(
        OBJECT, request_id, model, created, [_choice(c) for c in choices], usage, system_fingerprint
    )


def chat_chunk(
    request_id: str,
    model: str,
    created: int,
    index: int,
    delta: dict,
    finish_reason: str | None = None,
    logprobs: Sequence[TokenLogprob] | None = None,
    usage_null: bool = False,
    usage: dict | None = None,
    system_fingerprint: str | None = None,
) -> dict:
    """One stream event for choice `index`. Build `delta` with role_delta (first chunk of each choice),
    content_delta or tool_call_delta; the last chunk of a choice carries its finish_reason.
    `usage_null`: the client asked for include_usage, so the field is present and null until the usage
    chunk; `usage`: running usage (continuous_usage_stats)."""
    choice = {
        "index": index,
        "delta": delta,
        "logprobs": None if logprobs is None else chat_logprobs(logprobs),
        "finish_reason": finish_reason,
    }
    return chunk_body(CHUNK_OBJECT, request_id, model, created, [choice], usage, usage_null, system_fingerprint)


def chat_usage_chunk(
    request_id: str, model: str, created: int, usage: dict, system_fingerprint: str | None = None
) -> dict:
    """The last event of a stream with include_usage: usage for the whole request and no choices."""
    return chunk_body(CHUNK_OBJECT, request_id, model, created, [], usage, False, system_fingerprint)


def role_delta() -> dict:
    return {"role": "assistant", "content": ""}


def content_delta(text: str) -> dict:
    return {"content": text}


def tool_call_delta(
    index: int, id: str | None = None, name: str | None = None, arguments: str | None = None
) -> dict:
    """A piece of the `index`-th tool call: its first piece has `id` and `name`, later ones `arguments`."""
    call: dict[str, object] = {"index": index}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    function: dict[str, str] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    if function:
        call["function"] = function
    return {"tool_calls": [call]}


def _choice(choice: ChatChoiceData) -> dict:
    message: dict[str, object] = {"role": "assistant", "content": choice.text, "refusal": None}
    if choice.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in choice.tool_calls
        ]
    return {
        "index": choice.index,
        "message": message,
        "logprobs": None if choice.logprobs is None else chat_logprobs(choice.logprobs),
        "finish_reason": choice.finish_reason,
    }
