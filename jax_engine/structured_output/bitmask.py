"""The per-step grammar bitmask: bit j of word w allows token 32 * w + j; rows without a grammar allow all."""

from __future__ import annotations

import threading

import llguidance
import numpy as np
from llguidance.numpy import fill_next_token_bitmask_par

from jax_engine.structured_output.grammar import Grammar

_executor: llguidance.LLExecutor | None = None
_executor_lock = threading.Lock()


def bitmask_width(vocab_size: int) -> int:
    return -(-vocab_size // 32)


def allow_all(num_seqs: int, vocab_size: int) -> np.ndarray:
    return np.full((num_seqs, bitmask_width(vocab_size)), -1, np.int32)


def grammar_bitmask(rows: list[tuple[int, Grammar]], num_seqs: int, vocab_size: int) -> np.ndarray:
    """[num_seqs, ceil(V/32)] int32 for the (row, grammar) pairs; the matchers run in parallel, off the GIL."""
    bitmask = allow_all(num_seqs, vocab_size)
    fill_next_token_bitmask_par(_shared_executor(), [(g.matcher, row) for row, g in rows], bitmask)
    return bitmask


def _shared_executor() -> llguidance.LLExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = llguidance.LLExecutor()
        return _executor
