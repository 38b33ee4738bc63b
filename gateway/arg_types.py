"""argparse types that refuse out-of-range values when the flag is parsed, with a one-line `error:`."""

from __future__ import annotations

import argparse
import json
import math


def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def bounded(kind, minimum=None, maximum=None, above=None, power_of_two: bool = False):
    """An argparse type: `kind` (int or float) within [minimum, maximum], above `above`, a power of two."""
    def parse(text: str):
        value = _number(kind, text)
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {value:g}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:g}, got {value:g}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be above {above:g}, got {value:g}")
        if power_of_two and (value < 1 or int(value) & (int(value) - 1)):
            raise argparse.ArgumentTypeError(f"must be a power of two, got {value:g}")
        return value

    parse.__name__ = kind.__name__
    return parse


def json_object(text: str) -> dict:
    """An argparse type: a JSON object (--hf-overrides)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value
