"""The OpenAI Responses API: POST /v1/responses, POST /v1/responses/input_tokens, and for stored responses
GET /v1/responses/{id} (?stream=true replays a background response), GET /v1/responses/{id}/input_items,
DELETE /v1/responses/{id} and POST /v1/responses/{id}/cancel."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from compat import OpenAIError, fields
from compat import errors as openai_errors
from compat.responses import PARAMS, ResponsesRequest, ResponseStream, chat_body, parse_responses_request
from compat.responses.items import new_id
from compat.responses.objects import deleted, input_tokens, item_list, response_object
from gateway.body import read_json
from gateway.chat_turn import ChatTurn, count_prompt_tokens, start_turn
from gateway.response_run import ResponseRun
from gateway.response_store import ResponseStore, StoredResponse
from gateway.responses_state import ResponsesState
from gateway.sse import Framing, named_event, stream_events
from gateway.state import REQUEST_ID, RESPONSES, serving_model
from gateway.turn_reply import json_response, reply

logger = logging.getLogger(__name__)

MAX_PAGE = 100


def _error_event(error: OpenAIError) -> dict:
    # Only reached for a failure the run itself did not report, which has no sequence number to follow.
    return {"type": "error", "code": error.code, "message": error.message, "param": error.param,
            "sequence_number": 0}


EVENTS = Framing(named_event, b"", _error_event)


async def create_response(request: web.Request) -> web.StreamResponse:
    model = serving_model(request)
    body = await read_json(request, model.workers)
    responses_request = parse_responses_request(body)
    model.check_model(responses_request.model)
    if responses_request.ignored_fields:
        logger.debug("request %s: ignoring unknown fields %s", request[REQUEST_ID], responses_request.ignored_fields)
    state = request.app[RESPONSES]
    background_store = _background_store(state) if responses_request.background else None
    history = state.history(responses_request.previous_response_id)
    turn = await _start_turn(model, responses_request, history)
    run = _new_run(responses_request, model.name, turn, history, state)
    if background_store is not None:
        return await _start_background(request, run, state, background_store, responses_request.stream)
    return await reply(request, turn, run, responses_request.stream, EVENTS, lambda: run.response)


def _background_store(state: ResponsesState) -> ResponseStore:
    if state.store is None:
        raise openai_errors.invalid_request(
            "Background responses need the response store, which this server runs without (--no-responses-store).",
            "background")
    return state.store


async def _start_turn(model, responses_request: ResponsesRequest, history: list[dict]) -> ChatTurn:
    """With truncation "auto", a conversation too long for the context loses its oldest items until it fits
    (as OpenAI truncates); with "disabled" (the default) it is refused."""
    truncated = 0
    while True:
        try:
            return await start_turn(model, chat_body(responses_request, history, truncated), PARAMS)
        except OpenAIError as e:
            conversation = len(history) + len(responses_request.input_items)
            if (responses_request.truncation != "auto" or e.code != "context_length_exceeded"
                    or truncated + 1 >= conversation):
                raise
            truncated += 1


def _new_run(responses_request: ResponsesRequest, model_name: str, turn, history: list[dict],
             state: ResponsesState) -> ResponseRun:
    status = "queued" if responses_request.background else "in_progress"
    response = response_object(responses_request, new_id("resp"), model_name, int(time.time()), status)
    events = ResponseStream(response, responses_request.logprobs)
    entry = StoredResponse(response, list(responses_request.input_items), history)
    return ResponseRun(turn, events, entry, state.store if responses_request.store else None)


async def _start_background(request: web.Request, run: ResponseRun, state: ResponsesState, store: ResponseStore,
                            stream: bool) -> web.StreamResponse:
    store.put(run.entry)
    job = state.start_background(run)
    if stream:
        return await stream_events(request, job.follow(), EVENTS)
    return json_response(run.events.snapshot())


async def retrieve_response(request: web.Request) -> web.StreamResponse:
    state = request.app[RESPONSES]
    response_id = request.match_info["response_id"]
    entry = state.find(response_id)
    if _query_flag(request, "stream"):
        job = state.background.get(response_id)
        if job is None:
            raise openai_errors.invalid_request("Only background responses can be streamed again.", "stream")
        after = _query_int(request, "starting_after", -1)
        return await stream_events(request, job.follow(after), EVENTS)
    return json_response(entry.response)


async def delete_response(request: web.Request) -> web.Response:
    state = request.app[RESPONSES]
    response_id = request.match_info["response_id"]
    state.delete(response_id)
    return json_response(deleted(response_id))


async def cancel_response(request: web.Request) -> web.Response:
    state = request.app[RESPONSES]
    response_id = request.match_info["response_id"]
    entry = state.find(response_id)
    if not entry.response["background"]:
        raise openai_errors.invalid_request("Only responses created with background=true can be cancelled.")
    job = state.background.get(response_id)
    if job is not None and not job.done:
        job.cancel()
        await job.wait_cancelled()
    return json_response(entry.response)


async def list_input_items(request: web.Request) -> web.Response:
    entry = request.app[RESPONSES].find(request.match_info["response_id"])
    limit = _query_int(request, "limit", 20, 1, MAX_PAGE)
    order = fields.choice(request.query.get("order", "desc"), "order", ("asc", "desc"))
    items = entry.input_items if order == "asc" else entry.input_items[::-1]
    after = request.query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise openai_errors.invalid_value("after", f"Invalid 'after': no input item with id '{after}'.")
        items = items[ids.index(after) + 1:]
    return json_response(item_list(items[:limit], has_more=len(items) > limit))


async def count_input_tokens(request: web.Request) -> web.Response:
    model = serving_model(request)
    body = await read_json(request, model.workers)
    responses_request = parse_responses_request(body)
    model.check_model(responses_request.model)
    history = request.app[RESPONSES].history(responses_request.previous_response_id)
    count = await count_prompt_tokens(model, chat_body(responses_request, history), PARAMS)
    return json_response(input_tokens(count))


def _query_flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value not in ("true", "false"):
        raise openai_errors.invalid_value(name, f"Invalid '{name}': expected true or false, got '{value}'.")
    return value == "true"


def _query_int(request: web.Request, name: str, default: int, minimum: int | None = None,
               maximum: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise openai_errors.invalid_type(name, "an integer", raw) from None
    return fields.integer_value(value, name, minimum, maximum)

