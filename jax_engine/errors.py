"""Errors the engine raises to its callers."""


class EngineError(RuntimeError):
    """The engine failed (or is shutting down); the request did not complete."""


class EngineShutdown(EngineError):
    """The engine is stopping and takes no more work."""


class RequestValidationError(ValueError):
    """A request rejected at admission. `param` names the offending field when known."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param = param
        self.code = code


class ContextLengthExceeded(RequestValidationError):
    def __init__(self, message: str, param: str | None = "messages"):
        super().__init__(message, param=param, code="context_length_exceeded")


class QueueFull(RuntimeError):
    """The bounded waiting queue is full; try again later."""
