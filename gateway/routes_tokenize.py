"""POST /tokenize, POST /detokenize and GET /tokenizer_info, in vLLM's shapes."""

from __future__ import annotations

import orjson
from aiohttp import web

from compat import errors as openai_errors
from compat import fields, parse_chat_request
from gateway.body import read_json
from gateway.serving_model import ServingModel
from gateway.state import serving_model


def _json(body: dict) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def tokenize(request: web.Request) -> web.Response:
    """{"prompt": text} or {"messages": [...]} (rendered by the chat template) -> token ids."""
    model = serving_model(request)
    body = await read_json(request, model.workers)
    model.check_model(fields.string(body.get("model"), "model"))
    add_special_tokens = fields.boolean(body.get("add_special_tokens"), "add_special_tokens")
    return_token_strs = fields.boolean(body.get("return_token_strs"), "return_token_strs")
    if body.get("messages") is None:
        fields.required_string(body, "prompt", "prompt")
    ids, token_strs = await model.workers.run(_tokenize, model, body, add_special_tokens, bool(return_token_strs))
    return _json({"count": len(ids), "max_model_len": model.max_model_len, "tokens": ids, "token_strs": token_strs})


def _tokenize(model: ServingModel, body: dict, add_special_tokens: bool | None,
              return_token_strs: bool) -> tuple[list[int], list[str] | None]:
    if body.get("messages") is not None:
        text = model.chat_prompt_text(parse_chat_request(body, allow_structured_output=True, allow_tools=True))
        ids = model.encode(text, add_special_tokens=bool(add_special_tokens), param="messages")
    else:
        ids = model.encode(body["prompt"], add_special_tokens=add_special_tokens is not False)
    return ids, [model.logprobs.token(i) for i in ids] if return_token_strs else None


async def detokenize(request: web.Request) -> web.Response:
    model = serving_model(request)
    body = await read_json(request, model.workers)
    model.check_model(fields.string(body.get("model"), "model"))
    tokens = fields.array(fields.required(body, "tokens"), "tokens") or []
    for i, token_id in enumerate(tokens):
        if fields.integer(token_id, f"tokens[{i}]", 0) is None:
            raise openai_errors.invalid_type(f"tokens[{i}]", "an integer", token_id)
    model.check_token_ids(tokens, "tokens")
    model.require_tokenizer("tokens")
    return _json({"prompt": await model.workers.run(model.decode, tokens)})


async def tokenizer_info(request: web.Request) -> web.Response:
    """The tokenizer's special tokens, chat template and length limit: what a remote-tokenizer client (lm-eval's
    `tokenizer_backend=remote`) reads before it tokenizes through /tokenize."""
    model = serving_model(request)
    tok = model.require_tokenizer("tokenizer")
    piece = model.logprobs.token
    return _json({
        "tokenizer_class": type(tok).__name__,
        "bos_token": tok.bos_token, "eos_token": tok.eos_token,
        "pad_token": piece(tok.pad_token_id) if tok.pad_token_id is not None else None,
        "unk_token": piece(tok.unk_token_id) if tok.unk_token_id is not None else None,
        "add_bos_token": tok.add_bos_token, "add_eos_token": tok.add_eos_token,
        "chat_template": tok.chat_template, "model_max_length": model.max_model_len,
        "vocab_size": tok.vocab_size,
    })
