"""Structured outputs: grammar-constrained decoding with llguidance.

Each constrained request owns a matcher. Every step, for the requests that sample, the runner
dispatches the forward pass, computes the allowed-token bitmask on the host while the device works,
and the sampler sets disallowed logits to -inf; the engine then advances the matcher with the sampled
token and finishes the request ("stop") once the grammar admits nothing but end-of-sequence.
Requests without a constraint run the sampler variant without the mask (a static flag).

Why llguidance, not outlines-core: measured on this project's 2-core CPU with SmolLM2's 49,152-token
vocabulary, per-token mask time over a realistic output is about the same (llguidance 10-100 us mean
on first use, ~10 us once its lexer has warmed; outlines-core 4-24 us), but compile time is not:
llguidance compiles a schema in 0.3-4 ms where outlines-core needs 90 ms (flat object), 420 ms
(nested object) and 7.6 s (any JSON object: {"type": "object"}), since it builds a whole-vocabulary
automaton per regex, and it cannot express recursive JSON. A compile sits on the request's critical
path; a mask does not (it overlaps the device step). xgrammar is out: its wheel needs torch.
"""

from jax_engine.structured_output.bitmask import grammar_bitmask
from jax_engine.structured_output.grammar import Grammar
from jax_engine.structured_output.manager import StructuredOutputManager
from jax_engine.structured_output.params import StructuredOutputParams

__all__ = ["Grammar", "StructuredOutputManager", "StructuredOutputParams", "grammar_bitmask"]
