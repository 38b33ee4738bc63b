"""`stream` and `stream_options`, shared by both generation endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from compat import errors, fields


@dataclass(frozen=True)
class StreamOptions:
    stream: bool = False
    include_usage: bool = (
        False  # a last chunk with `usage` and no choices; every other chunk has "usage": null
    )
    continuous_usage_stats: bool = False  # vLLM extension: running usage on every chunk (needs include_usage)


def parse_stream_options(body: dict) -> StreamOptions:
    stream = bool(fields.boolean(body.get("stream"), "stream"))
    options = fields.obj(body.get("stream_options"), "stream_options")
    if options is None:
        return StreamOptions(stream)
    if not stream:
        raise errors.invalid_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )
    include_usage = fields.boolean(options.get("include_usage"), "stream_options.include_usage")
    continuous = fields.boolean(
        options.get("continuous_usage_stats"), "stream_options.continuous_usage_stats"
    )
    fields.boolean(options.get("include_obfuscation"), "stream_options.include_obfuscation")
    return StreamOptions(stream, bool(include_usage), bool(include_usage and continuous))
