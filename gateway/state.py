"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from aiohttp import web

from gateway.in_flight import InFlight
from gateway.metrics import Metrics
from gateway.model_slot import ModelSlot
from gateway.request_summary import RequestSummary
from gateway.responses_state import ResponsesState
from gateway.server_config import ServerConfig
from gateway.serving_model import ServingModel

SERVER_CONFIG = web.AppKey("server_config", ServerConfig)
MODEL_SLOT = web.AppKey("model_slot", ModelSlot)
METRICS = web.AppKey("metrics", Metrics)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
RESPONSES = web.AppKey("responses", ResponsesState)

REQUEST_ID = web.RequestKey("request_id", str)
SUMMARY = web.RequestKey("summary", RequestSummary)  # what the engine did for it, for the access log


def serving_model(request: web.Request) -> ServingModel:
    """The model, or a 503 while it loads."""
    return request.app[MODEL_SLOT].get()
