"""One streamed request against an OpenAI-compatible server, timed the way vLLM's benchmark times it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
import orjson


@dataclass
class RequestResult:
    success: bool = False
    error: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft: float = 0.0  # seconds from sending to the first chunk with output
    itl: list[float] = field(default_factory=list)  # gaps between later chunks with output
    latency: float = 0.0  # seconds from sending to the end of the stream
    status: int = 0
    error_body: dict | None = None


@dataclass(frozen=True)
class Endpoint:
    url: str
    chat: bool
    headers: dict

    def payload(self, model: str, prompt: str | list[int], max_tokens: int, extra: dict) -> dict:
        body = {"model": model, "max_tokens": max_tokens, "temperature": 0.0, "stream": True,
                "stream_options": {"include_usage": True}, **extra}
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return body


async def send(session: aiohttp.ClientSession, endpoint: Endpoint, body: dict) -> RequestResult:
    result = RequestResult()
    start = last = time.perf_counter()
    try:
        async with session.post(endpoint.url, data=orjson.dumps(body), headers=endpoint.headers) as response:
            result.status = response.status
            if response.status != 200:
                raw = await response.read()
                result.error_body = _json_or_none(raw)
                result.error = f"HTTP {response.status}: {raw[:300].decode(errors='replace')}"
                return result
            async for data in _events(response):
                if data == b"[DONE]":
                    break
                chunk = orjson.loads(data)
                if "error" in chunk:
                    result.error = str(chunk["error"])
                    return result
                now = time.perf_counter()
                if _has_token(chunk, endpoint.chat):
                    if result.ttft == 0.0:
                        result.ttft = now - start
                    else:
                        result.itl.append(now - last)
                    last = now
                    result.output_tokens += 1  # replaced by usage when the server sends it
                if chunk.get("usage"):
                    result.prompt_tokens = chunk["usage"].get("prompt_tokens", 0)
                    result.output_tokens = chunk["usage"].get("completion_tokens", result.output_tokens)
        result.latency = time.perf_counter() - start
        result.success = result.ttft > 0.0
        if not result.success:
            result.error = "the stream carried no output"
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        result.error = f"{type(e).__name__}: {e}"
    return result


async def _events(response: aiohttp.ClientResponse):
    """The `data:` payloads of an SSE body (events may span reads; lines end in \\n)."""
    async for line in response.content:
        line = line.strip()
        if line.startswith(b"data:"):
            yield line[5:].strip()


def _has_token(chunk: dict, chat: bool) -> bool:
    """Whether a chunk carries generated output. Text counts; so does an empty text that is neither the
    chat role chunk nor a closing chunk (a token that completes no character yet, or a server without a
    tokenizer)."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        text = delta.get("content") if chat else choice.get("text")
        if text or (text == "" and choice.get("finish_reason") is None and "role" not in delta):
            return True
    return False


def _json_or_none(raw: bytes) -> dict | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
