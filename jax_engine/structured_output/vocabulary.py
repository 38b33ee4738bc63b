"""The token byte table llguidance matches grammars against, built from our Tokenizer.

llguidance's own helpers want a transformers tokenizer or a serialisable HF tokenizer; ours may be a
GGUF vocabulary with a Python pre-tokenizer, so we hand it the bytes of every token instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import llguidance


class _TokenTable:
    """The duck-typed tokenizer llguidance.TokenizerWrapper reads."""

    def __init__(self, tokenizer, vocab_size: int, eos_token_ids: Sequence[int]):
        self._tokenizer = tokenizer
        self.eos_token_id = eos_token_ids[0] if eos_token_ids else tokenizer.eos_token_id
        self.bos_token_id = tokenizer.bos_token_id
        known = min(vocab_size, tokenizer.vocab_size)
        # Ids past the tokenizer's vocabulary (embedding padding) have no bytes and are never allowed.
        self.tokens = [tokenizer.token_to_bytes(i) for i in range(known)] + [b""] * (vocab_size - known)
        self.special_token_ids = sorted(i for i in tokenizer.all_special_ids if i < vocab_size)

    def __call__(self, text: bytes | str) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return self._tokenizer.encode(text, add_special_tokens=False)


def ll_tokenizer(tokenizer, vocab_size: int, eos_token_ids: Sequence[int]) -> llguidance.LLTokenizer:
    """vocab_size is the model's (logits width), which may exceed the tokenizer's."""
    table = _TokenTable(tokenizer, vocab_size, eos_token_ids)
    eos = list(eos_token_ids) or [table.eos_token_id]
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(table), n_vocab=vocab_size, eos_token=eos)
