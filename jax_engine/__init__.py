"""The JAX engine: load a model, then serve many concurrent requests from one jitted step."""

from jax_engine.config import EngineConfig, ModelConfig
from jax_engine.engine import AsyncEngine
from jax_engine.errors import ContextLengthExceeded, EngineError, QueueFull, RequestValidationError
from jax_engine.loader import load_checkpoint as load_model
from jax_engine.outputs import RequestOutput
from jax_engine.sampling_params import SamplingParams
from jax_engine.structured_output import StructuredOutputParams

__all__ = ["AsyncEngine", "ContextLengthExceeded", "EngineConfig", "EngineError", "ModelConfig", "QueueFull",
           "RequestOutput", "RequestValidationError", "SamplingParams", "StructuredOutputParams", "load_model"]
