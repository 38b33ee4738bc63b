"""The tokenizer facade: text <-> token ids over either backend, with the special-token facts the engine
and the chat template need (BOS/EOS, which ids are special, the chat template itself)."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jax_engine.tokenizer.backends import Backend

# Normalizers (NFC, whitespace folding) may shrink text before it is split: NFC composes at most about three
# code points' bytes into one character's, so 4x covers them.
NORMALIZATION_SLACK = 4


class TokenizerError(Exception):
    """A tokenizer could not be built: missing file, corrupt file or unsupported model type."""


@dataclass
class SpecialTokens:
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    extra_eos_ids: list[int] = field(default_factory=list)
    unk_token_id: int | None = None
    pad_token_id: int | None = None
    add_bos_token: bool = False
    add_eos_token: bool = False
    suffix_ids: list[int] = field(default_factory=list)  # appended with the special tokens (post-processor's)
    chat_template: str | None = None


class Tokenizer:
    def __init__(self, backend: Backend, config: SpecialTokens):
        self._backend = backend
        self.vocab_size: int = backend.vocab_size
        self.bos_token_id = config.bos_token_id
        self.eos_token_id = config.eos_token_id
        self.unk_token_id = config.unk_token_id
        self.pad_token_id = config.pad_token_id
        self.bos_token = self._content(config.bos_token_id)
        self.eos_token = self._content(config.eos_token_id)
        eos_ids = [config.eos_token_id, *config.extra_eos_ids]
        self.eos_token_ids: list[int] = list(dict.fromkeys(i for i in eos_ids if i is not None))
        self.add_bos_token = config.add_bos_token and config.bos_token_id is not None
        self.add_eos_token = config.add_eos_token and config.eos_token_id is not None
        self.suffix_ids = list(config.suffix_ids)
        self.chat_template = config.chat_template
        named = {config.bos_token_id, config.eos_token_id, config.unk_token_id, config.pad_token_id}
        self.all_special_ids: set[int] = {t.id for t in backend.added.values() if t.special} | {
            i for i in named if i is not None
        }

    def _content(self, token_id: int | None) -> str | None:
        return None if token_id is None else self._backend.piece(token_id)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = self._backend.encode(text)
        if add_special_tokens and self.add_bos_token and self.bos_token_id is not None:
            ids.insert(0, self.bos_token_id)
        if add_special_tokens and self.add_eos_token and self.eos_token_id is not None:
            ids.append(self.eos_token_id)
        if add_special_tokens:
            ids.extend(self.suffix_ids)
        return ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.all_special_ids]
        return self._backend.decode(ids)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self._backend.piece(int(i)) or "" for i in ids]

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_id(token)

    def token_to_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes this token contributes to the text (a byte-fallback token: its raw byte)."""
        return self._backend.piece_bytes(int(token_id))

    id_to_bytes = token_to_bytes

    def token_str(self, token_id: int) -> str:
        """The token as logprobs text; bytes that are not valid UTF-8 are written as OpenAI does."""
        raw = self.token_to_bytes(token_id)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)

    @functools.cached_property
    def max_bytes_per_token(self) -> int:
        """No token covers more bytes of UTF-8 input than this, so a text of more than
        max_model_len * max_bytes_per_token bytes cannot fit the context: it is refused without tokenizing."""
        longest = max((len(self._backend.piece_bytes(i)) for i in range(self.vocab_size)), default=1)
        return max(longest, 1) * (NORMALIZATION_SLACK if self._backend.normalizes else 1)

    @classmethod
    def from_pretrained_dir(cls, path: str | os.PathLike) -> Tokenizer:
        from jax_engine.tokenizer.hf_dir import tokenizer_from_dir

        return tokenizer_from_dir(Path(path))

    @classmethod
    def from_gguf(cls, path_or_reader: Any) -> Tokenizer:
        """From a GGUF file's path, or a gguf.GGUFReader over one (its file is read again, by our reader)."""
        from jax_engine.tokenizer.gguf_vocab import read_gguf_tokenizer_metadata, tokenizer_from_gguf_metadata

        path = getattr(getattr(path_or_reader, "data", None), "filename", path_or_reader)
        return tokenizer_from_gguf_metadata(read_gguf_tokenizer_metadata(path), str(path))

    @classmethod
    def from_gguf_metadata(cls, metadata: Mapping[str, Any], source: str) -> Tokenizer:
        from jax_engine.tokenizer.gguf_vocab import tokenizer_from_gguf_metadata

        return tokenizer_from_gguf_metadata(metadata, source)
