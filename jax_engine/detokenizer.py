"""Incremental detokenization: new token ids in, newly finalised text out.

Like vLLM's detokenize_incrementally: decode a short window of tokens twice, once up to the last
emitted token (the prefix) and once through the newest token, and emit the difference. The prefix
gives a sentencepiece leading "▁" its context, so a word's space is neither dropped nor doubled;
text ending in U+FFFD (a character whose bytes are still arriving) is held back until it completes.
The window restarts after every emission, so a step costs O(window), not O(sequence).
"""

from __future__ import annotations

from collections.abc import Iterable

from jax_engine.tokenizer import Tokenizer

# Prompt tokens kept as the first prefix window (vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET).
INITIAL_PREFIX_WINDOW = 5
_REPLACEMENT_CHAR = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Tokenizer, prompt_ids: Iterable[int], skip_special_tokens: bool = True):
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        self._window = self._visible(prompt_ids)[-INITIAL_PREFIX_WINDOW:]
        self._read_offset = len(self._window)  # window[:read_offset] is the prefix, already emitted
        self._prefix_text = self._decode(self._window)

    def step(self, new_token_ids: Iterable[int]) -> str:
        """Append generated ids; return the text they complete (possibly "")."""
        self._window.extend(self._visible(new_token_ids))
        if len(self._window) == self._read_offset:
            return ""
        text = self._decode(self._window)
        if text.endswith(_REPLACEMENT_CHAR) or len(text) < len(self._prefix_text):
            return ""
        return self._emit(text)

    def flush(self) -> str:
        """At finish: whatever is still held back, incomplete characters included."""
        if len(self._window) == self._read_offset:
            return ""
        return self._emit(self._decode(self._window))

    def _emit(self, text: str) -> str:
        new_text = text[len(self._prefix_text) :]
        self._window = self._window[self._read_offset :]
        self._read_offset = len(self._window)
        self._prefix_text = self._decode(self._window)
        return new_text

    def _visible(self, ids: Iterable[int]) -> list[int]:
        ids = [int(i) for i in ids]
        if self._skip_special_tokens:
            special = self._tokenizer.all_special_ids
            ids = [i for i in ids if i not in special]
        return ids

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=False)
