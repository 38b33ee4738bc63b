"""The JAX engine: load a model, then serve many concurrent requests from one jitted step.

Its public surface: the EngineClient protocol (AsyncEngine implements it), SamplingParams, RequestOutput,
EngineConfig, the errors a refused or failed request raises, and the loaders.
"""

from jax_engine.async_engine import AsyncEngine
from jax_engine.config import EngineConfig, ModelConfig
from jax_engine.engine_client import EngineClient, EngineLimits, EngineStats, RequestHandle
from jax_engine.errors import (
    ContextLengthExceeded,
    EngineDead,
    EngineError,
    EngineShutdown,
    QueueFull,
    RequestField,
    RequestValidationError,
)
from jax_engine.loader import load_checkpoint as load_model
from jax_engine.outputs import RequestOutput, RequestTiming, TokenLogprobs
from jax_engine.pooling_params import PoolingParams
from jax_engine.sampling_params import SamplingParams
from jax_engine.structured_output import StructuredOutputParams

__all__ = ["AsyncEngine", "ContextLengthExceeded", "EngineClient", "EngineConfig", "EngineDead", "EngineError",
           "EngineLimits", "EngineShutdown", "EngineStats", "ModelConfig", "PoolingParams", "QueueFull", "RequestField",
           "RequestHandle", "RequestOutput", "RequestTiming", "RequestValidationError", "SamplingParams",
           "StructuredOutputParams", "TokenLogprobs", "load_model"]
