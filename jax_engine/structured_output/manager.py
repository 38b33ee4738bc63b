"""Compiles output constraints into llguidance matchers, once per distinct constraint, and hands each
request its own copy."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence

import llguidance

from jax_engine.errors import RequestField, RequestValidationError
from jax_engine.structured_output.grammar import Grammar
from jax_engine.structured_output.params import StructuredOutputParams
from jax_engine.structured_output.vocabulary import ll_tokenizer

# Fixed separators, no free whitespace: a small model given free whitespace can emit newlines until
# max_tokens. ", " and ": " are the layout models see most (Python's json.dumps).
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_LIMITS = llguidance.LLParserLimits(verbose_errors=False)
_WHAT = {"json": "the JSON schema", "json_object": "the JSON grammar", "grammar": "the grammar",
         "regex": "the regex", "choice": "the choice"}


class StructuredOutputManager:
    """Thread-safe: constraints are compiled ahead, in a worker thread of the API server (where compile cost
    belongs), and the engine thread builds each request's matcher from the cached prototype."""

    def __init__(self, tokenizer, vocab_size: int, eos_token_ids: Sequence[int], cache_size: int = 256):
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._eos_token_ids = list(eos_token_ids)
        self._ll_tokenizer: llguidance.LLTokenizer | None = None
        self._cache: OrderedDict[tuple[str, str], llguidance.LLMatcher] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def ll_tokenizer(self) -> llguidance.LLTokenizer:
        with self._lock:
            if self._ll_tokenizer is None:
                self._ll_tokenizer = ll_tokenizer(self._tokenizer, self._vocab_size, self._eos_token_ids)
            return self._ll_tokenizer

    def warmup(self) -> None:
        """Build the token table now rather than on the first constrained request (~0.1 s per 50k tokens)."""
        _ = self.ll_tokenizer

    def compile(self, params: StructuredOutputParams) -> llguidance.LLMatcher:
        """The matcher in its start state; raises RequestValidationError naming what cannot be enforced."""
        key = params.key
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        matcher = llguidance.LLMatcher(self.ll_tokenizer, grammar_text(params), limits=_LIMITS, log_level=0)
        error = matcher.get_error() if matcher.is_error() else self._first_step_error(matcher)
        if error is not None:
            raise RequestValidationError(f"{_WHAT[key[0]]} cannot be enforced: {_first_line(error)}",
                                         RequestField.STRUCTURED_OUTPUT)
        with self._lock:
            self._cache[key] = matcher
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return matcher

    def _first_step_error(self, matcher: llguidance.LLMatcher) -> str | None:
        """Run a copy through the output's forced prefix and its first mask. A schema that is valid but cannot
        close at finite depth (a required self-reference), or is too wide for the parser's limits, fails here,
        so it is refused at admission instead of failing mid-generation."""
        probe = matcher.deep_copy()
        forced = probe.compute_ff_tokens()
        if forced and not probe.is_error():
            probe.try_consume_tokens(forced)
        if not probe.is_error() and not probe.is_stopped():
            mask = probe.compute_bitmask()  # on this thread, not the engine's shared executor
            if not probe.is_error() and not any(mask):
                return "no token can start the output"
        return probe.get_error() if probe.is_error() else None

    def grammar(self, params: StructuredOutputParams) -> Grammar:
        return Grammar(self.compile(params).deep_copy())


def _first_line(error: str) -> str:
    return error.strip().splitlines()[0] if error.strip() else "the grammar failed"


def grammar_text(params: StructuredOutputParams) -> str:
    """llguidance's grammar definition for the constraint."""
    if params.json is not None or params.json_object:
        schema = {"type": "object"} if params.json_object else params.json
        try:
            return llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_OPTIONS)
        except ValueError as e:
            raise RequestValidationError(f"the JSON schema is not valid JSON: {e}",
                                         RequestField.STRUCTURED_OUTPUT) from e
    if params.grammar is not None:
        return llguidance.LLMatcher.grammar_from_lark(params.grammar)
    if params.regex is not None:
        return llguidance.LLMatcher.grammar_from_regex(params.regex)
    return llguidance.LLMatcher.grammar_from_lark("start: " + " | ".join(json.dumps(c) for c in params.choice))
